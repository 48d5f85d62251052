package importer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Progress shows a run on standard error: a bar when it is a terminal, and
// otherwise (cron, CI, a pipe) a one-line report every few seconds. Either
// way each rejected or failed row gets a line of its own.
type Progress struct {
	w        io.Writer
	bar      bool
	interval time.Duration
	total    atomic.Int64 // rows in the manifest; -1 until known

	mu    sync.Mutex
	pb    *progressbar.ProgressBar
	tally *tally
	dry   bool
	begin time.Time
	quit  chan struct{}
	done  chan struct{}
}

// NewProgress returns a display writing to w; bar selects the progress bar
// (only when w is a terminal). interval is the time between report lines
// without a bar; default 5s.
func NewProgress(w io.Writer, bar bool, interval time.Duration) *Progress {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	p := &Progress{w: w, bar: bar, interval: interval}
	p.total.Store(-1)
	return p
}

// SetTotal tells the display how many rows the manifest holds, once known.
func (p *Progress) SetTotal(n int) {
	p.total.Store(int64(n))
}

func (p *Progress) start(t *tally, dry bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tally, p.dry, p.begin = t, dry, time.Now()
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
			p.render()
		}
	}
}

// render updates the bar, or prints a report line.
func (p *Progress) render() {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.line()
	if p.pb == nil {
		fmt.Fprintln(p.w, "bulkenroll: "+line)
		return
	}
	done := p.tally.rows.Load()
	if total := p.total.Load(); total >= 0 && int64(p.pb.GetMax64()) != total {
		p.pb.ChangeMax64(total)
	}
	p.pb.Describe(line)
	_ = p.pb.Set64(done)
}

// line is the one-line state of the run: done of total, work rate, counts,
// and an ETA over the rows still to do. Skipped rows cost nothing, so the
// rate counts only rows that were validated or sent.
func (p *Progress) line() string {
	t := p.tally
	done := t.rows.Load()
	skipped := t.skipped.Load()
	elapsed := time.Since(p.begin).Seconds()
	worked := done - skipped
	var rate float64
	if elapsed > 0 {
		rate = float64(worked) / elapsed
	}
	var b strings.Builder
	if total := p.total.Load(); total >= 0 && p.pb == nil {
		fmt.Fprintf(&b, "%d/%d rows", done, total)
	} else if p.pb == nil {
		fmt.Fprintf(&b, "%d rows", done)
	}
	if b.Len() > 0 {
		b.WriteString(" · ")
	}
	fmt.Fprintf(&b, "%.1f rows/s · enrolled %d · skipped %d · rejected %d · failed %d",
		rate, t.enrolled.Load(), skipped, t.rejected.Load(), t.failed.Load())
	if p.dry {
		fmt.Fprintf(&b, " · would send %d", t.pending.Load())
	}
	if total := p.total.Load(); total > done && rate > 0 {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, " · ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// problem prints one line for a rejected or failed row.
func (p *Progress) problem(line int, userID string, st store.State, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf("line %d: %s: %s: %s", line, manifest.DisplayID(userID), st, reason)
	if p.pb != nil {
		_, _ = progressbar.Bprintln(p.pb, msg)
		return
	}
	fmt.Fprintln(p.w, msg)
}

func (p *Progress) stop() {
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
		if total := p.total.Load(); total >= 0 {
			p.pb.ChangeMax64(total)
		}
		p.pb.Describe(p.line())
		_ = p.pb.Set64(p.tally.rows.Load())
		_ = p.pb.Exit()
		fmt.Fprintln(p.w)
	}
}
