package notices

import (
	"context"
	"fmt"
	"time"
)

// Channels a notification can go out on.
const (
	ChannelPush = "push"
	ChannelSMS  = "sms"
)

// QuietHours is a daily window in which nothing is sent: [Start, End) in
// minutes of the local day in Zone; a window with Start > End spans
// midnight (22:00 to 08:00 is {1320, 480}). Start == End means none.
type QuietHours struct {
	Start int    // 0..1439
	End   int    // 0..1439
	Zone  string // IANA name
}

// Prefs are one consumer's notification preferences.
type Prefs struct {
	// Channels in order of preference; the first is used. None means the
	// consumer cannot be reached: their notifications end undelivered
	// (and an expiring lot's grace applies).
	Channels []string
	// Quiet is nil when the consumer has no quiet hours.
	Quiet *QuietHours
}

// Preferences looks up consumers' preferences by pseudonymous account. The
// consumers package (notification_prefs, internal/consumers) implements it
// in production; DefaultPreferences stands in until it is wired.
type Preferences interface {
	For(ctx context.Context, account string) (Prefs, error)
}

// DefaultPreferences gives every account app push and no quiet hours.
type DefaultPreferences struct{}

// For returns the default preferences.
func (DefaultPreferences) For(context.Context, string) (Prefs, error) {
	return Prefs{Channels: []string{ChannelPush}}, nil
}

// Validate reports whether q is a usable window.
func (q *QuietHours) Validate() error {
	if q.Start < 0 || q.Start > 1439 || q.End < 0 || q.End > 1439 {
		return fmt.Errorf("quiet hours must be minutes 0 to 1439 of the day")
	}
	if _, err := time.LoadLocation(q.Zone); err != nil || q.Zone == "" || q.Zone == "Local" {
		return fmt.Errorf("quiet hours need an IANA time zone, not %q", q.Zone)
	}
	return nil
}

// end returns the end of the quiet window containing t, or t itself when t
// is outside quiet hours.
func (q *QuietHours) end(t time.Time) time.Time {
	if q == nil || q.Start == q.End {
		return t
	}
	loc, err := time.LoadLocation(q.Zone)
	if err != nil {
		return t // validated on the way in; an unknown zone sends rather than hides
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	quiet := q.Start <= m && m < q.End
	if q.Start > q.End {
		quiet = m >= q.Start || m < q.End
	}
	if !quiet {
		return t
	}
	y, mo, d := lt.Date()
	// The window's end is the next local End after t: today's, or
	// tomorrow's when today's has passed (a window spanning midnight).
	e := time.Date(y, mo, d, q.End/60, q.End%60, 0, 0, loc)
	if !e.After(t) {
		e = time.Date(y, mo, d+1, q.End/60, q.End%60, 0, 0, loc)
	}
	return e
}

// SendAt returns when a notification due at due should go out: at due, or
// at the end of the consumer's quiet hours when due falls inside them, but
// never at or after deadline (a reminder's expiry): a reminder that quiet
// hours would push past the expiry it warns of is sent at due instead,
// quiet hours or not, because a late reminder is worth nothing. A zero
// deadline means none.
func SendAt(due, deadline time.Time, q *QuietHours) time.Time {
	s := q.end(due)
	if !deadline.IsZero() && !s.Before(deadline) {
		return due
	}
	return s
}
