package activities_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/mock/gomock"

	"github.com/tokenwarden/tokenwarden/activities"
	"github.com/tokenwarden/tokenwarden/internal/leasetiming"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/internal/store/storemock"
)

const credID = "cred-1"

func TestRefreshCommitsRotatedToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	if v != 1 {
		t.Fatalf("seeded version %d, want 1", v)
	}
	now := h.clock.Now()

	res := h.mustRefresh(h.request(credID, v))

	want := activities.RefreshResult{
		Version:         2,
		AccessExpiresAt: now.Add(accessLifetime),
		RefreshedAt:     now,
		Rotated:         true,
	}
	if !res.AccessExpiresAt.Equal(want.AccessExpiresAt) || !res.RefreshedAt.Equal(want.RefreshedAt) ||
		res.Version != want.Version || res.Rotated != want.Rotated || res.AlreadyCommitted ||
		!res.RefreshExpiresAt.IsZero() {
		t.Fatalf("result = %+v, want %+v", res, want)
	}

	rec := h.get(credID)
	latest, ok := h.fake.Latest("fam")
	if !ok {
		t.Fatal("fake family has no live token")
	}
	if rec.Version != 2 || rec.Secrets.RefreshToken != latest || latest == rt {
		t.Fatalf("store holds version %d, refresh token is the live one: %v", rec.Version, rec.Secrets.RefreshToken == latest)
	}
	if !h.fake.ValidAccessToken(rec.Secrets.AccessToken) {
		t.Fatal("stored access token is not one the provider issued")
	}
	if rec.Secrets.ClientSecret != testClientSecret || rec.TokenType != "Bearer" || !rec.AccessExpiresAt.Equal(want.AccessExpiresAt) {
		t.Fatalf("stored record lost fields: client secret kept %v, token type %q, access expiry %s",
			rec.Secrets.ClientSecret == testClientSecret, rec.TokenType, rec.AccessExpiresAt)
	}
	if rec.Lease != (store.Lease{}) {
		t.Fatalf("commit left a lease behind: %+v", rec.Lease)
	}
	if h.fake.MaxPresentations() != 1 || h.fake.ReuseDetections() != 0 || h.fake.Refreshes() != 1 {
		t.Fatalf("provider saw max %d presentations, %d reuse detections, %d refreshes",
			h.fake.MaxPresentations(), h.fake.ReuseDetections(), h.fake.Refreshes())
	}
	// The result travels into workflow history; so do the logs' neighbours. No token in either.
	h.assertNoSecretsInLogs(rt, latest, rec.Secrets.AccessToken)
}

func TestRefreshChainPresentsEveryTokenOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{fake: oauth2test.Options{RefreshLifetime: 24 * time.Hour}})
	_, v := h.seed(credID, "fam", testClientSecret)
	seen := map[string]bool{}
	for i := range 5 {
		h.clock.Advance(5 * time.Minute)
		res := h.mustRefresh(h.request(credID, v))
		if res.Version != v+1 || !res.Rotated || res.AlreadyCommitted {
			t.Fatalf("refresh %d: result %+v after version %d", i, res, v)
		}
		if want := h.clock.Now().Add(24 * time.Hour); !res.RefreshExpiresAt.Equal(want) {
			t.Fatalf("refresh %d: refresh expiry %s, want %s", i, res.RefreshExpiresAt, want)
		}
		v = res.Version
		rec := h.get(credID)
		if latest, _ := h.fake.Latest("fam"); rec.Secrets.RefreshToken != latest || rec.Version != v {
			t.Fatalf("refresh %d: store (version %d) does not hold the live token", i, rec.Version)
		}
		if seen[rec.Secrets.RefreshToken] {
			t.Fatalf("refresh %d: refresh token repeated", i)
		}
		seen[rec.Secrets.RefreshToken] = true
	}
	if v != 6 || h.fake.MaxPresentations() != 1 || h.fake.TotalPresentations() != 5 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("version %d, max %d, total %d presentations, %d reuse detections",
			v, h.fake.MaxPresentations(), h.fake.TotalPresentations(), h.fake.ReuseDetections())
	}
}

// A retried activity whose earlier attempt committed must not present the (now spent)
// token again: it reports the committed version instead.
func TestRefreshAlreadyCommitted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	first := h.mustRefresh(h.request(credID, v))
	before := h.fake.Requests()

	for _, expected := range []int64{v, 0} {
		res := h.mustRefresh(h.request(credID, expected))
		if !res.AlreadyCommitted || res.Rotated || res.Version != first.Version ||
			!res.AccessExpiresAt.Equal(first.AccessExpiresAt) || !res.RefreshedAt.Equal(first.RefreshedAt) {
			t.Fatalf("expected version %d: result %+v, want the committed %+v", expected, res, first)
		}
	}
	if h.fake.Requests() != before {
		t.Fatalf("provider got %d requests after the commit, want none", h.fake.Requests()-before)
	}
	if rec := h.get(credID); rec.Version != first.Version {
		t.Fatalf("store version %d, want %d", rec.Version, first.Version)
	}
}

func TestRefreshLeaseHeldByAnotherAttempt(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	if _, err := h.sqlite.AcquireLease(context.Background(), credID, "other-run/7#1", 45*time.Second); err != nil {
		t.Fatal(err)
	}

	_, err := h.refresh(h.request(credID, v))
	appErr := appError(t, err, activities.ErrTypeInFlight, false)
	// Temporal should come back just after the lease can expire, not before.
	if d := appErr.NextRetryDelay(); d != 46*time.Second {
		t.Fatalf("NextRetryDelay = %s, want the lease's remaining 45s + 1s", d)
	}
	if h.fake.Requests() != 0 {
		t.Fatalf("provider got %d requests while another attempt held the lease", h.fake.Requests())
	}
	rec := h.get(credID)
	if rec.Version != v || rec.Lease.Owner != "other-run/7#1" || rec.Secrets.RefreshToken != rt {
		t.Fatalf("in-flight attempt changed the record: version %d, lease %+v", rec.Version, rec.Lease)
	}
	h.assertNoSecrets(err, h.secrets(credID, "fam")...)
}

// Two attempts racing for real: the second arrives while the first is waiting on the
// provider. Only one may present the token.
func TestRefreshConcurrentAttemptsPresentOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	rt, v := h.seed(credID, "fam", testClientSecret)
	h.fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultLatency, Count: 1, Delay: 300 * time.Millisecond})

	type outcome struct {
		res activities.RefreshResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := h.refresh(h.request(credID, v))
		done <- outcome{res, err}
	}()
	// Wait until the first attempt is on the wire, holding the lease.
	deadline := time.Now().Add(5 * time.Second)
	for h.fake.Presentations(rt) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first attempt never reached the provider")
		}
		time.Sleep(5 * time.Millisecond)
	}
	env2 := newActivityEnv(h.acts)
	_, err := env2.ExecuteActivity(h.acts.Refresh, h.request(credID, v))
	appError(t, err, activities.ErrTypeInFlight, false)

	first := <-done
	if first.err != nil || first.res.Version != 2 {
		t.Fatalf("first attempt: %+v, %v", first.res, first.err)
	}
	if h.fake.TotalPresentations() != 1 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("provider saw %d presentations, %d reuse detections", h.fake.TotalPresentations(), h.fake.ReuseDetections())
	}
}

func TestRefreshAfterInterruptedAttempt(t *testing.T) {
	leaseDuration := activities.DefaultLeaseDuration

	// takeStaleLease leaves the lease of an attempt that died leaseDuration+1s ago.
	takeStaleLease := func(h *harness) store.Lease {
		t.Helper()
		h.takeLeaseAgo(credID, "dead-run/3#2", leaseDuration+time.Second, leaseDuration)
		return h.get(credID).Lease
	}

	t.Run("token spent by the dead attempt", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		rt, v := h.seed(credID, "fam", testClientSecret)
		stale := takeStaleLease(h)
		// The dead attempt's presentation: the provider rotated, nobody stored the answer.
		spend(t, h, rt)

		_, err := h.refresh(h.request(credID, v))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if !strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
			t.Fatalf("error %q does not name the interrupted refresh", err)
		}
		d := detailOf(t, appErr)
		if !d.InterruptedAt.Equal(stale.TakenAt) || d.Code != "invalid_grant" {
			t.Fatalf("detail = %+v, want code invalid_grant and InterruptedAt %s", d, stale.TakenAt)
		}
		if h.fake.Presentations(rt) != 2 {
			t.Fatalf("spent token presented %d times, want exactly once more", h.fake.Presentations(rt))
		}
		if rec := h.get(credID); rec.Version != v || rec.Secrets.RefreshToken != rt {
			t.Fatalf("a rejected refresh changed the store (version %d)", rec.Version)
		}
		h.assertLeaseFree(credID)
		h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
	})

	t.Run("dead attempt never reached the provider", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		rt, v := h.seed(credID, "fam", testClientSecret)
		takeStaleLease(h)

		res := h.mustRefresh(h.request(credID, v))
		if res.Version != v+1 || !res.Rotated {
			t.Fatalf("result %+v", res)
		}
		rec := h.get(credID)
		if latest, _ := h.fake.Latest("fam"); rec.Secrets.RefreshToken != latest || rec.Lease != (store.Lease{}) {
			t.Fatalf("store does not hold the live token, or kept the lease %+v", rec.Lease)
		}
		if h.fake.Presentations(rt) != 1 || h.fake.ReuseDetections() != 0 {
			t.Fatalf("presentations %d, reuse %d", h.fake.Presentations(rt), h.fake.ReuseDetections())
		}
	})

	// Control: without a stale lease the same rejection is a plain permanent error; the
	// interruption reason must come from the lease, not from the provider's answer.
	t.Run("no stale lease", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		rt, v := h.seed(credID, "fam", testClientSecret)
		spend(t, h, rt)

		_, err := h.refresh(h.request(credID, v))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
			t.Fatalf("error %q claims an interrupted refresh", err)
		}
		if d := detailOf(t, appErr); !d.InterruptedAt.IsZero() || d.Code != "invalid_grant" {
			t.Fatalf("detail = %+v", d)
		}
	})
}

// spend presents rt to the fake directly through the adapter, as a dead attempt would
// have, and discards the answer.
func spend(t *testing.T, h *harness, rt string) {
	t.Helper()
	p, err := h.acts.Providers.Lookup(catalog.OAuth2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.(provider.Refresher).Refresh(context.Background(), h.config(), provider.Grant{RefreshToken: rt, ClientSecret: testClientSecret}); err != nil {
		t.Fatalf("spending the token: %v", err)
	}
}

func TestRefreshPermanentProviderErrors(t *testing.T) {
	cases := []struct {
		name string
		// setup runs after seeding with clientSecret and returns extra secret values that
		// must not leak.
		clientSecret string
		setup        func(h *harness, rt string) []string
		code         string
	}{
		{
			name:         "revoked family",
			clientSecret: testClientSecret,
			setup: func(h *harness, rt string) []string {
				h.fake.RevokeFamily("fam")
				return nil
			},
			code: "invalid_grant",
		},
		{
			name:         "wrong client secret",
			clientSecret: "cs_WrongClientSecretValue_0123456789",
			setup:        func(h *harness, rt string) []string { return nil },
			code:         "invalid_client",
		},
		{
			// A hostile or buggy server quoting our secrets back in its error.
			name:         "error description echoes secrets",
			clientSecret: testClientSecret,
			setup: func(h *harness, rt string) []string {
				h.fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultStatus, Count: 1, Status: 400,
					Body: fmt.Sprintf(`{"error":"invalid_request","error_description":"bad grant refresh_token=%s client_secret=%s (%s)"}`,
						rt, testClientSecret, url.QueryEscape(rt))})
				return nil
			},
			code: "invalid_request",
		},
		{
			name:         "invalid_grant in a 200",
			clientSecret: testClientSecret,
			setup: func(h *harness, rt string) []string {
				h.fake.InjectFault(oauth2test.Fault{Kind: oauth2test.FaultErrorIn200, Count: 1, ErrorCode: "invalid_grant"})
				return nil
			},
			code: "invalid_grant",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			rt, v := h.seed(credID, "fam", tc.clientSecret)
			extra := tc.setup(h, rt)

			_, err := h.refresh(h.request(credID, v))
			appErr := appError(t, err, activities.ErrTypePermanent, true)
			d := detailOf(t, appErr)
			if d.Code != tc.code || !d.InterruptedAt.IsZero() || d.RetryAfter != 0 {
				t.Fatalf("detail = %+v, want code %s", d, tc.code)
			}
			if strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
				t.Fatalf("error %q claims an interrupted refresh", err)
			}
			if h.fake.Presentations(rt) != 1 {
				t.Fatalf("token presented %d times", h.fake.Presentations(rt))
			}
			if rec := h.get(credID); rec.Version != v || rec.Secrets.RefreshToken != rt {
				t.Fatalf("a rejected refresh changed the store (version %d)", rec.Version)
			}
			// A human reseeds next; a stuck lease would make their first refresh wait.
			h.assertLeaseFree(credID)
			h.assertNoSecrets(err, h.secrets(credID, "fam", append(extra, rt, tc.clientSecret)...)...)
		})
	}
}

// Errors the provider answered (the token was not consumed): retry soon, same token.
func TestRefreshTransientAnswers(t *testing.T) {
	cases := []struct {
		name       string
		fault      oauth2test.Fault
		code       string
		retryAfter time.Duration
	}{
		{"503", oauth2test.Fault{Kind: oauth2test.FaultStatus}, "http_503", 0},
		{"503 with Retry-After", oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 503, RetryAfter: 20 * time.Second}, "http_503", 20 * time.Second},
		{"429 with Retry-After", oauth2test.Fault{Kind: oauth2test.FaultRateLimit, RetryAfter: 7 * time.Second}, "http_429", 7 * time.Second},
		{"502 page echoing secrets", oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 502}, "http_502", 0},
		{"temporarily_unavailable", oauth2test.Fault{Kind: oauth2test.FaultStatus, Status: 400,
			Body: `{"error":"temporarily_unavailable"}`}, "temporarily_unavailable", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			rt, v := h.seed(credID, "fam", testClientSecret)
			before := h.get(credID)
			f := tc.fault
			f.Count = 1
			if tc.name == "502 page echoing secrets" {
				f.Body = "<html>upstream failed for refresh_token=" + rt + "&client_secret=" + testClientSecret + "</html>"
			}
			h.fake.InjectFault(f)

			_, err := h.refresh(h.request(credID, v))
			appErr := appError(t, err, activities.ErrTypeTransient, false)
			d := detailOf(t, appErr)
			if d.Code != tc.code || d.RetryAfter != tc.retryAfter || appErr.NextRetryDelay() != tc.retryAfter {
				t.Fatalf("detail = %+v, NextRetryDelay %s; want code %s, retry after %s", d, appErr.NextRetryDelay(), tc.code, tc.retryAfter)
			}
			if rec := h.get(credID); rec.Version != before.Version || rec.Secrets != before.Secrets {
				t.Fatalf("store changed after a failed refresh: version %d -> %d", before.Version, rec.Version)
			}
			h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
			// The provider answered, so the token is unspent and the next attempt may go
			// at once: the lease must be free and the same token must work.
			h.assertLeaseFree(credID)
			res := h.mustRefresh(h.request(credID, v))
			if res.Version != v+1 || h.fake.Presentations(rt) != 2 || h.fake.ReuseDetections() != 0 {
				t.Fatalf("retry: %+v, presentations %d, reuse %d", res, h.fake.Presentations(rt), h.fake.ReuseDetections())
			}
		})
	}
}

// Without an answer the outcome is unknown: the lease stays, the next attempt is told
// the refresh is in flight, and after the lease expires it presents the token knowing
// what a rejection would mean.
func TestRefreshWithoutAnswerKeepsLease(t *testing.T) {
	cases := []struct {
		name     string
		fault    oauth2test.Fault
		consumed bool // the provider processed the grant before the failure
	}{
		{"connection reset before grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection}, false},
		{"hang", oauth2test.Fault{Kind: oauth2test.FaultHang}, false},
		{"connection reset after grant", oauth2test.Fault{Kind: oauth2test.FaultCloseConnection, Phase: oauth2test.AfterGrant}, true},
		{"slow answer after grant", oauth2test.Fault{Kind: oauth2test.FaultLatency, Phase: oauth2test.AfterGrant, Delay: 5 * time.Second}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{providerTimeout: 300 * time.Millisecond})
			rt, v := h.seed(credID, "fam", testClientSecret)
			before := h.get(credID)
			f := tc.fault
			f.Count = 1
			h.fake.InjectFault(f)

			_, err := h.refresh(h.request(credID, v))
			d := detailOf(t, appError(t, err, activities.ErrTypeTransient, false))
			if d.Code != "network" {
				t.Fatalf("detail = %+v, want code network", d)
			}
			h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
			if rec := h.get(credID); rec.Version != before.Version || rec.Secrets != before.Secrets {
				t.Fatal("store changed after a failed refresh")
			}
			if consumed := h.fake.Refreshes() == 1; consumed != tc.consumed {
				t.Fatalf("provider consumed the token: %v, want %v", consumed, tc.consumed)
			}
			lease := h.assertLeaseHeld(credID)

			// A retry inside the lease must not touch the provider.
			_, err = h.refresh(h.request(credID, v))
			appError(t, err, activities.ErrTypeInFlight, false)
			if h.fake.Presentations(rt) != 1 {
				t.Fatalf("retry inside the lease presented the token (%d presentations)", h.fake.Presentations(rt))
			}

			h.clock.Advance(activities.DefaultLeaseDuration)
			res, err := h.refresh(h.request(credID, v))
			if h.fake.Presentations(rt) != 2 {
				t.Fatalf("after the lease expired the token was presented %d times in all, want 2", h.fake.Presentations(rt))
			}
			if !tc.consumed {
				if err != nil || res.Version != v+1 || h.fake.ReuseDetections() != 0 {
					t.Fatalf("after expiry: %+v, %v, reuse %d", res, err, h.fake.ReuseDetections())
				}
				return
			}
			appErr := appError(t, err, activities.ErrTypePermanent, true)
			if !strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
				t.Fatalf("error %q does not name the interrupted refresh", err)
			}
			if d := detailOf(t, appErr); !d.InterruptedAt.Equal(lease.TakenAt) || d.Code != "invalid_grant" {
				t.Fatalf("detail = %+v, want InterruptedAt %s", d, lease.TakenAt)
			}
			h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
		})
	}
}

// 2xx answers without a usable token: transient, and nothing reaches the store. The
// provider may have rotated (it answered "success"), so the outcome is as uncertain as
// with no answer: the lease stays and a later rejection is reported as an interrupted
// refresh.
func TestRefreshUnusableSuccessAnswer(t *testing.T) {
	cases := []struct {
		name     string
		fault    oauth2test.Fault
		consumed bool
	}{
		{"malformed JSON before grant", oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON}, false},
		{"missing access_token before grant", oauth2test.Fault{Kind: oauth2test.FaultMissingAccessToken}, false},
		{"malformed JSON after grant", oauth2test.Fault{Kind: oauth2test.FaultMalformedJSON, Phase: oauth2test.AfterGrant}, true},
		{"missing access_token after grant", oauth2test.Fault{Kind: oauth2test.FaultMissingAccessToken, Phase: oauth2test.AfterGrant}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			rt, v := h.seed(credID, "fam", testClientSecret)
			before := h.get(credID)
			f := tc.fault
			f.Count = 1
			h.fake.InjectFault(f)

			_, err := h.refresh(h.request(credID, v))
			d := detailOf(t, appError(t, err, activities.ErrTypeTransient, false))
			if d.Code != "malformed_response" {
				t.Fatalf("detail = %+v", d)
			}
			rec := h.get(credID)
			if rec.Version != before.Version || rec.Secrets != before.Secrets || !rec.AccessExpiresAt.Equal(before.AccessExpiresAt) {
				t.Fatal("store changed after an unusable answer")
			}
			// After grant, the minted successor the client never stored must not leak either.
			h.assertNoSecrets(err, h.secrets(credID, "fam", rt)...)
			lease := h.assertLeaseHeld(credID)

			h.clock.Advance(activities.DefaultLeaseDuration)
			res, err := h.refresh(h.request(credID, v))
			if !tc.consumed {
				if err != nil || res.Version != v+1 {
					t.Fatalf("after expiry: %+v, %v", res, err)
				}
				return
			}
			appErr := appError(t, err, activities.ErrTypePermanent, true)
			if !strings.Contains(err.Error(), activities.ReasonInterruptedRefresh) {
				t.Fatalf("error %q does not name the interrupted refresh", err)
			}
			if d := detailOf(t, appErr); !d.InterruptedAt.Equal(lease.TakenAt) {
				t.Fatalf("detail = %+v, want InterruptedAt %s", d, lease.TakenAt)
			}
		})
	}
}

func TestRefreshWithoutRotation(t *testing.T) {
	h := newHarness(t, harnessOptions{fake: oauth2test.Options{NoRotation: true, RefreshLifetime: 30 * 24 * time.Hour}})
	rt, v := h.seed(credID, "fam", testClientSecret)
	seededAt := h.clock.Now()
	var firstAccess string
	for i := range 2 {
		h.clock.Advance(time.Hour)
		res := h.mustRefresh(h.request(credID, v))
		if res.Version != v+1 || res.Rotated || res.AlreadyCommitted {
			t.Fatalf("refresh %d: result %+v", i, res)
		}
		// The provider reports the old token's remaining lifetime; it is kept.
		if want := seededAt.Add(30 * 24 * time.Hour); !res.RefreshExpiresAt.Equal(want) {
			t.Fatalf("refresh %d: refresh expiry %s, want %s", i, res.RefreshExpiresAt, want)
		}
		v = res.Version
		rec := h.get(credID)
		if rec.Secrets.RefreshToken != rt || rec.Secrets.AccessToken == "" || rec.Secrets.AccessToken == firstAccess {
			t.Fatalf("refresh %d: store lost the refresh token or did not take the new access token", i)
		}
		if !h.fake.ValidAccessToken(rec.Secrets.AccessToken) {
			t.Fatalf("refresh %d: stored access token invalid", i)
		}
		firstAccess = rec.Secrets.AccessToken
	}
	if h.fake.Presentations(rt) != 2 || h.fake.ReuseDetections() != 0 {
		t.Fatalf("presentations %d, reuse %d", h.fake.Presentations(rt), h.fake.ReuseDetections())
	}
}

// Once the provider has rotated, the new token exists only in the activity's memory:
// a briefly failing store must not lose it. The commit fails three times, then the
// real store takes it; the mock fails the test on a fifth call.
func TestRefreshCommitRetriesStoreFailures(t *testing.T) {
	ctrl := gomock.NewController(t)
	busy := errors.New("sqlite store: compare-and-swap: database is locked (5) (SQLITE_BUSY)")
	h := newHarness(t, harnessOptions{wrapStore: func(real store.Records) store.Records {
		m := storemock.NewMockRecords(ctrl)
		delegateTo(m, real)
		gomock.InOrder(
			m.EXPECT().CompareAndSwap(gomock.Any(), gomock.Any(), int64(1), gomock.Any()).Return(store.Record{}, busy).Times(3),
			m.EXPECT().CompareAndSwap(gomock.Any(), gomock.Any(), int64(1), gomock.Any()).DoAndReturn(real.CompareAndSwap),
		)
		return m
	}})
	_, v := h.seed(credID, "fam", testClientSecret)

	res := h.mustRefresh(h.request(credID, v))
	if res.Version != v+1 || !res.Rotated {
		t.Fatalf("result %+v", res)
	}
	rec := h.get(credID)
	if latest, _ := h.fake.Latest("fam"); rec.Secrets.RefreshToken != latest || rec.Version != v+1 {
		t.Fatal("store does not hold the rotated token")
	}
	if h.fake.TotalPresentations() != 1 {
		t.Fatalf("provider saw %d presentations, want 1", h.fake.TotalPresentations())
	}
}

// A store that stays down: the commit retries for as long as the lease allows, not a
// fixed time, and stops a margin before the lease ends, while no retry can have taken
// it. The clock is the harness's: the retries' waits advance it instead of sleeping.
func TestRefreshCommitRetriesUntilTheLeaseNearsItsEnd(t *testing.T) {
	var flaky *flakyStore
	h := newHarness(t, harnessOptions{wrapStore: func(s store.Records) store.Records {
		flaky = &flakyStore{Records: s, failures: -1, failErr: errors.New("sqlite store: compare-and-swap: database is locked (5) (SQLITE_BUSY)")}
		return flaky
	}})
	h.acts.Sleep = func(_ context.Context, d time.Duration) error { h.clock.Advance(d); return nil }
	_, v := h.seed(credID, "fam", testClientSecret)

	start := h.clock.Now()
	_, err := h.refresh(h.request(credID, v))
	appError(t, err, activities.ErrTypeStore, false)
	spent := h.clock.Now().Sub(start)
	end := activities.DefaultLeaseDuration - leasetiming.Margin
	if spent > end || spent < end-3*time.Second {
		t.Fatalf("the commit retried for %s, want until %s (the lease of %s less the margin)", spent, end, activities.DefaultLeaseDuration)
	}
	if flaky.casCalls() < 40 { // every 2 s at most, once the backoff has grown
		t.Fatalf("only %d CompareAndSwap calls in %s", flaky.casCalls(), spent)
	}
	h.assertLeaseHeld(credID)
	t.Logf("%d commits over %s of simulated time; the lease had %s left", flaky.casCalls(), spent,
		h.get(credID).Lease.ExpiresAt.Sub(h.clock.Now()))
}

// A version conflict means someone else wrote: retrying the commit cannot help, so it
// is tried exactly once (the mock fails the test on a second call).
func TestRefreshCommitConflict(t *testing.T) {
	ctrl := gomock.NewController(t)
	conflict := fmt.Errorf("credential %q: expected version 1, found 2: %w", credID, store.ErrVersionConflict)
	h := newHarness(t, harnessOptions{wrapStore: func(real store.Records) store.Records {
		m := storemock.NewMockRecords(ctrl)
		delegateTo(m, real)
		m.EXPECT().CompareAndSwap(gomock.Any(), gomock.Any(), int64(1), gomock.Any()).Return(store.Record{}, conflict)
		return m
	}})
	rt, v := h.seed(credID, "fam", testClientSecret)

	_, err := h.refresh(h.request(credID, v))
	appError(t, err, activities.ErrTypeStore, false)
	latest, _ := h.fake.Latest("fam")
	h.assertNoSecrets(err, h.secrets(credID, "fam", rt, latest)...)
	// The rotated token is lost; the lease stays so the next attempt knows the outcome
	// is uncertain instead of blaming the provider.
	if rec := h.get(credID); rec.Version != v || rec.Secrets.RefreshToken != rt {
		t.Fatal("store changed although the commit failed")
	}
	h.assertLeaseHeld(credID)
	if _, err := h.refresh(h.request(credID, v)); err == nil {
		t.Fatal("next attempt inside the lease succeeded")
	} else {
		appError(t, err, activities.ErrTypeInFlight, false)
	}
	if h.fake.TotalPresentations() != 1 {
		t.Fatalf("provider saw %d presentations, want 1", h.fake.TotalPresentations())
	}
}

func TestRefreshInvalidInput(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, v := h.seed(credID, "fam", testClientSecret)
	good := h.request(credID, v)
	cases := []struct {
		name   string
		mutate func(*activities.RefreshRequest)
		want   string
	}{
		{"unknown provider", func(r *activities.RefreshRequest) { r.Provider = "nope" }, `unknown provider "nope"`},
		{"empty provider", func(r *activities.RefreshRequest) { r.Provider = "" }, "unknown provider"},
		{"no token url", func(r *activities.RefreshRequest) { r.Config.TokenURL = "" }, "config.token_url"},
		{"relative token url", func(r *activities.RefreshRequest) { r.Config.TokenURL = "/token" }, "config.token_url"},
		{"user info in token url", func(r *activities.RefreshRequest) {
			r.Config.TokenURL = strings.Replace(good.Config.TokenURL, "http://", "http://u:p@", 1)
		}, "config.token_url"},
		{"no client id", func(r *activities.RefreshRequest) { r.Config.ClientID = "" }, "config.client_id"},
		{"bad auth style", func(r *activities.RefreshRequest) { r.Config.AuthStyle = "auto" }, "config.auth_style"},
		{"bad scope", func(r *activities.RefreshRequest) { r.Config.Scopes = []string{"a b"} }, "config.scopes[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			req.Config.Scopes = nil
			tc.mutate(&req)
			_, err := h.refresh(req)
			appError(t, err, activities.ErrTypeInvalidInput, true)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			h.assertNoSecrets(err, h.secrets(credID, "fam")...)
		})
	}
	if h.fake.Requests() != 0 {
		t.Fatalf("provider got %d requests for invalid input", h.fake.Requests())
	}
	if rec := h.get(credID); rec.Version != v || rec.Lease != (store.Lease{}) {
		t.Fatalf("invalid input touched the record: version %d, lease %+v", rec.Version, rec.Lease)
	}
}

func TestRefreshNothingToPresent(t *testing.T) {
	h := newHarness(t, harnessOptions{})

	t.Run("missing record", func(t *testing.T) {
		_, err := h.refresh(h.request("never-seeded", 1))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if d := detailOf(t, appErr); d.Code != "not_in_store" {
			t.Fatalf("detail = %+v", d)
		}
	})

	t.Run("record without refresh token", func(t *testing.T) {
		// Seed refuses this; a record can still end up so through other writers.
		rec, err := h.sqlite.Put(context.Background(), store.Record{ID: "no-rt", Provider: catalog.OAuth2,
			Secrets: store.Secrets{AccessToken: "at_OnlyAnAccessToken0123456789", ClientSecret: testClientSecret}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.refresh(h.request("no-rt", rec.Version))
		appErr := appError(t, err, activities.ErrTypePermanent, true)
		if d := detailOf(t, appErr); d.Code != "no_refresh_token" {
			t.Fatalf("detail = %+v", d)
		}
		h.assertNoSecrets(err, "at_OnlyAnAccessToken0123456789", testClientSecret)
		if got := h.get("no-rt"); got.Lease != (store.Lease{}) {
			t.Fatalf("lease taken for a record that cannot be refreshed: %+v", got.Lease)
		}
	})

	if h.fake.Requests() != 0 {
		t.Fatalf("provider got %d requests", h.fake.Requests())
	}
}

func (h *harness) assertNoSecretsInLogs(secrets ...string) {
	h.t.Helper()
	logs := h.logs.String()
	if !strings.Contains(logs, "refresh committed") {
		h.t.Fatalf("expected the commit to be logged, got:\n%s", logs)
	}
	for _, s := range append(secrets, testClientSecret) {
		if s != "" && strings.Contains(logs, s) {
			h.t.Errorf("log contains a secret (%.6s...)", s)
		}
	}
}

// An access token that lives less than the floor is stored, then reported as a provider
// error without quick retries; the next round refreshes on top of it, presenting the
// rotated refresh token once; a sane lifetime ends it.
func TestAccessLifetimeBelowTheFloor(t *testing.T) {
	h := newHarness(t, harnessOptions{fake: oauth2test.Options{AccessLifetime: 2 * time.Second}})
	rt, v := h.seed(credID, "fam", testClientSecret)
	_, err := h.refresh(h.request(credID, v))
	appErr := appError(t, err, activities.ErrTypeTransient, true)
	var detail activities.FailureDetail
	if err := appErr.Details(&detail); err != nil || detail.Code != activities.CodeLifetimeTooShort || detail.RetryAfter != activities.DefaultMinAccessLifetime {
		t.Fatalf("detail %+v (%v), want %s with Retry-After %s", detail, err, activities.CodeLifetimeTooShort, activities.DefaultMinAccessLifetime)
	}
	rec := h.get(credID)
	if rec.Version != v+1 || rec.Secrets.RefreshToken == rt {
		t.Fatalf("the short-lived token set was not stored (version %d)", rec.Version)
	}
	rotated := rec.Secrets.RefreshToken

	// The workflow still expects v: the round after the backoff refreshes on top of v+1.
	h.clock.Advance(time.Minute)
	_, err = h.refresh(h.request(credID, v))
	appError(t, err, activities.ErrTypeTransient, true)
	h.fake.SetAccessLifetime(time.Hour)
	res := h.mustRefresh(h.request(credID, v))
	if res.Version != v+3 || res.AlreadyCommitted {
		t.Fatalf("after a sane lifetime: %+v, want version %d refreshed", res, v+3)
	}
	for _, tok := range []string{rt, rotated} {
		if n := h.fake.Presentations(tok); n != 1 {
			t.Errorf("a refresh token was presented %d times, want 1", n)
		}
	}
	if n := h.fake.ReuseDetections(); n != 0 {
		t.Errorf("%d reuse detections", n)
	}
}
