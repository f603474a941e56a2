package clockfault

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/testenv"
)

// Real processes, no mocks: the shim and a probe program are compiled from
// this repository, then date, python3 and the probe run under LD_PRELOAD.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

type tools struct{ shim, probe, static string }

func build(t *testing.T) tools {
	t.Helper()
	root := testenv.RepoRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "faultline-timeshim-")
		if buildErr != nil {
			return
		}
		run := func(name string, args ...string) {
			if buildErr != nil {
				return
			}
			if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
			}
		}
		src := filepath.Join(root, "sidecar", "clockfault", "testdata", "clockprobe.c")
		run("cc", "-O2", "-pthread", "-o", filepath.Join(buildDir, "probe"), src)
		run("cc", "-O2", "-static", "-pthread", "-o", filepath.Join(buildDir, "probe-static"), src)
	})
	if buildErr != nil {
		t.Fatalf("building the shim and probe (needs gcc and libc6-dev): %v", buildErr)
	}
	return tools{testenv.TimeShim(t), filepath.Join(buildDir, "probe"), filepath.Join(buildDir, "probe-static")}
}

// stateFile creates a state file holding st in a fresh directory.
func stateFile(t *testing.T, st State) (string, *File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Write(st); err != nil {
		t.Fatal(err)
	}
	return path, f
}

func shimmed(tl tools, stateFile string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+tl.shim, "FAULTLINE_TIME_FILE="+stateFile)
	return cmd
}

// values parses "key number" lines.
func values(t *testing.T, out []byte) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		m[f[0]] = v
	}
	return m
}

func run(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out
}

const ms = float64(time.Millisecond)

func TestShimShiftsTheWallClockOfRealPrograms(t *testing.T) {
	tl := build(t)
	offset := 5 * time.Minute
	path, _ := stateFile(t, State{Enabled: true, Offset: offset, Base: time.Now()})

	// External tools: the value they print, minus the offset, must fall
	// between the real times taken just before and after they ran.
	bracket := func(t *testing.T, name string, args ...string) {
		before := time.Now()
		out := run(t, shimmed(tl, path, name, args...))
		after := time.Now()
		secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			t.Fatalf("%s printed %q", name, out)
		}
		got := time.Unix(0, int64(secs*1e9)).Add(-offset)
		// float64 seconds carry ~0.2µs of rounding at this magnitude.
		if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
			t.Fatalf("%s: %v minus offset is outside [%v, %v]", name, time.Unix(0, int64(secs*1e9)), before, after)
		}
	}
	t.Run("date sees the clock five minutes ahead", func(t *testing.T) { bracket(t, "date", "+%s.%N") })
	t.Run("python's time.time sees it too", func(t *testing.T) {
		bracket(t, "python3", "-c", "import time; print('%.6f' % time.time())")
	})
	t.Run("every wall-clock call is shifted to within 1ms and the monotonic clock is not", func(t *testing.T) {
		v := values(t, run(t, shimmed(tl, path, tl.probe, "once")))
		for _, k := range []string{"clock_gettime", "gettimeofday", "timespec_get"} {
			if d := v[k] - float64(offset); d < -ms || d > ms {
				t.Errorf("%s offset error %.3fms, want within 1ms", k, d/ms)
			}
		}
		if d := v["time"] - float64(offset); d < -float64(time.Second) || d > float64(time.Second) {
			t.Errorf("time() offset error %.0fms, want within its 1s resolution", d/ms)
		}
		if d := v["monotonic"]; d < -ms || d > ms {
			t.Errorf("CLOCK_MONOTONIC moved by %.3fms; it must not be touched", d/ms)
		}
	})
	t.Run("a forked child keeps the offset", func(t *testing.T) {
		v := values(t, run(t, shimmed(tl, path, tl.probe, "fork")))
		if d := v["child"] - float64(offset); d < -ms || d > ms {
			t.Errorf("child offset error %.3fms", d/ms)
		}
	})
}

func TestShimDriftIsMeasuredWithinOnePercent(t *testing.T) {
	tl := build(t)
	for _, ppm := range []int64{200000, -100000} {
		t.Run(fmt.Sprintf("a clock running %+dppm", ppm), func(t *testing.T) {
			path, _ := stateFile(t, State{Enabled: true, DriftPPB: ppm * 1000, Base: time.Now()})
			got := values(t, run(t, shimmed(tl, path, tl.probe, "drift", "2")))["drift_ppm"]
			if err := (got - float64(ppm)) / float64(ppm); err > 0.01 || err < -0.01 {
				t.Fatalf("measured %.0fppm, want %dppm within 1%%", got, ppm)
			}
			t.Logf("requested %dppm, measured %.1fppm over 2s", ppm, got)
		})
	}
}

func TestAChangeReachesARunningProgram(t *testing.T) {
	tl := build(t)
	path, f := stateFile(t, State{Enabled: true, Offset: time.Hour, Base: time.Now()})
	cmd := shimmed(tl, path, tl.probe, "watch", "40")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []float64
	changed := false
	for sc.Scan() {
		v, _ := strconv.ParseFloat(strings.Fields(sc.Text())[1], 64)
		seen = append(seen, v)
		if len(seen) == 5 && !changed {
			changed = true
			if err := f.Write(State{Enabled: true, Offset: -30 * time.Second, Base: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) == 10 {
			if err := f.Write(State{Enabled: false}); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = cmd.Wait()
	near := func(v float64, want time.Duration) bool { return v-float64(want) < ms && v-float64(want) > -ms }
	if !near(seen[0], time.Hour) || !near(seen[7], -30*time.Second) || !near(seen[len(seen)-1], 0) {
		t.Fatalf("offsets seen (s): first %.3f, 8th %.3f, last %.3f; want 3600, -30, 0 without a restart",
			seen[0]/1e9, seen[7]/1e9, seen[len(seen)-1]/1e9)
	}
}

func TestConcurrentReadersNeverSeeATornUpdate(t *testing.T) {
	tl := build(t)
	a, b := 10*time.Second, -7*time.Minute
	path, f := stateFile(t, State{Enabled: true, Offset: a, Base: time.Now()})
	done := make(chan struct{})
	go func() {
		// Flip thousands of times a second (the agent writes a few times an
		// hour) while 8 threads read. A writer that never pauses would
		// starve readers into the real-time fallback, by design.
		for i := 0; ; i++ {
			time.Sleep(20 * time.Microsecond)
			select {
			case <-done:
				return
			default:
			}
			off := a
			if i%2 == 1 {
				off = b
			}
			_ = f.Write(State{Enabled: true, Offset: off, Base: time.Unix(0, int64(i))})
		}
	}()
	out := run(t, shimmed(tl, path, tl.probe, "threads", strconv.FormatInt(int64(a), 10), strconv.FormatInt(int64(b), 10)))
	close(done)
	t.Logf("%s", bytes.TrimSpace(out))
	if !bytes.HasPrefix(out, []byte("torn 0 ")) {
		t.Fatalf("readers saw offsets other than the two written: %s", out)
	}
}

func TestABadStateFileMeansRealTime(t *testing.T) {
	tl := build(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, _ := stateFile(t, State{Enabled: true, Offset: time.Hour, Base: time.Now()})
	goodBytes, _ := os.ReadFile(good)
	corrupt := append([]byte{}, goodBytes...)
	corrupt[0] ^= 0xff
	wrongVersion := append([]byte{}, goodBytes...)
	wrongVersion[offVersion] = 9
	huge := append([]byte{}, goodBytes...)
	for slot := 0; slot < 2; slot++ {
		huge[offSlot0+slot*slotSize+offOffset+7] = 0x7f // offset far beyond a year
	}
	disabled, _ := stateFile(t, State{Enabled: false, Offset: time.Hour})
	cases := []struct{ name, path string }{
		{"a missing file", filepath.Join(dir, "nope")},
		{"an empty variable", ""},
		{"a short file", write("short", goodBytes[:20])},
		{"a bad magic number", write("magic", corrupt)},
		{"an unknown version", write("version", wrongVersion)},
		{"an out-of-range offset", write("huge", huge)},
		{"a disabled state", disabled},
		{"a directory", dir},
	}
	for _, c := range cases {
		t.Run(c.name+" gives real time", func(t *testing.T) {
			v := values(t, run(t, shimmed(tl, c.path, tl.probe, "once")))
			if d := v["clock_gettime"]; d < -ms || d > ms {
				t.Fatalf("offset %.3fms, want real time", d/ms)
			}
		})
	}
}

func TestCoverageReportsWhoTheShimReaches(t *testing.T) {
	tl := build(t)
	path, _ := stateFile(t, State{Enabled: true, Offset: time.Minute, Base: time.Now()})
	start := func(bin string) *exec.Cmd {
		cmd := shimmed(tl, path, bin, "sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	dyn, static := start(tl.probe), start(tl.static)
	plain := exec.Command(tl.probe, "sleep", "5")
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plain.Process.Kill(); _ = plain.Wait() })
	var procs []Process
	deadline := time.Now().Add(2 * time.Second)
	for {
		var err error
		if procs, err = Coverage("/proc", os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if byPID(procs, dyn.Process.Pid).Affected || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the loader maps the shim just after exec
	}
	if p := byPID(procs, dyn.Process.Pid); !p.Affected {
		t.Errorf("dynamic program under LD_PRELOAD reported %+v", p)
	}
	if p := byPID(procs, static.Process.Pid); p.Affected || !strings.Contains(p.Reason, "statically linked") {
		t.Errorf("static program reported %+v, want not affected because statically linked", p)
	}
	if p := byPID(procs, plain.Process.Pid); p.Affected || !strings.Contains(p.Reason, "not loaded") {
		t.Errorf("program without LD_PRELOAD reported %+v", p)
	}
	// And the static program really is unaffected, as reported.
	v := values(t, run(t, shimmed(tl, path, tl.static, "once")))
	if d := v["clock_gettime"]; d < -ms || d > ms {
		t.Errorf("static program saw an offset of %.3fms", d/ms)
	}
}

func byPID(ps []Process, pid int) Process {
	for _, p := range ps {
		if p.PID == pid {
			return p
		}
	}
	return Process{PID: pid, Reason: "not listed"}
}
