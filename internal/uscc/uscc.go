// Package uscc checks the unified social credit code (统一社会信用代码, USCC)
// that identifies every legal entity in China: 18 characters from a
// 31-character alphabet, the last one a check character over the first 17
// (GB 32100-2015, ISO 7064 MOD 31-3 style).
//
// Checking it catches typos in merchant onboarding and in partner evidence
// before anything is stored or put on the ledger; it says nothing about
// whether the entity exists. One package serves the API and the evidence
// validation so that both refuse exactly the same codes.
package uscc

// Len is the length of a code.
const Len = 18

// Charset is the code's alphabet: digits and capitals without I, O, S, V, Z
// (letters easily confused with digits). A character's index is its value.
const Charset = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// weights are 3^i mod 31 for positions 1..17, as the standard tabulates them.
var weights = [Len - 1]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// value returns the value of c in the alphabet, or -1. A lookup table keeps
// the check allocation-free; it runs on every onboarding request and every
// evidence record.
func value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Y':
		return letter[c-'A']
	}
	return -1
}

// letter maps 'A'..'Y' to values; -1 marks the excluded letters.
var letter = func() [25]int {
	var t [25]int
	for i := range t {
		t[i] = -1
	}
	for v := 10; v < len(Charset); v++ {
		t[Charset[v]-'A'] = v
	}
	return t
}()

// CheckChar returns the check character for the first 17 characters of
// code, and false if code is shorter than 17 or uses a character outside the
// alphabet (lower case included: the standard defines capitals only).
func CheckChar(code string) (byte, bool) {
	if len(code) < Len-1 {
		return 0, false
	}
	sum := 0
	for i := range Len - 1 {
		v := value(code[i])
		if v < 0 {
			return 0, false
		}
		sum += v * weights[i]
	}
	c := 31 - sum%31
	if c == 31 {
		c = 0
	}
	return Charset[c], true
}

// Valid reports whether code is 18 characters of the alphabet whose last
// character is the correct check character.
func Valid(code string) bool {
	if len(code) != Len {
		return false
	}
	c, ok := CheckChar(code)
	return ok && code[Len-1] == c
}
