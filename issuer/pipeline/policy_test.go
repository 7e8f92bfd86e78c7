package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/greenpoints/greenpoints/issuer/rules"
)

// TestPolicyRefusesReductionWithoutNotice: a published rule set lowering the
// points per kg must take effect at least the profile's notice period after
// its publication, or the server refuses the policy.
func TestPolicyRefusesReductionWithoutNotice(t *testing.T) {
	p, err := NewPolicy("cn-default", "cn-default-rules")
	if err != nil {
		t.Fatal(err)
	}
	cur := p.Rules[len(p.Rules)-1]
	next := cur
	next.Version = "2"
	next.PointsPerKg = append([]rules.CategoryRate(nil), cur.PointsPerKg...)
	for i := range next.PointsPerKg {
		if next.PointsPerKg[i].PointsPerKg > 1 {
			next.PointsPerKg[i].PointsPerKg-- // fewer points per kg: a reduction
		}
	}
	next.PublishedAt = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		effective time.Time
		wantErr   string
	}{
		{next.PublishedAt.AddDate(0, 0, 10), "notice_period_too_short"},
		{next.PublishedAt.AddDate(0, 0, 31), ""},
	} {
		next.EffectiveAt = tc.effective
		q := *p
		q.Rules = []rules.RuleSet{cur, next}
		err := q.check()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("effective %s: err %v, want %q", tc.effective.Format(time.DateOnly), err, tc.wantErr)
		}
	}
}
