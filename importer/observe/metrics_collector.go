package observe

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
)

// Outcomes of bulkenroll_run_outcome.
const (
	OutcomeRunning     = "running"
	OutcomeFinished    = "finished"    // every row read and settled
	OutcomeInterrupted = "interrupted" // SIGINT or SIGTERM
	OutcomeStopped     = "stopped"     // the account was refused: 2205, 2214, 2220
	OutcomeError       = "error"       // anything else that ended the run early
)

var outcomes = []string{OutcomeRunning, OutcomeFinished, OutcomeInterrupted, OutcomeStopped, OutcomeError}

// collector turns the run's event.Stats into metrics when scraped or written.
type collector struct {
	mu       sync.Mutex
	stats    func() event.Stats
	final    *event.Stats
	outcome  string
	finished bool

	rows, rowsRead, rowsTotal, requests, throttled, rate, learned, speed, eta,
	lastSuccess, started, updated, runID, runFinished, runOutcome,
	inFlight, window, limitedBy, downSince *prometheus.Desc
}

func newCollector(labels prometheus.Labels) *collector {
	d := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc("bulkenroll_"+name, help, varLabels, labels)
	}
	return &collector{
		outcome:     OutcomeRunning,
		rows:        d("rows", "Rows of this run by how they ended (skipped: enrolled by an earlier run; pending: not settled yet).", "state"),
		rowsRead:    d("rows_read", "Manifest rows read by this run so far."),
		rowsTotal:   d("rows_total", "Rows in the manifest (absent while unknown)."),
		requests:    d("requests_total", "Requests sent by this run, by answer class.", "answer"),
		throttled:   d("throttled_total", "Requests answered HTTP 429 (too many requests) in this run."),
		rate:        d("rate_limit_per_second", "Request rate limit in force, per second (0: none)."),
		learned:     d("learned_rate_per_second", "Request quota the adaptive rate has found, per second (0: none yet)."),
		speed:       d("rows_per_second", "Settled rows (enrolled, rejected, failed) per second since the run started."),
		inFlight:    d("requests_in_flight", "Requests sent and not yet answered."),
		window:      d("requests_window", "How many requests may be in flight at once now."),
		limitedBy:   d("limited_by", "1 for what holds the run back (quota, max-rate, rate, workers, manifest, photo source, outage); absent when nothing in particular does.", "limiter"),
		downSince:   d("down_since_timestamp_seconds", "When the service stopped answering, Unix time, while an outage holds the run (absent otherwise)."),
		eta:         d("eta_seconds", "Estimated seconds left (absent when unknown)."),
		lastSuccess: d("last_success_timestamp_seconds", "When the last enrollment was confirmed, Unix time (absent: none yet)."),
		started:     d("run_start_timestamp_seconds", "When the run started, Unix time."),
		updated:     d("last_update_timestamp_seconds", "When these figures were taken, Unix time."),
		runID:       d("run_id", "The store's number for the run (0: dry run)."),
		runFinished: d("run_finished", "1 once the run has ended (whatever the outcome), else 0."),
		runOutcome:  d("run_outcome", "1 for the run's outcome: running, finished, interrupted, stopped or error.", "outcome"),
	}
}

func (c *collector) start(stats func() event.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats = stats
}

func (c *collector) finish(final event.Stats, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.final, c.finished, c.outcome = &final, true, metricsOutcome(final, err)
}

// metricsOutcome names how a run ended for bulkenroll_run_outcome: as the
// run history does, but "error" for a failure.
func metricsOutcome(final event.Stats, err error) string {
	if o := outcomeOf(final, err); o != event.Failed {
		return o
	}
	return OutcomeError
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rows, c.rowsRead, c.rowsTotal, c.requests, c.throttled, c.rate, c.learned,
		c.speed, c.eta, c.lastSuccess, c.started, c.updated, c.runID, c.runFinished, c.runOutcome,
		c.inFlight, c.window, c.limitedBy, c.downSince} {
		ch <- d
	}
}

// Collect sends the current figures: the final ones once the run ended,
// else the run's live ones; nothing before the run starts. (The lock also
// keeps the stats function from being called by two scrapes at once.)
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s event.Stats
	switch {
	case c.final != nil:
		s = *c.final
	case c.stats != nil:
		s = c.stats()
	default:
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	for _, r := range []struct {
		state string
		n     int64
	}{{"enrolled", s.Enrolled}, {"skipped", s.Skipped}, {"rejected", s.Rejected}, {"failed", s.Failed}, {"pending", s.Pending}} {
		gauge(c.rows, float64(r.n), r.state)
	}
	gauge(c.rowsRead, float64(s.Rows))
	if s.Total >= 0 {
		gauge(c.rowsTotal, float64(s.Total))
	}
	for _, a := range smileid.AnswerClasses {
		counter(c.requests, float64(s.Requests[a]), a)
	}
	counter(c.throttled, float64(s.Requests[smileid.AnswerThrottled]))
	gauge(c.rate, s.Rate)
	gauge(c.learned, s.LearnedRate)
	gauge(c.speed, s.RowsPerSecond())
	gauge(c.inFlight, float64(s.InFlight))
	gauge(c.window, float64(s.Window))
	if s.Limiter != event.LimitNone {
		gauge(c.limitedBy, 1, string(s.Limiter))
	}
	if !s.DownSince.IsZero() {
		gauge(c.downSince, unix(s.DownSince))
	}
	if eta := s.ETA(); eta > 0 && !c.finished {
		gauge(c.eta, eta.Seconds())
	}
	if !s.LastSuccess.IsZero() {
		gauge(c.lastSuccess, unix(s.LastSuccess))
	}
	if !s.Started.IsZero() {
		gauge(c.started, unix(s.Started))
	}
	if !s.Now.IsZero() {
		gauge(c.updated, unix(s.Now))
	}
	gauge(c.runID, float64(s.RunID))
	finished := 0.0
	if c.finished {
		finished = 1
	}
	gauge(c.runFinished, finished)
	for _, o := range outcomes {
		v := 0.0
		if o == c.outcome {
			v = 1
		}
		gauge(c.runOutcome, v, o)
	}
}

// unix is t in Unix seconds, with its fraction.
func unix(t interface{ UnixNano() int64 }) float64 { return float64(t.UnixNano()) / 1e9 }
