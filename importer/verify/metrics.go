package verify

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"bulkenroll/importer"
	"bulkenroll/store"
)

// NewMetricsFile returns an Observer that writes a verify run's figures as
// Prometheus metrics to path (for node_exporter's textfile collector) at
// each Progress and at the end: bulkenroll_verify_users{outcome},
// bulkenroll_verify_requests_total{answer}, bulkenroll_verify_jobs_total
// (the jobs the run took on) and bulkenroll_verify_finished with the run's
// outcome. Err says whether a write failed.
func NewMetricsFile(path string) *MetricsFile {
	m := &MetricsFile{path: path, reg: prometheus.NewRegistry(),
		users:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulkenroll_verify_users", Help: "Users checked by the verify run, by outcome."}, []string{"outcome"}),
		requests: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulkenroll_verify_requests_total", Help: "Requests sent by the verify run, by answer."}, []string{"answer"}),
		jobs:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulkenroll_verify_jobs_total", Help: "Jobs the verify run took on."}),
		finished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulkenroll_verify_finished", Help: "1 once the verify run ended, with how."}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.users, m.requests, m.jobs, m.finished)
	return m
}

// MetricsFile is the Observer NewMetricsFile returns.
type MetricsFile struct {
	path     string
	reg      *prometheus.Registry
	users    *prometheus.GaugeVec
	requests *prometheus.GaugeVec
	jobs     prometheus.Gauge
	finished *prometheus.GaugeVec

	mu  sync.Mutex
	err error
}

// Progress writes the figures.
func (m *MetricsFile) Progress(p Progress) {
	m.jobs.Set(float64(p.Total))
	m.users.WithLabelValues("authenticated").Set(float64(p.Authenticated))
	m.users.WithLabelValues("not_authenticated").Set(float64(p.NotAuthenticated))
	m.users.WithLabelValues("pending_review").Set(float64(p.PendingReview))
	m.users.WithLabelValues("error").Set(float64(p.Errors))
	for class, n := range p.Requests {
		m.requests.WithLabelValues(class).Set(float64(n))
	}
	m.write()
}

// Job does nothing: the counts come with Progress.
func (m *MetricsFile) Job(store.VerifyJob) {}

// Finish writes the final figures, with the run's outcome.
func (m *MetricsFile) Finish(s Summary, err error) {
	m.Progress(Progress{Total: s.Checked + s.Left, Authenticated: s.Authenticated, NotAuthenticated: s.NotAuthenticated,
		PendingReview: s.PendingReview, Errors: s.Errors, Requests: s.Requests})
	m.finished.WithLabelValues(importer.Outcome(err)).Set(1)
	m.write()
}

// Err returns the last failure to write the file.
func (m *MetricsFile) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *MetricsFile) write() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := prometheus.WriteToTextfile(m.path, m.reg); err != nil {
		m.err = fmt.Errorf("metrics file %s: %w", m.path, err)
	}
}
