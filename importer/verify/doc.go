// Package verify is the pipeline of `bulkenroll verify`: it picks users
// that the store holds as enrolled and the manifest lists, runs a
// SmartSelfie Authentication job (job type 2) for each with the Smile ID
// client (prepare, zip upload, job status), and records every step in the
// store so that a job is sent once and a stopped run resumes.
//
// It never changes a user's enrollment record. It knows the manifest and
// the store; it does not parse command lines or draw the terminal.
package verify
