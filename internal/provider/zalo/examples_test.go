package zalo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
)

// TestExamplesValidate keeps examples/zalo-*.json acceptable to the adapters.
func TestExamplesValidate(t *testing.T) {
	for name, p := range map[string]*Provider{"zalo-oa": NewOA(nil, nil), "zalo-user": NewUser(nil, nil)} {
		var cred struct {
			Provider string          `json:"provider"`
			Config   provider.Config `json:"config"`
		}
		readJSON(t, filepath.Join("..", "..", "..", "examples", name+".json"), &cred)
		if cred.Provider != name {
			t.Errorf("%s.json: provider %q", name, cred.Provider)
		}
		if err := p.ValidateConfig(cred.Config); err != nil {
			t.Errorf("%s.json: %v", name, err)
		}
		var secrets struct {
			RefreshToken string `json:"refresh_token"`
			ClientSecret string `json:"client_secret"`
		}
		readJSON(t, filepath.Join("..", "..", "..", "examples", name+".secrets.json"), &secrets)
		if err := p.ValidateGrant(provider.Grant{RefreshToken: secrets.RefreshToken, ClientSecret: secrets.ClientSecret}); err != nil {
			t.Errorf("%s.secrets.json: %v", name, err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
