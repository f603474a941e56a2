// Command run is `make run`: a local control plane with faultline-webhook,
// the examples applied, one injected pod described, and a KUBECONFIG to keep
// going with. Ctrl-C stops every process it started.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/localcluster"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
)

func main() {
	assets := flag.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "control plane binaries (hack/build-control-plane.sh)")
	state := flag.String("state-dir", ".run", "kubeconfig and logs")
	bin := flag.String("webhook-bin", "bin/faultline-webhook", "faultline-webhook binary")
	examples := flag.String("examples", "examples", "manifests to apply")
	exitAfter := flag.Bool("exit", false, "stop after printing (for CI smoke tests)")
	flag.Parse()
	if err := run(*assets, *state, *bin, *examples, *exitAfter); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(assets, state, bin, examples string, exitAfter bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	state, _ = filepath.Abs(state)
	step("starting etcd, kube-apiserver (faultline CRDs installed), kube-controller-manager and faultline-webhook")
	c, err := localcluster.Start(ctx, localcluster.Options{
		Assets: assets, WebhookBinary: bin, StateDir: state, CRDDir: "charts/faultline/crds",
		WebhookArgs: []string{"--agent-image=faultline-agent:dev"},
	})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping every process started")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop:", err)
		}
	}()

	step("applying " + examples + "/")
	apply := exec.CommandContext(ctx, c.Kubectl, "apply", "-f", examples)
	apply.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("kubectl apply: %w", err)
	}

	cl, err := client.New(c.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return err
	}
	step("waiting for the Deployment's pods (kube-controller-manager creates them)")
	pod, err := waitForPod(ctx, c, cl, "shop", "app=checkout")
	if err != nil {
		return err
	}
	describe(pod)
	if plain, err := waitForPod(ctx, c, cl, "shop", "app=cart"); err == nil {
		fmt.Printf("\npod %s/%s did not opt in: %d init containers, no %s annotation\n",
			plain.Namespace, plain.Name, len(plain.Spec.InitContainers), v1alpha1.AnnotationStatus)
	}

	fmt.Printf("\nThe cluster is up. Pods stay Pending: there is no kubelet here (the e2e node simulator runs them).\n")
	fmt.Printf("Logs: %s/*.log\n\n  export KUBECONFIG=%s\n  alias kubectl=%s\n\nCtrl-C stops everything.\n", state, c.Kubeconfig, c.Kubectl)
	if exitAfter {
		return nil
	}
	<-ctx.Done()
	return nil
}

func step(s string) { fmt.Printf("==> %s\n", s) }

func waitForPod(ctx context.Context, c *localcluster.Cluster, cl client.Client, ns, selector string) (*corev1.Pod, error) {
	sel, err := labelsSelector(selector)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var pods corev1.PodList
		if err := cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(sel)); err == nil && len(pods.Items) > 0 {
			return &pods.Items[0], nil
		}
		if err := c.Exited(); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("no pod %s in %s after 60s", selector, ns)
}

func labelsSelector(s string) (map[string]string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("selector %q: want key=value", s)
	}
	return map[string]string{k: v}, nil
}

// describe prints what was injected into one pod in a few readable lines.
func describe(p *corev1.Pod) {
	var st webhook.Status
	if err := json.Unmarshal([]byte(p.Annotations[v1alpha1.AnnotationStatus]), &st); err != nil {
		fmt.Printf("\npod %s/%s was NOT injected (no %s annotation)\n", p.Namespace, p.Name, v1alpha1.AnnotationStatus)
		return
	}
	fmt.Printf("\npod %s/%s: injected by faultline %s\n", p.Namespace, p.Name, st.Version)
	fmt.Printf("  faults:          %s\n", strings.Join(st.Faults, ", "))
	fmt.Printf("  init containers: %s (agent as a %s sidecar)\n", strings.Join(st.InitContainers, ", "), st.Sidecar)
	fmt.Printf("  volumes:         %s\n", strings.Join(st.Volumes, ", "))
	for _, c := range p.Spec.InitContainers {
		if c.Name != webhook.AgentContainerName {
			continue
		}
		for _, e := range c.Env {
			switch e.Name {
			case webhook.EnvSpec:
				fmt.Printf("  spec for agent:  %s\n", e.Value)
			case webhook.EnvProbePorts:
				fmt.Printf("  exempt probes:   ports %s\n", e.Value)
			}
		}
		if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
			fmt.Printf("  capabilities:    add %v, drop %v\n", sc.Capabilities.Add, sc.Capabilities.Drop)
		}
	}
	for _, c := range p.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == webhook.EnvLDPreload {
				fmt.Printf("  container %s:   LD_PRELOAD=%s\n", c.Name, e.Value)
			}
		}
	}
}
