package importer

import "bulkenroll/importer/ratelimit"

// GateOutcome says what an answer (err nil: a success) tells the rate
// gate; the verify pipeline shares it with the import's workers.
func GateOutcome(err error) ratelimit.Outcome { return outcomeOf(err) }
