package importer

import (
	"errors"
	"strings"
	"testing"

	"bulkenroll/importer/smileid"
)

// TestAccountErrorAdvice checks that a stopped run's account error carries
// the advice for its code and unwraps to the API's answer.
func TestAccountErrorAdvice(t *testing.T) {
	for _, code := range []string{"2205", "2214", "2220", ""} {
		ae := &AccountError{API: &smileid.APIError{Status: 403, Code: code}}
		if !strings.Contains(ae.Error(), smileid.AccountAdvice(code)) || !errors.Is(ae, error(ae.API)) {
			t.Errorf("AccountError %q lacks its advice or does not unwrap", ae.Error())
		}
	}
}
