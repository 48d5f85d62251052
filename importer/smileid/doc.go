// Package smileid is a client of Smile ID's REST API: its configuration (the
// partner ID, the API key as a Secret, the base URL rules), request signing
// and answer verification, the request types of each product, and typed
// errors that keep the HTTP status, Smile ID's code and text, classified per
// endpoint.
//
// It is an SDK: it knows nothing of manifests, rows, stores or runs, and must
// not import the importer, manifest or store packages.
package smileid
