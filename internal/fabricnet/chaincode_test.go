package fabricnet_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/fabricnet"
)

// TestDeployChaincode deploys the points chaincode as a service on the dev
// and suite networks under two names (the second reuses the installed
// package and the running service) and queries both through the peer CLI.
func TestDeployChaincode(t *testing.T) {
	for _, topo := range []string{"dev", "suite"} {
		t.Run(topo, func(t *testing.T) { testDeployChaincode(t, topo) })
	}
}

func testDeployChaincode(t *testing.T, topology string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	binDir, err := fabricnet.EnsureBinaries(ctx, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		t.Fatalf("EnsureBinaries: %v", err)
	}
	nw, err := fabricnet.Start(ctx, fabricnet.Options{Dir: t.TempDir(), Topology: topology, BinDir: binDir, Log: log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	for _, name := range []string{"points", "points2"} {
		began := time.Now()
		if err := nw.DeployChaincode(ctx, name); err != nil {
			t.Fatalf("DeployChaincode(%s): %v", name, err)
		}
		t.Logf("deployed %s in %s", name, time.Since(began).Round(time.Millisecond))
		peer := nw.Orgs[0].Peers[0]
		// Org1MSP is not the regulator of an uninitialised ledger: the
		// contract refuses, with its encoded error.
		_, err := nw.PeerAdmin(ctx, peer, "chaincode", "query", "-C", nw.Channel, "-n", name, "-c", `{"Args":["GetRegistry","{}"]}`)
		if err == nil || !strings.Contains(err.Error(), "gp1|") {
			t.Errorf("query %s: want a contract error, got %v", name, err)
		} else {
			t.Logf("query %s: %v", name, firstLine(err.Error()))
		}
	}
	// A second channel, with the same chaincode name: a separate ledger.
	began := time.Now()
	if err := nw.CreateChannel(ctx, "other"); err != nil {
		t.Fatalf("CreateChannel: %v", err)
	}
	if err := nw.DeployChaincodeOn(ctx, "other", "points"); err != nil {
		t.Fatalf("DeployChaincodeOn: %v", err)
	}
	t.Logf("channel other created with chaincode points in %s", time.Since(began).Round(time.Millisecond))
	if h, err := nw.ChannelHeightOf(ctx, nw.Orgs[0].Peers[0], "other"); err != nil || h < 3 {
		t.Errorf("height of channel other: %d, %v; want >= 3 (genesis, approve, commit)", h, err)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
