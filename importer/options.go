package importer

import (
	"context"
	"net/http"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
)

// Submitter sends one user; *Client is the real one.
type Submitter interface {
	Submit(ctx context.Context, u smileid.User) (*smileid.Result, error)
}

// Options tune a run.
type Options struct {
	// Workers is the number of concurrent requests (a fixed pool);
	// default 4. With AutoWorkers it is ignored.
	Workers int
	// AutoWorkers makes the number of requests in flight follow what the
	// rate needs (rate × recent answer time, with headroom), between 1 and
	// MaxWorkers.
	AutoWorkers bool
	// MaxWorkers bounds the pool of AutoWorkers; default 256.
	MaxWorkers int
	// OutageLimit stops the run (an *OutageError) when the service has not
	// answered for this long; default 15 minutes.
	OutageLimit time.Duration
	// ThrottleLimit bounds how long one row may be throttled (HTTP 429)
	// before it fails; default 10 minutes.
	ThrottleLimit time.Duration
	// Rate is a fixed limit in requests per second over all workers; 0
	// means no limit unless RateAuto is set.
	Rate float64
	// RateAuto discovers the API's quota while running (additive increase,
	// multiplicative decrease on 429), from StartRate (or just below
	// LearnedRate) up to MaxRate.
	RateAuto bool
	// StartRate, MaxRate and LearnedRate shape the adaptive rate (defaults
	// a tenth of MaxRate but at least 10/s, 50/s, none).
	StartRate, MaxRate, LearnedRate float64
	// PhotoHTTPClient fetches photos given as https URLs (tests); default
	// photosource's own.
	PhotoHTTPClient *http.Client
	// FixPhotos converts photos Smile ID would refuse (too large, WebP, GIF,
	// BMP, TIFF, rotated by EXIF) into JPEGs under the limit before sending.
	FixPhotos bool
	// Retries is how many times a transient failure is tried again.
	Retries int
	// MaxPhotoBytes is the photo size limit; default manifest.DefaultMaxPhotoBytes.
	MaxPhotoBytes int64
	// RetryRejected sends rows Smile ID refused before even if their photo is unchanged.
	RetryRejected bool
	// DryRun validates and plans but sends nothing and writes nothing.
	DryRun bool
	// Manifest names the manifest in the run history.
	Manifest string
	// ManifestIsFile says the manifest is a regular file: after an early
	// stop its unread rows are counted. Rows of a pipe or terminal are never
	// waited for once the run stops.
	ManifestIsFile bool
	// Shard, when set, limits the run to the rows whose user_id is in it.
	Shard manifest.Shard
	// Count, when set, counts the manifest's rows for the ETA; it is called
	// once, concurrently with the run (only ever for a regular file).
	Count func() (int, error)
	// Observers are told of the run as it goes, in the order given (the
	// command wires the progress display, rejects file, JSON log, live
	// status and metrics); those that are also an event.Flusher are flushed
	// before the run's end is recorded. None: the run is not shown.
	Observers []event.Observer
	// Grace bounds how long requests in flight may finish after an interrupt; default 15s.
	Grace time.Duration
	// StopGrace bounds how long requests in flight may finish after the run
	// stops on an account-level refusal or a foreign answer; default 2s.
	StopGrace time.Duration
	// BackoffBase and BackoffMax shape retry waits; defaults 500ms and 30s.
	BackoffBase, BackoffMax time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Compare, with its Comparer set, makes the run enroll by SmartSelfie
	// Compare: the manifest's rows are compare rows (manifest.ProductCompare)
	// and Run's Submitter is not used.
	Compare CompareOptions
}

// DefaultGrace is how long a stopped run waits for the requests in flight
// to be answered, for every pipeline (run, verify).
const DefaultGrace = 15 * time.Second

func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxWorkers <= 0 {
		opts.MaxWorkers = 256
	}
	if opts.OutageLimit <= 0 {
		opts.OutageLimit = 15 * time.Minute
	}
	if opts.ThrottleLimit <= 0 {
		opts.ThrottleLimit = 10 * time.Minute
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 2 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = ratelimit.DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = ratelimit.DefaultBackoffMax
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPhotoBytes <= 0 {
		opts.MaxPhotoBytes = manifest.DefaultMaxPhotoBytes
	}
	return opts
}

// PoolSize is the number of workers: the fixed pool, or the most an
// automatic window may use (the client sizes its connection pool by it).
func (o Options) PoolSize() int {
	if o.AutoWorkers {
		return o.MaxWorkers
	}
	return o.Workers
}
