package evidence_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

func TestEvidenceIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"transit", evidence.TransitEvidenceID("91350100M000100Y43", "T20260301-000042"), "transit|91350100M000100Y43|T20260301-000042"},
		{"appliance", evidence.ApplianceEvidenceID("914403001922038216", "24322000000012345678", 3), "appliance|914403001922038216|24322000000012345678|3"},
		{"appliance line 100", evidence.ApplianceEvidenceID("914403001922038216", "INV.9", 100), "appliance|914403001922038216|INV.9|100"},
		// Values that did not pass Validate are escaped, not concatenated:
		// ("a|b", "c") and ("a", "b|c") must not share an id.
		{"pipe escaped", evidence.TransitEvidenceID("a|b", "c"), "transit|a%7Cb|c"},
		{"pipe escaped other side", evidence.TransitEvidenceID("a", "b|c"), "transit|a|b%7Cc"},
		{"percent escaped", evidence.TransitEvidenceID("a%7Cb", "c"), "transit|a%257Cb|c"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if evidence.TransitEvidenceID("X", "1") == evidence.ApplianceEvidenceID("X", "1", 0) {
		t.Error("transit and appliance ids collide")
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	key := []byte("consortium claim key for tests, 32b")
	id := evidence.ApplianceEvidenceID("91350100M000100Y43", "24322000000012345678", 1)

	m := hmac.New(sha256.New, key)
	m.Write([]byte("appliance|91350100M000100Y43|24322000000012345678|1"))
	want := hex.EncodeToString(m.Sum(nil))

	got := evidence.Claim(key, id)
	if got != want {
		t.Fatalf("Claim = %s, want %s", got, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(got) || len(got) != evidence.ClaimLen {
		t.Fatalf("Claim %q is not 64 lowercase hex digits", got)
	}
	if evidence.Claim([]byte("another key"), id) == got {
		t.Fatal("the claim does not depend on the key")
	}
	sum := sha256.Sum256([]byte(id))
	if got == hex.EncodeToString(sum[:]) {
		t.Fatal("the claim is a plain hash")
	}
}
