// Package child runs the servers our harnesses own (PostgreSQL, Fabric
// nodes) as child processes: started so that a parent-death signal set in
// cmd.SysProcAttr really fires when we die, reaped exactly once, and stopped
// with a signal, then SIGKILL to the whole process group when they linger.
package child

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// ErrStopTimeout reports that a process ignored its stop signal and was killed.
var ErrStopTimeout = errors.New("did not stop in time; killed it")

// Process is a started child process.
type Process struct {
	pid  int
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // its exit status; read after done
}

// Start starts cmd and reaps it when it exits.
//
// Pdeathsig fires when the thread that forked the child exits, not when our
// process does, and the Go runtime retires threads whose goroutine exits
// while locked to them. Forking from a thread that another goroutine might
// later lock and retire would kill the child at a random moment; so the
// forking goroutine locks its thread, forks, waits for the child, and never
// unlocks: the thread lives exactly as long as the child.
func Start(cmd *exec.Cmd) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	p.pid = cmd.Process.Pid
	return p, nil
}

// PID is the child's process id (also its process group id when
// SysProcAttr.Setpgid was set).
func (p *Process) PID() int { return p.pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited, and its exit status if so.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends sig and waits for the child to exit. After timeout, or when ctx
// ends, it kills the process group and returns ErrStopTimeout or ctx's
// error. exitErr is the child's exit status when it stopped by itself.
func (p *Process) Stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) (exitErr, err error) {
	if gone, status := p.Exited(); gone {
		return status, nil
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("signalling pid %d: %w", p.pid, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err, nil
	case <-timer.C:
		p.Kill()
		return nil, ErrStopTimeout
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("%w; killed it", ctx.Err())
	}
}

// Kill SIGKILLs the whole process group, so that grandchildren (PostgreSQL
// backends) do not outlive it, and waits until the child is reaped.
func (p *Process) Kill() {
	if gone, _ := p.Exited(); gone {
		return // reaped: its PID may already belong to someone else
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
}
