package fabric_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/pgtest"
)

// TestServeFabric runs the greenpoints binary as an operator would:
// 'greenpoints serve --ledger fabric' with the gateway settings from flags
// and environment variables. It connects to the suite network as BankAMSP,
// becomes ready and stops cleanly on SIGTERM. A missing setting, a
// certificate that is not of the named MSP, a channel the identity cannot
// read, a chaincode that is not there and a malformed --fabric-wait-peers
// stop it at start with the reason.
func TestServeFabric(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "greenpoints")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/greenpoints/greenpoints/cmd/greenpoints").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	channel := newChannel(t)
	org1, bankA := nw.Orgs[0], orgOf(t, issuerMSP)
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + pgtest.NewDBURL(t),
		"GREENPOINTS_FABRIC_PEER=" + org1.Peers[0].Address,
		"GREENPOINTS_FABRIC_TLS_CA=" + org1.TLSRootCert,
		"GREENPOINTS_FABRIC_MSP_ID=" + bankA.MSPID,
		// The suite's only peer: waiting for it is trivial, but the
		// setting travels from the environment to the ledger client.
		"GREENPOINTS_FABRIC_WAIT_PEERS=" + org1.Peers[0].Address,
	}
	flags := []string{"serve", "--ledger", "fabric", "--fabric-cert", bankA.User.Cert, "--fabric-key", bankA.User.Key,
		"--fabric-chaincode", "points", "--keys-dir", filepath.Join(t.TempDir(), "keys")}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want string
		}{
			{"no peer", env[:3], flags, "--ledger fabric needs --fabric-peer (or GREENPOINTS_FABRIC_PEER), --fabric-tls-ca (or GREENPOINTS_FABRIC_TLS_CA), --fabric-msp-id (or GREENPOINTS_FABRIC_MSP_ID)\n"},
			{"certificate of another msp", env, append(flags, "--fabric-msp-id", "BankBMSP"), "as BankBMSP"},
			{"unknown chaincode", env, append(flags, "--fabric-channel", channel, "--fabric-chaincode", "nosuchcode"), "calling chaincode nosuchcode on channel " + channel},
			{"unknown channel", env, append(flags, "--fabric-channel", "nosuchchannel"), "reading channel nosuchchannel on " + org1.Peers[0].Address + " as BankAMSP"},
			{"wait peer without port", env, append(flags, "--fabric-wait-peers", "peer0.regulator"), `--fabric-wait-peers: "peer0.regulator" is not host:port`},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			cmd := exec.CommandContext(ctx, bin, append(tc.args, "--addr", "127.0.0.1:0")...)
			cmd.Env, cmd.Dir = tc.env, t.TempDir()
			out, err := cmd.CombinedOutput()
			cancel()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
				t.Errorf("%s: %v, want exit 1 and %q:\n%s", tc.name, err, tc.want, out)
			}
			t.Logf("%s: %s", tc.name, out[bytes.LastIndex(bytes.TrimSpace(out), []byte("\n"))+1:])
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, append(flags, "--addr", addr, "--fabric-channel", channel)...)
	cmd.Env, cmd.Dir = env, t.TempDir()
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return log.Write(p)
	})
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve exited early (%v):\n%s", err, output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready:\n%s", output())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, output())
	}
	done <- nil
	for _, want := range []string{`"msg":"fabric ledger connected"`, fmt.Sprintf(`"channel":%q`, channel), `"msp":"BankAMSP"`,
		`"fabric-peer":"` + org1.Peers[0].Address + `"`, `"wait_peers":["` + org1.Peers[0].Address + `"]`, `"msg":"stopped"`} {
		if !strings.Contains(output(), want) {
			t.Errorf("serve's log lacks %s:\n%s", want, output())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
