package fabricnet

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Chaincode as a service. The peer does not build or run our chaincode: an
// external builder of ours (three shell scripts written into <Dir>/builder)
// accepts packages of type "ccaas", and its release step hands the peer the
// connection.json inside the package, so the peer dials the chaincode
// service we start. This replaces the sample core.yaml's ccaas_builder, which
// lives in Fabric's Docker images (the proxy does not serve its module).

// builderName is our external builder's name in core.yaml's chaincode.externalBuilders.
const builderName = "greenpoints-ccaas"

// ccLabel is the chaincode package's label. Every chaincode name deployed on
// a network uses the same package (so the same package id, one chaincode
// service): each name is a separate namespace of world state.
const ccLabel = "greenpoints"

// ChaincodeCommand is the package of the chaincode service DeployChaincode
// builds with go build (from the current directory, inside this module).
const ChaincodeCommand = "github.com/greenpoints/greenpoints/cmd/greenpoints-chaincode"

var builderScripts = map[string]string{
	// detect CHAINCODE_SOURCE_DIR CHAINCODE_METADATA_DIR: accept type ccaas.
	"detect": `#!/bin/sh
grep -Eq '"type"[[:space:]]*:[[:space:]]*"ccaas"' "$2/metadata.json"
`,
	// build CHAINCODE_SOURCE_DIR CHAINCODE_METADATA_DIR BUILD_OUTPUT_DIR
	"build": `#!/bin/sh
set -e
[ -f "$1/connection.json" ] || { echo "no connection.json in the package" >&2; exit 1; }
cp "$1/connection.json" "$3/connection.json"
if [ -d "$1/metadata" ]; then cp -R "$1/metadata" "$3/metadata"; fi
`,
	// release BUILD_OUTPUT_DIR RELEASE_OUTPUT_DIR
	"release": `#!/bin/sh
set -e
mkdir -p "$2/chaincode/server"
cp "$1/connection.json" "$2/chaincode/server/connection.json"
if [ -d "$1/metadata" ]; then mkdir -p "$2/statedb"; cp -R "$1/metadata/." "$2/statedb/"; fi
`,
}

func (n *Network) builderDir() string { return filepath.Join(n.Dir, "builder") }

// writeBuilder writes the external builder's bin/detect, bin/build, bin/release.
func (n *Network) writeBuilder() error {
	bin := filepath.Join(n.builderDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", bin, err)
	}
	for name, script := range builderScripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			return fmt.Errorf("writing builder %s: %w", name, err)
		}
	}
	return nil
}

// externalBuildersEnv configures the peer's external builders: ours only.
// Fabric's configuration decodes a YAML (here JSON) list from the variable.
func (n *Network) externalBuildersEnv() string {
	b, _ := json.Marshal([]map[string]any{{"name": builderName, "path": n.builderDir()}})
	return "CORE_CHAINCODE_EXTERNALBUILDERS=" + string(b)
}

// ccService is a running chaincode service.
type ccService struct {
	org       *Org // whose peers dial it; nil when it serves every peer
	packageID string
	pkgPath   string
	addr      string
	proc      *proc
}

// DeployChaincode defines chaincode name on the network's channel, served by
// our chaincode service (cmd/greenpoints-chaincode). The first call builds
// the service, packages it as a "ccaas" package, starts it and installs the
// package on the peers; every call approves the definition for each peer
// organisation and commits it, then waits until the chaincode answers on
// every peer. The endorsement policy is the topology's (dev and suite: any
// one peer; consortium: the regulator's peer AND an issuer's; trio: the
// regulator's AND BankA's). In the consortium topologies each organisation
// with peers runs its own chaincode service (its own package and package
// id), which its peers dial over mutual TLS, with key-level endorsement on.
// Deploying another name takes only the approve and commit transactions
// (a fresh, empty namespace of world state). Calls may run concurrently.
func (n *Network) DeployChaincode(ctx context.Context, name string) error {
	return n.DeployChaincodeOn(ctx, n.Channel, name)
}

// DeployChaincodeOn is DeployChaincode on channel (see CreateChannel).
func (n *Network) DeployChaincodeOn(ctx context.Context, channel, name string) error {
	began := time.Now()
	ccs, err := n.chaincodeServices(ctx)
	if err != nil {
		return err
	}
	o := n.Orderer
	ordererArgs := []string{"-o", o.Address, "--tls", "--cafile", o.TLSRootCert}
	policy := n.topo.ccPolicy
	if policy == "" {
		var peers []string
		for _, org := range n.Orgs {
			if len(org.Peers) > 0 {
				peers = append(peers, fmt.Sprintf("'%s.peer'", org.MSPID))
			}
		}
		policy = "OR(" + strings.Join(peers, ",") + ")"
	}
	def := []string{"--channelID", channel, "--name", name, "--version", "1", "--sequence", "1",
		"--signature-policy", policy}
	for _, org := range n.Orgs {
		if len(org.Peers) == 0 {
			continue
		}
		cc := ccs[""]
		if cc == nil {
			cc = ccs[org.MSPID]
		}
		args := append([]string{"lifecycle", "chaincode", "approveformyorg", "--package-id", cc.packageID}, def...)
		if _, err := n.PeerAdmin(ctx, org.Peers[0], append(args, ordererArgs...)...); err != nil {
			return err
		}
	}
	commit := append([]string{"lifecycle", "chaincode", "commit"}, def...)
	var first *Peer
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			if first == nil {
				first = p
			}
			commit = append(commit, "--peerAddresses", p.Address, "--tlsRootCertFiles", org.TLSRootCert)
		}
	}
	if first == nil {
		return fmt.Errorf("no peer to deploy chaincode %s on", name)
	}
	if _, err := n.PeerAdmin(ctx, first, append(commit, ordererArgs...)...); err != nil {
		return err
	}
	// Ready when every peer runs the chaincode: a query reaches the
	// contract (which may refuse it; its encoded error proves it ran).
	for _, org := range n.Orgs {
		cc := ccs[""]
		if cc == nil {
			cc = ccs[org.MSPID]
		}
		for _, p := range org.Peers {
			var qErr error
			err = n.waitFor(ctx, cc.proc, "chaincode "+name+" to answer on "+p.Name, func(ctx context.Context) bool {
				_, qErr = n.PeerAdmin(ctx, p, "chaincode", "query", "-C", channel, "-n", name,
					"-c", `{"Args":["GetRegistry","{}"]}`)
				return qErr == nil || strings.Contains(qErr.Error(), "gp1|")
			})
			if err != nil {
				return fmt.Errorf("%w\nlast query: %v", err, qErr)
			}
		}
	}
	n.log.InfoContext(ctx, "fabric chaincode deployed", "channel", channel, "name", name, "policy", policy,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// ChaincodePackageID returns the package id of the chaincode service of the
// first organisation with peers (the only service, except in the
// consortium topologies, where each organisation has its own package id),
// or "" before the first DeployChaincode.
func (n *Network) ChaincodePackageID() string {
	n.ccMu.Lock()
	defer n.ccMu.Unlock()
	if cc := n.ccs[""]; cc != nil {
		return cc.packageID
	}
	for _, org := range n.Orgs {
		if cc := n.ccs[org.MSPID]; cc != nil {
			return cc.packageID
		}
	}
	return ""
}

// ChaincodeService describes a running chaincode service.
type ChaincodeService struct {
	// MSPID is the organisation whose peers dial it; "" when it serves
	// every peer of the network (dev and suite).
	MSPID string
	// Address is its gRPC endpoint (host:port).
	Address string
	// PackageID is the chaincode package id its peers installed.
	PackageID string
	// TLS is true when it serves mutual TLS: its certificate is signed by
	// the organisation's TLS CA, and it accepts only clients of that CA.
	TLS bool
	// KeyEndorsement is true when the contract's key-level endorsement
	// policies become Fabric state-based endorsement policies.
	KeyEndorsement bool
}

// ChaincodeServices returns the running chaincode services in organisation
// order; none before the first DeployChaincode.
func (n *Network) ChaincodeServices() []ChaincodeService {
	n.ccMu.Lock()
	defer n.ccMu.Unlock()
	var out []ChaincodeService
	if cc := n.ccs[""]; cc != nil {
		out = append(out, ChaincodeService{Address: cc.addr, PackageID: cc.packageID})
	}
	for _, org := range n.Orgs {
		if cc := n.ccs[org.MSPID]; cc != nil {
			out = append(out, ChaincodeService{MSPID: org.MSPID, Address: cc.addr, PackageID: cc.packageID, TLS: true, KeyEndorsement: true})
		}
	}
	return out
}

// chaincodeServices returns the chaincode services, starting them (and
// installing their packages) on the first call: one for every peer ("" in
// the map), or one per organisation with peers (by MSP id).
func (n *Network) chaincodeServices(ctx context.Context) (map[string]*ccService, error) {
	n.ccMu.Lock()
	defer n.ccMu.Unlock()
	if n.ccs == nil {
		ccs, err := n.startChaincodeServices(ctx)
		if err != nil {
			return nil, err
		}
		n.ccs = ccs
	}
	return n.ccs, nil
}

func (n *Network) startChaincodeServices(ctx context.Context) (map[string]*ccService, error) {
	t := time.Now()
	dir := filepath.Join(n.Dir, "chaincode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	bin := filepath.Join(dir, "greenpoints-chaincode")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ChaincodeCommand)
	build.Env = baseEnv()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", ChaincodeCommand, err, out)
	}
	ccs := map[string]*ccService{}
	if !n.topo.ccPerOrg {
		cc, err := n.startChaincodeService(ctx, bin, nil)
		if err != nil {
			return nil, err
		}
		ccs[""] = cc
	} else {
		for _, org := range n.Orgs {
			if len(org.Peers) == 0 {
				continue
			}
			cc, err := n.startChaincodeService(ctx, bin, org)
			if err != nil {
				return nil, err
			}
			ccs[org.MSPID] = cc
		}
	}
	n.log.InfoContext(ctx, "fabric chaincode services started and installed", "services", len(ccs),
		"took", time.Since(t).Round(time.Millisecond))
	return ccs, nil
}

// startChaincodeService starts one chaincode service and installs its
// package on the peers that dial it: org's (over mutual TLS, key-level
// endorsement on), or every peer when org is nil (plain gRPC: the service
// and the peers share 127.0.0.1; key-level endorsement off).
func (n *Network) startChaincodeService(ctx context.Context, bin string, org *Org) (*ccService, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	name, label := "greenpoints-chaincode", ccLabel
	if org != nil {
		name += "-" + strings.ToLower(org.Name)
		label += "_" + strings.ToLower(org.Name)
	}
	cc := &ccService{org: org, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		pkgPath: filepath.Join(n.Dir, "chaincode", label+".tar.gz")}
	// The service's environment has no CORE_* variable (baseEnv): the
	// contract API and shim read CORE_PEER_TLS_ENABLED and friends.
	env := append(baseEnv(), "CHAINCODE_SERVER_ADDRESS="+cc.addr)
	conn := map[string]any{"address": cc.addr, "dial_timeout": "10s", "tls_required": false}
	if org != nil {
		tlsDir := filepath.Join(filepath.Dir(org.orgMSPDir), "peers", ccTLSHost+"."+org.domain, "tls")
		// The peer dials with its own TLS key pair (cryptogen's node
		// certificates allow client authentication) and trusts the org's
		// TLS CA, which signed the service's certificate; the service
		// accepts only clients of that CA.
		peerTLS := filepath.Join(org.Peers[0].nodeDir, "tls")
		var pems [3][]byte
		for i, f := range []string{filepath.Join(peerTLS, "server.key"), filepath.Join(peerTLS, "server.crt"), org.TLSRootCert} {
			if pems[i], err = os.ReadFile(f); err != nil {
				return nil, fmt.Errorf("reading chaincode TLS material: %w", err)
			}
		}
		conn["tls_required"], conn["client_auth_required"] = true, true
		conn["client_key"], conn["client_cert"], conn["root_cert"] = string(pems[0]), string(pems[1]), string(pems[2])
		env = append(env,
			"CHAINCODE_TLS_KEY="+filepath.Join(tlsDir, "server.key"),
			"CHAINCODE_TLS_CERT="+filepath.Join(tlsDir, "server.crt"),
			"CHAINCODE_TLS_CLIENT_CA="+org.TLSRootCert,
			keyEndorsementEnv+"="+keyEndorsementOn)
	}
	pkg, err := ccaasPackage(label, conn)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cc.pkgPath, pkg, 0o644); err != nil {
		return nil, fmt.Errorf("writing chaincode package: %w", err)
	}
	// The peer's package id: label and the package file's SHA-256.
	sum := sha256.Sum256(pkg)
	cc.packageID = label + ":" + hex.EncodeToString(sum[:])
	env = append(env, "CHAINCODE_ID="+cc.packageID)
	p, err := startProc(name, bin, nil, env, n.Dir, filepath.Join(n.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	n.procsMu.Lock()
	n.procs = append(n.procs, p)
	n.procsMu.Unlock()
	cc.proc = p
	if err := n.waitFor(ctx, p, name+" to listen on "+cc.addr, func(ctx context.Context) bool {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", cc.addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}); err != nil {
		return nil, err
	}
	for _, o := range n.Orgs {
		if org != nil && o != org {
			continue
		}
		for _, peer := range o.Peers {
			if _, err := n.PeerAdmin(ctx, peer, "lifecycle", "chaincode", "install", cc.pkgPath); err != nil {
				return nil, err
			}
		}
	}
	n.log.InfoContext(ctx, "fabric chaincode service started and installed", "service", name, "pid", p.PID(),
		"address", cc.addr, "package", cc.packageID)
	return cc, nil
}

// The chaincode service's key-level endorsement setting
// (chaincode/fabric/shimcc.Serve; fabricnet does not import the contract).
const (
	keyEndorsementEnv = "GREENPOINTS_KEY_ENDORSEMENT"
	keyEndorsementOn  = "issuer-and-regulator"
)

// ccaasPackage returns a chaincode package of type ccaas: metadata.json and
// code.tar.gz holding connection.json (conn: the service's address and TLS
// settings, as Fabric's ccaas builders read them).
func ccaasPackage(label string, connection map[string]any) ([]byte, error) {
	conn, err := json.Marshal(connection)
	if err != nil {
		return nil, err
	}
	code, err := targz(map[string][]byte{"connection.json": conn})
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]string{"type": "ccaas", "label": label})
	if err != nil {
		return nil, err
	}
	return targz(map[string][]byte{"metadata.json": meta, "code.tar.gz": code})
}

// targz archives files in a fixed order with fixed times, so the same
// contents give the same bytes (the same package id).
func targz(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	// metadata.json first, as the peer CLI writes it.
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
	for _, name := range names {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func rank(name string) int {
	if name == "metadata.json" {
		return 0
	}
	return 1
}
