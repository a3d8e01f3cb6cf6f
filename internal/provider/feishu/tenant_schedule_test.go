package feishu_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
	"github.com/tokenwarden/tokenwarden/workflows"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Seed 001's tenant tokens live 2 h and Feishu hands back the same token while 30
// minutes or more are left. Driven by the workflow's own schedule (workflows.NextWakeup)
// with the default policy, every mint yields a new token: one call a cycle, none wasted.
func TestTenantMintsOncePerCycle(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	fake := feishutest.New(feishutest.Options{AppID: "cli_test", AppSecret: "app-secret-0123456789", Now: clock.Now})
	base := fake.Start()
	t.Cleanup(fake.Close)
	tenant := feishu.NewTenant(&http.Client{Timeout: 5 * time.Second}, clock.Now)
	cfg := provider.Config{ClientID: "cli_test", BaseURL: base}
	grant := provider.Grant{ClientSecret: "app-secret-0123456789"}
	timing := workflows.Policy{}.Resolve(false)

	st := workflows.Status{ID: "feishu-tenant-main", State: credential.StateActive, RefreshRequested: true}
	const cycles = 12
	for i := range cycles {
		_, at := workflows.NextWakeup(st, timing, clock.Now())
		clock.Set(at)
		ts, err := tenant.Refresh(context.Background(), cfg, grant)
		if err != nil {
			t.Fatalf("mint %d: %v", i+1, err)
		}
		if ts.AccessToken == grant.AccessToken {
			t.Fatalf("mint %d at %s returned the unchanged token", i+1, at.Format(time.TimeOnly))
		}
		grant.AccessToken = ts.AccessToken
		st.RefreshRequested = false
		st.LastRefreshAt, st.AccessExpiresAt, st.AccessRenewableAt = clock.Now(), ts.AccessExpiresAt, ts.RenewableAt
	}
	if got := fake.Requests(feishutest.TenantTokenPath); got != cycles {
		t.Errorf("%d calls for %d cycles", got, cycles)
	}
	if fake.TenantReissues() != 0 || tenant.UnchangedRemints() != 0 {
		t.Errorf("%d unchanged re-issues at the fake, %d seen by the adapter; want none", fake.TenantReissues(), tenant.UnchangedRemints())
	}
}
