package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/greenpoints/greenpoints/internal/keys"
)

// FuzzUnwrapKey: UnwrapKey never panics, fails only with the package's
// sentinels, and accepts nothing but what WrapKey made with the same aad.
//
// The fuzzing engine re-runs this setup in each worker process, so the KEKs
// are fixed files, not generated: the seeds made here must unwrap there.
func FuzzUnwrapKey(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "keys")
	if err := os.MkdirAll(filepath.Join(dir, "kek"), 0o700); err != nil {
		f.Fatal(err)
	}
	for v, b := range []byte{0xa1, 0xb2} {
		kek := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
		if err := os.WriteFile(filepath.Join(dir, "kek", fmt.Sprintf("v%d.key", v+1)), []byte(kek), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	m, err := keys.NewFileManager(dir, keys.WithAutoCreate(false))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	dk := bytes.Repeat([]byte{0x42}, 32)
	aad := []byte("person:1")
	w2 := mustWrap(f, m, dk, aad) // under kek/v2, the current one
	w1 := slices.Clone(w2)
	binary.BigEndian.PutUint32(w1[4:8], 1) // relabelled: must not unwrap
	mustUnwrap(f, m, w2, aad)

	f.Add(w1, aad)
	f.Add(w2, aad)
	f.Add(w2, []byte("person:2"))
	f.Add(w2[:len(w2)-1], aad)
	f.Add([]byte("gpk1\x00\x00\x00\x07"), aad)
	f.Add([]byte("gpk1\x00\x00\x00\x00"), []byte(nil))
	f.Add([]byte("gpd1"), []byte(nil))
	f.Add([]byte{}, []byte{})

	f.Fuzz(func(t *testing.T, wrapped, aad2 []byte) {
		got, err := m.UnwrapKey(ctx, wrapped, aad2)
		if err != nil {
			if got != nil {
				t.Errorf("UnwrapKey returned %d bytes with an error", len(got))
			}
			if !errors.Is(err, keys.ErrMalformed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, keys.ErrNotFound) {
				t.Errorf("UnwrapKey error %v wraps no expected sentinel", err)
			}
			return
		}
		if !bytes.Equal(aad2, aad) || !bytes.Equal(got, dk) {
			t.Errorf("UnwrapKey = %x, want %x", got, dk)
		}
	})
}

// FuzzOpenData: OpenData never panics and accepts only what SealData made.
func FuzzOpenData(f *testing.F) {
	dk := bytes.Repeat([]byte{0x17}, 32)
	aad := []byte("person:1|name")
	pt := []byte("Li Wei")
	sealed, err := keys.SealData(dk, pt, aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, aad, dk)
	f.Add(sealed, []byte("person:2|name"), dk)
	f.Add(sealed[:len(sealed)-1], aad, dk)
	f.Add(sealed, aad, dk[:16])
	f.Add([]byte("gpd1"), []byte(nil), dk)
	f.Add([]byte("gpk1\x00\x00\x00\x01"), []byte(nil), dk)
	f.Add([]byte{}, []byte{}, []byte{})

	f.Fuzz(func(t *testing.T, sealed2, aad2, key []byte) {
		got, err := keys.OpenData(key, sealed2, aad2)
		if err != nil {
			if got != nil {
				t.Errorf("OpenData returned %d bytes with an error", len(got))
			}
			if !errors.Is(err, keys.ErrMalformed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, keys.ErrKeySize) {
				t.Errorf("OpenData error %v wraps no expected sentinel", err)
			}
			return
		}
		// Seeds are sealed afresh (random nonce) in each fuzzing process, so
		// compare what was accepted, not the exact bytes.
		if !bytes.Equal(key, dk) || !bytes.Equal(aad2, aad) || !bytes.Equal(got, pt) {
			t.Errorf("OpenData accepted key %x aad %q giving %q; only %q under the seed key and aad exists", key, aad2, got, pt)
		}
	})
}
