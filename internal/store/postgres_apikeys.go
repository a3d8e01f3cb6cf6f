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

// CreateAPIKey inserts the key and its scopes in one transaction. The unique indexes
// decide between concurrent creators of one name.
func (s *Postgres) CreateAPIKey(ctx context.Context, key APIKey) (APIKey, error) {
	row, err := prepareAPIKey(key, s.now)
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: create API key: %w", err)
	}
	k := row.key
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tokenwarden_api_keys (id, name, hash, created_at) VALUES ($1, $2, $3, $4)`,
			k.ID, k.Name, k.Hash, row.created); err != nil {
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

// LookupAPIKey returns the key with the ID and its scopes, in one statement.
func (s *Postgres) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	var (
		k APIKey
		t apiKeyTimes
	)
	err := s.pool.QueryRow(ctx, `SELECT k.id, k.name, k.hash, k.created_at, k.revoked_at, k.last_used_at,
			coalesce((SELECT array_agg(credential_id ORDER BY credential_id) FROM tokenwarden_api_key_scopes WHERE key_id = k.id), '{}')
		FROM tokenwarden_api_keys k WHERE k.id = $1`, id).
		Scan(&k.ID, &k.Name, &k.Hash, &t.created, &t.revoked, &t.lastUsed, &k.CredentialIDs)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("postgres store: look up API key %q: %w", id, ErrAPIKeyNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: look up API key %q: %w", id, err)
	}
	t.apply(&k)
	return k, nil
}

// ListAPIKeys returns every key with its scopes, ordered by name in byte order.
func (s *Postgres) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.id, k.name, k.hash, k.created_at, k.revoked_at, k.last_used_at,
			coalesce((SELECT array_agg(credential_id ORDER BY credential_id) FROM tokenwarden_api_key_scopes WHERE key_id = k.id), '{}')
		FROM tokenwarden_api_keys k ORDER BY k.name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		var (
			k APIKey
			t apiKeyTimes
		)
		if err := rows.Scan(&k.ID, &k.Name, &k.Hash, &t.created, &t.revoked, &t.lastUsed, &k.CredentialIDs); err != nil {
			return nil, fmt.Errorf("postgres store: list API keys: %w", err)
		}
		t.apply(&k)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey sets revoked_at unless the key is already revoked.
func (s *Postgres) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	ns, err := toNanos(at)
	if err == nil && ns == 0 {
		err = errors.New("zero revocation time")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: revoke API key %q: %w", id, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE tokenwarden_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0`, ns, id); err != nil {
		return APIKey{}, fmt.Errorf("postgres store: revoke API key %q: %w", id, err)
	}
	k, err := s.LookupAPIKey(ctx, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres store: revoke API key %q: %w", id, err)
	}
	return k, nil
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
