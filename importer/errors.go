package importer

import (
	"context"
	"errors"
	"fmt"

	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
)

// ErrInterrupted is returned when a signal stopped the run (exit code 130).
var ErrInterrupted = errors.New("interrupted")

// AccountError stops a run: Smile ID refused the account itself (2205, 2214,
// 2220), or the answers show the credentials or base URL are wrong (a
// redirect, a bare 401/403). Rows not done keep the state they had.
type AccountError struct {
	API *smileid.APIError
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("stopped: %v: %s", e.API, smileid.AccountAdvice(e.API.Code))
}

// Unwrap returns the API error.
func (e *AccountError) Unwrap() error { return e.API }

// Outcome names how a run that ended with err ended, as the run history
// records it: "finished", "interrupted", "stopped" (by Smile ID, or by
// answers that were not Smile ID's, or by an outage) or "failed".
func Outcome(err error) string {
	var ae *AccountError
	var fe *smileid.ForeignAnswerError
	var oe *OutageError
	switch {
	case err == nil:
		return event.Finished
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		return event.Interrupted
	case errors.As(err, &ae), errors.As(err, &fe), errors.As(err, &oe):
		return event.Stopped
	}
	return event.Failed
}
