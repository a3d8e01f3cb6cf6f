// Package testnet holds the network helpers tests share.
package testnet

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port that was free a moment ago, with nothing
// listening on it. Tests use it two ways: as an address whose dial must fail with
// "connection refused" (not reach a server that happens to run on the developer's
// machine), and as the port to give a server process that cannot report the one it
// picked. In the second use another process may take the port in between; a server in
// the test's own process listens on "127.0.0.1:0" instead.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}
