// Package issuer holds the issuer's domain: what a green action is, how it is
// verified, quantified and issued, and the ledger client interface the issuer
// owns (implemented by chaincode/embedded and, later, chaincode/fabric).
//
// It imports no HTTP and no SQL.
package issuer

import (
	"context"
	"time"
)

// Proposal is one transaction to submit or evaluate on the ledger.
type Proposal struct {
	// Caller is the MSP id of the identity that signs the proposal. On Fabric
	// it is fixed by the client's certificate; the embedded ledger takes it as
	// given (it is one organisation's ledger, not a trust boundary).
	Caller string
	// Function is the contract function name, e.g. "IssueBatch".
	Function string
	// Args is the function's single JSON argument document.
	Args []byte
}

// Checkpoint is a position in the ledger: the transaction at (Block, Index).
// The zero Checkpoint is before the first transaction.
type Checkpoint struct {
	Block uint64 `json:"block"`
	Index int    `json:"index"`
}

// Less reports whether c is before d.
func (c Checkpoint) Less(d Checkpoint) bool {
	return c.Block < d.Block || (c.Block == d.Block && c.Index < d.Index)
}

// TxResult is the outcome of a committed, valid transaction.
type TxResult struct {
	TxID      string
	Block     uint64
	Index     int
	Timestamp time.Time
	// Payload is the contract function's return value (JSON).
	Payload []byte
}

// CommittedTx is one VALID committed transaction as delivered to subscribers.
type CommittedTx struct {
	Checkpoint
	TxID      string
	Function  string
	Caller    string
	Timestamp time.Time
	// EventName and Event are the transaction's single event (may be empty).
	EventName string
	Event     []byte
}

// Endorsed is a transaction that has been endorsed but not yet committed.
type Endorsed interface {
	// TxID is the transaction id.
	TxID() string
	// Result is the contract function's return value as simulated.
	Result() []byte
}

// Ledger is the ledger client the issuer uses.
//
// Errors: Submit and Evaluate return *apperr.Error values. A contract
// rejection keeps the contract's code and reason. A transaction that was
// endorsed but invalidated at commit returns code Conflict with reason
// "mvcc_read_conflict" or "phantom_read_conflict": the caller re-submits as a
// NEW proposal (a new transaction id). Unavailable means the ledger could not
// be reached; the outcome is then unknown and the caller must find out (for
// example by looking up its claims) before resubmitting.
type Ledger interface {
	// Submit endorses, orders and commits one transaction and waits for its
	// commit: Endorse followed by Commit.
	Submit(ctx context.Context, p Proposal) (*TxResult, error)
	// Endorse simulates p against committed state and returns the endorsed
	// transaction without ordering it. A contract rejection is returned here.
	Endorse(ctx context.Context, p Proposal) (Endorsed, error)
	// Commit orders and commits an endorsed transaction and waits for its
	// validation: MVCC and phantom checks happen here, against the state at
	// commit time, exactly as on Fabric.
	Commit(ctx context.Context, e Endorsed) (*TxResult, error)
	// Evaluate runs a read-only query against committed state; nothing is written.
	Evaluate(ctx context.Context, p Proposal) ([]byte, error)
	// Subscribe calls fn for every valid committed transaction after from, in
	// ledger order, until ctx is done or fn returns an error (which Subscribe
	// returns). It resumes exactly after from, so a subscriber that stores its
	// checkpoint with its own writes sees each transaction once.
	Subscribe(ctx context.Context, from Checkpoint, fn func(CommittedTx) error) error
	// Height returns the number of committed blocks.
	Height(ctx context.Context) (uint64, error)
}
