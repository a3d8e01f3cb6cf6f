package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// TestHealthEndpoints: /livez answers while the process serves; /readyz answers 200
// only when Temporal, the store and the key ring all pass, and 503 naming the check
// that failed, without the credential's ID or any secret.
func TestHealthEndpoints(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "tokens.db")
	ring := keyringtest.Random(t, "k1")
	tokens, err := store.OpenSQLite(ctx, dbPath, ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	const secret = "refresh-secret-4e1f"
	if _, err := tokens.Put(ctx, store.Record{ID: "cred-health", Provider: "oauth2", Secrets: store.Secrets{RefreshToken: secret}}); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.DiscardHandler)
	var temporalErr error
	r := readiness{
		temporal:  func(context.Context) error { return temporalErr },
		namespace: "default",
		store:     tokens,
		keyIDs:    ring.IDs(),
		logger:    logger,
	}
	serve := func(path string) (int, string) {
		srv := &codecServer{srv: &http.Server{Handler: http.NotFoundHandler()}}
		mountHealth(srv, r)
		rec := httptest.NewRecorder()
		srv.srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	if code, body := serve(LivezPath); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	ready := func() (int, map[string]string, string) {
		t.Helper()
		code, body := serve(ReadyzPath)
		var ans struct {
			Ready  bool
			Checks []check
		}
		if err := json.Unmarshal([]byte(body), &ans); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		failed := map[string]string{}
		for _, c := range ans.Checks {
			if !c.OK {
				failed[c.Name] = c.Error
			}
		}
		if ans.Ready != (code == 200) || len(ans.Checks) != 3 {
			t.Errorf("/readyz %d with %s", code, body)
		}
		return code, failed, body
	}
	if code, failed, body := ready(); code != 200 || len(failed) != 0 {
		t.Errorf("/readyz with everything up: %d %s", code, body)
	}

	temporalErr = errors.New("connection refused")
	if code, failed, _ := ready(); code != 503 || !strings.Contains(failed["temporal"], "connection refused") || len(failed) != 1 {
		t.Errorf("/readyz with Temporal down: %d %v", code, failed)
	}
	temporalErr = nil

	// A worker started with another key file: the store answers, its rows do not open.
	other, err := store.OpenSQLite(ctx, dbPath, keyringtest.Random(t, "k2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r.store, r.keyIDs = other, []string{"k2"}
	code, failed, body := ready()
	if code != 503 || !strings.Contains(failed["keyring"], "k1") || failed["store"] != "" {
		t.Errorf("/readyz with the wrong key file: %d %v", code, failed)
	}
	// The same key ID with other key bytes: the ID matches, decryption fails.
	wrongBytes := keyringtest.Random(t, "k1")
	other2, err := store.OpenSQLite(ctx, dbPath, wrongBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other2.Close()
	r.store, r.keyIDs = other2, wrongBytes.IDs()
	code, failed, body2 := ready()
	if code != 503 || failed["keyring"] == "" {
		t.Errorf("/readyz with a wrong key under the right ID: %d %v", code, failed)
	}
	for _, b := range []string{body, body2} {
		if strings.Contains(b, secret) || strings.Contains(b, "cred-health") {
			t.Errorf("/readyz shows a secret or a credential ID: %s", b)
		}
	}

	// A broken store: closed.
	tokens.Close()
	r.store, r.keyIDs = tokens, ring.IDs()
	if code, failed, _ := ready(); code != 503 || failed["store"] == "" {
		t.Errorf("/readyz with the store closed: %d %v", code, failed)
	}
}
