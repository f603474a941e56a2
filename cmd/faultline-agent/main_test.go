package main

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/sidecar/clockfault"
)

// The agent binary as the pod runs it: init installs the shim and the state
// file, run drives it by the pause annotation, SIGTERM restores real time.
func TestAgentBinaryDrivesAClockFaultEndToEnd(t *testing.T) {
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	shim := testenv.TimeShim(t)
	dir := t.TempDir()
	timeFile := filepath.Join(dir, "time", "state")
	podinfo := filepath.Join(dir, "podinfo")
	if err := os.MkdirAll(podinfo, 0o755); err != nil {
		t.Fatal(err)
	}
	setPaused := func(v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(podinfo, "annotations"), []byte(`faultline.dev/paused="`+v+`"`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setPaused("false")
	env := append(os.Environ(), `FAULTLINE_SPEC={"clock":{"offset":"+1h"}}`, "FAULTLINE_TIME_FILE="+timeFile, "FAULTLINE_PODINFO_DIR="+podinfo)

	init := exec.Command(agent, "init", "--shim-src", shim)
	init.Env = env
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	installed := filepath.Join(dir, "time", clockfault.ShimName)
	// offset runs date under the installed shim and returns its clock minus real time.
	offset := func() time.Duration {
		t.Helper()
		cmd := exec.Command("date", "+%s")
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+installed, "FAULTLINE_TIME_FILE="+timeFile)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		secs, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		return time.Duration(secs-time.Now().Unix()) * time.Second
	}
	near := func(d, want time.Duration) bool { return d-want <= 2*time.Second && want-d <= 2*time.Second }
	if d := offset(); !near(d, time.Hour) {
		t.Fatalf("after init, date is %s off; want +1h", d)
	}

	run := exec.Command(agent, "run", "--listen=127.0.0.1:0", "--proc=")
	run.Env = env
	run.Stdout, run.Stderr = os.Stderr, os.Stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() { _ = run.Process.Kill() })

	waitOffset := func(what string, want time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for !near(offset(), want) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: date still %s off after 5s", what, offset())
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitOffset("running", time.Hour)
	setPaused("true")
	t.Logf("pause annotation -> real time in %s", waitOffset("paused", 0).Round(time.Millisecond))
	setPaused("false")
	t.Logf("unpause -> fake time in %s", waitOffset("unpaused", time.Hour).Round(time.Millisecond))

	sent := time.Now()
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exit: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("agent did not exit within 1s of SIGTERM")
	}
	t.Logf("SIGTERM -> exited with real time restored in %s", time.Since(sent).Round(time.Millisecond))
	if d := offset(); !near(d, 0) {
		t.Fatalf("after SIGTERM date is %s off; want real time", d)
	}
}

// The network lifecycle with the real binary in a real network namespace:
// 100 SIGKILLs and restarts leave exactly one copy of the rules, and SIGTERM
// leaves none within 1s.
func TestAgentBinaryNetworkLifecycleSurvivesSIGKILL(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root for ip netns and iptables")
	}
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	ns := "fl-agent-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	// Both families: the namespace has IPv6, so the agent writes both.
	save := func(chain string) string {
		var all string
		for _, bin := range []string{"iptables", "ip6tables"} {
			args := []string{"netns", "exec", ns, bin, "-S"}
			if chain != "" {
				args = append(args, chain)
			}
			out, _ := exec.Command("ip", args...).Output()
			all += string(out)
		}
		return all
	}
	spec := `{"network":[{"delay":"20ms","to":["10.7.0.0/16"]},{"partition":true,"to":["10.9.0.0/16:5432"]},{"loss":"5%","direction":"both","to":[":53/udp"]},{"reset":true,"to":["10.8.0.1:443"]}]}`
	start := func(wait bool) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", ns, agent, "run", "--listen=127.0.0.1:0", "--proc=")
		cmd.Env = append(os.Environ(), "FAULTLINE_SPEC="+spec, "FAULTLINE_PROBE_PORTS=8080")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Rules a killed run left are visible until the new run has cleaned
		// up and re-applied, so wait for the agent to say it applied.
		applied := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			once := false
			for sc.Scan() {
				if !once && strings.Contains(sc.Text(), `"msg":"network faults"`) && strings.Contains(sc.Text(), `"on":true`) {
					once = true
					close(applied)
				}
			}
		}()
		if !wait {
			return cmd
		}
		select {
		case <-applied:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("agent did not apply rules within 5s")
		}
		return cmd
	}
	first := start(true)
	want := save("FAULTLINE-INPUT") + save("FAULTLINE-OUTPUT")
	_ = first.Process.Kill()
	_ = first.Wait()
	for i := 0; i < 100; i++ {
		// Half the kills land after the rules are applied, half at a
		// random moment from start: mid-cleanup, mid-probe or mid-apply.
		cmd := start(i%2 == 0)
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	last := start(true)
	if got := save("FAULTLINE-INPUT") + save("FAULTLINE-OUTPUT"); got != want {
		t.Errorf("after 100 SIGKILLs the chains differ:\nwant\n%s\ngot\n%s", want, got)
	}
	all := save("")
	for _, jump := range []string{"-j FAULTLINE-INPUT", "-j FAULTLINE-OUTPUT"} {
		if c := strings.Count(all, jump); c != 2 {
			t.Errorf("%d jumps %q, want exactly 1 per family:\n%s", c, jump, all)
		}
	}
	if !strings.Contains(want, "-A FAULTLINE-INPUT -p ipv6-icmp") {
		t.Errorf("no IPv6 chains were written:\n%s", want)
	}
	sent := time.Now()
	_ = last.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- last.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("agent did not exit within 1s of SIGTERM")
	}
	took := time.Since(sent)
	if s := save(""); strings.Contains(s, "FAULTLINE") || strings.Contains(s, "faultline") {
		t.Fatalf("rules left after SIGTERM:\n%s", s)
	}
	t.Logf("100 SIGKILL/restart cycles: one copy of %d rules (both families); SIGTERM -> all removed and exited in %s",
		strings.Count(want, "-A "), took.Round(time.Millisecond))
}
