package fabricnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultChannel is the application channel Start creates.
	DefaultChannel = "greenpoints"
	// readyTimeout bounds each wait of Start: a node's health, the Raft
	// leader, a channel join. Each takes a few seconds at most here.
	readyTimeout = 60 * time.Second
	// tempPrefix names the temporary directories of networks without a Dir.
	tempPrefix = "greenpoints-fabric-"
)

// Options configure Start.
type Options struct {
	// Dir receives the crypto material, configuration, ledgers and logs.
	// It must be empty or not exist. "" means a new temporary directory
	// that Stop removes.
	Dir string
	// Topology names the network: "dev" (one peer org with one peer, one
	// orderer org with one Raft orderer), "suite" (dev plus peerless
	// member orgs RegulatorMSP, BankAMSP, BankBMSP, AuditorMSP, CharityMSP,
	// StrangerMSP, for the contract suite), "consortium" (BankAMSP,
	// BankBMSP, RegulatorMSP and AuditorMSP each with its own peer and
	// chaincode service, CharityMSP and StrangerMSP peerless; regulator
	// AND issuer endorse) or "trio" (BankAMSP, RegulatorMSP, AuditorMSP
	// each with its own peer and chaincode service; BankA AND the
	// regulator endorse). "" means "dev". See docs/fabric.md.
	Topology string
	// Channel is the application channel's name; "" means DefaultChannel.
	Channel string
	// BinDir holds the Fabric commands, as returned by EnsureBinaries.
	BinDir string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
}

// Network is a running Fabric network started by Start. Its fields describe
// what a client needs; they must not be modified. Every path is absolute.
type Network struct {
	// Dir holds everything the network wrote; each node's log is
	// <node>.log in it.
	Dir string
	// Channel is the application channel every peer has joined.
	Channel string
	// Orderer is the ordering service.
	Orderer Orderer
	// Orgs are the peer organisations, in topology order.
	Orgs []*Org

	binDir  string
	tempDir string // removed by Stop; "" when the caller owns Dir
	log     *slog.Logger
	topo    topology

	procs    []*proc    // in start order; Stop goes backwards
	procsMu  sync.Mutex // guards procs appended after Start (the chaincode service)
	ccMu     sync.Mutex
	ccs      map[string]*ccService // chaincode services by org MSP id ("" when one serves all), once DeployChaincode started them
	stopOnce sync.Once
	stopErr  error
}

// Orderer describes the (single, Raft) orderer node and its organisation.
type Orderer struct {
	// MSPID is the orderer organisation's MSP id.
	MSPID string
	// Address is the orderer's gRPC endpoint (host:port, TLS).
	Address string
	// AdminAddress is the channel participation API (osnadmin; mutual TLS).
	AdminAddress string
	// OperationsAddress serves /healthz and /metrics over plain HTTP.
	OperationsAddress string
	// TLSRootCert is the orderer organisation's TLS CA certificate (PEM).
	TLSRootCert string
	// Admin is the orderer organisation's admin, for osnadmin.
	Admin Identity

	port      int
	tlsCert   string // the node's TLS certificate, also its Raft identity
	orgMSPDir string
	nodeDir   string // cryptogen's directory for the node (msp, tls)
	cfgDir    string // FABRIC_CFG_PATH
	dataDir   string
}

// Org is a peer organisation.
type Org struct {
	// Name is the organisation's short name in the topology.
	Name string
	// MSPID is its MSP id, which the contract sees as the caller's org.
	MSPID string
	// TLSRootCert is the organisation's TLS CA certificate (PEM): what a
	// client trusts when dialing its peers.
	TLSRootCert string
	// Admin is the organisation's admin (channel joins, chaincode lifecycle).
	Admin Identity
	// User is an ordinary client identity of the organisation.
	User Identity
	// Peers are the organisation's peers.
	Peers []*Peer

	orgMSPDir string
	domain    string
}

// Identity is an enrolled identity made by cryptogen.
type Identity struct {
	// MSPDir is its MSP directory (signcerts, keystore, cacerts, config.yaml).
	MSPDir string
	// Cert is its signing certificate (PEM).
	Cert string
	// Key is its private key (PKCS#8 PEM).
	Key string
	// TLSCert and TLSKey are its TLS client certificate and key, for mutual
	// TLS (osnadmin).
	TLSCert, TLSKey string
}

// Peer is one peer node.
type Peer struct {
	// Name is the peer's id, e.g. peer0.org1.greenpoints.test; its TLS
	// certificate names it and 127.0.0.1.
	Name string
	// Address is its gRPC endpoint (host:port, TLS): endorsement, gateway,
	// deliver.
	Address string
	// ChaincodeAddress is where chaincode connects to it.
	ChaincodeAddress string
	// OperationsAddress serves /healthz and /metrics over plain HTTP.
	OperationsAddress string

	port    int
	nodeDir string
	cfgDir  string
	dataDir string
}

// Start generates crypto material and configuration into opts.Dir, starts the
// orderer and the peers on free ports of 127.0.0.1, creates the channel on the
// orderer, waits for its Raft leader and joins every peer to it. On error
// everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Network, err error) {
	began := time.Now()
	log := orDiscard(opts.Log)
	if opts.Topology == "" {
		opts.Topology = "dev"
	}
	topo, ok := topologies[opts.Topology]
	if !ok {
		return nil, fmt.Errorf("unknown Fabric topology %q (known: %s)", opts.Topology, strings.Join(slices.Sorted(maps.Keys(topologies)), ", "))
	}
	if opts.BinDir == "" {
		return nil, errors.New("fabricnet.Start: Options.BinDir is empty; get it from EnsureBinaries")
	}
	for _, name := range Commands {
		if _, err := os.Stat(filepath.Join(opts.BinDir, name)); err != nil {
			return nil, fmt.Errorf("no Fabric %s in %s; get BinDir from EnsureBinaries", name, opts.BinDir)
		}
	}
	n := &Network{Channel: opts.Channel, binDir: opts.BinDir, log: log, topo: topo}
	if n.Channel == "" {
		n.Channel = DefaultChannel
	}
	if n.Dir, n.tempDir, err = prepareDir(opts.Dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Stop(context.WithoutCancel(ctx))
		}
	}()
	if err := n.layout(topo); err != nil {
		return nil, err
	}
	if err := n.generate(ctx, topo); err != nil {
		return nil, err
	}
	if err := n.startOrderer(ctx); err != nil {
		return nil, err
	}
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			if err := n.startPeer(ctx, org, p); err != nil {
				return nil, err
			}
		}
	}
	log.InfoContext(ctx, "fabric network started", "topology", opts.Topology, "channel", n.Channel,
		"orderer", n.Orderer.Address, "peers", n.peerAddresses(), "dir", n.Dir,
		"took", time.Since(began).Round(time.Millisecond))
	return n, nil
}

// prepareDir returns the absolute network directory, creating a temporary
// one (also returned as temp) when dir is "". A non-empty dir is refused:
// cryptogen would mix old and new material.
func prepareDir(dir string) (abs, temp string, err error) {
	if dir == "" {
		temp, err = os.MkdirTemp("", tempPrefix)
		if err != nil {
			return "", "", fmt.Errorf("creating temporary directory: %w", err)
		}
		return temp, temp, nil
	}
	if abs, err = filepath.Abs(dir); err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", "", fmt.Errorf("creating %s: %w", abs, err)
		}
	case err != nil:
		return "", "", fmt.Errorf("reading %s: %w", abs, err)
	case len(entries) > 0:
		return "", "", fmt.Errorf("network directory %s is not empty; remove it or choose another", abs)
	}
	return abs, "", nil
}

// layout fills in names, paths and ports from the topology.
func (n *Network) layout(topo topology) error {
	nPorts := 3 // orderer: listen, admin, operations
	for _, o := range topo.peerOrgs {
		nPorts += 3 * o.peers // peer: listen, chaincode, operations
	}
	ports, err := freePorts(nPorts)
	if err != nil {
		return err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	crypto := filepath.Join(n.Dir, "crypto")
	od := filepath.Join(crypto, "ordererOrganizations", topo.orderer.domain)
	oname := "orderer." + topo.orderer.domain
	n.Orderer = Orderer{
		MSPID:       topo.orderer.mspID,
		TLSRootCert: filepath.Join(od, "tlsca", "tlsca."+topo.orderer.domain+"-cert.pem"),
		Admin:       identity(od, "Admin@"+topo.orderer.domain),
		orgMSPDir:   filepath.Join(od, "msp"),
		nodeDir:     filepath.Join(od, "orderers", oname),
		cfgDir:      filepath.Join(n.Dir, "nodes", oname, "config"),
		dataDir:     filepath.Join(n.Dir, "nodes", oname, "data"),
	}
	n.Orderer.tlsCert = filepath.Join(n.Orderer.nodeDir, "tls", "server.crt")
	n.Orderer.port = next()
	n.Orderer.Address = addr(n.Orderer.port)
	n.Orderer.AdminAddress = addr(next())
	n.Orderer.OperationsAddress = addr(next())

	for _, spec := range topo.peerOrgs {
		pd := filepath.Join(crypto, "peerOrganizations", spec.domain)
		org := &Org{
			Name:        spec.name,
			MSPID:       spec.mspID,
			TLSRootCert: filepath.Join(pd, "tlsca", "tlsca."+spec.domain+"-cert.pem"),
			Admin:       identity(pd, "Admin@"+spec.domain),
			User:        identity(pd, "User1@"+spec.domain),
			orgMSPDir:   filepath.Join(pd, "msp"),
			domain:      spec.domain,
		}
		for i := range spec.peers {
			name := fmt.Sprintf("peer%d.%s", i, spec.domain)
			p := &Peer{
				Name:    name,
				nodeDir: filepath.Join(pd, "peers", name),
				cfgDir:  filepath.Join(n.Dir, "nodes", name, "config"),
				dataDir: filepath.Join(n.Dir, "nodes", name, "data"),
			}
			p.port = next()
			p.Address = addr(p.port)
			p.ChaincodeAddress = addr(next())
			p.OperationsAddress = addr(next())
			org.Peers = append(org.Peers, p)
		}
		n.Orgs = append(n.Orgs, org)
	}
	return nil
}

// identity returns the paths of user's material in cryptogen's org
// directory. The key's file name (priv_sk) is cryptogen's since Fabric 2.0.
func identity(orgDir, user string) Identity {
	dir := filepath.Join(orgDir, "users", user)
	return Identity{
		MSPDir:  filepath.Join(dir, "msp"),
		Cert:    filepath.Join(dir, "msp", "signcerts", user+"-cert.pem"),
		Key:     filepath.Join(dir, "msp", "keystore", "priv_sk"),
		TLSCert: filepath.Join(dir, "tls", "client.crt"),
		TLSKey:  filepath.Join(dir, "tls", "client.key"),
	}
}

// generate runs cryptogen and configtxgen and writes the nodes' configuration.
func (n *Network) generate(ctx context.Context, topo topology) error {
	t := time.Now()
	cryptoCfg := filepath.Join(n.Dir, "crypto-config.yaml")
	if err := writeCryptoConfig(cryptoCfg, topo); err != nil {
		return err
	}
	if _, err := n.run(ctx, nil, "cryptogen", "generate", "--config", cryptoCfg, "--output", filepath.Join(n.Dir, "crypto")); err != nil {
		return err
	}
	for _, id := range n.identities() {
		for _, f := range []string{id.Cert, id.Key, id.TLSCert, id.TLSKey} {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("cryptogen did not write %s (has its layout changed?)", f)
			}
		}
	}
	txDir := filepath.Join(n.Dir, "configtx")
	if err := os.MkdirAll(txDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", txDir, err)
	}
	if err := writeConfigtx(filepath.Join(txDir, "configtx.yaml"), n, topo); err != nil {
		return err
	}
	if _, err := n.run(ctx, []string{"FABRIC_CFG_PATH=" + txDir}, "configtxgen", "-profile", profileName,
		"-channelID", n.Channel, "-outputBlock", n.genesisBlock()); err != nil {
		return err
	}
	if err := n.writeBuilder(); err != nil {
		return err
	}
	if err := copySampleConfig(ctx, "orderer.yaml", n.Orderer.cfgDir); err != nil {
		return err
	}
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			if err := copySampleConfig(ctx, "core.yaml", p.cfgDir); err != nil {
				return err
			}
		}
	}
	n.log.InfoContext(ctx, "fabric crypto material and channel block generated", "took", time.Since(t).Round(time.Millisecond))
	return nil
}

func (n *Network) identities() []Identity {
	ids := []Identity{n.Orderer.Admin}
	for _, org := range n.Orgs {
		ids = append(ids, org.Admin, org.User)
	}
	return ids
}

func (n *Network) genesisBlock() string {
	return filepath.Join(n.Dir, "configtx", n.Channel+".block")
}

// startOrderer starts the orderer, joins it to the channel through the
// channel participation API and waits until it is the channel's Raft leader:
// transactions sent before that are rejected.
func (n *Network) startOrderer(ctx context.Context) error {
	o := &n.Orderer
	name := filepath.Base(o.nodeDir)
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.dataDir, err)
	}
	p, err := n.launch(ctx, name, "orderer", nil, n.ordererEnv(), o.OperationsAddress,
		tlsListener{addr: o.Address, rootCA: o.TLSRootCert},
		tlsListener{addr: o.AdminAddress, rootCA: o.TLSRootCert, client: &o.Admin})
	if err != nil {
		return err
	}
	if _, err := n.run(ctx, nil, "osnadmin", "channel", "join", "--channelID", n.Channel,
		"--config-block", n.genesisBlock(), "-o", o.AdminAddress, "--ca-file", o.TLSRootCert,
		"--client-cert", o.Admin.TLSCert, "--client-key", o.Admin.TLSKey); err != nil {
		return err
	}
	leader := fmt.Sprintf(`consensus_etcdraft_is_leader{channel="%s"} 1`, n.Channel)
	err = n.waitFor(ctx, p, "the channel's Raft leader", func(ctx context.Context) bool {
		body, ok := httpGet(ctx, "http://"+o.OperationsAddress+"/metrics")
		return ok && strings.Contains(body, leader)
	})
	if err != nil {
		return err
	}
	n.log.InfoContext(ctx, "fabric orderer is the Raft leader", "channel", n.Channel)
	return nil
}

// startPeer starts peer p and joins it to the channel as org's admin.
func (n *Network) startPeer(ctx context.Context, org *Org, p *Peer) error {
	if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p.dataDir, err)
	}
	pr, err := n.launch(ctx, p.Name, "peer", []string{"node", "start"}, n.peerEnv(org, p), p.OperationsAddress,
		tlsListener{addr: p.Address, rootCA: org.TLSRootCert})
	if err != nil {
		return err
	}
	// /healthz and the gRPC port answer before the peer serves gRPC, so the
	// first join attempts may fail to connect: retry those.
	var joinErr error
	err = n.waitFor(ctx, pr, p.Name+" to join the channel", func(ctx context.Context) bool {
		_, joinErr = n.PeerAdmin(ctx, p, "channel", "join", "-b", n.genesisBlock())
		return joinErr == nil || !strings.Contains(joinErr.Error(), "failed to connect")
	})
	switch {
	case err != nil && joinErr != nil:
		return fmt.Errorf("%w\nlast attempt: %v", err, joinErr)
	case err != nil:
		return err
	case joinErr != nil:
		return joinErr
	}
	// The join block is block 0: once the peer has committed it, the
	// channel's height is 1.
	return n.waitFor(ctx, pr, p.Name+" to commit the channel's first block", func(ctx context.Context) bool {
		h, err := n.ChannelHeight(ctx, p)
		return err == nil && h >= 1
	})
}

// launch starts a node and waits until its operations /healthz answers 200 and
// it completes TLS handshakes on listeners.
func (n *Network) launch(ctx context.Context, name, cmd string, args, env []string, opsAddr string, listeners ...tlsListener) (*proc, error) {
	p, err := startProc(name, filepath.Join(n.binDir, cmd), args, env, n.Dir, filepath.Join(n.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, p)
	n.log.InfoContext(ctx, "fabric node starting", "node", name, "pid", p.PID(), "log", p.logPath)
	err = n.waitFor(ctx, p, name+" to report healthy", func(ctx context.Context) bool {
		_, ok := httpGet(ctx, "http://"+opsAddr+"/healthz")
		return ok
	})
	// The operations server starts first; wait for the TLS listeners too. A
	// full handshake, because the nodes log a bare TCP probe as an error.
	for _, l := range listeners {
		if err != nil {
			break
		}
		err = n.waitFor(ctx, p, name+" to listen on "+l.addr, func(ctx context.Context) bool {
			return tlsProbe(ctx, l) == nil
		})
	}
	return p, err
}

// tlsListener is a node's TLS endpoint: where, whom it presents, and the
// client certificate it demands (or nil).
type tlsListener struct {
	addr   string
	rootCA string
	client *Identity
}

// tlsProbe completes a TLS handshake with l and closes the connection.
func tlsProbe(ctx context.Context, l tlsListener) error {
	cfg, err := tlsConfig(l.rootCA, l.client)
	if err != nil {
		return err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// tlsConfig trusts the CA certificate at rootCA and, when client is not nil,
// presents its TLS certificate. Node certificates name 127.0.0.1.
func tlsConfig(rootCA string, client *Identity) (*tls.Config, error) {
	pem, err := os.ReadFile(rootCA)
	if err != nil {
		return nil, fmt.Errorf("reading TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", rootCA)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		cert, err := tls.LoadX509KeyPair(client.TLSCert, client.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("loading TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// waitFor polls cond until it holds, failing early (with the log's tail) when
// p exits.
func (n *Network) waitFor(ctx context.Context, p *proc, what string, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if cond(ctx) {
			return nil
		}
		if gone, waitErr := p.Exited(); gone {
			return fmt.Errorf("%s exited (%v) while waiting for %s; log %s:\n%s", p.name, waitErr, what, p.logPath, logTail(p.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w; log %s:\n%s", what, ctx.Err(), p.logPath, logTail(p.logPath, 20))
		case <-time.After(pollInterval):
		}
	}
}

// httpGet returns the body of a 200 response, or false.
func httpGet(ctx context.Context, url string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b), err == nil && resp.StatusCode == http.StatusOK
}

// run runs a Fabric command to completion and returns its standard output.
// extraEnv is added to an environment without Fabric settings.
func (n *Network) run(ctx context.Context, extraEnv []string, cmd string, args ...string) ([]byte, error) {
	return n.runEnv(ctx, append(baseEnv(), extraEnv...), cmd, args...)
}

func (n *Network) runEnv(ctx context.Context, env []string, cmd string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, filepath.Join(n.binDir, cmd), args...)
	c.Env = env
	c.Dir = n.Dir
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", cmd, strings.Join(args, " "), err,
			tail([]byte(stderr.String()+string(out)), 15))
	}
	return out, nil
}

// PeerAdmin runs the peer CLI with args against peer p, as the admin of p's
// organisation (for channel joins, chaincode lifecycle and queries), and
// returns its standard output.
func (n *Network) PeerAdmin(ctx context.Context, p *Peer, args ...string) ([]byte, error) {
	org := n.orgOf(p)
	if org == nil {
		return nil, fmt.Errorf("peer %s is not part of this network", p.Name)
	}
	return n.runEnv(ctx, n.adminCLIEnv(org, p), "peer", args...)
}

// ChannelHeight returns the height of the channel's chain on peer p (the
// number of blocks it has committed), from `peer channel getinfo`.
func (n *Network) ChannelHeight(ctx context.Context, p *Peer) (uint64, error) {
	return n.ChannelHeightOf(ctx, p, n.Channel)
}

// ChannelHeightOf is ChannelHeight for another channel.
func (n *Network) ChannelHeightOf(ctx context.Context, p *Peer, channel string) (uint64, error) {
	out, err := n.PeerAdmin(ctx, p, "channel", "getinfo", "-c", channel)
	if err != nil {
		return 0, err
	}
	// It prints "Blockchain info: {json}".
	s := string(out)
	i := strings.Index(s, "{")
	if i < 0 {
		return 0, fmt.Errorf("peer channel getinfo printed no blockchain info: %q", s)
	}
	var info struct {
		Height uint64 `json:"height"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(s[i:])), &info); err != nil {
		return 0, fmt.Errorf("parsing peer channel getinfo output %q: %w", s, err)
	}
	return info.Height, nil
}

func (n *Network) orgOf(p *Peer) *Org {
	for _, org := range n.Orgs {
		if slices.Contains(org.Peers, p) {
			return org
		}
	}
	return nil
}

func (n *Network) peerAddresses() []string {
	var addrs []string
	for _, org := range n.Orgs {
		for _, p := range org.Peers {
			addrs = append(addrs, p.Address)
		}
	}
	return addrs
}

// PIDs returns the process ids of the running nodes, in start order.
func (n *Network) PIDs() []int {
	n.procsMu.Lock()
	defer n.procsMu.Unlock()
	pids := make([]int, len(n.procs))
	for i, p := range n.procs {
		pids[i] = p.PID()
	}
	return pids
}

// Stop stops every node, peers first, each with SIGTERM and, after 15 s or
// when ctx ends, SIGKILL to its process group; then it removes the temporary
// directory, if Start made one. Stop is idempotent: later calls return the
// first call's result.
func (n *Network) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.stop(ctx) })
	return n.stopErr
}

func (n *Network) stop(ctx context.Context) error {
	var errs []error
	n.procsMu.Lock()
	procs := slices.Clone(n.procs)
	n.procsMu.Unlock()
	for _, p := range slices.Backward(procs) {
		if err := p.stop(ctx, n.log); err != nil {
			errs = append(errs, err)
		}
	}
	if n.tempDir != "" {
		if err := os.RemoveAll(n.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", n.tempDir, err))
		}
	}
	n.log.Info("fabric network stopped", "dir", n.Dir)
	return errors.Join(errs...)
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All listeners are
// held until every port is chosen, so the kernel does not hand one out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
