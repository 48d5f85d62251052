package importer

import "bulkenroll/importer/ratelimit"

// OutageError ends a run whose service stopped answering for longer than
// --outage-limit (see ratelimit.OutageError).
type OutageError = ratelimit.OutageError
