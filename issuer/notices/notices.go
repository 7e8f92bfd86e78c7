// Package notices tells consumers what they must be told and proves it was
// done: reminders before their points expire (at the compliance profile's
// offsets, through an outbox with retries, quiet hours and pluggable
// senders), notices of changes that reduce their rights (to every holder,
// the notice period ahead), the grace extension on the ledger of lots no
// reminder reached (grace records for those that expired anyway), the
// expiry sweep that records expiry on
// the ledger in bounded chunks, and the Merkle anchoring of every finished
// notification so an auditor can check that no point expired unannounced.
//
// Every job takes the time it runs for, so tests and backfills can run it
// for any instant; Run drives them with the clock. Jobs are safe on several
// server instances: rows are unique per lot and offset (per change and
// account), deliveries are claimed with SKIP LOCKED leases, and a cycle
// holds a per-issuer advisory lock. docs/notices.md describes the design.
package notices

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/issuer"
	"github.com/greenpoints/greenpoints/issuer/rules"
)

// Notification kinds (also the kinds of anchored batches).
const (
	KindReminder = "expiry_reminder"
	KindNotice   = "rights_notice"
)

// Notification statuses.
const (
	StatusPending     = "pending"
	StatusSent        = "sent"
	StatusUndelivered = "undelivered"
)

// DefaultReminderOffsetsDays are used for lots whose profile is unknown.
var DefaultReminderOffsetsDays = []int{30, 7, 1}

// Bounds: a limit on everything.
const (
	chunk          = 500    // rows per query of the creating jobs
	deliverChunk   = 50     // notifications per delivery step
	maxSweepTxs    = 10_000 // SweepExpired transactions per bucket and cycle
	maxSweepBucket = 400    // buckets per cycle
	conflictRetry  = 3      // re-submissions of a conflicted sweep
)

// Config configures a Service.
type Config struct {
	// IssuerMSP is the issuer whose lots, accounts and anchors these are.
	IssuerMSP string
	// Profiles are the issuer's compliance profile versions: a lot's
	// reminders and grace follow the version it was issued under (a change
	// applies only to later issuances), else the version in force.
	Profiles []rules.Profile
	// RuleSets are the issuer's rule-set versions (for rights notices).
	RuleSets []rules.RuleSet
	// Preferences: nil means DefaultPreferences.
	Preferences Preferences
	// Sender delivers; required.
	Sender Sender
	// MaxAttempts per notification; 0 means 8.
	MaxAttempts int
	// RetryBase is the first retry's delay, doubled per attempt up to an
	// hour; 0 means 30 s.
	RetryBase time.Duration
	// SweepLimit is SweepExpired's limit; 0 means points.DefaultSweepLimit.
	SweepLimit int
	// Interval between cycles of Run; 0 means 1 h.
	Interval time.Duration
	// Poll is how often Run looks for due deliveries; 0 means 1 s.
	Poll time.Duration
	// BatchLeaves bounds an anchored batch; 0 means 10,000.
	BatchLeaves int
	// AnchorAfter: a batch smaller than BatchLeaves is anchored once its
	// oldest notification has waited this long (fewer, fuller batches:
	// GetAnchors lists 1,000 batches per issuer); 0 means 1 h, negative
	// means at once.
	AnchorAfter time.Duration
	// GraceLookback is how far back the grace check looks for expired lots
	// (it runs every cycle; the overlap makes it robust to projection lag);
	// 0 means 7 days.
	GraceLookback time.Duration
	// Log: nil discards.
	Log *slog.Logger
}

// Service runs the jobs of one issuer. Its methods are safe for concurrent
// use and across instances.
type Service struct {
	pool *pgxpool.Pool
	led  issuer.Ledger
	cfg  Config
	log  *slog.Logger
}

// New returns a Service over pool (migrated) and led.
func New(pool *pgxpool.Pool, led issuer.Ledger, cfg Config) (*Service, error) {
	if cfg.IssuerMSP == "" {
		return nil, errors.New("notices: no issuer MSP")
	}
	if cfg.Sender == nil {
		return nil, errors.New("notices: no sender")
	}
	for _, p := range cfg.Profiles {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
	}
	cfg.Profiles = slices.Clone(cfg.Profiles)
	slices.SortFunc(cfg.Profiles, func(a, b rules.Profile) int { return a.EffectiveAt.Compare(b.EffectiveAt) })
	cfg.RuleSets = slices.Clone(cfg.RuleSets)
	slices.SortFunc(cfg.RuleSets, func(a, b rules.RuleSet) int { return a.EffectiveAt.Compare(b.EffectiveAt) })
	if cfg.Preferences == nil {
		cfg.Preferences = DefaultPreferences{}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxAttempts, 8)
	def(&cfg.SweepLimit, points.DefaultSweepLimit)
	def(&cfg.BatchLeaves, 10_000)
	defD(&cfg.RetryBase, 30*time.Second)
	defD(&cfg.Interval, time.Hour)
	defD(&cfg.Poll, time.Second)
	defD(&cfg.AnchorAfter, time.Hour)
	defD(&cfg.GraceLookback, 7*24*time.Hour)
	if cfg.SweepLimit > points.MaxSweepLimit {
		return nil, fmt.Errorf("notices: sweep limit above the contract's %d", points.MaxSweepLimit)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{pool: pool, led: led, cfg: cfg, log: log.With("component", "notices")}, nil
}

// profileOf returns the profile version (id, version), else the one in
// force at now; ok is false when the service knows no profile at all.
func (s *Service) profileOf(id, version string, now time.Time) (rules.Profile, bool) {
	for _, p := range s.cfg.Profiles {
		if p.ID == id && p.Version == version {
			return p, true
		}
	}
	return s.inForce(now)
}

func (s *Service) inForce(now time.Time) (rules.Profile, bool) {
	for i := len(s.cfg.Profiles) - 1; i >= 0; i-- {
		if !s.cfg.Profiles[i].EffectiveAt.After(now) {
			return s.cfg.Profiles[i], true
		}
	}
	if len(s.cfg.Profiles) > 0 {
		return s.cfg.Profiles[0], true
	}
	return rules.Profile{}, false
}

// offsetsOf returns the reminder offsets of the profile (largest first).
func offsetsOf(p rules.Profile, ok bool) []int {
	if !ok {
		return DefaultReminderOffsetsDays
	}
	o := slices.Clone(p.ReminderOffsetsDays)
	slices.Sort(o)
	slices.Reverse(o)
	return o
}

// CycleReport is what one Cycle did.
type CycleReport struct {
	Skipped   bool // another instance holds the issuer's cycle
	Reminders int
	Notices   int
	Extended  int // lots whose expiry ExtendGrace extended
	Grace     int
	Sweep     SweepReport
	Batches   []Batch
}

// Cycle runs the periodic jobs once for now, in this order: reminders,
// rights notices, grace extensions (before expiry), grace records (after
// expiry, for lots not extended), the sweep and anchoring. The grace check
// runs before the sweep so that it sees every lot that expired. Only one
// instance runs an issuer's cycle at a time (a session advisory lock);
// the others skip.
func (s *Service) Cycle(ctx context.Context, now time.Time) (CycleReport, error) {
	var r CycleReport
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Release()
	key := lockKey("notices:" + s.cfg.IssuerMSP)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return r, err
	}
	if !got {
		r.Skipped = true
		return r, nil
	}
	defer func() {
		// A failed unlock (ctx gone) must not leave the lock held by a
		// pooled session: close the connection instead.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()
	if r.Reminders, err = s.CreateReminders(ctx, now); err != nil {
		return r, fmt.Errorf("reminders: %w", err)
	}
	if r.Notices, err = s.EnqueueNotices(ctx, now); err != nil {
		return r, fmt.Errorf("rights notices: %w", err)
	}
	if r.Extended, err = s.ExtendGrace(ctx, now); err != nil {
		return r, fmt.Errorf("grace extension: %w", err)
	}
	if r.Grace, err = s.RecordGrace(ctx, now); err != nil {
		return r, fmt.Errorf("grace: %w", err)
	}
	if r.Sweep, err = s.Sweep(ctx, now); err != nil {
		return r, fmt.Errorf("sweep: %w", err)
	}
	if r.Batches, err = s.AnchorBatches(ctx, now); err != nil {
		return r, fmt.Errorf("anchor: %w", err)
	}
	return r, nil
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Run runs Cycle every Interval and delivers due notifications every Poll
// until ctx ends, then returns nil. Failures are logged and retried at the
// next tick.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			n, err := s.Deliver(ctx, time.Now())
			if err != nil && ctx.Err() == nil {
				s.log.Warn("notification delivery failed", "err", err)
			}
			if n < deliverChunk || err != nil {
				sleep(ctx, s.cfg.Poll)
			}
		}
	}()
	for ctx.Err() == nil {
		r, err := s.Cycle(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("expiry and notices cycle failed", "err", err)
		case err == nil && !r.Skipped:
			s.log.Info("expiry and notices cycle", "reminders", r.Reminders, "notices", r.Notices, "extended", r.Extended, "grace", r.Grace,
				"swept_lots", r.Sweep.Lots, "swept_points", r.Sweep.Points, "sweep_txs", r.Sweep.Txs, "batches", len(r.Batches))
		}
		sleep(ctx, s.cfg.Interval)
	}
	<-done
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
