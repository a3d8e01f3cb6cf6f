package main

// starter token ID: print a credential's current access token, for scripts, from the
// worker's token API (GET /v1/credentials/{id}/token). The API key comes from
// TOKENWARDEN_API_KEY only, never from the command line, where other users could read
// it in the process list; the API's base URL from TOKENWARDEN_TOKEN_API (default
// http://127.0.0.1:8234, the worker's default HTTP_ADDR).
//
// The token API's answers map to the starter's exit codes as the usage text says: 401
// and 403 are a refusal (exitForbidden), 404 an unknown credential, anything else a
// failure (rate limited, no fresh token yet, ...).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/credential"
)

// exitForbidden shares 6 with exitRejected: the request was understood and refused.
const exitForbidden = exitRejected

const tokenTimeout = 10 * time.Second

type tokenAnswer struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Error       string     `json:"error"`
	Message     string     `json:"message"`
}

func (a *app) token(ctx context.Context, args []string) error {
	fs := a.newFlags("token", "token ID [-json]   (API key in TOKENWARDEN_API_KEY)")
	asJSON := fs.Bool("json", false, "print the whole answer as JSON: access_token, token_type, expires_at")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fail(exitBadInput, "want exactly one credential ID")
	}
	id := pos[0]
	if err := credential.ValidateID(id); err != nil {
		return fail(exitBadInput, "credential %v", err)
	}
	cfg, err := config.LoadTokenClient()
	if err != nil {
		return fail(exitBadInput, "%v", err)
	}
	if cfg.APIKey == "" {
		return fail(exitBadInput, "set %s_API_KEY to an API key scoped to %q (starter apikey create NAME -credential %s); it is read from the environment only, never from the command line",
			config.Prefix, id, id)
	}

	ctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	defer cancel()
	endpoint := strings.TrimSuffix(cfg.TokenAPI, "/") + "/v1/credentials/" + url.PathEscape(id) + "/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fail(exitBadInput, "%s_TOKEN_API: %v", config.Prefix, err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: tokenTimeout}).Do(req)
	if err != nil {
		// url.Error names the URL, which holds no secret (the key travels in a header).
		return fail(exitUnreachable, "cannot reach the token API at %s: %v\nis the worker running, and is %s_TOKEN_API its HTTP_ADDR?", cfg.TokenAPI, unwrapURLError(err), config.Prefix)
	}
	defer resp.Body.Close()
	var ans tokenAnswer
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &ans)
	}
	if err != nil && resp.StatusCode != http.StatusOK {
		return fail(exitFailure, "token API answered %s without a JSON error (is %s_TOKEN_API the worker's HTTP_ADDR?)", resp.Status, config.Prefix)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err != nil || ans.AccessToken == "" {
			return fail(exitFailure, "token API answered 200 without an access token")
		}
		if *asJSON {
			out, _ := json.Marshal(struct {
				AccessToken string     `json:"access_token"`
				TokenType   string     `json:"token_type"`
				ExpiresAt   *time.Time `json:"expires_at"`
			}{ans.AccessToken, ans.TokenType, ans.ExpiresAt})
			fmt.Fprintln(a.stdout, string(out))
		} else {
			fmt.Fprintln(a.stdout, ans.AccessToken)
		}
		return nil
	case http.StatusUnauthorized:
		return fail(exitForbidden, "unauthorized (%s): %s_API_KEY is not a valid API key: missing, mistyped, unknown to this worker's token store, or revoked (starter apikey list shows the keys)",
			ans.Message, config.Prefix)
	case http.StatusForbidden:
		return fail(exitForbidden, "forbidden: the API key is not scoped to credential %q (starter apikey list shows each key's credentials)", id)
	case http.StatusNotFound:
		return fail(exitUnknown, "credential %q is not in the token store", id)
	case http.StatusTooManyRequests:
		return fail(exitFailure, "rate limited: retry after %s s", resp.Header.Get("Retry-After"))
	default:
		return fail(exitFailure, "token API answered %s: %s (%s)", resp.Status, ans.Message, ans.Error)
	}
}

// unwrapURLError drops url.Error's "Get \"URL\":" prefix, already in the message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
