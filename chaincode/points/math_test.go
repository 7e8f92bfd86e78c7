package points

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

func TestCheckedMath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		f      func(a, b int64) (int64, bool)
		a, b   int64
		want   int64
		wantOK bool
	}{
		{"add", add, 1, 2, 3, true},
		{"add max", add, math.MaxInt64, 1, 0, false},
		{"add min", add, math.MinInt64, -1, 0, false},
		{"add neg", add, -5, 3, -2, true},
		{"sub", sub, 5, 7, -2, true},
		{"sub min", sub, math.MinInt64, 1, 0, false},
		{"sub max", sub, math.MaxInt64, -1, 0, false},
		{"sub zero", sub, 0, math.MinInt64, 0, false},
		{"mul", mul, 6, 7, 42, true},
		{"mul zero", mul, 0, math.MaxInt64, 0, true},
		{"mul max", mul, math.MaxInt64, 2, 0, false},
		{"mul big", mul, 1 << 32, 1 << 31, 0, false},
		{"mul -1 min", mul, -1, math.MinInt64, 0, false},
		{"mul min -1", mul, math.MinInt64, -1, 0, false},
		{"mul neg", mul, -3, 4, -12, true},
		{"mul edge", mul, 3037000499, 3037000499, 9223372030926249001, true},
	}
	for _, c := range cases {
		got, ok := c.f(c.a, c.b)
		if ok != c.wantOK || (ok && got != c.want) {
			t.Errorf("%s(%d, %d) = %d, %v; want %d, %v", c.name, c.a, c.b, got, ok, c.want, c.wantOK)
		}
	}
}

// Taking a lot apart in any steps hands out exactly its grams, each step
// within the lot's grams, never negative.
func TestApportionIsExact(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		points := rapid.Int64Range(1, math.MaxInt64).Draw(t, "points")
		grams := rapid.Int64Range(0, math.MaxInt64).Draw(t, "grams")
		rem, gRem := points, grams
		var handed int64
		for steps := 0; rem > 0; steps++ {
			take := rem
			if steps < 20 {
				take = rapid.Int64Range(1, rem).Draw(t, "take")
			}
			g := apportion(gRem, take, rem)
			if g < 0 || g > gRem {
				t.Fatalf("apportion(%d, %d, %d) = %d", gRem, take, rem, g)
			}
			rem -= take
			gRem -= g
			handed += g
		}
		if handed != grams || gRem != 0 {
			t.Fatalf("handed out %d of %d grams", handed, grams)
		}
	})
}

func TestApportionProportional(t *testing.T) {
	t.Parallel()
	cases := []struct{ g, take, rem, want int64 }{
		{1000, 60, 100, 600},
		{10, 1, 3, 3},
		{0, 5, 10, 0},
		{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64, math.MaxInt64 - 1},
		{7, 7, 7, 7},
	}
	for _, c := range cases {
		if got := apportion(c.g, c.take, c.rem); got != c.want {
			t.Errorf("apportion(%d, %d, %d) = %d, want %d", c.g, c.take, c.rem, got, c.want)
		}
	}
}

func TestAllocateEarliestFirst(t *testing.T) {
	t.Parallel()
	cases := []struct {
		avail  []int64
		amount int64
		want   []int64
		ok     bool
	}{
		{[]int64{30, 40, 50}, 50, []int64{30, 20, 0}, true},
		{[]int64{30, 0, 50}, 60, []int64{30, 0, 30}, true},
		{[]int64{30, 40}, 71, nil, false},
		{[]int64{5}, 5, []int64{5}, true},
		{nil, 1, nil, false},
	}
	for _, c := range cases {
		got, ok := allocate(c.avail, c.amount)
		if ok != c.ok {
			t.Errorf("allocate(%v, %d) ok = %v", c.avail, c.amount, ok)
			continue
		}
		if ok {
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("allocate(%v, %d) = %v, want %v", c.avail, c.amount, got, c.want)
					break
				}
			}
		}
	}
	// Property: a take never exceeds what is available, and no later lot
	// gives anything while an earlier one still has points.
	rapid.Check(t, func(t *rapid.T) {
		avail := rapid.SliceOfN(rapid.Int64Range(0, 1000), 0, 20).Draw(t, "avail")
		var sum int64
		for _, a := range avail {
			sum += a
		}
		amount := rapid.Int64Range(1, sum+10).Draw(t, "amount")
		takes, ok := allocate(avail, amount)
		if ok != (amount <= sum) {
			t.Fatalf("ok = %v for %d of %d", ok, amount, sum)
		}
		if !ok {
			return
		}
		var got int64
		for i, tk := range takes {
			if tk < 0 || tk > avail[i] {
				t.Fatalf("take %d of %d", tk, avail[i])
			}
			if tk > 0 {
				for j := 0; j < i; j++ {
					if takes[j] != avail[j] {
						t.Fatalf("lot %d gives before lot %d is empty: %v of %v", i, j, takes, avail)
					}
				}
			}
			got += tk
		}
		if got != amount {
			t.Fatalf("took %d, want %d", got, amount)
		}
	})
}
