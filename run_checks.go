package main

import (
	"errors"
	"io/fs"
	"time"

	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// checkSendingFlags refuses the settings every sending command (run,
// verify) shares when they are out of range: a usage error names the flag.
func checkSendingFlags(rateAuto bool, maxRate float64, retries int, timeout time.Duration, maxPhoto int64, logFormat string) error {
	switch {
	case rateAuto && maxRate <= 0:
		return usagef("--max-rate %g: want a positive rate", maxRate)
	case retries < 0:
		return usagef("--retries %d: want 0 or more", retries)
	case timeout <= 0:
		return usagef("--timeout %s: want a positive duration", timeout)
	case maxPhoto <= 0:
		return usagef("--max-photo-bytes %d: want a positive size", maxPhoto)
	case logFormat != "" && logFormat != "text" && logFormat != "json":
		return usagef("--log-format %q: want text or json", logFormat)
	}
	return nil
}

// check refuses settings out of range, and output paths that cannot be
// written, before anything is read, sent or written: a usage error names
// the flag.
func (o runOptions) check() error {
	im := o.Import
	switch {
	case !im.AutoWorkers && (im.Workers < 1 || im.Workers > 256):
		return usagef("--workers %d: want auto or 1 to 256", im.Workers)
	case im.AutoWorkers && (im.MaxWorkers < 1 || im.MaxWorkers > 4096):
		return usagef("--max-workers %d: want 1 to 4096", im.MaxWorkers)
	case im.OutageLimit <= 0:
		return usagef("--outage-limit %s: want a positive duration", im.OutageLimit)
	case im.ThrottleLimit <= 0:
		return usagef("--throttle-limit %s: want a positive duration", im.ThrottleLimit)
	case im.Rate < 0:
		return usagef("--rate %g: want auto, 0 (no limit) or more", im.Rate)
	}
	if err := checkSendingFlags(im.RateAuto, im.MaxRate, im.Retries, o.Timeout, im.MaxPhotoBytes, o.LogFormat); err != nil {
		return err
	}
	product, err := manifest.ParseProduct(o.Product)
	if err != nil {
		return usagef("--product: %v", err)
	}
	if product != manifest.ProductCompare && (im.Compare.AllowNewEnroll || im.Compare.CallbackURL != "") {
		return usagef("--allow-new-enroll and --callback-url apply to --product compare only")
	}
	if o.MetricsFile != "" {
		if err := checkOutputFile("--metrics-file", o.MetricsFile, false); err != nil {
			return err
		}
	}
	if o.Rejects != "" {
		if err := checkOutputFile("--rejects", o.Rejects, true); err != nil {
			return err
		}
	}
	return nil
}

// openRunStore opens the store for a run and checks it (bound to cfg, or
// not bound yet, holding shard or no shard yet, and holding product's
// records or none yet) without writing to it;
// the store is bound by the first answer from Smile ID the run saves (an
// unbound store stays unbound when the run gets none). A dry run opens it
// read-only if it exists (nil if not).
func openRunStore(path string, dry bool, cfg smileid.Config, shard manifest.Shard, product store.Product) (*store.Store, error) {
	if dry {
		st, err := store.Open(path, store.Options{ReadOnly: true})
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return checkedStore(st, func() error {
			if cfg.PartnerID != "" {
				if err := st.CheckBinding(cfg.PartnerID, cfg.BaseURL); err != nil {
					return err
				}
			}
			return st.CheckProduct(product)
		})
	}
	// The live status file goes next to the store: its folder must take it
	// (checked without touching the file, which a run holding the store may
	// be writing).
	if err := store.CheckLive(path); err != nil {
		return nil, err
	}
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	// A check of the whole store (its pages and records) belongs here,
	// before the first write.
	return checkedStore(st, func() error {
		if err := st.BindOnAnswer(cfg.PartnerID, cfg.BaseURL); err != nil {
			return err
		}
		if err := st.CheckShard(shard.String()); err != nil {
			return err
		}
		return st.CheckProduct(product)
	})
}

// checkedStore returns st if check passes, and closes it otherwise.
func checkedStore(st *store.Store, check func() error) (*store.Store, error) {
	if err := check(); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}
