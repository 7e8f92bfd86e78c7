package fabricnet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/fabricnet"
)

// TestConsortium starts the consortium topology and deploys the chaincode:
// four organisations with a peer each, two peerless members, one chaincode
// service per organisation with peers (its own package id, mutual TLS with
// a certificate of the organisation's TLS CA, key-level endorsement on),
// each answering through its organisation's peer (DeployChaincode waits for
// every peer's answer).
func TestConsortium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	binDir, err := fabricnet.EnsureBinaries(ctx, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		t.Fatalf("EnsureBinaries: %v", err)
	}
	nw, err := fabricnet.Start(ctx, fabricnet.Options{Dir: t.TempDir(), Topology: "consortium", BinDir: binDir, Log: log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	var withPeers, peerless []string
	for _, org := range nw.Orgs {
		if len(org.Peers) == 1 {
			withPeers = append(withPeers, org.MSPID)
		} else if len(org.Peers) == 0 {
			peerless = append(peerless, org.MSPID)
		}
	}
	if want := []string{"BankAMSP", "BankBMSP", "RegulatorMSP", "AuditorMSP"}; !slices.Equal(withPeers, want) {
		t.Errorf("organisations with one peer: %v, want %v", withPeers, want)
	}
	if want := []string{"CharityMSP", "StrangerMSP"}; !slices.Equal(peerless, want) {
		t.Errorf("peerless organisations: %v, want %v", peerless, want)
	}
	if err := nw.DeployChaincode(ctx, "points"); err != nil {
		t.Fatalf("DeployChaincode: %v", err)
	}
	svcs := nw.ChaincodeServices()
	var msps []string
	ids := map[string]bool{}
	for _, s := range svcs {
		msps = append(msps, s.MSPID)
		ids[s.PackageID] = true
		if !s.TLS || !s.KeyEndorsement {
			t.Errorf("chaincode service of %s: TLS %v, key-level endorsement %v; want both", s.MSPID, s.TLS, s.KeyEndorsement)
		}
	}
	if !slices.Equal(msps, withPeers) || len(ids) != len(withPeers) {
		t.Fatalf("chaincode services of %v with %d package ids, want one per organisation with peers (%v)", msps, len(ids), withPeers)
	}
	// The service's certificate chains to its own organisation's TLS CA,
	// not to another's.
	for i, s := range svcs {
		org := nw.Orgs[i]
		other := nw.Orgs[(i+1)%len(svcs)]
		if err := handshake(t, s.Address, org); err != nil {
			t.Errorf("TLS handshake with %s's chaincode service, trusting its TLS CA: %v", s.MSPID, err)
		}
		if err := handshake(t, s.Address, other); err == nil {
			t.Errorf("TLS handshake with %s's chaincode service succeeded trusting %s's TLS CA", s.MSPID, other.MSPID)
		}
	}
}

// handshake completes a TLS handshake with addr trusting org's TLS CA and
// presenting org's admin TLS client certificate.
func handshake(t *testing.T, addr string, org *fabricnet.Org) error {
	t.Helper()
	pem, err := os.ReadFile(org.TLSRootCert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(org.Admin.TLSCert, org.Admin.TLSKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return c.Close()
}
