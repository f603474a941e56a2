//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 1. A Deployment asking for delay: 100ms gets it; a pod beside it does not.
func TestScenario1DeploymentDelay(t *testing.T) {
	ctx := context.Background()
	labels := map[string]string{"app": "checkout", v1alpha1.LabelPodInject: "true"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: appImage,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				// A readiness probe on the app's own port: the kubelet's
				// probes skip the delay, clients do not.
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrString("http")}}, PeriodSeconds: 1},
			}}},
		}}}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	createPod(t, ctx, "shop", "beside", "", false, nil)
	var name string
	waitFor(t, ctx, 60*time.Second, "the Deployment's pod", func() bool {
		var l corev1.PodList
		_ = k8s.List(ctx, &l, client.InNamespace("shop"), client.MatchingLabels{"app": "checkout"})
		if len(l.Items) == 1 {
			name = l.Items[0].Name
		}
		return name != ""
	})
	chaos, plain := running(t, ctx, "shop", name), running(t, ctx, "shop", "beside")
	waitFor(t, ctx, 30*time.Second, "the agent to apply the delay", func() bool { return agentActive(t, chaos.Status.PodIP, "delay") })
	withDelay, without := rtt(t, "http://"+chaos.Status.PodIP+":8080/", 20), rtt(t, "http://"+plain.Status.PodIP+":8080/", 20)
	var ready corev1.Pod
	waitFor(t, ctx, 30*time.Second, "the injected pod to be Ready (its probes skip the delay)", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: name}, &ready)
		for _, c := range ready.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	added := withDelay - without
	pass := math.Abs(added-100) <= 15 && without < 10
	record("1 Deployment delay", "delay 100ms on checkout (readiness probe on the same port); none beside it",
		fmt.Sprintf("+%.1f ms (injected %.1f ms, beside %.1f ms HTTP RTT p50); pod Ready: its probes are exempt", added, withDelay, without), pass)
	if !pass {
		t.Logf("agent log:\n%s", containerLog(t, ctx, "shop", name, "faultline-agent"))
		t.Fatalf("added latency %.1f ms (injected %.1f, beside %.1f), want 100±15", added, withDelay, without)
	}
}

// 2. A partition of one port leaves the other working; a reset rule resets.
func TestScenario2PartitionAndReset(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "partitioned", "network: [{partition: true, direction: ingress, to: [\":8081\"]}]", true, nil)
	createPod(t, ctx, "shop", "resetting", "network: [{reset: true, direction: ingress, to: [\":8081\"]}]", true, nil)
	p, r := running(t, ctx, "shop", "partitioned"), running(t, ctx, "shop", "resetting")
	waitFor(t, ctx, 30*time.Second, "the partition", func() bool { return agentActive(t, p.Status.PodIP, "partition") })
	waitFor(t, ctx, 30*time.Second, "the reset rule", func() bool { return agentActive(t, r.Status.PodIP, "reset") })
	pi, ri := p.Status.PodIP, r.Status.PodIP
	got := []string{connect(t, pi+":8081"), connect(t, pi+":8080"), connect(t, ri+":8081"), connect(t, ri+":8080")}
	want := []string{"timeout", "ok", "refused", "ok"}
	pass := strings.Join(got, ",") == strings.Join(want, ",")
	record("2 partition / reset", "partition :8081, reset :8081 (ingress)",
		fmt.Sprintf(":8081 %s, :8080 %s; reset pod :8081 %s, :8080 %s", got[0], got[1], got[2], got[3]), pass)
	if !pass {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// 3. A clock offset seen by date and Python in a glibc app that runs as
// non-root with a read-only root and no capabilities; not by the agent.
func TestScenario3ClockOffset(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "clock", "clock: {offset: +5m}", true, func(p *corev1.Pod) {
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: toolImage, Command: []string{"sleep", "3600"},
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), ReadOnlyRootFilesystem: ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}
	})
	running(t, ctx, "shop", "clock")
	read := func(argv ...string) float64 {
		out, err := kubectl(ctx, append([]string{"-n", "shop", "exec", "clock", "-c", "app", "--"}, argv...)...)
		if err != nil {
			t.Fatalf("exec %v: %v: %s", argv, err, out)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			t.Fatalf("%v said %q", argv, out)
		}
		return v - float64(time.Now().UnixNano())/1e9
	}
	dateOff, pyOff := read("date", "+%s"), read("python3", "-c", "import time; print(time.time())")
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", containerPID(t, ctx, "shop", "clock", "faultline-agent")))
	agentClean := len(env) > 0 && !strings.Contains(string(env), "LD_PRELOAD")
	pass := math.Abs(dateOff-300) < 3 && math.Abs(pyOff-300) < 3 && agentClean
	record("3 clock offset (glibc)", "offset +5m in an app running as uid 1000, read-only root, drop ALL; agent and node untouched",
		fmt.Sprintf("date %+.1f s, python3 %+.1f s (kubectl exec); agent without LD_PRELOAD: %v; node clock is the reference", dateOff, pyOff, agentClean), pass)
	if !pass {
		t.Fatalf("date %+.1f s, python %+.1f s (want +300±3), agent clean %v", dateOff, pyOff, agentClean)
	}
}

// 4. hostNetwork, kube-system and over-limit pods: created, not injected,
// and the owner is told why.
func TestScenario4PolicyRefusals(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "host-net", "network: [{delay: 100ms}]", true, func(p *corev1.Pod) {
		p.Spec.HostNetwork = true
		p.Spec.Containers[0].Args = []string{"18080"} // the node's namespace: stay off its ports
	})
	createPod(t, ctx, "shop", "too-much", "network: [{delay: 2s}]", true, nil)
	createPod(t, ctx, "kube-system", "system", "network: [{delay: 100ms}]", true, nil)
	var hostEv, limitEv []string
	waitFor(t, ctx, 30*time.Second, "Events on the refused pods", func() bool {
		hostEv, limitEv = grepEvents(events(t, ctx, "shop", "host-net"), "FaultsNotInjected"), grepEvents(events(t, ctx, "shop", "too-much"), "FaultsNotInjected")
		return len(hostEv) > 0 && len(limitEv) > 0
	})
	none := !injected(t, ctx, "shop", "host-net") && !injected(t, ctx, "shop", "too-much") && !injected(t, ctx, "kube-system", "system")
	hostOK := strings.Contains(hostEv[0], "hostNetwork")
	limitOK := strings.Contains(limitEv[0], "exceeds maxDelay 500ms")
	sysEv := grepEvents(events(t, ctx, "kube-system", "system"), "Faults")
	pass := none && hostOK && limitOK && len(sysEv) == 0
	record("4 policy refusals", "hostNetwork, kube-system, delay 2s over maxDelay 500ms",
		fmt.Sprintf("none injected; Events: %q, %q; kube-system never reaches the webhook (excluded by name), no Event", hostEv[0], limitEv[0]), pass)
	if !pass {
		t.Fatalf("injected none=%v host=%v limit=%v kube-system events=%v", none, hostEv, limitEv, sysEv)
	}
}

func grepEvents(evs []string, prefix string) []string {
	var out []string
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// 16. A dual-stack pod: the CNI gives it an IPv6 address beside the IPv4
// one, and the same faults hold over both (issue 15 item 1).
func TestScenario16DualStackPod(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "dual", "network: [{delay: 50ms, direction: ingress, to: [\":8080\"]}, {partition: true, direction: ingress, to: [\":8081\"]}]", true, nil)
	p := running(t, ctx, "shop", "dual")
	v4, v6 := p.Status.PodIP, ""
	for _, ip := range p.Status.PodIPs {
		if strings.Contains(ip.IP, ":") {
			v6 = ip.IP
		}
	}
	if v6 == "" {
		// The kubelet of an IPv4 node may list one family only: read the
		// address the CNI gave from the pod's namespace.
		out, err := inPod(t, ctx, p, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if f := strings.Fields(out); err == nil && len(f) > 3 {
			v6, _, _ = strings.Cut(f[3], "/")
		}
	}
	if v6 == "" {
		t.Fatalf("the pod has no IPv6 address (podIPs %v)", p.Status.PodIPs)
	}
	waitFor(t, ctx, 30*time.Second, "the delay", func() bool { return agentActive(t, v4, "delay") })
	rtt4 := dialRTT(t, net.JoinHostPort(v4, "8080"), 20)
	rtt6 := dialRTT(t, net.JoinHostPort(v6, "8080"), 20)
	cut4, cut6 := connect(t, net.JoinHostPort(v4, "8081")), connect(t, net.JoinHostPort(v6, "8081"))
	pass := rtt4 > 48 && rtt4 < 60 && rtt6 > 48 && rtt6 < 60 && cut4 == "timeout" && cut6 == "timeout"
	record("16 dual-stack pod", "delay 50ms on :8080, partition :8081 (ingress), any address; pod IPs "+v4+" and "+v6,
		fmt.Sprintf("connect to :8080 %.1f ms over IPv4, %.1f ms over IPv6 (p50 of 20); :8081 %s over IPv4, %s over IPv6", rtt4, rtt6, cut4, cut6), pass)
	if !pass {
		t.Fatalf("IPv4 %.1f ms / %s, IPv6 %.1f ms / %s", rtt4, cut4, rtt6, cut6)
	}
}
