package consent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRedeemRules(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewCodes("c_", time.Minute, func() time.Time { return now })
	const verifier = "v-0123456789-0123456789-0123456789-0123"
	g := Grant{Family: "f", ClientID: "app", RedirectURI: "http://127.0.0.1:1/cb", Challenge: ChallengeS256(verifier)}
	good := Presented{ClientID: "app", RedirectURI: g.RedirectURI, CheckRedirect: true, Verifier: verifier}
	with := func(f func(*Presented)) Presented { p := good; f(&p); return p }
	for _, tc := range []struct {
		name    string
		p       Presented
		advance time.Duration
		want    Outcome
	}{
		{"ok", good, 0, OK},
		{"other kind", with(func(p *Presented) { p.Kind = 2 }), 0, Unknown},
		{"other client", with(func(p *Presented) { p.ClientID = "other" }), 0, WrongClient},
		{"other redirect", with(func(p *Presented) { p.RedirectURI = "http://127.0.0.1:2/cb" }), 0, WrongRedirect},
		{"redirect unchecked", with(func(p *Presented) { p.RedirectURI, p.CheckRedirect = "", false }), 0, OK},
		{"wrong verifier", with(func(p *Presented) { p.Verifier = "nope" }), 0, WrongVerifier},
		{"no verifier", with(func(p *Presented) { p.Verifier = "" }), 0, WrongVerifier},
		{"expired", good, time.Minute, Expired},
	} {
		code := c.Issue(g)
		now = now.Add(tc.advance)
		if _, got := c.Redeem(code, tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		// Whatever the first outcome, a code found once is burnt (except on the wrong
		// kind's path, where it is unknown).
		if _, got := c.Redeem(code, good); tc.want != Unknown && got != Used && got != Expired {
			t.Errorf("%s: second redemption %v, want used", tc.name, got)
		}
	}
	if _, got := c.Redeem("c_never", good); got != Unknown {
		t.Errorf("unknown code: %v", got)
	}
}

func TestRedirectAllowed(t *testing.T) {
	reg := []string{"http://127.0.0.1:8080/cb", "https://app.example.com/done"}
	for uri, want := range map[string]bool{
		"http://127.0.0.1:8080/cb":          true,
		"http://127.0.0.1:41000/cb":         true, // RFC 8252 section 7.3: any loopback port
		"http://127.0.0.1:41000/other":      false,
		"https://app.example.com/done":      true,
		"https://app.example.com/done?x=1":  false,
		"https://evil.example.com/done":     false,
		"http://127.0.0.1:8080/cb#fragment": false,
	} {
		if got := RedirectAllowed(reg, uri); got != want {
			t.Errorf("RedirectAllowed(%s) = %v, want %v", uri, got, want)
		}
	}
	if !RedirectAllowed(nil, "http://localhost:5/x") || RedirectAllowed(nil, "https://app.example.com/x") {
		t.Error("with nothing registered, exactly the loopback http URIs pass")
	}
}

func TestPage(t *testing.T) {
	codes := NewCodes("c_", 0, nil)
	page := &Page{Provider: "fake", Codes: codes, Parse: func(q url.Values, account string) (Request, error) {
		if !RedirectAllowed(nil, q.Get("redirect_uri")) {
			return Request{}, errors.New("redirect_uri not registered")
		}
		return Request{Grant: Grant{Family: account, ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri")}, State: q.Get("state")}, nil
	}}
	srv := httptest.NewServer(page)
	defer srv.Close()
	authURL := srv.URL + "/authorize?" + url.Values{"client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:9/cb?keep=1"}, "state": {"s t"}}.Encode()

	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	resp.Body.Close()
	for _, want := range []string{">Approve</button>", ">Deny</button>", `name="state" value="s t"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q:\n%s", want, b.String())
		}
	}

	back, err := Submit(http.DefaultClient, authURL, "approve")
	if err != nil {
		t.Fatal(err)
	}
	if q := back.Query(); q.Get("state") != "s t" || !strings.HasPrefix(q.Get("code"), "c_") || q.Get("keep") != "1" || back.Host != "127.0.0.1:9" {
		t.Errorf("approve redirected to %s", back.Redacted())
	}
	back, err = Submit(http.DefaultClient, authURL, "deny")
	if err != nil {
		t.Fatal(err)
	}
	if q := back.Query(); q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("state") != "s t" {
		t.Errorf("deny redirected to %s", back.Redacted())
	}
	if codes.Issued() != 1 || codes.Denied() != 1 {
		t.Errorf("issued %d, denied %d", codes.Issued(), codes.Denied())
	}
	// An unregistered redirect URI is an error page, never a redirect.
	bad := srv.URL + "/authorize?" + url.Values{"client_id": {"app"}, "redirect_uri": {"https://evil.example.com/cb"}}.Encode()
	if _, err := Submit(http.DefaultClient, bad, "approve"); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("unregistered redirect_uri: %v", err)
	}
	resp, err = http.PostForm(bad, url.Values{"client_id": {"app"}, "redirect_uri": {"https://evil.example.com/cb"}, "decision": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("posting an approval for an unregistered redirect_uri: HTTP %d", resp.StatusCode)
	}
}
