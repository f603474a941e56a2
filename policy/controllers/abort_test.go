package controllers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The rollback condition against a real Prometheus (Debian's package)
// scraping an endpoint this test controls, and a real API server.
func TestAbortWhenPausesThePolicyAgainstARealPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not installed (apt-get install prometheus; .ci/run does)")
	}
	var errorRate atomic.Value
	errorRate.Store("1")
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE app_error_rate gauge\napp_error_rate %s\n", errorRate.Load())
	})}
	appLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { _ = app.Close() })

	dir := t.TempDir()
	promLn, _ := net.Listen("tcp", "127.0.0.1:0")
	promAddr := promLn.Addr().String()
	promLn.Close()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: app\n    static_configs: [{targets: ['%s']}]\n", appLn.Addr())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.Process.Kill(); _ = prom.Wait() })
	promURL := "http://" + promAddr
	waitUntil(t, 30*time.Second, "prometheus to have scraped the app", func() bool {
		resp, err := http.Get(promURL + "/api/v1/query?query=app_error_rate")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(body), `"__name__":"app_error_rate"`)
	})

	_, _, c := testenv.APIServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pol := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "slo-guarded"}, Spec: v1alpha1.ChaosPolicySpec{
		Limits:    v1alpha1.Limits{MaxDelay: "100ms"},
		AbortWhen: &v1alpha1.AbortCondition{PrometheusURL: promURL, Query: "app_error_rate", Threshold: "5", For: "2s"},
	}}
	if err := c.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	w := &AbortWatcher{Client: c, Interval: 250 * time.Millisecond}
	go func() { _ = w.Start(ctx) }()
	paused := func() bool {
		var p v1alpha1.ChaosPolicy
		_ = c.Get(ctx, client.ObjectKeyFromObject(pol), &p)
		return p.Spec.Paused
	}
	// Once abortWhen has answered for this generation, a rate below the
	// threshold must keep the policy running through several evaluations.
	waitUntil(t, 20*time.Second, "abortWhen to have been evaluated", func() bool {
		var p v1alpha1.ChaosPolicy
		_ = c.Get(ctx, client.ObjectKeyFromObject(pol), &p)
		return policy.AbortUnknown(&p) == ""
	})
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if paused() {
			t.Fatal("the policy paused while the error rate was below the threshold")
		}
	}
	errorRate.Store("12")
	crossed := time.Now()
	waitUntil(t, 20*time.Second, "the policy to pause itself", paused)
	tookPause := time.Since(crossed)
	// spec.paused and the status condition are two writes (two subresources).
	var cond *metav1.Condition
	waitUntil(t, 5*time.Second, "the Aborted condition", func() bool {
		var p v1alpha1.ChaosPolicy
		_ = c.Get(ctx, client.ObjectKeyFromObject(pol), &p)
		cond = meta.FindStatusCondition(p.Status.Conditions, policy.ConditionAborted)
		return cond != nil
	})
	if !strings.Contains(cond.Message, "app_error_rate = 12, above 5") {
		t.Fatalf("condition = %+v, want one naming the value seen", cond)
	}
	t.Logf("error rate crossed 5 -> policy paused after %s (scrape 1s + for 2s + evaluation); condition: %s", tookPause.Round(100*time.Millisecond), cond.Message)
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}
