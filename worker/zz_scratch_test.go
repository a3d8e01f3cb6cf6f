package main

import (
	"net"
	"testing"
)

func TestScratchSilent(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	workerEnv(t, map[string]string{"TOKENWARDEN_TEMPORAL_ADDRESS": l.Addr().String()})
	r := runWorker(t, "-init-dev-key")
	t.Logf("%d %s %s", r.code, r.elapsed, r.stderr)
}
