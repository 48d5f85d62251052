package ratelimit

import (
	"testing"
	"time"
)

func TestHints(t *testing.T) {
	down := time.Date(2025, 3, 1, 12, 3, 4, 0, time.Local)
	cases := []struct {
		c    Control
		want string
	}{
		{Control{}, ""},
		{Control{Limiter: LimitQuota}, "held back by the quota"},
		{Control{Limiter: LimitMaxRate}, "at --max-rate"},
		{Control{Limiter: LimitRate}, "at --rate"},
		{Control{Limiter: LimitWorkers}, "the workers are full (raise --max-workers, or --workers if you set it)"},
		{Control{Limiter: LimitManifest}, "waiting for the manifest"},
		{Control{Limiter: LimitPhotos}, "waiting for photos"},
		{Control{Limiter: LimitOutage, DownSince: down}, "service not answering since 12:03:04; probing"},
		{Control{Limiter: LimitOutage}, "service not answering; probing"},
		{Control{Limiter: "something new"}, "something new"},
	}
	for _, c := range cases {
		if got := c.c.Hint(); got != c.want {
			t.Errorf("Hint of %q = %q, want %q", c.c.Limiter, got, c.want)
		}
	}
}
