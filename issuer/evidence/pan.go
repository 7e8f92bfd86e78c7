package evidence

// Lengths of a primary account number (ISO/IEC 7812).
const (
	minPANDigits = 13
	maxPANDigits = 19
)

// LooksLikePAN reports whether s, once spaces and dashes are removed, is
// 13 to 19 ASCII digits that pass the Luhn check: what a card number looks
// like. We never accept raw card numbers (PCI DSS would put every system
// that sees one in scope), so a card token that looks like one is refused
// even if a bank's tokens happen to collide with the shape: one in ten
// digit strings passes Luhn, and the cost of refusing a token is a support
// call, the cost of storing a PAN is an audit finding.
func LooksLikePAN(s string) bool {
	// Bound the work before looking at every byte: separators aside, a PAN
	// is at most 19 digits, and a token of 100 KB must not cost 100 KB.
	if len(s) > 2*maxPANDigits+8 {
		return false
	}
	var digits [maxPANDigits]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case c < '0' || c > '9':
			return false
		case n == maxPANDigits:
			return false
		}
		digits[n] = c - '0'
		n++
	}
	return n >= minPANDigits && luhn(digits[:n])
}

// luhn reports whether the last digit of ds is the Luhn check digit of the
// others: from the right, every second digit is doubled (minus 9 if over 9)
// and the sum must be a multiple of 10.
func luhn(ds []byte) bool {
	sum := 0
	for i := range ds {
		d := int(ds[len(ds)-1-i])
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
