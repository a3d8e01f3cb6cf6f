package baoming

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming/baomingtest"
)

// seedEID is the enrollment the seed 004 run read (its info_id is the same form).
const seedEID = "698add7c7068f814935d6804"

func TestProbeAgainstTheFake(t *testing.T) {
	fake := baomingtest.New()
	base := fake.Start()
	defer fake.Close()
	p := New(nil)
	eid := baomingtest.NewEnrollID()
	cfg := provider.Config{BaseURL: base, EnrollID: eid}
	ctx := context.Background()
	tok := fake.Issue()
	infoID := fake.Enroll(tok, eid)

	res, err := p.ProbeDetail(ctx, cfg, provider.Grant{AccessToken: tok})
	if err != nil || !res.Valid || res.Labels[LabelInfoID] != infoID || len(res.Labels) != 1 {
		t.Fatalf("live token of an enrolled account: %+v %v, want valid with info_id %s", res, err, infoID)
	}
	if valid, err := p.Probe(ctx, cfg, provider.Grant{AccessToken: tok}); err != nil || !valid {
		t.Fatalf("Probe of a live token: %v %v", valid, err)
	}

	// A live token whose account never joined the enrollment: sta 0 without info_id.
	other := fake.Issue()
	res, err = p.ProbeDetail(ctx, cfg, provider.Grant{AccessToken: other})
	if err != nil || res.Valid || res.Code != CodeNotEnrolled {
		t.Fatalf("account not enrolled: %+v %v, want a no with %s", res, err, CodeNotEnrolled)
	}
	if valid, err := p.Probe(ctx, cfg, provider.Grant{AccessToken: other}); err != nil || valid {
		t.Fatalf("Probe, account not enrolled: %v %v, want a clear no", valid, err)
	}

	fake.Invalidate(tok)
	res, err = p.ProbeDetail(ctx, cfg, provider.Grant{AccessToken: tok})
	if err != nil || res.Valid || res.Code != CodeTokenRejected || !strings.Contains(res.Description, "invalid access_token") {
		t.Fatalf("invalidated token: %+v %v, want a no with %s", res, err, CodeTokenRejected)
	}
	if res, err := p.ProbeDetail(ctx, cfg, provider.Grant{AccessToken: "bm_never_issued"}); err != nil || res.Valid || res.Code != CodeTokenRejected {
		t.Fatalf("unknown token: %+v %v", res, err)
	}
	if got := fake.Probes(tok); got != 3 {
		t.Fatalf("fake saw %d probes of the token, want 3", got)
	}

	// Logging in again: a new token for the same account, still enrolled.
	again := fake.Reissue(tok)
	if res, err := p.ProbeDetail(ctx, cfg, provider.Grant{AccessToken: again}); err != nil || !res.Valid || res.Labels[LabelInfoID] != infoID {
		t.Fatalf("token of the new login: %+v %v", res, err)
	}

	fake.FailNext(1)
	_, err = p.Probe(ctx, cfg, provider.Grant{AccessToken: again})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != "http_503" {
		t.Fatalf("503: got %v, want a transient http_503", err)
	}
	fake.InjectFault(baomingtest.Fault{Kind: baomingtest.FaultRateLimit, RetryAfter: 30 * time.Second, Count: 1})
	_, err = p.Probe(ctx, cfg, provider.Grant{AccessToken: again})
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != "http_429" || pe.RetryAfter != 30*time.Second {
		t.Fatalf("429: got %v, want a transient http_429 asking for 30s", err)
	}
	fake.InjectFault(baomingtest.Fault{Kind: baomingtest.FaultEmptyBody, Count: 1})
	_, err = p.Probe(ctx, cfg, provider.Grant{AccessToken: again})
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != CodeMalformedResponse {
		t.Fatalf("empty body: got %v, want a transient %s", err, CodeMalformedResponse)
	}
}

// TestProbeRequest pins the wire call: one GET of /xcx/enroll/v3/detail with exactly
// access_token and eid in the query, nothing in the body.
func TestProbeRequest(t *testing.T) {
	const tok = "bm_0123456789abcdefABCDEF0123456789"
	var (
		mu   sync.Mutex
		seen []*http.Request
		body []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen, body = append(seen, r), b
		mu.Unlock()
		_, _ = io.WriteString(w, `{"sta":0,"msg":"ok","data":{"eid":"`+seedEID+`","info_id":"698add7c7068f814935d6804"}}`)
	}))
	defer srv.Close()
	// A path prefix on base_url is kept.
	cfg := provider.Config{BaseURL: srv.URL + "/prefix/", EnrollID: seedEID}
	valid, err := New(nil).Probe(context.Background(), cfg, provider.Grant{AccessToken: tok})
	if err != nil || !valid {
		t.Fatalf("valid=%v err=%v", valid, err)
	}
	if len(seen) != 1 {
		t.Fatalf("%d requests, want 1", len(seen))
	}
	r := seen[0]
	want := url.Values{"access_token": {tok}, "eid": {seedEID}}
	if r.Method != http.MethodGet || r.URL.Path != "/prefix"+DetailPath || r.URL.Query().Encode() != want.Encode() || len(body) != 0 {
		t.Errorf("request %s %s (body %q), want GET /prefix%s?%s", r.Method, r.URL, body, DetailPath, want.Encode())
	}
	if r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		t.Errorf("headers %v", r.Header)
	}
}

func TestProbeClassification(t *testing.T) {
	const tok = "bm_0123456789abcdefABCDEF0123456789"
	const info = `"info_id":"698add7c7068f814935d6804"`
	for _, tc := range []struct {
		name     string
		status   int
		header   []string
		body     string
		valid    bool
		no       string // the Code of a clear "no"
		kind     provider.Kind
		code     string // the Code of an error
		retry    time.Duration
		wantInfo string
	}{
		{name: "seed 004: sta 0 with info_id", status: 200, body: `{"sta":0,"msg":"ok","data":{"eid":"` + seedEID + `",` + info + `,"title":"t"}}`, valid: true, wantInfo: "698add7c7068f814935d6804"},
		{name: "sta as a string", status: 200, body: `{"sta":"0","data":{` + info + `}}`, valid: true, wantInfo: "698add7c7068f814935d6804"},
		{name: "info_id a number", status: 200, body: `{"sta":0,"data":{"info_id":12345}}`, valid: true, wantInfo: "12345"},
		{name: "info_id not an id: valid, no label", status: 200, body: `{"sta":0,"data":{"info_id":"<b>x</b>"}}`, valid: true},
		{name: "info_id echoing the token: valid, no label", status: 200, body: `{"sta":0,"data":{"info_id":"` + tok + `"}}`, valid: true},
		{name: "sta 0, info_id empty", status: 200, body: `{"sta":0,"msg":"ok","data":{"eid":"` + seedEID + `","info_id":""}}`, no: CodeNotEnrolled},
		{name: "sta 0, info_id null", status: 200, body: `{"sta":0,"data":{"info_id":null}}`, no: CodeNotEnrolled},
		{name: "sta 0, data null", status: 200, body: `{"msg":"未找到已有报名记录","sta":0,"data":null}`, no: CodeNotEnrolled},
		{name: "sta 0, no data", status: 200, body: `{"sta":0}`, no: CodeNotEnrolled},
		{name: "sta 0, data not an object", status: 200, body: `{"sta":0,"data":[1]}`, no: CodeNotEnrolled},
		{name: "sta -500", status: 200, body: `{"msg":"invalid access_token","sta":-500}`, no: CodeTokenRejected},
		{name: "sta -1", status: 200, body: `{"sta":-1,"msg":"登录已失效"}`, no: CodeTokenRejected},
		{name: "sta != 0 with info_id", status: 200, body: `{"sta":1,"data":{` + info + `}}`, no: CodeTokenRejected},
		{name: "401", status: 401, no: CodeTokenRejected},
		{name: "403", status: 403, body: `forbidden`, no: CodeTokenRejected},
		{name: "429", status: 429, header: []string{"Retry-After", "30"}, body: `slow down`, kind: provider.Transient, code: "http_429", retry: 30 * time.Second},
		{name: "503 with a huge Retry-After", status: 503, header: []string{"Retry-After", "999999"}, kind: provider.Transient, code: "http_503", retry: time.Hour},
		{name: "server error echoing the token", status: 502, body: `bad gateway for access_token=` + tok, kind: provider.Transient, code: "http_502"},
		{name: "redirect", status: 302, header: []string{"Location", "https://elsewhere.example/steal"}, kind: provider.Transient, code: "http_302"},
		{name: "404", status: 404, kind: provider.Transient, code: "http_404"},
		{name: "not json", status: 200, body: `<html>` + tok + `</html>`, kind: provider.Transient, code: CodeMalformedResponse},
		{name: "json without sta", status: 200, body: `{"data":{` + info + `}}`, kind: provider.Transient, code: CodeMalformedResponse},
		{name: "sta null", status: 200, body: `{"sta":null}`, kind: provider.Transient, code: CodeMalformedResponse},
		{name: "sta not an integer", status: 200, body: `{"sta":"ok"}`, kind: provider.Transient, code: CodeMalformedResponse},
		{name: "sta a fraction", status: 200, body: `{"sta":0.5}`, kind: provider.Transient, code: CodeMalformedResponse},
		{name: "json array", status: 200, body: `[{"sta":0}]`, kind: provider.Transient, code: CodeMalformedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tc.header); i += 2 {
					w.Header().Set(tc.header[i], tc.header[i+1])
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			res, err := New(nil).ProbeDetail(context.Background(), provider.Config{BaseURL: srv.URL, EnrollID: seedEID}, provider.Grant{AccessToken: tok})
			if tc.code == "" {
				if err != nil || res.Valid != tc.valid || res.Code != tc.no || res.Labels[LabelInfoID] != tc.wantInfo {
					t.Fatalf("%+v %v, want valid=%v code %q info_id %q", res, err, tc.valid, tc.no, tc.wantInfo)
				}
				if tc.valid && tc.wantInfo == "" && res.Labels != nil {
					t.Fatalf("labels %v, want none", res.Labels)
				}
				if strings.Contains(res.Description, tok) || strings.Contains(strings.Join(values(res.Labels), " "), tok) {
					t.Fatalf("result leaks the token: %+v", res)
				}
				return
			}
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != tc.kind || pe.Code != tc.code || pe.RetryAfter != tc.retry {
				t.Fatalf("got %v, want %s %s retry %s", err, tc.kind, tc.code, tc.retry)
			}
			if res.Valid {
				t.Fatal("an error with a valid verdict")
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func values(m map[string]string) []string {
	var vs []string
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

func TestNetworkErrorDoesNotLeakTheTokenInTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const tok = "bm_secretsecret0123456789SECRET"
	_, err = New(nil).Probe(context.Background(), provider.Config{BaseURL: "http://" + addr, EnrollID: seedEID}, provider.Grant{AccessToken: tok})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.Code != CodeNetwork {
		t.Fatalf("got %v, want transient network", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "secretsecret") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestValidation(t *testing.T) {
	p := &Provider{}
	if err := p.ValidateGrant(provider.Grant{}); err == nil || !strings.HasPrefix(err.Error(), "access_token:") {
		t.Fatalf("empty grant: %v", err)
	}
	if err := p.ValidateGrant(provider.Grant{AccessToken: "bm_x"}); err != nil {
		t.Fatalf("grant: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  provider.Config
		want string // error prefix; "" = accepted
	}{
		{"eid alone (default base)", provider.Config{EnrollID: seedEID}, ""},
		{"eid upper case", provider.Config{EnrollID: strings.ToUpper(seedEID)}, ""},
		{"loopback base", provider.Config{EnrollID: seedEID, BaseURL: "http://127.0.0.1:8080/x"}, ""},
		{"no eid", provider.Config{}, "eid: required"},
		{"eid too short", provider.Config{EnrollID: seedEID[:23]}, "eid: must be"},
		{"eid not hex", provider.Config{EnrollID: "698add7c7068f814935d680z"}, "eid: must be"},
		{"a token pasted as eid", provider.Config{EnrollID: "6c92edd683f04904b0250d85751f1749"}, "eid: must be"},
		{"ftp base", provider.Config{EnrollID: seedEID, BaseURL: "ftp://x"}, "base_url:"},
		{"plain http to a remote host", provider.Config{EnrollID: seedEID, BaseURL: "http://api-xcx-qunsou.weiyoubot.cn"}, "base_url: must use https"},
		{"base with a query", provider.Config{EnrollID: seedEID, BaseURL: "https://api.example.com/?a=1"}, "base_url:"},
		{"token_url", provider.Config{EnrollID: seedEID, TokenURL: "https://api.example.com/token"}, "token_url: not used by baoming"},
		{"userinfo_url", provider.Config{EnrollID: seedEID, UserinfoURL: "https://api.example.com/me"}, "userinfo_url: not used"},
		{"client_id", provider.Config{EnrollID: seedEID, ClientID: "app"}, "client_id: not used"},
		{"scopes", provider.Config{EnrollID: seedEID, Scopes: []string{"a"}}, "scopes: not used"},
		{"parent", provider.Config{EnrollID: seedEID, Parent: "x"}, "parent: not used"},
	} {
		err := p.ValidateConfig(tc.cfg)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, ok := any(p).(provider.Refresher); ok {
		t.Fatal("the adapter is a provider.Refresher; baoming has no refresh endpoint")
	}
}

// TestProbeRefusesBadConfigWithoutSending: a probe without eid asks nothing (it could
// only get a meaningless answer) and says what to fix.
func TestProbeRefusesBadConfigWithoutSending(t *testing.T) {
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests++ }))
	defer srv.Close()
	_, err := New(nil).Probe(context.Background(), provider.Config{BaseURL: srv.URL}, provider.Grant{AccessToken: "bm_x"})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != CodeInvalidConfig || !strings.Contains(err.Error(), "config.eid: required") {
		t.Fatalf("no eid: %v", err)
	}
	if requests != 0 {
		t.Fatalf("%d requests sent", requests)
	}
}
