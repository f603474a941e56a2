package schedule

import (
	"testing"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func TestActive(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	every10for2, err := Parse(&v1alpha1.Schedule{Every: "10m", For: "2m"}, "pod")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		s    Schedule
		at   time.Duration
		want bool
	}{
		{"no schedule is always on", Schedule{}, 5 * time.Hour, true},
		{"the first window opens at start", every10for2, 0, true},
		{"it closes after for", every10for2, 2 * time.Minute, false},
		{"it stays closed until every has passed", every10for2, 9*time.Minute + 59*time.Second, false},
		{"the next window opens one period later", every10for2, 10 * time.Minute, true},
		{"a time before start is off", every10for2, -time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.Active(start, start.Add(c.at)); got != c.want {
				t.Fatalf("Active at +%s = %v, want %v", c.at, got, c.want)
			}
		})
	}
}

func TestJitterShiftsWindowsButKeepsTheirLength(t *testing.T) {
	s, err := Parse(&v1alpha1.Schedule{Every: "10m", For: "2m", Jitter: "30s"}, "pod-a")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(0, 0)
	for k := 0; k < 50; k++ {
		on := 0
		for sec := 0; sec < 600; sec++ {
			if s.Active(start, start.Add(time.Duration(k)*10*time.Minute+time.Duration(sec)*time.Second)) {
				on++
			}
		}
		if on != 120 {
			t.Fatalf("period %d: on for %ds, want 120s", k, on)
		}
	}
	if s.jitter(1) == s.jitter(2) && s.jitter(2) == s.jitter(3) {
		t.Fatal("jitter does not vary between periods")
	}
}
