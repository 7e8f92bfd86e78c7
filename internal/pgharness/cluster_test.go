package pgharness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	ctx := t.Context()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func query(t *testing.T, c *Cluster, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	c, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	dir := filepath.Dir(c.DataDir())

	settings := map[string]string{}
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "listen_addresses", "max_connections", "shared_buffers", "server_encoding", "lc_collate"} {
		settings[name] = query(t, c, "SHOW "+name)
	}
	want := map[string]string{
		"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
		"listen_addresses": "127.0.0.1", "max_connections": "200", "shared_buffers": "256MB",
		"server_encoding": "UTF8", "lc_collate": "C",
	}
	if diff := cmp.Diff(want, settings); diff != "" {
		t.Errorf("settings mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), logName)); err != nil {
		t.Errorf("server log: %v", err)
	}

	// A connection left open must not stop a fast shutdown.
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())

	pid := c.PID()
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// Stop reaped the postmaster; its backends exit before it does.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postgres pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still has members after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s not removed: %v", dir, err)
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	began := time.Now()
	_, err = Start(t.Context(), Options{Port: port})
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("Start on a taken port: got %v, want ErrPortInUse", err)
	}
	t.Logf("error after %s: %v", time.Since(began), err)
}

// TestReuseDir restarts a cluster on the caller's directory, this time
// durable: the data survives and the durability settings follow Options.
// (It also checks Durable without paying for a durable initdb, whose fsyncs
// take tens of seconds on a busy shared disk.)
func TestReuseDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// t.TempDir and its parent are 0700 root-owned; the server user
		// must get through them.
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := startCluster(t, Options{Dir: dir})
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept(x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	conn.Close(t.Context())
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(c.DataDir()); err != nil {
		t.Fatalf("caller's data directory removed by Stop: %v", err)
	}

	c2 := startCluster(t, Options{Dir: dir, Durable: true, ExtraConf: map[string]string{"work_mem": "8MB"}})
	if got := query(t, c2, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'kept'"); got != "1" {
		t.Errorf("table count after restart = %s, want 1", got)
	}
	got := map[string]string{}
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "work_mem"} {
		got[name] = query(t, c2, "SHOW "+name)
	}
	want := map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "work_mem": "8MB"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("durable settings mismatch (-want +got):\n%s", diff)
	}
}

func TestFindBinariesEnv(t *testing.T) {
	t.Setenv(BinDirEnv, t.TempDir())
	_, err := FindBinaries()
	if err == nil {
		t.Fatal("FindBinaries with an empty $" + BinDirEnv + " succeeded")
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("a bad $%s must not read as 'not installed': %v", BinDirEnv, err)
	}
}

func TestSweepStale(t *testing.T) {
	// A PID far above pid_max (2^22) belongs to no process.
	dead := filepath.Join(os.TempDir(), tempPrefix+strconv.Itoa(1<<23)+"-x")
	if err := os.MkdirAll(filepath.Join(dead, "pgdata"), 0o700); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(os.TempDir(), tempPrefix+strconv.Itoa(os.Getpid())+"-y")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(mine)

	sweepStale(orDiscard(nil))
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s not removed: %v", dead, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("live process's %s removed: %v", mine, err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	_, err := Start(t.Context(), Options{ExtraConf: map[string]string{"shared_buffers": "lots"}})
	if err == nil {
		t.Fatal("Start with a bad setting succeeded")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Errorf("error does not show the server log: %v", err)
	}
}

// TestParentKilled checks that Pdeathsig stops postgres when the process that
// started it is killed -9, and that the next Start sweeps its directory.
func TestParentKilled(t *testing.T) {
	if os.Getenv("PGHARNESS_CHILD") == "1" {
		c, err := Start(t.Context(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("cluster %d %s\n", c.PID(), c.DataDir())
		select {}
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestParentKilled$")
	cmd.Env = append(os.Environ(), "PGHARNESS_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	var dataDir string
	if _, err := fmt.Fscanf(bufio.NewReader(out), "cluster %d %s\n", &pid, &dataDir); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("reading child output: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("postgres %d still running 10s after its parent was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sweepStale(orDiscard(nil))
	if _, err := os.Stat(filepath.Dir(dataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s not swept: %v", filepath.Dir(dataDir), err)
	}
}

// running reports whether pid is a live process; a zombie nobody reaped
// (PID 1 in a container may not) counts as dead.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}
