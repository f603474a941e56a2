//go:build e2e

// Package e2e runs the user stories end to end on a real one-node cluster
// (hack/localnode: kubelet, containerd, CNI, kube-proxy, CoreDNS), with
// faultline installed by its Helm chart from the images `make images`
// built. `make e2e` (root) runs it and prints the summary table docs/development.md
// quotes.
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
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/hack/localnode"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

const (
	ownNS      = "faultline-system"
	appImage   = "faultline.test/echo:1"        // static Go HTTP server (+ probe)
	toolImage  = "faultline.test/glibc-tools:1" // sh, date, python3 (glibc)
	muslImage  = "faultline.test/musl-clock:1"  // a musl program printing the clock
	agentImage = "ghcr.io/faultline-dev/faultline-agent:dev"
)

var (
	k8s   client.Client
	node  *localnode.Node
	bins  = map[string]string{}
	repo  string
	nodeV string

	resultsMu sync.Mutex
	results   [][4]string
)

// record adds a row to the summary table.
func record(scenario, requested, measured string, pass bool) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	verdict := "pass"
	if !pass {
		verdict = "FAIL"
	}
	results = append(results, [4]string{scenario, requested, measured, verdict})
}

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard()) // the clients' logs would drown the table
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: SKIPPED ALL SCENARIOS: the node needs root (network namespaces, mounts, cgroups)")
		os.Exit(1)
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "faultline-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	repo, _ = filepath.Abs("..")
	for _, b := range []string{"probe"} {
		bins[b] = filepath.Join(dir, "bin", b)
		if out, err := exec.Command("go", "build", "-o", bins[b], "./"+b).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", b, err, out)
		}
	}
	assets, err := exec.Command(filepath.Join(repo, "hack", "control-plane-dir.sh")).Output()
	if err != nil {
		return 0, fmt.Errorf("control plane: run hack/build-control-plane.sh: %v", err)
	}
	tarballs, err := localnode.ImageTarballs(filepath.Join(repo, "bin", "images", "images.json"))
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	start := time.Now()
	node, err = localnode.Start(ctx, localnode.Options{
		Assets: strings.TrimSpace(string(assets)), StateDir: filepath.Join(dir, "node"), Images: tarballs,
		// Scenario 9 kills the sidecar again and again: the kubelet's
		// restart back-off is capped at 1 s so that it can.
		MaxRestartBackoff: "1s",
		Log:               func(s string) { fmt.Println("node:", s) },
	})
	if err != nil {
		return 0, fmt.Errorf("starting the node: %w", err)
	}
	defer func() {
		if err := node.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: node cleanup:", err)
		}
	}()
	fmt.Printf("node: Ready after %s\n", time.Since(start).Round(100*time.Millisecond))
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	// No client-side rate limit: the default 5 requests/s would add 200 ms
	// to each create that scenario 13 times.
	cfg := rest.CopyConfig(node.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	var n corev1.Node
	if err := k8s.Get(ctx, client.ObjectKey{Name: localnode.NodeName}, &n); err != nil {
		return 0, err
	}
	nodeV = fmt.Sprintf("%s (kubelet %s, %s, kernel %s)", n.Name, n.Status.NodeInfo.KubeletVersion,
		n.Status.NodeInfo.ContainerRuntimeVersion, n.Status.NodeInfo.KernelVersion)
	helmStart := time.Now()
	if err := helmInstall(ctx); err != nil {
		return 0, err
	}
	installed := time.Since(helmStart)
	if err := setup(ctx); err != nil {
		return 0, err
	}
	// The caBundle is in place; kube-proxy may not route the Service yet.
	if err := injecting(ctx, 60*time.Second); err != nil {
		return 0, err
	}
	if err := recordInstall(ctx, installed); err != nil {
		return 0, err
	}
	code := m.Run()
	printTable()
	return code, nil
}

// helmInstall installs faultline the way a user would: the chart, its
// images, self-signed certificates; --wait returns when the webhook
// Deployment is available, then its caBundle must be in place.
func helmInstall(ctx context.Context) error {
	out, err := kubectlCmd(ctx, filepath.Join(filepath.Dir(node.Kubectl), "helm"), "install", "faultline", filepath.Join(repo, "charts", "faultline"),
		"--namespace", ownNS, "--create-namespace", "--set", "image.tag=dev", "--set", "agent.image.tag=dev", "--wait", "--timeout", "3m")
	if err != nil {
		return fmt.Errorf("helm install: %w: %s", err, out)
	}
	return waitCABundle(ctx)
}

// recordInstall: the row for the chart itself. The webhook serves from its
// own pods on the node, through its Service, with the certificate it made
// for itself (self-signed mode) and put into the caBundle: every admission
// of the scenarios goes through that path.
func recordInstall(ctx context.Context, took time.Duration) error {
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(ownNS)); err != nil {
		return err
	}
	var ready []string
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p.Name+" on "+p.Spec.NodeName)
			}
		}
	}
	var secret corev1.Secret
	secretOK := k8s.Get(ctx, client.ObjectKey{Namespace: ownNS, Name: "faultline-webhook-tls"}, &secret) == nil && len(secret.Data["ca.crt"]) > 0
	record("0 helm install", "the chart from the built images, self-signed certificates; the webhook serves from its own pods",
		fmt.Sprintf("installed and caBundle in place in %s; webhook pods Ready: %s; CA and serving certificate in Secret faultline-webhook-tls: %v",
			took.Round(100*time.Millisecond), strings.Join(ready, ", "), secretOK), len(ready) == 2 && secretOK)
	return nil
}

func waitCABundle(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := kubectl(ctx, "get", "mutatingwebhookconfigurations", "-o", "jsonpath={.items[*].webhooks[*].clientConfig.caBundle}")
		if err == nil && len(out) > 100 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the webhook put no caBundle in its configuration within 60s")
}

// setup: namespaces (with their default ServiceAccount, which pods need)
// and the shop's ChaosPolicy.
func setup(ctx context.Context) error {
	for name, labels := range map[string]map[string]string{
		"shop":  {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn},
		"plain": nil,
	} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{}) != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("no default ServiceAccount in %s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return k8s.Create(ctx, &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		Limits: v1alpha1.Limits{MaxDelay: "500ms", MaxClockOffset: "10m", Partition: true, Reset: true,
			HTTP: &v1alpha1.HTTPLimits{MaxDelay: "500ms", MaxAbortPercent: "20%"}},
	}})
}

func printTable() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	num := func(s string) int { n, _ := strconv.Atoi(strings.Fields(s)[0]); return n }
	slices.SortFunc(results, func(a, b [4]string) int { return num(a[0]) - num(b[0]) })
	fmt.Printf("\nnode: %s\n", nodeV)
	fmt.Println("\n| scenario | requested | measured | result |\n|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}
}
