package fabricnet_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/fabricnet"
)

// TestDevNetwork builds (or reuses) the Fabric binaries, starts the dev
// network, checks the peer is healthy and has the channel, and stops it
// leaving no process behind. A cold build takes a couple of minutes.
func TestDevNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))

	binDir, err := fabricnet.EnsureBinaries(ctx, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		t.Fatalf("EnsureBinaries: %v", err)
	}
	began := time.Now()
	nw, err := fabricnet.Start(ctx, fabricnet.Options{Dir: t.TempDir(), Topology: "dev", BinDir: binDir, Log: log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("dev network started in %s", time.Since(began).Round(time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = nw.Stop(context.Background())
		}
	})

	if len(nw.Orgs) != 1 || len(nw.Orgs[0].Peers) != 1 {
		t.Fatalf("dev topology: got %d orgs, want 1 org with 1 peer", len(nw.Orgs))
	}
	org := nw.Orgs[0]
	peer := org.Peers[0]
	if org.MSPID != "Org1MSP" || nw.Channel != fabricnet.DefaultChannel {
		t.Errorf("got MSP id %q, channel %q; want Org1MSP, %s", org.MSPID, nw.Channel, fabricnet.DefaultChannel)
	}
	for _, f := range []string{org.TLSRootCert, org.User.Cert, org.User.Key, org.Admin.Cert, org.Admin.Key, nw.Orderer.TLSRootCert} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("client material: %v", err)
		}
	}

	for _, addr := range []string{peer.OperationsAddress, nw.Orderer.OperationsAddress} {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET http://%s/healthz: status %d, want 200", addr, resp.StatusCode)
		}
	}

	height, err := nw.ChannelHeight(ctx, peer)
	if err != nil {
		t.Fatalf("ChannelHeight: %v", err)
	}
	if height < 1 {
		t.Errorf("channel %s height on %s = %d, want >= 1", nw.Channel, peer.Name, height)
	}
	out, err := nw.PeerAdmin(ctx, peer, "channel", "list")
	if err != nil {
		t.Fatalf("peer channel list: %v", err)
	}
	t.Logf("peer channel list:\n%s", out)

	pids := nw.PIDs()
	if len(pids) != 2 {
		t.Errorf("got %d node processes, want 2 (orderer, peer)", len(pids))
	}
	stopped = true
	if err := nw.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		// Each node leads its own process group: nothing of it may remain.
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still has processes after Stop (kill: %v)", pid, err)
		}
	}
	if err := nw.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
