package fabricnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds a graceful shutdown before we SIGKILL the process group.
const stopTimeout = 15 * time.Second

// proc is one running Fabric node (orderer or peer), started and reaped by us.
type proc struct {
	name    string
	pid     int
	logPath string

	done    chan struct{} // closed when the process has exited
	waitErr error         // its exit status; read after done
}

// startProc runs bin with args and env (the whole environment), its output
// appended to logPath. Like internal/pgharness it runs the child in its own
// process group and with a parent-death signal, from a goroutine that locks
// its OS thread for the child's lifetime: Pdeathsig fires when the forking
// thread exits, not the process, and the Go runtime retires threads that exit
// while locked.
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

	p := &proc{name: name, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.pid = cmd.Process.Pid
	return p, nil
}

// exited reports whether the process has exited, with its status.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM (Fabric nodes shut down cleanly on it) and waits; after
// stopTimeout, or when ctx ends, it kills the whole process group.
func (p *proc) stop(ctx context.Context, log *slog.Logger) error {
	if gone, waitErr := p.exited(); gone {
		return fmt.Errorf("%s (pid %d) had exited before Stop: %v; log %s:\n%s", p.name, p.pid, waitErr, p.logPath, logTail(p.logPath, 15))
	}
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling %s (pid %d): %w", p.name, p.pid, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-p.done:
	case <-timer.C:
		p.kill()
		err = fmt.Errorf("%s (pid %d) did not stop within %s; killed it", p.name, p.pid, stopTimeout)
	case <-ctx.Done():
		p.kill()
		err = fmt.Errorf("stopping %s (pid %d): %w; killed it", p.name, p.pid, ctx.Err())
	}
	log.Debug("fabric node stopped", "node", p.name, "pid", p.pid)
	return err
}

// kill SIGKILLs the process group and waits for the process to be reaped.
func (p *proc) kill() {
	if gone, _ := p.exited(); gone {
		return // reaped: its PID may already belong to someone else
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
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
