package smileid

import "errors"

// Endpoint names an API endpoint whose answers the client classifies. The
// same code can mean different things at different endpoints: SmartSelfie
// Compare's page uses 2210 for "System Error", while the general error-code
// page (and so backfill) uses it for "No enrolled user found". Every
// *APIError carries the Endpoint that answered it, and Classify dispatches on
// it, so callers classify every answer with the one function.
type Endpoint string

// The endpoints the client talks to. The zero value is EndpointBackfill, so
// an *APIError built without one is classified as backfill's answers always
// were.
const (
	// EndpointBackfill is POST /v1/backfill_users (job type 4).
	EndpointBackfill Endpoint = ""
	// EndpointCompare is POST /v2/smart-selfie-compare.
	EndpointCompare Endpoint = "compare"
)

// String names the endpoint.
func (e Endpoint) String() string {
	if e == EndpointBackfill {
		return "backfill"
	}
	return string(e)
}

// codeClasses maps, per endpoint, the Smile ID codes whose class is fixed
// at that endpoint. A code an endpoint does not list falls back to the rule
// of Classify (a refusal of the row, or transient for a 429/5xx).
var codeClasses = map[Endpoint]map[string]Class{
	EndpointBackfill: {
		"2209": AlreadyEnrolled,
		"2205": Account, "2214": Account, "2220": Account,
		"2201": Transient,
		"2203": Permanent, "2204": Permanent, "2213": Permanent, "2413": Permanent,
	},
	EndpointCompare: {
		"2209": AlreadyEnrolled,
		"2205": Account, "2214": Account, "2220": Account,
		// Compare's page answers internal errors with 2210 "System Error".
		"2201": Transient, "2210": Transient,
		"2215": JobExists,
		"2204": Permanent, "2413": Permanent,
		// Result codes of a 200 answer that refuse the row.
		"0841": Permanent, "0941": Permanent,
	},
}

// Classify says what err means at endpoint e (see the package-level
// Classify, which dispatches on the error's own Endpoint).
func (e Endpoint) Classify(err error) Class {
	var ae *APIError
	if !errors.As(err, &ae) {
		return Transient
	}
	if c, ok := codeClasses[e][ae.Code]; ok && ae.Code != "" {
		return c
	}
	return classifyRest(ae)
}
