package fabric

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// DefaultWaitTimeout bounds the wait for Config.WaitPeers after a commit
// when Config.WaitTimeout is zero. A peer validates and commits a block in
// milliseconds to a few hundred here; five seconds is a peer in trouble,
// which the warning names.
const DefaultWaitTimeout = 5 * time.Second

// Polling of a lagging peer's height: the first retry soon (a peer is
// usually a few milliseconds behind), then less often.
const (
	waitPollFirst = 5 * time.Millisecond
	waitPollMax   = 50 * time.Millisecond
)

// waitPeer is one of Config.WaitPeers: a connection to the peer itself, not
// to its gateway, whose evaluations may run on another peer of its
// organisation.
type waitPeer struct {
	endpoint string
	conn     *grpc.ClientConn
	endorser peer.EndorserClient
	// seen is the highest height the peer has reported: a commit of a
	// block below it needs no call (concurrent commits of one block).
	seen atomic.Uint64
}

// waitPeers waits, bounded by Config.WaitTimeout, until every WaitPeers
// peer has block (its height is above it). The transaction is committed
// whatever happens here: a peer still behind at the deadline is logged
// (peer, block, its last height) and the commit succeeds; so is a peer that
// cannot be asked, at once, so that a peer that is down does not hold up
// every commit until the deadline (the gateway will not ask it to endorse
// either). The next endorsement then meets the lagging peer as it would
// without the wait: re-endorsed on a mismatch, or refused by its contract.
func (l *Ledger) waitPeers(ctx context.Context, block uint64) {
	if len(l.peers) == 0 {
		return
	}
	timeout := cmp.Or(l.cfg.WaitTimeout, DefaultWaitTimeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range l.peers {
		if p.seen.Load() > block {
			continue
		}
		wg.Go(func() {
			h, err := l.waitPeer(wctx, p, block)
			switch {
			case h > block, ctx.Err() != nil: // reached, or the caller gave up
			case wctx.Err() != nil:
				l.log.Warn("fabric: an endorsing peer has not committed the block within the wait; the next transaction may be endorsed against older state",
					"peer", p.endpoint, "block", block, "peer_height", h, "wait", timeout)
			default:
				l.log.Warn("fabric: cannot read an endorsing peer's height; not waiting for it",
					"peer", p.endpoint, "block", block, "err", err)
			}
		})
	}
	wg.Wait()
}

// waitPeer polls p's height until it is above block, ctx ends or a call
// fails; it returns the last height read (the highest seen after a failure).
func (l *Ledger) waitPeer(ctx context.Context, p *waitPeer, block uint64) (uint64, error) {
	pause := waitPollFirst
	for {
		h, err := l.peerHeight(ctx, p)
		if err != nil {
			return p.seen.Load(), err
		}
		if h > block {
			return h, nil
		}
		select {
		case <-ctx.Done():
			return h, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, waitPollMax)
	}
}

// peerHeight asks p itself for the channel's height: qscc GetChainInfo,
// endorsed by p's endorser service. A peer reports a block's height only
// once the block's state is committed (the ledger holds its block lock
// from the block store's append until the state database's commit), so a
// height above n means a simulation on p now sees block n. A block event
// stream would not do: the deliver service sends a block as soon as the
// block store has it, before the state commit.
func (l *Ledger) peerHeight(ctx context.Context, p *waitPeer) (uint64, error) {
	prop, err := l.anyGateway().GetNetwork(l.cfg.Channel).GetContract("qscc").
		NewProposal("GetChainInfo", client.WithArguments(l.cfg.Channel))
	if err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "proposal_failed", "building the qscc proposal")
	}
	raw, err := prop.Bytes()
	if err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "proposal_failed", "encoding the qscc proposal")
	}
	var pt gateway.ProposedTransaction
	if err := proto.Unmarshal(raw, &pt); err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "proposal_failed", "decoding the qscc proposal")
	}
	signed := pt.GetProposal()
	if signed.Signature, err = l.signs[l.first](prop.Digest()); err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "proposal_failed", "signing the qscc proposal")
	}
	ectx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.EvaluateTimeout, 30*time.Second))
	defer cancel()
	resp, err := p.endorser.ProcessProposal(ectx, signed)
	if err != nil {
		return 0, mapError(err, "qscc GetChainInfo on "+p.endpoint)
	}
	if r := resp.GetResponse(); r.GetStatus() != 200 {
		return 0, apperr.New(apperr.Internal, "ledger_error", "qscc GetChainInfo on %s: status %d: %s", p.endpoint, r.GetStatus(), r.GetMessage())
	}
	var info common.BlockchainInfo
	if err := proto.Unmarshal(resp.GetResponse().GetPayload(), &info); err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "bad_chain_info", "decoding chain info of %s", p.endpoint)
	}
	h := info.GetHeight()
	for {
		old := p.seen.Load()
		if h <= old || p.seen.CompareAndSwap(old, h) {
			return h, nil
		}
	}
}

// WaitPeerHeights returns the channel's height on each of Config.WaitPeers,
// in their order, asking each peer itself. It is the start-up check of
// those settings (reachable, TLS, an identity the peer accepts for the
// channel); an error names the peer.
func (l *Ledger) WaitPeerHeights(ctx context.Context) ([]uint64, error) {
	hs := make([]uint64, len(l.peers))
	var errs []error
	for i, p := range l.peers {
		h, err := l.peerHeight(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", p.endpoint, err))
		}
		hs[i] = h
	}
	return hs, errors.Join(errs...)
}
