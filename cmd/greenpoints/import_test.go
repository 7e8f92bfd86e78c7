package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

// plainLines are stderr's lines that are not JSON log records.
func plainLines(stderr string) []string {
	var plain []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			plain = append(plain, l)
		}
	}
	return plain
}

// TestImportCommandsAgainstDemo runs 'greenpoints registry import' and
// 'greenpoints partner import' as an operator and a bank would, against a
// running demo: valid files are applied and reported, invalid ones exit 1
// with one line and change nothing.
func TestImportCommandsAgainstDemo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewDBURL(t)
	keysDir := filepath.Join(t.TempDir(), "keys")
	srv := startServer(t, nil, "demo", "--database-url", dbURL, "--keys-dir", keysDir, "--log-level", "warn")
	srv.waitOK(t, "/readyz", 120*time.Second)
	if !strings.Contains(srv.output(), "--keys-dir "+keysDir) {
		t.Fatalf("the demo does not print its key directory:\n%s", srv.output())
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("registry import", func(t *testing.T) {
		sample, err := filepath.Abs("../../issuer/labels/testdata/sample.csv")
		if err != nil {
			t.Fatal(err)
		}
		// The demo seeded its own registry; the sample differs in one value
		// (the Haier washer's kWh per cycle), so the import is visible.
		washer := `SELECT label_value_milli FROM label_registry WHERE model = 'EG100HPRO6S'`
		if v := count(washer); v != 620 {
			t.Fatalf("demo washer label value %d, want 620", v)
		}
		r := runCLI(t, nil, "registry", "import", "--database-url", dbURL, sample)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "imported 14 label registry entries" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if v := count(washer); v != 880 {
			t.Errorf("washer label value %d after the import, want 880 (the sample's 0.88)", v)
		}
		if n := count(`SELECT count(*) FROM label_registry`); n != 14 {
			t.Errorf("%d registry entries, want 14", n)
		}

		// A new model on line 2 and a bad grade on line 3: nothing imported.
		bad := write("bad-labels.csv", "model,brand,category,grade,label_value,capacity_w,standard,registration_no\n"+
			"TEST-NEW-1,测试,refrigerator,1,0.75,,GB 12021.2-2015,CEL-R-2026-000001\n"+
			"TEST-NEW-2,测试,refrigerator,7,0.75,,GB 12021.2-2015,CEL-R-2026-000002\n")
		r = runCLI(t, nil, "registry", "import", "--database-url", dbURL, bad)
		plain := plainLines(r.stderr)
		if r.code != 1 || len(plain) != 1 || !strings.HasPrefix(plain[0], "greenpoints registry: ") || !strings.Contains(plain[0], "nothing was applied") {
			t.Errorf("invalid registry file: exit %d, stderr lines %q", r.code, plain)
		}
		if strings.Contains(r.stdout, "imported") {
			t.Errorf("invalid registry file reported an import: %s", r.stdout)
		}
		if n := count(`SELECT count(*) FROM label_registry`); n != 14 {
			t.Errorf("%d registry entries after the rejected file, want 14", n)
		}
		if n := count(`SELECT count(*) FROM label_registry WHERE model LIKE 'TEST-NEW-%'`); n != 0 {
			t.Errorf("%d entries of the rejected file imported", n)
		}
	})

	t.Run("partner import", func(t *testing.T) {
		d := time.Now().In(time.FixedZone("CST", 8*3600)).AddDate(0, 0, -2)
		day := d.Format(time.DateOnly)
		at := func(h int) string {
			return time.Date(d.Year(), d.Month(), d.Day(), h, 0, 0, 0, time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
		}
		const header = "transaction_id,status,card_token,amount_fen,currency,mcc,merchant_id,merchant_name,merchant_uscc,time,invoice_number,operator_trip_id\n"
		fareLine := func(id, token, mcc, trip string, h int) string {
			return fmt.Sprintf("%s,cleared,%s,500,CNY,%s,M-DEMO-METRO,Demo Metro,%s,%s,,%s\n", id, token, mcc, app.DemoMetroUSCC, at(h), trip)
		}
		good := write("settlement.csv", header+
			fareLine("cli-fare-1", "tok_demo_bob_1", "4111", "M-cli-1", 8)+
			fareLine("cli-fare-2", "tok_demo_alice_1", "4111", "M-cli-2", 18)+
			"TRAILER,2,1000\n")
		args := []string{"partner", "import", "--url", srv.base, "--partner", app.DemoBank,
			"--key-file", filepath.Join(keysDir, app.DemoBank+".whsk"), "--business-day", day}
		r := runCLI(t, nil, append(args, good)...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		for _, id := range []string{"cli-fare-1", "cli-fare-2"} {
			if !strings.Contains(r.stdout, fmt.Sprintf("%-22s %-10s -> %-9s", id, "cleared", "accepted")) {
				t.Errorf("output lacks %s accepted:\n%s", id, r.stdout)
			}
		}
		if n := count(`SELECT count(*) FROM evidence_events WHERE source = 'file' AND partner_tx_id LIKE 'cli-fare-%'`); n != 2 {
			t.Errorf("%d file events recorded, want 2", n)
		}
		// Sent again: every line recognised, nothing new.
		r = runCLI(t, nil, append(args, good)...)
		if r.code != 0 || strings.Count(r.stdout, "-> duplicate") != 2 {
			t.Errorf("re-import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		events := count(`SELECT count(*) FROM evidence_events`)
		if n := count(`SELECT count(*) FROM evidence_events WHERE partner_tx_id LIKE 'cli-fare-%'`); n != 2 {
			t.Errorf("%d events after the re-import, want 2", n)
		}

		// Line 3 has a bad MCC: exit 1, the server's per-line report, nothing applied.
		bad := write("bad-settlement.csv", header+
			fareLine("cli-fare-3", "tok_demo_bob_1", "4111", "M-cli-3", 9)+
			fareLine("cli-fare-4", "tok_demo_bob_1", "41X1", "M-cli-4", 10)+
			"TRAILER,2,1000\n")
		r = runCLI(t, nil, append(args, bad)...)
		plain := plainLines(r.stderr)
		if r.code != 1 || len(plain) != 1 || plain[0] != "greenpoints partner: the server answered HTTP 422" {
			t.Errorf("invalid settlement file: exit %d, stderr lines %q", r.code, plain)
		}
		for _, want := range []string{"HTTP 422", `"reason": "file_invalid"`, `"field": "line 3: mcc"`} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %s:\n%s", want, r.stdout)
			}
		}
		if n := count(`SELECT count(*) FROM evidence_events`); n != events {
			t.Errorf("the rejected file changed the events from %d to %d", events, n)
		}
	})
}
