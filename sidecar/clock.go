package sidecar

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/clockfault"
	"github.com/faultline-dev/faultline/sidecar/vdso"
)

// EnvTimeFile names the state file shared with the time shim.
const EnvTimeFile = v1alpha1.EnvTimeFile

// DefaultShimSource is where the agent image keeps the shim.
const DefaultShimSource = "/usr/lib/faultline/" + v1alpha1.ShimName

// clockParams turns a validated ClockFault into shim parameters.
func clockParams(c *v1alpha1.ClockFault) (offset time.Duration, driftPPB int64, err error) {
	if c.Offset != "" {
		if offset, err = v1alpha1.ParseSignedDuration(c.Offset); err != nil {
			return 0, 0, fmt.Errorf("clock.offset: %w", err)
		}
	}
	if c.Drift != "" {
		ppm, err := v1alpha1.ParseDrift(c.Drift)
		if err != nil {
			return 0, 0, fmt.Errorf("clock.drift: %w", err)
		}
		driftPPB = int64(math.Round(ppm * 1000))
	}
	return offset, driftPPB, nil
}

// InitClock is `faultline-agent init` for clock faults: the shim goes into
// the shared volume and the state file is created, on when the spec has no
// schedule, so the app's first instruction already sees the fake clock.
func InitClock(ctx context.Context, spec *v1alpha1.FaultSpec, timeFile, shimSrc string) error {
	if !spec.HasClock() {
		return nil
	}
	if timeFile == "" {
		return fmt.Errorf("clock faults need %s", EnvTimeFile)
	}
	if err := os.MkdirAll(filepath.Dir(timeFile), 0o755); err != nil {
		return err
	}
	if err := clockfault.InstallShim(shimSrc, filepath.Dir(timeFile)); err != nil {
		return err
	}
	f, err := clockfault.Create(timeFile)
	if err != nil {
		return err
	}
	defer f.Close()
	offset, drift, err := clockParams(spec.Clock)
	if err != nil {
		return err
	}
	on := spec.Schedule == nil
	logf.FromContext(ctx).Info("time shim installed", "dir", filepath.Dir(timeFile), "on", on, "offset", offset, "driftPPB", drift)
	return f.Write(clockfault.State{Enabled: on, Offset: offset, DriftPPB: drift, Base: time.Now()})
}

// clockDriver keeps the state file in line with what should be on.
type clockDriver struct {
	file   *clockfault.File
	offset time.Duration
	drift  int64
	on     bool
	known  bool
	// vdso patches what the shim does not reach, where allowed (nil: not).
	vdso *vdsoDriver
}

func newClockDriver(spec *v1alpha1.FaultSpec, timeFile string) (*clockDriver, error) {
	offset, drift, err := clockParams(spec.Clock)
	if err != nil {
		return nil, err
	}
	// Open what init made; create it if init did not run (a restart after
	// the volume was lost, or an agent run by hand).
	f, err := clockfault.Open(timeFile)
	if err != nil {
		if f, err = clockfault.Create(timeFile); err != nil {
			return nil, err
		}
	}
	return &clockDriver{file: f, offset: offset, drift: drift}, nil
}

// set turns the fake clock on or off; drift restarts from now when it comes on.
func (c *clockDriver) set(on bool, now time.Time) (changed bool, err error) {
	if c.known && on == c.on {
		return false, nil
	}
	c.on, c.known = on, true
	err = c.file.Write(clockfault.State{Enabled: on, Offset: c.offset, DriftPPB: c.drift, Base: now})
	if c.vdso != nil {
		err = errors.Join(err, c.vdso.set(on, vdso.Params{Enabled: on, Offset: c.offset, DriftPPB: c.drift, Base: now}))
	}
	return true, err
}

// stop restores real time for every process and releases the mapping.
func (c *clockDriver) stop() error {
	err := c.file.Write(clockfault.State{Enabled: false})
	if c.vdso != nil {
		err = errors.Join(err, c.vdso.restoreAll())
	}
	if cerr := c.file.Close(); err == nil {
		err = cerr
	}
	return err
}
