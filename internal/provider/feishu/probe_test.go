package feishu

import (
	"context"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/feishu/feishutest"
)

func TestUserProbeAgainstTheFake(t *testing.T) {
	fake := feishutest.New(feishutest.Options{AppID: "cli_probe", AppSecret: "probe-secret-Value-1", UserAccessLifetime: time.Hour})
	base := fake.Start()
	defer fake.Close()
	cfg := provider.Config{ClientID: "cli_probe", BaseURL: base}
	u := NewUser(nil, nil)
	rt := fake.Seed("fam")
	ts, err := u.Refresh(context.Background(), cfg, provider.Grant{RefreshToken: rt, ClientSecret: "probe-secret-Value-1"})
	if err != nil {
		t.Fatal(err)
	}
	presented := fake.TotalPresentations()
	if valid, err := u.Probe(context.Background(), cfg, provider.Grant{AccessToken: ts.AccessToken}); err != nil || !valid {
		t.Fatalf("live token: %v %v", valid, err)
	}
	if valid, err := u.Probe(context.Background(), cfg, provider.Grant{AccessToken: "u-not-a-token"}); err != nil || valid {
		t.Fatalf("dead token: %v %v", valid, err)
	}
	if fake.TotalPresentations() != presented {
		t.Fatal("a probe presented a refresh token")
	}
	if latest, ok := fake.Latest("fam"); !ok || latest != ts.RefreshToken {
		t.Fatal("a probe disturbed the refresh-token family")
	}
}
