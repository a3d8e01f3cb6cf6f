package chathub

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// TestExampleValidates keeps examples/chathub-company.json acceptable to the adapter,
// with the rotation period in config where the adapter reads it.
func TestExampleValidates(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "chathub-company.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cred struct {
		Provider string          `json:"provider"`
		Config   provider.Config `json:"config"`
	}
	if err := json.Unmarshal(raw, &cred); err != nil {
		t.Fatal(err)
	}
	if cred.Provider != "chathub-company" {
		t.Errorf("provider %q", cred.Provider)
	}
	if err := (&Company{}).ValidateConfig(cred.Config); err != nil {
		t.Error(err)
	}
	if d, err := companyRotation(cred.Config); err != nil || d != 90*24*time.Hour {
		t.Errorf("rotation period %s %v, want 90 days", d, err)
	}
}
