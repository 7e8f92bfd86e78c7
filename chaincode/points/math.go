package points

import (
	"math"
	"math/bits"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// errOverflow is returned when checked arithmetic would overflow int64.
func errOverflow(what string) error {
	return apperr.New(apperr.Invalid, "overflow", "%s overflows a 64-bit integer", what)
}

// add returns a+b, or ok false when it overflows.
func add(a, b int64) (int64, bool) {
	c := a + b
	if (c > a) != (b > 0) {
		return 0, false
	}
	return c, true
}

// sub returns a-b, or ok false when it overflows.
func sub(a, b int64) (int64, bool) {
	c := a - b
	if (c < a) != (b > 0) {
		return 0, false
	}
	return c, true
}

// mul returns a*b, or ok false when it overflows.
func mul(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	if c/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return c, true
}

// sumChecked adds b to *a, reporting overflow as an error naming what.
func sumChecked(a *int64, b int64, what string) error {
	c, ok := add(*a, b)
	if !ok {
		return errOverflow(what)
	}
	*a = c
	return nil
}

// apportion returns the grams that go with take points out of remaining
// points that carry gramsRemaining grams: floor(gramsRemaining*take/remaining),
// and all of gramsRemaining when take == remaining. Taking a lot apart in any
// number of steps therefore hands out exactly its grams, never more, never
// fewer. It requires 0 <= take <= remaining, remaining > 0, gramsRemaining >= 0;
// the 128-bit intermediate product cannot overflow.
func apportion(gramsRemaining, take, remaining int64) int64 {
	if remaining <= 0 || take <= 0 || gramsRemaining <= 0 {
		return 0
	}
	if take >= remaining {
		return gramsRemaining
	}
	hi, lo := bits.Mul64(uint64(gramsRemaining), uint64(take))
	q, _ := bits.Div64(hi, lo, uint64(remaining)) // hi < remaining since take < remaining
	return int64(q)
}

// allocate takes amount from available amounts in order (earliest expiry
// first, as the caller orders them) and returns how much each gives; ok is
// false when they do not add up to amount. Non-positive entries give nothing.
func allocate(available []int64, amount int64) (takes []int64, ok bool) {
	takes = make([]int64, len(available))
	left := amount
	for i, a := range available {
		if left == 0 {
			break
		}
		if a <= 0 {
			continue
		}
		t := min(a, left)
		takes[i] = t
		left -= t
	}
	return takes, left == 0
}
