package uscc

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// reference is the textbook form of the check, kept separate from the
// table-driven implementation so that each checks the other.
func reference(code string) bool {
	if len(code) != 18 {
		return false
	}
	w := []int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	sum := 0
	for i, wi := range w {
		v := strings.IndexByte(Charset, code[i])
		if v < 0 {
			return false
		}
		sum += v * wi
	}
	c := (31 - sum%31) % 31
	return strings.IndexByte(Charset, code[17]) == c
}

// complete appends the check character to a 17-character prefix.
func complete(tb testing.TB, prefix string) string {
	tb.Helper()
	c, ok := CheckChar(prefix)
	if !ok || len(prefix) != 17 {
		tb.Fatalf("bad prefix %q", prefix)
	}
	return prefix + string(c)
}

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string
		want bool
	}{
		// Published codes: the worked example of GB 32100-2015 and the
		// public business licences of Huawei Technologies Co., Ltd. and
		// Shenzhen Tencent Computer Systems Co., Ltd.
		{"GB 32100-2015 example", "91350100M000100Y43", true},
		{"Huawei Technologies", "914403001922038216", true},
		{"Shenzhen Tencent Computer Systems", "9144030071526726XG", true},
		{"all zeros (sum 0, check 0)", "000000000000000000", true},
		{"letter check character", complete(t, "12345678901234567"), true},
		{"highest letters", complete(t, "YYYYYYYYYYYYYYYYY"), true},
		{"last alphabet character as check", "10000000000000000Y", true},
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
			if got := Valid(tt.code); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.code, got, tt.want)
			}
			if got := reference(tt.code); got != tt.want {
				t.Errorf("reference(%q) = %v, want %v: the test vector is wrong", tt.code, got, tt.want)
			}
		})
	}
}

// TestSingleSubstitution: the modulus 31 is prime and no weight is 0 mod
// 31, so changing any one character must break the check.
func TestSingleSubstitution(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var b strings.Builder
		for range 17 {
			b.WriteByte(Charset[r.IntN(len(Charset))])
		}
		code := complete(t, b.String())
		for pos := range 18 {
			for i := range len(Charset) {
				if Charset[i] == code[pos] {
					continue
				}
				if mut := code[:pos] + string(Charset[i]) + code[pos+1:]; Valid(mut) {
					t.Fatalf("%q (from %q) passes the check", mut, code)
				}
			}
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "914403001922038216", "", "000000000000000000", "91350100M000100Y4Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid(s), reference(s); got != want {
			t.Fatalf("Valid(%q) = %v, reference says %v", s, got, want)
		}
		if c, ok := CheckChar(s); ok && !Valid(s[:17]+string(c)) {
			t.Fatalf("%q with its computed check character is invalid", s[:17]+string(c))
		}
	})
}
