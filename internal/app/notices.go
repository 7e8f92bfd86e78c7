package app

import (
	"context"
	"fmt"
	"net/url"
	"sync"

	"github.com/greenpoints/greenpoints/issuer/notices"
)

// noticesState builds the expiry and notices jobs once (Run or Notices,
// whichever comes first).
type noticesState struct {
	once sync.Once
	svc  *notices.Service
	err  error
}

// Notices returns the issuer's expiry, reminder and notice jobs: reminders
// and rights notices through the notification gateway (Config.NotifyGateway;
// empty: the log sender), grace records, the expiry sweep and the Merkle
// anchoring of notices. Channels and quiet hours are the consumers' own
// (consumerPrefs, prefs.go).
func (a *App) Notices() (*notices.Service, error) {
	a.ntf.once.Do(func() {
		var sender notices.Sender = notices.LogSender{Log: a.log.With("component", "notices")}
		if a.cfg.NotifyGateway != "" {
			u, err := url.Parse(a.cfg.NotifyGateway)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				a.ntf.err = fmt.Errorf("--notify-gateway-url must be an http(s) URL, not %q", a.cfg.NotifyGateway)
				return
			}
			sender = &notices.HTTPSender{URL: a.cfg.NotifyGateway}
		}
		issuerMSP := a.cfg.IssuerMSP
		if issuerMSP == "" {
			issuerMSP = DemoIssuerMSP
		}
		pol := a.svc.Policy()
		a.ntf.svc, a.ntf.err = notices.New(a.pool, a.led, notices.Config{
			IssuerMSP:   issuerMSP,
			Profiles:    pol.Profiles,
			RuleSets:    pol.Rules,
			Sender:      sender,
			Preferences: consumerPrefs{pool: a.pool, store: a.Consumers()},
			Interval:    a.cfg.SweepInterval,
			Log:         a.log,
		})
		if a.ntf.err != nil {
			a.ntf.err = fmt.Errorf("notices: %w", a.ntf.err)
		}
	})
	return a.ntf.svc, a.ntf.err
}

// runNotices is the background worker of the notices jobs.
func (a *App) runNotices(ctx context.Context) error {
	s, err := a.Notices()
	if err != nil {
		a.log.Error("expiry and notices jobs not started", "err", err)
		return err
	}
	return s.Run(ctx)
}
