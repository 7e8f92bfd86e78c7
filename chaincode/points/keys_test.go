package points

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/stub"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	good := []string{"a", "Org1MSP", "acct:123-x_y.z", strings.Repeat("a", 128)}
	bad := []string{"", "a/b", "a b", "ü", strings.Repeat("a", 129), "a\x00", "*"}
	for _, s := range good {
		if !validID(s) {
			t.Errorf("validID(%q) = false", s)
		}
	}
	for _, s := range bad {
		if validID(s) {
			t.Errorf("validID(%q) = true", s)
		}
	}
	if validHex(strings.Repeat("A", 64), 64) || !validHex(strings.Repeat("a", 64), 64) || validHex("ab", 64) {
		t.Error("validHex")
	}
}

func TestLotKeysSortByExpiry(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var keys []string
	for _, d := range []int{300, 5, 40, 1000 * 365} {
		keys = append(keys, lotKey("acct", base.AddDate(0, 0, d), deriveID("tx", "lot", d)))
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	want := []string{keys[1], keys[2], keys[0], keys[3]}
	if !slices.Equal(sorted, want) {
		t.Errorf("keys sort as %v", sorted)
	}
	acct, exp, id, ok := parseLotKey(keys[0])
	if !ok || acct != "acct" || exp != base.Add(300*24*time.Hour).Unix() || id != deriveID("tx", "lot", 300) {
		t.Errorf("parseLotKey = %s %d %s %v", acct, exp, id, ok)
	}
	for _, k := range []string{"lot/a/1/x", "lot/a/000000000001", "acct/a", "lot/a/000000000001/" + strings.Repeat("g", 32)} {
		if _, _, _, ok := parseLotKey(k); ok {
			t.Errorf("parseLotKey(%q) ok", k)
		}
	}
}

// An account's lot prefix selects its lots only, also when another account
// id extends it with characters that sort before or after '/'.
func TestLotPrefixIsExact(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	id := deriveID("tx", "lot", 0)
	keys := []string{lotKey("a", exp, id), lotKey("a-b", exp, id), lotKey("a.b", exp, id), lotKey("a:b", exp, id), lotKey("ab", exp, id)}
	p := lotPrefix("a")
	end := stub.PrefixEnd(p)
	var in []string
	for _, k := range keys {
		if k >= p && k < end {
			in = append(in, k)
		}
	}
	if len(in) != 1 || in[0] != keys[0] {
		t.Errorf("range of %q holds %v", p, in)
	}
	// Live lots start after now's second.
	now := exp.Add(-time.Second / 2)
	if liveLotStart("a", now) > keys[0] {
		t.Error("a lot expiring after now is before the live start")
	}
	if liveLotStart("a", exp) <= keys[0] {
		t.Error("a lot expiring at now is after the live start")
	}
}

func TestExpiryKeysAndIDs(t *testing.T) {
	t.Parallel()
	exp := time.Date(2030, 3, 4, 23, 59, 59, 0, time.FixedZone("CST", 8*3600))
	lk := lotKey("acct", exp, deriveID("tx", "lot", 0))
	if got, want := expiryGroupKey("Bank", bucketOf(exp), "tx1"), "exp/Bank/20300304/tx/tx1"; got != want {
		t.Errorf("expiryGroupKey = %s, want %s", got, want)
	}
	if strings.HasPrefix(lk, expiryGroupPrefix) {
		t.Errorf("a lot key %s could pass for a group entry's suffix", lk)
	}
	if deriveID("tx", "lot", 1) == deriveID("tx", "lot", 2) || deriveID("tx", "lot", 1) == deriveID("tx", "transfer", 1) {
		t.Error("derived ids collide")
	}
	if r := receiptID("tx"); len(r) != 32 || r == receiptID("tx2") {
		t.Errorf("receiptID %s", r)
	}
}
