package keys

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
)

// Formats. Both are a fixed-length header, then what AES-256-GCM with a random
// nonce produces (12-byte nonce, ciphertext, 16-byte tag). The header is part
// of the authenticated data, ahead of the caller's aad; it has a fixed length
// per format, so header||aad is unambiguous.
//
//	wrapped key: "gpk1" | KEK version (uint32, big-endian) | nonce | ciphertext | tag
//	sealed data: "gpd1" | nonce | ciphertext | tag
//
// A new format gets a new magic ("gpk2"); readers keep accepting the old ones.
const (
	wrapMagic    = "gpk1"
	dataMagic    = "gpd1"
	wrapHeader   = len(wrapMagic) + 4
	dataHeader   = len(dataMagic)
	gcmOverhead  = 12 + 16 // nonce + tag, as cipher.NewGCMWithRandomNonce
	aesKeySize   = 32
	maxWrapInput = 1024 // bytes of data key WrapKey accepts: keys and secrets, not documents
)

// DataKeySize is the size of a data key: an AES-256 key.
const DataKeySize = aesKeySize

// MaxSealSize bounds the plaintext SealData accepts: it encrypts personal
// fields, not files.
const MaxSealSize = 1 << 20

// NewDataKey returns a new random 32-byte data key for SealData and OpenData.
// Wrap it with Manager.WrapKey before storing it; never store it in clear.
// The error is always nil (crypto/rand does not fail); it is there so a
// future source of keys can.
func NewDataKey() ([]byte, error) {
	k := make([]byte, DataKeySize)
	_, _ = rand.Read(k) // never fails, see crypto/rand.Read
	return k, nil
}

// SealData encrypts plaintext (at most MaxSealSize bytes) under a 32-byte data
// key with AES-256-GCM and a random nonce, binding aad (e.g. the owner id and
// the field name, so a ciphertext cannot be moved to another row or column).
// One data key may seal at most 2^32 values (random-nonce limit).
func SealData(dataKey, plaintext, aad []byte) ([]byte, error) {
	if len(plaintext) > MaxSealSize {
		return nil, fmt.Errorf("keys: seal data: plaintext of %d bytes exceeds %d: %w", len(plaintext), MaxSealSize, ErrMalformed)
	}
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, fmt.Errorf("keys: seal data: %w", err)
	}
	return seal(aead, []byte(dataMagic), plaintext, aad), nil
}

// OpenData decrypts what SealData returned. It fails with ErrMalformed if
// sealed is not in the format, ErrDecrypt if the key or aad differ or sealed
// was altered, ErrKeySize if dataKey is not 32 bytes.
func OpenData(dataKey, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < dataHeader+gcmOverhead || len(sealed) > dataHeader+gcmOverhead+MaxSealSize {
		return nil, fmt.Errorf("keys: open data: %d bytes is not a sealed value: %w", len(sealed), ErrMalformed)
	}
	if string(sealed[:dataHeader]) != dataMagic {
		return nil, fmt.Errorf("keys: open data: unknown format: %w", ErrMalformed)
	}
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, fmt.Errorf("keys: open data: %w", err)
	}
	pt, err := open(aead, sealed[:dataHeader], sealed[dataHeader:], aad)
	if err != nil {
		return nil, fmt.Errorf("keys: open data: %w", err)
	}
	return pt, nil
}

// Verify reports whether sig is a valid pure Ed25519 signature of msg by pub.
// pub must be an ed25519.PublicKey (as Manager.PublicKey returns); anything
// else, and malformed keys or signatures, report false rather than panic.
func Verify(pub crypto.PublicKey, msg, sig []byte) bool {
	k, ok := pub.(ed25519.PublicKey)
	if !ok || len(k) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(k, msg, sig)
}

// newAEAD returns AES-256-GCM with random 96-bit nonces under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != aesKeySize {
		return nil, fmt.Errorf("key of %d bytes, want %d: %w", len(key), aesKeySize, ErrKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err) // unreachable: the length is checked
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// seal returns header || nonce || ciphertext || tag, authenticating header||aad.
func seal(aead cipher.AEAD, header, plaintext, aad []byte) []byte {
	out := make([]byte, len(header), len(header)+aead.Overhead()+len(plaintext))
	copy(out, header)
	return aead.Seal(out, nil, plaintext, headerAAD(header, aad))
}

// open is the mirror of seal: body is what follows header. The plaintext is
// never nil, so an empty value round-trips as an empty slice.
func open(aead cipher.AEAD, header, body, aad []byte) ([]byte, error) {
	pt, err := aead.Open(nil, nil, body, headerAAD(header, aad))
	if err != nil {
		return nil, ErrDecrypt // the cipher's error says nothing more
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

func headerAAD(header, aad []byte) []byte {
	b := make([]byte, 0, len(header)+len(aad))
	return append(append(b, header...), aad...)
}
