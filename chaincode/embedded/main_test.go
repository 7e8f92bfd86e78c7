package embedded

import (
	"flag"
	"os"
	"testing"

	"github.com/greenpoints/greenpoints/internal/pgtest"
)

// TestMain gives the package's tests (this package's and the external
// embedded_test package's alike: they share one test binary) a PostgreSQL
// server, and stops the durable cluster the benchmarks may have started.
// Benchmarks keep the production settings of the window of recent writes.
func TestMain(m *testing.M) {
	// Validate every transaction with the producer's window of recent
	// writes where possible, and check each such validation against the
	// database.
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" {
		recentMinReads, crossCheckRecent = 0, true
	}
	code := pgtest.Main(m)
	stopDurableCluster()
	os.Exit(code)
}
