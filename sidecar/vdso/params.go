package vdso

import "time"

// Params is the clock fault, as the time shim's state holds it:
// fake = real + Offset + (real - Base) * DriftPPB / 1e9, for CLOCK_REALTIME
// and CLOCK_REALTIME_COARSE (and gettimeofday and time, through them).
type Params struct {
	Enabled  bool
	Offset   time.Duration
	DriftPPB int64
	Base     time.Time
}
