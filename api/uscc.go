package api

// The unified social credit code (统一社会信用代码, USCC) identifies every legal
// entity in China: 18 characters from a 31-character alphabet, the last one a
// check character over the first 17 (GB 32100-2015, ISO 7064 MOD 31-3 style).
// Checking it here catches typos in merchant onboarding before anything is
// stored or put on the ledger; it says nothing about whether the entity exists.

// usccCharset is the code's alphabet: digits and capitals without I, O, S, V, Z
// (letters easily confused with digits). A character's index is its value.
const usccCharset = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// usccWeights are 3^i mod 31 for positions 1..17, as the standard tabulates them.
var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// usccValue returns the value of c in the alphabet, or -1. A lookup table
// keeps the check allocation-free; it runs on every onboarding request.
func usccValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Y':
		return usccLetter[c-'A']
	}
	return -1
}

// usccLetter maps 'A'..'Y' to values; -1 marks the excluded letters.
var usccLetter = func() [25]int {
	var t [25]int
	for i := range t {
		t[i] = -1
	}
	for v := 10; v < len(usccCharset); v++ {
		t[usccCharset[v]-'A'] = v
	}
	return t
}()

// usccCheckChar returns the check character for the first 17 characters of
// code, and false if code is shorter than 17 or uses a character outside the
// alphabet (lower case included: the standard defines capitals only).
func usccCheckChar(code string) (byte, bool) {
	if len(code) < 17 {
		return 0, false
	}
	sum := 0
	for i := range 17 {
		v := usccValue(code[i])
		if v < 0 {
			return 0, false
		}
		sum += v * usccWeights[i]
	}
	c := 31 - sum%31
	if c == 31 {
		c = 0
	}
	return usccCharset[c], true
}

// validUSCC reports whether code is 18 characters of the alphabet whose last
// character is the correct check character.
func validUSCC(code string) bool {
	if len(code) != 18 {
		return false
	}
	c, ok := usccCheckChar(code)
	return ok && code[17] == c
}
