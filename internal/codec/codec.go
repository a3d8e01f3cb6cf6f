// Package codec encrypts every Temporal payload tokenwarden writes, so that workflow
// inputs (which carry the seed: refresh token, client secret), signal and update
// arguments, query and activity results and memos reach Temporal's history, and so the
// Web UI and `temporal workflow show`, only as AES-256-GCM ciphertext.
//
// The codec seals with the same keyring as the token store (internal/keyring): the
// primary key encrypts, any key of the ring decrypts, and the key ID travels in the
// payload's metadata ("encryption-key-id") so that keys can rotate. An encrypted
// payload looks like this in history:
//
//	metadata: {"encoding": "binary/encrypted", "encryption-key-id": "dev-20261126T183000Z"}
//	data:     nonce (12 bytes) || ciphertext of the marshalled inner payload || tag (16 bytes)
//
// The associated data of every seal is the encoding name, so a ciphertext of the token
// store (sealed with the same key but bound to a credential ID) never opens as a
// payload, and the other way round.
//
// Payloads are not compressed. Earlier versions compressed with zlib before encrypting,
// so an encrypted payload whose inner encoding is "binary/zlib" is inflated after
// decryption, and only there, through a hard limit (maxInflatedBytes): whoever can reach
// the codec endpoint can send any payload, and have /codec/encode encrypt one, and
// inflating without a limit let a request of a few hundred KB allocate hundreds of MiB.
// A bare zlib payload is passed through as it is, like every other payload that is not
// encrypted: tokenwarden never wrote one.
//
// Decode passes through payloads that are not encrypted. That keeps plaintext input
// readable, for example a `temporal workflow start --input ...` typed without
// --codec-endpoint, but such input has then already been stored in history in
// plaintext: exactly the leak that pointing the temporal CLI at the worker's codec
// endpoint (/codec) avoids.
//
// Search attributes are not payloads the codec sees (the SDK writes them with the
// default converter so that the server can index them); tokenwarden's are secret-free
// (state, provider, expiry). Failure details are payloads, but only if the client's
// failure converter uses this data converter (see FailureConverter); failure messages
// and stack traces are not encoded.
package codec

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/tokenwarden/tokenwarden/internal/keyring"
)

const (
	// EncodingEncrypted is the "encoding" metadata value of an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the metadata key holding the ID of the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
	// EncodingZlib is the "encoding" metadata value of a payload compressed by the SDK's
	// zlib codec (converter.NewZlibCodec): its data is the zlib stream of the marshalled
	// original payload. Earlier versions wrote such payloads inside encrypted ones.
	EncodingZlib = "binary/zlib"
)

// maxInflatedBytes bounds what one Decode call may inflate, all its compressed payloads
// together. Temporal refuses payloads above 2 MiB (its default blob size limit), and the
// payloads tokenwarden compressed were credential inputs and results of a few KB, so no
// genuine history comes near this; twice Temporal's limit leaves room, while a crafted
// payload (zlib shrinks a run of zeros about a thousandfold) cannot make a request of a
// few KB cost more than this. Per call rather than per payload: the codec endpoint
// decodes every payload of a request in one call and answers with all of them, so a
// per-payload limit would still let many payloads add up.
const maxInflatedBytes = 4 << 20

// aad binds every ciphertext to the payload encoding (and so to this use of the key).
var aad = []byte(EncodingEncrypted)

// Codec is a converter.PayloadCodec that seals payloads with a keyring. It is safe for
// concurrent use.
type Codec struct {
	ring *keyring.Keyring
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a Codec sealing with ring's primary key.
func New(ring *keyring.Keyring) *Codec {
	if ring == nil {
		panic("codec: nil keyring")
	}
	return &Codec{ring: ring}
}

// Encode encrypts each payload (metadata and data, marshalled) under the primary key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload %d: %w", i, err)
		}
		keyID, sealed, err := c.ring.Seal(plain, aad)
		clear(plain)
		if err != nil {
			return payloads, fmt.Errorf("codec: encrypt payload %d: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(keyID),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads with the key their metadata names, inflates those
// whose inner payload is compressed (see maxInflatedBytes), and passes every other
// payload through unchanged, compressed or not. Its errors name the key ID, never key
// material or plaintext.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	inf := inflater{budget: maxInflatedBytes}
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		keyID := string(p.GetMetadata()[MetadataKeyID])
		if keyID == "" {
			return payloads, fmt.Errorf("codec: payload %d is %s but has no %q metadata; it was not written by tokenwarden's codec", i, EncodingEncrypted, MetadataKeyID)
		}
		plain, err := c.ring.Open(keyID, p.GetData(), aad)
		if err != nil {
			return payloads, fmt.Errorf("codec: decrypt payload %d (encryption key ID %q): %w", i, keyID, err)
		}
		inner := &commonpb.Payload{}
		err = proto.Unmarshal(plain, inner)
		clear(plain)
		if err != nil {
			return payloads, fmt.Errorf("codec: payload %d (encryption key ID %q) decrypted but is not a payload: %w", i, keyID, err)
		}
		if string(inner.GetMetadata()[converter.MetadataEncoding]) == EncodingZlib {
			inner, err = inf.payload(inner.GetData())
			if err != nil {
				return payloads, fmt.Errorf("codec: payload %d (encryption key ID %q): %w", i, keyID, err)
			}
		}
		out[i] = inner
	}
	return out, nil
}

// InflateLimitError is the error (wrapped) of a Decode call whose compressed payloads
// inflate to more than its limit, maxInflatedBytes.
type InflateLimitError struct{ Limit int64 }

func (e *InflateLimitError) Error() string {
	return fmt.Sprintf("compressed payloads inflate to more than %d MiB, the limit of one decode", e.Limit>>20)
}

// inflater inflates the compressed payloads of one Decode call within a shared budget,
// reusing one zlib reader (each costs about 40 KB of window and tables).
type inflater struct {
	zr     io.ReadCloser
	budget int64 // bytes the remaining payloads of the call may inflate to
}

// payload inflates data, the SDK zlib codec's encoding of a marshalled payload, and
// unmarshals it. It reads the stream twice: first only counting what it inflates to,
// stopping one byte past the budget, so that a payload over the limit allocates nothing
// of its size; then into a buffer of exactly that size. The first pass also checks the
// stream's checksum.
func (f *inflater) payload(data []byte) (*commonpb.Payload, error) {
	if err := f.reset(data); err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(f.zr, f.budget+1))
	if err != nil {
		return nil, fmt.Errorf("inflate compressed payload: %w", err)
	}
	if n > f.budget {
		return nil, &InflateLimitError{Limit: maxInflatedBytes}
	}
	f.budget -= n
	if err := f.reset(data); err != nil {
		return nil, err
	}
	plain := make([]byte, n)
	if _, err := io.ReadFull(f.zr, plain); err != nil {
		return nil, fmt.Errorf("inflate compressed payload: %w", err)
	}
	p := &commonpb.Payload{}
	err = proto.Unmarshal(plain, p)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("compressed payload inflated but is not a payload: %w", err)
	}
	return p, nil
}

// reset points the zlib reader at the start of data, creating it the first time.
func (f *inflater) reset(data []byte) error {
	var err error
	if f.zr == nil {
		f.zr, err = zlib.NewReader(bytes.NewReader(data))
	} else {
		err = f.zr.(zlib.Resetter).Reset(bytes.NewReader(data), nil)
	}
	if err != nil {
		return fmt.Errorf("inflate compressed payload: %w", err)
	}
	return nil
}

// Codecs is the codec chain: encryption alone, which also reads the compressed payloads
// of older histories (see Decode). The worker's data converter and its HTTP codec
// endpoint use this same chain, so the endpoint decodes exactly what the worker does.
//
// Nothing is compressed any more: the SDK's zlib codec allocates a compressor of about
// 600 KB for every payload it encodes, which at a few hundred payloads a second was most
// of the worker's garbage and a good part of its CPU, to save a few hundred bytes on
// payloads of a few hundred bytes; and compressing before encrypting would make the
// ciphertext's length depend on what the plaintext repeats.
func Codecs(ring *keyring.Keyring) []converter.PayloadCodec {
	return []converter.PayloadCodec{New(ring)}
}

// DataConverter is the SDK's default data converter with every payload encrypted with
// ring.
func DataConverter(ring *keyring.Keyring) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), Codecs(ring)...)
}

// FailureConverter is the SDK's default failure converter with its payloads (the
// details of application errors, such as an activity's provider error) written by dc.
// A client needs it besides DataConverter: the SDK's default failure converter uses the
// default data converter, which would store those details in plaintext. Messages and
// stack traces stay readable: they are not payloads, and tokenwarden's are free of
// secrets (provider text is scrubbed).
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc})
}

// IsEncrypted reports whether p carries the encrypted encoding.
func IsEncrypted(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[converter.MetadataEncoding]) == EncodingEncrypted
}
