package evidence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Kinds of evidence, the first part of a canonical evidence id.
const (
	KindTransit   = "transit"
	KindAppliance = "appliance"
)

// idSep separates the parts of a canonical evidence id. Partner ids and
// tokens are restricted to [A-Za-z0-9._:-] and a USCC to digits and
// capitals, so in any evidence that passed Validate no part contains the
// separator: that is what makes the plain concatenation unambiguous, and
// two different pieces of evidence can never share an id (nor a claim).
const idSep = "|"

// idEscaper keeps the encoding injective even for values that did not pass
// Validate (a bug upstream must cause a refused item, not a collision with
// someone else's claim). It never changes a value that passed Validate.
var idEscaper = strings.NewReplacer("%", "%25", idSep, "%7C")

// TransitEvidenceID returns the canonical id of a ride: the operator's USCC
// and its ride-level trip id. The operator is part of the id because trip
// ids are only unique within one operator.
//
// The result is "transit|<operatorUSCC>|<tripID>".
func TransitEvidenceID(operatorUSCC, tripID string) string {
	return join(KindTransit, operatorUSCC, tripID)
}

// ApplianceEvidenceID returns the canonical id of one appliance bought: the
// seller's USCC, the invoice (fapiao) number and the line on the invoice.
// It names the purchase, not the payment, so the same appliance paid with
// two cards, or reported by the bank and by the seller, has one id and pays
// once.
//
// The result is "appliance|<sellerUSCC>|<invoice>|<line>".
func ApplianceEvidenceID(sellerUSCC, invoice string, line int) string {
	return join(KindAppliance, sellerUSCC, invoice, strconv.Itoa(line))
}

func join(kind string, parts ...string) string {
	var b strings.Builder
	b.WriteString(kind)
	for _, p := range parts {
		b.WriteString(idSep)
		b.WriteString(idEscaper.Replace(p))
	}
	return b.String()
}

// ClaimLen is the length of a claim: 64 lowercase hex digits, what the
// ledger's claim field accepts.
const ClaimLen = 2 * sha256.Size

// Claim returns the ledger claim for a canonical evidence id: the lowercase
// hex HMAC-SHA256 of evidenceID under the consortium claim key.
//
// The ledger is shared by every issuer in the consortium and claims are
// readable by its members, so a claim must not reveal the evidence it stands
// for. A plain SHA-256 would: invoice and trip numbers are short and mostly
// sequential, USCCs are public, and anyone could hash every candidate id
// and learn who bought what where. Under a key only consortium issuers hold,
// the claim is still deterministic (two issuers holding the same evidence
// compute the same claim, which is how the ledger refuses double payment)
// but cannot be brute-forced from outside.
func Claim(key []byte, evidenceID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(evidenceID))
	return hex.EncodeToString(m.Sum(nil))
}
