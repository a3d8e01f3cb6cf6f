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

// CreateAPIKey inserts the key and its scopes in one transaction.
func (s *SQLite) CreateAPIKey(ctx context.Context, key APIKey) (APIKey, error) {
	row, err := prepareAPIKey(key, s.now)
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, hash, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, row.created); err != nil {
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

// LookupAPIKey returns the key with the ID and its scopes.
func (s *SQLite) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	k, err := s.lookupAPIKey(ctx, s.db, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: look up API key %q: %w", id, err)
	}
	return k, nil
}

// queryer is what lookupAPIKey needs of a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *SQLite) lookupAPIKey(ctx context.Context, q queryer, id string) (APIKey, error) {
	var (
		k APIKey
		t apiKeyTimes
	)
	err := q.QueryRowContext(ctx, `SELECT id, name, hash, created_at, revoked_at, last_used_at FROM api_keys WHERE id = ?`, id).
		Scan(&k.ID, &k.Name, &k.Hash, &t.created, &t.revoked, &t.lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrAPIKeyNotFound
	}
	if err != nil {
		return APIKey{}, err
	}
	t.apply(&k)
	rows, err := q.QueryContext(ctx, `SELECT credential_id FROM api_key_scopes WHERE key_id = ? ORDER BY credential_id`, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("read scopes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cid string
		if err := rows.Scan(&cid); err != nil {
			return APIKey{}, fmt.Errorf("read scopes: %w", err)
		}
		k.CredentialIDs = append(k.CredentialIDs, cid)
	}
	if err := rows.Err(); err != nil {
		return APIKey{}, fmt.Errorf("read scopes: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns every key with its scopes, ordered by name (byte order).
func (s *SQLite) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	keys, err := s.listAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list API keys: %w", err)
	}
	return keys, nil
}

func (s *SQLite) listAPIKeys(ctx context.Context) ([]APIKey, error) {
	// Two plain reads (a transaction would take the write lock: _txlock=immediate). Keys
	// are listed by the first; scopes never change after a key's creation.
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, hash, created_at, revoked_at, last_used_at FROM api_keys ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var keys []APIKey
	index := map[string]int{}
	for rows.Next() {
		var (
			k APIKey
			t apiKeyTimes
		)
		if err := rows.Scan(&k.ID, &k.Name, &k.Hash, &t.created, &t.revoked, &t.lastUsed); err != nil {
			rows.Close()
			return nil, err
		}
		t.apply(&k)
		index[k.ID] = len(keys)
		keys = append(keys, k)
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
			keys[i].CredentialIDs = append(keys[i].CredentialIDs, cid)
		}
	}
	return keys, rows.Err()
}

// RevokeAPIKey sets revoked_at unless the key is already revoked.
func (s *SQLite) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	ns, err := toNanos(at)
	if err == nil && ns == 0 {
		err = errors.New("zero revocation time")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: begin: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, ns, id); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	k, err := s.lookupAPIKey(ctx, tx, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return APIKey{}, fmt.Errorf("sqlite store: revoke API key %q: commit: %w", id, err)
	}
	return k, nil
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
