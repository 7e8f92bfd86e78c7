package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/keys"
	"github.com/greenpoints/greenpoints/issuer"
)

// Ledger backends selectable with --ledger.
const (
	LedgerEmbedded = "embedded"
	LedgerFabric   = "fabric"
)

// BlockKeyName is the key manager name of the embedded ledger's block-signing key.
const BlockKeyName = "ledger-blocks"

// Defaults of FabricConfig: the channel and chaincode names of docs/fabric.md.
const (
	DefaultFabricChannel   = "greenpoints"
	DefaultFabricChaincode = "points"
	// DefaultFabricWaitTimeout bounds a commit's wait for FabricConfig.WaitPeers.
	DefaultFabricWaitTimeout = fabric.DefaultWaitTimeout
)

// fabricProbeTimeout bounds the start-up call that checks the Fabric
// settings (a wrong channel or an identity the channel does not know fails
// there, not at the first partner request).
const fabricProbeTimeout = 30 * time.Second

// FabricConfig is how the server reaches the points contract on a Fabric
// network (--ledger fabric): one gateway peer and the issuer's own client
// identity. The files are PEM, as cryptogen and Fabric CA write them.
type FabricConfig struct {
	PeerEndpoint  string // gateway peer, host:port (TLS)
	TLSCACertFile string // the CA the peer's TLS certificate chains to
	ServerName    string // TLS server name, when the endpoint's host is not in the peer's certificate
	MSPID         string // the issuer's organisation; its identity signs every transaction
	CertFile      string // the identity's signing certificate
	KeyFile       string // the identity's private key
	Channel       string // "" means DefaultFabricChannel
	Chaincode     string // "" means DefaultFabricChaincode
	// WaitPeers are the other organisations' endorsing peers that each
	// commit waits for until they have its block (fabric.Config.WaitPeers):
	// on a consortium, an issuer's server names the regulator's peers, so
	// that the batcher's issuance right after OpenAccounts is endorsed by
	// peers that all see the accounts. WaitPeersSpec is the same list as
	// --fabric-wait-peers writes it; resolveLedger moves its peers to
	// WaitPeers.
	WaitPeers     []FabricPeer
	WaitPeersSpec string
	WaitTimeout   time.Duration // bound of that wait per commit; 0 means DefaultFabricWaitTimeout
}

// FabricPeer is another organisation's peer, given as the gateway peer is.
type FabricPeer struct {
	Endpoint      string // host:port (TLS)
	TLSCACertFile string // the CA its TLS certificate chains to
	ServerName    string // TLS server name, when the endpoint's host is not in its certificate
}

// parseFabricPeers reads the --fabric-wait-peers form: comma-separated
// host:port[=TLS-CA-file[=server-name]], the CA defaulting to defaultCA
// (one PEM file may hold several organisations' TLS CAs).
func parseFabricPeers(spec, defaultCA string) ([]FabricPeer, error) {
	var ps []FabricPeer
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, "=", 3)
		p := FabricPeer{Endpoint: parts[0], TLSCACertFile: defaultCA}
		if len(parts) > 1 && parts[1] != "" {
			p.TLSCACertFile = parts[1]
		}
		if len(parts) > 2 {
			p.ServerName = parts[2]
		}
		if _, port, err := net.SplitHostPort(p.Endpoint); err != nil || port == "" {
			return nil, fmt.Errorf("--fabric-wait-peers: %q is not host:port[=TLS-CA-file[=server-name]] (e.g. peer0.regulator.example.com:7051=/etc/greenpoints/regulator-tlsca.pem)", item)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// LedgerBackend is an opened ledger: what the issuer submits to, and Close,
// which lets pending work finish and releases the backend's resources.
type LedgerBackend interface {
	issuer.Ledger
	Close() error
}

// resolveLedger checks the ledger settings before anything is opened and
// fills in their defaults. On Fabric the issuer's ledger identity is the
// MSP of its client certificate: a proposal signed by one organisation
// cannot claim to come from another, so IssuerMSP defaults to the Fabric
// MSP id and may not differ from it.
func (c *Config) resolveLedger() error {
	switch c.Ledger {
	case "", LedgerEmbedded:
		return nil
	case LedgerFabric:
	default:
		return fmt.Errorf("unknown ledger backend %q: use --ledger embedded or --ledger fabric", c.Ledger)
	}
	f := &c.Fabric
	var missing []string
	for _, s := range []struct{ v, flag, env string }{
		{f.PeerEndpoint, "fabric-peer", "GREENPOINTS_FABRIC_PEER"},
		{f.TLSCACertFile, "fabric-tls-ca", "GREENPOINTS_FABRIC_TLS_CA"},
		{f.MSPID, "fabric-msp-id", "GREENPOINTS_FABRIC_MSP_ID"},
		{f.CertFile, "fabric-cert", "GREENPOINTS_FABRIC_CERT"},
		{f.KeyFile, "fabric-key", "GREENPOINTS_FABRIC_KEY"},
	} {
		if s.v == "" {
			missing = append(missing, fmt.Sprintf("--%s (or %s)", s.flag, s.env))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--ledger fabric needs %s", strings.Join(missing, ", "))
	}
	if _, port, err := net.SplitHostPort(f.PeerEndpoint); err != nil || port == "" {
		return fmt.Errorf("--fabric-peer %q is not host:port (e.g. peer0.org1.example.com:7051)", f.PeerEndpoint)
	}
	switch c.IssuerMSP {
	case "":
		c.IssuerMSP = f.MSPID
	case f.MSPID:
	default:
		return fmt.Errorf("the issuer's MSP %q is not the MSP of its Fabric identity (--fabric-msp-id %q): on Fabric the issuer signs as its own organisation", c.IssuerMSP, f.MSPID)
	}
	if f.Channel == "" {
		f.Channel = DefaultFabricChannel
	}
	if f.Chaincode == "" {
		f.Chaincode = DefaultFabricChaincode
	}
	peers, err := parseFabricPeers(f.WaitPeersSpec, f.TLSCACertFile)
	if err != nil {
		return err
	}
	f.WaitPeers, f.WaitPeersSpec = append(f.WaitPeers, peers...), ""
	if f.WaitTimeout < 0 {
		return fmt.Errorf("--fabric-wait-timeout %s is negative", f.WaitTimeout)
	}
	return nil
}

// OpenLedger starts the configured ledger backend. The embedded ledger lives
// in pool and signs its blocks with km's BlockKeyName key; the Fabric client
// uses neither.
func OpenLedger(ctx context.Context, cfg Config, pool *pgxpool.Pool, km keys.Manager, log *slog.Logger) (LedgerBackend, error) {
	if err := cfg.resolveLedger(); err != nil {
		return nil, err
	}
	if cfg.Ledger == LedgerFabric {
		return openFabric(ctx, cfg.Fabric, log)
	}
	signer, id, err := km.Signer(ctx, BlockKeyName)
	if err != nil {
		return nil, fmt.Errorf("block-signing key: %w", err)
	}
	led, err := embedded.New(ctx, pool, points.New(), embedded.Options{
		Signer: signer,
		KeyID:  string(id),
		Logger: log.With("component", "ledger"),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded ledger: %w", err)
	}
	return led, nil
}

// openFabric connects to the gateway peer as the issuer's identity, reads
// the channel's height and calls the contract once, so that a peer that
// cannot be reached, a TLS CA that does not match, a certificate of another
// MSP, a channel the identity may not read or a missing chaincode stops the
// start with the reason instead of failing every batch later. The
// WaitPeers are asked for their heights too, but one that does not answer
// is only a warning: another organisation's peer being down must not keep
// the issuer's API from starting (intake queues; commits then warn and go
// on without waiting for it).
func openFabric(ctx context.Context, f FabricConfig, log *slog.Logger) (LedgerBackend, error) {
	read := func(path, flag string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		return b, nil
	}
	ca, err := read(f.TLSCACertFile, "fabric-tls-ca")
	if err != nil {
		return nil, err
	}
	cert, err := read(f.CertFile, "fabric-cert")
	if err != nil {
		return nil, err
	}
	key, err := read(f.KeyFile, "fabric-key")
	if err != nil {
		return nil, err
	}
	var waitPeers []fabric.Peer
	var waitEndpoints []string
	for _, p := range f.WaitPeers {
		pca, err := read(p.TLSCACertFile, "fabric-wait-peers")
		if err != nil {
			return nil, err
		}
		waitPeers = append(waitPeers, fabric.Peer{Endpoint: p.Endpoint, TLSRootCert: pca, ServerName: p.ServerName})
		waitEndpoints = append(waitEndpoints, p.Endpoint)
	}
	led, err := fabric.New(ctx, fabric.Config{
		PeerEndpoint: f.PeerEndpoint,
		TLSRootCert:  ca,
		ServerName:   f.ServerName,
		Identities:   map[string]fabric.Identity{f.MSPID: {Cert: cert, Key: key}},
		Channel:      f.Channel,
		Chaincode:    f.Chaincode,
		WaitPeers:    waitPeers,
		WaitTimeout:  f.WaitTimeout,
		Log:          log.With("component", "ledger"),
	})
	if err != nil {
		return nil, fmt.Errorf("fabric ledger: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, fabricProbeTimeout)
	defer cancel()
	h, err := led.Height(pctx)
	if err != nil {
		_ = led.Close()
		return nil, fmt.Errorf("fabric ledger: reading channel %s on %s as %s: %w; check --fabric-peer, --fabric-tls-ca, the identity and --fabric-channel",
			f.Channel, f.PeerEndpoint, f.MSPID, err)
	}
	// A contract answer, even a refusal (not_initialized before the
	// regulator's InitLedger), shows the chaincode is there; the gateway's
	// own failures are Internal or Unavailable.
	_, err = led.Evaluate(pctx, issuer.Proposal{Caller: f.MSPID, Function: "GetRegistry", Args: []byte(`{}`)})
	if c := apperr.CodeOf(err); err != nil && (c == apperr.Internal || c == apperr.Unavailable) {
		_ = led.Close()
		return nil, fmt.Errorf("fabric ledger: calling chaincode %s on channel %s: %w; check --fabric-chaincode", f.Chaincode, f.Channel, err)
	}
	waitHeights, err := led.WaitPeerHeights(pctx)
	if err != nil {
		log.Warn("fabric ledger: a --fabric-wait-peers peer does not answer; commits will not wait for it while that lasts",
			"component", "ledger", "err", err)
	}
	log.Info("fabric ledger connected", "component", "ledger", "peer", f.PeerEndpoint, "channel", f.Channel,
		"chaincode", f.Chaincode, "msp", f.MSPID, "height", h, "wait_peers", waitEndpoints, "wait_peer_heights", waitHeights)
	return led, nil
}
