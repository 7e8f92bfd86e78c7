package keys_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/greenpoints/greenpoints/internal/keys"
)

func TestNewDataKey(t *testing.T) {
	t.Parallel()
	a, err := keys.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keys.NewDataKey()
	if len(a) != keys.DataKeySize || len(b) != keys.DataKeySize {
		t.Fatalf("sizes %d, %d, want %d", len(a), len(b), keys.DataKeySize)
	}
	if bytes.Equal(a, b) {
		t.Error("two data keys are equal")
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	dk, _ := keys.NewDataKey()
	tests := []struct {
		desc      string
		plaintext []byte
		aad       []byte
	}{
		{"name", []byte("Li Wei"), []byte("person:1|name")},
		{"empty value", []byte{}, []byte("person:1|phone")},
		{"nil aad", []byte("13800138000"), nil},
		{"max size", bytes.Repeat([]byte("x"), keys.MaxSealSize), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			sealed, err := keys.SealData(dk, tt.plaintext, tt.aad)
			if err != nil {
				t.Fatalf("SealData: %v", err)
			}
			if string(sealed[:4]) != "gpd1" {
				t.Errorf("sealed starts with %q, want gpd1", sealed[:4])
			}
			if len(tt.plaintext) > 3 && bytes.Contains(sealed, tt.plaintext) {
				t.Error("sealed contains the plaintext")
			}
			got, err := keys.OpenData(dk, sealed, tt.aad)
			if err != nil {
				t.Fatalf("OpenData: %v", err)
			}
			if diff := cmp.Diff(tt.plaintext, got); diff != "" {
				t.Errorf("OpenData mismatch (-want +got):\n%s", diff)
			}
			again, _ := keys.SealData(dk, tt.plaintext, tt.aad)
			if bytes.Equal(sealed, again) {
				t.Error("two seals are equal: nonce reused")
			}
		})
	}
}

func TestSealOpenRejects(t *testing.T) {
	t.Parallel()
	dk, _ := keys.NewDataKey()
	other, _ := keys.NewDataKey()
	aad := []byte("person:1|name")
	sealed, err := keys.SealData(dk, []byte("Li Wei"), aad)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(slices.Clone(sealed)) }
	tests := []struct {
		desc   string
		key    []byte
		sealed []byte
		aad    []byte
		want   error
	}{
		{"other key (shredded)", other, sealed, aad, keys.ErrDecrypt},
		{"wrong aad", dk, sealed, []byte("person:2|name"), keys.ErrDecrypt},
		{"nil aad", dk, sealed, nil, keys.ErrDecrypt},
		{"nil", dk, nil, aad, keys.ErrMalformed},
		{"magic only", dk, sealed[:4], aad, keys.ErrMalformed},
		{"truncated", dk, sealed[:len(sealed)-1], aad, keys.ErrDecrypt},
		{"extra byte", dk, append(slices.Clone(sealed), 0), aad, keys.ErrDecrypt},
		{"bad magic", dk, with(func(b []byte) []byte { b[0] ^= 1; return b }), aad, keys.ErrMalformed},
		{"wrapped key format", dk, with(func(b []byte) []byte { copy(b, "gpk1"); return b }), aad, keys.ErrMalformed},
		{"flipped tag", dk, with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), aad, keys.ErrDecrypt},
		{"short key", dk[:16], sealed, aad, keys.ErrKeySize},
		{"nil key", nil, sealed, aad, keys.ErrKeySize},
		{"long key", append(slices.Clone(dk), 0), sealed, aad, keys.ErrKeySize},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := keys.OpenData(tt.key, tt.sealed, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenData error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("OpenData returned %d bytes with an error", len(got))
			}
		})
	}
	for n := range len(sealed) {
		if _, err := keys.OpenData(dk, sealed[:n], aad); err == nil {
			t.Errorf("OpenData(first %d bytes) succeeded", n)
		}
	}
	for i := range len(sealed) * 8 {
		b := slices.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		if _, err := keys.OpenData(dk, b, aad); err == nil {
			t.Errorf("OpenData(bit %d flipped) succeeded", i)
		}
	}
}

func TestSealDataRejects(t *testing.T) {
	t.Parallel()
	dk, _ := keys.NewDataKey()
	tests := []struct {
		desc      string
		key       []byte
		plaintext []byte
		want      error
	}{
		{"short key", dk[:31], []byte("x"), keys.ErrKeySize},
		{"AES-128 key", dk[:16], []byte("x"), keys.ErrKeySize},
		{"too large", dk, make([]byte, keys.MaxSealSize+1), keys.ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := keys.SealData(tt.key, tt.plaintext, nil); !errors.Is(err, tt.want) {
			t.Errorf("%s: SealData error = %v, want %v", tt.desc, err, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("evidence")
	sig := ed25519.Sign(priv, msg)
	pubPtr := &pub
	tests := []struct {
		desc string
		pub  any
		msg  []byte
		sig  []byte
		want bool
	}{
		{"valid", pub, msg, sig, true},
		{"other message", pub, []byte("evidencE"), sig, false},
		{"flipped signature", pub, msg, append(slices.Clone(sig[:63]), sig[63]^1), false},
		{"short signature", pub, msg, sig[:63], false},
		{"long signature", pub, msg, append(slices.Clone(sig), 0), false},
		{"nil signature", pub, msg, nil, false},
		{"nil key", nil, msg, sig, false},
		{"short key", pub[:31], msg, sig, false},
		{"empty key", ed25519.PublicKey{}, msg, sig, false},
		{"pointer to key", pubPtr, msg, sig, false},
		{"private key", priv, msg, sig, false},
		{"ECDSA key", &ec.PublicKey, msg, sig, false},
		{"raw bytes", []byte(pub), msg, sig, false},
	}
	for _, tt := range tests {
		if got := keys.Verify(tt.pub, tt.msg, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.desc, got, tt.want)
		}
	}
}
