package embedded_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/greenpoints/greenpoints/chaincode/contracttest"
	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/pgtest"
	"github.com/greenpoints/greenpoints/issuer"
)

// newPointsLedger starts an embedded ledger running the points contract on
// a fresh database, closed when the test ends.
func newPointsLedger(tb testing.TB, opts embedded.Options) *embedded.Ledger {
	tb.Helper()
	pool := pgtest.NewDB(tb)
	if opts.Signer == nil {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			tb.Fatal(err)
		}
		opts.Signer, opts.KeyID = priv, "contract-suite/v1"
	}
	l, err := embedded.New(context.Background(), pool, points.New(), opts)
	if err != nil {
		tb.Fatalf("embedded.New: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// TestContractSuite runs the backend-agnostic contract suite on the
// embedded ledger (TestMain in main_test.go provides PostgreSQL).
func TestContractSuite(t *testing.T) {
	contracttest.Run(t, func(t *testing.T) issuer.Ledger {
		return newPointsLedger(t, embedded.Options{})
	})
}
