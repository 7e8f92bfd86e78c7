package points

import (
	"slices"
	"testing"
	"time"
)

// TestIssuerOwned pins which keys get the issuer's key-level endorsement
// policy: every key prefix is decided one way or the other, so a new prefix
// fails here until someone decides (docs/fabric.md, key-level endorsement).
func TestIssuerOwned(t *testing.T) {
	t.Parallel()
	channelPolicy := []string{keyRegulator, prefixMember, prefixAnchor, prefixSchedule, prefixNotice,
		prefixCharity, prefixProject, prefixReceipt}
	all := []string{keyRegulator, prefixMember, prefixAccount, prefixLot, prefixExpiry, prefixClaim, prefixDebt,
		prefixAnchor, prefixSchedule, prefixNotice, prefixFamily, prefixFamilyOf, prefixTransfers,
		prefixCharity, prefixProject, prefixReceipt}
	for _, p := range all {
		want := !slices.Contains(channelPolicy, p)
		if got := issuerOwned(p + "x"); got != want {
			t.Errorf("issuerOwned(%q) = %v, want %v", p+"x", got, want)
		}
	}
	if len(issuerKeyPrefixes)+len(channelPolicy) != len(all) {
		t.Errorf("%d issuer prefixes + %d channel-policy prefixes != %d prefixes: a prefix is undecided or listed twice",
			len(issuerKeyPrefixes), len(channelPolicy), len(all))
	}
	for _, k := range []string{lotKey("acct-1", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "0123456789abcdef0123456789abcdef"),
		accountKey("acct-1"), claimKey("ab"), debtKey("acct-1"), transfersKey("acct-1", "203001")} {
		if !issuerOwned(k) {
			t.Errorf("issuerOwned(%q) = false, want true", k)
		}
	}
	for _, k := range []string{memberKey("BankAMSP"), anchorKey("BankAMSP", AnchorRule, VersionRef{ID: "r", Version: "1"}),
		scheduleKey("BankAMSP"), receiptKey("r"), projectKey("c", "p")} {
		if issuerOwned(k) {
			t.Errorf("issuerOwned(%q) = true, want false", k)
		}
	}
}
