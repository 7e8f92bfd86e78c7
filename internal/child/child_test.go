package child

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T, script string) *Process {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestStopBySignal(t *testing.T) {
	t.Parallel()
	p := start(t, "sleep 60")
	exitErr, err := p.Stop(context.Background(), syscall.SIGTERM, 10*time.Second)
	if err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if exitErr == nil {
		t.Fatal("a process killed by SIGTERM should report a non-nil exit status")
	}
	if gone, _ := p.Exited(); !gone {
		t.Fatal("not reaped after Stop")
	}
}

func TestStopKillsTheGroupAfterTimeout(t *testing.T) {
	t.Parallel()
	// The shell ignores SIGTERM and has a grandchild: both must go.
	p := start(t, "trap '' TERM; sleep 60 & wait")
	time.Sleep(200 * time.Millisecond) // let the trap be installed
	_, err := p.Stop(context.Background(), syscall.SIGTERM, 300*time.Millisecond)
	if !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Stop = %v, want ErrStopTimeout", err)
	}
	// Killed grandchildren may linger as zombies until init reaps them.
	deadline := time.Now().Add(5 * time.Second)
	for live := liveMembers(p.PID()); live > 0; live = liveMembers(p.PID()) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has %d live members", p.PID(), live)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveMembers counts the non-zombie processes in process group pgid.
func liveMembers(pgid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			n++
		}
	}
	return n
}

func TestStopAfterExitReportsStatus(t *testing.T) {
	t.Parallel()
	p := start(t, "exit 3")
	<-p.Done()
	exitErr, err := p.Stop(context.Background(), syscall.SIGTERM, time.Second)
	var ee *exec.ExitError
	if err != nil || !errors.As(exitErr, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Stop = (%v, %v), want exit status 3", exitErr, err)
	}
}
