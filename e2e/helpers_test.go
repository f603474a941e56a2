//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	return labels, ann, corev1.PodSpec{
		TerminationGracePeriodSeconds: ptrTo[int64](2),
		Containers:                    []corev1.Container{{Name: "app", Image: appImage, Args: []string{"8080,8081"}}},
	}
}

func ptrTo[T any](v T) *T { return &v }

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

// running waits until the kubelet reports the pod Running with every
// container started, and returns it.
func running(t *testing.T, ctx context.Context, ns, name string) *corev1.Pod {
	t.Helper()
	var cur corev1.Pod
	waitFor(t, ctx, 120*time.Second, fmt.Sprintf("pod %s/%s to run", ns, name), func() bool {
		if k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cur) != nil {
			return false
		}
		if cur.Status.Phase == corev1.PodFailed {
			t.Fatalf("pod %s/%s failed: %s", ns, name, cur.Status.Message)
		}
		if cur.Status.Phase != corev1.PodRunning || cur.Status.PodIP == "" {
			return false
		}
		for _, c := range cur.Status.ContainerStatuses {
			if c.State.Running == nil {
				return false
			}
		}
		return true
	})
	return &cur
}

func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, limit, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(start)
}

func kubectlCmd(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+node.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func kubectl(ctx context.Context, args ...string) (string, error) {
	return kubectlCmd(ctx, node.Kubectl, args...)
}

// containerPID is the host PID of a running container of the pod, found
// through containerd from the container ID the kubelet reports.
func containerPID(t *testing.T, ctx context.Context, ns, pod, container string) int {
	t.Helper()
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p); err != nil {
		t.Fatal(err)
	}
	id := ""
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if s.Name == container && s.State.Running != nil {
			id = strings.TrimPrefix(s.ContainerID, "containerd://")
		}
	}
	if id == "" {
		return 0
	}
	out, err := exec.CommandContext(ctx, node.Bin("ctr"), "-a", node.ContainerdSocket, "-n", "k8s.io", "tasks", "ls").Output()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid
		}
	}
	return 0
}

// inPod runs a host command in the pod's network namespace (its app
// container's), as an operator with nsenter would.
func inPod(t *testing.T, ctx context.Context, pod *corev1.Pod, argv ...string) (string, error) {
	t.Helper()
	pid := containerPID(t, ctx, pod.Namespace, pod.Name, pod.Spec.Containers[0].Name)
	if pid == 0 {
		return "", fmt.Errorf("no running app container in %s/%s", pod.Namespace, pod.Name)
	}
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, argv...)...).CombinedOutput()
	return string(out), err
}

// rtt is the median HTTP round trip (ms) from the host, over the pod
// network, to url on one kept-alive connection.
func rtt(t *testing.T, url string, n int) float64 {
	t.Helper()
	return probe(t, "-url", url, "-n", strconv.Itoa(n))
}

// dialRTT is the median TCP connect time (ms): one round trip.
func dialRTT(t *testing.T, addr string, n int) float64 {
	t.Helper()
	return probe(t, "-dial", addr, "-n", strconv.Itoa(n))
}

func probe(t *testing.T, args ...string) float64 {
	t.Helper()
	out, err := exec.Command(bins["probe"], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("probe %v: %v: %s", args, err, out)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("probe said %q", out)
	}
	return v
}

// connect says how a TCP connection from the host ends.
func connect(t *testing.T, addr string) string {
	t.Helper()
	out, err := exec.Command(bins["probe"], "-connect", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("probe %s: %v: %s", addr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// faultlineRules counts the rules faultline's agent has in a pod's netns.
func faultlineRules(t *testing.T, ctx context.Context, pod *corev1.Pod) int {
	t.Helper()
	n := 0
	for _, l := range rules(t, ctx, pod) {
		if strings.HasPrefix(l, "-A FAULTLINE") {
			n++
		}
	}
	return n
}

// rules lists faultline's lines of iptables-save in a pod's netns (chains,
// jumps and rules), sorted.
func rules(t *testing.T, ctx context.Context, pod *corev1.Pod) []string {
	t.Helper()
	out, err := inPod(t, ctx, pod, "iptables-save")
	if err != nil {
		t.Fatalf("iptables-save in %s: %v: %s", pod.Name, err, out)
	}
	var r []string
	for _, l := range strings.Split(out, "\n") {
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

// containerLog is what a container wrote, as kubectl logs shows it.
func containerLog(t *testing.T, ctx context.Context, ns, pod, container string) string {
	t.Helper()
	out, err := kubectl(ctx, "-n", ns, "logs", pod, "-c", container)
	if err != nil {
		return fmt.Sprintf("(kubectl logs: %v: %s)", err, out)
	}
	return out
}

// agentGet fetches a path from the pod's agent (its /metrics or /status),
// over the pod network as Prometheus would.
func agentGet(ip, path string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + ip + ":19091" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// agentStatus reads the agent's /status from inside the pod's network
// namespace: it listens on loopback only (kubectl port-forward reaches it).
func agentStatus(t *testing.T, ctx context.Context, pod *corev1.Pod) (string, error) {
	t.Helper()
	return inPod(t, ctx, pod, "python3", "-c",
		"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:19092/status', timeout=2).read().decode())")
}

// agentActive says whether the pod's agent reports faults of kind applied.
func agentActive(t *testing.T, ip, kind string) bool {
	t.Helper()
	out, err := agentGet(ip, "/metrics")
	return err == nil && strings.Contains(out, `faultline_agent_fault_active{kind="`+kind+`"} 1`)
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

// waitInjecting waits until the webhook injects again: a server-side
// dry-run create of an opted-in pod comes back with faultline.dev/status.
func waitInjecting(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := injecting(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

func injecting(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		labels, ann, spec := podSpec("network: [{delay: 10ms}]", true)
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", GenerateName: "probe-", Labels: labels, Annotations: ann}, Spec: spec}
		if err := k8s.Create(ctx, p, client.DryRunAll); err == nil {
			if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; ok {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the webhook did not inject a dry-run pod within %s", limit)
}
