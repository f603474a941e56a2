package policy

import (
	"fmt"
	"strings"
	"time"
	// Policies name IANA zones; the webhook image may have no zoneinfo.
	_ "time/tzdata"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

var dayNames = map[string]time.Weekday{"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday,
	"Wed": time.Wednesday, "Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday}

// inWindows reports whether now falls in any window (no windows: always),
// evaluated in each window's own time zone, so DST moves with the zone.
func inWindows(ws []v1alpha1.Window, now time.Time) (bool, error) {
	if len(ws) == 0 {
		return true, nil
	}
	for i, w := range ws {
		ok, err := inWindow(w, now)
		if err != nil {
			return false, fmt.Errorf("windows[%d]: %w", i, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func inWindow(w v1alpha1.Window, now time.Time) (bool, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return false, fmt.Errorf("timeZone %q: %w", w.TimeZone, err)
		}
		loc = l
	}
	start, err := minutes(w.Start)
	if err != nil {
		return false, fmt.Errorf("start: %w", err)
	}
	end, err := minutes(w.End)
	if err != nil {
		return false, fmt.Errorf("end: %w", err)
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	day := local.Weekday()
	if end <= start { // wraps past midnight: the part after midnight belongs to the previous day
		if m < end {
			day = (day + 6) % 7
		} else if m < start {
			return false, nil
		}
	} else if m < start || m >= end {
		return false, nil
	}
	if len(w.Days) == 0 {
		return true, nil
	}
	for _, d := range w.Days {
		wd, ok := dayNames[d]
		if !ok {
			return false, fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", d)
		}
		if wd == day {
			return true, nil
		}
	}
	return false, nil
}

func minutes(hhmm string) (int, error) {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		return 0, fmt.Errorf("%q: want HH:MM", hhmm)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func describeWindows(ws []v1alpha1.Window) string {
	var parts []string
	for _, w := range ws {
		days := "every day"
		if len(w.Days) > 0 {
			days = strings.Join(w.Days, ",")
		}
		tz := w.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		parts = append(parts, fmt.Sprintf("%s %s-%s %s", days, w.Start, w.End, tz))
	}
	return strings.Join(parts, "; ")
}
