package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/testenv"
)

// staticProbe is a static Go program whose time.Now and real clock the
// test can compare (sidecar/vdso/internal/clockprobe).
type staticProbe struct {
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Scanner
}

func startStaticProbe(t *testing.T, bin string) *staticProbe {
	t.Helper()
	cmd := exec.Command(bin)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &staticProbe{cmd: cmd, in: in, out: bufio.NewScanner(out)}
}

func (p *staticProbe) skew(t *testing.T) time.Duration {
	t.Helper()
	fmt.Fprintln(p.in, "now")
	if !p.out.Scan() {
		t.Fatalf("probe %d: no answer", p.cmd.Process.Pid)
	}
	var fake, real int64
	fmt.Sscan(p.out.Text(), &fake, &real)
	return time.Duration(fake - real)
}

// untilSkew waits for the probe's clock to be want off real, and says how
// long that took.
func (p *staticProbe) untilSkew(t *testing.T, want time.Duration, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if d := p.skew(t); d > want-time.Millisecond && d < want+time.Millisecond {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("probe %d: clock %s off after %s, want %s", p.cmd.Process.Pid, p.skew(t), within, want)
	return 0
}

// Clock faults for static Go programs from the agent binary: the agent
// patches their vDSO (it sees only the processes in its proc root, as in a
// pod with shareProcessNamespace), a program started later is covered
// within a tick, /status says which method reaches each, pause and SIGTERM
// give real time back.
func TestAgentBinaryPatchesStaticProgramsClocks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: patching another process needs ptrace rights (root or CAP_SYS_PTRACE)")
	}
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	probeBin := testenv.GoStaticBinary(t, "./sidecar/vdso/internal/clockprobe")
	dir := t.TempDir()
	procRoot, podinfo := filepath.Join(dir, "proc"), filepath.Join(dir, "podinfo")
	for _, d := range []string{procRoot, podinfo} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pause := func(on bool) {
		v := ""
		if on {
			v = "faultline.dev/paused=\"true\"\n"
		}
		if err := os.WriteFile(filepath.Join(podinfo, "annotations"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pause(false)
	// The agent's view of the pod: only these processes.
	see := func(p *staticProbe) {
		pid := strconv.Itoa(p.cmd.Process.Pid)
		if err := os.Symlink("/proc/"+pid, filepath.Join(procRoot, pid)); err != nil {
			t.Fatal(err)
		}
	}
	a := startStaticProbe(t, probeBin)
	see(a)
	if d := a.skew(t); d > time.Millisecond {
		t.Fatalf("before the agent the probe is %s off", d)
	}
	run := exec.Command(agent, "run", "--listen=127.0.0.1:0", "--status-listen=127.0.0.1:19193", "--proc="+procRoot, "--podinfo-dir="+podinfo)
	run.Env = append(os.Environ(), `FAULTLINE_SPEC={"clock":{"offset":"+5m"}}`, "FAULTLINE_TIME_FILE="+filepath.Join(dir, "time", "state"), "FAULTLINE_CLOCK_VDSO=true")
	var log strings.Builder
	run.Stderr = &log
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill(); _ = run.Wait() })
	first := a.untilSkew(t, 5*time.Minute, 5*time.Second)

	b := startStaticProbe(t, probeBin)
	if d := b.skew(t); d > time.Millisecond {
		t.Fatalf("a new probe is %s off before the agent sees it", d)
	}
	see(b)
	later := b.untilSkew(t, 5*time.Minute, 3*time.Second)
	if later > time.Second {
		t.Errorf("a program started later was patched %s after it appeared, want within 1s", later)
	}

	var st struct {
		Processes []struct {
			PID    int    `json:"pid"`
			Method string `json:"method"`
			Reason string `json:"reason"`
		} `json:"clockProcesses"`
	}
	for deadline := time.Now().Add(3 * time.Second); len(st.Processes) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://127.0.0.1:19193/status"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
	}
	for _, p := range st.Processes {
		if p.Method != "vdso" {
			t.Errorf("/status: process %d reached by %q (%s), want vdso", p.PID, p.Method, p.Reason)
		}
	}
	if len(st.Processes) != 2 {
		t.Errorf("/status lists %d processes, want the 2 probes", len(st.Processes))
	}

	pause(true)
	paused := a.untilSkew(t, 0, 5*time.Second)
	b.untilSkew(t, 0, time.Second)
	pause(false)
	a.untilSkew(t, 5*time.Minute, 5*time.Second)

	sent := time.Now()
	_ = run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Errorf("agent exit: %v\n%s", err, log.String())
	}
	exited := time.Since(sent)
	for _, p := range []*staticProbe{a, b} {
		if d := p.skew(t); d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("after SIGTERM probe %d is %s off, want real time", p.cmd.Process.Pid, d)
		}
	}
	t.Logf("static Go probe shifted +5m %s after the agent started; one started later, %s after it appeared; pause -> real in %s; SIGTERM -> restored, exit in %s",
		first.Round(time.Millisecond), later.Round(time.Millisecond), paused.Round(time.Millisecond), exited.Round(time.Millisecond))
}
