package main

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar"
	"github.com/faultline-dev/faultline/webhook"
)

// The webhook–agent contract end to end: the webhook renders an injected
// pod, and the agent's own parsers read exactly what was rendered (the
// names both sides use live in policy/api/v1alpha1).
func TestTheAgentReadsWhatTheWebhookRenders(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec("network: [{delay: 100ms, to: ['db.shop.svc:5432']}]\nclock: {offset: 5m}", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	spec.Normalize()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrString(8080)}}}}}}}
	cfg := webhook.DefaultConfig()
	patch, conflict := webhook.NewInjector(cfg).BuildPatch(&pod.ObjectMeta, &pod.Spec, "", spec, webhook.Clock{})
	if conflict != nil {
		t.Fatal(conflict)
	}
	ops, _ := patch.JSON()
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(pod)
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var injected corev1.Pod
	if err := json.Unmarshal(out, &injected); err != nil {
		t.Fatal(err)
	}
	var agent *corev1.Container
	for i := range injected.Spec.InitContainers {
		if injected.Spec.InitContainers[i].Name == v1alpha1.AgentContainerName {
			agent = &injected.Spec.InitContainers[i]
		}
	}
	if agent == nil {
		t.Fatal("no agent container rendered")
	}
	env := map[string]string{}
	for _, e := range agent.Env {
		env[e.Name] = e.Value
		if e.Value != "" {
			t.Setenv(e.Name, e.Value)
		}
	}
	got, err := sidecar.LoadSpec("")
	if err != nil {
		t.Fatalf("the agent cannot read the spec the webhook rendered: %v", err)
	}
	if a, b := got.Kinds(), spec.Kinds(); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("agent read %v, webhook admitted %v", a, b)
	}
	if ports, err := sidecar.ParsePorts(env[sidecar.EnvProbePorts]); err != nil || len(ports) != 1 || ports[0] != 8080 {
		t.Errorf("probe ports %q read as %v, %v", env[sidecar.EnvProbePorts], ports, err)
	}
	if env[sidecar.EnvTimeFile] != webhook.TimeFilePath {
		t.Errorf("time file %q, want %q", env[sidecar.EnvTimeFile], webhook.TimeFilePath)
	}
	mounted := map[string]bool{}
	for _, m := range agent.VolumeMounts {
		mounted[m.MountPath] = true
	}
	if dir := env[v1alpha1.EnvPodInfoDir]; !mounted[dir] {
		t.Errorf("podinfo dir %q is not where the agent container mounts the downward-API volume (%v)", dir, agent.VolumeMounts)
	}
	if !strings.Contains(strings.Join(agent.Args, " "), "--listen=:19091") {
		t.Errorf("agent args %v", agent.Args)
	}
}

func intOrString(p int) intstr.IntOrString { return intstr.FromInt32(int32(p)) }
