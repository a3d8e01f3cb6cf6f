package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TouchLastUsed sets last_used_at to at if that is later; nothing else changes.
func (s *SQLite) TouchLastUsed(ctx context.Context, id string, at time.Time) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("sqlite store: touch credential %q: %w", id, err)
	}
	// SQLite counts a matched row as changed even when max() leaves the value alone.
	res, err := s.db.ExecContext(ctx, `UPDATE credentials SET last_used_at = max(last_used_at, ?) WHERE id = ?`, ns, id)
	if err != nil {
		return fmt.Errorf("sqlite store: touch credential %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite store: touch credential %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite store: touch credential %q: %w", id, ErrNotFound)
	}
	return nil
}

// CreateAPIKey inserts the key, its scopes and its authenticator in one transaction.
func (s *SQLite) CreateAPIKey(ctx context.Context, key APIKey) (APIKey, error) {
	row, err := prepareAPIKey(key, s.ring, s.now)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: create API key: %w", err)
	}
	k := row.key
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the check below holds until commit
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: create API key %q: begin: %w", k.Name, err)
	}
	defer tx.Rollback()
	var taken int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_keys WHERE id = ? OR name = ?`, k.ID, k.Name).Scan(&taken); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: create API key %q: %w", k.Name, err)
	}
	if taken > 0 {
		return APIKey{}, fmt.Errorf("sqlite store: create API key %q: %w", k.Name, ErrAPIKeyExists)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, hash, created_at, mac_key_id, mac) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, row.created, row.macKey, row.mac); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: create API key %q: %w", k.Name, err)
	}
	for _, cid := range k.CredentialIDs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_key_scopes (key_id, credential_id) VALUES (?, ?)`, k.ID, cid); err != nil {
			return APIKey{}, fmt.Errorf("sqlite store: create API key %q: scope %q: %w", k.Name, cid, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: create API key %q: commit: %w", k.Name, err)
	}
	return k, nil
}

// LookupAPIKey returns the key with the ID and its scopes once its row's authenticator
// checks out (ErrAPIKeyUnauthenticated otherwise).
func (s *SQLite) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: look up API key %q: %w", id, err)
	}
	r, err := s.readAPIKey(ctx, s.db, id)
	if err == nil {
		var k APIKey
		if k, err = r.verified(auth); err == nil {
			return k, nil
		}
	}
	return APIKey{}, fmt.Errorf("sqlite store: look up API key %q: %w", id, err)
}

// queryer is what readAPIKey needs of a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const sqliteAPIKeyColumns = `id, name, hash, created_at, revoked_at, last_used_at, mac_key_id, mac`

// scanAPIKey reads one row of sqliteAPIKeyColumns (or PostgreSQL's, which has the same
// columns) without scopes.
func scanAPIKey(row rowScanner, dest ...any) (storedAPIKey, error) {
	var (
		r storedAPIKey
		t apiKeyTimes
	)
	if err := row.Scan(append([]any{&r.key.ID, &r.key.Name, &r.key.Hash, &t.created, &t.revoked, &t.lastUsed, &r.macKey, &r.mac}, dest...)...); err != nil {
		return storedAPIKey{}, err
	}
	t.apply(&r.key)
	return r, nil
}

// readAPIKey reads a row and its scopes without checking its authenticator.
func (s *SQLite) readAPIKey(ctx context.Context, q queryer, id string) (storedAPIKey, error) {
	r, err := scanAPIKey(q.QueryRowContext(ctx, `SELECT `+sqliteAPIKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return storedAPIKey{}, ErrAPIKeyNotFound
	}
	if err != nil {
		return storedAPIKey{}, err
	}
	rows, err := q.QueryContext(ctx, `SELECT credential_id FROM api_key_scopes WHERE key_id = ? ORDER BY credential_id`, id)
	if err != nil {
		return storedAPIKey{}, fmt.Errorf("read scopes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cid string
		if err := rows.Scan(&cid); err != nil {
			return storedAPIKey{}, fmt.Errorf("read scopes: %w", err)
		}
		r.key.CredentialIDs = append(r.key.CredentialIDs, cid)
	}
	if err := rows.Err(); err != nil {
		return storedAPIKey{}, fmt.Errorf("read scopes: %w", err)
	}
	return r, nil
}

// ListAPIKeys returns every key with its scopes, ordered by name (byte order). If any
// row fails its authenticator it returns no keys and an error that names each refused
// key (ErrAPIKeyUnauthenticated): a listing that silently skipped them would hide the
// tampering from the operator.
func (s *SQLite) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list API keys: %w", err)
	}
	stored, err := s.readAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list API keys: %w", err)
	}
	keys, err := verifyAll(auth, stored)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list API keys: %w", err)
	}
	return keys, nil
}

// verifyAll checks every listed row; see ListAPIKeys.
func verifyAll(auth apiKeyAuth, stored []storedAPIKey) ([]APIKey, error) {
	keys := make([]APIKey, 0, len(stored))
	var refused []error
	for _, r := range stored {
		k, err := r.verified(auth)
		if err != nil {
			refused = append(refused, err)
			continue
		}
		keys = append(keys, k)
	}
	if err := refusedAPIKeys(refused); err != nil {
		return nil, err
	}
	return keys, nil
}

func (s *SQLite) readAPIKeys(ctx context.Context) ([]storedAPIKey, error) {
	// Two plain reads (a transaction would take the write lock: _txlock=immediate). Keys
	// are listed by the first; scopes never change after a key's creation, and a scope
	// row added by anyone else fails the key's authenticator.
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteAPIKeyColumns+` FROM api_keys ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var keys []storedAPIKey
	index := map[string]int{}
	for rows.Next() {
		r, err := scanAPIKey(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		index[r.key.ID] = len(keys)
		keys = append(keys, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT key_id, credential_id FROM api_key_scopes ORDER BY key_id, credential_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var kid, cid string
		if err := rows.Scan(&kid, &cid); err != nil {
			return nil, err
		}
		if i, ok := index[kid]; ok {
			keys[i].key.CredentialIDs = append(keys[i].key.CredentialIDs, cid)
		}
	}
	return keys, rows.Err()
}

// RevokeAPIKey sets revoked_at unless the key is already revoked, and authenticates
// the row with it. A row that fails its authenticator is revoked too (see
// prepareRevocation), keeping a revocation time it already has.
func (s *SQLite) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: begin: %w", id, err)
	}
	defer tx.Rollback()
	r, err := s.readAPIKey(ctx, tx, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	verr := auth.verify(r.key, r.macKey, r.mac)
	if verr == nil && r.key.Revoked() {
		return r.key, nil
	}
	if r.key.Revoked() {
		at = r.key.RevokedAt
	}
	rev, err := prepareRevocation(r.key, at, s.ring)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ?, mac_key_id = ?, mac = ? WHERE id = ?`,
		rev.revoked, rev.macKey, rev.mac, id); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: commit: %w", id, err)
	}
	return rev.key, nil
}

// APIKeyKeyIDs counts the API key rows authenticated under each key ID; rows without an
// authenticator are not counted.
func (s *SQLite) APIKeyKeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT mac_key_id, count(*) FROM api_keys WHERE mac_key_id <> '' GROUP BY mac_key_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: count API keys per key ID: %w", err)
	}
	defer rows.Close()
	counts, err := scanKeyCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: count API keys per key ID: %w", err)
	}
	return counts, nil
}

// RemacAPIKeys authenticates every API key row again under the keyring's primary key,
// in one transaction. Rows that fail their authenticator are left alone and named in
// the error; the others are still moved.
func (s *SQLite) RemacAPIKeys(ctx context.Context) (int, error) {
	auth, err := newAPIKeyAuth(s.ring)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: re-authenticate API keys: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: re-authenticate API keys: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM api_keys WHERE mac_key_id <> ? ORDER BY id`, auth.ring.PrimaryID())
	if err != nil {
		return 0, fmt.Errorf("sqlite store: re-authenticate API keys: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlite store: re-authenticate API keys: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite store: re-authenticate API keys: %w", err)
	}
	var (
		changed int
		refused []error
	)
	for _, id := range ids {
		r, err := s.readAPIKey(ctx, tx, id)
		if err != nil {
			return 0, fmt.Errorf("sqlite store: re-authenticate API key %q: %w", id, err)
		}
		macKey, mac, ok, err := auth.remac(r)
		if err != nil {
			refused = append(refused, err)
			continue
		}
		if !ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET mac_key_id = ?, mac = ? WHERE id = ?`, macKey, mac, id); err != nil {
			return 0, fmt.Errorf("sqlite store: re-authenticate API key %q: %w", id, err)
		}
		changed++
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite store: re-authenticate API keys: commit: %w", err)
	}
	if err := refusedAPIKeys(refused); err != nil {
		return changed, fmt.Errorf("sqlite store: re-authenticate API keys: %w", err)
	}
	return changed, nil
}

// TouchAPIKey sets the key's last_used_at to at if that is later.
func (s *SQLite) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	ns, err := toNanos(at)
	if err != nil {
		return fmt.Errorf("sqlite store: touch API key %q: %w", id, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = max(last_used_at, ?) WHERE id = ?`, ns, id)
	if err != nil {
		return fmt.Errorf("sqlite store: touch API key %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite store: touch API key %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite store: touch API key %q: %w", id, ErrAPIKeyNotFound)
	}
	return nil
}
