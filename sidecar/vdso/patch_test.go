//go:build linux && amd64

package vdso

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultline-dev/faultline/hack/testenv"
)

// probe runs the static Go clock probe and talks to it.
type probe struct {
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Scanner
}

func startProbe(t testing.TB, bin string) *probe {
	t.Helper()
	cmd := exec.Command(bin)
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &probe{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	p.ask(t, "now") // the runtime has found its vDSO
	return p
}

func (p *probe) ask(t testing.TB, cmd string) string {
	t.Helper()
	fmt.Fprintln(p.in, cmd)
	if !p.out.Scan() {
		t.Fatalf("probe %q: no answer (%v)", cmd, p.out.Err())
	}
	return p.out.Text()
}

// skew is time.Now minus the real clock in the probe.
func (p *probe) skew(t testing.TB) time.Duration {
	var fake, real int64
	fmt.Sscan(p.ask(t, "now"), &fake, &real)
	// The raw read comes after time.Now: a few µs of its own.
	return time.Duration(fake - real)
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: patching another process needs ptrace rights (root or CAP_SYS_PTRACE)")
	}
}

func near(d, want time.Duration) bool { return d > want-time.Millisecond && d < want+time.Millisecond }

// A static Go program's time.Now, patched live: shifted by the offset
// within 1 ms, changed without patching again, drifting at the asked rate,
// and real again after Restore, the process running throughout.
func TestPatchShiftsAStaticGoProgramLive(t *testing.T) {
	needRoot(t)
	p := startProbe(t, testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe"))
	if d := p.skew(t); !near(d, 0) {
		t.Fatalf("before the patch the probe is %s off", d)
	}
	start := time.Now()
	pt, err := Patch(p.cmd.Process.Pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if d := p.skew(t); !near(d, 5*time.Minute) {
		t.Errorf("patched with +5m: time.Now is %s off real", d)
	}
	if err := pt.Update(Params{Enabled: true, Offset: -30 * time.Second, Base: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if d := p.skew(t); !near(d, -30*time.Second) {
		t.Errorf("updated to -30s: %s off", d)
	}
	// Drift: +10% (100,000,000 ppb) over 2 s gains 200 ms.
	base := time.Now()
	if err := pt.Update(Params{Enabled: true, DriftPPB: 100_000_000, Base: base}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	elapsed := time.Since(base)
	want := time.Duration(float64(elapsed) * 0.1)
	if d := p.skew(t); d < want-want/100-time.Millisecond || d > want+want/100+time.Millisecond {
		t.Errorf("drift +10%% over %s: %s ahead, want %s within 1%%", elapsed, d, want)
	}
	if err := pt.Update(Params{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if d := p.skew(t); !near(d, 0) {
		t.Errorf("disabled: %s off, want real time", d)
	}
	if err := pt.Update(Params{Enabled: true, Offset: time.Hour, Base: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Restore(); err != nil {
		t.Fatal(err)
	}
	if d := p.skew(t); !near(d, 0) {
		t.Errorf("restored: %s off, want real time", d)
	}
	t.Logf("patched in %s; +5m, -30s, drift and restore as asked", took)
}

// Eight goroutines reading the clock while the offset flips between +5m
// and +10m: every reading is real+5m or real+10m, none torn or in between.
func TestPatchedReadingsAreNeverTorn(t *testing.T) {
	needRoot(t)
	p := startProbe(t, testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe"))
	pt, err := Patch(p.cmd.Process.Pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Restore()
	stop := make(chan struct{})
	flips := 0
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			off := 5 * time.Minute
			if i%2 == 1 {
				off = 10 * time.Minute
			}
			_ = pt.Update(Params{Enabled: true, Offset: off, Base: time.Now()})
			flips++
		}
	}()
	var zero, five, ten, other int
	fmt.Sscan(p.ask(t, "threads 8 1500"), &zero, &five, &ten, &other)
	close(stop)
	if other != 0 || zero != 0 || five == 0 || ten == 0 {
		t.Errorf("readings: %d real, %d +5m, %d +10m, %d other; want only +5m and +10m", zero, five, ten, other)
	}
	t.Logf("%d readings by 8 goroutines over %d offset flips: %d at +5m, %d at +10m, none other", five+ten, flips, five, ten)
}

// Threads held, none moved: a process with 50 threads busy in the clock
// is patched and restored while it runs.
func TestPatchAProcessWithManyThreads(t *testing.T) {
	needRoot(t)
	p := startProbe(t, testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe"))
	done := make(chan string, 1)
	fmt.Fprintln(p.in, "threads 50 4000")
	go func() {
		if p.out.Scan() {
			done <- p.out.Text()
		}
		close(done)
	}()
	var n []int
	for deadline := time.Now().Add(2 * time.Second); len(n) < 50 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n, _ = tasks(p.cmd.Process.Pid)
	}
	if len(n) < 50 {
		t.Fatalf("the probe has %d threads, want 50 busy in the clock", len(n))
	}
	start := time.Now()
	pt, err := Patch(p.cmd.Process.Pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	start = time.Now()
	if err := pt.Restore(); err != nil {
		t.Fatal(err)
	}
	back := time.Since(start)
	var zero, five, ten, other int
	fmt.Sscan(<-done, &zero, &five, &ten, &other)
	if other != 0 || five == 0 || zero == 0 {
		t.Errorf("readings: %d real, %d +5m, %d other; want real, then +5m, then real", zero, five, other)
	}
	t.Logf("%d OS threads: patched in %s, restored in %s; %d readings real, %d at +5m, none other", len(n), took, back, zero, five)
}

func TestAThirtyTwoBitOrUnknownPrologueIsRefused(t *testing.T) {
	if _, _, err := relocate([]byte{0xe8, 0, 0, 0, 0, 0x90}, 0x1000, 0x2000); err == nil || !strings.Contains(err.Error(), "not an instruction the patch knows") {
		t.Errorf("a call first: %v, want a refusal", err)
	}
	// This kernel's clock_gettime: push rbp; mov rbp,rsp; push r14.
	out, n, err := relocate([]byte{0x55, 0x48, 0x89, 0xe5, 0x41, 0x56, 0x53}, 0x1000, 0x2000)
	if err != nil || n != 6 || len(out) != 6 {
		t.Errorf("relocate = % x, %d, %v; want the first three instructions", out, n, err)
	}
	// gettimeofday's lea r10, [rip-0x6818] moved 0x1000 further: its
	// displacement shrinks by as much.
	out, _, err = relocate([]byte{0x55, 0x4c, 0x8d, 0x15, 0xe8, 0x97, 0xff, 0xff}, 0x810, 0x1810)
	if err != nil || fmt.Sprintf("% x", out[4:8]) != "e8 87 ff ff" {
		t.Errorf("relocated lea = % x, %v", out, err)
	}
}

// BenchmarkPatchedClock is the cost of time.Now in a static Go program,
// untouched and patched, in one run (goal: patched ≤ 1.5× untouched).
func BenchmarkPatchedClock(b *testing.B) {
	needRoot(b)
	p := startProbe(b, testenv.GoStaticBinary(b, "./sidecar/vdso/internal/clockprobe"))
	per := func() float64 {
		var ns, sink float64
		fmt.Sscan(p.ask(b, fmt.Sprintf("bench %d", max(b.N, 1000000))), &ns, &sink)
		return ns
	}
	b.ResetTimer()
	untouched := per()
	if _, err := Patch(p.cmd.Process.Pid, Params{Enabled: true, Offset: 5 * time.Minute, DriftPPB: 1000, Base: time.Now()}); err != nil {
		b.Fatal(err)
	}
	patched := per()
	b.ReportMetric(untouched, "ns/call-untouched")
	b.ReportMetric(patched, "ns/call-patched")
	b.ReportMetric(patched/untouched, "ratio")
}

// The patcher SIGKILLed 50 times at random moments while it patches and
// restores a process whose 8 goroutines read the clock: the process runs
// on, every reading is real or real+5m, and a patch a dead patcher left is
// taken over and restored by the next.
func TestAPatcherKilledAtRandomMomentsLeavesTheProcessWhole(t *testing.T) {
	needRoot(t)
	p := startProbe(t, testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe"))
	patcher := testenv.GoBinary(t, "./sidecar/vdso/internal/patcher")
	pid := p.cmd.Process.Pid
	done := make(chan string, 1)
	fmt.Fprintln(p.in, "threads 8 8000")
	go func() {
		if p.out.Scan() {
			done <- p.out.Text()
		}
		close(done)
	}()
	kills, failures := 0, []string{}
	for i := 0; i < 50; i++ {
		cmd := exec.Command(patcher, fmt.Sprint(pid), "5m")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(60)+5) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
			kills++
		} else if stderr.Len() > 0 {
			failures = append(failures, stderr.String())
		}
	}
	// Whatever the last one left, one more patch and restore (adopting a
	// patch left in place) ends with real time.
	if pt, err := Patch(pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()}); err != nil {
		t.Errorf("patching after the kills: %v", err)
	} else if err := pt.Restore(); err != nil {
		t.Errorf("restoring after the kills: %v", err)
	}
	var zero, five, ten, other int
	fmt.Sscan(<-done, &zero, &five, &ten, &other)
	if other != 0 || ten != 0 || zero == 0 || five == 0 {
		t.Errorf("readings: %d real, %d +5m, %d +10m, %d other; want only real and +5m", zero, five, ten, other)
	}
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the process died: %v", err)
	}
	if d := p.skew(t); !near(d, 0) {
		t.Errorf("after all: %s off, want real time", d)
	}
	if len(failures) > 0 {
		t.Errorf("patcher errors: %v", failures)
	}
	t.Logf("%d SIGKILLs mid-patch: process alive, %d readings real, %d at +5m, none other; real time at the end", kills, zero, five)
}

// A static C program (glibc, gcc -static): clock_gettime, gettimeofday and
// time all shifted; a child it forks after the patch inherits it, and the
// patch is taken over (adopted) and restored in the child too.
func TestPatchAStaticCProgramAndItsForkedChild(t *testing.T) {
	needRoot(t)
	bin := filepath.Join(t.TempDir(), "cprobe")
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, "testdata/cprobe.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc -static (hack/deps.sh installs gcc and libc6-dev): %v\n%s", err, out)
	}
	p := startProbe(t, bin)
	read := func(s string) (ct, gtod, tm, raw int64) {
		fmt.Sscan(s, &ct, &gtod, &tm, &raw)
		return
	}
	pt, err := Patch(p.cmd.Process.Pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ct, gtod, tm, raw := read(p.ask(t, "now"))
	five := int64(5 * time.Minute)
	if d := ct - raw; d < five-int64(time.Millisecond) || d > five+int64(time.Millisecond) {
		t.Errorf("clock_gettime %s off, want +5m", time.Duration(d))
	}
	if d := gtod - raw; d < five-int64(time.Millisecond) || d > five+int64(time.Millisecond) {
		t.Errorf("gettimeofday %s off, want +5m", time.Duration(d))
	}
	if d := tm - raw; d < five-int64(time.Second) || d > five+int64(time.Millisecond) {
		t.Errorf("time %s off, want +5m (whole seconds)", time.Duration(d))
	}
	file := filepath.Join(t.TempDir(), "child")
	var child int
	fmt.Sscan(p.ask(t, "fork "+file), &child)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	childSkew := func() time.Duration {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(30 * time.Millisecond) {
			b, err := os.ReadFile(file)
			// The child rewrites the file every 20 ms: a read may catch it
			// empty.
			if err == nil && strings.Count(string(b), " ") == 3 {
				c, _, _, r := read(string(b))
				return time.Duration(c - r)
			}
		}
		t.Fatal("the child wrote nothing")
		return 0
	}
	if d := childSkew(); !near(d, 5*time.Minute) {
		t.Errorf("forked child: %s off, want the inherited +5m", d)
	}
	cpt, err := Patch(child, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	if err != nil {
		t.Fatalf("taking over the child's inherited patch: %v", err)
	}
	if err := cpt.Restore(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if d := childSkew(); !near(d, 0) {
		t.Errorf("child restored: %s off, want real time", d)
	}
	if err := pt.Restore(); err != nil {
		t.Fatal(err)
	}
	if ct, _, _, raw := read(p.ask(t, "now")); !near(time.Duration(ct-raw), 0) {
		t.Errorf("restored: %s off", time.Duration(ct-raw))
	}
}

// A process someone already traces (a debugger, strace) is left alone,
// and says so.
func TestATracedProcessIsLeftAlone(t *testing.T) {
	needRoot(t)
	p := startProbe(t, testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe"))
	pid := p.cmd.Process.Pid
	attached, release := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread() // the tracer is this thread until it lets go
		err := unix.PtraceSeize(pid)
		attached <- err
		<-release
		if err == nil {
			_ = unix.PtraceDetach(pid)
		}
		attached <- nil
	}()
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	_, err := Patch(pid, Params{Enabled: true, Offset: 5 * time.Minute, Base: time.Now()})
	close(release)
	<-attached
	if !errors.Is(err, ErrTraced) {
		t.Errorf("patching a traced process: %v, want ErrTraced", err)
	}
	if d := p.skew(t); !near(d, 0) {
		t.Errorf("the traced process is %s off, want untouched", d)
	}
}
