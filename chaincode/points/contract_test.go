package points

import (
	"strings"
	"testing"
)

// The contract's behaviour is tested through a real ledger: the
// backend-agnostic suite in chaincode/contracttest (run on the embedded
// ledger by chaincode/embedded's TestContractSuite, and on Fabric) and
// chaincode/embedded's property and fuzz tests. What stays here needs no
// ledger at all.

func TestFunctionsAndReadOnly(t *testing.T) {
	t.Parallel()
	c := New()
	fns := c.Functions()
	if len(fns) != 31 {
		t.Errorf("%d functions: %v", len(fns), fns)
	}
	for _, fn := range fns {
		if got, want := c.ReadOnly(fn), strings.HasPrefix(fn, "Get"); got != want {
			t.Errorf("ReadOnly(%s) = %v", fn, got)
		}
	}
}
