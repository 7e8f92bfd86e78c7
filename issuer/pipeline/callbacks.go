package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/webhook"
)

// CallbackConfig tunes callback delivery.
type CallbackConfig struct {
	MaxAttempts int           // then the callback is given up (and stays queryable); 0 means 12
	Timeout     time.Duration // per delivery; 0 means 5 s
	Poll        time.Duration // 0 means 1 s
}

// Deliverer sends queued partner callbacks, signed by the issuer per the
// Standard Webhooks convention (v1a, Ed25519, so partners need only our
// public key), with exponential backoff. Rows are claimed with SKIP LOCKED,
// so several instances deliver without sending one callback twice at once;
// delivery is at least once (the webhook-id lets partners deduplicate).
type Deliverer struct {
	metrics *Metrics
	pool    *pgxpool.Pool
	signer  webhook.Signer
	client  *http.Client
	cfg     CallbackConfig
	log     *slog.Logger
}

// NewDeliverer returns a deliverer signing with signer.
func NewDeliverer(pool *pgxpool.Pool, signer webhook.Signer, cfg CallbackConfig, log *slog.Logger) *Deliverer {
	return newDeliverer(pool, signer, cfg, log)
}

// Deliverer returns a callback deliverer that records the service's metrics.
func (s *Service) Deliverer(signer webhook.Signer, cfg CallbackConfig) *Deliverer {
	d := newDeliverer(s.pool, signer, cfg, s.log)
	d.metrics = s.metrics
	return d
}

func newDeliverer(pool *pgxpool.Pool, signer webhook.Signer, cfg CallbackConfig, log *slog.Logger) *Deliverer {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 12
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	return &Deliverer{pool: pool, signer: signer, client: &http.Client{Timeout: cfg.Timeout}, cfg: cfg, log: log}
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := d.Step(ctx)
		if err != nil {
			d.log.Warn("callback delivery failed", "err", err)
		}
		if n == 0 || err != nil {
			sleep(ctx, d.cfg.Poll)
		}
	}
	return nil
}

// noURLError is the last_error of a callback parked because its partner
// has no callback URL.
const noURLError = "partner has no callback URL"

// sqlQueueCallbacks queues callbacks ($1 partner ids, $2 event types, $3
// payloads, in that order) and answers how many it parked at once: a
// partner without a URL reads outcomes from the status endpoint, and a
// callback parked when it is written costs no later update (each was
// written, then rewritten by the deliverer's parking).
const sqlQueueCallbacks = `WITH ins AS (INSERT INTO callbacks (partner_id, event_type, payload, next_attempt_at, last_error)
	SELECT s.p, s.t, s.b, CASE WHEN s.parked THEN 'infinity'::timestamptz ELSE now() END,
		CASE WHEN s.parked THEN '` + noURLError + `' ELSE '' END
	FROM (SELECT u.p, u.t, u.b, coalesce((SELECT callback_url = '' FROM partners WHERE id = u.p), false) AS parked
		FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS u(p, t, b, i) ORDER BY u.i) s
	RETURNING last_error <> '' AS parked)
	SELECT count(*) FILTER (WHERE parked) FROM ins`

// queueCallbacks queues sqlQueueCallbacks into b, counting the parked
// callbacks in m when b is sent.
func queueCallbacks(b *pgx.Batch, m *Metrics, partners, types []string, payloads [][]byte) {
	b.Queue(sqlQueueCallbacks, partners, types, payloads).QueryRow(func(row pgx.Row) error {
		var parked int
		if err := row.Scan(&parked); err != nil {
			return fmt.Errorf("queue callbacks: %w", err)
		}
		m.callbacksBy("no_url", parked)
		return nil
	})
}

// Step parks the due callbacks of partners without a URL, up to 1,000 in
// one statement, then attempts up to 20 due callbacks; it returns how many
// it parked and attempted.
func (d *Deliverer) Step(ctx context.Context) (int, error) {
	parked, err := d.parkNoURL(ctx)
	if err != nil {
		return 0, err
	}
	n, err := d.deliverDue(ctx)
	return parked + n, err
}

// parkNoURL parks due callbacks whose partner has no URL: those written by
// paths that do not park them (consent changes) or before the partner's
// URL was removed. Claimed with the deliveries, 20 at a time, they cost a
// poll each 20 (a poll took 4% of PostgreSQL's time under load).
func (d *Deliverer) parkNoURL(ctx context.Context) (int, error) {
	tag, err := d.pool.Exec(ctx, `UPDATE callbacks SET next_attempt_at = 'infinity', last_error = '`+noURLError+`'
		WHERE id IN (SELECT c.id FROM callbacks c JOIN partners p ON p.id = c.partner_id
			WHERE c.delivered_at IS NULL AND c.next_attempt_at <= now() AND p.callback_url = ''
			ORDER BY c.next_attempt_at, c.id LIMIT 1000 FOR UPDATE OF c SKIP LOCKED)`)
	if err != nil {
		return 0, fmt.Errorf("park callbacks without a URL: %w", err)
	}
	n := int(tag.RowsAffected())
	d.metrics.callbacksBy("no_url", n)
	return n, nil
}

// deliverDue attempts up to 20 due callbacks of partners with a URL (parkNoURL
// parks the others) and returns how many it attempted.
func (d *Deliverer) deliverDue(ctx context.Context) (int, error) {
	var n int
	err := database.InTx(ctx, d.pool, func(tx pgx.Tx) error {
		// In next_attempt_at order, the callbacks_due index's: ordered by id,
		// a poll walked past every callback parked at 'infinity' (given up,
		// or for a partner without a URL) before finding a due one.
		rows, err := tx.Query(ctx, `SELECT c.id, c.payload, c.attempts, p.callback_url FROM callbacks c
			JOIN partners p ON p.id = c.partner_id
			WHERE c.delivered_at IS NULL AND c.next_attempt_at <= now() AND p.callback_url <> ''
			ORDER BY c.next_attempt_at, c.id LIMIT 20 FOR UPDATE OF c SKIP LOCKED`)
		if err != nil {
			return err
		}
		type cb struct {
			id       int64
			payload  []byte
			attempts int
			url      string
		}
		var cbs []cb
		for rows.Next() {
			var c cb
			if err := rows.Scan(&c.id, &c.payload, &c.attempts, &c.url); err != nil {
				rows.Close()
				return err
			}
			cbs = append(cbs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(cbs)
		for _, c := range cbs {
			status, derr := d.deliver(ctx, c.id, c.url, c.payload)
			if derr == nil {
				d.metrics.callback("delivered")
				if _, err := tx.Exec(ctx, `UPDATE callbacks SET delivered_at = now(), attempts = attempts + 1, last_status = $2,
					last_error = '' WHERE id = $1`, c.id, status); err != nil {
					return err
				}
				continue
			}
			d.metrics.callback("failed")
			next := "now() + make_interval(secs => $3)"
			if c.attempts+1 >= d.cfg.MaxAttempts {
				next = "'infinity'::timestamptz + make_interval(secs => $3)" // given up; kept for inspection
			}
			backoff := min(3600, 1<<min(c.attempts, 12))
			if _, err := tx.Exec(ctx, `UPDATE callbacks SET attempts = attempts + 1, last_status = $2, last_error = $4,
				next_attempt_at = `+next+` WHERE id = $1`, c.id, status, backoff, truncateErr(derr)); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// deliver POSTs one signed callback; success is any 2xx.
func (d *Deliverer) deliver(ctx context.Context, id int64, url string, payload []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	for k, v := range webhook.Headers(d.signer, "cb_"+strconv.FormatInt(id, 10), time.Now(), payload) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("partner answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func truncateErr(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}
