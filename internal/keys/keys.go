// Package keys provides the key manager: named signing keys and envelope
// encryption of data keys under a key-encryption key (KEK).
//
// The file-based Manager (NewFileManager) is for development and the demo. In
// production the same interface is implemented over a KMS or HSM, so private
// keys and KEKs never leave it; see docs/keys.md.
//
// The package also holds the helpers that go with the keys: Verify for Ed25519
// signatures, and NewDataKey, SealData and OpenData for encrypting personal
// fields under a per-person data key (crypto-shredding: delete the wrapped data
// key and the fields are gone).
package keys

import (
	"context"
	"crypto"
)

// Manager signs with named keys and wraps data keys. Implementations are safe
// for concurrent use.
//
// Errors wrap the sentinels of this package (ErrInvalidName, ErrNotFound,
// ErrMalformed, ErrDecrypt, ErrKeySize, ErrInsecurePermissions) so callers can
// tell them apart with errors.Is. They never contain key material.
type Manager interface {
	// Signer returns the current version of the named Ed25519 signing key,
	// creating it if it does not exist yet (the file manager does; a KMS
	// implementation may require keys to be provisioned and then returns
	// ErrNotFound). Sign with crypto.Hash(0) (pure Ed25519). Names match
	// [a-z0-9][a-z0-9._-]{0,63} and are not KEKName (ErrInvalidName).
	Signer(ctx context.Context, name string) (crypto.Signer, KeyID, error)
	// PublicKey returns the public key (an ed25519.PublicKey) of one version of
	// a named signing key, also after rotation, so old signatures stay
	// verifiable. ErrNotFound if that version does not exist.
	PublicKey(ctx context.Context, id KeyID) (crypto.PublicKey, error)
	// WrapKey encrypts a data key under the current KEK, binding aad
	// (additional authenticated data, e.g. the owner id). The result names the
	// KEK version it was wrapped under.
	WrapKey(ctx context.Context, dataKey, aad []byte) ([]byte, error)
	// UnwrapKey decrypts a wrapped data key under the KEK version it names.
	// ErrMalformed if wrapped is not a wrapped key, ErrNotFound if the KEK
	// version is unknown, ErrDecrypt if aad differs or wrapped was altered.
	UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error)
	// Rotate makes a new current version of the named signing key, or of the
	// KEK when name is KEKName. Old versions keep verifying and unwrapping.
	Rotate(ctx context.Context, name string) (KeyID, error)
}

// KeyID names one version of a named key: "name/v3". Versions start at 1.
type KeyID string

// KEKName is the name Rotate takes for the key-encryption key. It is reserved:
// no signing key may have it.
const KEKName = "kek"
