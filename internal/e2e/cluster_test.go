package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/tokenwarden/tokenwarden/internal/tlstest"
)

// proxyServerName is the name on the test proxy's certificate, which the worker and
// the starter verify through TEMPORAL_TLS_SERVER_NAME, as they would a cluster's.
const proxyServerName = "temporal-frontend.tokenwarden.test"

// tlsProxy terminates mutual TLS in front of the shared dev server, as a cluster's
// ingress (or Temporal Cloud's) does: gRPC over TLS from the client to the proxy,
// plaintext bytes from the proxy to the dev server's gRPC port.
type tlsProxy struct {
	addr     string
	accepted atomic.Int64 // handshakes with a valid client certificate
	refused  atomic.Int64 // handshakes that failed (no or an untrusted certificate)
	mu       sync.Mutex
	lastErr  string // the latest handshake error, for the test log
}

func startTLSProxy(t *testing.T, ca *tlstest.CA, server tlstest.Pair, upstream string) *tlsProxy {
	t.Helper()
	cert, err := server.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
		// gRPC clients insist on ALPN h2.
		NextProtos: []string{"h2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{addr: ln.Addr().String()}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				p.forward(c.(*tls.Conn), upstream)
			}()
		}
	}()
	return p
}

func (p *tlsProxy) forward(c *tls.Conn, upstream string) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		p.refused.Add(1)
		p.mu.Lock()
		p.lastErr = err.Error()
		p.mu.Unlock()
		return
	}
	p.accepted.Add(1)
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either side closing ends both
}

// clusterCerts makes a CA, the proxy's server certificate and a client certificate.
func clusterCerts(t *testing.T) (ca *tlstest.CA, caPath string, server, client tlstest.Pair) {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlstest.NewCA("tokenwarden e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	if caPath, err = ca.WriteCert(dir, "ca.crt"); err != nil {
		t.Fatal(err)
	}
	if server, err = ca.Server(dir, proxyServerName); err != nil {
		t.Fatal(err)
	}
	if client, err = ca.Client(dir, "tokenwarden-worker"); err != nil {
		t.Fatal(err)
	}
	return ca, caPath, server, client
}

// temporalEnv is the environment of a worker or starter that reaches Temporal the way
// the temporal CLI does, through TEMPORAL_* alone: the empty TOKENWARDEN_TEMPORAL_ADDRESS
// undoes env.vars' override, and TEMPORAL_CONFIG_FILE keeps this machine's temporal
// CLI profile out.
func temporalEnv(t *testing.T, kv ...string) []string {
	return append([]string{
		"TOKENWARDEN_TEMPORAL_ADDRESS=",
		"TEMPORAL_CONFIG_FILE=" + filepath.Join(t.TempDir(), "no-profile.toml"),
	}, kv...)
}

// TestClusterMutualTLS: the worker and the starter connect to Temporal through a
// TLS-terminating proxy that requires a client certificate from a test-made CA, with
// only the temporal CLI's variables (TEMPORAL_ADDRESS, TEMPORAL_TLS_*); a credential
// started by the starter refreshes through it. Without a client certificate the proxy
// refuses the starter and the worker.
func TestClusterMutualTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ca, caPath, server, client := clusterCerts(t)
	proxy := startTLSProxy(t, ca, server, stack.address)
	base := []string{
		"TEMPORAL_ADDRESS=" + proxy.addr,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + caPath,
		"TEMPORAL_TLS_SERVER_NAME=" + proxyServerName,
	}
	withCert := temporalEnv(t, append(base,
		"TEMPORAL_TLS_CLIENT_CERT_PATH="+client.CertPath,
		"TEMPORAL_TLS_CLIENT_KEY_PATH="+client.KeyPath)...)

	// Refused first, before any connection with a certificate exists to be reused.
	code, out := e.runStarterEnv(temporalEnv(t, base...), "", "list")
	if code != 3 {
		t.Fatalf("starter without a client certificate exited %d, want 3 (Temporal unreachable):\n%s", code, out)
	}
	if proxy.refused.Load() == 0 || proxy.accepted.Load() != 0 {
		t.Fatalf("proxy: %d refused, %d accepted handshakes; want the starter refused", proxy.refused.Load(), proxy.accepted.Load())
	}
	proxy.mu.Lock()
	t.Logf("starter without a certificate: exit %d; proxy's handshake error: %s", code, proxy.lastErr)
	proxy.mu.Unlock()

	noCert := e.startWorkerBin(stack.workerBin, temporalEnv(t, base...)...)
	noCert.waitExit(t, 60*time.Second)
	if noCert.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(noCert.output.String(), "cannot reach the Temporal server at "+proxy.addr) {
		t.Fatalf("worker without a client certificate: exit %d, output:\n%s", noCert.cmd.ProcessState.ExitCode(), noCert.output.String())
	}
	refusedBefore := proxy.refused.Load()

	fake, tokenURL := startProvider(t, time.Hour)
	w := e.startWorkerBin(stack.workerBin, withCert...)
	const id = "e2e-cluster-mtls"
	secrets := fmt.Sprintf(`{"refresh_token":%q,"client_secret":%q}`, fake.Seed(id), clientSecret)
	if code, out := e.runStarterEnv(withCert, secrets, "start", e.writeJSON("cred.json", credentialFile(id, tokenURL)), "-secrets", "-"); code != 0 {
		t.Fatalf("starter start through the mTLS proxy exited %d:\n%s", code, out)
	}
	t.Cleanup(func() { _ = stack.client.TerminateWorkflow(context.Background(), id, "", "test finished") })
	waitFor(t, 60*time.Second, "a refresh by the worker behind the mTLS proxy", func() (bool, string) {
		return fake.Refreshes() >= 1, fmt.Sprint(fake.Refreshes(), " refreshes")
	})
	code, out = e.runStarterEnv(withCert, "", "status", id)
	if code != 0 || !strings.Contains(out, "ACTIVE") {
		t.Errorf("starter status through the mTLS proxy exited %d:\n%s", code, out)
	}
	if !strings.Contains(w.output.String(), "mtls") {
		t.Errorf("the worker's start-up log does not say it uses mutual TLS:\n%s", w.output.String())
	}
	if got := proxy.refused.Load(); got != refusedBefore {
		t.Errorf("proxy refused %d handshakes with a client certificate", got-refusedBefore)
	}
	t.Logf("proxy: %d handshakes accepted, %d refused", proxy.accepted.Load(), proxy.refused.Load())
	w.stop(t)
}

// recordingFrontend is a fake Temporal frontend that records the gRPC metadata of every
// call: enough for the SDK's dial (GetSystemInfo), and Unimplemented for the rest.
type recordingFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu   sync.Mutex
	auth map[string][]string // method -> authorization values
}

func (f *recordingFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "fake"}, nil
}

func (f *recordingFrontend) record(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.auth[info.FullMethod] = append(f.auth[info.FullMethod], md.Get("authorization")...)
	f.mu.Unlock()
	return h(ctx, req)
}

func (f *recordingFrontend) take() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.auth
	f.auth = map[string][]string{}
	return got
}

// TestClusterAPIKey: TEMPORAL_API_KEY reaches the server as the `authorization: Bearer`
// gRPC header, over TLS (an API key turns it on, as for Temporal Cloud), from the
// starter and from the worker; neither prints the key.
func TestClusterAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, caPath, server, _ := clusterCerts(t)
	cert, err := server.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	front := &recordingFrontend{auth: map[string][]string{}}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(front.record))
	workflowservice.RegisterWorkflowServiceServer(srv, front)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("fake frontend: %v", err)
		}
	}()
	t.Cleanup(srv.Stop)

	const apiKey = "tw-e2e-api-key-5b17e0c2"
	vars := temporalEnv(t,
		"TEMPORAL_ADDRESS="+ln.Addr().String(),
		"TEMPORAL_NAMESPACE=tokenwarden-ns.a1b2c",
		"TEMPORAL_API_KEY="+apiKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH="+caPath,
		"TEMPORAL_TLS_SERVER_NAME="+proxyServerName)
	check := func(who, output string) {
		t.Helper()
		got := front.take()
		const method = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
		if vals := got[method]; len(vals) == 0 || vals[0] != "Bearer "+apiKey {
			t.Errorf("%s: authorization on GetSystemInfo = %q, want the bearer API key; all calls: %v", who, vals, got)
		}
		for m, vals := range got {
			for _, v := range vals {
				if v != "Bearer "+apiKey {
					t.Errorf("%s: %s carried authorization %q", who, m, v)
				}
			}
		}
		if strings.Contains(output, apiKey) {
			t.Errorf("%s printed the API key:\n%s", who, output)
		}
		t.Logf("%s: calls with the bearer header: %d methods", who, len(got))
	}

	// The fake answers the dial alone: the starter then fails, after having sent the
	// header; the worker starts and its polls fail.
	code, out := e.runStarterEnv(vars, "", "status", "e2e-cluster-apikey")
	t.Logf("starter against the fake frontend: exit %d", code)
	check("starter", out)

	w := e.startWorkerBin(stack.workerBin, vars...)
	waitFor(t, 30*time.Second, "the worker's first poll at the fake frontend", func() (bool, string) {
		front.mu.Lock()
		defer front.mu.Unlock()
		n := len(front.auth["/temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue"])
		return n > 0, fmt.Sprint(n, " polls")
	})
	w.stop(t)
	if !strings.Contains(w.output.String(), "tls, auth api-key") {
		t.Errorf("the worker's start-up log does not say it sends an API key over TLS:\n%s", w.output.String())
	}
	check("worker", w.output.String())
}
