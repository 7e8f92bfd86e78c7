package points

import "strings"

// Key-level endorsement (tenancy on Fabric, DESIGN.md §3). Every key the
// contract CREATES in an issuer's transaction under one of the prefixes
// below is the issuer's: its accounts, their lots and the lots' expiry
// index entries, its claims and sub-claims, its accounts' debts, families
// and family links, and monthly transfer counters. Such a key gets the
// policy "the issuer AND the regulator" (stub.Stub.SetKeyEndorsers), so on
// Fabric no later write of it (a spend, a transfer, a reversal, a sweep, a
// debt settled) is valid without an endorsement by the issuer's own peer
// and the regulator's: one bank's peer can never endorse another bank's
// lots, even together with the regulator.
//
// Under the channel's chaincode policy stay the keys that are not one
// issuer's alone: the registry (reg/), anchors, profile schedules and
// notice batches (anchor/, profiles/, notice/: written only by their
// issuer, and the registry by the regulator, but kept under the
// chaincode policy as issue 4 asks), charities and projects (the
// regulator's) and donation receipts (shared between the issuer, who
// writes them, and the charity, who acknowledges them).
//
// Why only on creation: a key's policy governs its later writes, and the
// contract never moves a key from one issuer to another (every issuer
// function checks that the account, claim or lot is the caller's), so the
// policy set at creation stays right; setting it again on every write
// would add a metadata write per key for nothing. "Created" means the
// transaction found no committed value: the key was read and absent, or
// never read (new lot and expiry keys have fresh ids). A key written over
// without being read would get the same policy again, which is harmless.
// A key deleted loses its policy with it (Fabric deletes a key's metadata
// with the key) and gets it again when re-created.
//
// Creation itself is validated under the chaincode policy (Fabric checks a
// write against the policy the key had before it): docs/fabric.md says
// what that means for a new lot.
var issuerKeyPrefixes = []string{
	prefixAccount, prefixLot, prefixExpiry, prefixClaim, prefixDebt,
	prefixFamily, prefixFamilyOf, prefixTransfers,
}

// issuerOwned reports whether key, written by an issuer, is the issuer's
// alone and gets the issuer's key-level endorsement policy.
func issuerOwned(key string) bool {
	for _, p := range issuerKeyPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// keyEndorsers returns the organisations that must endorse later writes of
// key, which this transaction creates, or nil when the channel's chaincode
// policy governs it.
func (t *txn) keyEndorsers(key string) []string {
	if t.regulator == nil || t.role() != RoleIssuer || !issuerOwned(key) || t.cache[key] != nil {
		return nil
	}
	return []string{t.caller, t.regulator.MSP}
}
