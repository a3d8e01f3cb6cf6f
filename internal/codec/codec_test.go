package codec

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/adler32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// innerPayload decrypts p and nothing more: the payload an encrypted payload holds.
func innerPayload(t *testing.T, r *keyring.Keyring, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	plain, err := r.Open(string(p.Metadata[MetadataKeyID]), p.Data, aad)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	inner := &commonpb.Payload{}
	if err := proto.Unmarshal(plain, inner); err != nil {
		t.Fatalf("decrypted payload: %v", err)
	}
	return inner
}

// Histories written while payloads were compressed before encryption still decode, to
// exactly what the SDK's zlib codec makes of them, and nothing new is compressed.
func TestReadsCompressedPayloadsWritesPlain(t *testing.T) {
	r := ring(t, "k1", "k1")
	sdkZlib := converter.NewZlibCodec(converter.ZlibCodecOptions{AlwaysEncode: true})
	old := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), New(r), sdkZlib)
	v := seed{strings.Repeat(secret, 20)}
	p, err := old.ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	inner := innerPayload(t, r, p)
	if string(inner.Metadata["encoding"]) != EncodingZlib {
		t.Fatalf("the old chain did not compress: %v", inner)
	}
	want, err := sdkZlib.Decode([]*commonpb.Payload{inner})
	if err != nil {
		t.Fatal(err)
	}
	got, err := New(r).Decode([]*commonpb.Payload{p})
	if err != nil || !proto.Equal(got[0], want[0]) || string(got[0].Metadata["encoding"]) != "json/plain" {
		t.Fatalf("Decode = %v, %v; want the SDK zlib codec's %v", got, err, want)
	}
	var gotSeed seed
	if err := DataConverter(r).FromPayload(p, &gotSeed); err != nil || gotSeed != v {
		t.Fatalf("compressed payload: %v, %+v", err, gotSeed)
	}

	q, err := DataConverter(r).ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	if inner := innerPayload(t, r, q); string(inner.Metadata["encoding"]) != "json/plain" {
		t.Fatalf("new payload's inner encoding: %v, want json/plain", inner)
	}
}

// zlibBomb returns what the SDK's zlib codec would make of a payload whose data is
// mib MiB of zeros, without compressing (or holding) that much: once the window is all
// zeros, each further MiB of zeros, flushed, compresses to the same deflate blocks, so
// the stream is the first MiBs compressed, copies of the last of them, an empty final
// block and the Adler-32 checksum, which for zeros follows from their count.
// TestZlibBombIsWhatItClaims checks the construction against the SDK's decoder.
func zlibBomb(t *testing.T, mib int) *commonpb.Payload {
	t.Helper()
	const chunk = 1 << 20
	n := mib * chunk
	prefix := protowire.AppendTag(nil, 2, protowire.BytesType) // Payload.data
	prefix = protowire.AppendVarint(prefix, uint64(n))
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(prefix); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, chunk)
	var blocks [][]byte // the deflate blocks of each MiB compressed so far
	for range min(mib, 3) {
		mark := buf.Len()
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, bytes.Clone(buf.Bytes()[mark:]))
	}
	if mib > 3 {
		if !bytes.Equal(blocks[1], blocks[2]) {
			t.Fatal("zlibBomb: the second and third MiB of zeros compress differently; the construction no longer holds")
		}
		for range mib - 3 {
			buf.Write(blocks[2])
		}
	}
	buf.Write([]byte{0x03, 0x00}) // a final fixed-Huffman block holding only end-of-block
	// Adler-32: a is 1 plus the sum of the bytes, b the sum of a after each byte, mod 65521.
	sum := adler32.Checksum(prefix)
	a, b := uint64(sum&0xffff), uint64(sum>>16)
	b = (b + uint64(n)%65521*a) % 65521
	buf.Write(binary.BigEndian.AppendUint32(nil, uint32(b<<16|a)))
	return &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(EncodingZlib)}, Data: buf.Bytes()}
}

// The bomb inflates, with the SDK's own zlib codec, to a payload of exactly that many
// zeros (at a size this test can afford to inflate).
func TestZlibBombIsWhatItClaims(t *testing.T) {
	for _, mib := range []int{1, 3, 7} {
		bomb := zlibBomb(t, mib)
		out, err := converter.NewZlibCodec(converter.ZlibCodecOptions{}).Decode([]*commonpb.Payload{bomb})
		if err != nil {
			t.Fatalf("%d MiB: the SDK cannot inflate the bomb: %v", mib, err)
		}
		if len(out[0].Data) != mib<<20 || bytes.ContainsFunc(out[0].Data, func(r rune) bool { return r != 0 }) {
			t.Fatalf("%d MiB: inflated to %d bytes, want %d zeros", mib, len(out[0].Data), mib<<20)
		}
	}
	if big := zlibBomb(t, 256); len(big.Data) > 300<<10 {
		t.Errorf("the 256 MiB bomb is %d bytes compressed, want under 300 KiB", len(big.Data))
	}
}

// memory runs f and returns the bytes it allocated and how long it took.
func memory(f func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, d
}

// What a decode of the bomb may cost. Without the limit it allocated 1.8 GiB, and as
// many seconds.
const (
	bombAllocLimit = 10 << 20
	bombTimeLimit  = 2 * time.Second
)

// A compressed payload inside an encrypted one is inflated through the limit: 256 MiB
// of zeros, compressed to about 270 KB, is refused with an error naming the limit, in
// bounded memory. Outside encryption it is not inflated at all.
func TestZlibBomb(t *testing.T) {
	r := ring(t, "k1", "k1")
	bomb := zlibBomb(t, 256)
	enc, err := New(r).Encode([]*commonpb.Payload{bomb})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("encrypted", func(t *testing.T) {
		var out []*commonpb.Payload
		var err error
		alloc, took := memory(func() { out, err = New(r).Decode(enc) })
		var limit *InflateLimitError
		if !errors.As(err, &limit) || !strings.Contains(err.Error(), "4 MiB") || !strings.Contains(err.Error(), `"k1"`) {
			t.Fatalf("Decode = %v, %v; want the inflate limit (4 MiB) named", out, err)
		}
		t.Logf("refused in %v, %d KiB allocated", took, alloc>>10)
		if alloc > bombAllocLimit || took > bombTimeLimit {
			t.Errorf("refusing the bomb allocated %d KiB in %v, want under %d KiB and %v", alloc>>10, took, bombAllocLimit>>10, bombTimeLimit)
		}
	})
	t.Run("bare", func(t *testing.T) {
		var out []*commonpb.Payload
		var err error
		alloc, took := memory(func() { out, err = New(r).Decode([]*commonpb.Payload{bomb}) })
		if err != nil || len(out) != 1 || out[0] != bomb {
			t.Fatalf("Decode = %v, %v; want the bare zlib payload passed through as it is", out, err)
		}
		t.Logf("passed through in %v, %d KiB allocated", took, alloc>>10)
		if alloc > bombAllocLimit || took > bombTimeLimit {
			t.Errorf("passing the bomb through allocated %d KiB in %v", alloc>>10, took)
		}
	})
	t.Run("endpoint", func(t *testing.T) {
		h := Handler(r, HandlerOptions{Namespace: "default", Logger: slog.New(slog.DiscardHandler)})
		for name, p := range map[string]*commonpb.Payload{"encrypted": enc[0], "bare": bomb} {
			body, err := json.Marshal(commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
			if err != nil {
				t.Fatal(err)
			}
			var rec *httptest.ResponseRecorder
			alloc, took := memory(func() { rec = postJSON(t, h, DecodePath, nil, string(body)) })
			t.Logf("%s: %d-byte request answered %d in %v, %d KiB allocated", name, len(body), rec.Code, took, alloc>>10)
			if alloc > bombAllocLimit || took > bombTimeLimit {
				t.Errorf("%s: the request allocated %d KiB in %v", name, alloc>>10, took)
			}
			switch name {
			case "encrypted":
				if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "4 MiB") {
					t.Errorf("encrypted bomb: %d %q, want 400 naming the 4 MiB limit", rec.Code, rec.Body)
				}
			case "bare":
				var got commonpb.Payloads
				if rec.Code != http.StatusOK || protojson.Unmarshal(rec.Body.Bytes(), &got) != nil || len(got.Payloads) != 1 ||
					!proto.Equal(got.Payloads[0], bomb) {
					t.Errorf("bare bomb: %d, want 200 with the payload unchanged", rec.Code)
				}
			}
		}
	})
}

// The limit is per Decode call, shared by its payloads: the endpoint decodes a whole
// request in one call, so payloads just under the limit each cannot add up.
func TestInflateLimitIsPerDecode(t *testing.T) {
	r := ring(t, "k1", "k1")
	enc, err := New(r).Encode([]*commonpb.Payload{zlibBomb(t, 1), zlibBomb(t, 1), zlibBomb(t, 1), zlibBomb(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := New(r).Decode(enc[:3])
	if err != nil {
		t.Fatalf("three payloads of 1 MiB: %v", err)
	}
	for i, p := range out {
		if len(p.Data) != 1<<20 {
			t.Errorf("payload %d inflated to %d bytes, want 1 MiB", i, len(p.Data))
		}
	}
	var limit *InflateLimitError
	if _, err := New(r).Decode(enc); !errors.As(err, &limit) || !strings.Contains(err.Error(), "payload 3 ") {
		t.Fatalf("four payloads of 1 MiB (and a few bytes) each: %v, want the limit, at payload 3", err)
	}
	// Each call has the whole budget again.
	if _, err := New(r).Decode(enc[3:]); err != nil {
		t.Fatalf("the fourth on its own: %v", err)
	}
}

// A compressed payload that is corrupt or not a payload fails with an error, not a panic.
func TestCorruptCompressedPayload(t *testing.T) {
	r := ring(t, "k1", "k1")
	good := zlibBomb(t, 1)
	flipped := bytes.Clone(good.Data)
	flipped[len(flipped)-1] ^= 1 // the checksum
	var notPayload bytes.Buffer
	zw := zlib.NewWriter(&notPayload)
	_, _ = zw.Write([]byte{0xff, 0xff, 0xff})
	_ = zw.Close()
	for name, data := range map[string][]byte{
		"not zlib":      []byte("plain text"),
		"bad checksum":  flipped,
		"truncated":     good.Data[:len(good.Data)/2],
		"not a payload": notPayload.Bytes(),
	} {
		enc, err := New(r).Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte(EncodingZlib)}, Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := New(r).Decode(enc); err == nil || !strings.Contains(err.Error(), "payload 0") {
			t.Errorf("%s: Decode = %v, %v; want an error naming the payload", name, out, err)
		}
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

// The endpoint refuses a body over maxBodyBytes and a request of more than maxPayloads
// payloads with 413, before parsing; a payload as large as Temporal stores still fits.
func TestHandlerLimits(t *testing.T) {
	r := ring(t, "k1", "k1")
	h := Handler(r, HandlerOptions{Namespace: "default", Logger: slog.New(slog.DiscardHandler)})

	// The largest payload Temporal accepts (2 MiB) encodes and decodes.
	big := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/plain")}, Data: bytes.Repeat([]byte{'x'}, 2<<20)}
	in, _ := json.Marshal(commonpb.Payloads{Payloads: []*commonpb.Payload{big}})
	enc := postJSON(t, h, EncodePath, nil, string(in))
	if enc.Code != http.StatusOK {
		t.Fatalf("encode of a 2 MiB payload: %d %.200s", enc.Code, enc.Body)
	}
	dec := postJSON(t, h, DecodePath, nil, enc.Body.String())
	var out commonpb.Payloads
	if dec.Code != http.StatusOK || protojson.Unmarshal(dec.Body.Bytes(), &out) != nil || len(out.Payloads) != 1 || !proto.Equal(out.Payloads[0], big) {
		t.Fatalf("decode of a 2 MiB payload: %d %.200s", dec.Code, dec.Body)
	}

	// One byte over the body limit.
	over := `{"payloads":[{"data":"` + strings.Repeat("A", maxBodyBytes) + `"}]}`
	over = over[:maxBodyBytes+1]
	for _, path := range []string{EncodePath, DecodePath} {
		if rec := postJSON(t, h, path, nil, over); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "4 MiB") {
			t.Errorf("POST %s of %d bytes: %d %q, want 413 naming 4 MiB", path, len(over), rec.Code, rec.Body)
		}
	}

	payloads := func(n int) string {
		return `{"payloads":[` + strings.TrimSuffix(strings.Repeat(`{"metadata":{"encoding":"YmluYXJ5L251bGw="}},`, n), ",") + `]}`
	}
	if rec := postJSON(t, h, EncodePath, nil, payloads(maxPayloads)); rec.Code != http.StatusOK {
		t.Errorf("%d payloads: %d %q, want 200", maxPayloads, rec.Code, rec.Body)
	}
	for _, path := range []string{EncodePath, DecodePath} {
		if rec := postJSON(t, h, path, nil, payloads(maxPayloads+1)); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "257 payloads") {
			t.Errorf("POST %s of %d payloads: %d %q, want 413", path, maxPayloads+1, rec.Code, rec.Body)
		}
	}
	// Empty objects, the cheapest payloads to send, are counted too.
	if rec := postJSON(t, h, DecodePath, nil, `{"payloads":[`+strings.Repeat(`{},`, 100000)+`{}]}`); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("100,001 empty payloads: %d, want 413", rec.Code)
	}
}

func TestCountPayloads(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"payloads":[]}`, 0},
		{`{}`, 0},
		{`{"payloads":[{}]}`, 1},
		{` { "payloads" : [ {} , { "metadata" : { "encoding" : "anNvbi9wbGFpbg==" } , "data" : "e30=" } ] } `, 2},
		// Braces, brackets and escaped quotes inside strings are not structure.
		{`{"payloads":[{"metadata":{"k":"{[\"}]{"}},{"data":"\\"}]}`, 2},
		// Nested objects and arrays inside a payload are not payloads.
		{`{"payloads":[{"metadata":{"a":"b"},"externalPayloads":[{"sizeBytes":"1"},{}]}]}`, 1},
		// Invalid JSON: counted as far as it goes.
		{`{"payloads":[{},{},{`, 3},
	} {
		if got := countPayloads([]byte(tc.body)); got != tc.want {
			t.Errorf("countPayloads(%s) = %d, want %d", tc.body, got, tc.want)
		}
	}
}
