package fabricnet

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestEnsureBinariesCached checks that a cache stamped with the pinned
// version and holding every command is used as is: no go command runs (PATH
// is empty), so a build attempt would fail.
func TestEnsureBinariesCached(t *testing.T) {
	cache := t.TempDir()
	bin := filepath.Join(cache, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range Commands {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, stampName), []byte(stamp()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "")

	got, err := EnsureBinaries(context.Background(), cache, nil)
	if err != nil {
		t.Fatalf("EnsureBinaries with a complete cache: %v", err)
	}
	if got != bin {
		t.Errorf("EnsureBinaries = %q, want %q", got, bin)
	}

	// Another pin, or a missing command, means a rebuild: here it fails
	// for want of the go command, which shows it was attempted.
	if err := os.WriteFile(filepath.Join(cache, stampName), []byte("fabric 0.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureBinaries(context.Background(), cache, nil); err == nil {
		t.Error("EnsureBinaries with a stale stamp did not try to rebuild")
	}
}
