package main

import (
	"flag"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	fwebhook "github.com/faultline-dev/faultline/webhook"
)

// bindAgentFlags adds the agent's resources and the bounds of per-workload
// overrides (the chart's agent.resources and agent.overrides) to fs.
func bindAgentFlags(fs *flag.FlagSet, cfg *fwebhook.Config) {
	list := func(l *corev1.ResourceList, name corev1.ResourceName) func(string) error {
		return func(v string) error {
			q, err := quantity(v)
			if err != nil {
				return err
			}
			if *l == nil {
				*l = corev1.ResourceList{}
			}
			(*l)[name] = q
			return nil
		}
	}
	bound := func(dst *resource.Quantity) func(string) error {
		return func(v string) error {
			q, err := quantity(v)
			*dst = q
			return err
		}
	}
	r, b := &cfg.Resources, &cfg.Bounds
	fs.Func("agent-cpu", "CPU request of the injected agent (default 10m)", list(&r.Requests, corev1.ResourceCPU))
	fs.Func("agent-memory", "memory request of the injected agent (default 32Mi)", list(&r.Requests, corev1.ResourceMemory))
	fs.Func("agent-cpu-limit", "CPU limit of the injected agent (default 200m)", list(&r.Limits, corev1.ResourceCPU))
	fs.Func("agent-memory-limit", "memory limit of the injected agent (default 64Mi)", list(&r.Limits, corev1.ResourceMemory))
	fs.Func("agent-override-images", "comma-separated images a workload may choose with faultline.dev/agent-image (default none)", func(v string) error {
		b.Images = nil
		for _, img := range strings.Split(v, ",") {
			if img = strings.TrimSpace(img); img != "" {
				b.Images = append(b.Images, img)
			}
		}
		return nil
	})
	fs.Func("agent-override-cpu-min", "lowest CPU a workload may set by annotation (default 5m)", bound(&b.MinCPU))
	fs.Func("agent-override-cpu-max", "highest CPU a workload may set by annotation; 0 allows none (default 1)", bound(&b.MaxCPU))
	fs.Func("agent-override-memory-min", "lowest memory a workload may set by annotation (default 32Mi)", bound(&b.MinMemory))
	fs.Func("agent-override-memory-max", "highest memory a workload may set by annotation; 0 allows none (default 256Mi)", bound(&b.MaxMemory))
}

func quantity(v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		return resource.Quantity{}, fmt.Errorf("%q is not a Kubernetes quantity (e.g. 50m, 0.5, 64Mi)", v)
	}
	return q, nil
}
