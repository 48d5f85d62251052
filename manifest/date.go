package manifest

import (
	"errors"
	"fmt"
	"time"
)

// maxZoneOffset is the largest time zone offset accepted, in minutes (±18:00,
// beyond anything in use: real offsets run from -12:00 to +14:00).
const maxZoneOffset = 18 * 60

// ParseCreatedAt parses a user_created_at value: an ISO 8601 date or date-time
// such as
//
//	2021-08-12
//	2021-08-12T15:14:43Z
//	2021-08-12T15:14:43.123+02:00
//	2021-08-12T15:14:43+0200
//	2021-08-12 15:14:43-0700
//	2021-08-12 15:14:43            (no zone: UTC)
//
// The date and time may be separated by "T" or a space, the seconds may have
// a fraction of 1 to 9 digits, and the zone may be "Z", ±hh:mm or ±hhmm; a
// date alone is midnight UTC. The result is the same instant in UTC. Anything
// else, including an impossible date such as 2021-02-30, is an error whose
// message quotes the value and says what is wrong.
//
// It does not allocate unless it fails.
func ParseCreatedAt(s string) (time.Time, error) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, notISO(s)
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, notISO(s)
	}
	if month < 1 || month > 12 {
		return time.Time{}, fmt.Errorf("%s is not a valid date: there is no month %d", quoteValue(s), month)
	}
	if n := daysIn(month, year); day < 1 || day > n {
		return time.Time{}, fmt.Errorf("%s is not a valid date: %s %04d has %d days",
			quoteValue(s), time.Month(month), year, n)
	}
	if len(s) == 10 {
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), nil
	}

	rest := s[10:]
	if (rest[0] != 'T' && rest[0] != ' ') || len(rest) < 9 || rest[3] != ':' || rest[6] != ':' {
		return time.Time{}, notISO(s)
	}
	hour, ok1 := atoi(rest[1:3])
	minute, ok2 := atoi(rest[4:6])
	sec, ok3 := atoi(rest[7:9])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, notISO(s)
	}
	if hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, fmt.Errorf("%s is not a valid time of day (%s)", quoteValue(s), rest[1:9])
	}
	rest = rest[9:]

	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		digits := i - 1
		if digits == 0 || digits > 9 {
			return time.Time{}, notISO(s)
		}
		nsec, _ = atoi(rest[1:i])
		for ; digits < 9; digits++ {
			nsec *= 10
		}
		rest = rest[i:]
	}

	offset := 0 // minutes east of UTC
	switch {
	case rest == "" || rest == "Z":
	case rest[0] == '+' || rest[0] == '-':
		var hh, mm int
		var okh, okm bool
		switch {
		case len(rest) == 6 && rest[3] == ':':
			hh, okh = atoi(rest[1:3])
			mm, okm = atoi(rest[4:6])
		case len(rest) == 5:
			hh, okh = atoi(rest[1:3])
			mm, okm = atoi(rest[3:5])
		}
		if !okh || !okm {
			return time.Time{}, notISO(s)
		}
		offset = hh*60 + mm
		if mm > 59 || offset > maxZoneOffset {
			return time.Time{}, fmt.Errorf("%s has an impossible time zone offset (%s)", quoteValue(s), rest)
		}
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, notISO(s)
	}

	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Minute)
	}
	return t, nil
}

// notISO is the error for a value that does not have any accepted shape.
func notISO(s string) error {
	if s == "" {
		return errors.New("empty value is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)")
	}
	return fmt.Errorf("%s is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)",
		quoteValue(s))
}

// atoi parses s, made only of ASCII digits (at most 9), as a decimal number.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// daysIn returns the number of days of month in year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
