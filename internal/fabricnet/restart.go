package fabricnet

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Stopping and starting single nodes, for fault tests: a node killed in the
// middle of a stream of transactions and started again on the same ports,
// configuration and data directory must come back with its ledger (the
// peer's blocks and state, the orderer's blocks and Raft log) and let the
// clients finish.

// NodeNames returns the names of the network's orderer and peers, the names
// StopNode and StartNode take.
func (n *Network) NodeNames() []string {
	names := []string{n.ordererName()}
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			names = append(names, p.Name)
		}
	}
	return names
}

func (n *Network) ordererName() string { return filepath.Base(n.Orderer.nodeDir) }

// StopNode stops the orderer or peer called name. With crash, its process
// group gets SIGKILL, as a machine failure would (nothing flushed, no clean
// shutdown); otherwise SIGTERM, as an operator's restart. The node's files
// stay; StartNode starts it again. Stopping a stopped node does nothing.
func (n *Network) StopNode(ctx context.Context, name string, crash bool) error {
	if !slices.Contains(n.NodeNames(), name) {
		return fmt.Errorf("no node %q in this network (nodes: %s)", name, strings.Join(n.NodeNames(), ", "))
	}
	p := n.procNamed(name)
	if p == nil {
		return fmt.Errorf("node %s was never started", name)
	}
	if gone, _ := p.Exited(); gone {
		return nil
	}
	if crash {
		p.Kill()
		n.log.InfoContext(ctx, "fabric node killed", "node", name, "pid", p.PID())
		return nil
	}
	if err := p.stop(ctx, n.log); err != nil {
		return err
	}
	n.log.InfoContext(ctx, "fabric node stopped", "node", name, "pid", p.PID())
	return nil
}

// StartNode starts the stopped orderer or peer called name again, with the
// environment, ports and data directory it had, and waits until it serves:
// the orderer until it is again the Raft leader of the network's channel
// (Options.Channel; channels added with CreateChannel elect theirs in the
// same few seconds), a peer until it answers the channel's height (it
// reopens its ledger; it has joined the channel already). Starting a
// running node is an error.
func (n *Network) StartNode(ctx context.Context, name string) error {
	old := n.procNamed(name)
	if old == nil {
		return fmt.Errorf("no started node %q in this network (nodes: %s)", name, strings.Join(n.NodeNames(), ", "))
	}
	if gone, _ := old.Exited(); !gone {
		return fmt.Errorf("node %s is running (pid %d): stop it first", name, old.PID())
	}
	began := time.Now()
	if name == n.ordererName() {
		o := &n.Orderer
		p, err := n.relaunch(ctx, old, "orderer", nil, n.ordererEnv(), o.OperationsAddress,
			tlsListener{addr: o.Address, rootCA: o.TLSRootCert},
			tlsListener{addr: o.AdminAddress, rootCA: o.TLSRootCert, client: &o.Admin})
		if err != nil {
			return err
		}
		leader := fmt.Sprintf(`consensus_etcdraft_is_leader{channel="%s"} 1`, n.Channel)
		if err := n.waitFor(ctx, p, "the channel's Raft leader after the restart", func(ctx context.Context) bool {
			body, ok := httpGet(ctx, "http://"+o.OperationsAddress+"/metrics")
			return ok && strings.Contains(body, leader)
		}); err != nil {
			return err
		}
	} else {
		var org *Org
		var peer *Peer
		for _, o := range n.Orgs {
			for _, p := range o.Peers {
				if p.Name == name {
					org, peer = o, p
				}
			}
		}
		if peer == nil {
			return fmt.Errorf("node %s is neither the orderer nor a peer", name)
		}
		p, err := n.relaunch(ctx, old, "peer", []string{"node", "start"}, n.peerEnv(org, peer), peer.OperationsAddress,
			tlsListener{addr: peer.Address, rootCA: org.TLSRootCert})
		if err != nil {
			return err
		}
		// As at the first start, the port opens before gRPC is served.
		if err := n.waitFor(ctx, p, name+" to serve the channel again", func(ctx context.Context) bool {
			h, err := n.ChannelHeight(ctx, peer)
			return err == nil && h >= 1
		}); err != nil {
			return err
		}
	}
	n.log.InfoContext(ctx, "fabric node restarted", "node", name, "pid", n.procNamed(name).PID(),
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// PauseNode suspends the orderer or peer called name (SIGSTOP to its
// process group), as a node stalled by a saturated disk or a long pause
// would be: its connections stay open, it answers nothing and commits no
// block until ResumeNode. For tests of a lagging endorser. Resume a paused
// node before Stop, which otherwise kills it after its stop timeout.
func (n *Network) PauseNode(name string) error { return n.signalNode(name, syscall.SIGSTOP) }

// ResumeNode resumes a node PauseNode suspended (SIGCONT); resuming a
// running node does nothing.
func (n *Network) ResumeNode(name string) error { return n.signalNode(name, syscall.SIGCONT) }

func (n *Network) signalNode(name string, sig syscall.Signal) error {
	p := n.procNamed(name)
	if p == nil {
		return fmt.Errorf("no started node %q in this network (nodes: %s)", name, strings.Join(n.NodeNames(), ", "))
	}
	if gone, _ := p.Exited(); gone {
		return fmt.Errorf("node %s is not running", name)
	}
	if err := syscall.Kill(-p.PID(), sig); err != nil {
		return fmt.Errorf("signalling %s (pid %d) with %s: %w", name, p.PID(), sig, err)
	}
	n.log.Info("fabric node signalled", "node", name, "pid", p.PID(), "signal", sig.String())
	return nil
}

// RestartNode is StopNode then StartNode.
func (n *Network) RestartNode(ctx context.Context, name string, crash bool) error {
	if err := n.StopNode(ctx, name, crash); err != nil {
		return err
	}
	return n.StartNode(ctx, name)
}

// relaunch starts a node again with launch and puts its process where the
// old one was in the start order, so Stop still stops peers before the
// orderer.
func (n *Network) relaunch(ctx context.Context, old *proc, cmd string, args, env []string, opsAddr string, listeners ...tlsListener) (*proc, error) {
	p, err := n.launch(ctx, old.name, cmd, args, env, opsAddr, listeners...)
	n.procsMu.Lock()
	defer n.procsMu.Unlock()
	// launch appended the new process (also on error, so that Stop stops it).
	if last := len(n.procs) - 1; last >= 0 && n.procs[last].name == old.name {
		fresh := n.procs[last]
		n.procs = n.procs[:last]
		if i := slices.Index(n.procs, old); i >= 0 {
			n.procs[i] = fresh
		} else {
			n.procs = append(n.procs, fresh)
		}
	}
	return p, err
}
