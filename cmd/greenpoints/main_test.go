package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// binPath is the greenpoints binary built once for the CLI tests: they run it
// as a user would, so exit codes and stderr are the real ones.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "greenpoints-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "greenpoints")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build greenpoints: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary to completion with a clean environment.
func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = t.TempDir() // relative defaults (data/keys) land there
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestCLIUsageAndBadInput(t *testing.T) {
	t.Parallel()
	closedPort := freePort(t)
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string // substring of stdout+stderr
		wantNot  string // must not appear (secrets)
	}{
		{name: "no args", args: nil, wantCode: 2, want: "Commands:"},
		{name: "help", args: []string{"--help"}, wantCode: 0, want: "serve"},
		{name: "serve help names env", args: []string{"serve", "--help"}, wantCode: 0, want: "DATABASE_URL"},
		{name: "demo help", args: []string{"demo", "--help"}, wantCode: 0, want: "throwaway PostgreSQL"},
		{name: "version", args: []string{"version"}, wantCode: 0, want: "greenpoints "},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, want: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"serve", "--bogus"}, wantCode: 2, want: "flag provided but not defined: -bogus"},
		{name: "bad env duration", env: []string{"GREENPOINTS_SHUTDOWN_TIMEOUT=soon"}, args: []string{"serve"}, wantCode: 2, want: "GREENPOINTS_SHUTDOWN_TIMEOUT"},
		{name: "no database", args: []string{"serve"}, wantCode: 1, want: "set --database-url or DATABASE_URL"},
		{name: "malformed database url", args: []string{"serve", "--database-url", "postgres://u:hunter2@[::1"}, wantCode: 1, want: "database", wantNot: "hunter2"},
		{name: "unreachable database", args: []string{"migrate", "--database-url", fmt.Sprintf("postgres://u:hunter2@127.0.0.1:%d/x?connect_timeout=3", closedPort)}, wantCode: 1, want: "unreachable", wantNot: "hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tc.env, tc.args...)
			all := r.stdout + r.stderr
			if r.code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; output:\n%s", r.code, tc.wantCode, all)
			}
			if !strings.Contains(all, tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, all)
			}
			if tc.wantNot != "" && strings.Contains(all, tc.wantNot) {
				t.Errorf("output leaks %q:\n%s", tc.wantNot, all)
			}
			if tc.wantCode == 1 {
				// JSON log lines may precede it; the error itself is one line.
				var plain []string
				for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
					if !strings.HasPrefix(l, "{") {
						plain = append(plain, l)
					}
				}
				if len(plain) != 1 || !strings.HasPrefix(plain[0], "greenpoints ") {
					t.Errorf("a failure should be one plain line, got %q", plain)
				}
			}
		})
	}
}

func TestServePortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runCLI(t, []string{"DATABASE_URL=" + pgtest.NewDBURL(t)}, "serve", "--addr", ln.Addr().String(), "--log-level", "error")
	if r.code != 1 || !strings.Contains(r.stderr, "already in use") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// server is a greenpoints process started in the background.
type server struct {
	cmd  *exec.Cmd
	base string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(binPath, append(args, "--addr", addr)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	s := &server{cmd: cmd, base: "http://" + addr, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	})
	return s
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// waitOK polls path until it answers 200 or the deadline passes.
func (s *server) waitOK(t *testing.T, path string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		resp, err := http.Get(s.base + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("server exited early (%v):\n%s", err, s.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s not 200 within %s; output:\n%s", path, within, s.output())
	return 0
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit 60s after SIGTERM:\n%s", s.output())
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, []string{"DATABASE_URL=" + pgtest.NewDBURL(t)}, "serve")
	s.waitOK(t, "/healthz", 60*time.Second)
	s.waitOK(t, "/readyz", 10*time.Second)
	s.stop(t)
	out := s.output()
	for _, want := range []string{`"msg":"starting greenpoints serve"`, `"msg":"stopped"`, `"database-url":"postgres://`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestDemoStartsAndStopsItsPostgres(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil, "demo")
	took := s.waitOK(t, "/readyz", 120*time.Second)
	t.Logf("demo ready in %s", took)
	s.waitOK(t, "/healthz", 5*time.Second)
	for _, want := range []string{"curl " + s.base + "/healthz", "hash chain and signatures verified", "greenpoints partner send --url " + s.base + " --sample all --keys-dir "} {
		if !strings.Contains(s.output(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, s.output())
		}
	}
	// The command the demo prints works: points appear, a refund is clawed back.
	var send []string
	for _, line := range strings.Split(s.output(), "\n") {
		if i := strings.Index(line, "greenpoints partner send "); i >= 0 {
			send = strings.Fields(line[i+len("greenpoints "):])
			break
		}
	}
	r := runCLI(t, nil, send...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d\n%s\n%s", send, r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"demo-tx-fridge-alice   appliance issued",
		"demo-tx-washer-bob     appliance reversed",
		"demo-tx-topup-alice    cleared    -> rejected  mcc_not_trip",
		"M-demo-alice-1         transit   issued",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("partner send output lacks %q:\n%s", want, r.stdout)
		}
	}
	pid := demoPostgresPID(t, s.output())
	s.stop(t)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("demo PostgreSQL (pid %d) still running after the demo stopped", pid)
	}
}

// demoPostgresPID reads the PostgreSQL pid from the demo's JSON log.
func demoPostgresPID(t *testing.T, logs string) int {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "demo PostgreSQL ready" && rec.PID > 0 {
			return rec.PID
		}
	}
	t.Fatalf("no 'demo PostgreSQL ready' log line with a pid:\n%s", logs)
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
