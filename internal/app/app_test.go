package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func startApp(t *testing.T, opts ...func(*Config)) (*App, context.CancelFunc, chan error) {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", DatabaseURL: pgtest.NewDBURL(t), MaxBodyBytes: 1 << 10, ShutdownTimeout: 5 * time.Second, Version: "test", KeysDir: filepath.Join(t.TempDir(), "keys")}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := Start(t.Context(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, cancel, done
}

func TestAppServesAndShutsDown(t *testing.T) {
	t.Parallel()
	a, cancel, done := startApp(t)
	base := "http://" + a.Addr()
	for _, path := range []string{"/healthz", "/readyz", "/v1/version", "/openapi.yaml", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
	// Start migrated the database to the newest embedded version.
	got, err := database.MigrationVersion(t.Context(), a.Pool())
	if err != nil {
		t.Fatal(err)
	}
	want, err := database.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("schema version %d, want %d", got, want)
	}
	// An oversized body is refused before any handler runs.
	resp, err := http.Post(base+"/v1/version", "application/json", strings.NewReader(strings.Repeat("x", 4<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("oversized body: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := Config{Addr: ln.Addr().String(), DatabaseURL: pgtest.NewDBURL(t), ShutdownTimeout: time.Second, KeysDir: filepath.Join(t.TempDir(), "keys")}
	_, err = Start(t.Context(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("Start = %v, want 'already in use'", err)
	}
}
