package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/quantify"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// Policy is the issuer's published policy: its compliance profile versions,
// rule-set versions and the methodology catalogue. Which version applies is
// decided by time: the rule set in force when the green action happened
// (a later change never reduces what an earlier action earned), the profile
// in force when the issuance is submitted (the ledger enforces that one).
type Policy struct {
	Jurisdiction string
	Profiles     []rules.Profile // one profile id, sorted by EffectiveAt
	Rules        []rules.RuleSet // one rule-set id, sorted by EffectiveAt
	Methods      *quantify.Catalogue
}

// NewPolicy selects the published versions of profileID and rulesID.
func NewPolicy(profileID, rulesID string) (*Policy, error) {
	profs, rs := rules.Published()
	p := &Policy{Jurisdiction: "CN", Methods: quantify.Published()}
	for _, pr := range profs {
		if pr.ID == profileID {
			p.Profiles = append(p.Profiles, pr)
		}
	}
	for _, r := range rs {
		if r.ID == rulesID {
			p.Rules = append(p.Rules, r)
		}
	}
	if len(p.Profiles) == 0 {
		return nil, fmt.Errorf("no published compliance profile %q", profileID)
	}
	if len(p.Rules) == 0 {
		return nil, fmt.Errorf("no published rule set %q", rulesID)
	}
	sort.Slice(p.Profiles, func(i, j int) bool { return p.Profiles[i].EffectiveAt.Before(p.Profiles[j].EffectiveAt) })
	sort.Slice(p.Rules, func(i, j int) bool { return p.Rules[i].EffectiveAt.Before(p.Rules[j].EffectiveAt) })
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// check refuses a published history in which a version reduces consumers'
// rights without the notice the version before it requires: the server
// would otherwise apply it. (The ledger enforces the same for profiles when
// they are anchored; rule sets are checked only here.)
func (p *Policy) check() error {
	for i := 1; i < len(p.Profiles); i++ {
		if err := rules.CheckProfileChange(p.Profiles[i-1], p.Profiles[i]); err != nil {
			return fmt.Errorf("profile %s version %s: %w", p.Profiles[i].ID, p.Profiles[i].Version, err)
		}
	}
	for i := 1; i < len(p.Rules); i++ {
		prof, err := p.Profile(p.Rules[i].EffectiveAt)
		if err != nil {
			return err
		}
		if err := rules.CheckRuleChange(prof, p.Rules[i-1], p.Rules[i]); err != nil {
			return fmt.Errorf("rule set %s version %s: %w", p.Rules[i].ID, p.Rules[i].Version, err)
		}
	}
	return nil
}

// Profile returns the profile version in force at t.
func (p *Policy) Profile(t time.Time) (rules.Profile, error) {
	for i := len(p.Profiles) - 1; i >= 0; i-- {
		if !p.Profiles[i].EffectiveAt.After(t) {
			return p.Profiles[i], nil
		}
	}
	return rules.Profile{}, apperr.New(apperr.Invalid, "no_profile_in_force", "no compliance profile is in force at %s", t.Format(time.RFC3339))
}

// RuleSet returns the rule-set version in force at t.
func (p *Policy) RuleSet(t time.Time) (rules.RuleSet, error) {
	for i := len(p.Rules) - 1; i >= 0; i-- {
		if !p.Rules[i].EffectiveAt.After(t) {
			return p.Rules[i], nil
		}
	}
	return rules.RuleSet{}, apperr.New(apperr.Invalid, "no_rules_in_force", "no rule set is in force at %s", t.Format(time.RFC3339))
}

// Anchor records every published version on the ledger as the issuer (the
// ledger refuses issuances under unanchored versions). Versions already
// anchored are skipped (one read-only query), so it runs at every start
// without writing anything when nothing changed.
func (p *Policy) Anchor(ctx context.Context, led issuer.Ledger, issuerMSP string) error {
	done := map[string]bool{}
	q, err := json.Marshal(points.IssuerArgs{Issuer: issuerMSP})
	if err != nil {
		return err
	}
	if b, err := led.Evaluate(ctx, issuer.Proposal{Caller: issuerMSP, Function: "GetAnchors", Args: q}); err == nil {
		var have points.Anchors
		if err := json.Unmarshal(b, &have); err != nil {
			return fmt.Errorf("decode anchors: %w", err)
		}
		for _, a := range have.Versions {
			done[a.Kind+"/"+a.ID+"/"+a.Version+"/"+a.SHA256] = true
		}
	}
	var as []points.AnchorVersionArgs
	for _, r := range p.Rules {
		as = append(as, points.AnchorVersionArgs{Kind: points.AnchorRule, ID: r.ID, Version: r.Version, SHA256: r.SHA256(), EffectiveAt: r.EffectiveAt})
	}
	for _, m := range p.Methods.All() {
		as = append(as, points.AnchorVersionArgs{Kind: points.AnchorMethodology, ID: m.ID, Version: m.Version, SHA256: m.SHA256(), EffectiveAt: m.EffectiveAt})
	}
	for _, pr := range p.Profiles {
		nd := int64(pr.NoticeDays)
		as = append(as, points.AnchorVersionArgs{Kind: points.AnchorProfile, ID: pr.ID, Version: pr.Version, SHA256: pr.SHA256(), EffectiveAt: pr.EffectiveAt,
			Profile: &points.ProfileArgs{Timezone: pr.Timezone, MaxValidityDays: int64(pr.MaxValidityDays), TransfersAllowed: pr.TransfersAllowed,
				TransferMaxPoints: pr.TransferMaxPoints, TransferMaxPointsPerMonth: pr.TransferMaxPointsPerMonth, NoticeDays: &nd, PointValueFen: pr.PointValueFen, GraceDays: int64(pr.GraceDays)}})
	}
	for _, a := range as {
		if done[a.Kind+"/"+a.ID+"/"+a.Version+"/"+a.SHA256] {
			continue
		}
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if _, err := led.Submit(ctx, issuer.Proposal{Caller: issuerMSP, Function: "AnchorVersion", Args: b}); err != nil {
			return fmt.Errorf("anchor %s %s/%s: %w", a.Kind, a.ID, a.Version, err)
		}
	}
	return nil
}
