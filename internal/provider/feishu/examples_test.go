package feishu_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider"
	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
)

// TestExamplesValidate: the example credential and secrets files have the starter's
// shape and pass the catalogue's validation as they are.
func TestExamplesValidate(t *testing.T) {
	for _, name := range []string{catalog.FeishuUser, catalog.FeishuTenant} {
		var cred struct {
			ID       string            `json:"id"`
			Provider string            `json:"provider"`
			Config   provider.Config   `json:"config"`
			Policy   map[string]string `json:"policy"`
		}
		var seed struct {
			RefreshToken string `json:"refresh_token"`
			ClientSecret string `json:"client_secret"`
		}
		for path, v := range map[string]any{name + ".json": &cred, name + ".secrets.json": &seed} {
			data, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", path))
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		if cred.Provider != name || cred.ID == "" {
			t.Fatalf("%s: provider %q, id %q", name, cred.Provider, cred.ID)
		}
		if err := catalog.ValidateConfig(name, cred.Config); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := catalog.ValidateGrant(name, provider.Config{}, provider.Grant{RefreshToken: seed.RefreshToken, ClientSecret: seed.ClientSecret}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
