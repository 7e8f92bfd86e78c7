package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
)

// DefaultTimeZone is the time zone of quiet hours when a person set none.
const DefaultTimeZone = "Asia/Shanghai"

// Preferences say how a person wants to be reached with reminders and
// notices, and when not to be disturbed. Quiet hours run from QuietStart to
// QuietEnd ("HH:MM", local time in TimeZone), across midnight when QuietEnd
// is earlier; equal times mean none.
type Preferences struct {
	SMS        bool   `json:"sms"`
	Push       bool   `json:"push"`
	QuietStart string `json:"quietStart"`
	QuietEnd   string `json:"quietEnd"`
	TimeZone   string `json:"timeZone"`
}

// DefaultPreferences apply to a person who set none: app push, no SMS (a
// text costs money and reaches a phone that may change hands), no quiet
// hours.
func DefaultPreferences() Preferences {
	return Preferences{Push: true, QuietStart: "00:00", QuietEnd: "00:00", TimeZone: DefaultTimeZone}
}

// minuteOfDay parses "HH:MM".
func minuteOfDay(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// Validate returns every field problem of p.
func (p Preferences) Validate() []apperr.FieldError {
	var errs []apperr.FieldError
	for _, f := range []struct{ name, v string }{{"quietStart", p.QuietStart}, {"quietEnd", p.QuietEnd}} {
		if _, ok := minuteOfDay(f.v); !ok {
			errs = append(errs, apperr.FieldError{Field: f.name, Reason: FieldTimeOfDay, Detail: f.name + " must be a time HH:MM"})
		}
	}
	if _, err := time.LoadLocation(p.TimeZone); err != nil || p.TimeZone == "" || p.TimeZone == "Local" {
		errs = append(errs, apperr.FieldError{Field: "timeZone", Reason: FieldTimeZone, Detail: "timeZone must be an IANA time zone, e.g. Asia/Shanghai"})
	}
	return errs
}

// NextAllowed returns t when it is outside quiet hours, else the end of the
// quiet period containing t. Callers that must deliver before a deadline
// (a reminder before its expiry) compare the result with the deadline
// themselves: preferences never move a deadline.
func (p Preferences) NextAllowed(t time.Time) time.Time {
	start, ok1 := minuteOfDay(p.QuietStart)
	end, ok2 := minuteOfDay(p.QuietEnd)
	loc, err := time.LoadLocation(p.TimeZone)
	if !ok1 || !ok2 || err != nil || start == end {
		return t
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	switch {
	case start < end && m >= start && m < end:
		return midnight.Add(time.Duration(end) * time.Minute)
	case start > end && m >= start:
		return midnight.AddDate(0, 0, 1).Add(time.Duration(end) * time.Minute)
	case start > end && m < end:
		return midnight.Add(time.Duration(end) * time.Minute)
	}
	return t
}

// Preferences returns the account holder's preferences, or
// DefaultPreferences when they set none. Errors: NotFound
// (account_not_found) for unknown accounts and erased people.
func (s *Store) Preferences(ctx context.Context, account string) (Preferences, error) {
	var sms, push *bool
	var qs, qe *int
	var tz *string
	err := s.pool.QueryRow(ctx, `SELECT n.sms, n.push, n.quiet_start, n.quiet_end, n.time_zone
		FROM consumers c LEFT JOIN notification_prefs n ON n.person_id = c.id
		WHERE c.account = $1 AND c.erased_at IS NULL`, account).Scan(&sms, &push, &qs, &qe, &tz)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Preferences{}, apperr.New(apperr.NotFound, ReasonAccountNotFound, "no consumer account %q", account)
	case err != nil:
		return Preferences{}, fmt.Errorf("load preferences: %w", err)
	case sms == nil: // the person set none
		return DefaultPreferences(), nil
	}
	return Preferences{SMS: *sms, Push: *push, TimeZone: *tz,
		QuietStart: fmt.Sprintf("%02d:%02d", *qs/60, *qs%60), QuietEnd: fmt.Sprintf("%02d:%02d", *qe/60, *qe%60)}, nil
}

// SetPreferences replaces the account holder's preferences. Errors: Invalid
// (validation_failed) with field errors, NotFound (account_not_found).
func (s *Store) SetPreferences(ctx context.Context, account string, p Preferences) error {
	if errs := p.Validate(); len(errs) > 0 {
		return invalid(ReasonValidationFailed, errs)
	}
	qs, _ := minuteOfDay(p.QuietStart)
	qe, _ := minuteOfDay(p.QuietEnd)
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		sp, err := load(ctx, tx, "account", account, true)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notification_prefs (person_id, sms, push, quiet_start, quiet_end, time_zone)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (person_id) DO UPDATE SET sms = EXCLUDED.sms, push = EXCLUDED.push,
			quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, time_zone = EXCLUDED.time_zone, updated_at = now()`,
			sp.id, p.SMS, p.Push, qs, qe, p.TimeZone)
		if err != nil {
			return fmt.Errorf("store preferences: %w", err)
		}
		return nil
	})
}
