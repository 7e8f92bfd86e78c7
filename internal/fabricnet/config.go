package fabricnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Block cutting. With MaxMessageCount above the number of concurrent clients
// every block waits for BatchTimeout (the sample's 2 s / 500 gave 8 tx/s
// here); 200 ms / 10 committed ~550-720 simple transactions/s on two cores.
// PreferredMaxBytes is 16 MB because at the sample's 512 KB each large batch
// transaction sits alone in its block and the state commit slows sharply.
const (
	batchTimeout      = "200ms"
	maxMessageCount   = 10
	preferredMaxBytes = "16 MB"
	absoluteMaxBytes  = "99 MB" // under the nodes' 100 MB gRPC message limit
)

// orgSpec describes one organisation of a topology.
type orgSpec struct {
	name   string // configtx and cryptogen name
	mspID  string
	domain string
	peers  int // 0 for the orderer org
}

// topology is the set of organisations a network runs.
type topology struct {
	orderer  orgSpec
	peerOrgs []orgSpec
	// endorsement is the ImplicitMeta rule ("MAJORITY" when "") of the
	// channel's Endorsement and LifecycleEndorsement policies.
	endorsement string
	// ccPolicy is the chaincode definition's endorsement policy (signature
	// policy syntax); "" means any one peer of the organisations with peers.
	ccPolicy string
	// ccPerOrg runs one chaincode service per organisation with peers, each
	// org's peers dialing their own over mutual TLS, with key-level
	// endorsement on (shimcc.Options.KeyEndorsement): the consortium
	// topologies, where every endorsing organisation runs its own
	// chaincode. Otherwise one plain-gRPC service serves every peer and
	// key-level endorsement is off (member orgs without peers could never
	// endorse their keys).
	ccPerOrg bool
}

// topologies are the networks Start knows by name.
var topologies = map[string]topology{
	// dev: one peer org with one peer, one orderer org with one Raft orderer.
	"dev": {
		orderer:  orgSpec{name: "Orderer", mspID: "OrdererMSP", domain: "greenpoints.test"},
		peerOrgs: []orgSpec{{name: "Org1", mspID: "Org1MSP", domain: "org1.greenpoints.test", peers: 1}},
	},
	// suite: dev plus the organisations the contract suite signs as
	// (chaincode/contracttest.DefaultOptions), channel members without
	// peers: their clients submit through Org1's peer. Any one org's peers
	// endorse (and approve chaincode definitions), so Org1's peer alone does.
	"suite": {
		orderer: orgSpec{name: "Orderer", mspID: "OrdererMSP", domain: "greenpoints.test"},
		peerOrgs: []orgSpec{
			{name: "Org1", mspID: "Org1MSP", domain: "org1.greenpoints.test", peers: 1},
			{name: "Regulator", mspID: "RegulatorMSP", domain: "regulator.greenpoints.test"},
			{name: "BankA", mspID: "BankAMSP", domain: "banka.greenpoints.test"},
			{name: "BankB", mspID: "BankBMSP", domain: "bankb.greenpoints.test"},
			{name: "Auditor", mspID: "AuditorMSP", domain: "auditor.greenpoints.test"},
			{name: "Charity", mspID: "CharityMSP", domain: "charity.greenpoints.test"},
			{name: "Stranger", mspID: "StrangerMSP", domain: "stranger.greenpoints.test"},
		},
		endorsement: "ANY",
	},
	// consortium: the production shape of DESIGN.md §3 on one channel. Two
	// issuers, the regulator and an auditor, each with its own peer and
	// its own chaincode service (mutual TLS); the orderer org. Charity and
	// stranger orgs are peerless members, for the contract suite's
	// callers. Every transaction needs the regulator's peer and one
	// issuer's peer (the chaincode policy), and each issuer's keys need
	// that issuer's peer and the regulator's (key-level policies set by
	// the contract); the auditor's peer only reads.
	"consortium": {
		orderer: orgSpec{name: "Orderer", mspID: "OrdererMSP", domain: "greenpoints.test"},
		peerOrgs: []orgSpec{
			{name: "BankA", mspID: "BankAMSP", domain: "banka.greenpoints.test", peers: 1},
			{name: "BankB", mspID: "BankBMSP", domain: "bankb.greenpoints.test", peers: 1},
			{name: "Regulator", mspID: "RegulatorMSP", domain: "regulator.greenpoints.test", peers: 1},
			{name: "Auditor", mspID: "AuditorMSP", domain: "auditor.greenpoints.test", peers: 1},
			{name: "Charity", mspID: "CharityMSP", domain: "charity.greenpoints.test"},
			{name: "Stranger", mspID: "StrangerMSP", domain: "stranger.greenpoints.test"},
		},
		ccPolicy: "AND('RegulatorMSP.peer', OR('BankAMSP.peer', 'BankBMSP.peer'))",
		ccPerOrg: true,
	},
	// trio: one issuer, the regulator and an auditor, each with its own
	// peer and chaincode service: issuer AND regulator endorse, three peers
	// validate and commit (the benchmark's production-like topology).
	"trio": {
		orderer: orgSpec{name: "Orderer", mspID: "OrdererMSP", domain: "greenpoints.test"},
		peerOrgs: []orgSpec{
			{name: "BankA", mspID: "BankAMSP", domain: "banka.greenpoints.test", peers: 1},
			{name: "Regulator", mspID: "RegulatorMSP", domain: "regulator.greenpoints.test", peers: 1},
			{name: "Auditor", mspID: "AuditorMSP", domain: "auditor.greenpoints.test", peers: 1},
		},
		ccPolicy: "AND('RegulatorMSP.peer', 'BankAMSP.peer')",
		ccPerOrg: true,
	},
}

// ccTLSHost is the cryptogen node whose TLS certificate a chaincode service
// presents (ccPerOrg topologies): chaincode.<org domain>, signed by the
// org's TLS CA and naming 127.0.0.1.
const ccTLSHost = "chaincode"

// writeCryptoConfig writes cryptogen's input. cryptogen reads YAML, and JSON
// is YAML, so we marshal rather than template (no quoting surprises). Every
// node's TLS certificate names 127.0.0.1 so clients can dial it directly.
func writeCryptoConfig(path string, topo topology) error {
	sans := []string{"127.0.0.1", "localhost"}
	type spec struct {
		Hostname string `json:"Hostname"`
		SANS     []string
	}
	type template struct {
		Count int
		SANS  []string
	}
	type users struct{ Count int }
	type org struct {
		Name          string
		Domain        string
		EnableNodeOUs bool
		Specs         []spec    `json:",omitempty"`
		Template      *template `json:",omitempty"`
		Users         *users    `json:",omitempty"`
	}
	cfg := struct{ OrdererOrgs, PeerOrgs []org }{
		OrdererOrgs: []org{{Name: topo.orderer.name, Domain: topo.orderer.domain, EnableNodeOUs: true,
			Specs: []spec{{Hostname: "orderer", SANS: sans}}}},
	}
	for _, o := range topo.peerOrgs {
		po := org{Name: o.name, Domain: o.domain, EnableNodeOUs: true,
			Template: &template{Count: o.peers, SANS: sans}, Users: &users{Count: 1}}
		if topo.ccPerOrg && o.peers > 0 {
			po.Specs = []spec{{Hostname: ccTLSHost, SANS: sans}}
		}
		cfg.PeerOrgs = append(cfg.PeerOrgs, po)
	}
	return writeJSON(path, cfg)
}

// writeConfigtx writes configtxgen's input: one profile, Profile, for the
// application channel. The policies and capabilities are those of Fabric's
// sampleconfig/configtx.yaml (Channel V3_0, Orderer V2_0, Application V2_5),
// written out in full instead of through the sample's YAML anchors; the
// organisations, consenters and block cutting are ours.
func writeConfigtx(path string, n *Network, topo topology) error {
	endorsement := topo.endorsement
	if endorsement == "" {
		endorsement = "MAJORITY"
	}
	type policy struct{ Type, Rule string }
	sig := func(rule string) policy { return policy{"Signature", rule} }
	meta := func(rule string) policy { return policy{"ImplicitMeta", rule} }
	type anchor struct {
		Host string
		Port int
	}
	type org struct {
		Name             string
		ID               string
		MSPDir           string
		Policies         map[string]policy
		OrdererEndpoints []string `json:",omitempty"`
		AnchorPeers      []anchor `json:",omitempty"`
	}
	o := n.Orderer
	ordererOrg := org{
		Name: o.MSPID, ID: o.MSPID, MSPDir: o.orgMSPDir,
		Policies: map[string]policy{
			"Readers": sig(fmt.Sprintf("OR('%s.member')", o.MSPID)),
			"Writers": sig(fmt.Sprintf("OR('%s.member')", o.MSPID)),
			"Admins":  sig(fmt.Sprintf("OR('%s.admin')", o.MSPID)),
		},
		OrdererEndpoints: []string{o.Address},
	}
	var appOrgs []org
	for _, po := range n.Orgs {
		id := po.MSPID
		var anchors []anchor
		for _, p := range po.Peers {
			anchors = append(anchors, anchor{"127.0.0.1", p.port})
		}
		appOrgs = append(appOrgs, org{
			Name: id, ID: id, MSPDir: po.orgMSPDir,
			Policies: map[string]policy{
				"Readers":     sig(fmt.Sprintf("OR('%[1]s.admin', '%[1]s.peer', '%[1]s.client')", id)),
				"Writers":     sig(fmt.Sprintf("OR('%[1]s.admin', '%[1]s.client')", id)),
				"Admins":      sig(fmt.Sprintf("OR('%s.admin')", id)),
				"Endorsement": sig(fmt.Sprintf("OR('%s.peer')", id)),
			},
			AnchorPeers: anchors,
		})
	}
	profile := map[string]any{
		"Policies": map[string]policy{
			"Readers": meta("ANY Readers"),
			"Writers": meta("ANY Writers"),
			"Admins":  meta("MAJORITY Admins"),
		},
		"Capabilities": map[string]bool{"V3_0": true},
		"Orderer": map[string]any{
			"OrdererType": "etcdraft",
			"EtcdRaft": map[string]any{
				"Consenters": []map[string]any{{
					"Host": "127.0.0.1", "Port": o.port,
					"ClientTLSCert": o.tlsCert, "ServerTLSCert": o.tlsCert,
				}},
				"Options": map[string]any{
					"TickInterval": "500ms", "ElectionTick": 10, "HeartbeatTick": 1,
					"MaxInflightBlocks": 5, "SnapshotIntervalSize": "16 MB",
				},
			},
			"BatchTimeout": batchTimeout,
			"BatchSize": map[string]any{
				"MaxMessageCount":   maxMessageCount,
				"AbsoluteMaxBytes":  absoluteMaxBytes,
				"PreferredMaxBytes": preferredMaxBytes,
			},
			"Organizations": []org{ordererOrg},
			"Policies": map[string]policy{
				"Readers":         meta("ANY Readers"),
				"Writers":         meta("ANY Writers"),
				"Admins":          meta("MAJORITY Admins"),
				"BlockValidation": meta("ANY Writers"),
			},
			"Capabilities": map[string]bool{"V2_0": true},
		},
		"Application": map[string]any{
			"Organizations": appOrgs,
			"Policies": map[string]policy{
				"Readers":              meta("ANY Readers"),
				"Writers":              meta("ANY Writers"),
				"Admins":               meta("MAJORITY Admins"),
				"LifecycleEndorsement": meta(endorsement + " Endorsement"),
				"Endorsement":          meta(endorsement + " Endorsement"),
			},
			"Capabilities": map[string]bool{"V2_5": true},
		},
	}
	return writeJSON(path, map[string]any{"Profiles": map[string]any{profileName: profile}})
}

// profileName is the configtx profile of the application channel.
const profileName = "GreenpointsChannel"

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// dockerEndpointLine is the line of the sample core.yaml that points the peer
// at Docker. Environment variables cannot set vm.endpoint to "" (viper treats
// an empty variable as unset), so we edit this one line; matching its content
// rather than its indentation keeps working across core.yaml layouts.
const dockerEndpointLine = "endpoint: unix:///var/run/docker.sock"

// copySampleConfig copies name (core.yaml or orderer.yaml) from Fabric's
// sampleconfig into dir, which becomes the node's FABRIC_CFG_PATH. Everything
// else we change goes through CORE_*/ORDERER_* environment variables.
func copySampleConfig(ctx context.Context, name, dir string) error {
	mod, err := modulePath(ctx)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(mod, "sampleconfig", name))
	if err != nil {
		return fmt.Errorf("reading Fabric's sample %s: %w", name, err)
	}
	if name == "core.yaml" {
		// Without this the peer registers a Docker health check, and
		// /healthz reports 503 on a machine without Docker.
		if bytes.Count(b, []byte(dockerEndpointLine)) != 1 {
			return fmt.Errorf("Fabric's sample core.yaml has no single %q line to clear", dockerEndpointLine)
		}
		b = bytes.Replace(b, []byte(dockerEndpointLine), []byte(`endpoint: ""`), 1)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// baseEnv is our environment without any Fabric settings, so that a CORE_* or
// ORDERER_* variable in the caller's shell cannot silently reconfigure a node.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CORE_") || strings.HasPrefix(kv, "ORDERER_") ||
			strings.HasPrefix(kv, "FABRIC_") || strings.HasPrefix(kv, "CONFIGTX_") ||
			strings.HasPrefix(kv, "OSNADMIN_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// ordererEnv configures the orderer: every /var/hyperledger path moved into
// its directory, every port ours, TLS on (as in production), channel
// participation instead of a system channel.
func (n *Network) ordererEnv() []string {
	o := n.Orderer
	tls := filepath.Join(o.nodeDir, "tls")
	return append(baseEnv(),
		"FABRIC_CFG_PATH="+o.cfgDir,
		"FABRIC_LOGGING_SPEC="+nodeLogSpec,
		"FABRIC_LOGGING_FORMAT="+logFormat,
		"ORDERER_GENERAL_LISTENADDRESS=127.0.0.1",
		fmt.Sprintf("ORDERER_GENERAL_LISTENPORT=%d", o.port),
		"ORDERER_GENERAL_LOCALMSPID="+o.MSPID,
		"ORDERER_GENERAL_LOCALMSPDIR="+filepath.Join(o.nodeDir, "msp"),
		"ORDERER_GENERAL_BOOTSTRAPMETHOD=none",
		"ORDERER_GENERAL_TLS_ENABLED=true",
		"ORDERER_GENERAL_TLS_PRIVATEKEY="+filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_TLS_CERTIFICATE="+filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_TLS_ROOTCAS=["+filepath.Join(tls, "ca.crt")+"]",
		"ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="+filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="+filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_CLUSTER_ROOTCAS=["+filepath.Join(tls, "ca.crt")+"]",
		"ORDERER_CHANNELPARTICIPATION_ENABLED=true",
		"ORDERER_ADMIN_LISTENADDRESS="+o.AdminAddress,
		"ORDERER_ADMIN_TLS_ENABLED=true",
		"ORDERER_ADMIN_TLS_PRIVATEKEY="+filepath.Join(tls, "server.key"),
		"ORDERER_ADMIN_TLS_CERTIFICATE="+filepath.Join(tls, "server.crt"),
		"ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true",
		"ORDERER_ADMIN_TLS_CLIENTROOTCAS=["+filepath.Join(tls, "ca.crt")+"]",
		"ORDERER_OPERATIONS_LISTENADDRESS="+o.OperationsAddress,
		"ORDERER_METRICS_PROVIDER=prometheus",
		"ORDERER_FILELEDGER_LOCATION="+filepath.Join(o.dataDir, "ledger"),
		"ORDERER_CONSENSUS_WALDIR="+filepath.Join(o.dataDir, "etcdraft", "wal"),
		"ORDERER_CONSENSUS_SNAPDIR="+filepath.Join(o.dataDir, "etcdraft", "snapshot"),
	)
}

// peerEnv configures peer p of org: every /var/hyperledger path moved into
// its directory, every port ours, TLS on, gossip endpoints advertised so that
// service discovery (which the gateway uses) finds it.
func (n *Network) peerEnv(org *Org, p *Peer) []string {
	tls := filepath.Join(p.nodeDir, "tls")
	return append(baseEnv(),
		"FABRIC_CFG_PATH="+p.cfgDir,
		"FABRIC_LOGGING_SPEC="+nodeLogSpec,
		"FABRIC_LOGGING_FORMAT="+logFormat,
		"CORE_PEER_ID="+p.Name,
		"CORE_PEER_ADDRESS="+p.Address,
		"CORE_PEER_LISTENADDRESS="+p.Address,
		"CORE_PEER_CHAINCODEADDRESS="+p.ChaincodeAddress,
		"CORE_PEER_CHAINCODELISTENADDRESS="+p.ChaincodeAddress,
		"CORE_PEER_GOSSIP_BOOTSTRAP="+p.Address,
		"CORE_PEER_GOSSIP_EXTERNALENDPOINT="+p.Address,
		"CORE_PEER_LOCALMSPID="+org.MSPID,
		"CORE_PEER_MSPCONFIGPATH="+filepath.Join(p.nodeDir, "msp"),
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_CERT_FILE="+filepath.Join(tls, "server.crt"),
		"CORE_PEER_TLS_KEY_FILE="+filepath.Join(tls, "server.key"),
		"CORE_PEER_TLS_ROOTCERT_FILE="+filepath.Join(tls, "ca.crt"),
		"CORE_PEER_FILESYSTEMPATH="+filepath.Join(p.dataDir, "production"),
		"CORE_LEDGER_SNAPSHOTS_ROOTDIR="+filepath.Join(p.dataDir, "snapshots"),
		"CORE_OPERATIONS_LISTENADDRESS="+p.OperationsAddress,
		"CORE_METRICS_PROVIDER=prometheus",
		n.externalBuildersEnv(),
	)
}

// adminCLIEnv is the environment of the peer CLI acting as org's admin
// against peer p.
func (n *Network) adminCLIEnv(org *Org, p *Peer) []string {
	return append(baseEnv(),
		"FABRIC_CFG_PATH="+p.cfgDir,
		"FABRIC_LOGGING_SPEC=warning",
		"FABRIC_LOGGING_FORMAT="+logFormat,
		"CORE_PEER_LOCALMSPID="+org.MSPID,
		"CORE_PEER_MSPCONFIGPATH="+org.Admin.MSPDir,
		"CORE_PEER_ADDRESS="+p.Address,
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_ROOTCERT_FILE="+org.TLSRootCert,
	)
}

// Logging. Fabric's default format colours every line, which garbles the log
// tails in our errors; gRPC's own INFO lines drown everything else.
const (
	nodeLogSpec = "grpc=warning:info"
	logFormat   = "%{time:2006-01-02 15:04:05.000 MST} %{level:.4s} [%{module}] %{shortfunc} -> %{message}"
)

// pollInterval is how often Start polls a node while waiting for it.
const pollInterval = 50 * time.Millisecond
