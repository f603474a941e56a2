package webhook

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ProbePorts lists the ports the kubelet probes, so the agent exempts them:
// a fault that fails liveness probes restarts the app, which is an outage the
// user did not ask for. Named ports resolve against the container's ports.
func ProbePorts(spec *corev1.PodSpec) []int32 {
	var ports []int32
	add := func(c *corev1.Container, p intstr.IntOrString) {
		if p.Type == intstr.Int {
			if p.IntVal > 0 {
				ports = append(ports, p.IntVal)
			}
			return
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				ports = append(ports, cp.ContainerPort)
			}
		}
	}
	visit := func(c *corev1.Container) {
		for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if pr == nil {
				continue
			}
			switch {
			case pr.HTTPGet != nil:
				add(c, pr.HTTPGet.Port)
			case pr.TCPSocket != nil:
				add(c, pr.TCPSocket.Port)
			case pr.GRPC != nil:
				add(c, intstr.FromInt32(pr.GRPC.Port))
			}
		}
	}
	for i := range spec.InitContainers {
		visit(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		visit(&spec.Containers[i])
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}
