package evidence_test

import (
	"regexp"
	"testing"

	"github.com/greenpoints/greenpoints/issuer/evidence"
)

func TestReasons(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]bool{}
	rs := evidence.Reasons()
	for _, r := range rs {
		if !snake.MatchString(r.Code) {
			t.Errorf("code %q is not snake_case", r.Code)
		}
		if seen[r.Code] {
			t.Errorf("code %q appears twice", r.Code)
		}
		seen[r.Code] = true
		if r.Title == "" || r.Description == "" {
			t.Errorf("code %q has an empty title or description", r.Code)
		}
	}
	// Every constant is in the catalogue.
	for _, c := range []string{
		evidence.ReasonNotCleared, evidence.ReasonNoCardLink, evidence.ReasonConsentWithdrawn,
		evidence.ReasonMCCNotTrip, evidence.ReasonNoEligibleItems, evidence.ReasonModelNotInRegistry,
		evidence.ReasonGradeNotEligible, evidence.ReasonIntercityMode, evidence.ReasonCategoryNotAccepted,
		evidence.ReasonCapReached, evidence.ReasonClaimedElsewhere, evidence.ReasonAlreadyIssued,
		evidence.ReasonDuplicateEvidence, evidence.ReasonRefundBeforeIssue, evidence.ReasonProfileForbids,
		evidence.ReasonLedgerRejected,
	} {
		if !seen[c] {
			t.Errorf("constant %q is missing from Reasons()", c)
		}
	}
	if len(rs) != len(seen) {
		t.Errorf("%d reasons, %d distinct", len(rs), len(seen))
	}
	rs[0].Code = "mutated"
	if evidence.Reasons()[0].Code == "mutated" {
		t.Error("Reasons returns the package's own slice")
	}
}
