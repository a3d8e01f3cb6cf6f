package seal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/keyring/keyringtest"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/seal"

	commonpb "go.temporal.io/api/common/v1"
)

const secret = "rt_SealMe0123456789abcdefXYZ"

func sealer(t *testing.T, r *keyring.Keyring) *seal.Sealer {
	t.Helper()
	s, err := seal.NewSealer(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var cfg = provider.Config{TokenURL: "https://idp.example/token", ClientID: "app"}

func TestSealOpensOnlyForItsCredentialAndBinding(t *testing.T) {
	s := sealer(t, keyringtest.Random(t))
	req := seal.Request{ID: "cred-1", Provider: "oauth2", Config: cfg, Seed: seal.Seed{RefreshToken: secret}}
	env, err := s.SealFor(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(env.Sealed, "tw1:k1:") || strings.Contains(env.Sealed, secret) || env.Plaintext() {
		t.Fatalf("envelope %q", env.Sealed)
	}
	if err := env.Check(); err != nil {
		t.Fatal(err)
	}
	binding := string(provider.BindingOf("oauth2", cfg))
	opened, err := s.Open(env, "cred-1", binding)
	if err != nil || opened.Seed.RefreshToken != secret || opened.ID == "" || time.Since(opened.SealedAt) > time.Minute {
		t.Fatalf("open: %+v, %v", opened, err)
	}
	other := cfg
	other.TokenURL = "https://evil.example/token"
	for name, open := range map[string]func() error{
		"other credential": func() error { _, err := s.Open(env, "cred-2", binding); return err },
		"other binding":    func() error { _, err := s.Open(env, "cred-1", string(provider.BindingOf("oauth2", other))); return err },
		"other provider":   func() error { _, err := s.Open(env, "cred-1", string(provider.BindingOf("zalo-oa", cfg))); return err },
		"other key file":   func() error { _, err := sealer(t, keyringtest.Random(t)).Open(env, "cred-1", binding); return err },
	} {
		err := open()
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v", name, err)
		}
	}
	again, _ := s.SealFor(req)
	if again.Sealed == env.Sealed {
		t.Fatal("two seals of the same seed are equal: they must differ by ID and nonce")
	}
}

// The codec endpoint holds the payload keys of the same key file: a sealed seed inside
// a payload it decodes stays sealed.
func TestCodecNeverOpensASeal(t *testing.T) {
	r := keyringtest.Random(t)
	env, err := sealer(t, r).SealFor(seal.Request{ID: "cred-1", Provider: "oauth2", Config: cfg, Seed: seal.Seed{RefreshToken: secret}})
	if err != nil {
		t.Fatal(err)
	}
	dc := codec.DataConverter(r)
	p, err := dc.ToPayload(env)
	if err != nil {
		t.Fatal(err)
	}
	h := codec.Handler(r, codec.HandlerOptions{Namespace: "default"})
	body, _ := json.Marshal(map[string]any{"payloads": []*commonpb.Payload{p}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, codec.DecodePath, bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("decode: %d %s", rec.Code, rec.Body)
	}
	var out struct {
		Payloads []struct {
			Data string `json:"data"`
		} `json:"payloads"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Payloads) != 1 {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	data, _ := base64.StdEncoding.DecodeString(out.Payloads[0].Data)
	if !strings.Contains(string(data), `"sealed":"tw1:`) || strings.Contains(string(data), secret) {
		t.Fatalf("decoded payload %s", data)
	}
}

func TestHandler(t *testing.T) {
	r := keyringtest.Random(t)
	s := sealer(t, r)
	body := func() *bytes.Reader {
		b, _ := json.Marshal(seal.Request{ID: "cred-1", Provider: "oauth2", Config: cfg, Seed: seal.Seed{RefreshToken: secret}})
		return bytes.NewReader(b)
	}
	for _, tc := range []struct {
		name, token, auth string
		want              int
	}{
		{"off without a token", "", "Bearer x", http.StatusNotFound},
		{"no bearer", "tok", "", http.StatusUnauthorized},
		{"wrong bearer", "tok", "Bearer nope", http.StatusUnauthorized},
		{"sealed", "tok", "Bearer tok", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, seal.Path, body())
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			seal.Handler(s, tc.token).ServeHTTP(rec, req)
			if rec.Code != tc.want || strings.Contains(rec.Body.String(), secret) {
				t.Fatalf("status %d (want %d): %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
	srv := httptest.NewServer(seal.Handler(s, "tok"))
	defer srv.Close()
	env, err := seal.Client{URL: srv.URL + seal.Path, Token: "tok"}.SealFor(context.Background(),
		seal.Request{ID: "cred-1", Provider: "oauth2", Config: cfg, Seed: seal.Seed{RefreshToken: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if opened, err := s.Open(env, "cred-1", string(provider.BindingOf("oauth2", cfg))); err != nil || opened.Seed.RefreshToken != secret {
		t.Fatalf("sealed through the endpoint: %+v, %v", opened, err)
	}
	if _, err := (seal.Client{URL: srv.URL + seal.Path, Token: "bad"}).SealFor(context.Background(), seal.Request{ID: "c", Provider: "oauth2"}); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
}
