//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// procStatus reads fields of /proc/PID/status (Uid, CapEff...).
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// readOnlyRoot says whether the process's / is mounted read-only.
func readOnlyRoot(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[1] == "/" {
			return strings.HasPrefix(f[3], "ro,") || f[3] == "ro"
		}
	}
	return false
}

// 10. The injected containers under the securityContexts faultline writes,
// enforced by containerd and runc: a network pod's agent is root with
// NET_ADMIN and NET_RAW only and a read-only root, and still programs and
// removes its rules; a time-only pod's agent is uid 65532 with no
// capabilities at all.
func TestScenario10SecurityContexts(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "sc-net", "network: [{delay: 30ms}]", true, nil)
	createPod(t, ctx, "shop", "sc-time", "clock: {offset: +1m}", true, nil)
	net, _ := running(t, ctx, "shop", "sc-net"), running(t, ctx, "shop", "sc-time")
	waitFor(t, ctx, 30*time.Second, "the agent to apply", func() bool { return agentActive(t, net.Status.PodIP, "delay") })
	nst := procStatus(t, containerPID(t, ctx, "shop", "sc-net", "faultline-agent"))
	tst := procStatus(t, containerPID(t, ctx, "shop", "sc-time", "faultline-agent"))
	nro := readOnlyRoot(t, containerPID(t, ctx, "shop", "sc-net", "faultline-agent"))
	tro := readOnlyRoot(t, containerPID(t, ctx, "shop", "sc-time", "faultline-agent"))
	// NET_ADMIN is bit 12, NET_RAW bit 13: 0x3000 and nothing else.
	netOK := strings.HasPrefix(nst["Uid"], "0\t") && nst["CapEff"] == "0000000000003000" && nro && nst["NoNewPrivs"] == "1" && nst["Seccomp"] == "2"
	timeOK := strings.HasPrefix(tst["Uid"], "65532\t") && tst["CapEff"] == "0000000000000000" && tst["CapPrm"] == "0000000000000000" && tro
	applied := len(rules(t, ctx, net)) > 0
	// Removal under the same context: the pause path.
	var p corev1.Pod
	_ = k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "sc-net"}, &p)
	p.Annotations[v1alpha1.AnnotationPaused] = "true"
	if err := k8s.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 10*time.Second, "the rules removed", func() bool { return faultlineRules(t, ctx, net) == 0 })
	pass := netOK && timeOK && applied
	record("10 securityContexts", "network agent: root, NET_ADMIN+NET_RAW only, read-only root; time-only agent: uid 65532, no capabilities",
		fmt.Sprintf("network agent uid %s CapEff %s ro-root %v no_new_privs %s seccomp %s, rules applied %v and removed; time agent uid %s CapEff %s CapPrm %s ro-root %v",
			strings.Fields(nst["Uid"])[0], nst["CapEff"], nro, nst["NoNewPrivs"], nst["Seccomp"], applied,
			strings.Fields(tst["Uid"])[0], tst["CapEff"], tst["CapPrm"], tro), pass)
	if !pass {
		t.Fatalf("network agent %v ro=%v; time agent %v ro=%v; applied %v", nst, nro, tst, tro, applied)
	}
}

// 11. The clock offset in a musl program (its libc loads the shim too), and
// a static Go program named as not covered in the agent's coverage report.
func TestScenario11ClockMuslAndStatic(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "clock-musl", "clock: {offset: +5m}", true, func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: muslImage,
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}
	})
	// shareProcessNamespace lets the agent see the app's processes (and so
	// report which the shim reaches).
	createPod(t, ctx, "shop", "clock-static", "clock: {offset: +5m}", true, func(p *corev1.Pod) {
		p.Spec.ShareProcessNamespace = ptr.To(true)
	})
	running(t, ctx, "shop", "clock-musl")
	st := running(t, ctx, "shop", "clock-static")
	var line string
	waitFor(t, ctx, 30*time.Second, "the musl program's clock lines", func() bool {
		lines := strings.Split(strings.TrimSpace(containerLog(t, ctx, "shop", "clock-musl", "app")), "\n")
		line = lines[len(lines)-1]
		return strings.HasPrefix(line, "time=")
	})
	// The line is at most 200 ms old when read.
	var tsec, gsec, csec float64
	if _, err := fmt.Sscanf(line, "time=%f gettimeofday=%f clock_gettime=%f", &tsec, &gsec, &csec); err != nil {
		t.Fatalf("musl program said %q: %v", line, err)
	}
	now := float64(time.Now().UnixNano()) / 1e9
	muslOff := csec - now
	var status struct {
		Processes []struct {
			Comm     string `json:"comm"`
			Affected bool   `json:"affected"`
			Reason   string `json:"reason"`
		} `json:"clockProcesses"`
	}
	var static string
	waitFor(t, ctx, 30*time.Second, "the agent's coverage report", func() bool {
		out, err := agentStatus(t, ctx, st)
		if err != nil || json.Unmarshal([]byte(out), &status) != nil {
			return false
		}
		for _, p := range status.Processes {
			if p.Comm == "echo-server" && !p.Affected {
				static = p.Reason
			}
		}
		return static != ""
	})
	pass := math.Abs(muslOff-300) < 3 && math.Abs(gsec-csec) < 1 && strings.Contains(static, "static")
	record("11 clock: musl, static Go", "offset +5m in a musl program; a static Go app in a pod with shareProcessNamespace",
		fmt.Sprintf("musl clock_gettime %+.1f s (gettimeofday, time() agree); static Go echo-server reported not covered: %q", muslOff, static), pass)
	if !pass {
		t.Fatalf("musl offset %.1f (line %q); static report %q (%+v)", muslOff, line, static, status.Processes)
	}
}

// 12. The agent fails open: a pod whose fault target does not resolve
// starts and serves; the problem is in the init container's termination
// message, a FaultsNotApplied Event, the agent's /status and its metric.
func TestScenario12FailOpen(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "unresolvable", `network: [{delay: 100ms, to: ["db.nowhere.invalid:5432"]}]`, true, nil)
	pod := running(t, ctx, "shop", "unresolvable")
	serving := connect(t, pod.Status.PodIP+":8080")
	var ev []string
	waitFor(t, ctx, 60*time.Second, "a FaultsNotApplied Event", func() bool {
		ev = grepEvents(events(t, ctx, "shop", "unresolvable"), "FaultsNotApplied")
		return len(ev) > 0
	})
	var p corev1.Pod
	_ = k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "unresolvable"}, &p)
	phase, restarts := p.Status.Phase, int32(0)
	for _, s := range p.Status.InitContainerStatuses {
		restarts += s.RestartCount
	}
	var statusErr, metric string
	waitFor(t, ctx, 30*time.Second, "the agent to report it", func() bool {
		s, _ := agentStatus(t, ctx, pod)
		m, _ := agentGet(pod.Status.PodIP, "/metrics")
		statusErr, metric = grep(s, "nowhere"), grep(m, `faultline_agent_apply_errors_total{kind="network"}`)
		return statusErr != "" && metric != ""
	})
	pass := serving == "ok" && phase == corev1.PodRunning && restarts == 0 && strings.Contains(ev[0], "db.nowhere.invalid")
	record("12 fail open", "delay to a name that does not resolve",
		fmt.Sprintf("pod %s, app serving (%s), init restarts %d; Event FaultsNotApplied %q; agent /status errors and %s", phase, serving, restarts, ev[0][strings.LastIndex(ev[0], "retries: ")+len("retries: "):], metric), pass)
	if !pass {
		t.Fatalf("phase %s serving %s restarts %d events %v", phase, serving, restarts, ev)
	}
}
