package wire

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"17", 17 * time.Second},
		{" 17 ", 17 * time.Second},
		{"3600", time.Hour},
		{"3601", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{now.Add(45 * time.Second).Format(time.RFC850), 45 * time.Second},
		{now.Add(45 * time.Second).Format(time.ANSIC), 45 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
	}
	for _, tc := range cases {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseDelaySeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{" 17 ", 17 * time.Second},
		{"3601", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"10000000000", MaxRetryAfter}, // would overflow time.Duration if not capped first
		{"-5", 0},
		{"+5", 0},
		{"5s", 0},
		{"1.5", 0},
		{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat), 0},
	} {
		if got := ParseDelaySeconds(tc.in); got != tc.want {
			t.Errorf("ParseDelaySeconds(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want int64
	}{
		{nil, 0},
		{true, 0},
		{json.Number("90000"), 90000},
		{json.Number("1.9"), 1},
		{json.Number("-1"), 0},
		{"  7200 ", 7200},
		{"NaN", 0},
		{"soon", 0},
		{float64(60), 60},
		{int64(60), 60},
		{"1e30", MaxLifetimeSeconds},
		{"Inf", MaxLifetimeSeconds},
	} {
		if got := Seconds(tc.in); got != tc.want {
			t.Errorf("Seconds(%#v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestValidateURLs(t *testing.T) {
	for _, tc := range []struct {
		raw            string
		endpoint, base error // nil: accepted
	}{
		{"https://api.example.com", nil, nil},
		{"http://127.0.0.1:8080/prefix/", nil, nil},
		{"api.example.com", ErrNotAbsoluteURL, ErrNotAbsoluteURL},
		{"/token", ErrNotAbsoluteURL, ErrNotAbsoluteURL},
		{"ftp://api.example.com", ErrNotAbsoluteURL, ErrNotAbsoluteURL},
		{"https:///token", ErrNotAbsoluteURL, ErrNotAbsoluteURL},
		{"https://exa mple.com/%zz", ErrNotAbsoluteURL, ErrNotAbsoluteURL},
		{"https://u:p@api.example.com", ErrUserInfo, ErrUserInfo},
		{"https://api.example.com/token?tenant=1", nil, ErrQueryOrFragment},
		{"https://api.example.com/#frag", nil, ErrQueryOrFragment},
		{"https://api.example.com/?", nil, ErrQueryOrFragment},
		// Plain http only to this machine.
		{"http://127.0.0.1", nil, nil},
		{"http://127.10.20.30:9000/token", nil, nil},
		{"http://[::1]:8080", nil, nil},
		{"http://[::ffff:127.0.0.1]:8080", nil, nil},
		{"http://localhost:8080", nil, nil},
		{"HTTP://LOCALHOST:8080", nil, nil},
		{"https://127.0.0.1:8443", nil, nil},
		{"http://api.example.com", ErrPlainHTTP, ErrPlainHTTP},
		{"http://chatapi.smsbat.com/api", ErrPlainHTTP, ErrPlainHTTP},
		{"http://10.0.0.5:8080", ErrPlainHTTP, ErrPlainHTTP},
		{"http://0.0.0.0:8080", ErrPlainHTTP, ErrPlainHTTP},
		{"http://128.0.0.1", ErrPlainHTTP, ErrPlainHTTP},
		{"http://[::2]:8080", ErrPlainHTTP, ErrPlainHTTP},
		{"http://localhost.example.com", ErrPlainHTTP, ErrPlainHTTP},
		{"http://app.localhost:8080", ErrPlainHTTP, ErrPlainHTTP},
		{"http://127.0.0.1.example.com", ErrPlainHTTP, ErrPlainHTTP},
		{"http://2130706433", ErrPlainHTTP, ErrPlainHTTP}, // 127.0.0.1 as one number: a name here
		{"http://u:p@127.0.0.1", ErrUserInfo, ErrUserInfo},
		{"http://api.example.com/token?x=1", ErrPlainHTTP, ErrPlainHTTP},
	} {
		for _, c := range []struct {
			name string
			fn   func(string, string) error
			want error
		}{{"ValidateEndpointURL", ValidateEndpointURL, tc.endpoint}, {"ValidateBaseURL", ValidateBaseURL, tc.base}} {
			err := c.fn("base_url", tc.raw)
			switch {
			case c.want == nil && err != nil:
				t.Errorf("%s(%q) = %v, want nil", c.name, tc.raw, err)
			case c.want != nil && (!errors.Is(err, c.want) || err.Error() != "base_url: "+c.want.Error()):
				t.Errorf("%s(%q) = %v, want base_url: %v", c.name, tc.raw, err, c.want)
			}
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSingleShotRefusesASecondRequestAndRedirects(t *testing.T) {
	errSecond := errors.New("second")
	var n atomic.Int32
	orig := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		n.Add(1)
		return &http.Response{StatusCode: http.StatusFound, Body: io.NopCloser(strings.NewReader("")),
			Header: http.Header{"Location": {"https://elsewhere.example/"}}}, nil
	})}
	hc := SingleShot(orig, errSecond)
	if orig.CheckRedirect != nil || hc == orig {
		t.Fatal("SingleShot changed the caller's client")
	}
	req, _ := http.NewRequest(http.MethodPost, "http://x/", strings.NewReader("{}"))
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("first request: %v %v (the 3xx must come back, not be followed)", resp, err)
	}
	resp.Body.Close()
	req2, _ := http.NewRequest(http.MethodPost, "http://x/", strings.NewReader("{}"))
	if _, err := hc.Do(req2); !errors.Is(err, errSecond) || n.Load() != 1 {
		t.Fatalf("second request: %v, base saw %d", err, n.Load())
	}
	if c := SingleShot(nil, errSecond); c.Timeout != DefaultTimeout {
		t.Fatalf("nil client: timeout %v", c.Timeout)
	}
}
