package observe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"bulkenroll/importer/event"
)

// MetricsFile is an event.Observer that publishes the run's figures as
// Prometheus metrics named bulkenroll_*: it writes them to a file at the
// start, every interval and at the end, and serves them over HTTP if asked
// (Serve). Its registry holds these metrics only.
type MetricsFile struct {
	path     string
	interval time.Duration
	reg      *prometheus.Registry
	col      *collector

	writes periodic // the periodic writes of the file

	mu      sync.Mutex
	lastErr error
}

// NewMetricsFile returns a MetricsFile writing to path every interval
// (default 10s); path "" writes no file (for Serve alone). labels are added
// to every metric, e.g. {"shard": "1/4"}.
func NewMetricsFile(path string, interval time.Duration, labels map[string]string) *MetricsFile {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	col := newCollector(prometheus.Labels(labels))
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	return &MetricsFile{path: path, interval: interval, reg: reg, col: col}
}

// Start writes the metrics file at once, then every interval until Finish.
func (f *MetricsFile) Start(stats func() event.Stats) {
	f.col.start(stats)
	f.write()
	if f.path != "" {
		f.writes.start(f.interval, f.write)
	}
}

// Row does nothing: the metrics are counts, taken from the Stats.
func (f *MetricsFile) Row(event.RowEvent) {}

// Finish stops the periodic writes and writes the final figures, with
// bulkenroll_run_finished 1 and the run's outcome.
func (f *MetricsFile) Finish(final event.Stats, err error) {
	f.writes.end()
	f.col.finish(final, err)
	f.write()
}

// Err returns the last error writing the file, or nil; a run reports it
// at the end (a metrics file that cannot be written does not stop a run).
func (f *MetricsFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// write replaces the file with the current figures (WriteToTextfile writes
// a temporary file in the same folder and renames it).
func (f *MetricsFile) write() {
	if f.path == "" {
		return
	}
	err := prometheus.WriteToTextfile(f.path, f.reg)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.lastErr = fmt.Errorf("metrics file %s: %w", f.path, err)
	}
}

// handler serves the metrics in the Prometheus exposition format.
func (f *MetricsFile) handler() http.Handler {
	return promhttp.HandlerFor(f.reg, promhttp.HandlerOpts{})
}

// Serve listens on addr (host:port; ":0" picks a port) and serves the
// metrics at /metrics until ctx ends. It returns once listening, with the
// address listened on, or the error that kept it from listening.
func (f *MetricsFile) Serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", f.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.mu.Lock()
			f.lastErr = fmt.Errorf("--metrics-addr %s: %w", addr, err)
			f.mu.Unlock()
		}
	}()
	return ln.Addr(), nil
}
