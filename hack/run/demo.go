package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/localnode"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
)

type demo struct {
	n   *localnode.Node
	ctx context.Context
}

func (d *demo) cmd(name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(d.ctx, name, args...)
	c.Env = append(os.Environ(), "KUBECONFIG="+d.n.Kubeconfig)
	return c
}

func (d *demo) kubectl(args ...string) (string, error) {
	out, err := d.cmd(d.n.Kubectl, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// install runs helm install with the images make images built; --wait
// returns when the webhook Deployment is available, its own certificates
// made (self-signed mode) and the caBundle in place.
func (d *demo) install(chart string) error {
	step("helm install faultline " + chart + " (images faultline-*:dev, self-signed certificates)")
	helm := filepath.Join(filepath.Dir(d.n.Kubectl), "helm")
	c := d.cmd(helm, "install", "faultline", chart, "--namespace", "faultline-system", "--create-namespace",
		"--set", "image.tag=dev", "--set", "agent.image.tag=dev", "--wait", "--timeout", "3m")
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("helm install: %w (webhook logs: kubectl -n faultline-system logs deploy/faultline)", err)
	}
	return d.waitCABundle()
}

// waitCABundle waits until the webhook has put its CA into the mutating
// configuration: before that, the API server cannot call it (and, with
// failurePolicy Ignore, would admit pods uninjected).
func (d *demo) waitCABundle() error {
	return d.wait(60*time.Second, "the webhook's caBundle", func() (bool, error) {
		out, err := d.kubectl("get", "mutatingwebhookconfigurations", "-o", "jsonpath={.items[*].webhooks[*].clientConfig.caBundle}")
		return err == nil && len(out) > 100, nil
	})
}

func (d *demo) apply(dir string) error {
	step("kubectl apply -f " + dir + "/")
	out, err := d.kubectl("apply", "-f", dir)
	fmt.Println(indent(out))
	if err != nil {
		return err
	}
	step("waiting for the pods to be Ready")
	for _, sel := range []string{"app=checkout", "app=cart"} {
		// The ReplicaSet controller creates the pods a moment later.
		if err := d.wait(60*time.Second, "pods "+sel, func() (bool, error) {
			out, err := d.kubectl("-n", "shop", "get", "pods", "-l", sel, "-o", "name")
			return err == nil && out != "", nil
		}); err != nil {
			return err
		}
		if _, err := d.kubectl("-n", "shop", "wait", "--for=condition=Ready", "pod", "-l", sel, "--timeout=120s"); err != nil {
			return err
		}
	}
	_, err = d.kubectl("-n", "shop", "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
	if err == nil {
		var out string
		out, err = d.kubectl("-n", "shop", "get", "pods", "-o", "wide")
		fmt.Println(indent(out))
	}
	return err
}

// measure shows the injection and the faults on the running pods: the
// checkout round trip against cart's from the client pod, and checkout's
// clock against the node's.
func (d *demo) measure() error {
	cl, err := d.n.Client()
	if err != nil {
		return err
	}
	var pods corev1.PodList
	if err := cl.List(d.ctx, &pods, client.InNamespace("shop"), client.MatchingLabels{"app": "checkout"}); err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no checkout pods")
	}
	p := pods.Items[0]
	describe(&p)
	step("waiting for the agent in " + p.Name + " to report its faults applied")
	metrics := "http://" + p.Status.PodIP + ":19091/metrics"
	if err := d.wait(60*time.Second, "faultline_agent_fault_active{kind=\"delay\"} 1", func() (bool, error) {
		out, err := d.kubectl("-n", "shop", "exec", "client", "--", "probe", "-body", "-url", metrics)
		return err == nil && strings.Contains(out, `faultline_agent_fault_active{kind="delay"} 1`), nil
	}); err != nil {
		return err
	}
	step("measuring from the client pod (20 round trips each, through the Services)")
	rtt := map[string]float64{}
	for _, m := range []struct{ key, flag, arg string }{
		{"cart tcp", "-dial", "cart:8080"}, {"checkout tcp", "-dial", "checkout:8080"},
		{"cart http", "-url", "http://cart:8080/"}, {"checkout http", "-url", "http://checkout:8080/"},
	} {
		out, err := d.kubectl("-n", "shop", "exec", "client", "--", "probe", m.flag, m.arg, "-n", "20")
		if err != nil {
			return err
		}
		if rtt[m.key], err = strconv.ParseFloat(out, 64); err != nil {
			return fmt.Errorf("probe said %q", out)
		}
	}
	fmt.Printf("    %-28s %-12s %-12s %s\n", "p50 over 20", "cart", "checkout", "added (delay 100ms ±20ms asked)")
	fmt.Printf("    %-28s %6.1f ms    %6.1f ms    %+.1f ms\n", "TCP connect (1 round trip)", rtt["cart tcp"], rtt["checkout tcp"], rtt["checkout tcp"]-rtt["cart tcp"])
	fmt.Printf("    %-28s %6.1f ms    %6.1f ms    %+.1f ms\n", "HTTP GET, kept-alive", rtt["cart http"], rtt["checkout http"], rtt["checkout http"]-rtt["cart http"])
	fmt.Println("    (Python's http.server writes headers and body apart, so a GET waits for one more delayed ACK)")
	out, err := d.kubectl("-n", "shop", "exec", p.Name, "-c", "app", "--", "date", "+%s")
	if err != nil {
		return err
	}
	appNow, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return fmt.Errorf("date said %q", out)
	}
	fmt.Printf("    checkout's clock (date +%%s in the app container): %+d s against the node's (offset +5m asked)\n", appNow-time.Now().Unix())
	return nil
}

func (d *demo) wait(limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := d.n.Exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %s", what, limit)
		}
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// describe prints what was injected into one pod in a few readable lines.
func describe(p *corev1.Pod) {
	var st webhook.Status
	if err := json.Unmarshal([]byte(p.Annotations[v1alpha1.AnnotationStatus]), &st); err != nil {
		fmt.Printf("\npod %s/%s was NOT injected (no %s annotation)\n", p.Namespace, p.Name, v1alpha1.AnnotationStatus)
		return
	}
	fmt.Printf("\npod %s/%s (%s): injected by faultline %s\n", p.Namespace, p.Name, p.Status.Phase, st.Version)
	fmt.Printf("  faults:          %s\n", strings.Join(st.Faults, ", "))
	fmt.Printf("  init containers: %s (agent as a %s sidecar)\n", strings.Join(st.InitContainers, ", "), st.Sidecar)
	fmt.Printf("  volumes:         %s\n", strings.Join(st.Volumes, ", "))
	for _, c := range p.Spec.InitContainers {
		if c.Name == webhook.AgentContainerName && c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
			fmt.Printf("  agent:           capabilities add %v, drop %v\n", c.SecurityContext.Capabilities.Add, c.SecurityContext.Capabilities.Drop)
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
