// Package points is the greenpoints points contract: the chaincode that holds
// every point, written once and run by both ledger backends (Fabric and the
// embedded ledger) over the small state interface of chaincode/stub.
//
// The contract is deterministic: it reads no clock but the transaction
// timestamp, uses no randomness, never lets map iteration order reach state,
// results or events, and does no I/O outside the stub. Points and grams CO2e
// are int64 with checked arithmetic. Every record in state and every event is
// a Go struct marshalled by encoding/json, so its field order is fixed.
//
// One call is one transaction: Invoke(stub, function, args) where args is a
// single JSON document decoded strictly (exact field names, no unknown or
// duplicate fields, one document, at most MaxArgsBytes). Errors are
// *apperr.Error values with stable snake_case reasons; backends carry them
// across with apperr.EncodeWire and DecodeWire.
//
// The design follows Fabric's concurrency model: no key that every issuance
// writes (balances derive from lots, totals from change lists and read-only
// scans), no read-your-writes inside a transaction (the contract keeps its own
// overlay of what it wrote), range reads only over small phantom-checked
// ranges in submitted transactions, paginated and history reads only in
// evaluated ones, and exactly one event per transaction ("gp.changes"), which
// carries an ordered, bounded list of typed changes.
//
// docs/ledger.md describes the state model, the keys, every function, the
// change-list format, the roles and the invariants.
package points
