package pipeline

import (
	"testing"
	"time"
)

// TestResponseDueNow: the batcher is woken only for work it can do now.
func TestResponseDueNow(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	resp := func(as ...ActionResult) *Response { return &Response{Events: []EventResult{{Actions: as}}} }
	for _, tc := range []struct {
		name string
		resp *Response
		want bool
	}{
		{"nothing queued", &Response{Events: []EventResult{{Outcome: OutcomeRecorded}}}, false},
		{"held for the hold period", resp(ActionResult{Status: "queued", NotBefore: now.Add(72 * time.Hour)}), false},
		{"trip waiting for its day", resp(ActionResult{Status: "queued", NotBefore: now.Add(time.Hour)}), false},
		{"rejected", resp(ActionResult{Status: "rejected"}), false},
		{"hold period over", resp(ActionResult{Status: "queued", NotBefore: now.Add(-time.Hour)}), true},
		{"due this instant", resp(ActionResult{Status: "queued", NotBefore: now}), true},
		{"reversal", resp(ActionResult{Status: "reversal_queued"}), true},
		{"one of several", resp(ActionResult{Status: "rejected"}, ActionResult{Status: "queued", NotBefore: now.Add(-time.Second)}), true},
	} {
		if got := tc.resp.DueNow(now); got != tc.want {
			t.Errorf("%s: DueNow = %v, want %v", tc.name, got, tc.want)
		}
	}
}
