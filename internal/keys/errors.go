package keys

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them, with the
// operation and the key name or version as context, never key material.
var (
	// ErrInvalidName: a key name or KeyID is not well formed, or is reserved.
	ErrInvalidName = errors.New("invalid key name")
	// ErrNotFound: the named key or version does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrMalformed: an input (wrapped key, sealed data) or a key file is not
	// in the expected format: wrong magic, truncated, too long.
	ErrMalformed = errors.New("malformed")
	// ErrDecrypt: authentication failed: wrong key, wrong aad, or the input was
	// altered. The cases cannot be told apart, by design of AEAD.
	ErrDecrypt = errors.New("decryption failed")
	// ErrKeySize: a key or data key has the wrong length.
	ErrKeySize = errors.New("wrong key size")
	// ErrInsecurePermissions: a key directory or file is accessible to group
	// or others, or is not a directory or regular file.
	ErrInsecurePermissions = errors.New("insecure permissions")
)
