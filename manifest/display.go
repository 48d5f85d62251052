package manifest

import (
	"fmt"
	"strings"
)

// DisplayID makes a user ID safe to put in a one-line message: at most 64
// bytes, quoted when it is empty or holds spaces, control characters or
// invalid UTF-8.
func DisplayID(id string) string {
	const max = 64
	if len(id) > max {
		id = strings.ToValidUTF8(id[:max], "") + "…"
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return fmt.Sprintf("%q", id)
		}
	}
	if id == "" {
		return `""`
	}
	return id
}
