package observe

import (
	"os"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/store"
)

// liveFile is the observer that publishes the run's figures next to the
// store (store.WriteLive) every few seconds, so that `status` can show a
// run that holds the store's lock. The last snapshot says Done.
type liveFile struct {
	storePath, manifest, shard string
	interval                   time.Duration

	writes periodic // the periodic writes of the snapshot
}

// NewLiveFile returns an event.Observer that writes the live snapshot of a
// run on the store at storePath every interval (default 2s).
func NewLiveFile(storePath, manifest, shard string, interval time.Duration) event.Observer {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	return &liveFile{storePath: storePath, manifest: manifest, shard: shard, interval: interval}
}

// Start writes the first snapshot and then one every interval.
func (l *liveFile) Start(stats func() event.Stats) {
	l.write(stats(), false)
	l.writes.start(l.interval, func() { l.write(stats(), false) })
}

// Row does nothing: the snapshot holds counts only.
func (l *liveFile) Row(event.RowEvent) {}

// Finish writes the final snapshot, marked done.
func (l *liveFile) Finish(final event.Stats, _ error) {
	if !l.writes.end() {
		return
	}
	l.write(final, true)
}

func (l *liveFile) write(s event.Stats, done bool) {
	host, _ := os.Hostname()
	live := store.Live{
		PID: os.Getpid(), Host: host, RunID: s.RunID, Manifest: l.manifest, Shard: l.shard,
		Started: s.Started.UTC(), Updated: s.Now.UTC(), Total: s.Total,
		Rows: s.Rows, Enrolled: s.Enrolled, Skipped: s.Skipped, Rejected: s.Rejected, Failed: s.Failed, Pending: s.Pending,
		RowsPerSecond: s.RowsPerSecond(), Rate: s.Rate, LearnedRate: s.LearnedRate,
		InFlight: s.InFlight, Window: s.Window, Limiter: string(s.Limiter), DownSince: s.DownSince,
		ETASeconds: s.ETA().Seconds(), LastSuccess: s.LastSuccess, Done: done,
		Unsaved: s.Unsaved, EndNotRecorded: s.EndNotRecorded,
	}
	if len(live.EndNotRecorded) > 400 {
		// The snapshot must fit in place of the last one on a full disk.
		live.EndNotRecorded = live.EndNotRecorded[:400] + "..."
	}
	// A status file that cannot be written never stops a run: status then
	// says the store is in use by a run that publishes no live status.
	_ = store.WriteLive(l.storePath, live)
}
