// Package schedule owns when faults are on: the FaultSpec's schedule
// (every, for, jitter) turned into on/off windows anchored at the agent's
// start. Windows are a pure function of the anchor and the time, so tests
// need no clock. A restarted agent anchors anew: its pattern starts again
// with a window (the README says so), it does not resume the old phase.
package schedule

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Schedule is a parsed v1alpha1.Schedule; the zero value is always on.
type Schedule struct {
	Every, For, Jitter time.Duration
	// Seed varies the jitter between pods.
	Seed string
}

// Parse reads a validated spec schedule; nil means always on.
func Parse(s *v1alpha1.Schedule, seed string) (Schedule, error) {
	if s == nil {
		return Schedule{}, nil
	}
	var sch Schedule
	var err error
	if sch.Every, err = v1alpha1.ParseDuration(s.Every); err != nil {
		return sch, fmt.Errorf("schedule.every: %w", err)
	}
	if sch.For, err = v1alpha1.ParseDuration(s.For); err != nil {
		return sch, fmt.Errorf("schedule.for: %w", err)
	}
	if s.Jitter != "" {
		if sch.Jitter, err = v1alpha1.ParseDuration(s.Jitter); err != nil {
			return sch, fmt.Errorf("schedule.jitter: %w", err)
		}
	}
	if sch.Every <= 0 || sch.For <= 0 || sch.For > sch.Every || sch.Jitter >= sch.Every {
		return sch, fmt.Errorf("schedule: every %s, for %s, jitter %s: want 0 < for <= every and jitter < every", sch.Every, sch.For, sch.Jitter)
	}
	sch.Seed = seed
	return sch, nil
}

// Active reports whether faults are on at now, for an agent anchored at
// start. Period k starts at start + k*Every + jitter(k) and lasts For (cut
// short at the next period's start, so windows never overlap).
func (s Schedule) Active(start, now time.Time) bool {
	if s.Every == 0 {
		return true
	}
	since := now.Sub(start)
	if since < 0 {
		return false
	}
	k := int64(since / s.Every)
	into := since - time.Duration(k)*s.Every - s.jitter(k)
	return into >= 0 && into < s.For
}

// jitter is a deterministic pseudo-random delay in [0, Jitter) for period k.
func (s Schedule) jitter(k int64) time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", s.Seed, k)
	return time.Duration(h.Sum64() % uint64(s.Jitter))
}
