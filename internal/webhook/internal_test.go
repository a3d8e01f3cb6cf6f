package webhook

import (
	"errors"
	"testing"
)

// The plain-http dialer's check, on the resolved address it is handed: a loopback name
// that resolves elsewhere never gets a connection.
func TestDialLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "127.8.9.10:8080": true, "[::1]:443": true,
		"192.0.2.1:80": false, "[2001:db8::1]:80": false, "10.0.0.1:80": false, "garbage": false,
	} {
		err := dialLoopbackOnly("tcp", addr, nil)
		if ok != (err == nil) || (err != nil && !errors.Is(err, errNotLoopback)) {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
