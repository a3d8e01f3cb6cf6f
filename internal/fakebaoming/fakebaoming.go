// Package fakebaoming is a stand-in for the baoming (报名工具) API for tests and demos:
// GET /xcx/enroll/v1/userinfo?access_token=... answers {"sta":0,...} for a token it
// issued and has not invalidated, and {"sta":-1,"msg":...} otherwise, like the real API.
// Tokens cannot be refreshed: a test issues one, invalidates it, issues another.
package fakebaoming

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Server is the fake API. The zero value is not usable; call New.
type Server struct {
	mu       sync.Mutex
	valid    map[string]bool
	probes   map[string]int
	failNext int // answer HTTP 503 to this many upcoming requests
	ts       *httptest.Server
}

// New returns a fake with no tokens.
func New() *Server {
	return &Server{valid: map[string]bool{}, probes: map[string]int{}}
}

// Issue mints a live token, as a WeChat login would.
func (s *Server) Issue() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "bm_" + hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.valid[tok] = true
	return tok
}

// Invalidate makes the API reject the token from now on.
func (s *Server) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.valid[token] = false
}

// FailNext makes the next n requests answer HTTP 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Probes reports how many user-info calls carried the token.
func (s *Server) Probes(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes[token]
}

// Start serves on a loopback port and returns the base URL.
func (s *Server) Start() string {
	s.ts = httptest.NewServer(s)
	return s.ts.URL
}

// Close stops the server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// ServeHTTP implements the user-info endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/xcx/enroll/v1/userinfo" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	tok := r.URL.Query().Get("access_token")
	s.mu.Lock()
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.probes[tok]++
	live := s.valid[tok]
	s.mu.Unlock()
	if fail {
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !live {
		_ = json.NewEncoder(w).Encode(map[string]any{"sta": -1, "msg": "登录已失效，请重新登录"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"sta": 0, "msg": "ok",
		"data": map[string]any{"uname": "测试用户", "unionid": "oU_fake"}})
}
