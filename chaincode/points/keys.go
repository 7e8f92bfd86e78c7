package points

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State keys are simple keys (not Fabric composite keys, which
// GetStateByRange cannot read), '/'-separated, every component validated by
// validID so that no component contains '/'. A prefix ending in '/' therefore
// selects exactly one parent's children.
const (
	keyRegulator    = "reg/regulator"
	prefixMember    = "reg/member/" // reg/member/<msp>
	prefixAccount   = "acct/"       // acct/<account>
	prefixLot       = "lot/"        // lot/<account>/<expiresAt unix, 12 digits>/<lotId>
	prefixExpiry    = "exp/"        // exp/<issuer>/<YYYYMMDD>/<lot key>
	prefixClaim     = "claim/"      // claim/<64 hex>
	prefixDebt      = "debt/"       // debt/<account>
	prefixAnchor    = "anchor/"     // anchor/<issuer>/<kind>/<id>/<version>
	prefixSchedule  = "profiles/"   // profiles/<issuer>
	prefixNotice    = "notice/"     // notice/<issuer>/<batchId>
	prefixFamily    = "family/"     // family/<familyId>
	prefixFamilyOf  = "famof/"      // famof/<account>
	prefixTransfers = "xfer/"       // xfer/<account>/<YYYYMM>
	prefixCharity   = "charity/"    // charity/<charityId>
	prefixProject   = "project/"    // project/<charityId>/<projectId>
	prefixReceipt   = "receipt/"    // receipt/<receiptId>
	expiryDigits    = 12            // unix seconds up to 9999-12-31
	bucketLayout    = "20060102"    // expiry buckets: UTC day
	monthLayout     = "200601"      // transfer months
	maxUnix         = 253402300799  // 9999-12-31T23:59:59Z
	lotIDLen        = 32            // hex digits of a lot or receipt id
	claimHexLen     = 64
)

// validID reports whether s is a valid id component: [A-Za-z0-9._:-]{1,128}.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// validHex reports whether s is exactly n lowercase hex digits.
func validHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func memberKey(msp string) string      { return prefixMember + msp }
func accountKey(account string) string { return prefixAccount + account }
func claimKey(claim string) string     { return prefixClaim + claim }
func debtKey(account string) string    { return prefixDebt + account }
func scheduleKey(issuer string) string { return prefixSchedule + issuer }
func familyKey(id string) string       { return prefixFamily + id }
func familyOfKey(account string) string {
	return prefixFamilyOf + account
}
func charityKey(id string) string { return prefixCharity + id }
func projectKey(charityID, projectID string) string {
	return prefixProject + charityID + "/" + projectID
}
func receiptKey(id string) string { return prefixReceipt + id }
func noticeKey(issuer, batchID string) string {
	return prefixNotice + issuer + "/" + batchID
}
func anchorKey(issuer, kind string, v VersionRef) string {
	return prefixAnchor + issuer + "/" + kind + "/" + v.ID + "/" + v.Version
}
func transfersKey(account, month string) string {
	return prefixTransfers + account + "/" + month
}

// padUnix renders unix seconds zero-padded so that keys sort by time.
func padUnix(sec int64) string {
	return fmt.Sprintf("%0*d", expiryDigits, sec)
}

// lotPrefix is the prefix of all of an account's lots.
func lotPrefix(account string) string { return prefixLot + account + "/" }

// lotKey is the key of a lot: an account's lots sort by expiry, then id.
func lotKey(account string, expiresAt time.Time, lotID string) string {
	return lotPrefix(account) + padUnix(expiresAt.Unix()) + "/" + lotID
}

// liveLotStart is the first key of an account's lots that are not expired at
// now: expiresAt (whole seconds) > now <=> expiresAt >= floor(now)+1.
func liveLotStart(account string, now time.Time) string {
	return lotPrefix(account) + padUnix(now.Unix()+1)
}

// parseLotKey splits a lot key into its account, expiry and id.
func parseLotKey(key string) (account string, expUnix int64, lotID string, ok bool) {
	rest, found := strings.CutPrefix(key, prefixLot)
	if !found {
		return "", 0, "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !validID(parts[0]) || len(parts[1]) != expiryDigits || !validHex(parts[2], lotIDLen) {
		return "", 0, "", false
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || sec < 0 {
		return "", 0, "", false
	}
	return parts[0], sec, parts[2], true
}

// bucketOf is the expiry bucket (UTC day) of an expiry time.
func bucketOf(expiresAt time.Time) string { return expiresAt.UTC().Format(bucketLayout) }

// expiryPrefix is the prefix of one issuer's expiry bucket.
func expiryPrefix(issuer, bucket string) string {
	return prefixExpiry + issuer + "/" + bucket + "/"
}

// expiryGroupPrefix starts, after a bucket's prefix, the suffix of an
// entry that lists lots; any other suffix is a lot key (one lot per entry,
// as the first version wrote them).
const expiryGroupPrefix = "tx/"

// expiryGroupKey is the expiry index entry of the lots that transaction
// txID placed in one issuer's bucket: a JSON array of their lot keys.
func expiryGroupKey(issuer, bucket, txID string) string {
	return expiryPrefix(issuer, bucket) + expiryGroupPrefix + txID
}

// deriveID derives a deterministic, unpredictable id (txIds are
// unpredictable) for the n-th object of a purpose in a transaction.
func deriveID(txID, purpose string, n int) string {
	sum := sha256.Sum256([]byte(txID + "/" + purpose + "/" + strconv.Itoa(n)))
	return hex.EncodeToString(sum[:])[:lotIDLen]
}

// receiptID is the id of the donation receipt of a transaction:
// hex(sha256(txId + "receipt"))[:32]. Not enumerable, because transaction ids
// are unpredictable.
func receiptID(txID string) string {
	sum := sha256.Sum256([]byte(txID + "receipt"))
	return hex.EncodeToString(sum[:])[:lotIDLen]
}
