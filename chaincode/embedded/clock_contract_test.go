package embedded_test

import (
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/embedded"
	"github.com/greenpoints/greenpoints/chaincode/points"
)

// TestProfileNoticeAndMonthTurn checks the two rules of the contract that
// need the clock at chosen instants, which the real-time contract suite
// (chaincode/contracttest) cannot pick and Fabric would not accept: monthly
// transfer caps count in the profile's time zone, and a profile reducing
// consumers' rights takes effect only after the notice of the profile in
// force. It runs on the embedded ledger with its Clock option.
func TestProfileNoticeAndMonthTurn(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	start := time.Date(2030, 1, 15, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	c := pointsCalls{tb: t, l: newPointsLedger(t, embedded.Options{Clock: clock.Now})}
	seedPoints(c, start.Add(-day))
	c.ok(fzBankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{seedItem("i1", "a1", 5000, 0, start.Add(50*day))}})
	seedFamily(c, "fam", "a1", "a2")
	transfer := func(from, to string, pts int64, req string) points.TransferArgs {
		return points.TransferArgs{From: from, To: to, Points: pts, RequestHash: hexOf(req)}
	}

	c.ok(fzBankA, "Transfer", transfer("a1", "a2", 1000, "t1"))
	c.fail("monthly_transfer_limit_exceeded", fzBankA, "Transfer", transfer("a1", "a2", 501, "t2"))
	c.ok(fzBankA, "Transfer", transfer("a1", "a2", 500, "t3"))
	// The month turns in Asia/Shanghai (UTC+8) at 16:00 UTC on the last day.
	clock.set(time.Date(2030, 1, 31, 15, 59, 59, 0, time.UTC))
	c.fail("monthly_transfer_limit_exceeded", fzBankA, "Transfer", transfer("a1", "a2", 1, "t4"))
	clock.set(time.Date(2030, 1, 31, 16, 0, 1, 0, time.UTC))
	var tr points.TransferResult
	c.okInto(&tr, fzBankA, "Transfer", transfer("a1", "a2", 100, "t5"))
	if tr.Transfer.Month != "203002" || tr.Transfer.MonthPoints != 100 {
		t.Errorf("transfer %+v, want the first 100 points of 203002", tr.Transfer)
	}

	// A profile forbidding transfers reduces rights: the profile in force
	// gives 30 days' notice.
	now := clock.Now()
	p2 := points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: "cn", Version: "2", SHA256: hexOf("p2"), EffectiveAt: now.Add(29 * day),
		Profile: &points.ProfileArgs{Timezone: "Asia/Shanghai", MaxValidityDays: 3650}}
	c.fail("insufficient_notice", fzBankA, "AnchorVersion", p2)
	p2.EffectiveAt = now.Add(31 * day)
	c.ok(fzBankA, "AnchorVersion", p2)
	// Until then the profile in force still allows transfers.
	clock.set(now.Add(30 * day))
	c.ok(fzBankA, "Transfer", transfer("a2", "a1", 10, "t6"))
	clock.set(now.Add(32 * day))
	c.fail("transfers_not_allowed", fzBankA, "Transfer", transfer("a2", "a1", 1, "t7"))
	// Items naming the superseded profile are refused; under the new one they issue.
	exp := clock.Now().Add(day)
	neu := seedItem("new", "a1", 1, 0, exp)
	neu.ProfileVersion.Version = "2"
	var res points.IssueBatchResult
	c.okInto(&res, fzBankA, "IssueBatch", points.IssueBatchArgs{Items: []points.IssueItem{seedItem("old", "a1", 1, 0, exp), neu}})
	if r := res.Results[0]; r.Status != points.ItemRejected || r.Reason != "profile_not_in_force" {
		t.Errorf("item under the superseded profile %+v", r)
	}
	if r := res.Results[1]; r.Status != points.ItemIssued {
		t.Errorf("item under the profile in force %+v", r)
	}
}
