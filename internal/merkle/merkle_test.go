package merkle

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// The leaves and roots of the RFC 6962 test vectors used by Certificate
// Transparency implementations (certificate-transparency, transparency-dev).
var ctLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

var ctRoots = []string{
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

func leafHashes(t *testing.T, n int) []Hash {
	t.Helper()
	out := make([]Hash, n)
	for i := range n {
		b, err := hex.DecodeString(ctLeaves[i%len(ctLeaves)])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = LeafHash(append(b, byte(i/len(ctLeaves))))
		if i < len(ctLeaves) {
			out[i] = LeafHash(b)
		}
	}
	return out
}

func TestRootMatchesRFC6962Vectors(t *testing.T) {
	t.Parallel()
	if got, want := hex.EncodeToString(func() []byte { r := Root(nil); return r[:] }()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Errorf("empty root = %s, want %s", got, want)
	}
	leaves := leafHashes(t, len(ctLeaves))
	for n := 1; n <= len(ctLeaves); n++ {
		r := Root(leaves[:n])
		if got := hex.EncodeToString(r[:]); got != ctRoots[n-1] {
			t.Errorf("root of %d leaves = %s, want %s", n, got, ctRoots[n-1])
		}
	}
}

func TestInclusionProofsVerify(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 70; n++ {
		leaves := leafHashes(t, n)
		root := Root(leaves)
		for i := range n {
			p, err := InclusionProof(leaves, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			// A forged leaf, another position, a tampered path or a wrong
			// size must all fail.
			forged := LeafHash([]byte(fmt.Sprintf("forged %d", i)))
			if err := VerifyInclusion(forged, uint64(i), uint64(n), p, root); !errors.Is(err, ErrMismatch) {
				t.Fatalf("n=%d i=%d: forged leaf verified (err %v)", n, i, err)
			}
			if n > 1 {
				if err := VerifyInclusion(leaves[i], uint64((i+1)%n), uint64(n), p, root); err == nil {
					t.Fatalf("n=%d i=%d: proof verified at another index", n, i)
				}
				bad := append([]Hash{}, p...)
				bad[0][0] ^= 1
				if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), bad, root); err == nil {
					t.Fatalf("n=%d i=%d: tampered proof verified", n, i)
				}
				if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), p[:len(p)-1], root); err == nil {
					t.Fatalf("n=%d i=%d: truncated proof verified", n, i)
				}
			}
		}
	}
	if _, err := InclusionProof(leafHashes(t, 3), 3); err == nil {
		t.Error("InclusionProof accepted an index beyond the tree")
	}
}
