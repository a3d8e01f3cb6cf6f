package apikeys

// Output of `starter apikey`. Nothing here prints a hash; only WriteCreated prints a
// key, the new one, once.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteCreated prints the outcome of Create: the key alone on stdout, so that
// KEY=$(starter apikey create ...) captures it and nothing else, and the summary and
// notes on stderr. where names the token store (store.Open's description, never a DSN).
func WriteCreated(stdout, stderr io.Writer, c Created, where string) error {
	if c.CheckErr != nil {
		fmt.Fprintf(stderr, "note: could not check whether the credentials are in the token store: %v\n", c.CheckErr)
	}
	for _, id := range c.Missing {
		fmt.Fprintf(stderr, "note: credential %q is not in the token store (yet); the key gets 404 for it until it is seeded\n", id)
	}
	fmt.Fprintf(stderr, "created API key %q (id %s) for %s in token store %s; it is printed below once and is not stored anywhere: keep it now\n",
		c.Info.Name, c.Info.ID, strings.Join(c.Info.CredentialIDs, ", "), where)
	if _, err := fmt.Fprintln(stdout, c.Key.Reveal()); err != nil {
		return fmt.Errorf("print the API key: %w", err)
	}
	return nil
}

// Message describes the outcome of Revoke in one line.
func (r Revoked) Message() string {
	if r.Already {
		return fmt.Sprintf("API key %q (id %s) was already revoked at %s", r.Info.Name, r.Info.ID, formatTime(r.Info.RevokedAt, ""))
	}
	return fmt.Sprintf("revoked API key %q (id %s) at %s; running workers refuse it from their next request on",
		r.Info.Name, r.Info.ID, formatTime(r.Info.RevokedAt, ""))
}

// EmptyList is what the list commands print when there is no key.
const EmptyList = "no API keys (create one with: starter apikey create NAME -credential ID)"

// WriteTable prints one line per key, under a header: name, ID, credentials, created,
// revoked, last used.
func WriteTable(w io.Writer, keys []Info) error {
	if len(keys) == 0 {
		_, err := fmt.Fprintln(w, EmptyList)
		return err
	}
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tCREDENTIALS\tCREATED\tREVOKED\tLAST USED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.ID, strings.Join(k.CredentialIDs, ","),
			formatTime(k.CreatedAt, "-"), formatTime(k.RevokedAt, "-"), formatTime(k.LastUsedAt, "never"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print API keys: %w", err)
	}
	return nil
}

// WriteJSON prints one JSON object per key and line (as `starter list -json` does):
// name, id, credentials, created_at, and revoked_at and last_used_at when set.
func WriteJSON(w io.Writer, keys []Info) error {
	enc := json.NewEncoder(w)
	for _, k := range keys {
		k.CreatedAt, k.RevokedAt, k.LastUsedAt = k.CreatedAt.UTC(), k.RevokedAt.UTC(), k.LastUsedAt.UTC()
		if err := enc.Encode(k); err != nil {
			return fmt.Errorf("print API key %s: %w", k.ID, err)
		}
	}
	return nil
}

func formatTime(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}
