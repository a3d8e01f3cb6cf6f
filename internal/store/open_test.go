package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// Open picks the backend TOKENWARDEN_STORE names and describes it without the DSN.
func TestOpen(t *testing.T) {
	ring := newRing(t, "k1", map[string][]byte{"k1": randomKey(t)})
	ctx := t.Context()

	path := filepath.Join(t.TempDir(), "tokens.db")
	s, desc, err := store.Open(ctx, store.BackendSQLite, path, "", ring)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.SQLite); !ok || desc != path {
		t.Errorf("Open(sqlite) = %T, %q; want *store.SQLite, %q", s, desc, path)
	}
	if _, err := s.Put(ctx, secretRecord("c1")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, dsn := newTestPostgres(t).newSchema(t)
	s, desc, err = store.Open(ctx, store.BackendPostgres, path, dsn, ring)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.Postgres); !ok || desc != store.DescribePostgresDSN(dsn) {
		t.Errorf("Open(postgres) = %T, %q; want *store.Postgres, %q", s, desc, store.DescribePostgresDSN(dsn))
	}
	// The PostgreSQL store, not the SQLite file at path.
	if _, err := s.Get(ctx, "c1"); err == nil {
		t.Error("Open(postgres) reads the SQLite file's record")
	}
	s.Close()

	if s, _, err := store.Open(ctx, "mysql", path, dsn, ring); err == nil || s != nil || !strings.Contains(err.Error(), `unknown backend "mysql"`) {
		t.Errorf("Open(mysql) = %v, %v", s, err)
	}

	const pw = "hunter2-SECRET"
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, desc, err = store.Open(octx, store.BackendPostgres, "", "postgres://tw:"+pw+"@127.0.0.1:1/tokens?sslmode=disable&connect_timeout=2", ring)
	if err == nil || s != nil {
		t.Fatalf("Open of an unreachable server = %v, %v", s, err)
	}
	if desc != "postgres 127.0.0.1:1/tokens" || strings.Contains(err.Error(), pw) {
		t.Errorf("Open of an unreachable server: desc %q, error %v; want the server named and no password", desc, err)
	}
}
