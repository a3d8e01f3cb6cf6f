package codec

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

// Paths of the HTTP codec endpoint, as the Temporal Web UI and the temporal CLI call
// it: the configured endpoint is ".../codec", they POST to ".../codec/encode" and
// ".../codec/decode".
const (
	PathPrefix = "/codec"
	EncodePath = PathPrefix + "/encode"
	DecodePath = PathPrefix + "/decode"
	// HealthPath answers GET with 200 "ok".
	HealthPath = "/healthz"
)

// NamespaceHeader carries the namespace of a codec request (the Web UI and the starter
// send it; the temporal CLI does not).
const NamespaceHeader = "X-Namespace"

// Limits of one codec request, checked before the request is parsed: parsing allocates
// for every payload, and the answer holds every payload decoded.
const (
	// maxBodyBytes bounds the request body. A request carries one Payloads message (the
	// Web UI and the SDK's remote codec send the payloads of one event field or call at a
	// time), and Temporal refuses a payload above 2 MiB, its default blob size limit: in
	// JSON, base64 makes that about 2.7 MiB, so 4 MiB admits the largest payload Temporal
	// would have stored, with room for its metadata.
	maxBodyBytes = 4 << 20
	// maxPayloads bounds the payloads of one request. tokenwarden's workflows, signals,
	// updates, queries and activities take and return one or two arguments; without a
	// bound a 4 MiB body of empty objects ("{},") is 1.4 million payloads, which take
	// about 200 MiB to parse.
	maxPayloads = 256
)

// HandlerOptions configure Handler.
type HandlerOptions struct {
	// Namespace is the only namespace whose payloads the endpoint encodes and decodes;
	// a request whose X-Namespace header names another is refused.
	Namespace string
	// AllowedOrigins are the browser origins (scheme://host:port) allowed to call the
	// endpoint with CORS, normally the Temporal Web UI's.
	AllowedOrigins []string
	// BearerToken, if not empty, must be presented as "Authorization: Bearer <token>".
	// It is a secret: never logged.
	BearerToken string
	// Logger receives one line per refused request (never the token). Nil: slog.Default().
	Logger *slog.Logger
}

// Handler serves the HTTP codec endpoint (POST /codec/encode, POST /codec/decode)
// and GET /healthz.
//
// Requests are checked in this order: a CORS preflight (OPTIONS) from an allowed origin
// is answered at once (browsers send no credentials with it); a request whose Origin
// header is not allowed is refused (403); then the bearer token (401), the method
// (POST, else 405) and the namespace (403 if X-Namespace names another one; a request
// without the header is taken to mean the served namespace).
func Handler(ring *keyring.Keyring, opts HandlerOptions) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{
		opts:   opts,
		logger: logger,
		codec:  converter.NewPayloadCodecHTTPHandler(Codecs(ring)...),
	}
	if opts.BearerToken != "" {
		h.wantAuth = []byte("Bearer " + opts.BearerToken)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle(EncodePath, h)
	mux.Handle(DecodePath, h)
	return mux
}

type handler struct {
	opts     HandlerOptions
	logger   *slog.Logger
	codec    http.Handler
	wantAuth []byte // "Bearer <token>", nil when no token is configured
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !slices.Contains(h.opts.AllowedOrigins, origin) {
			h.refuse(w, r, http.StatusForbidden, "origin not allowed")
			return
		}
		// Allowed: tell the browser it may read the answer, with the UI's credentials.
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
	w.Header().Add("Vary", "Origin")
	if r.Method == http.MethodOptions {
		if origin == "" {
			h.refuse(w, r, http.StatusForbidden, "preflight without an Origin")
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if h.wantAuth != nil {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, h.wantAuth) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenwarden codec"`)
			h.refuse(w, r, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		h.refuse(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	// The Web UI and the starter name the namespace; the temporal CLI (1.5) sends no
	// X-Namespace header with --codec-endpoint, so a missing header means the served
	// namespace. Another namespace is refused: its payloads are not ours to decrypt.
	if ns := r.Header.Get(NamespaceHeader); ns != "" && ns != h.opts.Namespace {
		h.refuse(w, r, http.StatusForbidden, "this endpoint serves namespace "+h.opts.Namespace+" only")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d MiB", maxBodyBytes>>20))
			return
		}
		h.refuse(w, r, http.StatusBadRequest, "cannot read the request body")
		return
	}
	if n := countPayloads(body); n > maxPayloads {
		h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d payloads in one request, more than %d", n, maxPayloads))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.codec.ServeHTTP(w, r)
}

// countPayloads counts the objects directly inside an array directly inside the top-level
// object, without parsing: in the only valid request, {"payloads":[{...},...]}, those are
// the payloads (Payloads has no other field, so no other array can be there). It skips
// strings, so a brace inside one is not counted. For invalid JSON the count may be too
// high (and the request refused for it), never lower than the payloads protojson reads
// before it stops at the first error: up to there the input is valid.
func countPayloads(body []byte) int {
	depth, n := 0, 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if c == '{' && depth == 2 {
				n++
			}
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return n
}

// refuse answers with status and a short reason, and logs it without any header value
// other than the origin and the namespace.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	h.logger.Warn("codec endpoint refused a request", "status", status, "reason", reason,
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"origin", printable(r.Header.Get("Origin")), "namespace", printable(r.Header.Get(NamespaceHeader)))
	http.Error(w, reason, status)
}

// printable shortens and sanitises a client-supplied header value for the log.
func printable(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
