package pgharness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BinDirEnv names the environment variable that points at a directory holding
// initdb and postgres. It wins over every other place we look.
const BinDirEnv = "GREENPOINTS_PG_BINDIR"

// debianRoot is where Debian's postgresql-NN packages put their server
// binaries; they are not on PATH by default.
const debianRoot = "/usr/lib/postgresql"

// ErrNotFound is returned (wrapped) when no PostgreSQL server binaries are
// found. Its text is the one line a user needs: what is wrong and what to do.
var ErrNotFound = errors.New("PostgreSQL server binaries not found (looked in $" + BinDirEnv +
	", " + debianRoot + "/<version>/bin and PATH); install Debian's postgresql package: apt-get install postgresql")

// required are the programs Start runs. pg_ctl is not needed: we run the
// postmaster ourselves so that we own its PID.
var required = []string{"initdb", "postgres"}

// FindBinaries returns the directory holding the PostgreSQL server binaries
// (initdb, postgres). It looks in $GREENPOINTS_PG_BINDIR, then in the newest
// /usr/lib/postgresql/<version>/bin, then on PATH. When nothing is found the
// error wraps ErrNotFound. A $GREENPOINTS_PG_BINDIR that lacks the binaries is
// an error of its own: silently using another version would hide a typo.
func FindBinaries() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if err := hasBinaries(dir); err != nil {
			return "", fmt.Errorf("$%s=%s: %w", BinDirEnv, dir, err)
		}
		return dir, nil
	}
	for _, dir := range debianBinDirs() {
		if hasBinaries(dir) == nil {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		// /usr/local/bin often holds symlinks; initdb must sit next to the
		// real postgres for the two to agree on the version.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); hasBinaries(dir) == nil {
			return dir, nil
		}
	}
	return "", ErrNotFound
}

// debianBinDirs lists /usr/lib/postgresql/<version>/bin, newest version first.
func debianBinDirs() []string {
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return nil
	}
	type versioned struct {
		v   float64
		dir string
	}
	var vs []versioned
	for _, e := range entries {
		// Versions are "15" or, before PostgreSQL 10, "9.6".
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		vs = append(vs, versioned{v, filepath.Join(debianRoot, e.Name(), "bin")})
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].v > vs[j].v })
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

func hasBinaries(dir string) error {
	for _, name := range required {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s in %s", name, dir)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s in %s is not executable", name, dir)
		}
	}
	return nil
}

// EnsureInstalled returns the server binary directory like FindBinaries. When
// none is found and we are root on a system with apt-get, it installs Debian's
// postgresql package first (quietly; the apt output is shown only on failure)
// and looks again. logger may be nil.
func EnsureInstalled(ctx context.Context, logger *slog.Logger) (string, error) {
	dir, err := FindBinaries()
	if !errors.Is(err, ErrNotFound) {
		return dir, err
	}
	if os.Geteuid() != 0 {
		return "", err
	}
	if _, lookErr := exec.LookPath("apt-get"); lookErr != nil {
		return "", err
	}
	logger = orDiscard(logger)
	logger.InfoContext(ctx, "PostgreSQL not found; installing Debian's postgresql package")
	for _, args := range [][]string{
		{"update"},
		{"install", "-y", "-q", "postgresql"},
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, runErr := cmd.CombinedOutput(); runErr != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), runErr, tail(out, 20))
		}
	}
	dir, err = FindBinaries()
	if err != nil {
		return "", fmt.Errorf("after installing postgresql: %w", err)
	}
	logger.InfoContext(ctx, "PostgreSQL installed", "bindir", dir)
	return dir, nil
}

// tail returns the last n lines of b, for error messages that must stay short
// but still show the cause (apt, initdb and postgres print it last).
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
