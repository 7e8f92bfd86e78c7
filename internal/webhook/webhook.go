// Package webhook signs and verifies webhooks by the Standard Webhooks
// convention (https://www.standardwebhooks.com): three headers carry a
// message id, a unix timestamp and a list of signatures over
// id + "." + timestamp + "." + body.
//
// Two signature versions are supported: "v1", HMAC-SHA256 under a shared
// secret ("whsec_" + base64), and "v1a", Ed25519 ("whpk_"/"whsk_" + base64),
// for partners who should not hold a secret that lets them forge our
// messages. Verify accepts several keys at once so that a key can be rotated
// without a flag day: the sender signs with both keys for a while, the
// receiver trusts both.
package webhook

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// The header names of the convention. http.Header canonicalises them
// ("Webhook-Id"); lookups through http.Header are case-insensitive.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a message's timestamp may be from the
// receiver's clock, either way. It bounds how long a captured message can be
// replayed; receivers that must refuse every replay also remember ids.
const DefaultTolerance = 5 * time.Minute

// Versions of signature elements.
const (
	VersionHMAC    = "v1"
	VersionEd25519 = "v1a"
)

// Key serialisation prefixes, as the convention defines them. The prefix
// makes a leaked string recognisable to secret scanners and keeps a public
// key from being configured where a secret belongs.
const (
	SecretPrefix     = "whsec_"
	PublicKeyPrefix  = "whpk_"
	PrivateKeyPrefix = "whsk_"
)

// Bounds on secrets and on what Verify reads. A hostile sender controls the
// headers, so each is bounded before any cryptography runs: at most
// MaxSignatures HMAC comparisons per secret and Ed25519 verifications per
// public key.
const (
	MinSecretLen       = 24 // bytes; the convention's lower bound
	MaxSecretLen       = 64 // bytes; the convention's upper bound
	newSecretLen       = 32
	MaxIDLen           = 256
	MaxSignatureHeader = 4096 // bytes of the webhook-signature header
	MaxSignatures      = 10   // elements in the webhook-signature header
	maxTimestampLen    = 20   // digits; more is never a plausible unix time
)

// Reasons of the errors Verify returns, all with code apperr.Unauthorized.
const (
	ReasonMissing   = "signature_missing"
	ReasonMalformed = "signature_malformed"
	ReasonStale     = "signature_stale"
	ReasonInvalid   = "signature_invalid"
)

// b64 is the encoding of signatures and keys: standard alphabet with padding,
// as the convention's reference libraries write. Strict refuses encodings
// with non-zero trailing bits, so each value has one spelling.
var b64 = base64.StdEncoding.Strict()

// Key is one key a receiver trusts. Exactly one of Secret (for "v1"
// signatures) and Public (for "v1a") is set.
type Key struct {
	ID     string            // the caller's name for the key, returned by Verify so logs can say which key matched
	Secret []byte            // HMAC secret, for v1
	Public ed25519.PublicKey // Ed25519 public key, for v1a
}

// NewSecret returns a new random HMAC secret in its serialised form
// ("whsec_" + base64 of 32 random bytes).
func NewSecret() (string, error) {
	b := make([]byte, newSecretLen)
	if _, err := rand.Read(b); err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "random_failed", "cannot read randomness for a webhook secret")
	}
	return SecretPrefix + b64.EncodeToString(b), nil
}

// ParseSecret decodes a serialised HMAC secret. Errors have code
// apperr.Invalid and reason "webhook_secret_invalid"; they never contain s.
func ParseSecret(s string) ([]byte, error) {
	b, err := decodeKey(s, SecretPrefix, "webhook_secret_invalid", "webhook secret")
	if err != nil {
		return nil, err
	}
	if len(b) < MinSecretLen || len(b) > MaxSecretLen {
		return nil, apperr.New(apperr.Invalid, "webhook_secret_invalid",
			"webhook secret is %d bytes, want %d to %d", len(b), MinSecretLen, MaxSecretLen)
	}
	return b, nil
}

// NewKeyPair returns a new Ed25519 key pair in serialised form.
func NewKeyPair() (pub, priv string, err error) {
	p, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", apperr.Wrap(err, apperr.Internal, "random_failed", "cannot generate a webhook key pair")
	}
	return PublicKeyPrefix + b64.EncodeToString(p), PrivateKeyPrefix + b64.EncodeToString(k), nil
}

// ParsePublicKey decodes a serialised Ed25519 public key ("whpk_" + base64
// of 32 bytes). Errors have code apperr.Invalid, reason
// "webhook_public_key_invalid".
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	const reason = "webhook_public_key_invalid"
	b, err := decodeKey(s, PublicKeyPrefix, reason, "webhook public key")
	if err != nil {
		return nil, err
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, apperr.New(apperr.Invalid, reason, "webhook public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// ParsePrivateKey decodes a serialised Ed25519 private key ("whsk_" + base64
// of the 64-byte seed-and-public-key form). A key whose public half does
// not belong to its seed is refused: it would sign, but nothing would ever
// verify. Errors have code apperr.Invalid, reason
// "webhook_private_key_invalid", and never contain s.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	const reason = "webhook_private_key_invalid"
	b, err := decodeKey(s, PrivateKeyPrefix, reason, "webhook private key")
	if err != nil {
		return nil, err
	}
	if len(b) != ed25519.PrivateKeySize {
		return nil, apperr.New(apperr.Invalid, reason, "webhook private key is %d bytes, want %d", len(b), ed25519.PrivateKeySize)
	}
	k := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
	if !bytes.Equal(k, b) {
		return nil, apperr.New(apperr.Invalid, reason, "webhook private key: public half does not match the seed")
	}
	return k, nil
}

// decodeKey strips prefix and decodes the base64 rest. The detail names
// only what was expected: the input may be a secret.
func decodeKey(s, prefix, reason, what string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, apperr.New(apperr.Invalid, reason, "%s must start with %q", what, prefix)
	}
	b, err := b64.DecodeString(rest)
	if err != nil {
		// The base64 error quotes an offset, not input; still, keep it out
		// of the detail and only in the logged cause.
		return nil, apperr.Wrap(err, apperr.Invalid, reason, "%s is not valid base64 after %q", what, prefix)
	}
	return b, nil
}

// Signer makes one element of the webhook-signature header.
type Signer interface {
	// Sign returns one "version,base64" element for the message.
	Sign(id string, ts time.Time, body []byte) string
}

// HMACSigner returns a Signer of "v1" elements under secret.
func HMACSigner(secret []byte) Signer { return hmacSigner{secret: bytes.Clone(secret)} }

type hmacSigner struct{ secret []byte }

func (s hmacSigner) Sign(id string, ts time.Time, body []byte) string {
	return VersionHMAC + "," + b64.EncodeToString(macOf(s.secret, id, unix(ts), body))
}

// Ed25519Signer returns a Signer of "v1a" elements under priv.
func Ed25519Signer(priv ed25519.PrivateKey) Signer {
	return ed25519Signer{priv: bytes.Clone(priv)}
}

type ed25519Signer struct{ priv ed25519.PrivateKey }

func (s ed25519Signer) Sign(id string, ts time.Time, body []byte) string {
	sig := ed25519.Sign(s.priv, signedContent(id, unix(ts), body))
	return VersionEd25519 + "," + b64.EncodeToString(sig)
}

// CryptoSigner returns a Signer of "v1a" elements by an Ed25519 key behind
// crypto.Signer (a key manager or HSM that never hands out the private key).
// A signing failure panics: an Ed25519 key that cannot sign is a broken
// deployment, not a request error.
func CryptoSigner(s crypto.Signer) Signer { return cryptoSigner{s} }

type cryptoSigner struct{ s crypto.Signer }

func (c cryptoSigner) Sign(id string, ts time.Time, body []byte) string {
	sig, err := c.s.Sign(nil, signedContent(id, unix(ts), body), crypto.Hash(0))
	if err != nil {
		panic("webhook: signing key failed: " + err.Error())
	}
	return VersionEd25519 + "," + b64.EncodeToString(sig)
}

// Headers returns the three headers of a message signed by s. To sign with
// several keys during a rotation, join the elements of each Signer's Sign
// with a space into the webhook-signature header.
func Headers(s Signer, id string, ts time.Time, body []byte) http.Header {
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, unix(ts))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
	return h
}

func unix(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }

// signedContent is what both versions sign. The id holds no '.' (Verify
// refuses it) and the timestamp only digits, so the split back into id,
// timestamp and body is unique.
func signedContent(id, ts string, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(ts)+2+len(body))
	b = append(b, id...)
	b = append(b, '.')
	b = append(b, ts...)
	b = append(b, '.')
	return append(b, body...)
}

// macOf streams the signed content into the MAC rather than building it, so
// a large body is not copied once per secret.
func macOf(secret []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	writeContent(m, id, ts, body)
	return m.Sum(nil)
}

func writeContent(m hash.Hash, id, ts string, body []byte) {
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
}

// Verify checks the headers h against body with any of keys and returns the
// key that matched. Several keys are trusted at once during a rotation.
// tolerance <= 0 means DefaultTolerance; a timestamp exactly tolerance away
// from now is accepted.
//
// A "v1" element is checked only against keys with a Secret, a "v1a"
// element only against keys with a Public key; elements of other versions
// are ignored, so a sender may add a version we do not know yet. Only the
// first value of each header is read.
//
// Errors are *apperr.Error. With code apperr.Unauthorized, the reasons are
// ReasonMissing (a header absent or empty), ReasonMalformed (a header too
// long, an id with characters outside printable ASCII or a '.', a timestamp
// not all digits, a signature element without a version, or more than
// MaxSignatures elements), ReasonStale (the timestamp further than tolerance
// from now, in the past or the future) and ReasonInvalid (no element matches
// any key). A key with neither or both of Secret and Public, or a Public key
// of the wrong size, is a configuration bug: code apperr.Internal, reason
// "webhook_key_invalid". Details never contain secrets or signatures.
func Verify(keys []Key, h http.Header, body []byte, now time.Time, tolerance time.Duration) (Key, error) {
	for i, k := range keys {
		hasSecret, hasPublic := len(k.Secret) > 0, len(k.Public) > 0
		if hasSecret == hasPublic || (hasPublic && len(k.Public) != ed25519.PublicKeySize) {
			return Key{}, apperr.New(apperr.Internal, "webhook_key_invalid",
				"webhook key %d (%q) must have either a secret or a %d-byte public key", i, k.ID, ed25519.PublicKeySize)
		}
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, tsText, sigText := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, p := range []struct{ name, v string }{{HeaderID, id}, {HeaderTimestamp, tsText}, {HeaderSignature, sigText}} {
		if p.v == "" {
			return Key{}, apperr.New(apperr.Unauthorized, ReasonMissing, "header %s is missing", p.name)
		}
	}
	if err := checkID(id); err != nil {
		return Key{}, err
	}
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return Key{}, err
	}
	sigs, err := parseSignatures(sigText)
	if err != nil {
		return Key{}, err
	}
	// Staleness before cryptography: it is cheap and needs no key.
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return Key{}, apperr.New(apperr.Unauthorized, ReasonStale,
			"%s is %s from the receiver's clock, more than the %s allowed", HeaderTimestamp, d.Round(time.Second), tolerance)
	}

	var content []byte // built once, only if a v1a element needs it
	for _, k := range keys {
		if len(k.Secret) > 0 {
			var mac []byte // computed once per secret, only if a v1 element exists
			for _, s := range sigs {
				if s.version != VersionHMAC {
					continue
				}
				if mac == nil {
					mac = macOf(k.Secret, id, tsText, body)
				}
				// hmac.Equal is constant-time: a timing difference would let
				// a caller learn a valid MAC byte by byte.
				if hmac.Equal(mac, s.sig) {
					return k, nil
				}
			}
			continue
		}
		for _, s := range sigs {
			if s.version != VersionEd25519 || len(s.sig) != ed25519.SignatureSize {
				continue
			}
			if content == nil {
				content = signedContent(id, tsText, body)
			}
			if ed25519.Verify(k.Public, content, s.sig) {
				return k, nil
			}
		}
	}
	return Key{}, apperr.New(apperr.Unauthorized, ReasonInvalid, "no signature in %s matches a trusted key", HeaderSignature)
}

// checkID refuses ids that are long, contain '.' (which would make the
// signed content ambiguous) or anything but printable ASCII (which a log
// line or a header could misrender).
func checkID(id string) error {
	if len(id) > MaxIDLen {
		return apperr.New(apperr.Unauthorized, ReasonMalformed, "%s is %d bytes, more than %d", HeaderID, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '.' {
			return apperr.New(apperr.Unauthorized, ReasonMalformed, "%s has a character other than printable ASCII without '.' at byte %d", HeaderID, i)
		}
	}
	return nil
}

// parseTimestamp accepts only ASCII digits: strconv.ParseInt alone would
// take a sign, and "+1614265330" signs different bytes from "1614265330".
func parseTimestamp(s string) (int64, error) {
	bad := len(s) > maxTimestampLen
	for i := 0; i < len(s) && !bad; i++ {
		bad = s[i] < '0' || s[i] > '9'
	}
	if !bad {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, apperr.New(apperr.Unauthorized, ReasonMalformed, "%s is not a unix time in seconds", HeaderTimestamp)
}

type signature struct {
	version string
	sig     []byte // nil when the payload is not base64: such an element never matches
}

// parseSignatures splits the header into elements. An element that cannot
// be told apart (no comma, empty version) makes the header malformed; a
// payload that is not base64 only makes its element never match, like a
// wrong signature, so that a "v1" MAC presented as "v1a" fails as invalid.
func parseSignatures(s string) ([]signature, error) {
	if len(s) > MaxSignatureHeader {
		return nil, apperr.New(apperr.Unauthorized, ReasonMalformed, "%s is %d bytes, more than %d", HeaderSignature, len(s), MaxSignatureHeader)
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, apperr.New(apperr.Unauthorized, ReasonMissing, "header %s is empty", HeaderSignature)
	}
	if len(fields) > MaxSignatures {
		return nil, apperr.New(apperr.Unauthorized, ReasonMalformed, "%s has %d elements, more than %d", HeaderSignature, len(fields), MaxSignatures)
	}
	sigs := make([]signature, 0, len(fields))
	for i, f := range fields {
		version, payload, ok := strings.Cut(f, ",")
		if !ok || version == "" || payload == "" {
			return nil, apperr.New(apperr.Unauthorized, ReasonMalformed, "%s element %d is not \"version,signature\"", HeaderSignature, i+1)
		}
		sig, err := b64.DecodeString(payload)
		if err != nil {
			sig = nil
		}
		sigs = append(sigs, signature{version: version, sig: sig})
	}
	return sigs, nil
}
