// Command greenpoints-fabric runs a development Fabric network on this
// machine that outlives the command starting it (make fabric-up and make
// fabric-down):
//
//	greenpoints-fabric up   [--dir .data/fabric] [--topology suite]
//	greenpoints-fabric down [--dir .data/fabric]
//
// A Fabric node started by internal/fabricnet dies with the process that
// started it (a parent-death signal, so a crashed test leaves nothing
// behind). So "up" starts this command again as a detached daemon ("run"),
// which starts the network, deploys the points chaincode, writes what a
// client needs and waits for SIGTERM; "down" sends it SIGTERM by the PID in
// its PID file and waits until it has stopped every node.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/fabricnet"
	"github.com/greenpoints/greenpoints/issuer"
)

// The files under --dir.
const (
	pidFile   = "greenpoints-fabric.pid" // the daemon's PID, while it runs
	readyFile = "connection.txt"         // what up prints, written once the chaincode answers
	logFile   = "greenpoints-fabric.log" // the daemon's log
	netDir    = "network"                // fabricnet's directory: crypto, configuration, ledgers, node logs
)

// Bounds of up and down. Starting includes building the Fabric binaries on
// a cold cache (about 80 s here) and the chaincode service.
const (
	upTimeout   = 15 * time.Minute
	downTimeout = 2 * time.Minute
	pollEvery   = 200 * time.Millisecond
)

// The identities printed: the issuer's server signs as issuerMSP, the
// regulator's onboarding commands as regulatorMSP. Every topology with a
// regulator has both (suite, consortium, trio).
const (
	issuerMSP    = "BankAMSP"
	regulatorMSP = "RegulatorMSP"
	auditorMSP   = "AuditorMSP" // its peer reads; it endorses nothing
	chaincode    = "points"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "greenpoints-fabric: %v\n", err)
		}
		os.Exit(1)
	}
}

const usage = `Usage: greenpoints-fabric up|down [--dir DIR] [--topology NAME]

  up     start the development Fabric network in the background (idempotent)
         and print the flags of 'greenpoints serve --ledger fabric' and of the
         onboarding commands ('greenpoints ledger ...')
  down   stop it (idempotent); its files stay in DIR until the next up
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no subcommand")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	dir := fs.String("dir", ".data/fabric", "directory of the network's files, PID file and log")
	topology := fs.String("topology", "suite", "fabricnet topology; it must have RegulatorMSP and BankAMSP (suite, consortium, trio)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		return up(ctx, abs, *topology, stdout)
	case "down":
		return down(abs, stdout)
	case "run":
		return daemon(ctx, abs, *topology)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// running returns the PID of the daemon serving dir, or 0. A PID file whose
// process is gone, or is not this command (the PID was reused), is stale.
func running(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !alive(pid) {
		return 0
	}
	return pid
}

// alive reports whether pid is a running greenpoints-fabric process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no /proc: trust kill
	}
	// A zombie (exited, not yet reaped by init) has an empty command line.
	return bytes.Contains(cmdline, []byte("greenpoints-fabric"))
}

// up starts the daemon unless it runs, waits until the network serves the
// chaincode, and prints how to use it.
func up(ctx context.Context, dir, topology string, stdout io.Writer) error {
	if pid := running(dir); pid != 0 {
		info, err := os.ReadFile(filepath.Join(dir, readyFile))
		if err != nil {
			return fmt.Errorf("the network of %s is starting (pid %d); run up again in a moment, or down", dir, pid)
		}
		fmt.Fprintf(stdout, "The Fabric dev network is already up (pid %d).\n\n%s", pid, info)
		return nil
	}
	// A network cannot resume from its files yet (ports, chaincode service):
	// a stopped one's files are replaced by a fresh network's.
	if _, err := os.Stat(filepath.Join(dir, netDir)); err == nil {
		fmt.Fprintf(stdout, "Discarding the stopped network's files in %s: up starts a fresh network (use a fresh database with it).\n", filepath.Join(dir, netDir))
		if err := os.RemoveAll(filepath.Join(dir, netDir)); err != nil {
			return err
		}
	}
	for _, f := range []string{readyFile, pidFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "run", "--dir", dir, "--topology", topology)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a Ctrl-C or the end of the shell that ran up does not
	// reach it; only down (or kill) stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the network daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(stdout, "Starting the Fabric dev network (topology %s, pid %d, log %s)...\n", topology, cmd.Process.Pid, filepath.Join(dir, logFile))
	deadline := time.NewTimer(upTimeout)
	defer deadline.Stop()
	for {
		if info, err := os.ReadFile(filepath.Join(dir, readyFile)); err == nil {
			fmt.Fprintf(stdout, "The Fabric dev network is up (pid %d).\n\n%s", cmd.Process.Pid, info)
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the network daemon exited (%v); its log %s ends:\n%s", err, filepath.Join(dir, logFile), tail(filepath.Join(dir, logFile), 20))
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the network was not up within %s; stopped it; see %s", upTimeout, filepath.Join(dir, logFile))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// down stops the daemon by its PID and waits until it has exited (it stops
// the nodes first).
func down(dir string, stdout io.Writer) error {
	pid := running(dir)
	if pid == 0 {
		_ = os.Remove(filepath.Join(dir, pidFile))
		fmt.Fprintf(stdout, "The Fabric dev network of %s is not running.\n", dir)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(downTimeout)
	// Until the process is gone, not only its PID file: it removes that
	// file just before it exits.
	for alive(pid) {
		if time.Now().After(deadline) {
			// Its nodes get SIGTERM from the kernel when it dies.
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("pid %d did not stop within %s; killed it; see %s", pid, downTimeout, filepath.Join(dir, logFile))
		}
		time.Sleep(pollEvery)
	}
	fmt.Fprintf(stdout, "The Fabric dev network (pid %d) is stopped; its files stay in %s until the next up.\n", pid, dir)
	return nil
}

// daemon runs the network until SIGTERM or SIGINT (ctx).
func daemon(ctx context.Context, dir, topology string) (err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	pidPath := filepath.Join(dir, pidFile)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidPath)
	defer os.Remove(filepath.Join(dir, readyFile))
	start, cancel := context.WithTimeout(ctx, upTimeout)
	defer cancel()
	binDir, err := fabricnet.EnsureBinaries(start, os.Getenv("GREENPOINTS_FABRIC_CACHE"), log)
	if err != nil {
		return err
	}
	nw, err := fabricnet.Start(start, fabricnet.Options{Dir: filepath.Join(dir, netDir), Topology: topology, BinDir: binDir, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		if serr := nw.Stop(context.Background()); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := nw.DeployChaincode(start, chaincode); err != nil {
		return err
	}
	if err := waitEndorsable(start, nw, log); err != nil {
		return err
	}
	info, err := connectionText(nw)
	if err != nil {
		return err
	}
	// Written whole, then renamed: up never reads half of it.
	tmp := filepath.Join(dir, readyFile+".tmp")
	if err := os.WriteFile(tmp, []byte(info), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, readyFile)); err != nil {
		return err
	}
	log.Info("fabric dev network up; waiting for SIGTERM", "pid", os.Getpid())
	<-ctx.Done()
	log.Info("stopping the fabric dev network")
	return nil
}

// waitEndorsable waits until the regulator's first transaction can be
// endorsed: with several endorsing organisations (trio, consortium) the
// gateway learns the other organisations' peers through service discovery
// a few seconds after the start, and until then answers "no combination of
// peers can be derived which satisfy the endorsement policy". InitLedger is
// endorsed only, never submitted; the contract's answer, even a refusal,
// means the endorsers were found.
func waitEndorsable(ctx context.Context, nw *fabricnet.Network, log *slog.Logger) error {
	var reg, gw *fabricnet.Org
	for _, o := range nw.Orgs {
		if o.MSPID == regulatorMSP {
			reg = o
		}
		if gw == nil && len(o.Peers) > 0 {
			gw = o
		}
	}
	if reg == nil || gw == nil {
		return fmt.Errorf("the topology has no %s or no peer: choose suite, consortium or trio", regulatorMSP)
	}
	if len(reg.Peers) > 0 {
		gw = reg
	}
	read := func(path string) []byte { b, _ := os.ReadFile(path); return b }
	l, err := fabric.New(ctx, fabric.Config{PeerEndpoint: gw.Peers[0].Address, TLSRootCert: read(gw.TLSRootCert),
		Identities: map[string]fabric.Identity{reg.MSPID: {Cert: read(reg.User.Cert), Key: read(reg.User.Key)}},
		Channel:    nw.Channel, Chaincode: chaincode})
	if err != nil {
		return err
	}
	defer l.Close()
	args := []byte(`{"regulatorMsp":"` + regulatorMSP + `"}`)
	for {
		_, err := l.Endorse(ctx, issuer.Proposal{Caller: reg.MSPID, Function: "InitLedger", Args: args})
		if c := apperr.CodeOf(err); err == nil || (c != apperr.Internal && c != apperr.Unavailable) {
			return nil
		}
		log.Info("waiting for the endorsing peers to be discovered", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("no endorsement of the regulator's first transaction: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// connectionText says how the issuer's server and the regulator's
// onboarding commands reach the network.
func connectionText(nw *fabricnet.Network) (string, error) {
	orgs := map[string]*fabricnet.Org{}
	var first *fabricnet.Org
	for _, o := range nw.Orgs {
		orgs[o.MSPID] = o
		if first == nil && len(o.Peers) > 0 {
			first = o
		}
	}
	bank, reg := orgs[issuerMSP], orgs[regulatorMSP]
	if bank == nil || reg == nil || first == nil {
		return "", fmt.Errorf("the topology has no %s or %s, or no peer: choose suite, consortium or trio", issuerMSP, regulatorMSP)
	}
	// Each organisation submits through its own peer when it has one (in
	// production it always does); in the suite topology through Org1's.
	gateway := func(o *fabricnet.Org) string {
		if len(o.Peers) == 0 {
			o = first
		}
		return fmt.Sprintf("--fabric-peer %s --fabric-tls-ca %s", o.Peers[0].Address, o.TLSRootCert)
	}
	ident := func(o *fabricnet.Org) string {
		return fmt.Sprintf("--fabric-msp-id %s --fabric-cert %s --fabric-key %s", o.MSPID, o.User.Cert, o.User.Key)
	}
	// Where other organisations' peers endorse with o's transactions (the
	// consortium topologies: issuer AND regulator), o's commands wait after
	// each commit until those peers have the block, so that the next
	// command's transaction is endorsed by peers that all see it
	// (docs/fabric.md §3.1): the issuer waits for the regulator's peers,
	// the regulator for the issuers'. On suite, everyone's gateway is
	// Org1's peer, the only one: nothing to wait for.
	wait := func(o *fabricnet.Org) string {
		if len(o.Peers) == 0 {
			return ""
		}
		var ps []string
		for _, other := range nw.Orgs {
			endorses := other.MSPID == regulatorMSP || (o.MSPID == regulatorMSP && other.MSPID != auditorMSP)
			if other == o || !endorses {
				continue
			}
			for _, p := range other.Peers {
				ps = append(ps, p.Address+"="+other.TLSRootCert)
			}
		}
		if len(ps) == 0 {
			return ""
		}
		return " --fabric-wait-peers " + strings.Join(ps, ",")
	}
	common := fmt.Sprintf("--fabric-channel %s --fabric-chaincode %s", nw.Channel, chaincode)
	var b strings.Builder
	fmt.Fprintf(&b, "Network files: %s\n\n", nw.Dir)
	fmt.Fprintf(&b, "The issuer's server (%s):\n  greenpoints serve --database-url URL --ledger fabric \\\n    %s%s \\\n    %s \\\n    %s\n\n",
		issuerMSP, gateway(bank), wait(bank), ident(bank), common)
	fmt.Fprintf(&b, "The regulator's identity (%s):\n  certificate %s\n  private key %s\n\n", regulatorMSP, reg.User.Cert, reg.User.Key)
	fmt.Fprintf(&b, "Onboarding, once (docs/fabric.md, Operations):\n")
	fmt.Fprintf(&b, "  greenpoints ledger init --ledger fabric %s%s %s %s --regulator-msp %s\n", gateway(reg), wait(reg), ident(reg), common, regulatorMSP)
	fmt.Fprintf(&b, "  greenpoints ledger register-issuer --ledger fabric %s%s %s %s --msp %s --name \"Bank A\" --filing FAB-0001\n",
		gateway(reg), wait(reg), ident(reg), common, issuerMSP)
	fmt.Fprintf(&b, "  greenpoints ledger anchor-policy --ledger fabric %s%s %s %s\n", gateway(bank), wait(bank), ident(bank), common)
	return b.String(), nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
