// Package stub defines the small state interface the points contract runs on.
//
// It is the subset of Fabric's ChaincodeStubInterface the contract needs, so the
// same contract code runs on Fabric (chaincode/fabric adapts the shim) and in
// the embedded ledger (chaincode/embedded). Both implementations must keep
// Fabric's rules, and the contract suite pins each one:
//
//   - No read-your-writes: GetState after PutState in the same transaction
//     returns the committed value, not the written one.
//   - Reads record the version read; at commit, a transaction whose read
//     version changed is invalid (MVCC_READ_CONFLICT).
//   - GetStateByRange results are re-executed at commit; a different result
//     invalidates the transaction (PHANTOM_READ_CONFLICT).
//   - GetStateByRangeWithPagination and GetHistoryForKey are only allowed in
//     read-only (evaluated) transactions; in a submitted transaction they fail.
//   - SetEvent keeps only the last event of a transaction.
//   - Keys are valid UTF-8 strings, never starting with 0x00, at most MaxKeyLen bytes.
//   - SetKeyEndorsers gives a key a key-level endorsement policy (Fabric's
//     state-based endorsement): later writes of the key are valid only with
//     endorsements of a peer of every listed organisation. It governs the
//     key's later writes, not the write that sets it, which the chaincode's
//     own policy covers.
package stub

import "time"

// MaxKeyLen bounds key length (bytes) in both backends.
const MaxKeyLen = 512

// KV is one key and its value.
type KV struct {
	Key   string
	Value []byte
}

// HistoryEntry is one committed modification of a key, oldest first.
type HistoryEntry struct {
	TxID      string
	Timestamp time.Time
	Value     []byte // nil when IsDelete
	IsDelete  bool
}

// Stub is the state interface of one transaction.
type Stub interface {
	// TxID is the transaction id (unique per proposal).
	TxID() string
	// TxTimestamp is the transaction time: client-chosen on Fabric, the block
	// producer's monotonic clock in the embedded ledger. The contract never
	// reads any other clock.
	TxTimestamp() time.Time
	// CreatorMSPID is the MSP id of the submitting identity.
	CreatorMSPID() (string, error)

	// GetState returns the committed value of key, or nil when absent.
	GetState(key string) ([]byte, error)
	// GetMultipleStates returns the committed values of keys, in order; nil for absent keys.
	GetMultipleStates(keys ...string) ([][]byte, error)
	// PutState writes key. Not visible to reads in the same transaction.
	PutState(key string, value []byte) error
	// DelState deletes key. Not visible to reads in the same transaction.
	DelState(key string) error
	// GetStateByRange returns committed keys in [start, end) in key order
	// (end == "" means unbounded), at most limit of them when limit > 0.
	// Phantom-checked at commit: the keys and versions in the part of the
	// range actually read ([start, last key returned] when the limit cut it
	// short, as Fabric records an iterator closed early) must be unchanged.
	GetStateByRange(start, end string, limit int) ([]KV, error)
	// GetStateByRangeWithPagination pages through [start, end); read-only transactions only.
	// bookmark is "" for the first page; the returned bookmark is "" after the last page.
	GetStateByRangeWithPagination(start, end string, pageSize int32, bookmark string) ([]KV, string, error)
	// GetHistoryForKey returns the key's committed history; read-only transactions only.
	GetHistoryForKey(key string) ([]HistoryEntry, error)
	// SetEvent sets the transaction's event; only the last call counts.
	SetEvent(name string, payload []byte) error
	// SetKeyEndorsers sets the key-level endorsement policy of key, which
	// this transaction writes: from the next transaction on, a write of the
	// key needs an endorsement by a peer of EVERY organisation in msps (MSP
	// ids). On Fabric it is SetStateValidationParameter (when the chaincode
	// service runs with key-level endorsement on, see shimcc); the embedded
	// ledger is one organisation, so it checks the call and stores nothing.
	SetKeyEndorsers(key string, msps ...string) error
}

// PrefixEnd returns the exclusive end key of the range of keys that start with prefix.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
