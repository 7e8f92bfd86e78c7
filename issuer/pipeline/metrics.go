package pipeline

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics. A nil *Metrics records
// nothing, so the pipeline runs without them (tools, tests).
type Metrics struct {
	events    *prometheus.CounterVec // intake events by kind and outcome
	items     *prometheus.CounterVec // ledger item results by status
	batchSize prometheus.Histogram
	ledgerDur *prometheus.HistogramVec
	callbacks *prometheus.CounterVec
	intakeTx  prometheus.Histogram // requests per intake transaction (group commit)
	intakeDur prometheus.Histogram // intake transactions' duration, begin to commit
}

// RegisterMetrics registers the pipeline's metrics on reg and makes svc (and
// the batcher and deliverer built on it) record them. Queue depths are read
// from the database when scraped, bounded by a 2-second timeout.
func RegisterMetrics(reg prometheus.Registerer, pool *pgxpool.Pool, svc *Service) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greenpoints_intake_events_total",
			Help: "Partner events received, by kind (card, trip) and outcome (accepted, recorded, rejected, duplicate)."}, []string{"kind", "outcome"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greenpoints_ledger_items_total",
			Help: "Ledger item outcomes written back by the batcher, by status."}, []string{"status"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "greenpoints_issue_batch_items",
			Help: "Items per IssueBatch transaction.", Buckets: []float64{1, 10, 50, 100, 250, 500, 1000}}),
		ledgerDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "greenpoints_ledger_submit_seconds",
			Help: "Ledger submissions (endorse + commit) by function.", Buckets: prometheus.DefBuckets}, []string{"function"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greenpoints_callbacks_total",
			Help: "Partner callbacks by result: delivery attempts delivered or failed; no_url parked, the partner having no callback URL (counted as queued: a retried transaction counts again)."}, []string{"result"}),
		intakeTx: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "greenpoints_intake_transaction_requests",
			Help: "Partner requests recorded per intake transaction (concurrent requests share one).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64}}),
	}
	m.intakeDur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "greenpoints_intake_transaction_seconds",
		Help:    "Intake transactions from begin to commit (a request's latency is this plus its wait for a worker).",
		Buckets: []float64{.001, .002, .004, .006, .008, .01, .015, .02, .03, .05, .1, .25, 1}})
	reg.MustRegister(m.events, m.items, m.batchSize, m.ledgerDur, m.callbacks, m.intakeTx, m.intakeDur)
	for name, q := range map[string]string{
		"greenpoints_issuances_queued":  `SELECT count(*) FROM issuances WHERE status = 'queued'`,
		"greenpoints_issuances_due":     `SELECT count(*) FROM issuances WHERE status = 'queued' AND not_before <= now()`,
		"greenpoints_trips_waiting":     `SELECT count(*) FROM actions WHERE kind = 'transit' AND status = 'queued'`,
		"greenpoints_reversals_queued":  `SELECT count(*) FROM reversals WHERE status = 'queued'`,
		"greenpoints_callbacks_pending": `SELECT count(*) FROM callbacks WHERE delivered_at IS NULL AND next_attempt_at < 'infinity'`,
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "Rows: " + q}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var n int64
			if err := pool.QueryRow(ctx, q).Scan(&n); err != nil {
				return -1 // visible in dashboards as "unknown" rather than a fake zero
			}
			return float64(n)
		}))
	}
	svc.metrics = m
}

func (m *Metrics) event(kind, outcome string) {
	if m != nil {
		m.events.WithLabelValues(kind, outcome).Inc()
	}
}

func (m *Metrics) intakeTransaction(requests int, took time.Duration) {
	if m != nil {
		m.intakeTx.Observe(float64(requests))
		m.intakeDur.Observe(took.Seconds())
	}
}

func (m *Metrics) item(status string) {
	if m != nil {
		m.items.WithLabelValues(status).Inc()
	}
}

func (m *Metrics) batch(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

func (m *Metrics) submitted(fn string, d time.Duration) {
	if m != nil {
		m.ledgerDur.WithLabelValues(fn).Observe(d.Seconds())
	}
}

func (m *Metrics) callback(result string) { m.callbacksBy(result, 1) }

func (m *Metrics) callbacksBy(result string, n int) {
	if m != nil && n > 0 {
		m.callbacks.WithLabelValues(result).Add(float64(n))
	}
}
