package observe

import "bulkenroll/importer/event"

// outcomeOf is how a run ended: the Outcome of its final figures, which the
// pipeline always sets; figures without one (made by hand) count as
// finished when err is nil and as failed otherwise.
func outcomeOf(final event.Stats, err error) string {
	switch {
	case final.Outcome != "":
		return final.Outcome
	case err == nil:
		return event.Finished
	}
	return event.Failed
}
