package app

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The ledger settings are checked before anything is opened: on Fabric each
// missing setting is named with its flag and variable, the issuer's MSP is
// its Fabric identity's, and channel and chaincode have defaults.
func TestResolveLedger(t *testing.T) {
	t.Parallel()
	full := FabricConfig{PeerEndpoint: "peer0.org1.example.com:7051", TLSCACertFile: "ca.pem", MSPID: "BankAMSP",
		CertFile: "cert.pem", KeyFile: "key.pem"}
	tests := []struct {
		name    string
		cfg     Config
		want    Config
		wantErr []string
	}{
		{name: "embedded by default", cfg: Config{}, want: Config{}},
		{name: "embedded ignores fabric settings", cfg: Config{Ledger: LedgerEmbedded, IssuerMSP: "X", Fabric: FabricConfig{MSPID: "Y"}},
			want: Config{Ledger: LedgerEmbedded, IssuerMSP: "X", Fabric: FabricConfig{MSPID: "Y"}}},
		{name: "unknown backend", cfg: Config{Ledger: "besu"}, wantErr: []string{`unknown ledger backend "besu"`}},
		{name: "fabric needs everything", cfg: Config{Ledger: LedgerFabric}, wantErr: []string{
			"--fabric-peer (or GREENPOINTS_FABRIC_PEER)", "--fabric-tls-ca (or GREENPOINTS_FABRIC_TLS_CA)",
			"--fabric-msp-id (or GREENPOINTS_FABRIC_MSP_ID)", "--fabric-cert (or GREENPOINTS_FABRIC_CERT)",
			"--fabric-key (or GREENPOINTS_FABRIC_KEY)"}},
		{name: "fabric defaults", cfg: Config{Ledger: LedgerFabric, Fabric: full}, want: Config{Ledger: LedgerFabric, IssuerMSP: "BankAMSP",
			Fabric: func() FabricConfig { f := full; f.Channel, f.Chaincode = "greenpoints", "points"; return f }()}},
		{name: "fabric keeps names", cfg: Config{Ledger: LedgerFabric, IssuerMSP: "BankAMSP",
			Fabric: func() FabricConfig { f := full; f.Channel, f.Chaincode = "bank-a", "points-v2"; return f }()},
			want: Config{Ledger: LedgerFabric, IssuerMSP: "BankAMSP",
				Fabric: func() FabricConfig { f := full; f.Channel, f.Chaincode = "bank-a", "points-v2"; return f }()}},
		{name: "issuer is another org", cfg: Config{Ledger: LedgerFabric, IssuerMSP: "GreenBankMSP", Fabric: full},
			wantErr: []string{`issuer's MSP "GreenBankMSP" is not the MSP of its Fabric identity`}},
		{name: "peer without port", cfg: Config{Ledger: LedgerFabric,
			Fabric: func() FabricConfig { f := full; f.PeerEndpoint = "peer0.org1.example.com"; return f }()},
			wantErr: []string{`--fabric-peer "peer0.org1.example.com" is not host:port`}},
		// --fabric-wait-peers: each peer's CA defaults to --fabric-tls-ca;
		// resolving moves them to WaitPeers (OpenLedger resolves again).
		{name: "wait peers", cfg: Config{Ledger: LedgerFabric, Fabric: func() FabricConfig {
			f := full
			f.WaitPeersSpec = "peer0.reg.example.com:7051, peer1.reg.example.com:7051=reg-ca.pem,10.0.0.9:7051=reg-ca.pem=peer2.reg.example.com,"
			return f
		}()}, want: Config{Ledger: LedgerFabric, IssuerMSP: "BankAMSP", Fabric: func() FabricConfig {
			f := full
			f.Channel, f.Chaincode = "greenpoints", "points"
			f.WaitPeers = []FabricPeer{{Endpoint: "peer0.reg.example.com:7051", TLSCACertFile: "ca.pem"},
				{Endpoint: "peer1.reg.example.com:7051", TLSCACertFile: "reg-ca.pem"},
				{Endpoint: "10.0.0.9:7051", TLSCACertFile: "reg-ca.pem", ServerName: "peer2.reg.example.com"}}
			return f
		}()}},
		{name: "wait peer without port", cfg: Config{Ledger: LedgerFabric,
			Fabric: func() FabricConfig { f := full; f.WaitPeersSpec = "peer0.reg.example.com=reg-ca.pem"; return f }()},
			wantErr: []string{`--fabric-wait-peers: "peer0.reg.example.com=reg-ca.pem" is not host:port`}},
		{name: "negative wait", cfg: Config{Ledger: LedgerFabric,
			Fabric: func() FabricConfig { f := full; f.WaitTimeout = -time.Second; return f }()},
			wantErr: []string{"--fabric-wait-timeout -1s is negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.resolveLedger()
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; config %+v", cfg)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			// App.Start resolves, then OpenLedger resolves the result again.
			again := cfg
			if err := again.resolveLedger(); err != nil {
				t.Fatalf("resolving again: %v", err)
			}
			if diff := cmp.Diff(cfg, again); diff != "" {
				t.Errorf("resolving again changed the config (-once +twice):\n%s", diff)
			}
		})
	}
}
