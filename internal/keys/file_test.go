package keys_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/keys"
)

func newManager(tb testing.TB, opts ...keys.FileOption) (*keys.FileManager, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "keys")
	m, err := keys.NewFileManager(dir, opts...)
	if err != nil {
		tb.Fatalf("NewFileManager: %v", err)
	}
	return m, dir
}

func mustSigner(tb testing.TB, m keys.Manager, name string) (crypto.Signer, keys.KeyID) {
	tb.Helper()
	s, id, err := m.Signer(context.Background(), name)
	if err != nil {
		tb.Fatalf("Signer(%q): %v", name, err)
	}
	return s, id
}

func mustSign(tb testing.TB, s crypto.Signer, msg []byte) []byte {
	tb.Helper()
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return sig
}

func mustPublicKey(tb testing.TB, m keys.Manager, id keys.KeyID) crypto.PublicKey {
	tb.Helper()
	pub, err := m.PublicKey(context.Background(), id)
	if err != nil {
		tb.Fatalf("PublicKey(%q): %v", id, err)
	}
	return pub
}

func mustWrap(tb testing.TB, m keys.Manager, dk, aad []byte) []byte {
	tb.Helper()
	w, err := m.WrapKey(context.Background(), dk, aad)
	if err != nil {
		tb.Fatalf("WrapKey: %v", err)
	}
	return w
}

func mustUnwrap(tb testing.TB, m keys.Manager, w, aad []byte) []byte {
	tb.Helper()
	dk, err := m.UnwrapKey(context.Background(), w, aad)
	if err != nil {
		tb.Fatalf("UnwrapKey: %v", err)
	}
	return dk
}

func mustRotate(tb testing.TB, m keys.Manager, name string) keys.KeyID {
	tb.Helper()
	id, err := m.Rotate(context.Background(), name)
	if err != nil {
		tb.Fatalf("Rotate(%q): %v", name, err)
	}
	return id
}

func kekVersion(tb testing.TB, wrapped []byte) uint32 {
	tb.Helper()
	if len(wrapped) < 8 || string(wrapped[:4]) != "gpk1" {
		tb.Fatalf("wrapped key does not start with gpk1: %x", wrapped[:min(8, len(wrapped))])
	}
	return binary.BigEndian.Uint32(wrapped[4:8])
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	tests := []struct {
		name   string
		wantID keys.KeyID
	}{
		{"block-header", "block-header/v1"},
		{"export", "export/v1"},
		{"a", "a/v1"},
		{"0.callback_v2", "0.callback_v2/v1"},
		{strings.Repeat("x", 64), keys.KeyID(strings.Repeat("x", 64) + "/v1")},
	}
	pubs := map[string]keys.KeyID{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, id := mustSigner(t, m, tt.name)
			if diff := cmp.Diff(tt.wantID, id); diff != "" {
				t.Errorf("KeyID mismatch (-want +got):\n%s", diff)
			}
			msg := []byte("block 42 header")
			sig := mustSign(t, s, msg)
			pub := mustPublicKey(t, m, id)
			if diff := cmp.Diff(s.Public(), pub); diff != "" {
				t.Errorf("PublicKey vs Signer.Public mismatch (-want +got):\n%s", diff)
			}
			if !keys.Verify(pub, msg, sig) {
				t.Error("Verify(good signature) = false")
			}
			if keys.Verify(pub, []byte("block 43 header"), sig) {
				t.Error("Verify(other message) = true")
			}
			// Asking again returns the same key.
			_, id2 := mustSigner(t, m, tt.name)
			if id2 != id {
				t.Errorf("second Signer = %s, want %s", id2, id)
			}
			k := string(pub.(ed25519.PublicKey))
			if other, ok := pubs[k]; ok {
				t.Errorf("%s has the same public key as %s", id, other)
			}
			pubs[k] = id
		})
	}
}

// The key on disk is a standard PKCS#8 PEM Ed25519 key, and it is the one
// that signs (guards against, e.g., clearing a buffer the key aliases).
func TestSigningKeyFileFormat(t *testing.T) {
	t.Parallel()
	m, dir := newManager(t)
	s, _ := mustSigner(t, m, "export")
	b, err := os.ReadFile(filepath.Join(dir, "signing", "export", "v1.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key file is not one PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("ParsePKCS8PrivateKey: %v", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("key file holds %T, want ed25519.PrivateKey", k)
	}
	if diff := cmp.Diff(priv.Public(), s.Public()); diff != "" {
		t.Errorf("public key mismatch (-file +signer):\n%s", diff)
	}
	zero := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	if bytes.Equal(zero.Public().(ed25519.PublicKey), s.Public().(ed25519.PublicKey)) {
		t.Error("signer uses the all-zero seed")
	}
	if _, ok := s.(ed25519.PrivateKey); ok {
		t.Error("Signer exposes the ed25519.PrivateKey")
	}
}

func TestRotateSigningKey(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	ctx := context.Background()
	msg := []byte("export batch 7")

	s1, id1 := mustSigner(t, m, "export")
	sig1 := mustSign(t, s1, msg)

	id2 := mustRotate(t, m, "export")
	if diff := cmp.Diff(keys.KeyID("export/v2"), id2); diff != "" {
		t.Errorf("Rotate id mismatch (-want +got):\n%s", diff)
	}
	s2, cur := mustSigner(t, m, "export")
	if cur != id2 {
		t.Errorf("Signer after Rotate = %s, want %s", cur, id2)
	}
	sig2 := mustSign(t, s2, msg)

	pub1 := mustPublicKey(t, m, id1)
	pub2 := mustPublicKey(t, m, id2)
	tests := []struct {
		desc string
		pub  crypto.PublicKey
		sig  []byte
		want bool
	}{
		{"old signature, old key", pub1, sig1, true},
		{"new signature, new key", pub2, sig2, true},
		{"old signature, new key", pub2, sig1, false},
		{"new signature, old key", pub1, sig2, false},
	}
	for _, tt := range tests {
		if got := keys.Verify(tt.pub, msg, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.desc, got, tt.want)
		}
	}
	if _, err := m.PublicKey(ctx, "export/v3"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("PublicKey(export/v3) error = %v, want ErrNotFound", err)
	}
	// Rotating a name that does not exist yet makes its v1.
	if id := mustRotate(t, m, "fresh"); id != "fresh/v1" {
		t.Errorf("Rotate(fresh) = %s, want fresh/v1", id)
	}
}

func TestWrapUnwrap(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	tests := []struct {
		desc string
		dk   []byte
		aad  []byte
	}{
		{"data key, owner aad", bytes.Repeat([]byte{7}, 32), []byte("person:0190c7e2")},
		{"nil aad", bytes.Repeat([]byte{1}, 32), nil},
		{"one byte", []byte{0}, []byte("x")},
		{"hmac secret", []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), []byte("partner:acme")},
		{"max size", bytes.Repeat([]byte{0xff}, 1024), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			w := mustWrap(t, m, tt.dk, tt.aad)
			if v := kekVersion(t, w); v != 1 {
				t.Errorf("KEK version = %d, want 1", v)
			}
			if len(tt.dk) >= 8 && bytes.Contains(w, tt.dk) {
				t.Error("wrapped key contains the data key")
			}
			if diff := cmp.Diff(tt.dk, mustUnwrap(t, m, w, tt.aad)); diff != "" {
				t.Errorf("unwrap mismatch (-want +got):\n%s", diff)
			}
			if w2 := mustWrap(t, m, tt.dk, tt.aad); bytes.Equal(w, w2) {
				t.Error("two wraps are equal: nonce reused")
			}
		})
	}
}

func TestWrapKeySize(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	for _, n := range []int{0, 1025, 1 << 20} {
		if _, err := m.WrapKey(context.Background(), make([]byte, n), nil); !errors.Is(err, keys.ErrKeySize) {
			t.Errorf("WrapKey(%d bytes) error = %v, want ErrKeySize", n, err)
		}
	}
}

func TestUnwrapAfterKEKRotation(t *testing.T) {
	t.Parallel()
	m, dir := newManager(t)
	dk1, _ := keys.NewDataKey()
	dk2, _ := keys.NewDataKey()
	aad := []byte("person:1")
	w1 := mustWrap(t, m, dk1, aad)

	if id := mustRotate(t, m, keys.KEKName); id != "kek/v2" {
		t.Fatalf("Rotate(kek) = %s, want kek/v2", id)
	}
	w2 := mustWrap(t, m, dk2, aad)
	if v := kekVersion(t, w2); v != 2 {
		t.Errorf("KEK version after rotation = %d, want 2", v)
	}
	// A fresh manager (empty cache) unwraps both.
	m2, err := keys.NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range []keys.Manager{m, m2} {
		if diff := cmp.Diff(dk1, mustUnwrap(t, mm, w1, aad)); diff != "" {
			t.Errorf("unwrap v1 mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(dk2, mustUnwrap(t, mm, w2, aad)); diff != "" {
			t.Errorf("unwrap v2 mismatch (-want +got):\n%s", diff)
		}
	}
	// Re-labelling a v1 wrap as v2 fails authentication (the header is bound).
	relabelled := slices.Clone(w1)
	binary.BigEndian.PutUint32(relabelled[4:8], 2)
	if _, err := m.UnwrapKey(context.Background(), relabelled, aad); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("UnwrapKey(relabelled) error = %v, want ErrDecrypt", err)
	}
}

func TestUnwrapRejects(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	ctx := context.Background()
	dk, _ := keys.NewDataKey()
	aad := []byte("person:1")
	w := mustWrap(t, m, dk, aad)

	with := func(f func(b []byte) []byte) []byte { return f(slices.Clone(w)) }
	tests := []struct {
		desc    string
		wrapped []byte
		aad     []byte
		want    error
	}{
		{"wrong aad", w, []byte("person:2"), keys.ErrDecrypt},
		{"nil aad", w, nil, keys.ErrDecrypt},
		{"aad prefix", w, aad[:len(aad)-1], keys.ErrDecrypt},
		{"nil", nil, aad, keys.ErrMalformed},
		{"header only", w[:8], aad, keys.ErrMalformed},
		{"no ciphertext", w[:8+28], aad, keys.ErrMalformed},
		{"truncated tag", w[:len(w)-1], aad, keys.ErrDecrypt},
		{"extra byte", append(slices.Clone(w), 0), aad, keys.ErrDecrypt},
		{"too long", append(slices.Clone(w), make([]byte, 2000)...), aad, keys.ErrMalformed},
		{"bad magic", with(func(b []byte) []byte { b[0] = 'x'; return b }), aad, keys.ErrMalformed},
		{"future format", with(func(b []byte) []byte { b[3] = '2'; return b }), aad, keys.ErrMalformed},
		{"sealed data, not a wrapped key", with(func(b []byte) []byte { copy(b, "gpd1"); return b }), aad, keys.ErrMalformed},
		{"KEK version 0", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 0); return b }), aad, keys.ErrMalformed},
		{"unknown KEK version", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 99); return b }), aad, keys.ErrNotFound},
		{"flipped nonce", with(func(b []byte) []byte { b[8] ^= 1; return b }), aad, keys.ErrDecrypt},
		{"flipped ciphertext", with(func(b []byte) []byte { b[8+12] ^= 0x80; return b }), aad, keys.ErrDecrypt},
		{"flipped tag", with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), aad, keys.ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := m.UnwrapKey(ctx, tt.wrapped, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnwrapKey error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("UnwrapKey returned %d bytes with an error", len(got))
			}
		})
	}

	// Every truncation and every single-bit flip fails, and nothing panics.
	for n := range len(w) {
		if _, err := m.UnwrapKey(ctx, w[:n], aad); err == nil {
			t.Errorf("UnwrapKey(first %d bytes) succeeded", n)
		}
	}
	for i := range len(w) * 8 {
		b := slices.Clone(w)
		b[i/8] ^= 1 << (i % 8)
		if _, err := m.UnwrapKey(ctx, b, aad); err == nil {
			t.Errorf("UnwrapKey(bit %d flipped) succeeded", i)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	ctx := context.Background()
	for _, name := range []string{
		"", "A", "Export", "-a", ".a", "_a", "a/b", "../x", "a b", "a\x00", "é",
		keys.KEKName, strings.Repeat("x", 65),
	} {
		if _, _, err := m.Signer(ctx, name); !errors.Is(err, keys.ErrInvalidName) {
			t.Errorf("Signer(%q) error = %v, want ErrInvalidName", name, err)
		}
		if name == keys.KEKName {
			continue // Rotate(KEKName) rotates the KEK
		}
		if _, err := m.Rotate(ctx, name); !errors.Is(err, keys.ErrInvalidName) {
			t.Errorf("Rotate(%q) error = %v, want ErrInvalidName", name, err)
		}
	}
	mustSigner(t, m, "x")
	tests := []struct {
		id   keys.KeyID
		want error
	}{
		{"", keys.ErrInvalidName},
		{"x", keys.ErrInvalidName},
		{"x/", keys.ErrInvalidName},
		{"x/1", keys.ErrInvalidName},
		{"x/v", keys.ErrInvalidName},
		{"x/v0", keys.ErrInvalidName},
		{"x/v01", keys.ErrInvalidName},
		{"x/v-1", keys.ErrInvalidName},
		{"x/v+1", keys.ErrInvalidName},
		{"x/v4294967296", keys.ErrInvalidName},
		{"x/v1/", keys.ErrInvalidName},
		{"X/v1", keys.ErrInvalidName},
		{"../x/v1", keys.ErrInvalidName},
		{"kek/v1", keys.ErrInvalidName},
		{"x/v2", keys.ErrNotFound},
		{"x/v4294967295", keys.ErrNotFound},
		{"y/v1", keys.ErrNotFound},
	}
	for _, tt := range tests {
		if _, err := m.PublicKey(ctx, tt.id); !errors.Is(err, tt.want) {
			t.Errorf("PublicKey(%q) error = %v, want %v", tt.id, err, tt.want)
		}
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	t.Parallel()
	ctx := context.Background()

	// What the manager creates.
	m, dir := newManager(t)
	_, id := mustSigner(t, m, "export")
	w := mustWrap(t, m, make([]byte, 32), nil)
	for path, want := range map[string]os.FileMode{
		dir:                                     0o700 | os.ModeDir,
		filepath.Join(dir, "signing"):           0o700 | os.ModeDir,
		filepath.Join(dir, "signing", "export"): 0o700 | os.ModeDir,
		filepath.Join(dir, "kek"):               0o700 | os.ModeDir,
		filepath.Join(dir, "signing", "export", "v1.key"): 0o600,
		filepath.Join(dir, "kek", "v1.key"):               0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != want {
			t.Errorf("mode of %s = %v, want %v", path, got, want)
		}
	}

	// What it refuses. Each case chmods a copy of the store, then runs op on a
	// new manager (empty cache).
	tests := []struct {
		desc  string
		path  string // relative to the store
		mode  os.FileMode
		onNew bool // NewFileManager itself fails
		op    func(m *keys.FileManager) error
	}{
		{desc: "world-readable dir", path: ".", mode: 0o755, onNew: true},
		{desc: "group-readable dir", path: ".", mode: 0o750, onNew: true},
		{desc: "group-writable signing dir", path: "signing", mode: 0o770, onNew: true},
		{desc: "world-readable kek dir", path: "kek", mode: 0o705, onNew: true},
		{desc: "readable name dir", path: "signing/export", mode: 0o755, op: func(m *keys.FileManager) error {
			_, _, err := m.Signer(ctx, "export")
			return err
		}},
		{desc: "group-readable signing key, Signer", path: "signing/export/v1.key", mode: 0o640, op: func(m *keys.FileManager) error {
			_, _, err := m.Signer(ctx, "export")
			return err
		}},
		{desc: "world-readable signing key, PublicKey", path: "signing/export/v1.key", mode: 0o604, op: func(m *keys.FileManager) error {
			_, err := m.PublicKey(ctx, id)
			return err
		}},
		{desc: "group-readable KEK, WrapKey", path: "kek/v1.key", mode: 0o640, op: func(m *keys.FileManager) error {
			_, err := m.WrapKey(ctx, make([]byte, 32), nil)
			return err
		}},
		{desc: "world-readable KEK, UnwrapKey", path: "kek/v1.key", mode: 0o644, op: func(m *keys.FileManager) error {
			_, err := m.UnwrapKey(ctx, w, nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			copyDir := filepath.Join(t.TempDir(), "keys")
			if err := os.CopyFS(copyDir, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			// CopyFS keeps only the permission bits it gets; make the copy
			// private first, then loosen the one path under test.
			if err := filepath.WalkDir(copyDir, func(p string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return os.Chmod(p, 0o700)
				}
				return os.Chmod(p, 0o600)
			}); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(copyDir, tt.path)
			if err := os.Chmod(target, tt.mode); err != nil {
				t.Fatal(err)
			}
			m2, err := keys.NewFileManager(copyDir)
			if !tt.onNew {
				if err != nil {
					t.Fatalf("NewFileManager: %v", err)
				}
				err = tt.op(m2)
			}
			if !errors.Is(err, keys.ErrInsecurePermissions) {
				t.Fatalf("error = %v, want ErrInsecurePermissions", err)
			}
			if !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "chmod") {
				t.Errorf("error %q does not name %s and the fix", err, target)
			}
		})
	}

	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.NewFileManager(f); err == nil {
			t.Error("NewFileManager(regular file) succeeded")
		}
	})
}

func TestTwoManagersSameDir(t *testing.T) {
	t.Parallel()
	m1, dir := newManager(t)
	m2, err := keys.NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	s1, id1 := mustSigner(t, m1, "block-header")
	s2, id2 := mustSigner(t, m2, "block-header")
	if id1 != id2 {
		t.Errorf("KeyIDs differ: %s, %s", id1, id2)
	}
	if diff := cmp.Diff(s1.Public(), s2.Public()); diff != "" {
		t.Errorf("public keys differ (-m1 +m2):\n%s", diff)
	}

	dk, _ := keys.NewDataKey()
	w := mustWrap(t, m1, dk, []byte("p"))
	if diff := cmp.Diff(dk, mustUnwrap(t, m2, w, []byte("p"))); diff != "" {
		t.Errorf("m2 unwrap of m1 wrap mismatch (-want +got):\n%s", diff)
	}

	// Rotations in one are seen by the other at once.
	rid := mustRotate(t, m1, "block-header")
	if _, cur := mustSigner(t, m2, "block-header"); cur != rid {
		t.Errorf("m2 Signer after m1 Rotate = %s, want %s", cur, rid)
	}
	mustRotate(t, m2, keys.KEKName)
	if v := kekVersion(t, mustWrap(t, m1, dk, nil)); v != 2 {
		t.Errorf("m1 wraps under KEK v%d after m2 rotated, want v2", v)
	}
}

// Concurrent first use of a name, in one manager and across two managers on
// the same directory (as two processes would), creates exactly one key.
func TestConcurrentFirstCreate(t *testing.T) {
	t.Parallel()
	m1, dir := newManager(t)
	m2, err := keys.NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	ids := make([]keys.KeyID, n)
	pubs := make([]crypto.PublicKey, n)
	wraps := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			s, id, err := m.Signer(context.Background(), "fresh")
			if err != nil {
				errs[i] = err
				return
			}
			ids[i], pubs[i] = id, s.Public()
			wraps[i], errs[i] = m.WrapKey(context.Background(), []byte("dk"), nil)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if ids[i] != "fresh/v1" {
			t.Errorf("goroutine %d got %s, want fresh/v1", i, ids[i])
		}
		if diff := cmp.Diff(pubs[0], pubs[i]); diff != "" {
			t.Errorf("goroutine %d public key differs (-0 +%d):\n%s", i, i, diff)
		}
		if v := kekVersion(t, wraps[i]); v != 1 {
			t.Errorf("goroutine %d wrapped under KEK v%d", i, v)
		}
		if _, err := m1.UnwrapKey(context.Background(), wraps[i], nil); err != nil {
			t.Errorf("goroutine %d wrap does not unwrap: %v", i, err)
		}
	}
	for _, d := range []string{filepath.Join(dir, "signing", "fresh"), filepath.Join(dir, "kek")} {
		if diff := cmp.Diff([]string{"v1.key"}, readDirNames(t, d)); diff != "" {
			t.Errorf("files in %s mismatch (-want +got):\n%s", d, diff)
		}
	}
}

// Concurrent rotations across two managers each make their own version.
func TestConcurrentRotate(t *testing.T) {
	t.Parallel()
	m1, dir := newManager(t)
	m2, err := keys.NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	const perManager = 5
	var (
		mu  sync.Mutex
		got []keys.KeyID
		wg  sync.WaitGroup
	)
	for _, m := range []*keys.FileManager{m1, m2} {
		for range perManager {
			wg.Go(func() {
				id, err := m.Rotate(context.Background(), "export")
				if err != nil {
					t.Errorf("Rotate: %v", err)
					return
				}
				mu.Lock()
				got = append(got, id)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	var want []keys.KeyID
	for v := 1; v <= 2*perManager; v++ {
		want = append(want, keys.KeyID(fmt.Sprintf("export/v%d", v)))
	}
	slices.SortFunc(got, func(a, b keys.KeyID) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(string(a), string(b))
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rotated ids mismatch (-want +got):\n%s", diff)
	}
	if n := len(readDirNames(t, filepath.Join(dir, "signing", "export"))); n != 2*perManager {
		t.Errorf("%d files, want %d", n, 2*perManager)
	}
}

func readDirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestAutoCreateOff(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t, keys.WithAutoCreate(false))
	ctx := context.Background()
	if _, _, err := m.Signer(ctx, "export"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("Signer error = %v, want ErrNotFound", err)
	}
	if _, err := m.WrapKey(ctx, []byte("dk"), nil); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("WrapKey error = %v, want ErrNotFound", err)
	}
	if id := mustRotate(t, m, "export"); id != "export/v1" {
		t.Errorf("Rotate = %s, want export/v1", id)
	}
	mustSigner(t, m, "export")
	if id := mustRotate(t, m, keys.KEKName); id != "kek/v1" {
		t.Errorf("Rotate(kek) = %s, want kek/v1", id)
	}
	mustWrap(t, m, []byte("dk"), nil)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	if _, err := keys.NewFileManager(t.TempDir(), keys.WithLogger(nil)); err == nil {
		t.Error("WithLogger(nil) accepted")
	}
	if _, err := keys.NewFileManager(""); err == nil {
		t.Error(`NewFileManager("") succeeded`)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err1 := m.Signer(ctx, "x")
	_, err2 := m.PublicKey(ctx, "x/v1")
	_, err3 := m.WrapKey(ctx, []byte("k"), nil)
	_, err4 := m.UnwrapKey(ctx, []byte("k"), nil)
	_, err5 := m.Rotate(ctx, "x")
	for i, err := range []error{err1, err2, err3, err4, err5} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("op %d error = %v, want context.Canceled", i, err)
		}
	}
}

// Private material never reaches logs, fmt output or errors.
func TestNoKeyMaterialInOutput(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	m, dir := newManager(t, keys.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	s, _ := mustSigner(t, m, "export")
	mustWrap(t, m, []byte("dk"), nil)
	mustRotate(t, m, "export")
	mustRotate(t, m, keys.KEKName)

	sigFile, err := os.ReadFile(filepath.Join(dir, "signing", "export", "v1.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(sigFile)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	seed := priv.(ed25519.PrivateKey).Seed()
	kekFile, err := os.ReadFile(filepath.Join(dir, "kek", "v1.key"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(kekFile)))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"seed hex":   fmt.Sprintf("%x", seed),
		"seed b64":   base64.StdEncoding.EncodeToString(seed),
		"seed raw":   string(seed),
		"seed bytes": fmt.Sprint(seed),
		"kek hex":    fmt.Sprintf("%x", kek),
		"kek b64":    strings.TrimSpace(string(kekFile)),
		"kek raw":    string(kek),
		"kek bytes":  fmt.Sprint(kek),
		"pem body":   string(bytes.Split(sigFile, []byte("\n"))[1]),
	}

	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("manager", "keys", m, "signer", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("manager", "keys", m, "signer", s)
	outputs := map[string]string{
		"logs": logs.String(),
		"%v":   fmt.Sprintf("%v %v", m, s),
		"%+v":  fmt.Sprintf("%+v %+v", m, s),
		"%#v":  fmt.Sprintf("%#v %#v", m, s),
		"%s":   fmt.Sprintf("%s %s", m, s),
		"%x":   fmt.Sprintf("%x %x", m, s),
	}
	if !strings.Contains(outputs["logs"], `"keys":{"dir":"`+dir+`"}`) {
		t.Errorf("logs do not show the dir: %s", outputs["logs"])
	}
	if got, want := outputs["%v"], "keys.FileManager("+dir+") keys.Signer(export/v1)"; got != want {
		t.Errorf("%%v = %q, want %q", got, want)
	}

	// Errors about corrupt key files do not quote them.
	short := base64.StdEncoding.EncodeToString(kek[:31])
	if err := os.WriteFile(filepath.Join(dir, "kek", "v1.key"), []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	badPEM := bytes.Replace(sigFile, []byte("PRIVATE KEY"), []byte("PUBLIC KEY"), 2)
	if err := os.WriteFile(filepath.Join(dir, "signing", "export", "v1.key"), badPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	m2, err := keys.NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m2.UnwrapKey(context.Background(), append([]byte("gpk1\x00\x00\x00\x01"), make([]byte, 40)...), nil)
	if !errors.Is(err, keys.ErrKeySize) {
		t.Errorf("UnwrapKey with short KEK file: error = %v, want ErrKeySize", err)
	}
	outputs["kek file error"] = fmt.Sprint(err)
	_, err = m2.PublicKey(context.Background(), "export/v1")
	if !errors.Is(err, keys.ErrMalformed) {
		t.Errorf("PublicKey with bad PEM: error = %v, want ErrMalformed", err)
	}
	outputs["pem file error"] = fmt.Sprint(err)
	secrets["short kek b64"] = short

	for on, out := range outputs {
		for what, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("%s contains the %s: %s", on, what, out)
			}
		}
	}
}
