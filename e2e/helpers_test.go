//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/e2e/nodesim"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func podSpec(faults string, optIn bool) (map[string]string, map[string]string, corev1.PodSpec) {
	labels := map[string]string{}
	if optIn {
		labels[v1alpha1.LabelPodInject] = "true"
	}
	ann := map[string]string{}
	if faults != "" {
		ann[v1alpha1.AnnotationFaults] = faults
	}
	return labels, ann, corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: appImage, Args: []string{"8080,8081"}}}}
}

func createPod(t *testing.T, ctx context.Context, ns, name, faults string, optIn bool, edit func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	labels, ann, spec := podSpec(faults, optIn)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: ann}, Spec: spec}
	if edit != nil {
		edit(p)
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatalf("creating %s/%s: %v", ns, name, err)
	}
	return p
}

// running waits until the simulator runs the pod and it reports Running.
func running(t *testing.T, ctx context.Context, ns, name string) *nodesim.Pod {
	t.Helper()
	var p *nodesim.Pod
	waitFor(t, ctx, 60*time.Second, fmt.Sprintf("pod %s/%s to run", ns, name), func() bool {
		var cur corev1.Pod
		if k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cur) != nil {
			return false
		}
		if cur.Status.Phase == corev1.PodFailed {
			t.Fatalf("pod %s/%s failed: %s", ns, name, cur.Status.Message)
		}
		p = sim.Get(ns, name)
		return p != nil && cur.Status.Phase == corev1.PodRunning
	})
	return p
}

func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, limit, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(start)
}

// rtt is the median HTTP round trip (ms) from the cluster namespace to url.
func rtt(t *testing.T, url string, n int) float64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", sim.Network.ClusterNS(), bins["probe"], "-url", url, "-n", strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("probe %s: %v: %s", url, err, out)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("probe said %q", out)
	}
	return v
}

// connect says how a TCP connection from the cluster namespace ends.
func connect(t *testing.T, addr string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", sim.Network.ClusterNS(), bins["probe"], "-connect", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("probe %s: %v: %s", addr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// faultlineRules counts the rules faultline's agent has in a pod namespace.
func faultlineRules(t *testing.T, netns string) int {
	t.Helper()
	n := 0
	for _, l := range rules(t, netns) {
		if strings.HasPrefix(l, "-A FAULTLINE") {
			n++
		}
	}
	return n
}

// rules lists faultline's lines of iptables-save in a pod namespace
// (chains, jumps and rules), sorted.
func rules(t *testing.T, netns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", netns, "iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save in %s: %v: %s", netns, err, out)
	}
	var r []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "FAULTLINE") && !strings.HasPrefix(l, "#") {
			r = append(r, l)
		}
	}
	slices.Sort(r)
	return r
}

func events(t *testing.T, ctx context.Context, ns, pod string) []string {
	t.Helper()
	var l corev1.EventList
	if err := k8s.List(ctx, &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		if e.InvolvedObject.Name == pod {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

func injected(t *testing.T, ctx context.Context, ns, name string) bool {
	t.Helper()
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	_, ok := p.Annotations[v1alpha1.AnnotationStatus]
	return ok
}

// containerLog is what a simulated container wrote.
func containerLog(t *testing.T, ctx context.Context, ns, pod, container string) string {
	t.Helper()
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p); err != nil {
		return err.Error()
	}
	b, err := os.ReadFile(filepath.Join(sim.Dir, string(p.UID), container+".log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// agentActive says whether the pod's agent reports faults of kind applied
// (its /metrics, read from the cluster namespace as Prometheus would).
func agentActive(t *testing.T, ip, kind string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", sim.Network.ClusterNS(), bins["probe"], "-body", "-url", "http://"+ip+":19091/metrics").CombinedOutput()
	if os.Getenv("E2E_DEBUG") != "" {
		t.Logf("metrics of %s: %v %s", ip, err, grep(string(out), "faultline_agent"))
	}
	return err == nil && strings.Contains(string(out), `faultline_agent_fault_active{kind="`+kind+`"} 1`)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
