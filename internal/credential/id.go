package credential

import (
	"errors"
	"fmt"
)

// MaxIDLen bounds a credential ID.
const MaxIDLen = 200

// ValidateID accepts credential IDs that are safe in a workflow ID, a URL path and a
// file name: 1 to 200 of [A-Za-z0-9._-], not starting with a dot or dash. Its errors
// name the field ("id: ...").
func ValidateID(id string) error {
	if id == "" {
		return errors.New("id: required")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("id: longer than %d characters", MaxIDLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("id: %q must not start with '.' or '-'", id)
	}
	for _, r := range id {
		ok := r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("id: %q may contain only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}
