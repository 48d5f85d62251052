package importer

import "bulkenroll/importer/event"

// Summary counts what a run did with the manifest's rows. Every row read is
// in exactly one of Enrolled, Skipped, Rejected, Failed and Pending.
type Summary struct {
	Rows     int     `json:"rows"`
	Enrolled int     `json:"enrolled"`
	Skipped  int     `json:"skipped"`
	Rejected int     `json:"rejected"`
	Failed   int     `json:"failed"`
	Pending  int     `json:"pending"`
	Seconds  float64 `json:"seconds"`
	// Unsaved counts the rows (among Pending) whose result the store could
	// not save; UnsavedAnswers those of them that held an answer from Smile
	// ID. Both are 0 unless the store failed.
	Unsaved        int `json:"-"`
	UnsavedAnswers int `json:"-"`
	// RunID is the store's number for this run (0 for a dry run).
	RunID uint64 `json:"-"`
	// DryRun marks a run that sent nothing; Pending then counts the rows it would send.
	DryRun bool `json:"-"`
	// Partial is set when a stopped run did not count the rows it had not
	// read (a pipe, or an interrupt while counting a long file).
	Partial bool `json:"-"`
	// Stats are the final figures (requests by answer, rates).
	Stats event.Stats `json:"-"`
	// SustainedQuota is the quota the adaptive rate measured as a
	// sustained limit (several episodes at a similar rate), to remember for
	// the next run; 0 if none.
	SustainedQuota float64 `json:"-"`
}

// OK reports whether every row ended enrolled or skipped.
func (s Summary) OK() bool { return s.Rejected == 0 && s.Failed == 0 && s.Pending == 0 }

// counts returns the summary as the run history stores it.
func (s Summary) counts() map[string]int {
	return map[string]int{"rows": s.Rows, "enrolled": s.Enrolled, "skipped": s.Skipped,
		"rejected": s.Rejected, "failed": s.Failed, "pending": s.Pending}
}

// summaryOf turns final figures into the summary.
func summaryOf(s event.Stats) Summary {
	return Summary{Rows: int(s.Rows), Enrolled: int(s.Enrolled), Skipped: int(s.Skipped),
		Rejected: int(s.Rejected), Failed: int(s.Failed), Pending: int(s.Pending),
		Unsaved: int(s.Unsaved), UnsavedAnswers: int(s.UnsavedAnswers), Stats: s}
}
