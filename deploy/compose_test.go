// Package deploy holds the deployment files' checks: docker-compose.yml, the Dockerfile
// and .env.example at the repository root, and the PostgreSQL init script here. No
// Docker engine is needed; the tests read the files.
package deploy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// Service names the README and the checks below rely on.
const (
	svcPostgres  = "postgresql"
	svcSchema    = "temporal-schema"
	svcTemporal  = "temporal"
	svcNamespace = "temporal-namespace"
	svcSetup     = "tokenwarden-setup"
	svcUI        = "temporal-ui"
	svcWorker    = "worker"
)

type composeFile struct {
	Name     string                `yaml:"name"`
	Services map[string]service    `yaml:"services"`
	Secrets  map[string]fileSecret `yaml:"secrets"`
	Volumes  map[string]any        `yaml:"volumes"`
}

type fileSecret struct {
	File        string `yaml:"file"`
	Environment string `yaml:"environment"`
}

type service struct {
	Image       string       `yaml:"image"`
	Build       yaml.Node    `yaml:"build"`
	Entrypoint  yaml.Node    `yaml:"entrypoint"`
	Command     yaml.Node    `yaml:"command"`
	DependsOn   yaml.Node    `yaml:"depends_on"`
	Environment yaml.Node    `yaml:"environment"`
	Ports       []yaml.Node  `yaml:"ports"`
	Secrets     []yaml.Node  `yaml:"secrets"`
	Volumes     []yaml.Node  `yaml:"volumes"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
	Restart     string       `yaml:"restart"`
}

type healthcheck struct {
	Test    yaml.Node `yaml:"test"`
	Disable bool      `yaml:"disable"`
}

func (s service) built() bool { return !s.Build.IsZero() }

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var f composeFile
	if err := yaml.Unmarshal([]byte(readFile(t, "docker-compose.yml")), &f); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return f
}

// strs decodes a string or a list of strings.
func strs(t *testing.T, n yaml.Node, what string) []string {
	t.Helper()
	switch n.Kind {
	case 0:
		return nil
	case yaml.ScalarNode:
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return out
	}
	t.Fatalf("%s: want a string or a list of strings", what)
	return nil
}

// env decodes environment: in either of its forms (mapping, or list of NAME=value).
func env(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.Environment.Kind {
	case 0:
	case yaml.MappingNode:
		var m map[string]*string
		if err := s.Environment.Decode(&m); err != nil {
			t.Fatalf("services.%s.environment: %v", name, err)
		}
		for k, v := range m {
			if v != nil {
				out[k] = *v
			} else {
				out[k] = ""
			}
		}
	case yaml.SequenceNode:
		for _, e := range strs(t, s.Environment, "services."+name+".environment") {
			k, v, _ := strings.Cut(e, "=")
			out[k] = v
		}
	default:
		t.Fatalf("services.%s.environment: want a mapping or a list", name)
	}
	return out
}

// dependsOn decodes depends_on into dependency -> condition.
func dependsOn(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		for _, d := range strs(t, s.DependsOn, "services."+name+".depends_on") {
			out[d] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatalf("services.%s.depends_on: %v", name, err)
		}
		for d, c := range m {
			if c.Condition == "" {
				c.Condition = "service_started"
			}
			out[d] = c.Condition
		}
	default:
		t.Fatalf("services.%s.depends_on: want a list or a mapping", name)
	}
	return out
}

// published is one published port.
type published struct{ hostIP, hostPort, containerPort string }

func ports(t *testing.T, name string, s service) []published {
	t.Helper()
	var out []published
	for _, n := range s.Ports {
		switch n.Kind {
		case yaml.ScalarNode:
			// [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]; this file uses no IPv6 literal.
			v, _, _ := strings.Cut(n.Value, "/")
			parts := strings.Split(v, ":")
			p := published{containerPort: parts[len(parts)-1]}
			switch len(parts) {
			case 2:
				p.hostPort = parts[0]
			case 3:
				p.hostIP, p.hostPort = parts[0], parts[1]
			}
			out = append(out, p)
		case yaml.MappingNode:
			var m struct {
				HostIP    string `yaml:"host_ip"`
				Published string `yaml:"published"`
				Target    string `yaml:"target"`
			}
			if err := n.Decode(&m); err != nil {
				t.Fatalf("services.%s.ports: %v", name, err)
			}
			out = append(out, published{m.HostIP, m.Published, m.Target})
		default:
			t.Fatalf("services.%s.ports: unexpected entry", name)
		}
	}
	return out
}

// secretTargets maps each secret a service mounts to its path in the container.
func secretTargets(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range s.Secrets {
		src, target := n.Value, ""
		if n.Kind == yaml.MappingNode {
			var m struct{ Source, Target string }
			if err := n.Decode(&m); err != nil {
				t.Fatalf("services.%s.secrets: %v", name, err)
			}
			src, target = m.Source, m.Target
		}
		if target == "" {
			target = src
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		out[src] = target
	}
	return out
}

func TestComposeServicesExist(t *testing.T) {
	f := loadCompose(t)
	for _, want := range []string{svcPostgres, svcSchema, svcTemporal, svcNamespace, svcSetup, svcUI, svcWorker} {
		if _, ok := f.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no service %q", want)
		}
	}
	for name, s := range f.Services {
		if s.Image == "" && !s.built() {
			t.Errorf("services.%s: neither image nor build", name)
		}
	}
	if !f.Services[svcWorker].built() || !f.Services[svcSetup].built() {
		t.Errorf("%s and %s must be built from the Dockerfile", svcWorker, svcSetup)
	}
	if ep := strings.Join(strs(t, f.Services[svcSetup].Entrypoint, "entrypoint"), " "); !strings.Contains(ep, "starter") || !strings.HasSuffix(ep, " setup") {
		t.Errorf("services.%s.entrypoint = %q, want the starter's setup command", svcSetup, ep)
	}
}

// exactTag is a version tag (at least major.minor), optionally with a variant suffix:
// 16.10-bookworm, 1.29.1, 2.42.1, 12.12-slim. Not latest, not a bare major such as 16.
var exactTag = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)*([-_][A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// splitImage returns an image reference's repository, tag and digest.
func splitImage(ref string) (repo, tag, digest string) {
	ref, digest, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:], digest
	}
	return ref, "", digest
}

// checkPinned reports an image that is not pinned to an exact version tag or a digest.
func checkPinned(ref string) error {
	if strings.Contains(ref, "$") {
		return fmt.Errorf("image %q is chosen by a variable; write the tag in the file", ref)
	}
	_, tag, digest := splitImage(ref)
	switch {
	case digest != "":
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			return fmt.Errorf("image %q: malformed digest", ref)
		}
		return nil
	case tag == "":
		return fmt.Errorf("image %q has no tag (that is :latest)", ref)
	case !exactTag.MatchString(tag):
		return fmt.Errorf("image %q: tag %q is not an exact version (such as 16.10-bookworm or 1.29.1)", ref, tag)
	}
	return nil
}

func TestComposeImagesPinned(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		if s.built() {
			// Our own image: any tag but latest (the build is pinned by the Dockerfile).
			if _, tag, _ := splitImage(s.Image); s.Image != "" && (tag == "" || tag == "latest") {
				t.Errorf("services.%s.image %q: give the built image a tag other than latest", name, s.Image)
			}
			continue
		}
		if err := checkPinned(s.Image); err != nil {
			t.Errorf("services.%s: %v", name, err)
		}
	}
	// The versions this deployment is written for.
	for svc, prefix := range map[string]string{
		svcPostgres:  "postgres:16.",
		svcTemporal:  "temporalio/server:1.29.",
		svcSchema:    "temporalio/admin-tools:1.29.",
		svcNamespace: "temporalio/admin-tools:1.29.",
		svcUI:        "temporalio/ui:2.",
	} {
		if img := f.Services[svc].Image; !strings.HasPrefix(img, prefix) {
			t.Errorf("services.%s.image = %q, want %s*", svc, img, prefix)
		}
	}
}

func TestComposeDependencies(t *testing.T) {
	f := loadCompose(t)
	deps := map[string]map[string]string{}
	for name, s := range f.Services {
		deps[name] = dependsOn(t, name, s)
		for d, cond := range deps[name] {
			target, ok := f.Services[d]
			if !ok {
				t.Errorf("services.%s.depends_on: no service %q", name, d)
				continue
			}
			switch cond {
			case "service_started":
			case "service_healthy":
				if target.Healthcheck == nil || target.Healthcheck.Disable || target.Healthcheck.Test.IsZero() {
					t.Errorf("services.%s waits for %s to be healthy, but %s has no healthcheck", name, d, d)
				}
			case "service_completed_successfully":
				if target.Restart != "" && target.Restart != "no" {
					t.Errorf("services.%s waits for %s to complete, but %s has restart %q", name, d, d, target.Restart)
				}
			default:
				t.Errorf("services.%s.depends_on.%s: unknown condition %q", name, d, cond)
			}
		}
	}

	// No cycle: a depth-first search that finds a service on its own path.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string)
	visit = func(n string) {
		switch state[n] {
		case onPath:
			i := slices.Index(path, n)
			t.Errorf("depends_on cycle: %s -> %s", strings.Join(path[i:], " -> "), n)
			return
		case done:
			return
		}
		state[n] = onPath
		path = append(path, n)
		ds := make([]string, 0, len(deps[n]))
		for d := range deps[n] {
			ds = append(ds, d)
		}
		slices.Sort(ds)
		for _, d := range ds {
			visit(d)
		}
		path = path[:len(path)-1]
		state[n] = done
	}
	names := make([]string, 0, len(deps))
	for n := range deps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		visit(n)
	}

	for _, want := range []struct{ from, to, cond string }{
		{svcWorker, svcTemporal, "service_healthy"},
		{svcWorker, svcSetup, "service_completed_successfully"},
		{svcWorker, svcPostgres, "service_healthy"},
		{svcSetup, svcTemporal, "service_healthy"},
		{svcTemporal, svcPostgres, "service_healthy"},
		{svcTemporal, svcSchema, "service_completed_successfully"},
		{svcSchema, svcPostgres, "service_healthy"},
		{svcNamespace, svcTemporal, "service_healthy"},
		{svcSetup, svcNamespace, "service_completed_successfully"},
		{svcUI, svcTemporal, "service_healthy"},
	} {
		if got := deps[want.from][want.to]; got != want.cond {
			t.Errorf("services.%s.depends_on.%s: condition %q, want %q", want.from, want.to, got, want.cond)
		}
	}
	if r := f.Services[svcWorker].Restart; r != "unless-stopped" && r != "always" {
		t.Errorf("services.%s.restart = %q, want unless-stopped", svcWorker, r)
	}
}

// TestComposeTemporalSetup: the server runs from temporalio/server, on a schema that
// the admin tools image's temporal-sql-tool sets up for both of Temporal's PostgreSQL
// databases, never from the deprecated auto-setup image; the schema job uses the
// server's release, and the namespace job registers the namespace the worker uses.
func TestComposeTemporalSetup(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		if strings.Contains(s.Image, "auto-setup") {
			t.Errorf("services.%s uses the deprecated %s", name, s.Image)
		}
	}
	_, serverTag, _ := splitImage(f.Services[svcTemporal].Image)
	for _, job := range []string{svcSchema, svcNamespace} {
		s := f.Services[job]
		if _, tag, _ := splitImage(s.Image); !strings.HasPrefix(tag, serverTag+"-") && tag != serverTag {
			t.Errorf("services.%s.image %q: want the admin tools of the server's release %s", job, s.Image, serverTag)
		}
		if s.Restart != "no" {
			t.Errorf("services.%s.restart = %q, want \"no\" (a one-shot job)", job, s.Restart)
		}
	}

	schema := f.Services[svcSchema]
	e := env(t, svcSchema, schema)
	server := env(t, svcTemporal, f.Services[svcTemporal])
	for k, want := range map[string]string{"SQL_PLUGIN": server["DB"], "SQL_HOST": server["POSTGRES_SEEDS"], "SQL_PORT": server["DB_PORT"], "SQL_USER": server["POSTGRES_USER"], "SQL_PASSWORD": server["POSTGRES_PWD"]} {
		if e[k] != want || want == "" {
			t.Errorf("services.%s.environment.%s = %q, want the server's %q", svcSchema, k, e[k], want)
		}
	}
	if server["DB"] != "postgres12" {
		t.Errorf("services.%s.environment.DB = %q, want postgres12", svcTemporal, server["DB"])
	}
	script := strings.Join(append(strs(t, schema.Entrypoint, "entrypoint"), strs(t, schema.Command, "command")...), " ")
	for _, want := range []string{
		"temporal-sql-tool", "create", "already exists", "setup-schema -v 0.0", "update-schema -d",
		"for db in temporal temporal_visibility", "/etc/temporal/schema/postgresql/v12",
		"temporal/versioned", "visibility/versioned", "set -eu",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("services.%s: the script lacks %q:\n%s", svcSchema, want, script)
		}
	}
	if regexp.MustCompile(`(^|[^$])\$[A-Za-z_(]`).MatchString(script) || !strings.Contains(script, "$$db") {
		t.Errorf("services.%s: shell variables must be written $$VAR, or compose substitutes them", svcSchema)
	}

	worker := env(t, svcWorker, f.Services[svcWorker])
	ns := f.Services[svcNamespace]
	nsScript := strings.Join(append(strs(t, ns.Entrypoint, "entrypoint"), strs(t, ns.Command, "command")...), " ")
	if regexp.MustCompile(`(^|[^$])\$[A-Za-z_(]`).MatchString(nsScript) {
		t.Errorf("services.%s: shell variables must be written $$VAR, or compose substitutes them", svcNamespace)
	}
	for _, want := range []string{
		"temporal operator namespace describe --namespace " + worker["TOKENWARDEN_TEMPORAL_NAMESPACE"],
		"temporal operator namespace create --namespace " + worker["TOKENWARDEN_TEMPORAL_NAMESPACE"],
		"--retention",
	} {
		if !strings.Contains(nsScript, want) {
			t.Errorf("services.%s: the script lacks %q", svcNamespace, want)
		}
	}
	if env(t, svcNamespace, ns)["TEMPORAL_ADDRESS"] != worker["TOKENWARDEN_TEMPORAL_ADDRESS"] {
		t.Errorf("services.%s talks to %q, the worker to %q", svcNamespace, env(t, svcNamespace, ns)["TEMPORAL_ADDRESS"], worker["TOKENWARDEN_TEMPORAL_ADDRESS"])
	}
}

func TestComposePortsOnLocalhost(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for _, p := range ports(t, name, s) {
			if p.hostIP != "127.0.0.1" {
				t.Errorf("services.%s publishes %s on %q: bind it to 127.0.0.1 (put an authenticating proxy in front to expose it)",
					name, p.containerPort, p.hostIP)
			}
		}
	}
	for svc, port := range map[string]string{svcUI: "8080", svcWorker: "8234"} {
		if !slices.Contains(ports(t, svc, f.Services[svc]), published{"127.0.0.1", port, port}) {
			t.Errorf("services.%s: want port %s published as 127.0.0.1:%s:%s", svc, port, port, port)
		}
	}
	if ps := ports(t, svcPostgres, f.Services[svcPostgres]); len(ps) != 0 {
		t.Errorf("services.%s publishes %v: the database needs no port on the host", svcPostgres, ps)
	}
}

func variableNames(t *testing.T, spec any) []string {
	t.Helper()
	names, err := config.VariableNames(spec)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestComposeWorkerVariables fails when a TOKENWARDEN_* variable set for the worker or
// the starter is not one the program reads (a typo, or a renamed field in
// internal/config), and checks that the pieces that must agree do.
func TestComposeWorkerVariables(t *testing.T) {
	f := loadCompose(t)
	known := map[string][]string{
		svcWorker: variableNames(t, &config.Worker{}),
		svcSetup:  variableNames(t, &config.Starter{}),
	}
	for svc, names := range known {
		for k := range env(t, svc, f.Services[svc]) {
			if strings.HasPrefix(k, config.Prefix+"_") && !slices.Contains(names, k) {
				t.Errorf("services.%s.environment: %s is not a variable the program reads (it reads %s)", svc, k, strings.Join(names, ", "))
			}
		}
	}

	w := env(t, svcWorker, f.Services[svcWorker])
	want := map[string]string{
		"TOKENWARDEN_TEMPORAL_ADDRESS":   "temporal:7233",
		"TOKENWARDEN_STORE":              "postgres",
		"TOKENWARDEN_DATA_DIR":           "/data",
		"TOKENWARDEN_HTTP_ADDR":          "0.0.0.0:8234",
		"TOKENWARDEN_CODEC_CORS_ORIGINS": "http://localhost:8080",
	}
	for k, v := range want {
		if w[k] != v {
			t.Errorf("services.%s.environment.%s = %q, want %q", svcWorker, k, w[k], v)
		}
	}
	// On 0.0.0.0 the codec endpoint is beyond loopback, where the worker refuses to start
	// without a bearer token: required here, so that compose itself names what is missing.
	if tok := w["TOKENWARDEN_CODEC_BEARER_TOKEN"]; !strings.HasPrefix(tok, "${TOKENWARDEN_CODEC_BEARER_TOKEN:?") {
		t.Errorf("services.%s.environment.TOKENWARDEN_CODEC_BEARER_TOKEN = %q, want ${TOKENWARDEN_CODEC_BEARER_TOKEN:?message}", svcWorker, tok)
	}
	if !strings.HasPrefix(w["TOKENWARDEN_POSTGRES_DSN"], "postgres://tokenwarden:") ||
		!strings.Contains(w["TOKENWARDEN_POSTGRES_DSN"], "@postgresql:5432/tokenwarden") {
		t.Errorf("services.%s.environment.TOKENWARDEN_POSTGRES_DSN = %q, want the tokenwarden role and database on postgresql:5432",
			svcWorker, w["TOKENWARDEN_POSTGRES_DSN"])
	}

	// The key file is a mounted secret, in both containers that need it.
	for _, svc := range []string{svcWorker, svcSetup} {
		e := env(t, svc, f.Services[svc])
		targets := secretTargets(t, svc, f.Services[svc])
		if e["TOKENWARDEN_KEY_FILE"] == "" || targets["tokenwarden_keys"] != e["TOKENWARDEN_KEY_FILE"] {
			t.Errorf("services.%s: TOKENWARDEN_KEY_FILE = %q, but the tokenwarden_keys secret is mounted at %q",
				svc, e["TOKENWARDEN_KEY_FILE"], targets["tokenwarden_keys"])
		}
	}
	if s, ok := f.Secrets["tokenwarden_keys"]; !ok || s.File == "" {
		t.Errorf("secrets.tokenwarden_keys: want a file secret")
	}

	// The Web UI: the same frontend, and the codec endpoint as the browser reaches it.
	ui := env(t, svcUI, f.Services[svcUI])
	if ui["TEMPORAL_ADDRESS"] != w["TOKENWARDEN_TEMPORAL_ADDRESS"] {
		t.Errorf("temporal-ui TEMPORAL_ADDRESS %q != worker TOKENWARDEN_TEMPORAL_ADDRESS %q", ui["TEMPORAL_ADDRESS"], w["TOKENWARDEN_TEMPORAL_ADDRESS"])
	}
	if want := "http://localhost:8234" + codec.PathPrefix; ui["TEMPORAL_CODEC_ENDPOINT"] != want {
		t.Errorf("temporal-ui TEMPORAL_CODEC_ENDPOINT = %q, want %q", ui["TEMPORAL_CODEC_ENDPOINT"], want)
	}

	// The worker's healthcheck asks the readiness endpoint the worker serves: dependents
	// start once it can reach Temporal, the store and its key file.
	ready := workerHealthPath(t, "ReadyzPath")
	if hc := f.Services[svcWorker].Healthcheck; hc == nil || !strings.Contains(strings.Join(strs(t, hc.Test, "healthcheck"), " "), "GET "+ready+" ") ||
		!strings.Contains(strings.Join(strs(t, hc.Test, "healthcheck"), " "), "/8234") {
		t.Errorf("services.%s.healthcheck: want a GET of %s on port 8234", svcWorker, ready)
	}

	// The image's own defaults are real variables too.
	for _, k := range dockerfileEnv(t) {
		if strings.HasPrefix(k, config.Prefix+"_") && !slices.Contains(known[svcWorker], k) {
			t.Errorf("Dockerfile ENV %s is not a variable the worker reads", k)
		}
	}
}

// secretName matches variables that hold secrets.
var secretName = regexp.MustCompile(`(PASSWORD|PWD|SECRETS?|BEARER_TOKEN|_DSN|WEBHOOK_URL|NOTIFY_TARGETS)$`)

// ref is one ${NAME}, ${NAME:?msg}, ${NAME-default}... interpolation.
var ref = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}`)

// checkSecretValue accepts a value that is exactly one ${VAR} reference, without a
// default (an optional one may default to empty), or, for a DSN, a URL whose password
// is such a reference.
func checkSecretValue(name, value string) error {
	if strings.HasSuffix(name, "_DSN") {
		placeholders := map[string]string{}
		i := 0
		masked := ref.ReplaceAllStringFunc(value, func(r string) string {
			i++
			p := "ref" + strconv.Itoa(i)
			placeholders[p] = r
			return p
		})
		u, err := url.Parse(masked)
		if err != nil {
			return fmt.Errorf("not a URL: %v", err)
		}
		pw, ok := u.User.Password()
		if !ok || placeholders[pw] == "" {
			return fmt.Errorf("the password in the URL must be a ${VAR} reference")
		}
		return checkRef(placeholders[pw], true)
	}
	if !ref.MatchString(value) || ref.FindString(value) != value {
		return fmt.Errorf("must be exactly one ${VAR} reference, not a literal")
	}
	return checkRef(value, false)
}

func checkRef(r string, required bool) error {
	m := ref.FindStringSubmatch(r)
	op, arg := m[2], m[3]
	switch {
	case strings.HasSuffix(op, "?"):
		return nil
	case required:
		return fmt.Errorf("%s: a required secret needs ${%s:?message}", r, m[1])
	case strings.HasSuffix(op, "-") && arg != "":
		return fmt.Errorf("%s: a default would be a committed secret", r)
	case strings.HasSuffix(op, "+"):
		return fmt.Errorf("%s: ${VAR:+...} writes its alternative value into the file", r)
	}
	return nil
}

func TestComposeSecretsAreReferences(t *testing.T) {
	f := loadCompose(t)
	referenced := map[string]bool{}
	for name, s := range f.Services {
		for k, v := range env(t, name, s) {
			for _, m := range ref.FindAllStringSubmatch(v, -1) {
				referenced[m[1]] = true
			}
			if secretName.MatchString(k) {
				if err := checkSecretValue(k, v); err != nil {
					t.Errorf("services.%s.environment.%s: %v", name, k, err)
				}
			}
		}
	}
	// The database passwords are required, not defaulted to empty.
	pg := env(t, svcPostgres, f.Services[svcPostgres])
	for _, k := range []string{"POSTGRES_PASSWORD", "TOKENSTORE_DB_PASSWORD"} {
		if !strings.Contains(pg[k], "${"+k+":?") {
			t.Errorf("services.%s.environment.%s = %q, want ${%s:?message}", svcPostgres, k, pg[k], k)
		}
	}

	// .env.example documents every variable the compose file reads, with no secret in it.
	documented := map[string]string{}
	for _, line := range strings.Split(readFile(t, ".env.example"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		documented[k] = v
	}
	for k := range referenced {
		if _, ok := documented[k]; !ok {
			t.Errorf("docker-compose.yml reads ${%s}, which .env.example does not list", k)
		}
	}
	for k, v := range documented {
		if secretName.MatchString(k) && v != "" {
			t.Errorf(".env.example: %s has a value; leave secrets empty there", k)
		}
		if !referenced[k] {
			t.Errorf(".env.example: %s is not used by docker-compose.yml", k)
		}
	}
}

func TestComposeMountsExist(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for _, n := range s.Volumes {
			if n.Kind != yaml.ScalarNode {
				continue
			}
			src, _, _ := strings.Cut(n.Value, ":")
			if !strings.HasPrefix(src, ".") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("services.%s.volumes: %s: %v", name, src, err)
			}
		}
	}
	sql := readFile(t, "deploy/postgres/10-tokenwarden.sql")
	for _, want := range []string{`\getenv tokenstore_password TOKENSTORE_DB_PASSWORD`, "CREATE ROLE tokenwarden", "CREATE DATABASE tokenwarden OWNER tokenwarden"} {
		if !strings.Contains(sql, want) {
			t.Errorf("deploy/postgres/10-tokenwarden.sql lacks %q", want)
		}
	}
}

// dockerfile is the Dockerfile split into instructions (continuation lines joined,
// comments dropped).
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	var cur strings.Builder
	for _, line := range strings.Split(readFile(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		ins, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(ins), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func dockerfileEnv(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, in := range dockerfile(t) {
		if in[0] != "ENV" {
			continue
		}
		for _, f := range strings.Fields(in[1]) {
			if k, _, ok := strings.Cut(f, "="); ok {
				names = append(names, k)
			}
		}
	}
	return names
}

func goVersion(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, "go.mod"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// workerHealthPath reads the value of the constant name (LivezPath, ReadyzPath) from
// worker/health.go: the worker is a main package, which this test cannot import.
func workerHealthPath(t *testing.T, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + name + ` = "(/[a-z]+)"`).FindStringSubmatch(readFile(t, "worker/health.go"))
	if m == nil {
		t.Fatalf("worker/health.go defines no %s", name)
	}
	return m[1]
}

// TestDockerfileHealthcheck: the image's own healthcheck asks the worker's liveness
// endpoint on the port of the image's TOKENWARDEN_HTTP_ADDR.
func TestDockerfileHealthcheck(t *testing.T) {
	live := workerHealthPath(t, "LivezPath")
	var hc []string
	for _, in := range dockerfile(t) {
		if in[0] == "HEALTHCHECK" {
			hc = append(hc, in[1])
		}
	}
	if len(hc) != 1 {
		t.Fatalf("Dockerfile: %d HEALTHCHECK instructions, want 1", len(hc))
	}
	if !strings.Contains(hc[0], "GET "+live+" ") || !strings.Contains(hc[0], "/dev/tcp/127.0.0.1/8234") || !strings.Contains(hc[0], "CMD [") {
		t.Errorf("Dockerfile HEALTHCHECK %q: want an exec-form GET of %s on 127.0.0.1:8234", hc[0], live)
	}
	if !slices.Contains(dockerfileEnv(t), config.Prefix+"_HTTP_ADDR") || !strings.Contains(readFile(t, "Dockerfile"), config.Prefix+"_HTTP_ADDR=0.0.0.0:8234") {
		t.Errorf("the healthcheck's port must be the image's %s_HTTP_ADDR port, 8234", config.Prefix)
	}
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	stages := map[string]bool{}
	var froms []string
	var built []string
	var user, entrypoint, expose string
	var sawBuild bool
	for _, in := range ins {
		switch in[0] {
		case "FROM":
			fields := strings.Fields(in[1])
			img := fields[0]
			froms = append(froms, img)
			if len(fields) >= 3 && strings.EqualFold(fields[1], "AS") {
				stages[fields[2]] = true
			}
			user = "" // USER is per stage
		case "RUN":
			if !strings.Contains(in[1], "go build") {
				continue
			}
			sawBuild = true
			for _, want := range []string{"-trimpath"} {
				if !strings.Contains(in[1], want) {
					t.Errorf("Dockerfile: go build without %s", want)
				}
			}
			for _, f := range strings.Fields(in[1]) {
				if strings.HasPrefix(f, "./") {
					built = append(built, strings.TrimSuffix(strings.TrimPrefix(f, "./"), "/"))
				}
			}
		case "USER":
			user = in[1]
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "EXPOSE":
			expose = in[1]
		}
	}
	if !sawBuild {
		t.Fatal("Dockerfile: no `go build`")
	}
	if !strings.Contains(readFile(t, "Dockerfile"), "CGO_ENABLED=0") {
		t.Error("Dockerfile: build with CGO_ENABLED=0 (static binaries for the runtime image)")
	}

	// Base images pinned; the Go image is the version go.mod names.
	gov := goVersion(t)
	sawGo := false
	for _, img := range froms {
		if stages[img] {
			continue // FROM an earlier stage
		}
		if err := checkPinned(img); err != nil {
			t.Errorf("Dockerfile FROM: %v", err)
		}
		if repo, tag, _ := splitImage(img); repo == "golang" || repo == "docker.io/library/golang" {
			sawGo = true
			if tag != gov && !strings.HasPrefix(tag, gov+"-") {
				t.Errorf("Dockerfile FROM %s: go.mod says go %s", img, gov)
			}
		}
	}
	if !sawGo {
		t.Error("Dockerfile: no golang build stage")
	}

	// The build targets are main packages of this module.
	if len(built) == 0 {
		t.Error("Dockerfile: go build names no ./package")
	}
	for _, dir := range built {
		if !isMainPackage(t, filepath.Join(root, dir)) {
			t.Errorf("Dockerfile builds ./%s, which is not a main package", dir)
		}
	}
	for _, want := range []string{"worker", "starter"} {
		if !slices.Contains(built, want) {
			t.Errorf("Dockerfile does not build ./%s", want)
		}
	}
	if !strings.Contains(entrypoint, "/worker") {
		t.Errorf("Dockerfile ENTRYPOINT %s: want the worker", entrypoint)
	}

	// The runtime stage runs as a user other than root.
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("Dockerfile: the final stage's USER is %q; run as a non-root user", user)
	}
	if !strings.Contains(expose, "8234") {
		t.Errorf("Dockerfile EXPOSE %q: want 8234 (the codec endpoint)", expose)
	}
	if !slices.Contains(dockerfileEnv(t), "TOKENWARDEN_DATA_DIR") {
		t.Error("Dockerfile: set TOKENWARDEN_DATA_DIR=/data")
	}
}

func isMainPackage(t *testing.T, dir string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^package main\b`).Match(b) {
			return true
		}
	}
	return false
}

func TestDockerignoreKeepsSecretsOut(t *testing.T) {
	lines := strings.Split(readFile(t, ".dockerignore"), "\n")
	for _, want := range []string{".git", ".env", "secrets", "data"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
