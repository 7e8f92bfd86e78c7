// Package pgharness starts a throwaway PostgreSQL cluster from the system's
// server binaries, for tests (through internal/pgtest) and for
// `greenpoints demo`. There is no Docker here: the cluster is a native child
// process that we initialise, start, wait for and stop ourselves.
//
// PostgreSQL refuses to run as root. When we are root, initdb and postgres run
// as the postgres system user, or as a greenpoints-pg system user created on
// first use.
package pgharness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/greenpoints/greenpoints/internal/child"
)

const (
	// readyTimeout bounds how long Start waits for the server to accept
	// connections; a cold start takes well under a second.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a fast shutdown before we resort to SIGKILL.
	stopTimeout = 30 * time.Second
	// serviceUser is created when we are root and there is no postgres user.
	serviceUser = "greenpoints-pg"
	// tempPrefix names the temporary directories; the creator's PID follows,
	// so that Start can sweep those left behind by dead processes.
	tempPrefix = "greenpoints-pg-"
	// logName is the server log inside the data directory.
	logName = "postgres.log"
)

// ErrPortInUse is returned (wrapped) when the requested port is taken.
var ErrPortInUse = errors.New("port already in use")

// Options configure Start. The zero value is a fast, non-durable cluster in a
// new temporary directory on a free port.
type Options struct {
	// Dir is the parent of the data directory (Dir/pgdata). "" means a new
	// temporary directory that Stop removes. A Dir that already holds a data
	// directory is reused as is, so a demo keeps its data across runs.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps production durability (fsync, synchronous_commit and
	// full_page_writes on), for benchmarks. Otherwise all three are off,
	// which makes tests several times faster and is safe because the
	// cluster is thrown away.
	Durable bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// ExtraConf holds server settings passed as -c name=value, overriding
	// our defaults. Do not set port, listen_addresses or
	// unix_socket_directories: URL relies on them.
	ExtraConf map[string]string
	// BinDir holds initdb and postgres; "" means FindBinaries.
	BinDir string
}

// Cluster is a running PostgreSQL server started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	dataDir string
	tempDir string // removed by Stop; "" when the caller owns Dir
	port    int
	logger  *slog.Logger

	proc *child.Process // the postmaster

	stopOnce sync.Once
	stopErr  error
}

// Start initialises (unless Dir already holds one) and starts a cluster,
// and returns once it accepts connections. The superuser is postgres with
// trust authentication: the server listens on 127.0.0.1 only and is meant
// for tests and demos, never for real data.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	began := time.Now()
	logger := orDiscard(opts.Logger)
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	// Fail before the expensive initdb when the port is visibly taken.
	if opts.Port != 0 {
		if err := checkPort(opts.Port); err != nil {
			return nil, err
		}
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}

	parent, tempDir := opts.Dir, ""
	if parent == "" {
		sweepStale(logger)
		// The PID in the name lets a later Start remove this directory if
		// we die without Stop (kill -9, a test panic).
		if tempDir, err = os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid())); err != nil {
			return nil, fmt.Errorf("creating temporary directory: %w", err)
		}
		defer func() {
			if err != nil {
				_ = os.RemoveAll(tempDir)
			}
		}()
		parent = tempDir
		// MkdirTemp makes it 0700 root-owned; the server user must reach pgdata.
		if err := chown(parent, cred); err != nil {
			return nil, err
		}
	} else {
		// postgres runs with the data directory as its working directory,
		// so every path it gets must be absolute.
		if parent, err = filepath.Abs(parent); err != nil {
			return nil, fmt.Errorf("resolving %s: %w", opts.Dir, err)
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", parent, err)
		}
	}
	dataDir := filepath.Join(parent, "pgdata")

	if _, statErr := os.Stat(filepath.Join(dataDir, "PG_VERSION")); statErr != nil {
		if err := initdb(ctx, binDir, dataDir, opts.Durable, cred); err != nil {
			return nil, err
		}
	}

	// A port picked by freePort may be taken by someone else before postgres
	// binds it; with parallel test binaries that happens, so try again.
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		c, err := launch(ctx, binDir, dataDir, port, opts, cred, logger)
		if err == nil {
			c.tempDir = tempDir
			logger.InfoContext(ctx, "postgres started", "pid", c.proc.PID(), "port", port,
				"data_dir", dataDir, "durable", opts.Durable, "took", time.Since(began).Round(time.Millisecond))
			return c, nil
		}
		if opts.Port != 0 || !errors.Is(err, ErrPortInUse) || attempt == 3 {
			return nil, err
		}
		logger.DebugContext(ctx, "port taken before postgres bound it; retrying", "port", port)
	}
}

// initdb creates a cluster in dataDir (which must not exist or be empty).
func initdb(ctx context.Context, binDir, dataDir string, durable bool, cred *syscall.Credential) error {
	// Create it ourselves so we can hand it to the server user; initdb
	// then only needs to own it, not its parent.
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if err := chown(dataDir, cred); err != nil {
		return err
	}
	args := []string{"-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"}
	if !durable {
		// Skipping the final fsync of ~40 MB saves seconds per cluster.
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), args...)
	// The server user may not be able to enter our working directory.
	cmd.Dir = dataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w%s\n%s", dataDir, err, accessHint(err, cred), tail(out, 15))
	}
	return nil
}

// launch starts the postmaster and waits until it accepts connections.
func launch(ctx context.Context, binDir, dataDir string, port int, opts Options, cred *syscall.Credential, logger *slog.Logger) (*Cluster, error) {
	logPath := filepath.Join(dataDir, logName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening server log: %w", err)
	}
	// The child gets its own copy of the descriptor.
	defer logFile.Close()
	// Error messages show only what this run logged, not a reused Dir's past.
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("seeking server log: %w", err)
	}

	// Run postgres itself rather than pg_ctl, which would daemonise it: we
	// want its PID, its exit status and Pdeathsig.
	cmd := exec.Command(filepath.Join(binDir, "postgres"), serverArgs(dataDir, port, opts)...)
	cmd.Dir = dataDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(cred)

	proc, err := child.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting postgres: %w%s", err, accessHint(err, cred))
	}
	c := &Cluster{proc: proc, dataDir: dataDir, port: port, logger: logger}

	if err := c.waitReady(ctx, logPath, logStart); err != nil {
		c.proc.Kill()
		return nil, err
	}
	return c, nil
}

// serverArgs returns the postgres command line. Settings go on the command
// line rather than into postgresql.conf so that a reused data directory gets
// this run's port and durability.
func serverArgs(dataDir string, port int, opts Options) []string {
	onOff := map[bool]string{true: "on", false: "off"}[opts.Durable]
	conf := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": dataDir,
		"max_connections":         "200",
		"shared_buffers":          "256MB",
		"fsync":                   onOff,
		"synchronous_commit":      onOff,
		"full_page_writes":        onOff,
	}
	// A socket path longer than sun_path (108 bytes) makes postgres refuse
	// to start; we connect over TCP anyway, so do without the socket.
	if len(dataDir)+len("/.s.PGSQL.65535") >= 108 {
		conf["unix_socket_directories"] = ""
	}
	maps.Copy(conf, opts.ExtraConf)
	args := []string{"-D", dataDir}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		args = append(args, "-c", k+"="+conf[k])
	}
	return args
}

// waitReady polls with real connections until the server accepts one, the
// postmaster exits, or readyTimeout passes.
func (c *Cluster) waitReady(ctx context.Context, logPath string, logStart int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		dir, err := dataDirectory(ctx, c.URL("postgres"))
		if err == nil {
			if dir != c.dataDir {
				// Someone else's server took the port before ours could.
				return fmt.Errorf("127.0.0.1:%d: %w by another server (data directory %s)", c.port, ErrPortInUse, dir)
			}
			return nil
		}
		select {
		case <-c.proc.Done():
			log := logTail(logPath, logStart)
			if strings.Contains(log, "could not bind") || strings.Contains(log, "could not create any TCP/IP sockets") {
				return fmt.Errorf("postgres could not listen on 127.0.0.1:%d: %w; server log:\n%s", c.port, ErrPortInUse, log)
			}
			_, status := c.proc.Exited()
			return fmt.Errorf("postgres exited during startup (%v); server log:\n%s", status, log)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections on 127.0.0.1:%d: %w; server log:\n%s",
				c.port, ctx.Err(), logTail(logPath, logStart))
		case <-time.After(delay):
			delay = min(2*delay, 100*time.Millisecond)
		}
	}
}

// dataDirectory connects to connURL and returns the server's data directory,
// which tells our server from one that grabbed the port first.
func dataDirectory(ctx context.Context, connURL string) (string, error) {
	cfg, err := pgconn.ParseConfig(connURL)
	if err != nil {
		return "", fmt.Errorf("parsing %s: %w", connURL, err)
	}
	cfg.ConnectTimeout = time.Second
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SHOW data_directory").ReadAll()
	if err != nil {
		return "", fmt.Errorf("reading data_directory: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 {
		return "", errors.New("SHOW data_directory returned no row")
	}
	return string(res[0].Rows[0][0]), nil
}

// URL returns the superuser URL of database dbname on this cluster.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(dbname))
}

// PID returns the process id of the postmaster.
func (c *Cluster) PID() int { return c.proc.PID() }

// Port returns the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the cluster's data directory; its server log is
// postgres.log inside it.
func (c *Cluster) DataDir() string { return c.dataDir }

// Stop shuts the server down with a fast shutdown (SIGINT: roll back open
// transactions, disconnect clients, checkpoint), killing its process group
// if that takes longer than 30s or ctx ends first. It then removes the
// temporary directory, if Start made one. Stop is idempotent: later calls
// return the first call's result.
//
// ctx only bounds the wait, so do not pass one that is already cancelled
// (such as the signal context after Ctrl-C): that kills the server at once,
// and a reused Dir then needs crash recovery on its next start. Use
// context.Background, perhaps with a timeout.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	var errs []error
	if gone, status := c.proc.Exited(); gone {
		// Already gone: report how, since nobody asked it to stop.
		errs = append(errs, fmt.Errorf("postgres (pid %d) had exited before Stop: %v", c.proc.PID(), status))
	} else {
		// SIGINT is a "fast" shutdown; SIGTERM would be "smart", which waits
		// for every client to disconnect: a leaked pool would hang it.
		exitErr, err := c.proc.Stop(ctx, syscall.SIGINT, stopTimeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("stopping postgres (pid %d) within %s: %w", c.proc.PID(), stopTimeout, err))
		case exitErr != nil:
			errs = append(errs, fmt.Errorf("postgres (pid %d) shut down with %w", c.proc.PID(), exitErr))
		}
	}
	if c.tempDir != "" {
		if err := os.RemoveAll(c.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", c.tempDir, err))
		}
	}
	c.logger.Info("postgres stopped", "pid", c.proc.PID(), "data_dir", c.dataDir)
	return errors.Join(errs...)
}

// runAs returns the credentials to run the server with: nil unless we are
// root, because PostgreSQL refuses to run as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = ensureServiceUser(); err != nil {
			return nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has gid %q: %w", u.Username, u.Gid, err)
	}
	// An empty Groups drops root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func ensureServiceUser() (*user.User, error) {
	if u, err := user.Lookup(serviceUser); err == nil {
		return u, nil
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", serviceUser).CombinedOutput()
	// A concurrent test binary may have created it first.
	if u, lookErr := user.Lookup(serviceUser); lookErr == nil {
		return u, nil
	}
	return nil, fmt.Errorf("running as root and there is no postgres user; creating system user %s: %v: %s",
		serviceUser, err, strings.TrimSpace(string(out)))
}

// accessHint explains the usual cause of EACCES when we run the server as
// another user: the bare "fork/exec: permission denied" comes from its chdir.
func accessHint(err error, cred *syscall.Credential) string {
	if cred == nil || !errors.Is(err, syscall.EACCES) {
		return ""
	}
	return fmt.Sprintf(" (the server runs as uid %d, which must be able to enter every parent directory of the data directory)", cred.Uid)
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to the server user: %w", path, err)
	}
	return nil
}

// checkPort fails with ErrPortInUse when something listens on 127.0.0.1:port.
func checkPort(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("127.0.0.1:%d: %w; choose another port (0 picks a free one)", port, ErrPortInUse)
		}
		return fmt.Errorf("cannot listen on 127.0.0.1:%d: %w", port, err)
	}
	return l.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines the server logged since offset.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return tail(b, 15)
}

// sweepStale removes temporary directories left by processes that died
// without calling Stop (their postmaster got Pdeathsig and exited, but
// nobody removed the ~40 MB data directory). It skips any directory whose
// creator or postmaster is still alive.
func sweepStale(logger *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, dir := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(dir), tempPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "pgdata", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && alive(pm) {
				continue
			}
		}
		if err := os.RemoveAll(dir); err == nil {
			logger.Debug("removed stale cluster directory", "dir", dir)
		}
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
