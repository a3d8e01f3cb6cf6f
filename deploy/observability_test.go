package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Grafana dashboard and the Prometheus rules (deploy/grafana, deploy/prometheus)
// are checked against deploy/testdata/worker-metrics.txt, the sample names a running
// worker exposed (written and kept honest by internal/e2e TestWorkerMetricsExposition):
// a panel or rule on a misspelt or renamed series would otherwise show no data, or
// never fire, without anyone noticing.

const (
	dashboardFile = "grafana/tokenwarden.json"
	rulesFile     = "prometheus/tokenwarden-rules.yml"
	exposedFile   = "testdata/worker-metrics.txt"
)

func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, l := range strings.Split(readFile(t, "deploy/"+exposedFile), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			names[l] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("%s lists only %d names", exposedFile, len(names))
	}
	return names
}

// promqlNonMetric are the words of PromQL that are not series names.
var promqlNonMetric = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promqlMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlVariable = regexp.MustCompile(`\$\{?\w+\}?`)
	promqlIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
)

// metricNames returns the series names an expression selects: identifiers that are not
// functions, keywords, label names, strings, durations or Grafana variables. It is no
// PromQL parser, but the expressions here are plain, and TestMetricNamesExtractor pins
// its behaviour.
func metricNames(expr string) []string {
	s := promqlString.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, "{}")
	s = promqlRange.ReplaceAllString(s, "[]")
	s = promqlGrouping.ReplaceAllString(s, " ")
	s = promqlVariable.ReplaceAllString(s, " ")
	var names []string
	for _, m := range promqlIdent.FindAllString(s, -1) {
		if strings.HasSuffix(m, "(") || promqlNonMetric[strings.ToLower(m)] {
			continue // a function call, or a keyword
		}
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	return names
}

func TestMetricNamesExtractor(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.95, sum by (le, provider) (rate(tokenwarden_refresh_duration_seconds_bucket{provider=~"a|b"}[$__rate_interval])))`:                    {"tokenwarden_refresh_duration_seconds_bucket"},
		`(min(tokenwarden_earliest_expiry_seconds) > 0) < 600 and on () ((sum(increase(tokenwarden_refreshes_total{outcome="committed"}[30m])) or vector(0)) == 0)`: {"tokenwarden_earliest_expiry_seconds", "tokenwarden_refreshes_total"},
		`time() - max by (source) (tokenwarden_last_collect_timestamp_seconds)`:                                                                                     {"tokenwarden_last_collect_timestamp_seconds"},
		`go_goroutines / on (instance) group_left (version) go_build_info`:                                                                                          {"go_goroutines", "go_build_info"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// balanced reports whether expr's brackets pair up, outside strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range promqlString.ReplaceAllString(expr, `""`) {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func TestGrafanaDashboard(t *testing.T) {
	var d grafanaDashboard
	if err := json.Unmarshal([]byte(readFile(t, "deploy/"+dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard needs a title and a uid (stable links): %q %q", d.Title, d.UID)
	}
	if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("the dashboard must pick its Prometheus data source through a $datasource variable, got %+v", d.Templating.List)
	}
	exposed := exposedNames(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.GridPos.W < 1 || p.GridPos.W > 24 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("panel %q: grid position %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the $datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if refs[q.RefID] || q.RefID == "" {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if !balanced(q.Expr) {
				t.Errorf("panel %q: unbalanced brackets in %s", p.Title, q.Expr)
			}
			names := metricNames(q.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: %s selects no series", p.Title, q.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !exposed[n] {
					t.Errorf("panel %q queries %s, which the worker does not expose (%s)", p.Title, n, exposedFile)
				}
			}
		}
	}
	// What the dashboard is for: states, refreshes, failures, expiries, provider latency.
	for _, n := range []string{"tokenwarden_credentials", "tokenwarden_refreshes_total", "tokenwarden_earliest_expiry_seconds", "tokenwarden_refresh_duration_seconds_bucket", "temporal_request_total"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

func TestPrometheusRules(t *testing.T) {
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, "deploy/"+rulesFile)))
	dec.KnownFields(true) // a misspelt key would silently drop a setting
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	exposed := exposedNames(t)
	alerts := map[string]string{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert: (recording rules are not expected here): %s", g.Name, r.Expr)
				continue
			}
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = r.Expr
			if !promDuration.MatchString(r.For) {
				t.Errorf("alert %s: for %q is not a Prometheus duration", r.Alert, r.For)
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("alert %s: severity %q, want page or ticket", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a summary and a description", r.Alert)
			}
			if !balanced(r.Expr) {
				t.Errorf("alert %s: unbalanced brackets in %s", r.Alert, r.Expr)
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("alert %s selects no series: %s", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !exposed[n] {
					t.Errorf("alert %s uses %s, which the worker does not expose (%s)", r.Alert, n, exposedFile)
				}
			}
		}
	}
	// The alerts the issue asks for, and what each must look at.
	for alert, wants := range map[string][]string{
		"TokenwardenCredentialNeedsReauth":             {`tokenwarden_credentials{state="NEEDS_REAUTH"}`},
		"TokenwardenCredentialExpired":                 {`tokenwarden_credentials{state="EXPIRED"}`},
		"TokenwardenRefreshFailureRatio":               {"tokenwarden_refreshes_total{outcome=~", "/ sum(rate(tokenwarden_refreshes_total["},
		"TokenwardenAccessTokenExpiringWithoutRefresh": {"tokenwarden_earliest_expiry_seconds", `tokenwarden_refreshes_total{outcome="committed"}`, "or vector(0)"},
	} {
		expr, ok := alerts[alert]
		if !ok {
			t.Errorf("alert %s missing", alert)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(expr, w) {
				t.Errorf("alert %s: %q not in %s", alert, w, expr)
			}
		}
	}
}
