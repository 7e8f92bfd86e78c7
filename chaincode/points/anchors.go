package points

import (
	"sync"
	"time"
	_ "time/tzdata" // every peer resolves zone names alike, whatever its OS ships

	"github.com/greenpoints/greenpoints/internal/apperr"
)

const day = 24 * time.Hour

// zones caches loaded time zones by name.
var zones sync.Map // string -> *time.Location

// loadZone loads an IANA time zone by name.
func loadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "" || name == "Local" || len(name) > 64 {
		return nil, errInvalid("invalid_timezone", "profile.timezone", "the time zone must be an IANA name such as Asia/Shanghai")
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, errInvalid("invalid_timezone", "profile.timezone", "unknown time zone %q", truncate(name, 64))
	}
	zones.Store(name, l)
	return l, nil
}

// profileOf validates a profile's arguments and returns the stored form.
func profileOf(p *ProfileArgs) (Profile, error) {
	if _, err := loadZone(p.Timezone); err != nil {
		return Profile{}, err
	}
	if p.MaxValidityDays < 1 || p.MaxValidityDays > MaxValidityDaysLimit {
		return Profile{}, errInvalid("invalid_max_validity_days", "profile.maxValidityDays", "maxValidityDays must be 1 to %d", MaxValidityDaysLimit)
	}
	if p.TransferMaxPoints < 0 || p.TransferMaxPointsPerMonth < 0 || p.PointValueFen < 0 {
		return Profile{}, errInvalid("invalid_profile", "profile", "caps and pointValueFen must not be negative")
	}
	notice := int64(DefaultNoticeDays)
	if p.NoticeDays != nil {
		notice = *p.NoticeDays
	}
	if p.GraceDays < 0 || p.GraceDays > MaxValidityDaysLimit {
		return Profile{}, errInvalid("invalid_grace_days", "profile.graceDays", "graceDays must be 0 to %d", MaxValidityDaysLimit)
	}
	if notice < 0 || notice > 3650 {
		return Profile{}, errInvalid("invalid_notice_days", "profile.noticeDays", "noticeDays must be 0 to 3650")
	}
	return Profile{
		Timezone: p.Timezone, MaxValidityDays: p.MaxValidityDays, TransfersAllowed: p.TransfersAllowed,
		TransferMaxPoints: p.TransferMaxPoints, TransferMaxPointsPerMonth: p.TransferMaxPointsPerMonth,
		NoticeDays: notice, PointValueFen: p.PointValueFen, GraceDays: p.GraceDays,
	}, nil
}

// reducesRights reports whether next gives consumers less than prev: shorter
// validity, transfers forbidden where they were allowed, lower transfer caps
// (0 is "no cap", the most generous), or a shorter notice period: without
// the last, an issuer could first anchor a same-rights profile with no
// notice, then cut rights with none.
func reducesRights(prev, next Profile) bool {
	lowerCap := func(p, n int64) bool { return n != 0 && (p == 0 || n < p) }
	return next.MaxValidityDays < prev.MaxValidityDays ||
		next.NoticeDays < prev.NoticeDays ||
		next.GraceDays < prev.GraceDays ||
		(prev.TransfersAllowed && !next.TransfersAllowed) ||
		(next.TransfersAllowed && lowerCap(prev.TransferMaxPoints, next.TransferMaxPoints)) ||
		(next.TransfersAllowed && lowerCap(prev.TransferMaxPointsPerMonth, next.TransferMaxPointsPerMonth))
}

// inForce returns the schedule entry in force at now: the latest with
// effectiveAt <= now; nil when none is.
func (s *ProfileSchedule) inForce(now time.Time) *ScheduledProfile {
	var cur *ScheduledProfile
	for i := range s.Entries {
		if !s.Entries[i].EffectiveAt.After(now) {
			cur = &s.Entries[i]
		}
	}
	return cur
}

// loadSchedule reads an issuer's profile schedule (empty when none).
func (t *txn) loadSchedule(issuer string) (*ProfileSchedule, error) {
	s := &ProfileSchedule{Issuer: issuer}
	if _, err := t.getJSON(scheduleKey(issuer), s); err != nil {
		return nil, err
	}
	return s, nil
}

// profileInForce returns the caller's profile in force; Conflict when none.
func (t *txn) profileInForce(issuer string) (*ScheduledProfile, error) {
	s, err := t.loadSchedule(issuer)
	if err != nil {
		return nil, err
	}
	p := s.inForce(t.now)
	if p == nil {
		return nil, apperr.New(apperr.Conflict, "no_profile_in_force", "issuer %s has no compliance profile in force", issuer)
	}
	return p, nil
}

// anchorVersion anchors a rule, methodology or profile version of the
// calling issuer. Anchors are immutable: the same version again with the same
// content is a harmless no-op, with different content a conflict.
func anchorVersion(t *txn, a *AnchorVersionArgs) (any, error) {
	switch a.Kind {
	case AnchorRule, AnchorMethodology, AnchorProfile:
	default:
		return nil, errInvalid("invalid_kind", "kind", "kind must be rule, methodology or profile")
	}
	if err := needID("id", a.ID); err != nil {
		return nil, err
	}
	if err := needID("version", a.Version); err != nil {
		return nil, err
	}
	if err := needHex64("sha256", a.SHA256); err != nil {
		return nil, err
	}
	if a.EffectiveAt.IsZero() || a.EffectiveAt.Unix() < 0 || a.EffectiveAt.Unix() > maxUnix {
		return nil, errInvalid("invalid_effective_at", "effectiveAt", "effectiveAt must be an RFC 3339 time")
	}
	anchor := Anchor{
		Issuer: t.caller, Kind: a.Kind, ID: a.ID, Version: a.Version, SHA256: a.SHA256,
		EffectiveAt: a.EffectiveAt.UTC(), AnchoredAt: t.now, TxID: t.txID,
	}
	if a.Kind == AnchorProfile {
		if a.Profile == nil {
			return nil, errInvalid("profile_required", "profile", "a profile anchor must carry the profile's parameters")
		}
		p, err := profileOf(a.Profile)
		if err != nil {
			return nil, err
		}
		anchor.Profile = &p
	} else if a.Profile != nil {
		return nil, errInvalid("profile_unexpected", "profile", "only a profile anchor carries profile parameters")
	}
	key := anchorKey(t.caller, a.Kind, VersionRef{ID: a.ID, Version: a.Version})
	var old Anchor
	found, err := t.getJSON(key, &old)
	if err != nil {
		return nil, err
	}
	if found {
		if sameAnchor(old, anchor) {
			return AnchorResult{Status: "already_anchored", Anchor: old}, nil
		}
		return nil, apperr.New(apperr.Conflict, "anchor_conflict", "%s %s version %s is already anchored with different content", a.Kind, a.ID, a.Version)
	}
	if a.Kind == AnchorProfile {
		if err := t.scheduleProfile(&anchor); err != nil {
			return nil, err
		}
	}
	if err := t.put(key, anchor); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeAnchorRecorded, Anchor: &anchor})
	return AnchorResult{Status: "anchored", Anchor: anchor}, nil
}

func sameAnchor(a, b Anchor) bool {
	if a.SHA256 != b.SHA256 || !a.EffectiveAt.Equal(b.EffectiveAt) || (a.Profile == nil) != (b.Profile == nil) {
		return false
	}
	return a.Profile == nil || *a.Profile == *b.Profile
}

// scheduleProfile adds a new profile to the issuer's schedule. Profiles take
// effect in anchoring order (each later than the last); one that reduces
// consumers' rights against the profile before it must give that profile's
// notice. Entries superseded before now are pruned.
func (t *txn) scheduleProfile(anchor *Anchor) error {
	s, err := t.loadSchedule(t.caller)
	if err != nil {
		return err
	}
	if n := len(s.Entries); n > 0 {
		prev := s.Entries[n-1]
		if !anchor.EffectiveAt.After(prev.EffectiveAt) {
			return apperr.New(apperr.Conflict, "profile_out_of_order", "a new profile must take effect after %s %s (%s)", prev.ID, prev.Version, prev.EffectiveAt.Format(time.RFC3339))
		}
		if reducesRights(prev.Profile, *anchor.Profile) {
			earliest := t.now.Add(time.Duration(prev.Profile.NoticeDays) * day)
			if anchor.EffectiveAt.Before(earliest) {
				return errInvalid("insufficient_notice", "effectiveAt", "the profile reduces consumers' rights and must take effect no earlier than %s (%d days' notice)", earliest.Format(time.RFC3339), prev.Profile.NoticeDays)
			}
		}
	}
	// Keep the entry in force now and everything after it.
	var kept []ScheduledProfile
	cur := s.inForce(t.now)
	for _, e := range s.Entries {
		if cur == nil || !e.EffectiveAt.Before(cur.EffectiveAt) {
			kept = append(kept, e)
		}
	}
	kept = append(kept, ScheduledProfile{ID: anchor.ID, Version: anchor.Version, SHA256: anchor.SHA256, EffectiveAt: anchor.EffectiveAt, Profile: *anchor.Profile})
	if len(kept) > MaxProfileSchedule {
		return apperr.New(apperr.Conflict, "too_many_scheduled_profiles", "at most %d profiles may be scheduled", MaxProfileSchedule)
	}
	s.Entries = kept
	return t.put(scheduleKey(t.caller), s)
}

// anchorNoticeBatch anchors a batch of consumer notices by Merkle root.
func anchorNoticeBatch(t *txn, a *AnchorNoticeBatchArgs) (any, error) {
	if err := needID("batchId", a.BatchID); err != nil {
		return nil, err
	}
	if err := needID("kind", a.Kind); err != nil {
		return nil, err
	}
	if err := needHex64("merkleRoot", a.MerkleRoot); err != nil {
		return nil, err
	}
	if a.Count <= 0 {
		return nil, errInvalid("invalid_count", "count", "count must be positive")
	}
	n := NoticeBatch{Issuer: t.caller, BatchID: a.BatchID, Kind: a.Kind, MerkleRoot: a.MerkleRoot, Count: a.Count, AnchoredAt: t.now, TxID: t.txID}
	key := noticeKey(t.caller, a.BatchID)
	var old NoticeBatch
	found, err := t.getJSON(key, &old)
	if err != nil {
		return nil, err
	}
	if found {
		if old.Kind == n.Kind && old.MerkleRoot == n.MerkleRoot && old.Count == n.Count {
			return NoticeResult{Status: "already_anchored", Notice: old}, nil
		}
		return nil, apperr.New(apperr.Conflict, "anchor_conflict", "notice batch %s is already anchored with different content", a.BatchID)
	}
	if err := t.put(key, n); err != nil {
		return nil, err
	}
	t.emit(Change{Type: ChangeAnchorRecorded, Notice: &n})
	return NoticeResult{Status: "anchored", Notice: n}, nil
}
