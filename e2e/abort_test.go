//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/localnode"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 8. A real Prometheus scrapes the app's error counter; the policy pauses
// itself when the error rate crosses its threshold, and the pod's faults go.
func TestScenario8AbortOnSLO(t *testing.T) {
	ctx := context.Background()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not installed (apt-get install prometheus; .ci/run does)")
	}
	// Prometheus on the host, at the address the node routes to: the
	// webhook pods query it, and it scrapes the pod over the pod network.
	promIP := localnode.HostIP
	pol := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "slo-guard"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "slo"}},
		Limits:            v1alpha1.Limits{MaxDelay: "100ms"},
		AbortWhen: &v1alpha1.AbortCondition{PrometheusURL: "http://" + promIP + ":9090",
			Query: `sum(rate(echo_requests_total{code="500"}[5s])) or vector(0)`, Threshold: "1", For: "2s"},
	}}
	// Prometheus first: a policy with abortWhen allows no chaos until its
	// query answers. "or vector(0)": no errors yet is an answer, zero.
	dir := t.TempDir()
	writeConfig := func(targets string) {
		cfg := "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: app\n    static_configs: [{targets: [" + targets + "]}]\n"
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promIP+":9090")
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prom.Process.Kill(); _ = prom.Wait() }()
	query := func(q string) string {
		resp, err := http.Get("http://" + promIP + ":9090/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, ctx, 60*time.Second, "Prometheus to answer", func() bool { return strings.Contains(query("vector(0)"), `"success"`) })

	if err := k8s.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	defer k8s.Delete(ctx, pol)
	waitFor(t, ctx, 30*time.Second, "abortWhen to be evaluated", func() bool {
		var p v1alpha1.ChaosPolicy
		_ = k8s.Get(ctx, client.ObjectKey{Name: "slo-guard"}, &p)
		c := meta.FindStatusCondition(p.Status.Conditions, policy.ConditionAbortEvaluated)
		return c != nil && c.Status == metav1.ConditionTrue
	})
	createPod(t, ctx, "shop", "slo", "network: [{delay: 20ms}]", true, func(p *corev1.Pod) { p.Labels["app"] = "slo" })
	pod := running(t, ctx, "shop", "slo")
	waitFor(t, ctx, 30*time.Second, "the agent to apply", func() bool { return agentActive(t, pod.Status.PodIP, "delay") })

	// Prometheus scraping the app every second.
	writeConfig("'" + pod.Status.PodIP + ":8080'")
	if err := prom.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 60*time.Second, "Prometheus to scrape the app", func() bool { return strings.Contains(query("echo_requests_total"), `"code":"500"`) })

	// Errors, until the policy has paused itself.
	load := exec.Command(bins["probe"], "-url", "http://"+pod.Status.PodIP+":8080/fail", "-n", "100000")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = load.Process.Kill(); _ = load.Wait() }()
	var got v1alpha1.ChaosPolicy
	pausedIn := waitFor(t, ctx, 90*time.Second, "the policy to pause itself", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Name: "slo-guard"}, &got)
		return got.Spec.Paused
	})
	goneIn := waitFor(t, ctx, 30*time.Second, "the pod's faults to go", func() bool { return faultlineRules(t, ctx, pod) == 0 })
	condition := ""
	waitFor(t, ctx, 10*time.Second, "the Aborted condition", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Name: "slo-guard"}, &got)
		for _, c := range got.Status.Conditions {
			if c.Type == policy.ConditionAborted {
				condition = c.Message
			}
		}
		return condition != ""
	})
	pass := condition != ""
	record("8 abort on SLO", `rate of 500s > 1/s for 2s (Prometheus scraping the app)`,
		fmt.Sprintf("paused itself %s after errors began, faults gone %s later; condition %q", pausedIn.Round(100*time.Millisecond), goneIn.Round(100*time.Millisecond), condition), pass)
	if !pass {
		t.Fatalf("no Aborted condition: %+v", got.Status.Conditions)
	}
}
