//go:build e2e

// Package e2e runs the user stories end to end: the local control plane,
// faultline-webhook as a process, and the node simulator running the
// mutated pods in network namespaces. `make e2e` (root) runs it and prints
// the summary table the README quotes.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/e2e/nodesim"
	"github.com/faultline-dev/faultline/hack/localcluster"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

const (
	ownNS     = "faultline-system"
	appImage  = "shop/echo:1"
	toolImage = "shop/tools:1"
)

var (
	k8s     client.Client
	sim     *nodesim.Simulator
	cluster *localcluster.Cluster
	bins    = map[string]string{}

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
	logf.SetLogger(logr.Discard()) // the informers' logs would drown the table
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: SKIPPED ALL SCENARIOS: the node simulator needs root (network namespaces, iptables, tc)")
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
	root, _ := filepath.Abs("..")
	for _, b := range []string{"faultline-webhook", "faultline-agent"} {
		bins[b] = filepath.Join(dir, "bin", b)
		if out, err := exec.Command("go", "build", "-o", bins[b], filepath.Join(root, "cmd", b)).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", b, err, out)
		}
	}
	for _, b := range []string{"echo", "probe"} {
		bins[b] = filepath.Join(dir, "bin", b)
		if out, err := exec.Command("go", "build", "-o", bins[b], "./"+b).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", b, err, out)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "hack", "build-timeshim.sh"), filepath.Join(dir, "bin")).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the time shim: %v\n%s", err, out)
	}
	assets, err := exec.Command(filepath.Join(root, "hack", "control-plane-dir.sh")).Output()
	if err != nil {
		return 0, fmt.Errorf("control plane: run hack/build-control-plane.sh: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mutating, validating, err := chartWebhooks(strings.TrimSpace(string(assets)), root)
	if err != nil {
		return 0, err
	}
	cluster, err = localcluster.Start(ctx, localcluster.Options{
		Mutating: mutating, Validating: validating,
		Assets: strings.TrimSpace(string(assets)), WebhookBinary: bins["faultline-webhook"],
		WebhookArgs: []string{"--agent-image=faultline/agent:e2e", "--leader-elect"},
		StateDir:    filepath.Join(dir, "cluster"), Namespace: ownNS, CRDDir: filepath.Join(root, "charts", "faultline", "crds"),
	})
	if err != nil {
		return 0, fmt.Errorf("starting the local control plane: %w", err)
	}
	defer cluster.Stop()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if k8s, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	informers, err := ctrlcache.New(cluster.Config, ctrlcache.Options{Scheme: scheme})
	if err != nil {
		return 0, err
	}
	net := &nodesim.Network{Name: "fle2e"}
	if err := net.Setup(); err != nil {
		return 0, err
	}
	defer net.Close()
	sim = &nodesim.Simulator{Client: k8s, Namespaces: []string{"shop", "plain", "kube-system"}, Network: net, Dir: filepath.Join(dir, "pods"),
		Images: map[string][]string{
			"faultline/agent:e2e": {bins["faultline-agent"]},
			appImage:              {bins["echo"]},
			toolImage:             {"sh"},
		}}
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	if err := sim.Start(simCtx, informers); err != nil {
		return 0, err
	}
	go func() { _ = informers.Start(simCtx) }()
	informers.WaitForCacheSync(simCtx)
	if err := setup(ctx, filepath.Join(dir, "bin", "libfaultline-time.so")); err != nil {
		return 0, err
	}
	code := m.Run()
	stopSim()
	printTable()
	return code, nil
}

// setup: namespaces and the shop's ChaosPolicy.
func setup(ctx context.Context, shim string) error {
	// The agent image carries the shim at its default path; here a wrapper
	// tells the agent binary where the built one is.
	wrapper := filepath.Join(filepath.Dir(shim), "agent-image")
	script := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = init ]; then shift; exec %s init --shim-src=%s \"$@\"; fi\nexec %s \"$@\"\n",
		bins["faultline-agent"], shim, bins["faultline-agent"])
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return err
	}
	sim.Images["faultline/agent:e2e"] = []string{wrapper}
	for name, labels := range map[string]map[string]string{
		"shop":  {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn},
		"plain": nil,
	} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			return err
		}
	}
	return k8s.Create(ctx, &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		Limits:            v1alpha1.Limits{MaxDelay: "500ms", MaxClockOffset: "10m", Partition: true, Reset: true},
	}})
}

func printTable() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	slices.SortFunc(results, func(a, b [4]string) int { return strings.Compare(a[0], b[0]) })
	fmt.Println("\n| scenario | requested | measured | result |\n|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}
}

// chartWebhooks renders the Helm chart and returns its webhook
// configurations: the e2e cluster registers exactly what a helm install
// would (envtest only points the clientConfig at the local process).
func chartWebhooks(assets, root string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	out, err := exec.Command(filepath.Join(assets, "helm"), "template", "faultline", filepath.Join(root, "charts", "faultline"),
		"--namespace", ownNS, "--kube-version", "1.37.2").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("helm template: %w", err)
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	for _, doc := range strings.Split(string(out), "\n---") {
		switch {
		case strings.Contains(doc, "kind: MutatingWebhookConfiguration"):
			err = yaml.UnmarshalStrict([]byte(doc), &m)
		case strings.Contains(doc, "kind: ValidatingWebhookConfiguration"):
			err = yaml.UnmarshalStrict([]byte(doc), &v)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("chart webhook configuration: %w", err)
		}
	}
	if len(m.Webhooks) == 0 || len(v.Webhooks) == 0 {
		return nil, nil, fmt.Errorf("the chart rendered no webhook configurations")
	}
	return &m, &v, nil
}
