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
	"fmt"

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
)

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

// Decode decrypts encrypted payloads with the key their metadata names and passes every
// other payload through unchanged. Its errors name the key ID, never key material or
// plaintext.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
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
		out[i] = inner
	}
	return out, nil
}

// Codecs is the codec chain, outermost first: encryption, then a reader of the zlib
// compression earlier versions applied before encrypting. Encoding runs the chain from
// the end, decoding from the start. The worker's data converter and its HTTP codec
// endpoint use this same chain.
func Codecs(ring *keyring.Keyring) []converter.PayloadCodec {
	return []converter.PayloadCodec{New(ring), zlibReader{converter.NewZlibCodec(converter.ZlibCodecOptions{})}}
}

// zlibReader decompresses payloads that were compressed with zlib (histories written
// before tokenwarden stopped compressing) and compresses nothing. The SDK's zlib codec
// allocates a new compressor of about 600 KB for every payload it encodes: at a few
// hundred payloads a second that was most of the worker's garbage and a good part of
// its CPU, to save a few hundred bytes on payloads of a few hundred bytes. And
// compressing before encrypting would make the ciphertext's length depend on what the
// plaintext repeats.
type zlibReader struct{ zlib converter.PayloadCodec }

func (z zlibReader) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return payloads, nil
}

func (z zlibReader) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return z.zlib.Decode(payloads)
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
