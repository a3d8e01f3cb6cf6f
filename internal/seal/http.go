package seal

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// Path is where the worker serves sealing: POST a Request, get an Envelope back.
const Path = "/seal"

// maxRequestBytes bounds a sealing request: a seed and a configuration are small.
const maxRequestBytes = 64 << 10

// Request asks the worker to seal a seed for a credential and its configuration. It
// carries the plaintext seed, so it travels only over loopback or TLS, with the
// sealing token.
type Request struct {
	ID       string          `json:"id"`
	Provider string          `json:"provider"`
	Config   provider.Config `json:"config"`
	Seed     Seed            `json:"seed"`
}

// SealFor seals seed for a credential of the named provider with cfg: the one way
// every caller binds a seed to its configuration.
func (s *Sealer) SealFor(req Request) (Envelope, error) {
	return s.Seal(req.Seed, req.ID, string(provider.BindingOf(req.Provider, req.Config)))
}

// Handler serves POST Path for starters that cannot read the key file. Sealing is an
// integrity matter, not only a secrecy one: whoever may seal can replace any
// credential's grant with their own, so every request must bear token (compared in
// constant time), and a worker without a token does not serve sealing at all.
func Handler(s *Sealer, token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.Error(w, "sealing is off on this worker (set TOKENWARDEN_SEAL_BEARER_TOKEN), or run the starter with the key file", http.StatusNotFound)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenwarden seal"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var req Request
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			// Never echo the body: it holds the seed.
			http.Error(w, "body is not a sealing request {id, provider, config, seed} of at most 64 KiB", http.StatusBadRequest)
			return
		}
		if req.ID == "" || req.Provider == "" {
			http.Error(w, "id and provider are required", http.StatusBadRequest)
			return
		}
		env, err := s.SealFor(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(env)
	})
}

// Client seals through a worker's Handler.
type Client struct {
	// URL is the sealing endpoint, e.g. http://127.0.0.1:8234/seal.
	URL   string
	Token string
	HTTP  *http.Client
}

// SealFor sends req to the worker and returns the sealed envelope.
func (c Client) SealFor(ctx context.Context, req Request) (Envelope, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode sealing request: %w", err)
	}
	defer clear(body)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return Envelope{}, fmt.Errorf("sealing endpoint %s: %w", c.URL, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(hr)
	if err != nil {
		return Envelope{}, fmt.Errorf("sealing endpoint %s: %w", c.URL, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxRequestBytes))
	if err != nil {
		return Envelope{}, fmt.Errorf("sealing endpoint %s: read answer: %w", c.URL, err)
	}
	if res.StatusCode != http.StatusOK {
		return Envelope{}, fmt.Errorf("sealing endpoint %s: HTTP %d: %s", c.URL, res.StatusCode, strings.TrimSpace(string(data)))
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil || env.Sealed == "" || env.Plaintext() {
		return Envelope{}, errors.New("sealing endpoint " + c.URL + ": the answer is not a sealed seed")
	}
	return env, nil
}
