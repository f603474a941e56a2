package sidecar

import (
	"context"
	"fmt"
	"os"
	"strings"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/sidecar/clockfault"
)

// reportCoverage lists the pod's processes with the method that fakes
// each one's clock (patching, first, the ones the vDSO patch may reach),
// for /status, the metrics and a log line when the count changes.
func (a *Agent) reportCoverage(ctx context.Context) {
	procs, err := clockfault.Coverage(a.opts.ProcRoot, os.Getpid())
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing processes for clock coverage")
		return
	}
	if v := a.clock.vdso; v != nil {
		v.scan(ctx, procs)
		v.methods(procs)
	} else {
		for i := range procs {
			if procs[i].Method = "shim"; !procs[i].Affected {
				procs[i].Method = "none"
				if strings.HasPrefix(procs[i].Reason, "statically linked") {
					procs[i].Reason += "; vDSO patching is not allowed for this pod (a ChaosPolicy's limits.clockVDSO)"
				}
			}
		}
	}
	var yes, no int
	var missed []string
	for _, p := range procs {
		if p.Affected {
			yes++
		} else {
			no++
			missed = append(missed, fmt.Sprintf("%s[%d]: %s", p.Comm, p.PID, p.Reason))
		}
	}
	a.affected.WithLabelValues("true").Set(float64(yes))
	a.affected.WithLabelValues("false").Set(float64(no))
	byMethod := map[string]int{"shim": 0, "vdso": 0, "none": 0}
	for _, p := range procs {
		byMethod[p.Method]++
	}
	for m, n := range byMethod {
		a.methods.WithLabelValues(m).Set(float64(n))
	}
	a.mu.Lock()
	changed := len(procs) != len(a.status.Processes)
	a.status.Processes = procs
	a.mu.Unlock()
	if changed {
		logf.FromContext(ctx).Info("clock coverage", "affected", yes, "notAffected", no, "notAffectedWhy", missed)
	}
}
