package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestParseCreatedAt(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	valid := []struct {
		in   string
		want time.Time
	}{
		{"2021-08-12", utc(2021, 8, 12, 0, 0, 0, 0)},
		{"2021-08-12 15:14:43-0700", utc(2021, 8, 12, 22, 14, 43, 0)},
		{"2021-08-12T15:14:43Z", utc(2021, 8, 12, 15, 14, 43, 0)},
		{"2021-08-12T15:14:43.123+02:00", utc(2021, 8, 12, 13, 14, 43, 123_000_000)},
		{"2021-08-12T15:14:43+0200", utc(2021, 8, 12, 13, 14, 43, 0)},
		{"2021-08-12 15:14:43", utc(2021, 8, 12, 15, 14, 43, 0)},
		{"2021-08-12T15:14:43", utc(2021, 8, 12, 15, 14, 43, 0)},
		{"2021-08-12 15:14:43.5", utc(2021, 8, 12, 15, 14, 43, 500_000_000)},
		{"2021-08-12T15:14:43.123456789Z", utc(2021, 8, 12, 15, 14, 43, 123456789)},
		{"2021-08-12T15:14:43.000001-00:30", utc(2021, 8, 12, 15, 44, 43, 1000)},
		{"2021-08-12T23:30:00-05:00", utc(2021, 8, 13, 4, 30, 0, 0)},
		{"2021-01-01T00:30:00+14:00", utc(2020, 12, 31, 10, 30, 0, 0)},
		{"2021-08-12T15:14:43-00:00", utc(2021, 8, 12, 15, 14, 43, 0)},
		{"2020-02-29", utc(2020, 2, 29, 0, 0, 0, 0)},
		{"2000-02-29", utc(2000, 2, 29, 0, 0, 0, 0)},
		{"1970-01-01T00:00:00Z", time.Unix(0, 0).UTC()},
		{"0001-01-01", utc(1, 1, 1, 0, 0, 0, 0)},
		{"9999-12-31T23:59:59.999999999Z", utc(9999, 12, 31, 23, 59, 59, 999999999)},
		{"2021-08-12T15:14:43+18:00", utc(2021, 8, 11, 21, 14, 43, 0)},
	}
	for _, tt := range valid {
		got, err := ParseCreatedAt(tt.in)
		if err != nil {
			t.Errorf("ParseCreatedAt(%q): %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseCreatedAt(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}

	const use = " is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)"
	invalid := []struct {
		in, want string
	}{
		{"", "empty value" + use},
		{"12/08/2021", `"12/08/2021"` + use},
		{"2021-8-12", `"2021-8-12"` + use},
		{"21-08-12", `"21-08-12"` + use},
		{"2021/08/12", `"2021/08/12"` + use},
		{"20210812", `"20210812"` + use},
		{"2021-08-12Z", `"2021-08-12Z"` + use},
		{"2021-08-12T", `"2021-08-12T"` + use},
		{"2021-08-12T15:14", `"2021-08-12T15:14"` + use},
		{"2021-08-12T15:14:4", `"2021-08-12T15:14:4"` + use},
		{"2021-08-12t15:14:43z", `"2021-08-12t15:14:43z"` + use},
		{"2021-08-12T15:14:43z", `"2021-08-12T15:14:43z"` + use},
		{"2021-08-12T15:14:43.Z", `"2021-08-12T15:14:43.Z"` + use},
		{"2021-08-12T15:14:43,5Z", `"2021-08-12T15:14:43,5Z"` + use},
		{"2021-08-12T15:14:43.1234567891Z", `"2021-08-12T15:14:43.1234567891Z"` + use},
		{"2021-08-12T15:14:43 +0200", `"2021-08-12T15:14:43 +0200"` + use},
		{"2021-08-12T15:14:43+02", `"2021-08-12T15:14:43+02"` + use},
		{"2021-08-12T15:14:43+2:00", `"2021-08-12T15:14:43+2:00"` + use},
		{"2021-08-12T15:14:43UTC", `"2021-08-12T15:14:43UTC"` + use},
		{"2021-08-12T15:14:43Z ", `"2021-08-12T15:14:43Z "` + use},
		{" 2021-08-12", `" 2021-08-12"` + use},
		{"+2021-08-12", `"+2021-08-12"` + use},
		{"2021-0x-12", `"2021-0x-12"` + use},
		{"2021-+8-12", `"2021-+8-12"` + use},
		{"Aug 12, 2021", `"Aug 12, 2021"` + use},
		{"1628781283", `"1628781283"` + use},
		{"2021-13-01", `"2021-13-01" is not a valid date: there is no month 13`},
		{"2021-00-10", `"2021-00-10" is not a valid date: there is no month 0`},
		{"2021-02-29", `"2021-02-29" is not a valid date: February 2021 has 28 days`},
		{"1900-02-29", `"1900-02-29" is not a valid date: February 1900 has 28 days`},
		{"2021-04-31", `"2021-04-31" is not a valid date: April 2021 has 30 days`},
		{"2021-04-00", `"2021-04-00" is not a valid date: April 2021 has 30 days`},
		{"2021-08-12T24:00:00Z", `"2021-08-12T24:00:00Z" is not a valid time of day (24:00:00)`},
		{"2021-08-12T12:60:00Z", `"2021-08-12T12:60:00Z" is not a valid time of day (12:60:00)`},
		{"2021-08-12T12:00:60Z", `"2021-08-12T12:00:60Z" is not a valid time of day (12:00:60)`},
		{"2021-08-12T12:00:00+19:00", `"2021-08-12T12:00:00+19:00" has an impossible time zone offset (+19:00)`},
		{"2021-08-12T12:00:00+18:01", `"2021-08-12T12:00:00+18:01" has an impossible time zone offset (+18:01)`},
		{"2021-08-12T12:00:00+0160", `"2021-08-12T12:00:00+0160" has an impossible time zone offset (+0160)`},
		{strings.Repeat("9", 100), `"` + strings.Repeat("9", 60) + `"... (100 bytes)` + use},
		{"2021-08-12\x00", `"2021-08-12\x00"` + use},
	}
	for _, tt := range invalid {
		got, err := ParseCreatedAt(tt.in)
		if err == nil {
			t.Errorf("ParseCreatedAt(%q) = %v, want an error", tt.in, got)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseCreatedAt(%q):\n got %s\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestParseCreatedAtAllocs(t *testing.T) {
	for _, s := range []string{"2021-08-12", "2021-08-12T15:14:43.123+02:00", "2021-08-12 15:14:43-0700"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseCreatedAt(s) }); n != 0 {
			t.Errorf("ParseCreatedAt(%q) allocates %v times", s, n)
		}
	}
}
