package fabricnet

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// CreateChannel creates another application channel, name, with the same
// organisations, policies and block cutting as the first: it writes its
// genesis block with configtxgen, joins the orderer to it (osnadmin), waits
// for its Raft leader, and joins every peer to it. It takes a few seconds,
// most of it the Raft election. Channels are independent ledgers: a
// separate chain, height and world state.
func (n *Network) CreateChannel(ctx context.Context, name string) error {
	began := time.Now()
	block := filepath.Join(n.Dir, "configtx", name+".block")
	if _, err := n.run(ctx, []string{"FABRIC_CFG_PATH=" + filepath.Join(n.Dir, "configtx")}, "configtxgen",
		"-profile", profileName, "-channelID", name, "-outputBlock", block); err != nil {
		return err
	}
	o := n.Orderer
	if _, err := n.run(ctx, nil, "osnadmin", "channel", "join", "--channelID", name,
		"--config-block", block, "-o", o.AdminAddress, "--ca-file", o.TLSRootCert,
		"--client-cert", o.Admin.TLSCert, "--client-key", o.Admin.TLSKey); err != nil {
		return err
	}
	op := n.procNamed(filepath.Base(o.nodeDir))
	leader := fmt.Sprintf(`consensus_etcdraft_is_leader{channel="%s"} 1`, name)
	if err := n.waitFor(ctx, op, "the Raft leader of channel "+name, func(ctx context.Context) bool {
		body, ok := httpGet(ctx, "http://"+o.OperationsAddress+"/metrics")
		return ok && strings.Contains(body, leader)
	}); err != nil {
		return err
	}
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			pp := n.procNamed(p.Name)
			if _, err := n.PeerAdmin(ctx, p, "channel", "join", "-b", block); err != nil {
				return err
			}
			if err := n.waitFor(ctx, pp, p.Name+" to commit the first block of "+name, func(ctx context.Context) bool {
				h, err := n.ChannelHeightOf(ctx, p, name)
				return err == nil && h >= 1
			}); err != nil {
				return err
			}
		}
	}
	n.log.InfoContext(ctx, "fabric channel created", "channel", name, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// procNamed returns the running process called name.
func (n *Network) procNamed(name string) *proc {
	n.procsMu.Lock()
	defer n.procsMu.Unlock()
	for _, p := range n.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}
