// Package ratelimit holds a bulk run's one control loop for request rate
// and concurrency (Gate): the adaptive or fixed rate limit, 429 episodes
// and the learned quota, the concurrency window sized by Little's law, and
// the outage breaker; and the retry helpers every client of the run shares:
// one jittered Backoff, one Retry-After parser, and Sleep.
//
// It knows requests, answers and time only: nothing of Smile ID's API,
// manifests, rows, stores or how figures are displayed (importer/observe
// words a Control for people). It must not import importer, manifest, store
// or smileid.
package ratelimit
