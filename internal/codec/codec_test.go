package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

const secret = "rt_S3CRET-refresh-token-value"

func ring(t *testing.T, primary string, ids ...string) *keyring.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		k := make([]byte, keyring.KeySize)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		keys[id] = k
	}
	r, err := keyring.New(primary, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type seed struct {
	RefreshToken string `json:"refresh_token"`
}

func TestRoundTripHidesPlaintext(t *testing.T) {
	dc := DataConverter(ring(t, "k1", "k1"))
	for _, v := range []seed{{secret}, {strings.Repeat(secret, 50)}} {
		p, err := dc.ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		if !IsEncrypted(p) || string(p.Metadata[MetadataKeyID]) != "k1" {
			t.Fatalf("metadata %v, want encoding %s and key k1", p.Metadata, EncodingEncrypted)
		}
		if bytes.Contains(p.Data, []byte("S3CRET")) || bytes.Contains(p.Data, []byte("json/plain")) {
			t.Fatal("ciphertext contains plaintext")
		}
		var got seed
		if err := dc.FromPayload(p, &got); err != nil || got != v {
			t.Fatalf("round trip: %v, %+v", err, got)
		}
	}
}

// Histories written while payloads were compressed before encryption still decode, and
// nothing new is compressed.
func TestReadsCompressedPayloadsWritesPlain(t *testing.T) {
	r := ring(t, "k1", "k1")
	old := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(),
		New(r), converter.NewZlibCodec(converter.ZlibCodecOptions{AlwaysEncode: true}))
	v := seed{strings.Repeat(secret, 20)}
	p, err := old.ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := New(r).Decode([]*commonpb.Payload{p})
	if err != nil || string(inner[0].Metadata["encoding"]) != "binary/zlib" {
		t.Fatalf("the old chain did not compress: %v, %v", err, inner)
	}
	var got seed
	if err := DataConverter(r).FromPayload(p, &got); err != nil || got != v {
		t.Fatalf("compressed payload: %v, %+v", err, got)
	}

	q, err := DataConverter(r).ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	inner, err = New(r).Decode([]*commonpb.Payload{q})
	if err != nil || string(inner[0].Metadata["encoding"]) != "json/plain" {
		t.Fatalf("new payload's inner encoding: %v, %v, want json/plain", err, inner)
	}
}

func TestDecodeWithOldKeyAfterRotation(t *testing.T) {
	keys := map[string][]byte{"old": bytes.Repeat([]byte{1}, 32), "new": bytes.Repeat([]byte{2}, 32)}
	before, _ := keyring.New("old", map[string][]byte{"old": keys["old"]})
	after, _ := keyring.New("new", keys)
	p, err := DataConverter(before).ToPayload(seed{secret})
	if err != nil {
		t.Fatal(err)
	}
	var got seed
	if err := DataConverter(after).FromPayload(p, &got); err != nil || got.RefreshToken != secret {
		t.Fatalf("rotated ring cannot read the old payload: %v", err)
	}
	q, _ := DataConverter(after).ToPayload(seed{secret})
	if string(q.Metadata[MetadataKeyID]) != "new" {
		t.Fatalf("new writes use key %s, want new", q.Metadata[MetadataKeyID])
	}
}

func TestUnknownKeyIDIsNamed(t *testing.T) {
	p, _ := DataConverter(ring(t, "gone-2025", "gone-2025")).ToPayload(seed{secret})
	var got seed
	err := DataConverter(ring(t, "k1", "k1")).FromPayload(p, &got)
	if err == nil || !strings.Contains(err.Error(), `"gone-2025"`) || strings.Contains(err.Error(), "S3CRET") {
		t.Fatalf("error %v, want one naming key gone-2025", err)
	}
}

func TestTamperingAndAADFail(t *testing.T) {
	r := ring(t, "k1", "k1")
	c := New(r)
	enc, _ := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	enc[0].Data[len(enc[0].Data)-1] ^= 1
	if _, err := c.Decode(enc); err == nil {
		t.Fatal("altered ciphertext decoded")
	}
	// A ciphertext sealed with the same key for another purpose (other AAD) is refused.
	_, sealed, _ := r.Seal([]byte("x"), []byte("credential:abc"))
	p := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte(EncodingEncrypted), MetadataKeyID: []byte("k1")}, Data: sealed}
	if _, err := c.Decode([]*commonpb.Payload{p}); err == nil {
		t.Fatal("a token-store ciphertext decoded as a payload")
	}
	p.Metadata[MetadataKeyID] = nil
	if _, err := c.Decode([]*commonpb.Payload{p}); err == nil || !strings.Contains(err.Error(), MetadataKeyID) {
		t.Fatalf("missing key ID: %v", err)
	}
}

func TestDecodePassesPlaintextThrough(t *testing.T) {
	dc := DataConverter(ring(t, "k1", "k1"))
	p, _ := converter.GetDefaultDataConverter().ToPayload(seed{secret})
	var got seed
	if err := dc.FromPayload(p, &got); err != nil || got.RefreshToken != secret {
		t.Fatalf("plaintext payload: %v", err)
	}
}

func postJSON(t *testing.T, h http.Handler, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerEncodeDecode(t *testing.T) {
	var logs bytes.Buffer
	h := Handler(ring(t, "k1", "k1"), HandlerOptions{Namespace: "default", AllowedOrigins: []string{"http://localhost:8233"},
		BearerToken: "tok-S3CRET", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	auth := map[string]string{"Authorization": "Bearer tok-S3CRET", NamespaceHeader: "default"}
	p, _ := converter.GetDefaultDataConverter().ToPayload(seed{secret})
	in, _ := json.Marshal(commonpb.Payloads{Payloads: []*commonpb.Payload{p}})

	enc := postJSON(t, h, EncodePath, auth, string(in))
	if enc.Code != 200 || strings.Contains(enc.Body.String(), "S3CRET") || !strings.Contains(enc.Body.String(), "YmluYXJ5L2VuY3J5cHRlZA==") {
		t.Fatalf("encode: %d %s", enc.Code, enc.Body)
	}
	dec := postJSON(t, h, DecodePath, auth, enc.Body.String())
	if dec.Code != 200 {
		t.Fatalf("decode: %d %s", dec.Code, dec.Body)
	}
	var out commonpb.Payloads
	if err := json.Unmarshal(dec.Body.Bytes(), &out); err != nil || len(out.Payloads) != 1 || !bytes.Equal(out.Payloads[0].Data, p.Data) {
		t.Fatalf("decoded %v (%v), want the original", out.Payloads, err)
	}

	// Without the header the temporal CLI's namespace is assumed; another namespace is refused.
	if r := postJSON(t, h, DecodePath, map[string]string{"Authorization": "Bearer tok-S3CRET"}, enc.Body.String()); r.Code != 200 {
		t.Errorf("no X-Namespace: %d", r.Code)
	}
	if r := postJSON(t, h, DecodePath, map[string]string{"Authorization": "Bearer tok-S3CRET", NamespaceHeader: "other"}, enc.Body.String()); r.Code != 403 {
		t.Errorf("other namespace: %d, want 403", r.Code)
	}
	for _, a := range []string{"", "Bearer tok-S3CRE", "Bearer tok-S3CRETx", "tok-S3CRET", "Basic tok-S3CRET"} {
		if r := postJSON(t, h, DecodePath, map[string]string{"Authorization": a}, enc.Body.String()); r.Code != 401 {
			t.Errorf("Authorization %q: %d, want 401", a, r.Code)
		}
	}
	if strings.Contains(logs.String(), "S3CRET") {
		t.Errorf("the log shows the token or a secret:\n%s", logs.String())
	}
	if r := postJSON(t, h, "/codec/other", auth, "{}"); r.Code != 404 {
		t.Errorf("unknown path: %d", r.Code)
	}
	req := httptest.NewRequest(http.MethodGet, HealthPath, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("healthz: %d", rec.Code)
	}
}

func TestHandlerCORS(t *testing.T) {
	h := Handler(ring(t, "k1", "k1"), HandlerOptions{Namespace: "default", AllowedOrigins: []string{"http://localhost:8233"}, BearerToken: "tok",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pre := httptest.NewRequest(http.MethodOptions, DecodePath, nil)
	pre.Header.Set("Origin", "http://localhost:8233")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace,authorization")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	hdr := rec.Header()
	if rec.Code != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:8233" ||
		hdr.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", rec.Code, hdr)
	}
	for _, want := range []string{"Content-Type", "X-Namespace", "Authorization"} {
		if !strings.Contains(hdr.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Allow-Headers %q lacks %s", hdr.Get("Access-Control-Allow-Headers"), want)
		}
	}
	pre.Header.Set("Origin", "http://evil.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	if rec.Code != 403 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", rec.Code, rec.Header())
	}
	// A request from another origin is refused even with the token.
	r := postJSON(t, h, DecodePath, map[string]string{"Origin": "http://evil.example", "Authorization": "Bearer tok"}, `{"payloads":[]}`)
	if r.Code != 403 {
		t.Errorf("POST from another origin: %d", r.Code)
	}
	r = postJSON(t, h, DecodePath, map[string]string{"Origin": "http://localhost:8233", "Authorization": "Bearer tok"}, `{"payloads":[]}`)
	if r.Code != 200 || r.Header().Get("Access-Control-Allow-Origin") != "http://localhost:8233" {
		t.Errorf("POST from the UI: %d %v", r.Code, r.Header())
	}
}
