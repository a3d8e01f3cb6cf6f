// Package providers is the catalogue of provider adapters tokenwarden knows by name.
//
// The names are what a credential's "provider" field says. The worker builds the
// registry with a real HTTP client; the workflow and the starter only validate
// configuration, which needs no network and is safe inside workflow code.
package providers

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/baoming"
	oauth2provider "github.com/tokenwarden/tokenwarden/internal/provider/oauth2"
)

// OAuth2 is the generic RFC 6749 refresh-token grant.
const OAuth2 = "oauth2"

// Baoming is 报名工具: no refresh endpoint, liveness probes only.
const Baoming = "baoming"

// Names lists the known provider names, sorted.
func Names() []string {
	names := []string{Baoming, OAuth2}
	sort.Strings(names)
	return names
}

// Registry builds every adapter around one HTTP client and clock (nil: time.Now).
func Registry(client *http.Client, now func() time.Time) provider.Registry {
	return provider.Registry{
		OAuth2:  oauth2provider.New(client, now),
		Baoming: baoming.New(client),
	}
}

// CanRefresh reports whether the named provider has a refresh (or re-mint) endpoint.
// Providers without one (baoming) live on liveness probes alone.
func CanRefresh(name string) bool {
	return name != Baoming
}

// ValidateGrant checks seed material for the named provider. Errors name the field
// ("seed.refresh_token: required") and never contain a secret.
func ValidateGrant(name string, g provider.Grant) error {
	p, err := validator(name)
	if err != nil {
		return err
	}
	if err := p.ValidateGrant(g); err != nil {
		return fmt.Errorf("seed.%w", err)
	}
	return nil
}

// validator returns an adapter fit for validation only: no client, no clock.
func validator(name string) (provider.Provider, error) {
	switch name {
	case OAuth2:
		return &oauth2provider.Provider{}, nil
	case Baoming:
		return &baoming.Provider{}, nil
	}
	return nil, fmt.Errorf("provider: unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
}

// ValidateConfig checks cfg for the named provider. It is deterministic and does no I/O,
// so workflow code may call it. Errors name the field ("config.token_url: ...").
func ValidateConfig(name string, cfg provider.Config) error {
	p, err := validator(name)
	if err != nil {
		return err
	}
	if err := p.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("config.%w", err)
	}
	return nil
}
