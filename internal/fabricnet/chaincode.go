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

// ccService is the running chaincode service.
type ccService struct {
	packageID string
	pkgPath   string
	addr      string
	proc      *proc
}

// DeployChaincode defines chaincode name on the network's channel, served by
// our chaincode service (cmd/greenpoints-chaincode). The first call builds
// the service, packages it as a "ccaas" package, starts it and installs the
// package on every peer; every call approves the definition for each peer
// organisation and commits it, then waits until the chaincode answers. The
// endorsement policy is any one peer of the peer organisations. Deploying
// another name takes only the approve and commit transactions (a fresh,
// empty namespace of world state). Calls may run concurrently.
func (n *Network) DeployChaincode(ctx context.Context, name string) error {
	return n.DeployChaincodeOn(ctx, n.Channel, name)
}

// DeployChaincodeOn is DeployChaincode on channel (see CreateChannel).
func (n *Network) DeployChaincodeOn(ctx context.Context, channel, name string) error {
	began := time.Now()
	cc, err := n.chaincodeService(ctx)
	if err != nil {
		return err
	}
	o := n.Orderer
	ordererArgs := []string{"-o", o.Address, "--tls", "--cafile", o.TLSRootCert}
	var policy []string
	for _, org := range n.Orgs {
		if len(org.Peers) > 0 {
			policy = append(policy, fmt.Sprintf("'%s.peer'", org.MSPID))
		}
	}
	def := []string{"--channelID", channel, "--name", name, "--version", "1", "--sequence", "1",
		"--signature-policy", "OR(" + strings.Join(policy, ",") + ")"}
	for _, org := range n.Orgs {
		if len(org.Peers) == 0 {
			continue
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
	// Ready when the peer runs the chaincode: a query reaches the contract
	// (which may refuse it; its encoded error proves it ran).
	var qErr error
	err = n.waitFor(ctx, cc.proc, "chaincode "+name+" to answer", func(ctx context.Context) bool {
		_, qErr = n.PeerAdmin(ctx, first, "chaincode", "query", "-C", channel, "-n", name,
			"-c", `{"Args":["GetRegistry","{}"]}`)
		return qErr == nil || strings.Contains(qErr.Error(), "gp1|")
	})
	if err != nil {
		return fmt.Errorf("%w\nlast query: %v", err, qErr)
	}
	n.log.InfoContext(ctx, "fabric chaincode deployed", "channel", channel, "name", name, "package", cc.packageID,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// ChaincodePackageID returns the package id of the chaincode service, or ""
// before the first DeployChaincode.
func (n *Network) ChaincodePackageID() string {
	n.ccMu.Lock()
	defer n.ccMu.Unlock()
	if n.cc == nil {
		return ""
	}
	return n.cc.packageID
}

// chaincodeService returns the chaincode service, starting it (and
// installing its package) on the first call.
func (n *Network) chaincodeService(ctx context.Context) (*ccService, error) {
	n.ccMu.Lock()
	defer n.ccMu.Unlock()
	if n.cc == nil {
		cc, err := n.startChaincodeService(ctx)
		if err != nil {
			return nil, err
		}
		n.cc = cc
	}
	return n.cc, nil
}

func (n *Network) startChaincodeService(ctx context.Context) (*ccService, error) {
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
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	cc := &ccService{addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), pkgPath: filepath.Join(dir, ccLabel+".tar.gz")}
	pkg, err := ccaasPackage(ccLabel, cc.addr)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cc.pkgPath, pkg, 0o644); err != nil {
		return nil, fmt.Errorf("writing chaincode package: %w", err)
	}
	// The peer's package id: label and the package file's SHA-256.
	sum := sha256.Sum256(pkg)
	cc.packageID = ccLabel + ":" + hex.EncodeToString(sum[:])
	// The service's environment has no CORE_* variable (baseEnv): the
	// contract API and shim read CORE_PEER_TLS_ENABLED and friends.
	env := append(baseEnv(), "CHAINCODE_SERVER_ADDRESS="+cc.addr, "CHAINCODE_ID="+cc.packageID)
	name := "greenpoints-chaincode"
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
	for _, org := range n.Orgs {
		for _, peer := range org.Peers {
			if _, err := n.PeerAdmin(ctx, peer, "lifecycle", "chaincode", "install", cc.pkgPath); err != nil {
				return nil, err
			}
		}
	}
	n.log.InfoContext(ctx, "fabric chaincode service started and installed", "pid", p.PID(), "address", cc.addr,
		"package", cc.packageID, "took", time.Since(t).Round(time.Millisecond))
	return cc, nil
}

// ccaasPackage returns a chaincode package of type ccaas: metadata.json and
// code.tar.gz holding connection.json (plain gRPC: the service and the peer
// share 127.0.0.1).
func ccaasPackage(label, addr string) ([]byte, error) {
	conn, err := json.Marshal(map[string]any{"address": addr, "dial_timeout": "10s", "tls_required": false})
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
