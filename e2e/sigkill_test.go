//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// 9. The agent SIGKILLed 100 times in a running pod, at random moments of
// its start-up and apply: afterwards exactly the expected rules; SIGTERM
// removes everything within 1 s.
func TestScenario9AgentKilled(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "sigkill", `network: [{delay: 50ms}, {partition: true, direction: ingress, to: [":8081"]}]`, true, nil)
	pod := running(t, ctx, "shop", "sigkill")
	waitFor(t, ctx, 30*time.Second, "the agent to apply", func() bool { return agentActive(t, pod.IP, "delay") })
	want := rules(t, pod.NetNS)
	for i := 0; i < 100; i++ {
		pid, _, err := pod.Kill("faultline-agent", syscall.SIGKILL, true)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, 10*time.Second, "the sidecar to be restarted", func() bool {
			p, ok := pod.Processes()["faultline-agent"]
			return ok && p != pid
		})
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // kill it anywhere in its start-up
	}
	waitFor(t, ctx, 30*time.Second, "the agent to apply after the last kill", func() bool { return agentActive(t, pod.IP, "delay") })
	got := rules(t, pod.NetNS)
	same := slices.Equal(got, want)
	delay := rtt(t, "http://"+pod.IP+":8080/", 10)

	start := time.Now()
	_, done, err := pod.Kill("faultline-agent", syscall.SIGTERM, false)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not exit within 5 s of SIGTERM")
	}
	exited := time.Since(start)
	left := rules(t, pod.NetNS)
	pass := same && len(left) == 0 && exited <= time.Second && delay > 45
	record("9 agent SIGKILLed", "100 SIGKILLs, then SIGTERM",
		fmt.Sprintf("%d rules after, identical to before: %v (RTT %.1f ms); SIGTERM: exited in %s, %d rules left", len(got), same, delay, exited.Round(time.Millisecond), len(left)), pass)
	if !pass {
		t.Fatalf("rules before %q\nafter %q\nleft after SIGTERM %q (exit %s, RTT %.1f)", want, got, left, exited, delay)
	}
}
