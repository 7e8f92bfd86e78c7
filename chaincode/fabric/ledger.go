// Package fabric implements issuer.Ledger on a Hyperledger Fabric network
// with fabric-gateway: one shared gRPC connection to a gateway peer and one
// gateway client per MSP identity, chosen by Proposal.Caller, plus a
// connection to each other endorsing peer a commit waits for
// (Config.WaitPeers). The points contract runs there as chaincode
// (chaincode/fabric/shimcc).
package fabric

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/hash"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// Identity is one client identity: its signing certificate and private key (PEM).
type Identity struct {
	Cert, Key []byte
}

// Config configures New.
type Config struct {
	// PeerEndpoint is the gateway peer (host:port, TLS).
	PeerEndpoint string
	// TLSRootCert is the PEM CA certificate the peer's TLS certificate chains to.
	TLSRootCert []byte
	// ServerName overrides the TLS server name ("" means the endpoint's host).
	ServerName string
	// Identities are the identities the ledger signs as, by MSP id.
	Identities map[string]Identity
	// Channel and Chaincode name the contract.
	Channel, Chaincode string
	// Timeouts per phase; zero means the defaults (evaluate 30 s, endorse
	// 30 s, submit 30 s, commit status 2 min).
	EvaluateTimeout, EndorseTimeout, SubmitTimeout, CommitStatusTimeout time.Duration
	// WaitPeers are the other organisations' endorsing peers whose ledgers
	// a successful Commit waits for, until each has the transaction's
	// block. The commit status comes from the gateway peer alone; an
	// endorser a block behind would simulate the next transaction without
	// this one (an account not yet open, an invitation not yet there), and
	// the caller's next, dependent transaction would be refused or
	// endorsed again (docs/fabric.md §3.1). Name every peer the gateway may
	// ask to endorse the identities' transactions besides the gateway peer:
	// for an issuer, the regulator's peers.
	WaitPeers []Peer
	// WaitTimeout bounds that wait per commit; zero means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// Log receives the warnings of the wait and the re-endorsements (debug);
	// nil means slog.Default().
	Log *slog.Logger
}

// Peer is a peer the client asks directly, beside its gateway peer.
type Peer struct {
	// Endpoint is the peer's gRPC endpoint (host:port, TLS).
	Endpoint string
	// TLSRootCert is the PEM CA certificate its TLS certificate chains to.
	TLSRootCert []byte
	// ServerName overrides the TLS server name ("" means the endpoint's host).
	ServerName string
}

// Ledger is issuer.Ledger over fabric-gateway.
type Ledger struct {
	cfg      Config
	conn     *grpc.ClientConn
	gateways map[string]*client.Gateway
	signs    map[string]identity.Sign
	first    string // the first MSP id in order, whose identity reads what any may
	readOnly func(string) bool
	blocks   *blockCache
	peers    []*waitPeer // Config.WaitPeers, connected
	log      *slog.Logger
}

var _ issuer.Ledger = (*Ledger)(nil)

// New connects to the gateway peer. Nothing is sent until the first call.
func New(ctx context.Context, cfg Config) (*Ledger, error) {
	if cfg.PeerEndpoint == "" || cfg.Channel == "" || cfg.Chaincode == "" || len(cfg.Identities) == 0 {
		return nil, errors.New("fabric.New: PeerEndpoint, Channel, Chaincode and Identities are required")
	}
	conn, err := dial(Peer{Endpoint: cfg.PeerEndpoint, TLSRootCert: cfg.TLSRootCert, ServerName: cfg.ServerName})
	if err != nil {
		return nil, fmt.Errorf("fabric.New: %w", err)
	}
	l := &Ledger{cfg: cfg, conn: conn, gateways: map[string]*client.Gateway{}, signs: map[string]identity.Sign{},
		first: slices.Sorted(maps.Keys(cfg.Identities))[0], readOnly: points.New().ReadOnly, log: cmp.Or(cfg.Log, slog.Default())}
	l.blocks = newBlockCache(func(ctx context.Context, n uint64) (blockIndex, error) {
		b, err := l.block(ctx, n)
		if err != nil {
			return nil, err
		}
		return indexBlock(b), nil
	})
	for msp, id := range cfg.Identities {
		cert, err := identity.CertificateFromPEM(id.Cert)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("fabric.New: certificate of %s: %w", msp, err)
		}
		xid, err := identity.NewX509Identity(msp, cert)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		key, err := identity.PrivateKeyFromPEM(id.Key)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("fabric.New: key of %s: %w", msp, err)
		}
		sign, err := identity.NewPrivateKeySign(key)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		gw, err := client.Connect(xid, client.WithSign(sign), client.WithHash(hash.SHA256), client.WithClientConnection(conn),
			client.WithEvaluateTimeout(cmp.Or(cfg.EvaluateTimeout, 30*time.Second)),
			client.WithEndorseTimeout(cmp.Or(cfg.EndorseTimeout, 30*time.Second)),
			client.WithSubmitTimeout(cmp.Or(cfg.SubmitTimeout, 30*time.Second)),
			client.WithCommitStatusTimeout(cmp.Or(cfg.CommitStatusTimeout, 2*time.Minute)))
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("fabric.New: gateway for %s: %w", msp, err)
		}
		l.gateways[msp], l.signs[msp] = gw, sign
	}
	for _, p := range cfg.WaitPeers {
		wp, err := dial(p)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("fabric.New: WaitPeers: %w", err)
		}
		l.peers = append(l.peers, &waitPeer{endpoint: p.Endpoint, conn: wp, endorser: peer.NewEndorserClient(wp)})
	}
	return l, nil
}

// dial opens a gRPC connection to p over TLS (100 MB messages: a block
// fetched through qscc can be that large). Nothing is sent until the first call.
func dial(p Peer) (*grpc.ClientConn, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.TLSRootCert) {
		return nil, fmt.Errorf("no TLS root certificate for %s", p.Endpoint)
	}
	conn, err := grpc.NewClient(p.Endpoint,
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, p.ServerName)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(100<<20), grpc.MaxCallSendMsgSize(100<<20)))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", p.Endpoint, err)
	}
	return conn, nil
}

// Close closes the gateways and the connections.
func (l *Ledger) Close() error {
	for _, gw := range l.gateways {
		_ = gw.Close()
	}
	for _, p := range l.peers {
		_ = p.conn.Close()
	}
	return l.conn.Close()
}

func (l *Ledger) gateway(caller string) (*client.Gateway, error) {
	gw, ok := l.gateways[caller]
	if !ok {
		return nil, apperr.New(apperr.Invalid, "unknown_caller", "no identity of MSP %q is configured", caller)
	}
	return gw, nil
}

// anyGateway is the gateway of the first MSP id in order, for reads that
// need no particular identity (block events, chain info).
func (l *Ledger) anyGateway() *client.Gateway {
	return l.gateways[l.first]
}

func (l *Ledger) contract(caller string) (*client.Contract, error) {
	gw, err := l.gateway(caller)
	if err != nil {
		return nil, err
	}
	return gw.GetNetwork(l.cfg.Channel).GetContract(l.cfg.Chaincode), nil
}

// endorsed is an endorsed transaction.
type endorsed struct {
	tx     *client.Transaction
	caller string
	fn     string
}

func (e *endorsed) TxID() string   { return e.tx.TransactionID() }
func (e *endorsed) Result() []byte { return e.tx.Result() }

// Submit endorses and commits p.
func (l *Ledger) Submit(ctx context.Context, p issuer.Proposal) (*issuer.TxResult, error) {
	e, err := l.Endorse(ctx, p)
	if err != nil {
		return nil, err
	}
	return l.Commit(ctx, e)
}

// Endorse endorses p on the gateway peer. Read-only functions are refused:
// a Fabric simulator does not refuse their paginated and history reads in a
// transaction that writes nothing, so the client enforces the rule
// (docs/ledger.md §7). So that the error is the one the embedded backend
// gives (where the contract checks its arguments before it reaches a
// refused read), the query is evaluated first and a contract rejection of
// it is returned as is.
func (l *Ledger) Endorse(ctx context.Context, p issuer.Proposal) (issuer.Endorsed, error) {
	if l.readOnly(p.Function) {
		if _, err := l.Evaluate(ctx, p); err != nil {
			return nil, err
		}
		return nil, apperr.New(apperr.Invalid, "read_only_query", "%s is a query: evaluate it, do not submit it", p.Function)
	}
	c, err := l.contract(p.Caller)
	if err != nil {
		return nil, err
	}
	// With several endorsing organisations, the endorsers can sit at
	// different block heights for a moment after a commit and simulate
	// different results; nothing was submitted, so a new proposal (a new
	// transaction id) is endorsed again, a few times, before the caller
	// sees conflict/endorsement_mismatch.
	for attempt := 1; ; attempt++ {
		tx, err := l.endorseOnce(ctx, c, p)
		if err == nil {
			return &endorsed{tx: tx, caller: p.Caller, fn: p.Function}, nil
		}
		if !EndorsementMismatch(err) || attempt == endorseAttempts {
			return nil, mapError(err, "endorsing "+p.Function)
		}
		l.log.Debug("fabric: the endorsers disagreed; endorsing a new proposal", "function", p.Function, "attempt", attempt)
		select {
		case <-ctx.Done():
			return nil, mapError(ctx.Err(), "endorsing "+p.Function)
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// endorseAttempts bounds the re-endorsements after an endorsement mismatch.
const endorseAttempts = 5

func (l *Ledger) endorseOnce(ctx context.Context, c *client.Contract, p issuer.Proposal) (*client.Transaction, error) {
	prop, err := c.NewProposal(p.Function, client.WithBytesArguments(p.Args))
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "proposal_failed", "building the proposal")
	}
	pctx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.EndorseTimeout, 30*time.Second))
	defer cancel()
	return prop.EndorseWithContext(pctx)
}

// Commit submits an endorsed transaction to the orderer and waits for its
// commit status; then it finds the transaction's index and timestamp in its
// block, which the commits of the block's transactions fetch (qscc) and
// decode once between them (blockCache), and waits until the WaitPeers
// have the block (waitPeers).
func (l *Ledger) Commit(ctx context.Context, e issuer.Endorsed) (*issuer.TxResult, error) {
	en, ok := e.(*endorsed)
	if !ok {
		return nil, apperr.New(apperr.Internal, "foreign_endorsement", "Commit takes what this ledger's Endorse returned")
	}
	// The gateway's per-phase timeouts apply only to calls without a
	// context, so each phase gets its own deadline here: an orderer that
	// crashed before cutting the block never reports a status, and without
	// one the caller would wait forever instead of learning "unavailable".
	sctx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.SubmitTimeout, 30*time.Second))
	defer cancel()
	commit, err := en.tx.SubmitWithContext(sctx)
	if err != nil {
		return nil, mapError(err, "submitting "+en.fn)
	}
	cctx, cancelStatus := context.WithTimeout(ctx, cmp.Or(l.cfg.CommitStatusTimeout, 2*time.Minute))
	defer cancelStatus()
	st, err := commit.StatusWithContext(cctx)
	if err != nil {
		return nil, mapError(err, "waiting for the commit of "+en.fn)
	}
	if !st.Successful {
		return nil, commitError(st)
	}
	res := &issuer.TxResult{TxID: st.TransactionID, Block: st.BlockNumber, Payload: en.tx.Result()}
	idx, err := l.blocks.get(ctx, st.BlockNumber, func(err error) error { return mapError(err, "qscc GetBlockByNumber") })
	if err != nil {
		return nil, err
	}
	pos, ok := idx[st.TransactionID]
	if !ok {
		return nil, apperr.New(apperr.Internal, "tx_not_in_block", "transaction %s is not in block %d", st.TransactionID, st.BlockNumber)
	}
	res.Index, res.Timestamp = pos.index, pos.timestamp
	l.waitPeers(ctx, st.BlockNumber)
	return res, nil
}

// commitError maps an invalid transaction's validation code.
func commitError(st *client.Status) error {
	switch st.Code {
	case peer.TxValidationCode_MVCC_READ_CONFLICT:
		return apperr.New(apperr.Conflict, "mvcc_read_conflict", "transaction %s read a key changed since its endorsement", st.TransactionID)
	case peer.TxValidationCode_PHANTOM_READ_CONFLICT:
		return apperr.New(apperr.Conflict, "phantom_read_conflict", "transaction %s read a range changed since its endorsement", st.TransactionID)
	case peer.TxValidationCode_DUPLICATE_TXID:
		return apperr.New(apperr.Conflict, "duplicate_txid", "transaction %s was already submitted", st.TransactionID)
	default:
		return apperr.New(apperr.Internal, "tx_invalid", "transaction %s was invalidated: %s", st.TransactionID, st.Code)
	}
}

// mapError turns a gateway error into an *apperr.Error: the contract's own
// error (encoded by shimcc) when there is one, Unavailable when the peer
// could not be reached or did not answer in time.
func mapError(err error, what string) error {
	if e := apperr.As(err); e != nil {
		return e // already ours
	}
	if e, ok := apperr.DecodeWire(err.Error()); ok {
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apperr.Wrap(err, apperr.Unavailable, "ledger_timeout", "%s: no answer in time", what)
	}
	if EndorsementMismatch(err) {
		return apperr.Wrap(err, apperr.Conflict, "endorsement_mismatch",
			"%s: the endorsing peers simulated different results (one had committed a block the other had not yet): endorse it again", what)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return apperr.Wrap(err, apperr.Unavailable, "ledger_unavailable", "%s: the ledger could not be reached", what)
	}
	return apperr.Wrap(err, apperr.Internal, "ledger_error", "%s failed", what)
}

// EndorsementMismatch reports whether the gateway aborted an endorsement
// because the endorsers' responses differed. With several endorsing
// organisations (issuer AND regulator) under load, the two peers may
// simulate at different heights and read different versions; a new
// proposal, endorsed again, succeeds. The gateway says so only in its
// error details.
func EndorsementMismatch(err error) bool {
	var d interface{ Details() []*gateway.ErrorDetail }
	if status.Code(err) != codes.Aborted || !errors.As(err, &d) {
		return false
	}
	for _, detail := range d.Details() {
		if strings.Contains(detail.GetMessage(), "ProposalResponsePayloads do not match") {
			return true
		}
	}
	return false
}

// Evaluate runs a query on the gateway peer.
func (l *Ledger) Evaluate(ctx context.Context, p issuer.Proposal) ([]byte, error) {
	c, err := l.contract(p.Caller)
	if err != nil {
		return nil, err
	}
	ectx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.EvaluateTimeout, 30*time.Second))
	defer cancel()
	out, err := c.EvaluateWithContext(ectx, p.Function, client.WithBytesArguments(p.Args))
	if err != nil {
		return nil, mapError(err, "evaluating "+p.Function)
	}
	return out, nil
}

// qscc evaluates a query system chaincode function.
func (l *Ledger) qscc(ctx context.Context, fn string, args ...string) ([]byte, error) {
	c := l.anyGateway().GetNetwork(l.cfg.Channel).GetContract("qscc")
	ectx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.EvaluateTimeout, 30*time.Second))
	defer cancel()
	out, err := c.EvaluateWithContext(ectx, fn, client.WithArguments(append([]string{l.cfg.Channel}, args...)...))
	if err != nil {
		return nil, mapError(err, "qscc "+fn)
	}
	return out, nil
}

func (l *Ledger) block(ctx context.Context, n uint64) (*common.Block, error) {
	raw, err := l.qscc(ctx, "GetBlockByNumber", strconv.FormatUint(n, 10))
	if err != nil {
		return nil, err
	}
	var b common.Block
	if err := proto.Unmarshal(raw, &b); err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "bad_block", "decoding block %d", n)
	}
	return &b, nil
}

// Height returns the channel's number of blocks.
func (l *Ledger) Height(ctx context.Context) (uint64, error) {
	raw, err := l.qscc(ctx, "GetChainInfo")
	if err != nil {
		return 0, err
	}
	var info common.BlockchainInfo
	if err := proto.Unmarshal(raw, &info); err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "bad_chain_info", "decoding chain info")
	}
	return info.GetHeight(), nil
}

// Subscribe delivers the chaincode's valid transactions after from, in
// ledger order, from the peer's block events (full blocks: the validation
// codes are in the block metadata).
func (l *Ledger) Subscribe(ctx context.Context, from issuer.Checkpoint, fn func(issuer.CommittedTx) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	blocks, err := l.anyGateway().GetNetwork(l.cfg.Channel).BlockEvents(ctx, client.WithStartBlock(from.Block))
	if err != nil {
		return mapError(err, "subscribing to blocks")
	}
	for b := range blocks {
		num := b.GetHeader().GetNumber()
		var flags []byte
		if md := b.GetMetadata().GetMetadata(); len(md) > int(common.BlockMetadataIndex_TRANSACTIONS_FILTER) {
			flags = md[common.BlockMetadataIndex_TRANSACTIONS_FILTER]
		}
		for i, raw := range b.GetData().GetData() {
			cp := issuer.Checkpoint{Block: num, Index: i}
			if !from.Less(cp) && from != (issuer.Checkpoint{}) {
				continue
			}
			if i >= len(flags) || peer.TxValidationCode(flags[i]) != peer.TxValidationCode_VALID {
				continue
			}
			tx, err := parseTx(raw)
			if err != nil || tx.chaincode != l.cfg.Chaincode {
				continue // config and lifecycle transactions, other chaincodes
			}
			if err := fn(issuer.CommittedTx{Checkpoint: cp, TxID: tx.txID, Function: tx.function, Caller: tx.caller,
				Timestamp: tx.timestamp, EventName: tx.eventName, Event: tx.event}); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return apperr.New(apperr.Unavailable, "events_closed", "the peer closed the block event stream")
}
