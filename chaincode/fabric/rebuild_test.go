package fabric_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/app"
)

// TestRebuildOnFabric: the projection that 'greenpoints projection rebuild
// --ledger fabric' replays from block 0 equals, row for row, the one the
// issuer's server built incrementally from the Fabric block events
// (issuances, the day's transit grant, a reversal). The rebuild reads the
// channel as the issuer's own identity.
func TestRebuildOnFabric(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t, "greenpoints")
	channel := newChannel(t)
	reg := ledgerOn(t, channel, regulatorMSP)
	submitAs(t, reg, regulatorMSP, "InitLedger", points.InitLedgerArgs{RegulatorMSP: regulatorMSP})
	submitAs(t, reg, regulatorMSP, "RegisterMember", points.RegisterMemberArgs{MSP: issuerMSP, Role: points.RoleIssuer,
		Name: "Bank A", FilingNumber: "FAB-0001", Status: points.StatusActive})

	a, stop := startIssuer(t, channel)
	dbURL := a.Pool().Config().ConnString()
	bank := seedIssuer(t, a, "")
	postSigned(t, bank, "card-transactions", app.DemoCardSample(time.Now()))
	var txs []string
	for _, id := range []string{app.DemoSampleTxIDs.Fridge, app.DemoSampleTxIDs.Washer, app.DemoSampleTxIDs.Fare} {
		txs = append(txs, waitStatus(t, bank, "card-transactions/"+id, "issued").Actions[0].LedgerTxID)
	}
	postSigned(t, bank, "card-transactions", app.DemoRefundSample(time.Now()))
	waitStatus(t, bank, "card-transactions/"+app.DemoSampleTxIDs.Washer, "reversed")
	var revTxs []string
	if err := a.Pool().QueryRow(t.Context(), `SELECT tx_ids FROM reversals WHERE status = 'done'`).Scan(&revTxs); err != nil || len(revTxs) == 0 {
		t.Fatalf("the washer's reversal: %v, transactions %v", err, revTxs)
	}
	// Everything is in the projection before the server stops, so nothing
	// moves under the comparison.
	for _, id := range append(txs, revTxs[len(revTxs)-1]) {
		waitProjected(t, a, id)
	}
	stop()

	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	incremental := dumpProjection(t, pool)

	org1, bankA := nw.Orgs[0], orgOf(t, issuerMSP)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, bin, "projection", "rebuild", "--ledger", "fabric", "--database-url", dbURL,
		"--fabric-peer", org1.Peers[0].Address, "--fabric-tls-ca", org1.TLSRootCert, "--fabric-msp-id", issuerMSP,
		"--fabric-cert", bankA.User.Cert, "--fabric-key", bankA.User.Key, "--fabric-channel", channel)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("projection rebuild: %v\n%s", err, out)
	}
	t.Logf("projection rebuild --ledger fabric took %s:\n%s", time.Since(began).Round(time.Millisecond), out)
	if !strings.Contains(string(out), "projection rebuilt to block") {
		t.Errorf("rebuild output: %s", out)
	}
	if diff := cmp.Diff(incremental, dumpProjection(t, pool)); diff != "" {
		t.Errorf("rebuilt projection differs from the incremental one (-incremental +rebuilt):\n%s", diff)
	}
}

// dumpProjection returns every projection table's rows as canonical JSON,
// sorted, by table (the checkpoint's update and rebuild times aside).
func dumpProjection(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name LIKE 'proj\_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 5 {
		t.Fatalf("projection tables: %v", tables)
	}
	dump := map[string]string{}
	for _, table := range tables {
		var rowsJSON string
		row := "to_jsonb(t)"
		if table == "proj_checkpoint" {
			row += " - 'updated_at' - 'rebuilt_at'" // when, not what
		}
		q := `SELECT coalesce(jsonb_agg(j ORDER BY j::text), '[]')::text FROM (SELECT ` + row + ` AS j FROM ` + pgxIdent(table) + ` t) s`
		if err := pool.QueryRow(ctx, q).Scan(&rowsJSON); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		dump[table] = rowsJSON
	}
	if dump["proj_lots"] == "[]" {
		t.Fatal("the projection holds no lots")
	}
	return dump
}

func pgxIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// buildCommand builds cmd/<name> of this module into the test's directory.
func buildCommand(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/greenpoints/greenpoints/cmd/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}
