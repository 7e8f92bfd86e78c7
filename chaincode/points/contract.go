package points

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Bounds. Everything the contract reads, writes or returns is bounded.
const (
	// MaxArgsBytes bounds a function's argument document.
	MaxArgsBytes = 4 << 20
	// MaxIssueBatch bounds the items of one IssueBatch.
	MaxIssueBatch = 1000
	// MaxSubClaims bounds the sub-claims of one IssueBatch item (the trips
	// of a daily grant); MaxBatchSubClaims bounds them over a whole batch,
	// so that a batch's reads, writes and event stay bounded.
	MaxSubClaims      = 64
	MaxBatchSubClaims = 4000
	// MaxOpenAccounts bounds the accounts of one OpenAccounts.
	MaxOpenAccounts = 1000
	// MaxSweepLimit bounds the lots one SweepExpired examines.
	MaxSweepLimit = 500
	// DefaultSweepLimit is the sweep limit when none is given.
	DefaultSweepLimit = 100
	// MaxSpendLots bounds the lots one transfer or donation takes points
	// from; MaxScanLots bounds the lots it (or GetBalance) reads to find them.
	MaxSpendLots = 500
	MaxScanLots  = 5000
	// scanChunk is how many lots one range read of a spend fetches.
	scanChunk = 100
	// MaxLotChildren bounds the transfer children of one lot.
	MaxLotChildren = 64
	// MaxReverseLots bounds the lots a reversal's provenance walk visits.
	MaxReverseLots = 256
	// MaxFamilySize bounds a family's head, members and invitations together.
	MaxFamilySize = 10
	// MaxProfileSchedule bounds an issuer's scheduled profiles.
	MaxProfileSchedule = 16
	// DefaultNoticeDays is a profile's notice period when it names none.
	DefaultNoticeDays = 30
	// MaxValidityDaysLimit bounds any profile's maxValidityDays (100 years).
	MaxValidityDaysLimit = 36525
	// ExpiringSoonDays is the horizon of GetBalance's expiringSoon.
	ExpiringSoonDays = 30
	// MaxLotsPage, DefaultLotsPage bound GetLots pages.
	MaxLotsPage     = 200
	DefaultLotsPage = 50
	// MaxHistoryPage, DefaultHistoryPage bound the lots per GetAccountHistory
	// page; MaxHistoryPerKey bounds the entries returned per key.
	MaxHistoryPage     = 50
	DefaultHistoryPage = 20
	MaxHistoryPerKey   = 100
	// MaxConservationPage, DefaultConservationPage bound GetConservation pages.
	MaxConservationPage     = 1000
	DefaultConservationPage = 500
	// MaxRegistryEntries bounds each list GetRegistry and GetAnchors return.
	MaxRegistryEntries = 1000
	// MaxChanges bounds the changes of one event. The largest transaction,
	// an IssueBatch of MaxIssueBatch items each settling debt, makes 6 per
	// item and one per sub-claim; every other function makes fewer.
	MaxChanges = 6*MaxIssueBatch + MaxBatchSubClaims + 16
	// MaxNameLen bounds names and filing numbers (bytes).
	MaxNameLen = 200
)

// Contract is the points contract. It holds no state: every call reads and
// writes only through the stub it is given, so one Contract serves all
// transactions concurrently.
type Contract struct {
	fns   map[string]*function
	names []string
}

// access says who may call a function.
type access int

const (
	accessInit      access = iota // anyone, once
	accessRegulator               // the regulator
	accessIssuer                  // an active issuer
	accessCharity                 // an active charity member
	accessRead                    // regulator, auditors, issuers (checked further per record)
	accessReadAll                 // every registered caller
)

type function struct {
	readOnly bool
	access   access
	run      func(t *txn, args []byte) (any, error)
}

// bind adapts a typed handler to the dispatch table: strict decoding of the
// arguments into A, then the handler.
func bind[A any](f func(t *txn, a *A) (any, error)) func(t *txn, args []byte) (any, error) {
	return func(t *txn, args []byte) (any, error) {
		a := new(A)
		if err := decodeArgs(args, a); err != nil {
			return nil, err
		}
		return f(t, a)
	}
}

// New returns the contract.
func New() *Contract {
	c := &Contract{fns: map[string]*function{
		"InitLedger":      {access: accessInit, run: bind(initLedger)},
		"RegisterMember":  {access: accessRegulator, run: bind(registerMember)},
		"SetMemberStatus": {access: accessRegulator, run: bind(setMemberStatus)},

		"AnchorVersion":     {access: accessIssuer, run: bind(anchorVersion)},
		"AnchorNoticeBatch": {access: accessIssuer, run: bind(anchorNoticeBatch)},

		"OpenAccount":  {access: accessIssuer, run: bind(openAccount)},
		"OpenAccounts": {access: accessIssuer, run: bind(openAccounts)},
		"IssueBatch":   {access: accessIssuer, run: bind(issueBatch)},
		"Reverse":      {access: accessIssuer, run: bind(reverse)},
		"SweepExpired": {access: accessIssuer, run: bind(sweepExpired)},
		"ExtendLots":   {access: accessIssuer, run: bind(extendLots)},

		"CreateFamily": {access: accessIssuer, run: bind(createFamily)},
		"InviteMember": {access: accessIssuer, run: bind(inviteMember)},
		"AcceptInvite": {access: accessIssuer, run: bind(acceptInvite)},
		"LeaveFamily":  {access: accessIssuer, run: bind(leaveFamily)},
		"RemoveMember": {access: accessIssuer, run: bind(removeMember)},
		"Transfer":     {access: accessIssuer, run: bind(transfer)},

		"RegisterCharity":     {access: accessRegulator, run: bind(registerCharity)},
		"RegisterProject":     {access: accessRegulator, run: bind(registerProject)},
		"SetCharityStatus":    {access: accessRegulator, run: bind(setCharityStatus)},
		"SetProjectStatus":    {access: accessRegulator, run: bind(setProjectStatus)},
		"Donate":              {access: accessIssuer, run: bind(donate)},
		"AcknowledgeDonation": {access: accessCharity, run: bind(acknowledgeDonation)},

		"GetBalance":        {readOnly: true, access: accessRead, run: bind(getBalance)},
		"GetLots":           {readOnly: true, access: accessRead, run: bind(getLots)},
		"GetAccountHistory": {readOnly: true, access: accessRead, run: bind(getAccountHistory)},
		"GetReceipt":        {readOnly: true, access: accessReadAll, run: bind(getReceipt)},
		"GetClaim":          {readOnly: true, access: accessRead, run: bind(getClaim)},
		"GetRegistry":       {readOnly: true, access: accessReadAll, run: bind(getRegistry)},
		"GetAnchors":        {readOnly: true, access: accessRead, run: bind(getAnchors)},
		"GetConservation":   {readOnly: true, access: accessRead, run: bind(getConservation)},
	}}
	for name := range c.fns {
		c.names = append(c.names, name)
	}
	slices.Sort(c.names)
	return c
}

// Functions returns the contract's function names, sorted.
func (c *Contract) Functions() []string { return slices.Clone(c.names) }

// ReadOnly reports whether fn only queries (it should be evaluated, not
// submitted). Unknown functions are not read-only.
func (c *Contract) ReadOnly(fn string) bool {
	f, ok := c.fns[fn]
	return ok && f.readOnly
}

// Invoke runs function fn with its JSON argument document against s and
// returns its JSON result. On error nothing is written and no event is set.
// A panic (a bug) is returned as an internal error with reason
// "contract_panic" rather than taking the peer down.
func (c *Contract) Invoke(s stub.Stub, fn string, args []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out = nil
			err = apperr.Wrap(fmt.Errorf("panic: %v\n%s", r, debug.Stack()), apperr.Internal, "contract_panic", "the contract failed in %s", fn)
		}
	}()
	f, ok := c.fns[fn]
	if !ok {
		return nil, apperr.New(apperr.Invalid, "unknown_function", "unknown function %q", truncate(fn, 64))
	}
	if len(args) > MaxArgsBytes {
		return nil, apperr.New(apperr.TooLarge, "args_too_large", "the arguments exceed %d bytes", MaxArgsBytes)
	}
	t, err := newTxn(s, fn, f.readOnly)
	if err != nil {
		return nil, err
	}
	if err := t.authorize(f.access); err != nil {
		return nil, err
	}
	result, err := f.run(t, args)
	if err != nil {
		return nil, err
	}
	switch r := result.(type) { // the largest result: skip encoding/json's validation pass
	case IssueBatchResult:
		out, err = r.MarshalJSON()
	default:
		out, err = json.Marshal(result)
	}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "encode_failed", "encoding the result of %s", fn)
	}
	// Every transaction sets its one event, queries too (with no changes):
	// a query that is submitted rather than evaluated is still a
	// transaction, and the projection sees every transaction.
	if err := t.commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// txn is one transaction's view: the caller, the time, a read cache and an
// overlay of the transaction's own writes (the stub does not let a
// transaction read what it wrote, as on Fabric), and the change list.
type txn struct {
	s        stub.Stub
	fn       string
	txID     string
	now      time.Time
	readOnly bool

	caller    string
	regulator *Regulator
	member    *Member // nil for the regulator and unknown callers

	cache   map[string][]byte // committed values read (nil: absent)
	objs    map[string]any    // decoded records, see lookup
	overlay map[string][]byte // this transaction's writes (nil: deleted)
	order   []string          // keys in first-write order
	changes []Change

	// The lots placed per expiry index entry, written at commit (placeLot).
	expiring      map[string][]string
	expiringOrder []string
}

func newTxn(s stub.Stub, fn string, readOnly bool) (*txn, error) {
	caller, err := s.CreatorMSPID()
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Unauthorized, "no_identity", "the caller's MSP id is unknown")
	}
	now := s.TxTimestamp().UTC()
	if now.IsZero() || now.Unix() < 0 || now.Unix() > maxUnix {
		return nil, apperr.New(apperr.Invalid, "bad_timestamp", "the transaction timestamp is out of range")
	}
	return &txn{
		s: s, fn: fn, txID: s.TxID(), now: now, readOnly: readOnly, caller: caller,
		cache: map[string][]byte{}, overlay: map[string][]byte{}, objs: map[string]any{},
	}, nil
}

// errStub wraps a failure of the state interface. A paginated or history
// read refused in a submitted transaction (Fabric's rule) becomes a clear
// Invalid error; anything else is internal.
func errStub(err error, what string) error {
	if e := apperr.As(err); e != nil {
		return e
	}
	if strings.Contains(err.Error(), "read-only transaction") {
		return apperr.Wrap(err, apperr.Invalid, "read_only_query", "%s is only possible in an evaluated (read-only) transaction", what)
	}
	return apperr.Wrap(err, apperr.Internal, "state_error", "%s failed", what)
}

// getMany returns the current values of keys (the transaction's own writes
// first, then committed state), reading everything not yet known with ONE
// GetMultipleStates call. nil means absent.
func (t *txn) getMany(keys ...string) ([][]byte, error) {
	var (
		missing []string
		seen    map[string]bool // only a call with several keys may repeat one
	)
	if len(keys) > 1 {
		seen = make(map[string]bool, len(keys))
	}
	for _, k := range keys {
		if _, ok := t.overlay[k]; ok {
			continue
		}
		if _, ok := t.cache[k]; ok || seen[k] {
			continue
		}
		if seen != nil {
			seen[k] = true
		}
		missing = append(missing, k)
	}
	if len(missing) > 0 {
		vals, err := t.s.GetMultipleStates(missing...)
		if err != nil {
			return nil, errStub(err, "reading state")
		}
		if len(vals) != len(missing) {
			return nil, apperr.New(apperr.Internal, "state_error", "GetMultipleStates returned %d values for %d keys", len(vals), len(missing))
		}
		for i, k := range missing {
			t.cache[k] = vals[i]
		}
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if v, ok := t.overlay[k]; ok {
			out[i] = v
		} else {
			out[i] = t.cache[k]
		}
	}
	return out, nil
}

// reserve sizes the transaction's maps and lists for about reads more keys
// read and writes more keys written, so that a large batch does not grow
// them step by step.
func (t *txn) reserve(reads, writes int) {
	if len(t.cache)+reads > 8 {
		t.cache = grown(t.cache, reads)
	}
	if len(t.overlay)+writes > 8 {
		t.overlay = grown(t.overlay, writes)
		t.order = slices.Grow(t.order, writes)
	}
}

// grown is a copy of m with room for n more keys.
func grown[V any](m map[string]V, n int) map[string]V {
	out := make(map[string]V, len(m)+n)
	maps.Copy(out, m)
	return out
}

// get returns the current value of one key; nil when absent.
func (t *txn) get(key string) ([]byte, error) {
	v, err := t.getMany(key)
	if err != nil {
		return nil, err
	}
	return v[0], nil
}

// getJSON reads key into v; found is false when the key is absent.
func (t *txn) getJSON(key string, v any) (found bool, err error) {
	raw, err := t.get(key)
	if err != nil || raw == nil {
		return false, err
	}
	return true, unmarshalState(key, raw, v)
}

// lookup returns the decoded record under key (nil when absent), decoding
// each key once per transaction: a batch names the same accounts and anchors
// over and over. The record is shared: callers must not modify it.
func lookup[T any](t *txn, key string) (*T, error) {
	if v, ok := t.objs[key]; ok {
		return v.(*T), nil
	}
	raw, err := t.get(key)
	if err != nil {
		return nil, err
	}
	var out *T
	if raw != nil {
		out = new(T)
		if err := unmarshalState(key, raw, out); err != nil {
			return nil, err
		}
	}
	t.objs[key] = out
	return out, nil
}

func unmarshalState(key string, raw []byte, v any) error {
	if a, ok := v.(*Account); ok && decodeAccount(raw, a) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return apperr.Wrap(err, apperr.Internal, "corrupt_state", "the record under %q cannot be decoded", key)
	}
	return nil
}

// rangeRead reads committed keys in [start, end) with the given limit,
// applying the transaction's own writes to the values (deleted keys drop
// out). Keys the transaction created are not added: no function range-reads
// a range it wrote before.
func (t *txn) rangeRead(start, end string, limit int) ([]stub.KV, error) {
	kvs, err := t.s.GetStateByRange(start, end, limit)
	if err != nil {
		return nil, errStub(err, "a range read")
	}
	out := kvs[:0:0]
	for _, kv := range kvs {
		if v, ok := t.overlay[kv.Key]; ok {
			if v == nil {
				continue
			}
			kv.Value = v
		}
		out = append(out, kv)
	}
	return out, nil
}

// put writes v (JSON) under key at commit.
func (t *txn) put(key string, v any) error {
	var raw []byte
	var err error
	switch r := v.(type) { // the hot records: skip encoding/json's validation pass
	case *Lot:
		raw, err = r.MarshalJSON()
	case *Claim:
		raw, err = r.MarshalJSON()
	default:
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "encode_failed", "encoding the record under %q", key)
	}
	t.write(key, raw)
	return nil
}

// del deletes key at commit.
func (t *txn) del(key string) { t.write(key, nil) }

func (t *txn) write(key string, raw []byte) {
	delete(t.objs, key)
	if _, ok := t.overlay[key]; !ok {
		t.order = append(t.order, key)
	}
	t.overlay[key] = raw
}

// emit appends a change to the event.
func (t *txn) emit(c Change) { t.changes = append(t.changes, c) }

// commit hands the writes to the stub in first-write order and sets the
// transaction's one event. Nothing reaches the stub before the function has
// succeeded, so a rejected call writes nothing.
func (t *txn) commit() error {
	if err := t.writeExpiryIndex(); err != nil {
		return err
	}
	if len(t.changes) > MaxChanges {
		return apperr.New(apperr.Internal, "too_many_changes", "%s produced %d changes (bound %d)", t.fn, len(t.changes), MaxChanges)
	}
	ev := Event{V: EventVersion, TxID: t.txID, Function: t.fn, Time: t.now.Format(time.RFC3339Nano), Caller: t.caller, Changes: t.changes}
	if ev.Changes == nil {
		ev.Changes = []Change{}
	}
	payload, err := ev.MarshalJSON()
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "encode_failed", "encoding the event")
	}
	for _, k := range t.order {
		v := t.overlay[k]
		if v == nil {
			err = t.s.DelState(k)
		} else if err = t.s.PutState(k, v); err == nil {
			if msps := t.keyEndorsers(k); msps != nil {
				err = t.s.SetKeyEndorsers(k, msps...)
			}
		}
		if err != nil {
			return errStub(err, "writing state")
		}
	}
	if err := t.s.SetEvent(EventName, payload); err != nil {
		return errStub(err, "setting the event")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
