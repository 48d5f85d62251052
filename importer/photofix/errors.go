package photofix

import (
	"errors"
	"fmt"
)

// The kinds of failure, for errors.Is. Every error Fix returns is an *Error
// that wraps exactly one of them.
var (
	// ErrUnsupported: the photo is in a format that cannot be converted
	// (HEIC, AVIF, PDF, or not an image at all).
	ErrUnsupported = errors.New("unsupported photo format")
	// ErrTooManyPixels: the header claims more pixels than Options.MaxPixels
	// (a decompression bomb, or a photo far larger than a face needs).
	ErrTooManyPixels = errors.New("photo has too many pixels")
	// ErrCorrupt: the photo could not be decoded.
	ErrCorrupt = errors.New("photo cannot be decoded")
	// ErrTooLarge: even at the lowest quality and the smallest size allowed
	// (Options.MinSide), the JPEG is over Options.MaxBytes.
	ErrTooLarge = errors.New("photo cannot be made small enough")
)

// Error is why a photo cannot be fixed. Its message is a complete sentence
// fragment fit for a rejects file, such as "HEIC photos cannot be converted;
// export them as JPEG".
type Error struct {
	// Format is the detected input format ("JPEG", "PNG", "WebP", "GIF",
	// "BMP", "TIFF", "HEIC", "AVIF", ...), or "unknown".
	Format string
	// Reason is the human explanation, the whole of Error().
	Reason string
	// Err wraps one of ErrUnsupported, ErrTooManyPixels, ErrCorrupt or
	// ErrTooLarge, and the decoder's own error when there was one.
	Err error
}

// Error returns the reason.
func (e *Error) Error() string { return e.Reason }

// Unwrap gives errors.Is and errors.As access to the kind and the cause.
func (e *Error) Unwrap() error { return e.Err }

// fail builds an *Error of the given kind; cause may be nil.
func fail(kind error, format string, cause error, reasonFormat string, args ...any) *Error {
	reason := fmt.Sprintf(reasonFormat, args...)
	err := kind
	if cause != nil {
		reason += ": " + cause.Error()
		err = fmt.Errorf("%w: %w", kind, cause)
	}
	return &Error{Format: format, Reason: reason, Err: err}
}
