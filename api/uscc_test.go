package api

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// usccReference is the textbook form of the check, kept separate from the
// table-driven implementation so that each checks the other.
func usccReference(code string) bool {
	if len(code) != 18 {
		return false
	}
	weights := []int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	sum := 0
	for i, w := range weights {
		v := strings.IndexByte(usccCharset, code[i])
		if v < 0 {
			return false
		}
		sum += v * w
	}
	c := (31 - sum%31) % 31
	return strings.IndexByte(usccCharset, code[17]) == c
}

// completeUSCC appends the check character to a 17-character prefix.
func completeUSCC(tb testing.TB, prefix string) string {
	tb.Helper()
	c, ok := usccCheckChar(prefix)
	if !ok || len(prefix) != 17 {
		tb.Fatalf("bad prefix %q", prefix)
	}
	return prefix + string(c)
}

func TestValidUSCC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string
		want bool
	}{
		// Published codes. The first is the worked example of GB 32100-2015;
		// the others are on the public business licences of Huawei
		// Technologies Co., Ltd. and Shenzhen Tencent Computer Systems Co., Ltd.
		{"GB 32100-2015 example", "91350100M000100Y43", true},
		{"Huawei Technologies", "914403001922038216", true},
		{"Shenzhen Tencent Computer Systems", "9144030071526726XG", true},
		// Constructed: check characters computed from the weights.
		{"all zeros (sum 0, check 0)", "000000000000000000", true},
		{"letter check character", completeUSCC(t, "12345678901234567"), true},
		{"highest letters", completeUSCC(t, "YYYYYYYYYYYYYYYYY"), true},
		{"last alphabet character as check", "10000000000000000Y", true},
		// Invalid.
		{"wrong check character", "91350100M000100Y44", false},
		{"lower case", "91350100m000100y43", false},
		{"17 characters", "91350100M000100Y4", false},
		{"19 characters", "91350100M000100Y430", false},
		{"excluded letter I", "91350100I000100Y43", false},
		{"excluded letter O", "O1350100M000100Y43", false},
		{"excluded letters S V Z", "SVZ50100M000100Y43", false},
		{"excluded letter as check", "91350100M000100Y4Z", false},
		{"space", "91350100M000100Y4 ", false},
		{"empty", "", false},
		{"non-ASCII", "91350100M000100Y4３", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := validUSCC(tt.code); got != tt.want {
				t.Errorf("validUSCC(%q) = %v, want %v", tt.code, got, tt.want)
			}
			if got := usccReference(tt.code); got != tt.want {
				t.Errorf("usccReference(%q) = %v, want %v: the test vector is wrong", tt.code, got, tt.want)
			}
		})
	}
}

// TestUSCCSingleSubstitution: the modulus 31 is prime and no weight is 0
// mod 31, so changing any one character must break the check. Random valid
// codes, every position, every other character.
func TestUSCCSingleSubstitution(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var b strings.Builder
		for range 17 {
			b.WriteByte(usccCharset[r.IntN(len(usccCharset))])
		}
		code := completeUSCC(t, b.String())
		if !validUSCC(code) {
			t.Fatalf("constructed %q is invalid", code)
		}
		for pos := range 18 {
			for i := range len(usccCharset) {
				c := usccCharset[i]
				if c == code[pos] {
					continue
				}
				mut := code[:pos] + string(c) + code[pos+1:]
				if validUSCC(mut) {
					t.Fatalf("%q (from %q) passes the check", mut, code)
				}
			}
		}
	}
}

func FuzzUSCC(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "914403001922038216", "", "000000000000000000", "91350100M000100Y4Z", "aaaaaaaaaaaaaaaaaaaa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := validUSCC(s)
		if want := usccReference(s); got != want {
			t.Fatalf("validUSCC(%q) = %v, reference says %v", s, got, want)
		}
		if len(s) < 17 {
			return
		}
		c, ok := usccCheckChar(s)
		if !ok {
			return
		}
		if fixed := s[:17] + string(c); !validUSCC(fixed) {
			t.Fatalf("%q with its computed check character is invalid", fixed)
		}
	})
}
