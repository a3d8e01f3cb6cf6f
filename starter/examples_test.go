package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/provider/catalog"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// examplesDir holds a credential file and a secrets file per provider, which the
// README points newcomers at: each must pass the checks `starter start` makes.
const examplesDir = "../examples"

// TestExamplesValidate reads every examples/NAME.json and its NAME.secrets.json (the
// plaintext that `starter seal` and `starter start -secrets` read) as the starter does,
// and so checks both with the workflow's own rules. Every provider must have its pair.
func TestExamplesValidate(t *testing.T) {
	creds, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range creds {
		if strings.HasSuffix(path, ".secrets.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			secretsPath := strings.TrimSuffix(path, ".json") + ".secrets.json"
			// readCredential is what start and seal run: the strict reader for both
			// files, CredentialInput.Validate (with a placeholder sealed seed, as the
			// workflow gets it) and ValidateSeed on the plaintext secrets.
			a := &app{stdin: strings.NewReader("")}
			in, err := a.readCredential(path, secretsPath)
			if err != nil {
				t.Fatalf("%s with %s: %v", path, filepath.Base(secretsPath), err)
			}
			if in.Provider != name {
				t.Errorf("%s is for provider %q: name each pair after its provider", path, in.Provider)
			}
			// And the secrets alone, as a reseed of the same credential checks them.
			if err := workflows.ValidateSeed(in.Provider, in.Config, in.Seed.Seed); err != nil {
				t.Errorf("%s: %v", secretsPath, err)
			}
			seen[in.Provider] = true
		})
	}
	for _, p := range catalog.Names() {
		if !seen[p] {
			t.Errorf("examples/ has no valid %s.json and %s.secrets.json", p, p)
		}
	}
	// A secrets file without its credential file is a leftover.
	secrets, err := filepath.Glob(filepath.Join(examplesDir, "*.secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		cred := strings.TrimSuffix(s, ".secrets.json") + ".json"
		if _, err := os.Stat(cred); err != nil || !slices.Contains(creds, cred) {
			t.Errorf("%s has no credential file %s", s, filepath.Base(cred))
		}
	}
}
