package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// codecServer is the worker's HTTP endpoint: the payload codec for the Web UI, the
// temporal CLI and starters without the key file, and /healthz; the worker routes its
// other endpoints in front of the codec (route).
type codecServer struct {
	srv    *http.Server
	ln     net.Listener
	addr   string // the bound address, also when HTTP_ADDR asked for port 0
	closed atomic.Bool
}

// startCodecServer listens on cfg.HTTPAddr; nil, nil when HTTP_ADDR is empty.
func startCodecServer(cfg config.Worker, ring *keyring.Keyring, logger *slog.Logger) (*codecServer, error) {
	if cfg.HTTPAddr == "" {
		logger.Warn("no codec endpoint (TOKENWARDEN_HTTP_ADDR is empty): the Web UI shows encrypted payloads, and the temporal CLI cannot encrypt input")
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("codec endpoint: listen on %s_HTTP_ADDR %s: %w", config.Prefix, cfg.HTTPAddr, err)
	}
	h := codec.Handler(ring, codec.HandlerOptions{
		Namespace:      cfg.TemporalNamespace,
		AllowedOrigins: cfg.CORSOrigins(),
		BearerToken:    cfg.CodecBearerToken,
		Logger:         logger,
	})
	return &codecServer{
		ln:   ln,
		addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}, nil
}

// serve blocks until shutdown (nil) or a failure of the listener (the error).
func (s *codecServer) serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) || s.closed.Load() {
		return nil
	}
	return err
}

// url is the endpoint to give the temporal CLI's --codec-endpoint, for the log.
func (s *codecServer) url() string {
	if s == nil {
		return "none"
	}
	return "http://" + s.addr + codec.PathPrefix
}

// shutdown stops accepting requests and waits up to five seconds for those in flight.
func (s *codecServer) shutdown(logger *slog.Logger) {
	if s == nil {
		return
	}
	s.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		logger.Warn("codec endpoint: shutdown", "error", err)
		_ = s.srv.Close()
	}
	_ = s.ln.Close()
}

// route serves pattern with h on the worker's HTTP endpoint, in front of what it served
// so far: every other request goes on to that. Only before serve; nothing without an
// endpoint.
func (s *codecServer) route(pattern string, h http.Handler) {
	if s == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	mux.Handle("/", s.srv.Handler)
	s.srv.Handler = mux
}
