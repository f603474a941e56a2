//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: appImage}}},
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
	// The delay engine lives in the sidecar, which may still be starting.
	waitFor(t, ctx, 30*time.Second, "the agent to apply the delay", func() bool { return agentActive(t, chaos.IP, "delay") })
	withDelay, without := rtt(t, "http://"+chaos.IP+":8080/", 20), rtt(t, "http://"+plain.IP+":8080/", 20)
	added := withDelay - without
	pass := math.Abs(added-100) <= 15 && without < 10
	record("1 Deployment delay", "delay 100ms on checkout; none beside it",
		fmt.Sprintf("+%.1f ms (injected %.1f ms, beside %.1f ms RTT p50)", added, withDelay, without), pass)
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
	// The init container applies the rules, then the sidecar starts from
	// nothing and applies them again (a restarted agent clears first): wait
	// for the sidecar to say they are on.
	waitFor(t, ctx, 30*time.Second, "the partition", func() bool { return agentActive(t, p.IP, "partition") })
	waitFor(t, ctx, 30*time.Second, "the reset rule", func() bool { return agentActive(t, r.IP, "reset") })
	got := []string{connect(t, p.IP+":8081"), connect(t, p.IP+":8080"), connect(t, r.IP+":8081"), connect(t, r.IP+":8080")}
	want := []string{"timeout", "ok", "refused", "ok"}
	pass := strings.Join(got, ",") == strings.Join(want, ",")
	record("2 partition / reset", "partition :8081, reset :8081 (ingress)",
		fmt.Sprintf(":8081 %s, :8080 %s; reset pod :8081 %s, :8080 %s", got[0], got[1], got[2], got[3]), pass)
	if !pass {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// 3. A clock offset seen by date and Python in the app; not by the agent.
func TestScenario3ClockOffset(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "clock", "clock: {offset: +5m}", true, func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: toolImage,
			Command:      []string{"sh", "-c", "date +%s > /out/date.tmp && mv /out/date.tmp /out/date; python3 -c 'import time; print(time.time())' > /out/py.tmp && mv /out/py.tmp /out/py; sleep 3600"},
			VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}}}
	})
	pod := running(t, ctx, "shop", "clock")
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "clock"}, &p); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(sim.Dir, string(p.UID), "volumes", "out")
	read := func(f string) float64 {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			return math.NaN()
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return v
	}
	waitFor(t, ctx, 30*time.Second, "the app's clock readings", func() bool { return !math.IsNaN(read("date")) && !math.IsNaN(read("py")) })
	now := float64(time.Now().UnixNano()) / 1e9
	dateOff, pyOff := read("date")-now, read("py")-now
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pod.Processes()["faultline-agent"]))
	agentClean := !strings.Contains(string(env), "LD_PRELOAD")
	pass := math.Abs(dateOff-300) < 3 && math.Abs(pyOff-300) < 3 && agentClean
	record("3 clock offset", "offset +5m in the app; agent and node untouched",
		fmt.Sprintf("date %+.1f s, python3 %+.1f s; agent without LD_PRELOAD: %v; node clock is the reference", dateOff, pyOff, agentClean), pass)
	if !pass {
		t.Fatalf("date %+.1f s, python %+.1f s (want +300±3), agent clean %v", dateOff, pyOff, agentClean)
	}
}

// 4. hostNetwork, kube-system and over-limit pods: created, not injected,
// and the owner is told why.
func TestScenario4PolicyRefusals(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "host-net", "network: [{delay: 100ms}]", true, func(p *corev1.Pod) { p.Spec.HostNetwork = true })
	createPod(t, ctx, "shop", "too-much", "network: [{delay: 2s}]", true, nil)
	createPod(t, ctx, "kube-system", "system", "network: [{delay: 100ms}]", true, nil)
	var hostEv, limitEv []string
	waitFor(t, ctx, 30*time.Second, "Events on the refused pods", func() bool {
		hostEv, limitEv = events(t, ctx, "shop", "host-net"), events(t, ctx, "shop", "too-much")
		return len(hostEv) > 0 && len(limitEv) > 0
	})
	none := !injected(t, ctx, "shop", "host-net") && !injected(t, ctx, "shop", "too-much") && !injected(t, ctx, "kube-system", "system")
	hostOK := strings.Contains(hostEv[0], "hostNetwork")
	limitOK := strings.Contains(limitEv[0], "exceeds maxDelay 500ms")
	sysEv := events(t, ctx, "kube-system", "system")
	pass := none && hostOK && limitOK && len(sysEv) == 0
	record("4 policy refusals", "hostNetwork, kube-system, delay 2s over maxDelay 500ms",
		fmt.Sprintf("none injected; Events: %q, %q; kube-system never reaches the webhook (excluded by name), no Event", hostEv[0], limitEv[0]), pass)
	if !pass {
		t.Fatalf("injected none=%v host=%v limit=%v kube-system events=%v", none, hostEv, limitEv, sysEv)
	}
}

// 6. The pause annotation, then the policy kill switch: time until the
// faults are gone.
func TestScenario6PauseAndKillSwitch(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "pausable", "network: [{delay: 100ms}]", true, nil)
	pod := running(t, ctx, "shop", "pausable")
	waitFor(t, ctx, 30*time.Second, "the agent to apply the delay", func() bool { return agentActive(t, pod.IP, "delay") })
	before := rtt(t, "http://"+pod.IP+":8080/", 10)
	annotate := func(v *string) {
		var p corev1.Pod
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "pausable"}, &p); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(p.Annotations, v1alpha1.AnnotationPaused)
		} else {
			p.Annotations[v1alpha1.AnnotationPaused] = *v
		}
		if err := k8s.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	annotate(ptr.To("true"))
	pauseTook := waitFor(t, ctx, 10*time.Second, "faults gone after the pause annotation", func() bool { return faultlineRules(t, pod.NetNS) == 0 })
	afterPause := rtt(t, "http://"+pod.IP+":8080/", 10)
	annotate(nil)
	waitFor(t, ctx, 10*time.Second, "faults back after unpausing", func() bool { return faultlineRules(t, pod.NetNS) > 0 })

	var pol v1alpha1.ChaosPolicy
	if err := k8s.Get(ctx, client.ObjectKey{Name: "shop"}, &pol); err != nil {
		t.Fatal(err)
	}
	pol.Spec.Paused = true
	if err := k8s.Update(ctx, &pol); err != nil {
		t.Fatal(err)
	}
	killTook := waitFor(t, ctx, 10*time.Second, "faults gone after the kill switch", func() bool { return faultlineRules(t, pod.NetNS) == 0 })
	pol.Spec.Paused = false
	if err := k8s.Get(ctx, client.ObjectKey{Name: "shop"}, &pol); err == nil {
		pol.Spec.Paused = false
		_ = k8s.Update(ctx, &pol)
	}
	pass := pauseTook <= 5*time.Second && killTook <= 5*time.Second && afterPause < 10 && before > 90
	record("6 pause, kill switch", "delay 100ms; faults gone ≤ 5 s after the change",
		fmt.Sprintf("RTT %.1f ms; pause annotation: rules gone in %s, RTT then %.1f ms; policy kill switch: rules gone in %s", before, pauseTook.Round(time.Millisecond), afterPause, killTook.Round(time.Millisecond)), pass)
	if !pass {
		t.Fatalf("pause %s, kill switch %s, RTT after pause %.1f ms", pauseTook, killTook, afterPause)
	}
}
