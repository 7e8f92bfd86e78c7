package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ClaimKeyFile is the consortium claim key's file in the key directory.
const ClaimKeyFile = "claim-key.hex"

// loadClaimKey reads the consortium claim key (32 bytes, hex) from the key
// directory, creating a random one on first start. Every issuer of a
// consortium must use the same key, distributed out of band (docs/keys.md):
// claims are HMAC-SHA256 of the canonical evidence id under it, so the same
// trip or invoice line claims the same ledger key at every issuer.
func loadClaimKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, ClaimKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another instance made it first
			return loadClaimKey(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("create claim key: %w", err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("write claim key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("write claim key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claim key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("claim key %s must hold 64 hex digits", path)
	}
	return key, nil
}
