package points

import "time"

// Argument and result documents of every function. Arguments are decoded
// strictly: exact field names, no unknown or duplicate fields.

// InitLedgerArgs are the arguments of InitLedger.
type InitLedgerArgs struct {
	RegulatorMSP string `json:"regulatorMsp"`
}

// RegisterMemberArgs are the arguments of RegisterMember.
type RegisterMemberArgs struct {
	MSP          string `json:"msp"`
	Role         string `json:"role"`
	Name         string `json:"name"`
	FilingNumber string `json:"filingNumber"`
	Status       string `json:"status"`
}

// SetMemberStatusArgs are the arguments of SetMemberStatus.
type SetMemberStatusArgs struct {
	MSP    string `json:"msp"`
	Status string `json:"status"`
}

// ProfileArgs are a profile's enforced parameters as anchored.
type ProfileArgs struct {
	Timezone                  string `json:"timezone"`
	MaxValidityDays           int64  `json:"maxValidityDays"`
	TransfersAllowed          bool   `json:"transfersAllowed"`
	TransferMaxPoints         int64  `json:"transferMaxPoints"`
	TransferMaxPointsPerMonth int64  `json:"transferMaxPointsPerMonth"`
	NoticeDays                *int64 `json:"noticeDays"` // absent: DefaultNoticeDays
	PointValueFen             int64  `json:"pointValueFen"`
	GraceDays                 int64  `json:"graceDays,omitempty"` // absent: 0, no grace extension
}

// AnchorVersionArgs are the arguments of AnchorVersion.
type AnchorVersionArgs struct {
	Kind        string       `json:"kind"`
	ID          string       `json:"id"`
	Version     string       `json:"version"`
	SHA256      string       `json:"sha256"`
	EffectiveAt time.Time    `json:"effectiveAt"`
	Profile     *ProfileArgs `json:"profile"`
}

// AnchorResult is the result of AnchorVersion.
type AnchorResult struct {
	Status string `json:"status"` // anchored | already_anchored
	Anchor Anchor `json:"anchor"`
}

// AnchorNoticeBatchArgs are the arguments of AnchorNoticeBatch.
type AnchorNoticeBatchArgs struct {
	BatchID    string `json:"batchId"`
	Kind       string `json:"kind"`
	MerkleRoot string `json:"merkleRoot"`
	Count      int64  `json:"count"`
}

// NoticeResult is the result of AnchorNoticeBatch.
type NoticeResult struct {
	Status string      `json:"status"` // anchored | already_anchored
	Notice NoticeBatch `json:"notice"`
}

// OpenAccountArgs are the arguments of OpenAccount (and one entry of OpenAccounts).
type OpenAccountArgs struct {
	AccountID string `json:"accountId"`
	Kind      string `json:"kind"`
}

// OpenAccountsArgs are the arguments of OpenAccounts.
type OpenAccountsArgs struct {
	Accounts []OpenAccountArgs `json:"accounts"`
}

// AccountResult is the result of OpenAccount.
type AccountResult struct {
	Status  string  `json:"status"` // opened | already_open
	Account Account `json:"account"`
}

// AccountsResult is the result of OpenAccounts.
type AccountsResult struct {
	Opened      int `json:"opened"`
	AlreadyOpen int `json:"alreadyOpen"`
}

// IssueItem is one issuance of IssueBatch.
type IssueItem struct {
	ItemID             string     `json:"itemId"`
	Account            string     `json:"account"`
	Points             int64      `json:"points"`
	Grams              int64      `json:"grams"`
	Category           string     `json:"category"`
	RuleVersion        VersionRef `json:"ruleVersion"`
	MethodologyVersion VersionRef `json:"methodologyVersion"`
	ProfileVersion     VersionRef `json:"profileVersion"`
	QuantificationHash string     `json:"quantificationHash"`
	ExpiresAt          time.Time  `json:"expiresAt"`
	Claim              string     `json:"claim"`
	// SubClaims are further claims the grant pays for (the trips of a daily
	// transit grant): at most MaxSubClaims, each 64 lowercase hex digits,
	// none twice and none equal to Claim. Each is recorded as a claim of its
	// own pointing to the grant's lot, so every trip stays unique network-wide
	// while the consumer gets one lot. Claim alone decides already_issued
	// and claimed_elsewhere; a sub-claim already recorded rejects the item
	// (sub_claim_taken). Absent or empty: none.
	SubClaims []string `json:"subClaims,omitempty"`
}

// IssueBatchArgs are the arguments of IssueBatch.
type IssueBatchArgs struct {
	Items []IssueItem `json:"items"`
}

// ItemResult is the outcome of one item.
type ItemResult struct {
	Index       int    `json:"index"`
	ItemID      string `json:"itemId"`
	Claim       string `json:"claim"`
	Status      string `json:"status"`           // issued | already_issued | claimed_elsewhere | rejected
	Reason      string `json:"reason,omitempty"` // for rejected
	LotID       string `json:"lotId,omitempty"`  // issued, already_issued
	LotKey      string `json:"lotKey,omitempty"` // issued, already_issued
	DebtSettled int64  `json:"debtSettled,omitempty"`
	// TakenSubClaims are the item's sub-claims already recorded (rejected
	// with sub_claim_taken), in the item's order: resubmit the grant without
	// them, under a new item id and claim.
	TakenSubClaims []string `json:"takenSubClaims,omitempty"`
}

// IssueBatchResult is the result of IssueBatch.
type IssueBatchResult struct {
	Results          []ItemResult `json:"results"`
	Issued           int          `json:"issued"`
	AlreadyIssued    int          `json:"alreadyIssued"`
	ClaimedElsewhere int          `json:"claimedElsewhere"`
	Rejected         int          `json:"rejected"`
}

// ReverseArgs are the arguments of Reverse.
type ReverseArgs struct {
	Claim  string `json:"claim"`
	Reason string `json:"reason"`
	ItemID string `json:"itemId"`
	// Points is the share of its grant a sub-claim gives back (a refunded
	// trip of a daily transit grant), 0 or more: required for a sub-claim,
	// refused for any other claim, which always reverses whatever of its
	// points is left.
	Points *int64 `json:"points,omitempty"`
}

// ReverseResult is the result of Reverse.
type ReverseResult struct {
	Claim    string   `json:"claim"`
	Account  string   `json:"account"`
	Reversal Reversal `json:"reversal"`
	DebtNow  int64    `json:"debtNow"` // the account's debt after the reversal
}

// SweepArgs are the arguments of SweepExpired.
type SweepArgs struct {
	Bucket string `json:"bucket"` // YYYYMMDD (UTC day of expiresAt)
	Limit  int    `json:"limit"`  // 1..MaxSweepLimit; 0 means DefaultSweepLimit
}

// SweepResult is the result of SweepExpired.
type SweepResult struct {
	Bucket string `json:"bucket"`
	Swept  int    `json:"swept"`  // lots recorded as expired
	Points int64  `json:"points"` // points recorded as expired
	Pruned int    `json:"pruned"` // index entries of empty lots removed
	NotDue int    `json:"notDue"` // entries read whose lot is not due yet
	More   bool   `json:"more"`   // the limit cut the range: sweep again
}

// CreateFamilyArgs are the arguments of CreateFamily.
type CreateFamilyArgs struct {
	FamilyID    string `json:"familyId"`
	Head        string `json:"head"`
	RequestHash string `json:"requestHash"`
}

// FamilyMemberArgs are the arguments of InviteMember, AcceptInvite,
// LeaveFamily and RemoveMember.
type FamilyMemberArgs struct {
	FamilyID    string `json:"familyId"`
	Account     string `json:"account"`
	RequestHash string `json:"requestHash"`
}

// FamilyResult is the result of the family functions.
type FamilyResult struct {
	Family Family `json:"family"`
}

// TransferArgs are the arguments of Transfer.
type TransferArgs struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Points      int64  `json:"points"`
	RequestHash string `json:"requestHash"`
}

// TransferResult is the result of Transfer.
type TransferResult struct {
	Transfer TransferRecord `json:"transfer"`
	Lots     []string       `json:"lots"` // keys of the recipient lots created
}

// RegisterCharityArgs are the arguments of RegisterCharity.
type RegisterCharityArgs struct {
	CharityID string `json:"charityId"`
	Name      string `json:"name"`
	MSP       string `json:"msp"`
}

// RegisterProjectArgs are the arguments of RegisterProject.
type RegisterProjectArgs struct {
	CharityID string `json:"charityId"`
	ProjectID string `json:"projectId"`
	Name      string `json:"name"`
}

// SetCharityStatusArgs are the arguments of SetCharityStatus.
type SetCharityStatusArgs struct {
	CharityID string `json:"charityId"`
	Status    string `json:"status"`
}

// SetProjectStatusArgs are the arguments of SetProjectStatus.
type SetProjectStatusArgs struct {
	CharityID string `json:"charityId"`
	ProjectID string `json:"projectId"`
	Status    string `json:"status"`
}

// DonateArgs are the arguments of Donate.
type DonateArgs struct {
	Account     string `json:"account"`
	CharityID   string `json:"charityId"`
	ProjectID   string `json:"projectId"`
	Points      int64  `json:"points"`
	RequestHash string `json:"requestHash"`
}

// ReceiptArgs are the arguments of AcknowledgeDonation and GetReceipt.
type ReceiptArgs struct {
	ReceiptID string `json:"receiptId"`
}

// ReceiptResult is the result of Donate, AcknowledgeDonation and GetReceipt.
type ReceiptResult struct {
	Status  string  `json:"status,omitempty"` // AcknowledgeDonation: acknowledged | already_acknowledged
	Receipt Receipt `json:"receipt"`
}

// AccountArgs are the arguments of GetBalance.
type AccountArgs struct {
	Account string `json:"account"`
}

// Balance is the result of GetBalance.
type Balance struct {
	Account string `json:"account"`
	Issuer  string `json:"issuer"`
	// Total is the points held: remaining points of lots not yet expired.
	Total int64 `json:"total"`
	// ExpiringSoon is the part of Total expiring within ExpiringSoonDays.
	ExpiringSoon int64 `json:"expiringSoon"`
	// NextExpiry is the earliest expiry of a held point; absent when Total is 0.
	NextExpiry *time.Time `json:"nextExpiry,omitempty"`
	Debt       int64      `json:"debt"`
	Lots       int        `json:"lots"` // lots holding points
	FamilyID   string     `json:"familyId"`
	AsOf       time.Time  `json:"asOf"`
}

// PageArgs are the arguments of GetLots and GetAccountHistory.
type PageArgs struct {
	Account  string `json:"account"`
	PageSize int32  `json:"pageSize"` // 0: the default
	Bookmark string `json:"bookmark"`
}

// LotView is a lot as GetLots returns it.
type LotView struct {
	Lot
	// Due is true when the lot has expired at the query time (whether or
	// not the sweep recorded it); Held is what it holds for spending.
	Due  bool  `json:"due"`
	Held int64 `json:"held"`
}

// LotsPage is the result of GetLots.
type LotsPage struct {
	Account  string    `json:"account"`
	Lots     []LotView `json:"lots"`
	Bookmark string    `json:"bookmark"` // "" after the last page
}

// HistoryItem is one committed modification of one of an account's keys.
type HistoryItem struct {
	Key       string    `json:"key"`
	TxID      string    `json:"txId"`
	Timestamp time.Time `json:"timestamp"`
	IsDelete  bool      `json:"isDelete"`
	Value     string    `json:"value"` // the JSON record written ("" for a delete)
}

// HistoryPage is the result of GetAccountHistory.
type HistoryPage struct {
	Account   string        `json:"account"`
	Entries   []HistoryItem `json:"entries"`
	Bookmark  string        `json:"bookmark"`
	Truncated bool          `json:"truncated"` // some key had more than MaxHistoryPerKey entries
}

// ClaimArgs are the arguments of GetClaim.
type ClaimArgs struct {
	Claim string `json:"claim"`
}

// Registry is the result of GetRegistry.
type Registry struct {
	Regulator Regulator `json:"regulator"`
	Members   []Member  `json:"members"`
	Charities []Charity `json:"charities"`
	Projects  []Project `json:"projects"`
	Truncated bool      `json:"truncated"`
}

// IssuerArgs are the arguments of GetAnchors.
type IssuerArgs struct {
	Issuer string `json:"issuer"`
}

// Anchors is the result of GetAnchors.
type Anchors struct {
	Issuer    string           `json:"issuer"`
	Versions  []Anchor         `json:"versions"`
	Notices   []NoticeBatch    `json:"notices"`
	Schedule  *ProfileSchedule `json:"schedule"`
	InForce   *VersionRef      `json:"inForce"` // the profile in force now, if any
	Truncated bool             `json:"truncated"`
}

// ConservationArgs are the arguments of GetConservation.
type ConservationArgs struct {
	Issuer   string `json:"issuer"` // "" for all issuers (regulator, auditors)
	PageSize int32  `json:"pageSize"`
	Bookmark string `json:"bookmark"`
}

// Totals are the conservation sums over a set of lots. Over all lots of an
// issuer: Issued = Held + Donated + Expired + Reversed (+ Redeemed later) and
// TransferredIn = TransferredOut.
type Totals struct {
	Issuer         string `json:"issuer"`
	Lots           int64  `json:"lots"`
	Issued         int64  `json:"issued"`
	Held           int64  `json:"held"`
	Donated        int64  `json:"donated"`
	Expired        int64  `json:"expired"` // recorded by sweeps, plus due but unswept
	Reversed       int64  `json:"reversed"`
	TransferredIn  int64  `json:"transferredIn"`
	TransferredOut int64  `json:"transferredOut"`
}

// ConservationPage is the result of GetConservation: the sums over one page
// of lots; add the pages up (Totals.Add) for the whole ledger.
type ConservationPage struct {
	Issuers  []Totals `json:"issuers"` // per issuer, sorted
	Total    Totals   `json:"total"`
	AsOf     string   `json:"asOf"`
	Bookmark string   `json:"bookmark"`
}
