package fabric_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/contracttest"
	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/internal/fabricnet"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// The suite runs on one Fabric network of the "suite" topology (Org1 with
// the only peer, and peerless member orgs for the regulator, the two
// issuers, the auditor, the charity and a stranger), started by TestMain
// with the chaincode service deployed once. Each ledger the suite asks for
// is a fresh channel (its own chain, height and world state) with the
// chaincode committed on it: a few seconds, most of it the channel's Raft
// election, so tests can run in parallel. They wait on block cutting (200
// ms), not on the CPU, so TestMain raises -test.parallel to 8 unless it is
// given: the suite then takes ~30 s on two cores instead of ~85 s.
var (
	nw       *fabricnet.Network
	binDir   string // the Fabric binaries, for the networks started on demand (networkOf)
	chCount  atomic.Int64
	chainCtx = context.Background()
)

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if f := flag.Lookup("test.parallel"); f != nil && !given {
		_ = f.Value.Set("8")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(chainCtx, 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	began := time.Now()
	var err error
	binDir, err = fabricnet.EnsureBinaries(ctx, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "EnsureBinaries:", err)
		return 1
	}
	nw, err = fabricnet.Start(ctx, fabricnet.Options{Topology: "suite", BinDir: binDir, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabricnet.Start:", err)
		return 1
	}
	defer func() {
		if err := nw.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "fabricnet.Stop:", err)
		}
	}()
	defer stopNetworks() // those of other topologies the tests started
	if err := nw.DeployChaincode(ctx, "points"); err != nil {
		fmt.Fprintln(os.Stderr, "DeployChaincode:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "fabric suite network up with chaincode in %s (dir %s)\n", time.Since(began).Round(time.Millisecond), nw.Dir)
	// PostgreSQL for the tests that run the issuer on this network
	// (pipeline_test.go); pgtest.Main runs the tests.
	return pgtest.Main(m)
}

// newLedger creates a fresh channel with the points chaincode and returns a
// ledger on it that signs as each org's User1.
func newLedger(t *testing.T) issuer.Ledger {
	t.Helper()
	return ledgerOn(t, newChannel(t))
}

// newChannel creates a fresh channel with the points chaincode committed on it.
func newChannel(t *testing.T) string {
	t.Helper()
	return newChannelOn(t, nw, "suite")
}

// newChannelOn creates a fresh channel on net, named prefix<N>, with the
// points chaincode committed on it.
func newChannelOn(t testing.TB, net *fabricnet.Network, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(chainCtx, 2*time.Minute)
	defer cancel()
	channel := fmt.Sprintf("%s%d", prefix, chCount.Add(1))
	began := time.Now()
	if err := net.CreateChannel(ctx, channel); err != nil {
		t.Fatalf("CreateChannel(%s): %v", channel, err)
	}
	created := time.Since(began)
	if err := net.DeployChaincodeOn(ctx, channel, "points"); err != nil {
		t.Fatalf("DeployChaincodeOn(%s): %v", channel, err)
	}
	t.Logf("channel %s created in %s, chaincode deployed in %s", channel, created.Round(time.Millisecond),
		(time.Since(began) - created).Round(time.Millisecond))
	return channel
}

// ledgerOn returns a ledger on channel, through Org1's peer, that signs as
// the User1 of each org whose MSP id is in msps (of every org when msps is
// empty): each organisation is its own client on Fabric.
func ledgerOn(t *testing.T, channel string, msps ...string) *fabric.Ledger {
	t.Helper()
	return ledgerVia(t, nw, nw.Orgs[0], channel, msps...)
}

// ledgerVia is ledgerOn on net through the first peer of gateway's org.
func ledgerVia(t testing.TB, net *fabricnet.Network, gateway *fabricnet.Org, channel string, msps ...string) *fabric.Ledger {
	t.Helper()
	return openLedger(t, ledgerConfig(t, net, gateway, channel, msps...))
}

// ledgerConfig is the configuration of ledgerVia.
func ledgerConfig(t testing.TB, net *fabricnet.Network, gateway *fabricnet.Org, channel string, msps ...string) fabric.Config {
	t.Helper()
	cfg := fabric.Config{
		PeerEndpoint: gateway.Peers[0].Address,
		TLSRootCert:  readFile(t, gateway.TLSRootCert),
		Identities:   map[string]fabric.Identity{},
		Channel:      channel,
		Chaincode:    "points",
	}
	for _, org := range net.Orgs {
		if len(msps) == 0 || slices.Contains(msps, org.MSPID) {
			cfg.Identities[org.MSPID] = fabric.Identity{Cert: readFile(t, org.User.Cert), Key: readFile(t, org.User.Key)}
		}
	}
	return cfg
}

// openLedger opens cfg's ledger, closed when the test ends.
func openLedger(t testing.TB, cfg fabric.Config) *fabric.Ledger {
	t.Helper()
	l, err := fabric.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("fabric.New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContractSuite runs the backend-agnostic contract suite on Fabric.
func TestContractSuite(t *testing.T) {
	contracttest.Run(t, newLedger)
}
