package chathubtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub"
	"github.com/tokenwarden/tokenwarden/internal/provider/chathub/chathubtest"
)

func start(t *testing.T, opts chathubtest.Options) (*chathubtest.Server, provider.Config) {
	t.Helper()
	s := chathubtest.New(opts)
	s.AddCompany("acme", "pw")
	s.AddOperator("acme", 123)
	t.Cleanup(s.Close)
	return s, provider.Config{BaseURL: s.Start()}
}

func post(t *testing.T, url, bearer, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func TestCompanyLoginThroughAdapter(t *testing.T) {
	s, cfg := start(t, chathubtest.Options{CompanyLifetime: time.Hour})
	c := chathub.NewCompany(nil, nil)
	ts, err := c.Refresh(context.Background(), cfg, provider.Grant{Username: "acme", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(ts.AccessExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("exp from the JWT: %s ahead", d)
	}
	if !s.ValidCompanyToken(ts.AccessToken) || s.Logins() != 1 {
		t.Errorf("token not valid at the fake, logins %d", s.Logins())
	}
	_, err = chathub.NewCompany(nil, nil).Refresh(context.Background(), cfg, provider.Grant{Username: "acme", Password: "wrong"})
	if pe, ok := err.(*provider.Error); !ok || pe.Kind != provider.Permanent || pe.Code != chathub.CodeLoginRejected || pe.HTTPStatus != 401 {
		t.Errorf("bad password: %v", err)
	}
	if s.LoginFailures() != 1 {
		t.Errorf("login failures %d", s.LoginFailures())
	}

	s2, cfg2 := start(t, chathubtest.Options{Unsigned: true})
	ts, err = c.Refresh(context.Background(), cfg2, provider.Grant{Username: "acme", Password: "pw"})
	// No exp: the adapter reports the token as living for its rotation period.
	if err != nil || time.Until(ts.AccessExpiresAt) < chathub.DefaultCompanyRotation-time.Minute ||
		!strings.HasSuffix(ts.AccessToken, ".") || !s2.ValidCompanyToken(ts.AccessToken) {
		t.Errorf("unsigned, no exp: %+v %v", ts, err)
	}
}

func TestOperatorEndpoints(t *testing.T) {
	s, cfg := start(t, chathubtest.Options{})
	var company string
	if st := post(t, cfg.BaseURL+chathubtest.CompanyTokenPath, "", `{"login":"acme","password":"pw"}`, &company); st != 200 || company == "" {
		t.Fatalf("company token: %d", st)
	}
	exp := time.Now().Add(12 * time.Hour).UTC().Format(time.RFC3339)
	var op string
	if st := post(t, cfg.BaseURL+chathubtest.OperatorTokenPath, company, `{"id":123,"expiresAt":"`+exp+`"}`, &op); st != 200 {
		t.Fatalf("operator token: %d", st)
	}
	if e, err := chathub.TokenExpiry(op); err != nil || e.Format(time.RFC3339) != exp {
		t.Errorf("operator exp %s %v, want %s", e, err, exp)
	}
	var v map[string]any
	if st := post(t, cfg.BaseURL+chathubtest.ValidatePath, company, `{"token":"`+op+`"}`, &v); st != 200 ||
		v["isValid"] != true || v["operatorId"] != 123.0 || v["clientId"] != 1.0 || v["expiresAt"] != exp || v["error"] != nil {
		t.Errorf("validate: %d %v", st, v)
	}
	v = nil
	if post(t, cfg.BaseURL+chathubtest.ValidatePath, company, `{"token":"nonsense"}`, &v); v["isValid"] != false || v["error"] != "Invalid token" {
		t.Errorf("validate nonsense: %v", v)
	}
	for _, tc := range []struct {
		bearer, body string
		want         int
	}{
		{"", `{"id":123,"expiresAt":"` + exp + `"}`, 401},
		{"not-a-token", `{"id":123,"expiresAt":"` + exp + `"}`, 401},
		{company, `{"id":999,"expiresAt":"` + exp + `"}`, 404},
		{company, `{"id":123,"expiresAt":"` + time.Now().Add(25*time.Hour).UTC().Format(time.RFC3339) + `"}`, 400},
		{company, `{"id":123,"expiresAt":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`, 400},
		{company, `{"id":123}`, 400},
	} {
		if st := post(t, cfg.BaseURL+chathubtest.OperatorTokenPath, tc.bearer, tc.body, nil); st != tc.want {
			t.Errorf("operator %s: %d, want %d", tc.body, st, tc.want)
		}
	}
	// By default a new company token leaves older ones and their operator tokens alone.
	var company2 string
	post(t, cfg.BaseURL+chathubtest.CompanyTokenPath, "", `{"login":"acme","password":"pw"}`, &company2)
	if !s.ValidCompanyToken(company) || !s.ValidOperatorToken(op) || s.OperatorTokens() != 1 {
		t.Errorf("rotation invalidated tokens by default")
	}
	s.RevokeCompanyTokens("acme")
	if s.ValidCompanyToken(company2) || s.ValidOperatorToken(op) {
		t.Errorf("RevokeCompanyTokens left tokens valid")
	}
}

func TestRevokeOnRotationAndFaults(t *testing.T) {
	s, cfg := start(t, chathubtest.Options{RevokeOnRotation: true})
	// A new adapter per login: one adapter spaces the logins of a company a second apart,
	// which this test of the fake has no need to wait for.
	c := func() *chathub.Company { return chathub.NewCompany(nil, nil) }
	g := provider.Grant{Username: "acme", Password: "pw"}
	first, err := c().Refresh(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	var op string
	post(t, cfg.BaseURL+chathubtest.OperatorTokenPath, first.AccessToken, `{"id":123,"expiresAt":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}`, &op)
	second, err := c().Refresh(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	if s.ValidCompanyToken(first.AccessToken) || s.ValidOperatorToken(op) || !s.ValidCompanyToken(second.AccessToken) {
		t.Errorf("RevokeOnRotation did not revoke the old company token and its operator token")
	}
	if latest, ok := s.LatestCompanyToken("acme"); !ok || latest != second.AccessToken {
		t.Errorf("LatestCompanyToken")
	}

	for _, f := range []chathubtest.Fault{
		{Kind: chathubtest.FaultStatus, Status: 502, Count: 1},
		{Kind: chathubtest.FaultMalformedJSON, Count: 1},
		{Kind: chathubtest.FaultMissingToken, Phase: chathubtest.AfterGrant, Count: 1},
		{Kind: chathubtest.FaultCloseConnection, Count: 1},
	} {
		s.InjectFault(f)
		_, err := c().Refresh(context.Background(), cfg, g)
		if err == nil || provider.IsPermanent(err) {
			t.Errorf("fault %v: %v, want a transient error", f.Kind, err)
		}
	}
	if s.PendingFaults() != 0 {
		t.Errorf("%d faults left", s.PendingFaults())
	}
}
