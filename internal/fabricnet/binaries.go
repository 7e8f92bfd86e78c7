package fabricnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// FabricVersion is the Fabric release we build and run.
	FabricVersion = "3.1.1"
	// fabricModule is Fabric's module path. It has no /v3 suffix, so the
	// proxy refuses its v3 tags; the canonical pseudo-version of the v3.1.1
	// release commit is what it serves.
	fabricModule = "github.com/hyperledger/fabric"
	// fabricModuleVersion is the pseudo-version of the v3.1.1 release commit
	// (435a7f1a780a, 2025-05-10).
	fabricModuleVersion = "v1.4.0-rc1.0.20250510200036-435a7f1a780a"
	// fabricCommit is the release commit, which `peer version` reports.
	fabricCommit = "435a7f1a780a"
	// stampName records in the cache directory which version its binaries
	// were built from; EnsureBinaries rebuilds when it differs.
	stampName = "VERSION"
)

// Commands are the Fabric programs EnsureBinaries builds.
var Commands = []string{"peer", "orderer", "configtxgen", "cryptogen", "osnadmin"}

// ldflags stamps the version and commit into the binaries, as Fabric's
// Makefile does; without them they call themselves "latest".
func ldflags() string {
	const pkg = fabricModule + "/common/metadata"
	return "-X " + pkg + ".Version=" + FabricVersion + " -X " + pkg + ".CommitSHA=" + fabricCommit
}

// stamp is the content of the stamp file: everything that decides what the
// binaries are, so that changing the pin invalidates the cache.
func stamp() string {
	return fmt.Sprintf("fabric %s %s@%s ldflags %q\n", FabricVersion, fabricModule, fabricModuleVersion, ldflags())
}

// DefaultCacheDir is where EnsureBinaries keeps the wrapper module and the
// binaries when given no directory: $XDG_CACHE_HOME/greenpoints/fabric-<version>,
// or the platform's user cache directory (~/.cache on Linux).
func DefaultCacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("finding a cache directory for the Fabric binaries: %w", err)
		}
	}
	return filepath.Join(base, "greenpoints", "fabric-"+FabricVersion), nil
}

// EnsureBinaries returns a directory holding peer, orderer, configtxgen,
// cryptogen and osnadmin of Fabric FabricVersion, building them from the Go
// module proxy into cacheDir/bin when they are missing or were built from
// another pin. cacheDir "" means DefaultCacheDir. A cold build takes a couple
// of minutes on two cores; later calls return at once. log may be nil.
//
// `go install pkg@version` does not work here (its deprecation check reads a
// version list the proxy refuses), so we build from a small wrapper module
// that requires the pinned version.
func EnsureBinaries(ctx context.Context, cacheDir string, log *slog.Logger) (binDir string, err error) {
	log = orDiscard(log)
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return "", fmt.Errorf("resolving %s: %w", cacheDir, err)
	}
	binDir = filepath.Join(cacheDir, "bin")
	if cached(cacheDir, binDir) {
		return binDir, nil
	}
	// Test binaries of several packages may get here at once: one builds,
	// the others wait for it and then find the cache complete.
	unlock, err := lockDir(ctx, cacheDir, log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if cached(cacheDir, binDir) {
		return binDir, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building Fabric %s needs the go command on PATH: %w", FabricVersion, err)
	}
	began := time.Now()
	log.InfoContext(ctx, "building Fabric binaries from the Go module proxy (a few minutes when cold)",
		"version", FabricVersion, "module", fabricModule+"@"+fabricModuleVersion, "cache", cacheDir)

	modDir := filepath.Join(cacheDir, "src")
	if err := writeWrapperModule(modDir); err != nil {
		return "", err
	}
	// A stale stamp must not survive a half-finished rebuild.
	if err := os.Remove(filepath.Join(cacheDir, stampName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("removing stale stamp: %w", err)
	}
	if err := runGo(ctx, goBin, modDir, "mod", "tidy"); err != nil {
		return "", err
	}
	log.InfoContext(ctx, "Fabric sources downloaded", "took", time.Since(began).Round(time.Second))
	ldflags := ldflags()
	for _, name := range Commands {
		t := time.Now()
		out := filepath.Join(binDir, name)
		if err := runGo(ctx, goBin, modDir, "build", "-trimpath", "-ldflags", ldflags, "-o", out, fabricModule+"/cmd/"+name); err != nil {
			return "", err
		}
		log.InfoContext(ctx, "built Fabric command", "cmd", name, "took", time.Since(t).Round(time.Second))
	}
	if err := os.WriteFile(filepath.Join(cacheDir, stampName), []byte(stamp()), 0o644); err != nil {
		return "", fmt.Errorf("writing stamp: %w", err)
	}
	log.InfoContext(ctx, "Fabric binaries ready", "bin", binDir, "took", time.Since(began).Round(time.Second))
	return binDir, nil
}

// lockDir takes an exclusive lock on cacheDir/.lock, waiting for another
// process's build to finish. The kernel releases it if we die.
func lockDir(ctx context.Context, cacheDir string, log *slog.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cacheDir, err)
	}
	f, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening build lock: %w", err)
	}
	fd := int(f.Fd()) //nolint:gosec // a file descriptor fits in an int
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		log.InfoContext(ctx, "waiting for another process to finish building Fabric", "cache", cacheDir)
		// Flock cannot be interrupted by ctx; the build it waits for is bounded.
		if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}

// cached reports whether binDir holds every command, built from the pin.
func cached(cacheDir, binDir string) bool {
	b, err := os.ReadFile(filepath.Join(cacheDir, stampName))
	if err != nil || string(b) != stamp() {
		return false
	}
	for _, name := range Commands {
		fi, err := os.Stat(filepath.Join(binDir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// writeWrapperModule writes the module that pins Fabric. tools.go imports the
// commands so that `go mod tidy` records every dependency they need; its
// build tag keeps it out of any build (main packages cannot be imported).
func writeWrapperModule(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	gomod := "module greenpoints.local/fabricbuild\n\ngo 1.24\n\nrequire " + fabricModule + " " + fabricModuleVersion + "\n"
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\n// Package fabricbuild pins the Fabric commands greenpoints runs.\npackage fabricbuild\n\nimport (\n")
	for _, name := range Commands {
		fmt.Fprintf(&tools, "\t_ %q\n", fabricModule+"/cmd/"+name)
	}
	tools.WriteString(")\n")
	for name, content := range map[string]string{"go.mod": gomod, "tools.go": tools.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing wrapper module: %w", err)
		}
	}
	return nil
}

// runGo runs the go command in the wrapper module, outside any workspace.
func runGo(ctx context.Context, goBin, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, tail(out, 20))
	}
	return nil
}

// tail returns the last n lines of b, for errors that must stay short but
// still show the cause.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// modulePath returns the read-only source directory of the pinned Fabric
// module in the module cache; EnsureBinaries has downloaded it.
func modulePath(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), fabricModule+"@"+fabricModuleVersion)
	if _, err := os.Stat(filepath.Join(dir, "sampleconfig")); err != nil {
		return "", fmt.Errorf("Fabric's sample configuration is not in the module cache (%s); run EnsureBinaries first: %w", dir, err)
	}
	return dir, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
