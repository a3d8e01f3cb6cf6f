package store

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// Backends Open knows, as TOKENWARDEN_STORE names them (config.StoreSQLite and
// config.StorePostgres; package config cannot import this one).
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Open opens the token store of the worker's configuration: the SQLite file at
// sqlitePath, or the PostgreSQL database of postgresDSN, sealed with ring. Every
// program that opens the store (the worker, its key commands, `starter apikey`) goes
// through it, so that they cannot disagree about which store a configuration means.
//
// desc names the store for messages and logs: the SQLite file, or the PostgreSQL host
// and database. It never holds the DSN, which may carry a password, and neither does
// the error.
func Open(ctx context.Context, backend, sqlitePath, postgresDSN string, ring *keyring.Keyring) (s Store, desc string, err error) {
	return OpenClock(ctx, backend, sqlitePath, postgresDSN, ring, nil)
}

// OpenClock is Open with the store's clock: UpdatedAt for both stores, and the lease
// times of the SQLite store (PostgreSQL times leases on its server's clock). Nil is
// time.Now; the worker passes another one only in its faultinject build
// (activities.FaultClock).
func OpenClock(ctx context.Context, backend, sqlitePath, postgresDSN string, ring *keyring.Keyring, now func() time.Time) (s Store, desc string, err error) {
	switch backend {
	case BackendPostgres:
		desc = DescribePostgresDSN(postgresDSN)
		pg, err := OpenPostgres(ctx, postgresDSN, ring, now)
		if err != nil {
			return nil, desc, err
		}
		return pg, desc, nil // not (pg, desc, err): a nil *Postgres in a Store is not nil
	case BackendSQLite:
		lite, err := OpenSQLite(ctx, sqlitePath, ring, now)
		if err != nil {
			return nil, sqlitePath, err
		}
		return lite, sqlitePath, nil
	default:
		return nil, "", fmt.Errorf("token store: unknown backend %q (want %s or %s)", backend, BackendSQLite, BackendPostgres)
	}
}
