package fabric_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
)

// A peer that cannot be reached is Unavailable (the outcome is unknown to
// the caller), a caller without an identity is refused before anything is
// sent, and a query is never submitted.
func TestLedgerErrors(t *testing.T) {
	org1 := nw.Orgs[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := fabric.Identity{Cert: readFile(t, org1.User.Cert), Key: readFile(t, org1.User.Key)}
	l, err := fabric.New(ctx, fabric.Config{PeerEndpoint: dead, TLSRootCert: readFile(t, org1.TLSRootCert),
		Identities: map[string]fabric.Identity{org1.MSPID: id}, Channel: nw.Channel, Chaincode: "points",
		EndorseTimeout: 2 * time.Second, EvaluateTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Submit(ctx, issuer.Proposal{Caller: org1.MSPID, Function: "OpenAccount", Args: []byte(`{}`)})
	if apperr.CodeOf(err) != apperr.Unavailable {
		t.Errorf("Submit to a dead peer: %v, want unavailable", err)
	}
	_, err = l.Evaluate(ctx, issuer.Proposal{Caller: "NobodyMSP", Function: "GetRegistry", Args: []byte(`{}`)})
	if apperr.ReasonOf(err) != "unknown_caller" {
		t.Errorf("Evaluate as an unknown MSP: %v, want unknown_caller", err)
	}
}
