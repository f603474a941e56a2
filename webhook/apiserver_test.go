package webhook

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// TestAgainstARealAPIServer registers the injector's real configuration with
// a real kube-apiserver and etcd, serves the handler over TLS as the binary
// does, and creates pods through the API.
func TestAgainstARealAPIServer(t *testing.T) {
	env := injectorEnv(true)
	_, _, c := testenv.APIServer(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	wo := env.WebhookInstallOptions
	stopServer := serveWebhook(t, ctx, wo, &Handler{
		Decider: &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
			Limiter: &policy.Policies{Source: ClientPolicies{Reader: c}}, Specs: policy.NewSpecCache(64)},
		Namespaces: ClientNamespaces{Reader: c},
		Injector:   NewInjector(DefaultConfig()),
		Metrics:    NewMetrics(nil),
	})

	mkns := func(name string, labels map[string]string) {
		t.Helper()
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	mkns("shop", map[string]string{v1alpha1.LabelNamespaceInjection: "enabled"})
	if err := c.Create(ctx, &v1alpha1.ChaosPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-chaos"},
		Spec: v1alpha1.ChaosPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
			Limits:            v1alpha1.Limits{MaxDelay: "200ms", MaxClockOffset: "10m"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	mkns("other", nil)
	mkns("faultline-system", map[string]string{v1alpha1.LabelNamespaceInjection: "enabled"})

	createWith := func(ns, name, faults string) *corev1.Pod {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels:      map[string]string{v1alpha1.LabelPodInject: "true"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: faults}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("creating pod %s/%s: %v", ns, name, err)
		}
		return p
	}
	create := func(ns, name string) *corev1.Pod {
		t.Helper()
		return createWith(ns, name, "network: [{delay: 100ms}]\nclock: {offset: +5m}")
	}

	t.Run("the stored configuration fails open and selects only opted-in pods", func(t *testing.T) {
		var got admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: ConfigurationName}, &got); err != nil {
			t.Fatal(err)
		}
		for _, w := range got.Webhooks {
			if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.TimeoutSeconds > 5 || *w.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
				t.Errorf("%s: failurePolicy=%s timeout=%d sideEffects=%s", w.Name, *w.FailurePolicy, *w.TimeoutSeconds, *w.SideEffects)
			}
		}
		inject := got.Webhooks[0]
		if s := metav1.FormatLabelSelector(inject.ObjectSelector); s != "faultline.dev/inject in (true)" {
			t.Errorf("objectSelector = %s", s)
		}
		if s := metav1.FormatLabelSelector(inject.NamespaceSelector); !strings.Contains(s, "faultline.dev/injection in (enabled)") || !strings.Contains(s, "kube-system") {
			t.Errorf("namespaceSelector = %s", s)
		}
	})

	t.Run("an opted-in pod in an enabled namespace is mutated", func(t *testing.T) {
		p := create("shop", "injected")
		if len(p.Spec.InitContainers) != 2 || p.Spec.InitContainers[0].Name != InitContainerName ||
			p.Spec.InitContainers[1].Name != AgentContainerName || *p.Spec.InitContainers[1].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Fatalf("init containers = %v", names(p.Spec.InitContainers))
		}
		var st Status
		if err := json.Unmarshal([]byte(p.Annotations[v1alpha1.AnnotationStatus]), &st); err != nil {
			t.Fatalf("status annotation: %v", err)
		}
		if strings.Join(st.Faults, ",") != "network,clock" {
			t.Errorf("status faults = %v", st.Faults)
		}
		if env := envValue(p.Spec.Containers[0], EnvLDPreload); env != TimeShimPath {
			t.Errorf("app LD_PRELOAD = %q", env)
		}
	})

	t.Run("a pod asking for more than the ChaosPolicy allows is created without chaos", func(t *testing.T) {
		p := createWith("shop", "too-much", "network: [{delay: 2s}]")
		if len(p.Spec.InitContainers) != 0 {
			t.Fatalf("pod over the limit was mutated: %v", names(p.Spec.InitContainers))
		}
	})

	t.Run("a pod in a namespace that did not opt in is not mutated", func(t *testing.T) {
		p := create("other", "plain")
		if len(p.Spec.InitContainers) != 0 || p.Annotations[v1alpha1.AnnotationStatus] != "" {
			t.Fatalf("pod was mutated: %v", names(p.Spec.InitContainers))
		}
	})

	t.Run("faultline's own namespace is excluded even when labelled", func(t *testing.T) {
		p := create("faultline-system", "self")
		if len(p.Spec.InitContainers) != 0 {
			t.Fatalf("pod was mutated: %v", names(p.Spec.InitContainers))
		}
	})

	t.Run("a Deployment with a broken fault annotation is refused at apply time with the parser's message", func(t *testing.T) {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "typo", Namespace: "shop"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "typo"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "typo", v1alpha1.LabelPodInject: "true"},
						Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{dealy: 100ms}]"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
				},
			},
		}
		err := c.Create(ctx, d)
		if err == nil || !strings.Contains(err.Error(), "spec.template.metadata.annotations[faultline.dev/faults].network[0].dealy: Forbidden: unknown field") {
			t.Fatalf("got %v, want a denial naming the field", err)
		}
		d.Spec.Template.Annotations[v1alpha1.AnnotationFaults] = "network: [{delay: 100ms}]"
		d.Spec.Template.Annotations[v1alpha1.AnnotationAgentMemoryLimit] = "4Gi"
		err = c.Create(ctx, d)
		if err == nil || !strings.Contains(err.Error(), "faultline.dev/agent-memory-limit: 4Gi is outside what the operator allows (from 32Mi to 256Mi)") {
			t.Fatalf("got %v, want a denial naming the override and its bounds", err)
		}
		delete(d.Spec.Template.Annotations, v1alpha1.AnnotationAgentMemoryLimit)
		if err := c.Create(ctx, d); err != nil {
			t.Fatalf("the corrected Deployment was refused: %v", err)
		}
	})

	t.Run("with the webhook stopped, pods are still created", func(t *testing.T) {
		stopServer()
		p := create("shop", "webhook-down")
		if len(p.Spec.InitContainers) != 0 {
			t.Fatalf("pod was mutated by a stopped webhook?")
		}
	})
}

func serveWebhook(t *testing.T, ctx context.Context, wo envtest.WebhookInstallOptions, h admission.Handler) (stop func()) {
	t.Helper()
	srv := webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir})
	srv.Register(Path, &webhook.Admission{Handler: h})
	srv.Register(ValidatePath, &webhook.Admission{Handler: &WorkloadValidator{Injector: NewInjector(DefaultConfig())}})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Start(sctx) }()
	addr := net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
	if err != nil {
		t.Fatalf("webhook server did not listen on %s: %v", addr, err)
	}
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func names(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// injectorEnv registers the injector's real webhook configuration (and the
// validating one) with the test API server, pointed at serveWebhook.
func injectorEnv(validating bool) *envtest.Environment {
	svc := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service: &admissionregistrationv1.ServiceReference{Name: "faultline", Namespace: "faultline-system", Path: ptr.To(path)},
		}
	}
	env := &envtest.Environment{}
	env.WebhookInstallOptions.MutatingWebhooks = []*admissionregistrationv1.MutatingWebhookConfiguration{
		MutatingWebhookConfiguration(svc(Path), "faultline-system"),
	}
	if validating {
		env.WebhookInstallOptions.ValidatingWebhooks = []*admissionregistrationv1.ValidatingWebhookConfiguration{
			ValidatingWebhookConfiguration(svc(ValidatePath), "faultline-system"),
		}
	}
	return env
}
