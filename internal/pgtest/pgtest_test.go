package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestNewDBIsolatedAndMigrated(t *testing.T) {
	t.Parallel()
	a, b := pgtest.NewDB(t), pgtest.NewDB(t)
	ctx := t.Context()

	want, err := database.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := database.MigrationVersion(ctx, a); err != nil || got != want {
		t.Fatalf("MigrationVersion = %d, %v; want %d", got, err, want)
	}
	if _, err := a.Exec(ctx, "INSERT INTO app_meta (key, value) VALUES ('k', 'v')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM app_meta").Scan(&n); err != nil || n != 0 {
		t.Errorf("second database sees %d rows (err %v); want 0", n, err)
	}
}

func TestCleanupDropsDatabase(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		pool := pgtest.NewDB(t)
		if err := pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		// A stray connection must not stop the drop.
		conn, err := pgx.Connect(t.Context(), pgtest.ClusterURL(name))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn // deliberately leaked
	})
	admin, err := pgx.Connect(t.Context(), pgtest.ClusterURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var exists bool
	if err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewDBURL(t *testing.T) {
	t.Parallel()
	u := pgtest.NewDBURL(t)
	if !strings.HasPrefix(u, "postgres://") {
		t.Errorf("NewDBURL = %q, want a postgres:// URL", u)
	}
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "SELECT FROM app_meta"); err != nil {
		t.Errorf("database from NewDBURL is not migrated: %v", err)
	}
}

// TestManyParallel clones while other clones and tests are running, as a
// package with many parallel tests does.
func TestManyParallel(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			pool := pgtest.NewDB(t)
			took := time.Since(began)
			if err := database.InTx(t.Context(), pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(t.Context(), "INSERT INTO app_meta (key, value) VALUES ('n', $1)", fmt.Sprint(i))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("NewDB took %s", took.Round(100*time.Microsecond))
		})
	}
}

func BenchmarkNewDB(b *testing.B) {
	// The databases are dropped when the benchmark ends, outside the timing.
	for b.Loop() {
		pgtest.NewDB(b)
	}
}
