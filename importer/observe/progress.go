package observe

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"bulkenroll/importer/event"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Progress shows a run on standard error: a bar when it is a terminal, and
// otherwise (cron, CI, a pipe) a one-line report every few seconds. Either
// way each rejected or failed row gets a line of its own. It is an
// event.Observer.
type Progress struct {
	w        io.Writer
	bar      bool
	interval time.Duration

	mu    sync.Mutex
	pb    *progressbar.ProgressBar
	stats func() event.Stats
	quit  chan struct{}
	done  chan struct{}
}

// NewProgress returns a display writing to w; bar selects the progress bar
// (only when w is a terminal). interval is the time between report lines
// without a bar; default DefaultReportEvery.
func NewProgress(w io.Writer, bar bool, interval time.Duration) *Progress {
	if interval <= 0 {
		interval = DefaultReportEvery
	}
	return &Progress{w: w, bar: bar, interval: interval}
}

// Start begins showing the figures stats returns.
func (p *Progress) Start(stats func() event.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = stats
	p.quit, p.done = make(chan struct{}), make(chan struct{})
	tick := p.interval
	if p.bar {
		p.pb = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
		)
		tick = 200 * time.Millisecond
	}
	go p.loop(tick)
}

func (p *Progress) loop(tick time.Duration) {
	defer close(p.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.render(p.stats())
		}
	}
}

// render updates the bar, or prints a report line.
func (p *Progress) render(s event.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.line(s)
	if p.pb == nil {
		fmt.Fprintln(p.w, "bulkenroll: "+line)
		return
	}
	if s.Total >= 0 && int64(p.pb.GetMax64()) != s.Total {
		p.pb.ChangeMax64(s.Total)
	}
	p.pb.Describe(line)
	_ = p.pb.Set64(s.Rows)
}

// line is the one-line state of the run: done of total, the speed, counts,
// the rate and concurrency control with what holds the run back, and an
// ETA over the rows still to do. The speed and the ETA count rows settled
// (enrolled, rejected, failed), as every display does.
func (p *Progress) line(s event.Stats) string {
	var b strings.Builder
	if p.pb == nil {
		if s.Total >= 0 {
			fmt.Fprintf(&b, "%d/%d rows · ", s.Rows, s.Total)
		} else {
			fmt.Fprintf(&b, "%d rows · ", s.Rows)
		}
	}
	fmt.Fprintf(&b, "%.1f rows/s · enrolled %d · skipped %d · rejected %d · failed %d",
		s.RowsPerSecond(), s.Enrolled, s.Skipped, s.Rejected, s.Failed)
	if s.DryRun {
		fmt.Fprintf(&b, " · would send %d", s.Pending)
	}
	b.WriteString(rateText(s))
	if eta := s.ETA(); eta > 0 {
		fmt.Fprintf(&b, " · ETA %s", eta)
	}
	return b.String()
}

// rateText describes the rate and concurrency control (ControlText).
func rateText(s event.Stats) string {
	if s.DryRun {
		return ""
	}
	if t := ControlText(s.Control); t != "" {
		return " · " + t
	}
	return ""
}

// Row prints one line for a rejected or failed row.
func (p *Progress) Row(ev event.RowEvent) {
	if ev.State != store.Rejected && ev.State != store.Failed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf("line %d: %s: %s: %s", ev.Row.Line, manifest.DisplayID(ev.Row.UserID), ev.State, ev.Reason)
	if p.pb != nil {
		_, _ = progressbar.Bprintln(p.pb, msg)
		return
	}
	fmt.Fprintln(p.w, msg)
}

// Finish stops the display and leaves the bar at the final figures.
func (p *Progress) Finish(final event.Stats, _ error) {
	p.mu.Lock()
	quit := p.quit
	p.mu.Unlock()
	if quit == nil {
		return
	}
	close(quit)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pb != nil {
		if final.Total >= 0 {
			p.pb.ChangeMax64(final.Total)
		}
		p.pb.Describe(p.line(final))
		_ = p.pb.Set64(final.Rows)
		_ = p.pb.Exit()
		fmt.Fprintln(p.w)
	}
}
