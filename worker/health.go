package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Health endpoints on the worker's HTTP endpoint, for orchestrators (compose's and the
// Dockerfile's healthchecks, Kubernetes probes). Like /metrics they need no bearer
// token and say nothing secret.
const (
	// LivezPath answers 200 while the process serves HTTP: restart it when it does not.
	LivezPath = "/livez"
	// ReadyzPath answers 200 when the worker can do its job: Temporal answers for the
	// namespace, the token store answers, and the key ring opens a stored record;
	// otherwise 503, naming the check that failed.
	ReadyzPath = "/readyz"
)

// readyTimeout bounds one /readyz: a probe that hangs tells an orchestrator less than
// one that fails.
const readyTimeout = 5 * time.Second

// describeNamespace asks Temporal for the worker's namespace, as /readyz does.
func describeNamespace(ws workflowservice.WorkflowServiceClient, namespace string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
		return err
	}
}

// readinessStore is the part of the token store /readyz uses: the records, and of
// store.KeyInventory only the records' key IDs.
type readinessStore interface {
	store.Reader
	KeyIDs(ctx context.Context) (map[string]int, error)
}

// readiness runs the checks of /readyz.
type readiness struct {
	temporal  func(context.Context) error // describeNamespace in the worker
	namespace string
	store     readinessStore
	keyIDs    []string // the key file's key IDs
	logger    *slog.Logger
}

// check is one line of /readyz's answer.
type check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// run performs every check, each given the same deadline, and reports them in order.
func (r readiness) run(ctx context.Context) []check {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return []check{
		checked("temporal", r.checkTemporal(ctx)),
		checked("store", r.checkStore(ctx)),
		checked("keyring", r.checkKeyring(ctx)),
	}
}

func checked(name string, err error) check {
	if err != nil {
		return check{Name: name, Error: err.Error()}
	}
	return check{Name: name, OK: true}
}

// checkTemporal asks the frontend about the worker's namespace: that proves the
// connection, the credentials (API key or client certificate) and the namespace.
func (r readiness) checkTemporal(ctx context.Context) error {
	if err := r.temporal(ctx); err != nil {
		return fmt.Errorf("describe namespace %q: %w", r.namespace, err)
	}
	return nil
}

// checkStore reads the key IDs the store's records are sealed under: a query that
// touches every row's metadata and decrypts nothing.
func (r readiness) checkStore(ctx context.Context) error {
	if _, err := r.store.KeyIDs(ctx); err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	return nil
}

// checkKeyring proves the key file opens the store's records: every key ID in use is
// in the key file, and one record (the first by ID) decrypts. A worker started with
// the wrong key file would otherwise look healthy until its first refresh.
func (r readiness) checkKeyring(ctx context.Context) error {
	used, err := r.store.KeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	var missing []string
	for id, n := range used {
		if n > 0 && !slices.Contains(r.keyIDs, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("records are sealed under key IDs the key file lacks: %s", strings.Join(missing, ", "))
	}
	recs, err := r.store.List(ctx)
	if err != nil {
		return fmt.Errorf("list the token store: %w", err)
	}
	for _, rec := range recs { // the first that still exists
		_, err := r.store.Get(ctx, rec.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // retired since the listing
		}
		if err != nil {
			// The answer goes to unauthenticated callers, and the store's error names the
			// credential: the details go to the log only.
			r.logger.Warn("readyz: a stored record does not open with the key file", "credential", rec.ID, "error", err)
			return errors.New("a stored record does not open with the key file (wrong key file, or a key's bytes changed under its ID); the worker's log names it")
		}
		return nil
	}
	return nil // an empty store has nothing to open
}

// mountHealth adds GET /livez and GET /readyz to the worker's HTTP endpoint before it
// serves.
func mountHealth(srv *codecServer, r readiness) {
	srv.route("GET "+LivezPath, http.HandlerFunc(serveLivez))
	srv.route("GET "+ReadyzPath, http.HandlerFunc(r.serveReadyz))
}

func serveLivez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// serveReadyz runs the checks and answers 200 if all pass, else 503; both list them.
func (r readiness) serveReadyz(w http.ResponseWriter, req *http.Request) {
	checks := r.run(req.Context())
	ready := true
	for _, c := range checks {
		if !c.OK {
			ready = false
			r.logger.Warn("not ready", "check", c.Name, "error", c.Error)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(struct {
		Ready  bool    `json:"ready"`
		Checks []check `json:"checks"`
	}{ready, checks})
}
