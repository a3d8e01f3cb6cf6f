package credential

import (
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	for _, id := range []string{"crm-google", "a", "zalo.shop_2", "A-Z.0_9", strings.Repeat("x", MaxIDLen)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", id, err)
		}
	}
	for id, want := range map[string]string{
		"":                              "id: required",
		strings.Repeat("x", MaxIDLen+1): "id: longer than 200 characters",
		".hidden":                       `id: ".hidden" must not start with '.' or '-'`,
		"-flag":                         `id: "-flag" must not start with '.' or '-'`,
		"crm/google":                    `id: "crm/google" may contain only letters, digits, '.', '_' and '-'`,
		"crm google":                    `id: "crm google" may contain only letters, digits, '.', '_' and '-'`,
		"café":                          `id: "café" may contain only letters, digits, '.', '_' and '-'`,
	} {
		if err := ValidateID(id); err == nil || err.Error() != want {
			t.Errorf("ValidateID(%q) = %v, want %q", id, err, want)
		}
	}
}
