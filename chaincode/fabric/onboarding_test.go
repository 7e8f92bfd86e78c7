package fabric_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/fabric"
	"github.com/greenpoints/greenpoints/chaincode/points"
)

// TestFabricUpAndOnboarding runs what make fabric-up, the onboarding
// commands and make fabric-down run: greenpoints-fabric up starts the dev
// network in the background and prints the commands; run as printed, the
// regulator initialises the ledger and registers the issuer, and the issuer
// anchors its policy (each again: idempotent, or refused with the reason);
// the ledger then holds them. greenpoints-fabric down stops every process
// of the network; up and down again are harmless.
func TestFabricUpAndOnboarding(t *testing.T) {
	t.Parallel()
	fabricUp := buildCommand(t, "greenpoints-fabric")
	gp := buildCommand(t, "greenpoints")
	dir := t.TempDir()
	run := func(name string, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		return string(out), err
	}
	upOut, err := run(fabricUp, "up", "--dir", dir)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, upOut)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			out, err := run(fabricUp, "down", "--dir", dir)
			t.Logf("down at cleanup: %v %s", err, out)
		}
	})
	t.Logf("up:\n%s", upOut)
	daemon := pidIn(t, upOut, `is up \(pid (\d+)\)`)
	if again, err := run(fabricUp, "up", "--dir", dir); err != nil || !strings.Contains(again, "already up (pid "+strconv.Itoa(daemon)+")") {
		t.Errorf("second up: %v\n%s", err, again)
	}
	for _, want := range []string{"greenpoints serve --database-url URL --ledger fabric", "--fabric-msp-id BankAMSP",
		"--fabric-channel greenpoints --fabric-chaincode points", "The regulator's identity (RegulatorMSP)"} {
		if !strings.Contains(upOut, want) {
			t.Errorf("up does not print %q", want)
		}
	}

	// The onboarding commands exactly as printed, greenpoints on the PATH.
	var cmds []string
	for _, line := range strings.Split(upOut, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "greenpoints ledger ") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 3 {
		t.Fatalf("up printed %d onboarding commands, want 3:\n%s", len(cmds), upOut)
	}
	sh := func(cmdline string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "sh", "-c", cmdline)
		c.Env = append(os.Environ(), "PATH="+filepath.Dir(gp)+":"+os.Getenv("PATH"))
		c.Dir = t.TempDir()
		out, err := c.CombinedOutput()
		return string(out), err
	}
	initCmd, registerCmd, anchorCmd := cmds[0], cmds[1], cmds[2]
	for _, step := range []struct {
		name, cmd, want string
		fails           bool
	}{
		{"register before init", registerCmd, "run 'greenpoints ledger init' first", true},
		{"init", initCmd, "ledger initialised: regulator RegulatorMSP (transaction ", false},
		{"init again", initCmd, "ledger already initialised: regulator RegulatorMSP since ", false},
		{"init as the issuer", strings.Replace(initCmd, "--regulator-msp RegulatorMSP", "--regulator-msp BankAMSP", 1),
			"on Fabric the regulator initialises the ledger as itself", true},
		{"anchor before registration", anchorCmd, "GetAnchors as BankAMSP", true},
		{"register", registerCmd, `issuer BankAMSP registered by RegulatorMSP: "Bank A", filing FAB-0001, active (transaction `, false},
		{"register as the issuer", withIdentity(registerCmd, anchorCmd), "RegisterMember as BankAMSP", true},
		{"anchor", anchorCmd, "anchored (profile cn-default, rules cn-default-rules): 4 versions anchored now, 0 already were", false},
		{"anchor again", anchorCmd, "0 versions anchored now, 4 already were", false},
	} {
		out, err := sh(step.cmd)
		if failed := err != nil; failed != step.fails || !strings.Contains(out, step.want) {
			t.Errorf("%s: error %v (want failure: %t), output does not say %q:\n%s", step.name, err, step.fails, step.want, out)
		}
		t.Logf("%s: %s", step.name, strings.TrimSpace(out))
	}
	// The ledger, read by the regulator's own client.
	reg := fabricClient(t, initCmd)
	var registry points.Registry
	evaluateAs(t, reg, "RegulatorMSP", "GetRegistry", struct{}{}, &registry)
	if registry.Regulator.MSP != "RegulatorMSP" || len(registry.Members) != 1 || registry.Members[0].MSP != "BankAMSP" ||
		registry.Members[0].Role != points.RoleIssuer || registry.Members[0].Name != "Bank A" || registry.Members[0].FilingNumber != "FAB-0001" {
		t.Errorf("registry after onboarding: %+v", registry)
	}
	var anchors points.Anchors
	evaluateAs(t, reg, "RegulatorMSP", "GetAnchors", points.IssuerArgs{Issuer: "BankAMSP"}, &anchors)
	if len(anchors.Versions) != 4 || anchors.InForce == nil {
		t.Errorf("BankAMSP's anchors: %d versions, profile in force %v", len(anchors.Versions), anchors.InForce)
	}
	_ = reg.Close()

	// Down stops the daemon and, through it, every node and the chaincode
	// service (their PIDs are in its log).
	logText, err := os.ReadFile(filepath.Join(dir, "greenpoints-fabric.log"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, m := range regexp.MustCompile(`msg="fabric (?:node starting|chaincode service started and installed)".* pid=(\d+)`).FindAllStringSubmatch(string(logText), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) < 3 {
		t.Errorf("the daemon's log names %d processes (orderer, peer, chaincode service expected): %v", len(pids), pids)
	}
	downOut, err := run(fabricUp, "down", "--dir", dir)
	stopped = true
	if err != nil || !strings.Contains(downOut, "is stopped") {
		t.Fatalf("down: %v\n%s", err, downOut)
	}
	for _, pid := range append(pids, daemon) {
		if !gone(pid) {
			t.Errorf("process %d still runs after down", pid)
		}
	}
	if again, err := run(fabricUp, "down", "--dir", dir); err != nil || !strings.Contains(again, "is not running") {
		t.Errorf("second down: %v\n%s", err, again)
	}
	// Up after down starts a fresh network in place of the stopped one's files.
	fresh, err := run(fabricUp, "up", "--dir", dir)
	stopped = false
	if err != nil || !strings.Contains(fresh, "Discarding the stopped network's files") || !strings.Contains(fresh, "is up (pid ") {
		t.Errorf("up after down: %v\n%s", err, fresh)
	}
	if out, err := run(fabricUp, "down", "--dir", dir); err != nil {
		t.Errorf("final down: %v\n%s", err, out)
	}
	stopped = true
}

// gone reports whether pid has exited: no such process, or a zombie (the
// daemon's parent was up, which exited, so init reaps it, in its time).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// "pid (comm) state ...": the state follows the last ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// pidIn finds a PID with pattern (one group) in s.
func pidIn(t *testing.T, s, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in:\n%s", pattern, s)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// flagsOf returns the --fabric-* flags of a printed command line (the test's
// paths have no spaces).
func flagsOf(cmdline string) map[string]string {
	f := strings.Fields(cmdline)
	m := map[string]string{}
	for i := 0; i+1 < len(f); i++ {
		if strings.HasPrefix(f[i], "--fabric-") {
			m[f[i]] = f[i+1]
		}
	}
	return m
}

// withIdentity is cmdline signed by the identity of other.
func withIdentity(cmdline, other string) string {
	mine, theirs := flagsOf(cmdline), flagsOf(other)
	for _, k := range []string{"--fabric-msp-id", "--fabric-cert", "--fabric-key"} {
		cmdline = strings.Replace(cmdline, k+" "+mine[k], k+" "+theirs[k], 1)
	}
	return cmdline
}

// fabricClient is a ledger client with the settings and identity of a
// printed command line.
func fabricClient(t *testing.T, cmdline string) *fabric.Ledger {
	t.Helper()
	f := flagsOf(cmdline)
	l, err := fabric.New(t.Context(), fabric.Config{
		PeerEndpoint: f["--fabric-peer"], TLSRootCert: readFile(t, f["--fabric-tls-ca"]),
		Identities: map[string]fabric.Identity{f["--fabric-msp-id"]: {Cert: readFile(t, f["--fabric-cert"]), Key: readFile(t, f["--fabric-key"])}},
		Channel:    f["--fabric-channel"], Chaincode: f["--fabric-chaincode"],
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
