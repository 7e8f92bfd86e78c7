package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// FileManager is a Manager that keeps keys in files under one directory. It
// is for development and the demo only: keys are as safe as the disk and the
// account that runs the process. Production uses a KMS or HSM implementation
// of Manager (docs/keys.md).
//
// Layout (directories 0700, files 0600; anything group- or world-accessible is
// refused with ErrInsecurePermissions):
//
//	<dir>/signing/<name>/v<N>.key   Ed25519 private key, PKCS#8 PEM ("PRIVATE KEY")
//	<dir>/kek/v<N>.key              AES-256 KEK: 32 bytes, standard base64, one line
//
// The current version of a key is the highest N present. Key files are never
// modified: they are created by writing a temp file and hard-linking it into
// place, which fails if the name exists, so two processes creating the same
// key agree on one. Every Signer and WrapKey lists the key's directory, so
// managers in other processes see rotations at once; parsed keys are cached.
//
// String, GoString and LogValue show only the directory.
type FileManager struct {
	dir        string
	log        *slog.Logger
	autoCreate bool

	mu sync.Mutex
	// cache is behind a pointer so that even printing a FileManager value
	// with %+v shows an address, not key material.
	cache *fileCache
}

type fileCache struct {
	signing map[KeyID]ed25519.PrivateKey
	kek     map[uint32]cipher.AEAD
}

var _ Manager = (*FileManager)(nil)

// FileOption configures NewFileManager.
type FileOption func(*fileOptions) error

type fileOptions struct {
	log        *slog.Logger
	autoCreate bool
}

// WithLogger logs key creation and rotation (key ids only) to l. The default
// discards.
func WithLogger(l *slog.Logger) FileOption {
	return func(o *fileOptions) error {
		if l == nil {
			return errors.New("keys: WithLogger: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithAutoCreate sets whether Signer and WrapKey create a key that does not
// exist yet (the default, true). With false they fail with ErrNotFound until
// Rotate provisions the key, as a KMS-backed Manager would.
func WithAutoCreate(on bool) FileOption {
	return func(o *fileOptions) error {
		o.autoCreate = on
		return nil
	}
}

// NewFileManager opens, creating if needed, a file key store in dir. It
// refuses a dir (or its signing/ and kek/ subdirectories) that group or others
// can access.
func NewFileManager(dir string, opts ...FileOption) (*FileManager, error) {
	o := fileOptions{log: slog.New(slog.DiscardHandler), autoCreate: true}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if dir == "" {
		return nil, errors.New("keys: empty key directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if err := ensureDir(abs); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	for _, sub := range []string{signingDir, kekDir} {
		if err := checkDir(filepath.Join(abs, sub)); err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
	}
	return &FileManager{
		dir:        abs,
		log:        o.log,
		autoCreate: o.autoCreate,
		cache: &fileCache{
			signing: make(map[KeyID]ed25519.PrivateKey),
			kek:     make(map[uint32]cipher.AEAD),
		},
	}, nil
}

const (
	signingDir = "signing"
	kekDir     = "kek"
	pemType    = "PRIVATE KEY"
)

// String returns "keys.FileManager(<dir>)": no key material.
func (m *FileManager) String() string { return "keys.FileManager(" + m.dir + ")" }

// GoString is String, so %#v cannot print the cache either.
func (m *FileManager) GoString() string { return m.String() }

// LogValue implements slog.LogValuer: only the directory.
func (m *FileManager) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", m.dir))
}

// Dir returns the key directory (absolute).
func (m *FileManager) Dir() string { return m.dir }

// Signer implements Manager.
func (m *FileManager) Signer(ctx context.Context, name string) (crypto.Signer, KeyID, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("keys: signer %q: %w", name, err)
	}
	if err := validSigningName(name); err != nil {
		return nil, "", fmt.Errorf("keys: signer: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.current(m.signingPath(name), newSigningFile)
	if err != nil {
		return nil, "", fmt.Errorf("keys: signer %q: %w", name, err)
	}
	id := makeID(name, v)
	key, err := m.loadSigning(name, v)
	if err != nil {
		return nil, "", err
	}
	return &signer{id: id, key: key}, id, nil
}

// PublicKey implements Manager. It returns an ed25519.PublicKey.
func (m *FileManager) PublicKey(ctx context.Context, id KeyID) (crypto.PublicKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: public key %q: %w", id, err)
	}
	name, v, err := parseID(id)
	if err != nil {
		return nil, fmt.Errorf("keys: public key: %w", err)
	}
	if name == KEKName {
		return nil, fmt.Errorf("keys: public key %q: the KEK has no public key: %w", id, ErrInvalidName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key, err := m.loadSigning(name, v)
	if err != nil {
		return nil, err
	}
	return key.Public(), nil // a copy
}

// WrapKey implements Manager. dataKey is 1 to 1024 bytes (a data key or a
// partner's HMAC secret). The format is
//
//	"gpk1" | KEK version (uint32, big-endian) | 12-byte nonce | AES-256-GCM ciphertext and tag
//
// with the first 8 bytes authenticated along with aad.
func (m *FileManager) WrapKey(ctx context.Context, dataKey, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: wrap key: %w", err)
	}
	if len(dataKey) == 0 || len(dataKey) > maxWrapInput {
		return nil, fmt.Errorf("keys: wrap key: data key of %d bytes, want 1 to %d: %w", len(dataKey), maxWrapInput, ErrKeySize)
	}
	m.mu.Lock()
	v, err := m.current(m.kekPath(), newKEKFile)
	var aead cipher.AEAD
	if err == nil {
		aead, err = m.loadKEK(v)
	}
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("keys: wrap key: %w", err)
	}
	return seal(aead, wrapHeaderFor(v), dataKey, aad), nil
}

// UnwrapKey implements Manager.
func (m *FileManager) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: unwrap key: %w", err)
	}
	if len(wrapped) < wrapHeader+gcmOverhead+1 || len(wrapped) > wrapHeader+gcmOverhead+maxWrapInput {
		return nil, fmt.Errorf("keys: unwrap key: %d bytes is not a wrapped key: %w", len(wrapped), ErrMalformed)
	}
	if string(wrapped[:len(wrapMagic)]) != wrapMagic {
		return nil, fmt.Errorf("keys: unwrap key: unknown format: %w", ErrMalformed)
	}
	v := binary.BigEndian.Uint32(wrapped[len(wrapMagic):wrapHeader])
	if v == 0 {
		return nil, fmt.Errorf("keys: unwrap key: KEK version 0: %w", ErrMalformed)
	}
	m.mu.Lock()
	aead, err := m.loadKEK(v)
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap key: %w", err)
	}
	dk, err := open(aead, wrapped[:wrapHeader], wrapped[wrapHeader:], aad)
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap key under KEK v%d: %w", v, err)
	}
	return dk, nil
}

// Rotate implements Manager. It always creates a new version, also for a
// signing key that does not exist yet (that is its version 1) and whatever
// WithAutoCreate says.
func (m *FileManager) Rotate(ctx context.Context, name string) (KeyID, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("keys: rotate %q: %w", name, err)
	}
	dir, gen := m.kekPath(), newKEKFile
	if name != KEKName {
		if err := validSigningName(name); err != nil {
			return "", fmt.Errorf("keys: rotate: %w", err)
		}
		dir, gen = m.signingPath(name), newSigningFile
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, _, err := m.create(dir, gen, true)
	if err != nil {
		return "", fmt.Errorf("keys: rotate %q: %w", name, err)
	}
	id := makeID(name, v)
	m.log.Info("keys: rotated key", slog.String("key_id", string(id)), slog.String("dir", m.dir))
	return id, nil
}

func (m *FileManager) signingPath(name string) string {
	return filepath.Join(m.dir, signingDir, name)
}

func (m *FileManager) kekPath() string { return filepath.Join(m.dir, kekDir) }

// current returns the highest version in dir, creating version 1 when there
// is none (and auto-create is on). Called with m.mu held.
func (m *FileManager) current(dir string, gen func() ([]byte, error)) (uint32, error) {
	if err := checkDir(dir); err != nil {
		return 0, err
	}
	vs, err := listVersions(dir)
	if err != nil {
		return 0, err
	}
	if len(vs) > 0 {
		return vs[len(vs)-1], nil
	}
	if !m.autoCreate {
		return 0, fmt.Errorf("no version in %s and auto-create is off (provision it with Rotate): %w", dir, ErrNotFound)
	}
	v, made, err := m.create(dir, gen, false)
	if err != nil {
		return 0, err
	}
	if made {
		m.log.Info("keys: created key", slog.String("path", versionFile(dir, v)))
	}
	return v, nil
}

// create writes a new version after the highest one in dir and reports
// whether it made it. If another process created that version first, a first
// key (rotate false) takes theirs; Rotate tries the next version, up to
// maxCreate times, so that it always returns a key it made. Called with m.mu
// held.
func (m *FileManager) create(dir string, gen func() ([]byte, error), rotate bool) (v uint32, made bool, err error) {
	if err := ensureDir(filepath.Dir(dir)); err != nil {
		return 0, false, err
	}
	if err := ensureDir(dir); err != nil {
		return 0, false, err
	}
	vs, err := listVersions(dir)
	if err != nil {
		return 0, false, err
	}
	next := uint32(1)
	if len(vs) > 0 {
		next = vs[len(vs)-1] + 1
	}
	for range maxCreate {
		if next == 0 { // wrapped around
			return 0, false, fmt.Errorf("%s: no versions left", dir)
		}
		data, err := gen()
		if err != nil {
			return 0, false, err
		}
		err = createKeyFile(versionFile(dir, next), data)
		clear(data)
		switch {
		case err == nil:
			return next, true, nil
		case !errors.Is(err, fs.ErrExist):
			return 0, false, err
		case !rotate:
			return next, false, nil // another process made it: use theirs
		}
		next++
	}
	return 0, false, fmt.Errorf("%s: gave up after %d concurrent rotations", dir, maxCreate)
}

// loadSigning returns one version of a signing key. Called with m.mu held.
func (m *FileManager) loadSigning(name string, v uint32) (ed25519.PrivateKey, error) {
	id := makeID(name, v)
	if k, ok := m.cache.signing[id]; ok {
		return k, nil
	}
	path := versionFile(m.signingPath(name), v)
	if err := checkDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", id, err)
	}
	b, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", id, err)
	}
	k, err := parseSigningFile(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s in %s: %w", id, path, err)
	}
	m.cache.signing[id] = k
	return k, nil
}

// loadKEK returns the AEAD of one KEK version. Called with m.mu held.
func (m *FileManager) loadKEK(v uint32) (cipher.AEAD, error) {
	if a, ok := m.cache.kek[v]; ok {
		return a, nil
	}
	path := versionFile(m.kekPath(), v)
	if err := checkDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("KEK v%d: %w", v, err)
	}
	b, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("KEK v%d: %w", v, err)
	}
	key, err := parseKEKFile(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("KEK v%d in %s: %w", v, path, err)
	}
	a, err := newAEAD(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("KEK v%d: %w", v, err)
	}
	m.cache.kek[v] = a
	return a, nil
}

func wrapHeaderFor(v uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(wrapMagic), v)
}

// newSigningFile returns a new Ed25519 key as PKCS#8 PEM, which openssl reads
// (openssl pkey -in v1.key -pubout).
func newSigningFile() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	clear(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal Ed25519 key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	clear(der)
	return out, nil
}

// parseSigningFile is the mirror of newSigningFile. Its errors do not wrap the
// parser's, which could quote the input.
func parseSigningFile(b []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("not a single %q PEM block: %w", pemType, ErrMalformed)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	clear(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", ErrMalformed)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("not an Ed25519 key: %w", ErrMalformed)
	}
	return priv, nil
}

// newKEKFile returns a new 32-byte KEK as one line of standard base64.
func newKEKFile() ([]byte, error) {
	k := make([]byte, aesKeySize)
	_, _ = rand.Read(k) // never fails, see crypto/rand.Read
	out := base64.StdEncoding.AppendEncode(nil, k)
	clear(k)
	return append(out, '\n'), nil
}

// parseKEKFile is the mirror of newKEKFile.
func parseKEKFile(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	k := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(k, b)
	if err != nil {
		clear(k)
		return nil, fmt.Errorf("KEK is not base64: %w", ErrMalformed) // the decoder's error quotes an offset only, but stay safe
	}
	if n != aesKeySize {
		clear(k)
		return nil, fmt.Errorf("KEK of %d bytes, want %d: %w", n, aesKeySize, ErrKeySize)
	}
	return k[:n], nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func validSigningName(name string) error {
	if name == KEKName {
		return fmt.Errorf("%q is reserved for the KEK: %w", name, ErrInvalidName)
	}
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%q does not match %s: %w", truncate(name), namePattern, ErrInvalidName)
	}
	return nil
}

func makeID(name string, v uint32) KeyID {
	return KeyID(fmt.Sprintf("%s/v%d", name, v))
}

// parseID splits "name/vN". The name is a signing-key name or KEKName.
func parseID(id KeyID) (string, uint32, error) {
	name, ver, ok := strings.Cut(string(id), "/")
	if !ok {
		return "", 0, fmt.Errorf("key id %q is not name/vN: %w", truncate(string(id)), ErrInvalidName)
	}
	if name != KEKName {
		if err := validSigningName(name); err != nil {
			return "", 0, fmt.Errorf("key id: %w", err)
		}
	}
	v, ok := parseVersion(ver)
	if !ok {
		return "", 0, fmt.Errorf("key id %q: bad version: %w", truncate(string(id)), ErrInvalidName)
	}
	return name, v, nil
}

// truncate bounds caller-supplied strings quoted in errors.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// signer is the crypto.Signer Signer returns. It does not expose the private
// key (a KMS signer cannot either, so callers must not rely on it), and it
// prints as its KeyID.
type signer struct {
	id  KeyID
	key ed25519.PrivateKey
}

// Public returns the ed25519.PublicKey.
func (s *signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign signs message (not a digest: Ed25519 hashes itself) with opts
// crypto.Hash(0); rand is ignored.
func (s *signer) Sign(rand io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.key.Sign(rand, message, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: sign with %s: %w", s.id, err)
	}
	return sig, nil
}

func (s *signer) String() string       { return "keys.Signer(" + string(s.id) + ")" }
func (s *signer) GoString() string     { return s.String() }
func (s *signer) LogValue() slog.Value { return slog.StringValue(string(s.id)) }
