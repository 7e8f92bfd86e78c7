package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/issuer/notices"
)

// consumerPrefs gives the notices the preferences consumers set
// (internal/consumers' notification_prefs). An account without a consumer
// record (created before records existed, or by another system) gets the
// defaults; an erased person gets no channel at all: processing of their
// data has stopped, so nothing is sent.
type consumerPrefs struct {
	pool  *pgxpool.Pool
	store *consumers.Store
}

func (c consumerPrefs) For(ctx context.Context, account string) (notices.Prefs, error) {
	var erased bool
	err := c.pool.QueryRow(ctx, `SELECT erased_at IS NOT NULL FROM consumers WHERE account = $1`, account).Scan(&erased)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return notices.DefaultPreferences{}.For(ctx, account)
	case err != nil:
		return notices.Prefs{}, fmt.Errorf("look up consumer: %w", err)
	case erased:
		return notices.Prefs{}, nil
	}
	p, err := c.store.Preferences(ctx, account)
	if apperr.CodeOf(err) == apperr.NotFound {
		return notices.Prefs{}, nil // erased meanwhile
	}
	if err != nil {
		return notices.Prefs{}, err
	}
	return toNoticePrefs(p), nil
}

// toNoticePrefs converts stored preferences: push before SMS (free, and
// silent where a text is not); quiet hours as minutes of the local day.
func toNoticePrefs(p consumers.Preferences) notices.Prefs {
	var out notices.Prefs
	if p.Push {
		out.Channels = append(out.Channels, notices.ChannelPush)
	}
	if p.SMS {
		out.Channels = append(out.Channels, notices.ChannelSMS)
	}
	start, err1 := time.Parse("15:04", p.QuietStart)
	end, err2 := time.Parse("15:04", p.QuietEnd)
	if err1 == nil && err2 == nil && start != end {
		out.Quiet = &notices.QuietHours{Start: start.Hour()*60 + start.Minute(), End: end.Hour()*60 + end.Minute(), Zone: p.TimeZone}
	}
	return out
}
