package testlog_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tokenwarden/tokenwarden/internal/testlog"
)

// Writers on many goroutines lose no line and tear none (run with -race).
func TestConcurrentWritesKeepEveryLine(t *testing.T) {
	var b testlog.Buffer
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "g%d line %d\n", g, i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		var g, i int
		if n, err := fmt.Sscanf(l, "g%d line %d", &g, &i); n != 2 || err != nil {
			t.Fatalf("torn line %q", l)
		}
	}
}
