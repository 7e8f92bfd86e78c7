package config

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func newBinder(t *testing.T) (*Binder, *string, *string, *time.Duration) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := NewBinder(fs)
	var addr, url string
	var d time.Duration
	b.String(&addr, "addr", "GP_TEST_ADDR", "127.0.0.1:8080", "listen")
	b.Secret(&url, "database-url", "GP_TEST_DB", "", "db")
	b.Duration(&d, "timeout", "GP_TEST_TIMEOUT", time.Second, "t")
	return b, &addr, &url, &d
}

func TestEnvironmentThenFlags(t *testing.T) {
	t.Setenv("GP_TEST_ADDR", "127.0.0.1:9000")
	t.Setenv("GP_TEST_TIMEOUT", "5s")
	b, addr, _, d := newBinder(t)
	if err := b.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9000" || *d != 5*time.Second {
		t.Fatalf("env not applied: addr=%s d=%s", *addr, *d)
	}
	b, addr, _, _ = newBinder(t)
	if err := b.Parse([]string{"--addr", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:7000" {
		t.Fatalf("flag does not win over env: %s", *addr)
	}
}

func TestMalformedEnvironmentIsAnError(t *testing.T) {
	t.Setenv("GP_TEST_TIMEOUT", "soon")
	b, _, _, _ := newBinder(t)
	err := b.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "GP_TEST_TIMEOUT") {
		t.Fatalf("Parse = %v, want an error naming GP_TEST_TIMEOUT", err)
	}
}

func TestEffectiveMasksSecrets(t *testing.T) {
	b, _, _, _ := newBinder(t)
	if err := b.Parse([]string{"--database-url", "postgres://u:hunter2@h/db"}); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("start", b.Effective(func(name, v string) string { return "MASKED" }))
	out := sb.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, `"database-url":"MASKED"`) || !strings.Contains(out, `"addr":"127.0.0.1:8080"`) {
		t.Fatalf("effective config = %s", out)
	}
}
