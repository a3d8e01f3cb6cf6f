package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenwarden/tokenwarden/internal/store"
)

// The test PostgreSQL server, as internal/store's own tests find it: on CI one listens
// on 127.0.0.1:5432 with trust authentication; elsewhere PostgresDSNEnv names any
// database the tests may create schemas in, or PostgresSkipEnv=skip skips the tests
// deliberately. An unreachable server is a failure, not a skip: silently skipping
// would let CI pass without ever testing the store the production deployment uses.
const (
	PostgresDSNEnv     = "TOKENWARDEN_TEST_POSTGRES_DSN"
	PostgresSkipEnv    = "TOKENWARDEN_TEST_POSTGRES"
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// PostgresSchema creates a private, randomly named schema on the test server, dropped
// with everything in it when t ends, and returns a DSN whose search_path points at it
// (the store creates its tables in the first schema of search_path). Tests that run a
// program against PostgreSQL hand it the DSN as TOKENWARDEN_POSTGRES_DSN.
func PostgresSchema(t testing.TB) (schema, dsn string) {
	t.Helper()
	if os.Getenv(PostgresSkipEnv) == "skip" {
		t.Skipf("%s=skip: PostgreSQL tests skipped", PostgresSkipEnv)
	}
	base := os.Getenv(PostgresDSNEnv)
	if base == "" {
		base = DefaultPostgresDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err == nil {
		err = conn.Ping(ctx)
	}
	if err != nil {
		t.Fatalf("cannot reach the test PostgreSQL at %s: %v\n"+
			"This test needs a PostgreSQL server. Start one, or set %s to the DSN of a database "+
			"where the tests may create and drop schemas (default %q), or set %s=skip to skip it explicitly.",
			store.DescribePostgresDSN(base), err, PostgresDSNEnv, DefaultPostgresDSN, PostgresSkipEnv)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema = "tw_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		// A fresh connection: the test's context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	return schema, withSearchPath(t, base, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN; pgx sends unknown
// parameters to the server as run-time settings.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// url's error quotes the DSN, which may hold a password.
		t.Fatalf("%s is not a valid URL", PostgresDSNEnv)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
