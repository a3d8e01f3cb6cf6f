// Command fakeoauth runs package oauth2test's strict token endpoint on a real listener for
// demos: rotating single-use refresh tokens with reuse detection at POST /token, and RFC
// 7662 introspection (which never spends a token) at POST /introspect.
//
// With -seed-families it mints one token family per name once the listener is bound and
// prints each initial refresh token to stdout as a JSON line,
//
//	{"family":"a","refresh_token":"rt_..."}
//
// so a demo script can read them and start credentials. Everything else (one record per
// request, tokens only as fingerprints) goes to stderr through log/slog. The process
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/provider/oauth2/oauth2test"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], os.Stdout, logger); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		logger.Error("fakeoauth failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("fakeoauth", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9400", "listen address")
	accessLifetime := fs.Duration("access-lifetime", oauth2test.DefaultAccessLifetime, "access token lifetime (expires_in)")
	refreshLifetime := fs.Duration("refresh-lifetime", 0, "refresh token lifetime; 0 means refresh tokens do not expire")
	clientID := fs.String("client-id", "", "the accepted client_id; empty disables client authentication")
	clientSecret := fs.String("client-secret", "", "the accepted client_secret")
	noRotation := fs.Bool("no-rotation", false, "answer without a new refresh token and keep the presented one valid")
	seedFamilies := fs.String("seed-families", "", "comma-separated token family names to seed at startup")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	srv := oauth2test.New(oauth2test.Options{
		AccessLifetime:  *accessLifetime,
		RefreshLifetime: *refreshLifetime,
		ClientID:        *clientID,
		ClientSecret:    *clientSecret,
		NoRotation:      *noRotation,
		Logger:          logger,
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	// Seeds are printed only once the listener is bound: a script that has read them
	// can use them at once.
	enc := json.NewEncoder(stdout)
	for name := range strings.SplitSeq(*seedFamilies, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		rt := srv.Seed(name)
		if err := enc.Encode(struct {
			Family       string `json:"family"`
			RefreshToken string `json:"refresh_token"`
		}{name, rt}); err != nil {
			ln.Close()
			return fmt.Errorf("printing seed for family %q: %w", name, err)
		}
		logger.Info("seeded token family", "family", name, "refresh_token", oauth2test.Fingerprint(rt))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base := "http://" + ln.Addr().String()
	logger.Info("fakeoauth listening", "token_url", base+oauth2test.TokenPath,
		"introspection_url", base+oauth2test.IntrospectionPath,
		"access_lifetime", *accessLifetime, "refresh_lifetime", *refreshLifetime,
		"rotation", !*noRotation, "client_auth", *clientID != "")
	start := time.Now()
	err = srv.Serve(ctx, ln)
	logger.Info("fakeoauth stopped", "uptime", time.Since(start).Round(time.Second),
		"refreshes", srv.Refreshes(), "reuse_detections", srv.ReuseDetections(),
		"max_presentations", srv.MaxPresentations(), "introspections", srv.Introspections())
	return err
}
