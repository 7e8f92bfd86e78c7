// Package shimcc runs the points contract as Fabric chaincode: it adapts
// fabric-chaincode-go's shim.ChaincodeStubInterface to stub.Stub and serves
// the contract with shim.ChaincodeServer (chaincode as a service).
//
// The transaction's arguments are [function, JSON argument document]. A
// contract error is returned as shim.Error(apperr.EncodeWire(err)), which the
// client decodes back with apperr.DecodeWire.
package shimcc

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/statebased"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/chaincode/stub"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// The chaincode service's key-level endorsement setting (Serve).
const (
	KeyEndorsementEnv                = "GREENPOINTS_KEY_ENDORSEMENT"
	KeyEndorsementIssuerAndRegulator = "issuer-and-regulator"
	KeyEndorsementOff                = "off"
)

// MaxClockSkew bounds the distance between a proposal's client-chosen
// timestamp and the endorser's clock (DESIGN.md §3): an accept/reject guard
// that changes no read or write.
const MaxClockSkew = 2 * time.Minute

// Chaincode is the points contract as a shim.Chaincode.
type Chaincode struct {
	contract *points.Contract
	now      func() time.Time
	policies *policyCache // nil: key-level endorsement off
}

// Options configure NewWith.
type Options struct {
	// KeyEndorsement turns the contract's key-level endorsement policies
	// (stub.Stub.SetKeyEndorsers: "the issuer AND the regulator" on an
	// issuer's keys) into Fabric state-based endorsement policies. Every
	// organisation named must run peers that endorse this chaincode, or the
	// keys can never be written again: so it is on in a consortium where
	// issuers and the regulator run peers, off on a network where one
	// organisation's peers endorse for member organisations without peers
	// (the dev and suite topologies). Every peer of a channel must run the
	// chaincode with the same setting: it changes the write set.
	KeyEndorsement bool
}

// New returns the chaincode with key-level endorsement off.
func New() *Chaincode { return NewWith(Options{}) }

// NewWith returns the chaincode configured by o.
func NewWith(o Options) *Chaincode {
	c := &Chaincode{contract: points.New(), now: time.Now}
	if o.KeyEndorsement {
		c.policies = &policyCache{m: map[string][]byte{}}
	}
	return c
}

// Init does nothing: the ledger is initialised by the InitLedger function.
func (c *Chaincode) Init(shim.ChaincodeStubInterface) *peer.Response { return shim.Success(nil) }

// Invoke runs the contract function named by the first argument with the
// second argument as its JSON argument document.
func (c *Chaincode) Invoke(s shim.ChaincodeStubInterface) *peer.Response {
	args := s.GetArgs()
	if len(args) < 1 || len(args) > 2 {
		return wireError(apperr.New(apperr.Invalid, "bad_arguments", "want [function, args], got %d arguments", len(args)))
	}
	fn := string(args[0])
	var doc []byte
	if len(args) == 2 {
		doc = args[1]
	}
	ts, err := s.GetTxTimestamp()
	if err != nil {
		return wireError(apperr.Wrap(err, apperr.Internal, "no_timestamp", "reading the transaction timestamp"))
	}
	txTime := ts.AsTime()
	if d := c.now().Sub(txTime); d > MaxClockSkew || d < -MaxClockSkew {
		return wireError(apperr.New(apperr.Invalid, "clock_skew", "the proposal's timestamp %s is %s away from the endorser's clock (limit %s)",
			txTime.UTC().Format(time.RFC3339), d.Round(time.Second), MaxClockSkew))
	}
	a := &Stub{s: s, ts: txTime, policies: c.policies}
	readOnly := c.contract.ReadOnly(fn)
	if !readOnly {
		s.StartWriteBatch() // a no-op when the peer does not offer write batches
	}
	out, err := c.contract.Invoke(a, fn, doc)
	if err != nil {
		return wireError(err)
	}
	if !readOnly {
		if err := s.FinishWriteBatch(); err != nil {
			return wireError(apperr.Wrap(err, apperr.Unavailable, "write_batch_failed", "sending the write batch to the peer"))
		}
	}
	return shim.Success(out)
}

func wireError(err error) *peer.Response { return shim.Error(apperr.EncodeWire(err)) }

// Stub adapts a shim stub to stub.Stub.
type Stub struct {
	s        shim.ChaincodeStubInterface
	ts       time.Time
	policies *policyCache // nil: SetKeyEndorsers records nothing
}

var _ stub.Stub = (*Stub)(nil)

// NewStub adapts s.
func NewStub(s shim.ChaincodeStubInterface) (*Stub, error) {
	ts, err := s.GetTxTimestamp()
	if err != nil {
		return nil, err
	}
	return &Stub{s: s, ts: ts.AsTime()}, nil
}

func (a *Stub) TxID() string           { return a.s.GetTxID() }
func (a *Stub) TxTimestamp() time.Time { return a.ts }

// CreatorMSPID returns the MSP id of the proposal's creator.
func (a *Stub) CreatorMSPID() (string, error) { return cid.GetMSPID(a.s) }

func (a *Stub) GetState(key string) ([]byte, error) {
	v, err := a.s.GetState(key)
	if len(v) == 0 {
		v = nil
	}
	return v, err
}

func (a *Stub) GetMultipleStates(keys ...string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vs, err := a.s.GetMultipleStates(keys...)
	if err != nil {
		return nil, err
	}
	if len(vs) != len(keys) {
		return nil, fmt.Errorf("GetMultipleStates: %d values for %d keys", len(vs), len(keys))
	}
	for i, v := range vs {
		if len(v) == 0 {
			vs[i] = nil
		}
	}
	return vs, nil
}

func (a *Stub) PutState(key string, value []byte) error { return a.s.PutState(key, value) }
func (a *Stub) DelState(key string) error               { return a.s.DelState(key) }

// GetStateByRange iterates [start, end) and closes the iterator after limit
// results: the peer then records the range as read up to the last key
// returned, which is what the stub contract says.
func (a *Stub) GetStateByRange(start, end string, limit int) (_ []stub.KV, err error) {
	it, err := a.s.GetStateByRange(start, end)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var kvs []stub.KV
	for (limit <= 0 || len(kvs) < limit) && it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, stub.KV{Key: kv.Key, Value: kv.Value})
	}
	return kvs, nil
}

func (a *Stub) GetStateByRangeWithPagination(start, end string, pageSize int32, bookmark string) (_ []stub.KV, _ string, err error) {
	it, md, err := a.s.GetStateByRangeWithPagination(start, end, pageSize, bookmark)
	if err != nil {
		return nil, "", err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var kvs []stub.KV
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, "", err
		}
		kvs = append(kvs, stub.KV{Key: kv.Key, Value: kv.Value})
	}
	next := ""
	// Fabric returns the key after the page as the bookmark, and "" (or
	// fewer results than asked) at the end.
	if md != nil && int32(len(kvs)) >= pageSize && md.GetBookmark() != "" {
		next = md.GetBookmark()
	}
	return kvs, next, nil
}

// GetHistoryForKey returns the key's history oldest first (Fabric returns it
// newest first).
func (a *Stub) GetHistoryForKey(key string) (_ []stub.HistoryEntry, err error) {
	it, err := a.s.GetHistoryForKey(key)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var hs []stub.HistoryEntry
	for it.HasNext() {
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		h := stub.HistoryEntry{TxID: m.GetTxId(), IsDelete: m.GetIsDelete(), Timestamp: m.GetTimestamp().AsTime().UTC()}
		if !m.GetIsDelete() {
			h.Value = m.GetValue()
		}
		hs = append(hs, h)
	}
	for i, j := 0, len(hs)-1; i < j; i, j = i+1, j-1 {
		hs[i], hs[j] = hs[j], hs[i]
	}
	return hs, nil
}

func (a *Stub) SetEvent(name string, payload []byte) error { return a.s.SetEvent(name, payload) }

// SetKeyEndorsers sets key's state-based endorsement policy: AND of the
// peers of msps (statebased builds a signature policy of "<msp>.peer"
// principals, sorted, so every endorser writes the same bytes). With
// key-level endorsement off it does nothing (Options.KeyEndorsement).
func (a *Stub) SetKeyEndorsers(key string, msps ...string) error {
	if a.policies == nil {
		return nil
	}
	ep, err := a.policies.get(msps)
	if err != nil {
		return err
	}
	return a.s.SetStateValidationParameter(key, ep)
}

// policyCache holds the encoded policy of each set of MSP ids: a batch of
// 500 issuances sets the same policy on 1,500 keys.
type policyCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

// maxCachedPolicies bounds the cache: a channel has a few issuers.
const maxCachedPolicies = 256

func (c *policyCache) get(msps []string) ([]byte, error) {
	if len(msps) == 0 {
		return nil, errors.New("a key-level endorsement policy needs at least one MSP id")
	}
	sorted := slices.Sorted(slices.Values(msps))
	id := strings.Join(sorted, "\x00")
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.m[id]; ok {
		return ep, nil
	}
	pol, err := statebased.NewStateEP(nil)
	if err != nil {
		return nil, err
	}
	if err := pol.AddOrgs(statebased.RoleTypePeer, sorted...); err != nil {
		return nil, err
	}
	ep, err := pol.Policy()
	if err != nil {
		return nil, fmt.Errorf("encoding the key-level endorsement policy of %v: %w", sorted, err)
	}
	if len(c.m) >= maxCachedPolicies {
		clear(c.m)
	}
	c.m[id] = ep
	return ep, nil
}

// Serve serves the chaincode as a service on CHAINCODE_SERVER_ADDRESS with
// the package id in CHAINCODE_ID (or CORE_CHAINCODE_ID_NAME). TLS is used
// when CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT name PEM files (and, to
// verify the peer, CHAINCODE_TLS_CLIENT_CA); otherwise it serves plain gRPC
// (development). CORE_PEER_TLS_ENABLED is deliberately not read.
// GREENPOINTS_KEY_ENDORSEMENT is "issuer-and-regulator" (key-level
// endorsement on, Options.KeyEndorsement) or "off" (the default, for
// networks where member organisations have no peers).
func Serve() error {
	addr := os.Getenv("CHAINCODE_SERVER_ADDRESS")
	ccid := os.Getenv("CHAINCODE_ID")
	if ccid == "" {
		ccid = os.Getenv("CORE_CHAINCODE_ID_NAME")
	}
	if addr == "" || ccid == "" {
		return errors.New("set CHAINCODE_SERVER_ADDRESS and CHAINCODE_ID (the package id) to serve the chaincode")
	}
	tlsProps := shim.TLSProperties{Disabled: true}
	if key, cert := os.Getenv("CHAINCODE_TLS_KEY"), os.Getenv("CHAINCODE_TLS_CERT"); key != "" || cert != "" {
		var err error
		tlsProps.Disabled = false
		if tlsProps.Key, err = os.ReadFile(key); err != nil {
			return fmt.Errorf("reading CHAINCODE_TLS_KEY: %w", err)
		}
		if tlsProps.Cert, err = os.ReadFile(cert); err != nil {
			return fmt.Errorf("reading CHAINCODE_TLS_CERT: %w", err)
		}
		if ca := os.Getenv("CHAINCODE_TLS_CLIENT_CA"); ca != "" {
			if tlsProps.ClientCACerts, err = os.ReadFile(ca); err != nil {
				return fmt.Errorf("reading CHAINCODE_TLS_CLIENT_CA: %w", err)
			}
		}
	}
	var opts Options
	switch v := os.Getenv(KeyEndorsementEnv); v {
	case "", KeyEndorsementOff:
	case KeyEndorsementIssuerAndRegulator:
		opts.KeyEndorsement = true
	default:
		return fmt.Errorf("%s=%q: want %q or %q", KeyEndorsementEnv, v, KeyEndorsementIssuerAndRegulator, KeyEndorsementOff)
	}
	srv := &shim.ChaincodeServer{CCID: ccid, Address: addr, CC: NewWith(opts), TLSProps: tlsProps}
	return srv.Start()
}
