package main

// Key maintenance commands: -new-key, -rotate-keys and -remove-key. Each runs against
// the configured key file and token store (SQLite or PostgreSQL) and exits, and all are
// safe to run while workers run. Only -remove-key needs Temporal: it reads the running
// workflows' histories (worker/keysafety.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
)

// keyCommands are the maintenance flags; at most one may be given.
type keyCommands struct {
	newKey     bool
	rotateKeys bool
	removeKey  string
}

func (k keyCommands) count() int {
	n := 0
	for _, set := range []bool{k.newKey, k.rotateKeys, k.removeKey != ""} {
		if set {
			n++
		}
	}
	return n
}

// rotateProgressEvery is how many resealed records rotate-keys reports at a time.
const rotateProgressEvery = 100

// runKeyCommand runs the maintenance command k names and returns its exit code: 0 done,
// 1 failed or incomplete (run it again), 2 refused before doing anything.
func runKeyCommand(k keyCommands, cfg config.Worker, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if k.newKey {
		id, prev, err := keyring.AddKey(cfg.KeyFile)
		if err != nil {
			fmt.Fprintf(stderr, "worker: new key: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "added key %s to %s as the primary key (previous primary %s kept)\n", id, cfg.KeyFile, prev)
		fmt.Fprintln(stdout, "next: restart every worker (and give starters the new key file) so that they seal with it, then run worker -rotate-keys")
		return 0
	}

	tokens, ring, desc, code := openCommandStore(ctx, cfg, stderr)
	if tokens == nil {
		return code
	}
	defer tokens.Close()

	if k.removeKey != "" {
		history := func(ctx context.Context, keyID string) ([]keyUse, error) {
			c, err := dialForKeyCheck(ctx, cfg, stderr)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			return runsUsingKey(ctx, c, cfg.TemporalNamespace, keyID)
		}
		return removeKey(ctx, tokens, ring, cfg.KeyFile, k.removeKey, history, stdout, stderr)
	}
	if err := rotateKeys(ctx, tokens, ring, desc, rotateProgressEvery, stdout); err != nil {
		fmt.Fprintf(stderr, "worker: rotate keys: %v\n", err)
		return 1
	}
	return 0
}

// openCommandStore loads the key file and opens the token store for -rotate-keys and
// -remove-key. On failure it says why on stderr and returns a nil store with the exit
// code: 2 for the key file, 1 for the store.
func openCommandStore(ctx context.Context, cfg config.Worker, stderr io.Writer) (store.Store, *keyring.Keyring, string, int) {
	ring, err := keyring.LoadFile(cfg.KeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return nil, nil, "", 2
	}
	tokens, desc, err := store.Open(ctx, cfg.Store, cfg.SqlitePath, cfg.PostgresDSN, ring)
	if err != nil {
		fmt.Fprintf(stderr, "worker: open token store %s: %v\n", desc, err)
		return nil, nil, desc, 1
	}
	return tokens, ring, desc, 0
}

// rotationStore is what rotateKeys needs of the token store: the counts per key ID
// before and after, the records to walk, and the moves onto the primary key.
type rotationStore interface {
	resealer
	store.KeyInventory
}

// resealer is what resealAll needs: the records to walk, and Reseal.
type resealer interface {
	store.Reader
	store.KeyRotation
}

// rotateKeys reseals every record of st that is not under ring's primary key, printing
// progress every `every` resealed records, and ends with the number of records under
// each key. It is resumable: records already under the primary key are skipped. It
// returns an error if it was interrupted, if a record could not be resealed, or if
// records under other keys remain at the end (written meanwhile by a worker still
// sealing with an old primary key).
func rotateKeys(ctx context.Context, st rotationStore, ring *keyring.Keyring, desc string, every int, out io.Writer) error {
	primary := ring.PrimaryID()
	counts, err := st.KeyIDs(ctx)
	if err != nil {
		return err
	}
	pending := 0
	var missing []string
	for id, n := range counts {
		if id == primary {
			continue
		}
		pending += n
		if !slices.Contains(ring.IDs(), id) {
			missing = append(missing, fmt.Sprintf("%s (%d records)", id, n))
		}
	}
	total := pending + counts[primary]
	fmt.Fprintf(out, "token store %s: %d of %d records to reseal under key %s (%s)\n", desc, pending, total, primary, formatCounts(counts))
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("records are sealed under keys the key file does not hold: %s; add those keys back to the key file first", strings.Join(missing, ", "))
	}
	if pending > 0 {
		if err := resealAll(ctx, st, primary, pending, every, out); err != nil {
			return err
		}
	}

	// API key rows are authenticated under the same key IDs (store.APIKeyKeyIDs); move
	// them too, so that the old key is not needed for them either. A row that fails
	// its authenticator is not moved, and it fails the rotation: it must be revoked.
	remaced, remacErr := st.RemacAPIKeys(ctx)
	if remaced > 0 {
		fmt.Fprintf(out, "re-authenticated %d API keys under key %s\n", remaced, primary)
	}
	if remacErr != nil {
		return remacErr
	}

	counts, err = st.KeyIDs(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "records per key ID: %s\n", formatCounts(counts))
	left := 0
	for id, n := range counts {
		if id != primary {
			left += n
		}
	}
	if left > 0 {
		return fmt.Errorf("%d records are still sealed under other keys than %s (written during the rotation by a worker still sealing with an older primary key? restart every worker with the current key file); run worker -rotate-keys again", left, primary)
	}
	var unused []string
	for _, id := range ring.IDs() {
		if id != primary {
			unused = append(unused, id)
		}
	}
	if len(unused) == 0 {
		fmt.Fprintf(out, "every record is sealed under key %s\n", primary)
	} else {
		fmt.Fprintf(out, "every record is sealed under key %s; no record uses %s any more. Remove a key from the key file (worker -remove-key ID) only once no Temporal history within the namespace's retention was written under it either.\n",
			primary, strings.Join(unused, ", "))
	}
	return nil
}

// resealAll reseals every listed record. A record deleted meanwhile is skipped; one
// that fails is reported and the others are still done.
func resealAll(ctx context.Context, st resealer, primary string, pending, every int, out io.Writer) error {
	recs, err := st.List(ctx)
	if err != nil {
		return err
	}
	var (
		resealed, lastReported int
		failed                 []string
	)
	report := func() {
		fmt.Fprintf(out, "resealed %d/%d under key %s\n", resealed, pending, primary)
		lastReported = resealed
	}
	interrupted := func() error {
		report()
		return fmt.Errorf("interrupted after resealing %d/%d records; run worker -rotate-keys again to resume (records already under key %s are skipped)", resealed, pending, primary)
	}
	for _, rec := range recs {
		if ctx.Err() != nil {
			return interrupted()
		}
		changed, err := st.Reseal(ctx, rec.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // deleted since List
		case err != nil && ctx.Err() != nil:
			return interrupted()
		case err != nil:
			fmt.Fprintf(out, "credential %q: %v\n", rec.ID, err)
			failed = append(failed, rec.ID)
			continue
		}
		if changed {
			resealed++
			if resealed%every == 0 {
				report()
			}
		}
	}
	if resealed != lastReported || resealed == 0 {
		report()
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d records could not be resealed (%s); fix them and run worker -rotate-keys again", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// removeKey drops keyID from the key file, unless it is the primary key, records or API
// keys of st are still sealed or authenticated under it, or history reports running
// workflows whose current run holds payloads under it (or cannot tell).
func removeKey(ctx context.Context, st store.KeyInventory, ring *keyring.Keyring, path, keyID string,
	history func(ctx context.Context, keyID string) ([]keyUse, error), stdout, stderr io.Writer) int {
	if keyID == ring.PrimaryID() {
		fmt.Fprintf(stderr, "worker: remove key: %s is the primary key; add a new one with worker -new-key and rotate first\n", keyID)
		return 2
	}
	counts, err := st.KeyIDs(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "worker: remove key: %v\n", err)
		return 1
	}
	if n := counts[keyID]; n > 0 {
		fmt.Fprintf(stderr, "worker: remove key: refusing: %d records are still sealed under key %s; run worker -rotate-keys first\n", n, keyID)
		return 2
	}
	apiCounts, err := st.APIKeyKeyIDs(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "worker: remove key: %v\n", err)
		return 1
	}
	if n := apiCounts[keyID]; n > 0 {
		fmt.Fprintf(stderr, "worker: remove key: refusing: %d API keys are still authenticated under key %s; run worker -rotate-keys first\n", n, keyID)
		return 2
	}
	// Last, as the slowest: a key that running histories use cannot go, whatever the
	// store says, and neither can one whose use cannot be checked.
	// (A key the file does not hold is left to keyring.RemoveKey to refuse.)
	uses, err := []keyUse(nil), error(nil)
	if slices.Contains(ring.IDs(), keyID) {
		uses, err = history(ctx, keyID)
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: remove key: refusing: %v\n", err)
		return 1
	}
	if len(uses) > 0 {
		fmt.Fprintf(stderr, "worker: remove key: refusing: %v\n", refuseKeyInHistory(keyID, uses))
		return 2
	}
	if err := keyring.RemoveKey(path, keyID); err != nil {
		fmt.Fprintf(stderr, "worker: remove key: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "removed key %s from %s; Temporal history sealed under it can no longer be decoded. Restart the workers (and update starters' key files) to drop it from memory too.\n", keyID, path)
	return 0
}

// formatCounts lists record counts per key ID, sorted by ID: "k1=3, k2=5".
func formatCounts(counts map[string]int) string {
	if len(counts) == 0 {
		return "no records"
	}
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", id, counts[id]))
	}
	return strings.Join(parts, ", ")
}
