package keys

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
)

// These tests make the cross-process race deterministic: the key generator
// lets "another process" (a second manager) create the file first, between
// listing the directory and linking the new file into place.

func TestCreateLosesRaceForFirstKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	m1, err := NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var theirs ed25519.PublicKey
	gen := func() ([]byte, error) {
		s, id, err := m2.Signer(ctx, "export")
		if err != nil || id != "export/v1" {
			t.Fatalf("other process: %s, %v", id, err)
		}
		theirs = s.Public().(ed25519.PublicKey)
		return newSigningFile()
	}
	m1.mu.Lock()
	v, err := m1.current(m1.signingPath("export"), gen)
	m1.mu.Unlock()
	if err != nil || v != 1 {
		t.Fatalf("current = %d, %v; want 1", v, err)
	}
	s, _, err := m1.Signer(ctx, "export")
	if err != nil {
		t.Fatal(err)
	}
	if !theirs.Equal(s.Public()) {
		t.Error("the loser did not take the winner's key")
	}
	assertFiles(t, m1.signingPath("export"), "v1.key")
}

func TestRotateLosesRace(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	m1, err := NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewFileManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m1.Rotate(ctx, KEKName); err != nil { // kek/v1
		t.Fatal(err)
	}
	calls := 0
	gen := func() ([]byte, error) {
		calls++
		if calls == 1 {
			if id, err := m2.Rotate(ctx, KEKName); err != nil || id != "kek/v2" {
				t.Fatalf("other process: %s, %v", id, err)
			}
		}
		return newKEKFile()
	}
	m1.mu.Lock()
	v, made, err := m1.create(m1.kekPath(), gen, true)
	m1.mu.Unlock()
	if err != nil || v != 3 || !made {
		t.Fatalf("create = %d, %v, %v; want 3, true, nil", v, made, err)
	}
	assertFiles(t, m1.kekPath(), "v1.key", "v2.key", "v3.key")
}

func assertFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("files in %s = %v, want %v", dir, got, want)
	}
	for i := range want {
		if filepath.Base(got[i]) != want[i] {
			t.Errorf("file %d in %s = %s, want %s", i, dir, got[i], want[i])
		}
	}
}
