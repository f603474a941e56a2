// Command bench-timeshim prints ns per clock_gettime(CLOCK_REALTIME) over
// ten million calls in one run, side by side: no preload (the vDSO), this
// shim (on, and off), and Debian's libfaketime with a fixed FAKETIME and with
// a timestamp file re-read on every call (live changes, like ours).
// Each row is the median of several runs; ratios are against the vDSO row.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/sidecar/clockfault"
)

const libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

func main() {
	calls := flag.Int("calls", 10_000_000, "calls per run")
	runs := flag.Int("runs", 5, "runs per row (median reported)")
	flag.Parse()
	if err := run(*calls, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-timeshim:", err)
		os.Exit(1)
	}
}

func run(calls, runs int) error {
	dir, err := os.MkdirTemp("", "bench-timeshim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("hack/build-timeshim.sh", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("building shim: %v\n%s", err, out)
	}
	probe := filepath.Join(dir, "probe")
	if out, err := exec.Command("cc", "-O2", "-pthread", "-o", probe, "sidecar/clockfault/testdata/clockprobe.c").CombinedOutput(); err != nil {
		return fmt.Errorf("building probe: %v\n%s", err, out)
	}
	shim := filepath.Join(dir, clockfault.ShimName)
	on, off := filepath.Join(dir, "on"), filepath.Join(dir, "off")
	for path, enabled := range map[string]bool{on: true, off: false} {
		f, err := clockfault.Create(path)
		if err != nil {
			return err
		}
		if err := f.Write(clockfault.State{Enabled: enabled, Offset: 5 * time.Minute, DriftPPB: 200_000, Base: time.Now()}); err != nil {
			return err
		}
		f.Close()
	}
	stamp := filepath.Join(dir, "faketime.rc")
	if err := os.WriteFile(stamp, []byte("+5m\n"), 0o644); err != nil {
		return err
	}
	rows := []struct {
		name string
		env  []string
	}{
		{"no preload (vDSO)", nil},
		{"faultline shim, fault on (offset+drift)", []string{"LD_PRELOAD=" + shim, "FAULTLINE_TIME_FILE=" + on}},
		{"faultline shim, fault off", []string{"LD_PRELOAD=" + shim, "FAULTLINE_TIME_FILE=" + off}},
		{"libfaketime, fixed FAKETIME=+5m", []string{"LD_PRELOAD=" + libfaketime, "FAKETIME=+5m"}},
		{"libfaketime, timestamp file, no cache (live)", []string{"LD_PRELOAD=" + libfaketime, "FAKETIME_TIMESTAMP_FILE=" + stamp, "FAKETIME_NO_CACHE=1"}},
	}
	if _, err := os.Stat(libfaketime); err != nil {
		fmt.Fprintf(os.Stderr, "NOTE: %s missing (apt-get install libfaketime): its rows are skipped\n", libfaketime)
		rows = rows[:3]
	}
	fmt.Printf("clock_gettime(CLOCK_REALTIME), %d calls per run, median of %d runs\n\n", calls, runs)
	fmt.Printf("| %-46s | %8s | %8s |\n|%s|%s|%s|\n", "configuration", "ns/call", "× vDSO", strings.Repeat("-", 48), strings.Repeat("-", 10), strings.Repeat("-", 10))
	var base float64
	for i, r := range rows {
		var samples []float64
		for j := 0; j < runs; j++ {
			cmd := exec.Command(probe, "bench", strconv.Itoa(calls))
			cmd.Env = append(os.Environ(), r.env...)
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("%s: %v", r.name, err)
			}
			v, err := strconv.ParseFloat(strings.Fields(string(out))[1], 64)
			if err != nil {
				return fmt.Errorf("%s: output %q", r.name, out)
			}
			samples = append(samples, v)
		}
		sort.Float64s(samples)
		med := samples[len(samples)/2]
		if i == 0 {
			base = med
		}
		fmt.Printf("| %-46s | %8.2f | %8.2f |\n", r.name, med, med/base)
	}
	return nil
}
