package provider_test

import (
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// TestLookupNamesTheKnownProviders: the error for a name the registry lacks lists the
// names it has, sorted, so a typo is fixed from the message alone.
func TestLookupNamesTheKnownProviders(t *testing.T) {
	reg := provider.Registry{"zeta": nil, "alpha": nil, "mid": nil}
	if _, err := reg.Lookup("alpha"); err != nil {
		t.Fatalf("Lookup(alpha): %v", err)
	}
	_, err := reg.Lookup("alpah")
	if want := `unknown provider "alpah" (known: alpha, mid, zeta)`; err == nil || err.Error() != want {
		t.Fatalf("Lookup(alpah) = %v, want %s", err, want)
	}
	_, err = provider.Registry{}.Lookup("alpha")
	if want := `unknown provider "alpha" (none is known)`; err == nil || err.Error() != want {
		t.Fatalf("Lookup in an empty registry = %v, want %s", err, want)
	}
}
