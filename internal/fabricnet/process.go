package fabricnet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/greenpoints/greenpoints/internal/child"
)

// stopTimeout bounds a graceful shutdown before we SIGKILL the process group.
const stopTimeout = 15 * time.Second

// proc is one running Fabric node (orderer or peer), started and reaped by us.
type proc struct {
	*child.Process
	name    string
	logPath string
}

// startProc runs bin with args and env (the whole environment), its output
// appended to logPath, in its own process group and with a parent-death
// signal (internal/child explains why that needs care).
func startProc(name, bin string, args, env []string, dir, logPath string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	cp, err := child.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &proc{Process: cp, name: name, logPath: logPath}, nil
}

// stop sends SIGTERM (Fabric nodes shut down cleanly on it) and waits; after
// stopTimeout, or when ctx ends, it kills the whole process group.
func (p *proc) stop(ctx context.Context, log *slog.Logger) error {
	if gone, waitErr := p.Exited(); gone {
		return fmt.Errorf("%s (pid %d) had exited before Stop: %v; log %s:\n%s", p.name, p.PID(), waitErr, p.logPath, logTail(p.logPath, 15))
	}
	_, err := p.Stop(ctx, syscall.SIGTERM, stopTimeout)
	if err != nil {
		err = fmt.Errorf("stopping %s (pid %d) within %s: %w", p.name, p.PID(), stopTimeout, err)
	}
	log.Debug("fabric node stopped", "node", p.name, "pid", p.PID())
	return err
}

// logTail returns the last n lines of the file at path, for error messages.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(fi.Size()-window, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	return strings.TrimSpace(tail(b, n))
}
