package points

import "time"

// Roles a registered MSP can hold. The regulator is recorded apart (InitLedger).
const (
	RoleRegulator = "regulator"
	RoleIssuer    = "issuer"
	RoleAuditor   = "auditor"
	RoleCharity   = "charity"
)

// Statuses of members, charities and projects.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Account kinds.
const (
	KindConsumer   = "consumer"
	KindEnterprise = "enterprise"
	KindCharity    = "charity"
)

// Anchor kinds.
const (
	AnchorRule        = "rule"
	AnchorMethodology = "methodology"
	AnchorProfile     = "profile"
)

// Item statuses of IssueBatch.
const (
	ItemIssued           = "issued"
	ItemAlreadyIssued    = "already_issued"
	ItemClaimedElsewhere = "claimed_elsewhere"
	ItemRejected         = "rejected"
)

// Family statuses.
const (
	FamilyActive    = "active"
	FamilyDissolved = "dissolved"
)

// Regulator is the record InitLedger writes under keyRegulator.
type Regulator struct {
	MSP           string    `json:"msp"`
	InitializedAt time.Time `json:"initializedAt"`
	TxID          string    `json:"txId"`
}

// Member is a registered MSP: an issuer, an auditor or a charity.
type Member struct {
	MSP          string    `json:"msp"`
	Role         string    `json:"role"`
	Name         string    `json:"name"`
	FilingNumber string    `json:"filingNumber"`
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registeredAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Account is a pseudonymous points account owned by one issuer.
type Account struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Issuer   string    `json:"issuer"`
	OpenedAt time.Time `json:"openedAt"`
	TxID     string    `json:"txId"`
}

// VersionRef names one anchored version of a rule, methodology or profile.
type VersionRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Profile is the part of a compliance profile the contract enforces.
type Profile struct {
	// Timezone is an IANA zone name; it decides the month of transfer caps.
	Timezone string `json:"timezone"`
	// MaxValidityDays caps expiresAt - issuance time, in days of 24 hours.
	MaxValidityDays int64 `json:"maxValidityDays"`
	// TransfersAllowed allows family transfers.
	TransfersAllowed bool `json:"transfersAllowed"`
	// TransferMaxPoints caps one transfer; 0 means no cap.
	TransferMaxPoints int64 `json:"transferMaxPoints"`
	// TransferMaxPointsPerMonth caps an account's transfers per calendar
	// month in Timezone; 0 means no cap.
	TransferMaxPointsPerMonth int64 `json:"transferMaxPointsPerMonth"`
	// NoticeDays is the notice a later profile that reduces consumers'
	// rights must give (its effectiveAt >= anchoring time + NoticeDays).
	NoticeDays int64 `json:"noticeDays"`
	// PointValueFen is what one donated point funds, in fen.
	PointValueFen int64 `json:"pointValueFen"`
	// GraceDays is how far ExtendLots may push the expiry of a lot issued
	// under this profile; 0 (profiles anchored before it existed) allows none.
	GraceDays int64 `json:"graceDays,omitempty"`
}

// Anchor is an anchored rule, methodology or profile version.
type Anchor struct {
	Issuer      string    `json:"issuer"`
	Kind        string    `json:"kind"`
	ID          string    `json:"id"`
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	EffectiveAt time.Time `json:"effectiveAt"`
	Profile     *Profile  `json:"profile,omitempty"`
	AnchoredAt  time.Time `json:"anchoredAt"`
	TxID        string    `json:"txId"`
}

// ScheduledProfile is one entry of an issuer's profile schedule.
type ScheduledProfile struct {
	ID          string    `json:"id"`
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	EffectiveAt time.Time `json:"effectiveAt"`
	Profile     Profile   `json:"profile"`
}

// ProfileSchedule lists an issuer's profile in force and the ones scheduled
// after it, in effectiveAt order. Profiles superseded before the last
// anchoring are pruned (their anchors stay).
type ProfileSchedule struct {
	Issuer  string             `json:"issuer"`
	Entries []ScheduledProfile `json:"entries"`
}

// NoticeBatch anchors a batch of consumer notices by its Merkle root.
type NoticeBatch struct {
	Issuer     string    `json:"issuer"`
	BatchID    string    `json:"batchId"`
	Kind       string    `json:"kind"`
	MerkleRoot string    `json:"merkleRoot"`
	Count      int64     `json:"count"`
	AnchoredAt time.Time `json:"anchoredAt"`
	TxID       string    `json:"txId"`
}

// Claim records that a piece of evidence has paid: the issuer and item that
// claimed it and the lot it made. A sub-claim (IssueItem.SubClaims) is
// recorded like the grant's claim, pointing to the same lot, with Parent
// naming the grant's claim and no points, grams or debt settled of its own
// (they are the parent's): a grant is counted by its parent. A grant is
// reversed whole by its own claim, or a share at a time by its sub-claims
// (a refunded trip): the grant's claim keeps the running total of those
// shares, and its own reversal takes only what they left.
type Claim struct {
	Claim       string    `json:"claim"`
	Issuer      string    `json:"issuer"`
	ItemID      string    `json:"itemId"`
	Account     string    `json:"account"`
	LotKey      string    `json:"lotKey"`
	LotID       string    `json:"lotId"`
	Points      int64     `json:"points"`
	Grams       int64     `json:"grams"`
	DebtSettled int64     `json:"debtSettled"`
	IssuedAt    time.Time `json:"issuedAt"`
	TxID        string    `json:"txId"`
	Parent      string    `json:"parent,omitempty"` // a sub-claim's grant claim; "" for a grant's own claim
	// SubReversed is, on a grant's claim, the points its sub-claims'
	// reversals accounted for (clawed, expired or owed), at most Points;
	// SubExpired the part of it that had expired. A later reversal of the
	// grant's claim reverses Points - SubReversed and counts as expired only
	// what expired beyond SubExpired, so no point is clawed, owed or called
	// expired twice.
	SubReversed int64     `json:"subReversed,omitempty"`
	SubExpired  int64     `json:"subExpired,omitempty"`
	Reversal    *Reversal `json:"reversal,omitempty"`
}

// Reversal records how a claim was reversed: Clawed + Expired + Debt are
// the points reversed (a sub-claim's share; a claim's points less what its
// sub-claims reversed before).
type Reversal struct {
	ItemID string    `json:"itemId"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	TxID   string    `json:"txId"`
	// Clawed is what was taken back from lots; Expired what had already
	// expired (gone, not clawed); Debt the shortfall charged to the account.
	Clawed  int64 `json:"clawed"`
	Expired int64 `json:"expired"`
	Debt    int64 `json:"debt"`
	// Lots is how many lots the provenance walk visited; Truncated whether
	// it stopped at MaxReverseLots.
	Lots      int  `json:"lots"`
	Truncated bool `json:"truncated"`
}

// Lot is a parcel of points with one origin and one expiry.
//
// Always: Amount = Remaining + Donated + TransferredOut + Reversed + Expired.
// A lot whose ExpiresAt <= the transaction time is expired for every purpose
// even while Remaining > 0 (the sweep records it later).
type Lot struct {
	Key                string     `json:"key"`
	ID                 string     `json:"id"`
	Account            string     `json:"account"`
	Issuer             string     `json:"issuer"`
	Amount             int64      `json:"amount"`
	Remaining          int64      `json:"remaining"`
	Grams              int64      `json:"grams"`
	GramsRemaining     int64      `json:"gramsRemaining"`
	IssuedAt           time.Time  `json:"issuedAt"`
	ExpiresAt          time.Time  `json:"expiresAt"`
	Category           string     `json:"category"`
	RuleVersion        VersionRef `json:"ruleVersion"`
	MethodologyVersion VersionRef `json:"methodologyVersion"`
	ProfileVersion     VersionRef `json:"profileVersion"`
	QuantificationHash string     `json:"quantificationHash"`
	Claim              string     `json:"claim"`
	ItemID             string     `json:"itemId"`
	TxID               string     `json:"txId"`
	// SourceLot is the key of the lot a transfer took these points from;
	// "" for an issued lot.
	SourceLot string `json:"sourceLot"`
	// Children are the keys of lots transfers made from this one.
	Children       []string `json:"children"`
	Donated        int64    `json:"donated"`
	TransferredOut int64    `json:"transferredOut"`
	Reversed       int64    `json:"reversed"`
	Expired        int64    `json:"expired"`
	// Extension is the lot's one grace extension (ExtendLots); nil when
	// it has none.
	Extension *LotExtension `json:"extension,omitempty"`
}

// Debt is what an account owes after reversals whose points were already used.
type Debt struct {
	Account   string    `json:"account"`
	Issuer    string    `json:"issuer"`
	Points    int64     `json:"points"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Family groups consumer accounts of one issuer that may transfer points.
type Family struct {
	ID        string    `json:"id"`
	Issuer    string    `json:"issuer"`
	Head      string    `json:"head"`
	Members   []string  `json:"members"` // accepted members other than the head, sorted
	Invited   []string  `json:"invited"` // pending invitations, sorted
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// FamilyLink says which family an account belongs to (as head or member).
type FamilyLink struct {
	Account  string `json:"account"`
	FamilyID string `json:"familyId"`
}

// TransferCounter sums an account's transfers out in one month.
type TransferCounter struct {
	Account string `json:"account"`
	Month   string `json:"month"` // YYYYMM in the profile's time zone
	Points  int64  `json:"points"`
	Count   int64  `json:"count"`
}

// Charity is a registered charity.
type Charity struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	MSP          string    `json:"msp"` // the charity member that acknowledges donations; may be ""
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registeredAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Project is a charity's project that receives donations.
type Project struct {
	CharityID    string    `json:"charityId"`
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registeredAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Receipt is a donation receipt: the consumer's certificate.
type Receipt struct {
	ReceiptID      string     `json:"receiptId"`
	Donor          string     `json:"donor"`
	Issuer         string     `json:"issuer"`
	CharityID      string     `json:"charityId"`
	ProjectID      string     `json:"projectId"`
	Points         int64      `json:"points"`
	Grams          int64      `json:"grams"`
	FundingFen     int64      `json:"fundingFen"`
	ProfileVersion VersionRef `json:"profileVersion"`
	TxID           string     `json:"txId"`
	Time           time.Time  `json:"time"`
	RequestHash    string     `json:"requestHash"`
	Acknowledged   bool       `json:"acknowledged"`
	AcknowledgedAt *time.Time `json:"acknowledgedAt,omitempty"`
}

// EventName is the name of the one event every submitted transaction sets.
const EventName = "gp.changes"

// EventVersion is the version of the event payload format.
const EventVersion = 1

// Event is the payload of the transaction's one event.
type Event struct {
	V        int      `json:"v"`
	TxID     string   `json:"txId"`
	Function string   `json:"function"`
	Time     string   `json:"time"`
	Caller   string   `json:"caller"`
	Changes  []Change `json:"changes"`
}

// Change types, in the order a projection may meet them.
const (
	ChangeRegulatorSet         = "regulator_set"
	ChangeMemberChanged        = "member_changed"
	ChangeAnchorRecorded       = "anchor_recorded"
	ChangeAccountOpened        = "account_opened"
	ChangeItemResult           = "item_result"
	ChangeClaimRecorded        = "claim_recorded"
	ChangeClaimReversed        = "claim_reversed"
	ChangeLotCreated           = "lot_created"
	ChangeLotDebited           = "lot_debited"
	ChangeDebtChanged          = "debt_changed"
	ChangeTransferRecorded     = "transfer_recorded"
	ChangeReceiptIssued        = "receipt_issued"
	ChangeDonationAcknowledged = "donation_acknowledged"
	ChangeFamilyChanged        = "family_changed"
	ChangeCharityChanged       = "charity_changed"
	ChangeLotExtended          = "lot_extended"
)

// Causes of lot_created and lot_debited, and of debt_changed.
const (
	CauseIssue       = "issue"
	CauseTransferIn  = "transfer_in"
	CauseDonate      = "donate"
	CauseTransferOut = "transfer_out"
	CauseReverse     = "reverse"
	CauseExpire      = "expire"
	CauseDebtSettle  = "debt_settle"
)

// Change is one typed change. Type says which of the payload fields is set;
// the others are absent. Every change of a consumer-initiated transaction
// carries its RequestHash.
type Change struct {
	Type        string `json:"type"`
	Cause       string `json:"cause,omitempty"`
	Action      string `json:"action,omitempty"`
	RequestHash string `json:"requestHash,omitempty"`

	Regulator *Regulator      `json:"regulator,omitempty"` // regulator_set
	Member    *Member         `json:"member,omitempty"`    // member_changed
	Anchor    *Anchor         `json:"anchor,omitempty"`    // anchor_recorded (versions)
	Notice    *NoticeBatch    `json:"notice,omitempty"`    // anchor_recorded (notice batches)
	Account   *Account        `json:"account,omitempty"`   // account_opened
	Item      *ItemResult     `json:"item,omitempty"`      // item_result
	Claim     *Claim          `json:"claim,omitempty"`     // claim_recorded, claim_reversed
	Lot       *Lot            `json:"lot,omitempty"`       // lot_created (the whole new lot)
	Debit     *Debit          `json:"debit,omitempty"`     // lot_debited
	Debt      *DebtChange     `json:"debt,omitempty"`      // debt_changed
	Transfer  *TransferRecord `json:"transfer,omitempty"`  // transfer_recorded
	Receipt   *Receipt        `json:"receipt,omitempty"`   // receipt_issued, donation_acknowledged
	Family    *Family         `json:"family,omitempty"`    // family_changed (the family after the change)
	Subject   string          `json:"subject,omitempty"`   // family_changed: the account acted on
	Charity   *Charity        `json:"charity,omitempty"`   // charity_changed
	Project   *Project        `json:"project,omitempty"`   // charity_changed (projects)
	Extension *LotExtension   `json:"extension,omitempty"` // lot_extended
}

// Debit is points (and their grams) leaving a lot.
type Debit struct {
	LotKey         string    `json:"lotKey"`
	LotID          string    `json:"lotId"`
	Account        string    `json:"account"`
	Issuer         string    `json:"issuer"`
	Claim          string    `json:"claim"`
	ExpiresAt      time.Time `json:"expiresAt"`
	Points         int64     `json:"points"`
	Grams          int64     `json:"grams"`
	Remaining      int64     `json:"remaining"`      // after the debit
	GramsRemaining int64     `json:"gramsRemaining"` // after the debit
}

// DebtChange is a change of an account's debt.
type DebtChange struct {
	Account string `json:"account"`
	Issuer  string `json:"issuer"`
	Delta   int64  `json:"delta"`
	Points  int64  `json:"points"` // the debt after the change
	Claim   string `json:"claim"`  // the claim reversed, or the claim whose issuance settled
}

// TransferRecord summarises one family transfer.
type TransferRecord struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Issuer      string `json:"issuer"`
	FamilyID    string `json:"familyId"`
	Points      int64  `json:"points"`
	Grams       int64  `json:"grams"`
	Month       string `json:"month"`
	MonthPoints int64  `json:"monthPoints"` // the sender's total this month, this transfer included
}
