package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TouchLastUsed sets last_used_at to at if that is later; nothing else changes.
func (s *Postgres) TouchLastUsed(ctx context.Context, id string, at time.Time) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("postgres store: touch credential %q: %w", id, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tokenwarden_credentials SET last_used_at = greatest(last_used_at, $1) WHERE id = $2`, ns, id)
	if err != nil {
		return fmt.Errorf("postgres store: touch credential %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres store: touch credential %q: %w", id, ErrNotFound)
	}
	return nil
}

// CreateAPIKey inserts the key, its scopes and its authenticator in one transaction.
// The unique indexes decide between concurrent creators of one name.
func (s *Postgres) CreateAPIKey(ctx context.Context, key APIKey) (APIKey, error) {
	row, err := prepareAPIKey(key, s.ring, s.now)
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: create API key: %w", err)
	}
	k := row.key
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tokenwarden_api_keys (id, name, hash, created_at, mac_key_id, mac) VALUES ($1, $2, $3, $4, $5, $6)`,
			k.ID, k.Name, k.Hash, row.created, row.macKey, row.mac); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
				return ErrAPIKeyExists
			}
			return err
		}
		for _, cid := range k.CredentialIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO tokenwarden_api_key_scopes (key_id, credential_id) VALUES ($1, $2)`, k.ID, cid); err != nil {
				return fmt.Errorf("scope %q: %w", cid, err)
			}
		}
		return nil
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: create API key %q: %w", k.Name, err)
	}
	return k, nil
}

// postgresAPIKeySelect reads a key row with its scopes in one statement.
const postgresAPIKeySelect = `SELECT k.id, k.name, k.hash, k.created_at, k.revoked_at, k.last_used_at, k.mac_key_id, k.mac,
		coalesce((SELECT array_agg(credential_id ORDER BY credential_id) FROM tokenwarden_api_key_scopes WHERE key_id = k.id), '{}')
	FROM tokenwarden_api_keys k`

// pgQueryer is what readAPIKey needs of a pool or a transaction.
type pgQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readAPIKey reads a row and its scopes without checking its authenticator; forUpdate
// locks the key row for the rest of the transaction.
func (s *Postgres) readAPIKey(ctx context.Context, q pgQueryer, id string, forUpdate bool) (storedAPIKey, error) {
	query := postgresAPIKeySelect + ` WHERE k.id = $1`
	if forUpdate {
		query += ` FOR UPDATE OF k`
	}
	var scopes []string
	r, err := scanAPIKey(q.QueryRow(ctx, query, id), &scopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return storedAPIKey{}, ErrAPIKeyNotFound
	}
	if err != nil {
		return storedAPIKey{}, err
	}
	r.key.CredentialIDs = scopes
	return r, nil
}

// LookupAPIKey returns the key with the ID and its scopes, in one statement, once its
// row's authenticator checks out (ErrAPIKeyUnauthenticated otherwise).
func (s *Postgres) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: look up API key %q: %w", id, err)
	}
	r, err := s.readAPIKey(ctx, s.pool, id, false)
	if err == nil {
		var k APIKey
		if k, err = r.verified(auth); err == nil {
			return k, nil
		}
	}
	return APIKey{}, fmt.Errorf("postgres store: look up API key %q: %w", id, err)
}

// ListAPIKeys returns every key with its scopes, ordered by name in byte order. If any
// row fails its authenticator it returns no keys and an error that names each refused
// key (ErrAPIKeyUnauthenticated), as SQLite's does.
func (s *Postgres) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	rows, err := s.pool.Query(ctx, postgresAPIKeySelect+` ORDER BY k.name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	defer rows.Close()
	var stored []storedAPIKey
	for rows.Next() {
		var scopes []string
		r, err := scanAPIKey(rows, &scopes)
		if err != nil {
			return nil, fmt.Errorf("postgres store: list API keys: %w", err)
		}
		r.key.CredentialIDs = scopes
		stored = append(stored, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	keys, err := verifyAll(auth, stored)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey sets revoked_at unless the key is already revoked, and authenticates
// the row with it, under the row lock. A row that fails its authenticator is revoked
// too (see prepareRevocation), keeping a revocation time it already has.
func (s *Postgres) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: revoke API key %q: %w", id, err)
	}
	var out APIKey
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		r, err := s.readAPIKey(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if auth.verify(r.key, r.macKey, r.mac) == nil && r.key.Revoked() {
			out = r.key
			return nil
		}
		if r.key.Revoked() {
			at = r.key.RevokedAt
		}
		rev, err := prepareRevocation(r.key, at, s.ring)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tokenwarden_api_keys SET revoked_at = $1, mac_key_id = $2, mac = $3 WHERE id = $4`,
			rev.revoked, rev.macKey, rev.mac, id); err != nil {
			return err
		}
		out = rev.key
		return nil
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: revoke API key %q: %w", id, err)
	}
	return out, nil
}

// APIKeyKeyIDs counts the API key rows authenticated under each key ID; rows without an
// authenticator are not counted.
func (s *Postgres) APIKeyKeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT mac_key_id, count(*) FROM tokenwarden_api_keys WHERE mac_key_id <> '' GROUP BY mac_key_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: count API keys per key ID: %w", err)
	}
	defer rows.Close()
	counts, err := scanKeyCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres store: count API keys per key ID: %w", err)
	}
	return counts, nil
}

// RemacAPIKeys authenticates every API key row again under the keyring's primary key,
// in one transaction that locks the rows it moves. Rows that fail their authenticator
// are left alone and named in the error; the others are still moved.
func (s *Postgres) RemacAPIKeys(ctx context.Context) (int, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return 0, fmt.Errorf("postgres store: re-authenticate API keys: %w", err)
	}
	var (
		changed int
		refused []error
	)
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM tokenwarden_api_keys WHERE mac_key_id <> $1 ORDER BY id FOR UPDATE`, auth.ring.PrimaryID())
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := s.readAPIKey(ctx, tx, id, false)
			if err != nil {
				return fmt.Errorf("API key %q: %w", id, err)
			}
			macKey, mac, ok, err := auth.remac(r)
			if err != nil {
				refused = append(refused, err)
				continue
			}
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE tokenwarden_api_keys SET mac_key_id = $1, mac = $2 WHERE id = $3`, macKey, mac, id); err != nil {
				return fmt.Errorf("API key %q: %w", id, err)
			}
			changed++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres store: re-authenticate API keys: %w", err)
	}
	if err := refusedAPIKeys(refused); err != nil {
		return changed, fmt.Errorf("postgres store: re-authenticate API keys: %w", err)
	}
	return changed, nil
}

// TouchAPIKey sets the key's last_used_at to at if that is later.
func (s *Postgres) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("postgres store: touch API key %q: %w", id, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tokenwarden_api_keys SET last_used_at = greatest(last_used_at, $1) WHERE id = $2`, ns, id)
	if err != nil {
		return fmt.Errorf("postgres store: touch API key %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres store: touch API key %q: %w", id, ErrAPIKeyNotFound)
	}
	return nil
}
