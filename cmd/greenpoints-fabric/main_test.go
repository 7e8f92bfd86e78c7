package main

import (
	"strings"
	"testing"

	"github.com/greenpoints/greenpoints/internal/fabricnet"
)

// The printed commands name the peers each organisation's commits wait for
// (--fabric-wait-peers): on a consortium the issuer's server and its
// anchor-policy wait for the regulator's peer, the regulator's commands for
// the issuers' peers (not the auditor's, which endorses nothing); on the
// suite topology, where Org1's peer is everyone's gateway, for none.
func TestConnectionTextWaitPeers(t *testing.T) {
	t.Parallel()
	org := func(msp string, peers ...string) *fabricnet.Org {
		o := &fabricnet.Org{MSPID: msp, TLSRootCert: "/net/" + msp + "/tlsca.pem",
			User: fabricnet.Identity{Cert: "/net/" + msp + "/cert.pem", Key: "/net/" + msp + "/key.pem"}}
		for _, p := range peers {
			o.Peers = append(o.Peers, &fabricnet.Peer{Address: p})
		}
		return o
	}
	for _, tc := range []struct {
		name            string
		orgs            []*fabricnet.Org
		issuer, regWait string // the --fabric-wait-peers values, "" for none
	}{
		{name: "consortium",
			orgs: []*fabricnet.Org{org(issuerMSP, "127.0.0.1:7001"), org("BankBMSP", "127.0.0.1:7002"),
				org(regulatorMSP, "127.0.0.1:7003", "127.0.0.1:7013"), org(auditorMSP, "127.0.0.1:7004"), org("CharityMSP")},
			issuer:  "127.0.0.1:7003=/net/RegulatorMSP/tlsca.pem,127.0.0.1:7013=/net/RegulatorMSP/tlsca.pem",
			regWait: "127.0.0.1:7001=/net/BankAMSP/tlsca.pem,127.0.0.1:7002=/net/BankBMSP/tlsca.pem"},
		{name: "suite",
			orgs: []*fabricnet.Org{org("Org1MSP", "127.0.0.1:7001"), org(regulatorMSP), org(issuerMSP), org("BankBMSP"), org(auditorMSP)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, err := connectionText(&fabricnet.Network{Dir: "/net", Channel: "greenpoints", Orgs: tc.orgs})
			if err != nil {
				t.Fatal(err)
			}
			var serve string
			cmds := map[string]string{}
			lines := strings.Split(text, "\n")
			for i, l := range lines {
				l = strings.TrimSpace(l)
				if strings.HasPrefix(l, "greenpoints serve") {
					serve = strings.Join(lines[i:i+4], " ")
				}
				if f := strings.Fields(l); len(f) > 2 && f[0] == "greenpoints" && f[1] == "ledger" {
					cmds[f[2]] = l
				}
			}
			if serve == "" || len(cmds) != 3 {
				t.Fatalf("want the serve command and three ledger commands:\n%s", text)
			}
			for name, tt := range map[string]struct{ cmdline, want string }{
				"serve":           {serve, tc.issuer},
				"init":            {cmds["init"], tc.regWait},
				"register-issuer": {cmds["register-issuer"], tc.regWait},
				"anchor-policy":   {cmds["anchor-policy"], tc.issuer},
			} {
				if got := flagValue(tt.cmdline, "--fabric-wait-peers"); got != tt.want {
					t.Errorf("%s: --fabric-wait-peers %q, want %q\n%s", name, got, tt.want, tt.cmdline)
				}
			}
		})
	}
}

// flagValue returns the value after flag in cmdline, "" when it is absent.
func flagValue(cmdline, flag string) string {
	f := strings.Fields(cmdline)
	for i := range len(f) - 1 {
		if f[i] == flag {
			return f[i+1]
		}
	}
	return ""
}
