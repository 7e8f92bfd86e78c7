package shimcc

import (
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// fakeStub answers only what Invoke reads before the contract runs; any
// other call panics (nil embedded interface), which the contract would
// report as contract_panic.
type fakeStub struct {
	shim.ChaincodeStubInterface
	args [][]byte
	ts   time.Time
}

func (f *fakeStub) GetArgs() [][]byte { return f.args }
func (f *fakeStub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	return timestamppb.New(f.ts), nil
}

func TestInvokeRefusesBeforeTheContract(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cc := New()
	cc.now = func() time.Time { return now }
	for _, c := range []struct {
		name   string
		args   [][]byte
		ts     time.Time
		reason string
	}{
		{"no function", nil, now, "bad_arguments"},
		{"three arguments", [][]byte{[]byte("GetRegistry"), []byte("{}"), []byte("x")}, now, "bad_arguments"},
		{"proposal from the future", [][]byte{[]byte("GetRegistry"), []byte("{}")}, now.Add(2*time.Minute + time.Second), "clock_skew"},
		{"stale proposal", [][]byte{[]byte("GetRegistry"), []byte("{}")}, now.Add(-3 * time.Minute), "clock_skew"},
	} {
		resp := cc.Invoke(&fakeStub{args: c.args, ts: c.ts})
		if resp.GetStatus() != shim.ERROR {
			t.Errorf("%s: status %d, want an error", c.name, resp.GetStatus())
			continue
		}
		e, ok := apperr.DecodeWire(resp.GetMessage())
		if !ok || e.Reason != c.reason || !strings.HasPrefix(resp.GetMessage(), "gp1|") {
			t.Errorf("%s: message %q, want reason %s", c.name, resp.GetMessage(), c.reason)
		}
	}
}
