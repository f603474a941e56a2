//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// 9. The agent SIGKILLed again and again in a running pod, at random
// moments of its start-up and apply, the kubelet restarting it each time:
// afterwards exactly the expected rules; SIGTERM removes everything within
// 1 s. (The node caps the kubelet's restart back-off at 1 s for this.)
func TestScenario9AgentKilled(t *testing.T) {
	ctx := context.Background()
	const kills = 30
	createPod(t, ctx, "shop", "sigkill", `network: [{delay: 50ms}, {partition: true, direction: ingress, to: [":8081"]}]`, true, nil)
	pod := running(t, ctx, "shop", "sigkill")
	waitFor(t, ctx, 30*time.Second, "the agent to apply", func() bool { return agentActive(t, pod.Status.PodIP, "delay") })
	want := rules(t, ctx, pod)
	agentPID := func() int { return containerPID(t, ctx, "shop", "sigkill", "faultline-agent") }
	for i := 0; i < kills; i++ {
		pid := agentPID()
		if pid == 0 {
			t.Fatal("no running agent")
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, ctx, 30*time.Second, "the kubelet to restart the sidecar", func() bool {
			p := agentPID()
			return p != 0 && p != pid
		})
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // kill it anywhere in its start-up
	}
	waitFor(t, ctx, 30*time.Second, "the agent to apply after the last kill", func() bool { return agentActive(t, pod.Status.PodIP, "delay") })
	got := rules(t, ctx, pod)
	same := slices.Equal(got, want)
	delay := rtt(t, "http://"+pod.Status.PodIP+":8080/", 10)
	pid := agentPID()
	start := time.Now()
	_ = syscall.Kill(pid, syscall.SIGTERM)
	waitFor(t, ctx, 5*time.Second, "the agent to exit after SIGTERM", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return err != nil
	})
	exited := time.Since(start)
	left := rules(t, ctx, pod) // before the kubelet starts it again
	pass := same && len(left) == 0 && exited <= time.Second && delay > 45
	record("9 agent SIGKILLed", fmt.Sprintf("%d SIGKILLs (kubelet restarts), then SIGTERM", kills),
		fmt.Sprintf("%d rules after, identical to before: %v (RTT %.1f ms); SIGTERM: exited in %s, %d rules left", len(got), same, delay, exited.Round(time.Millisecond), len(left)), pass)
	if !pass {
		t.Fatalf("rules before %q\nafter %q\nleft after SIGTERM %q (exit %s, RTT %.1f)", want, got, left, exited, delay)
	}
}
