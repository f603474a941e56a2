package charts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/webhook"
)

// Real CRDs of the optional integrations, from their projects' modules.
const (
	certManagerModule  = "github.com/cert-manager/cert-manager@v1.21.2"
	promOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// objects splits a rendered manifest into objects.
func objects(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("rendered manifest does not parse: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind {
			b, _ := yaml.Marshal(o.Object)
			if err := yaml.UnmarshalStrict(b, into); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			return
		}
	}
	t.Fatalf("no %s rendered", kind)
}

// The chart's webhook configurations say exactly what the Go ones (used by
// `make run` and the tests) say: one source of truth for the safety settings.
func TestChartWebhooksMatchTheGoConfiguration(t *testing.T) {
	objs := objects(t, render(t))
	svc := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Name: "faultline-webhook", Namespace: "faultline-system", Path: ptr.To(path), Port: ptr.To[int32](443)}}
	}
	var mut admissionregistrationv1.MutatingWebhookConfiguration
	find(t, objs, "MutatingWebhookConfiguration", &mut)
	want := webhook.MutatingWebhookConfiguration(svc(webhook.Path), "faultline-system")
	sameWebhooks(t, "mutating", mut.Name, want.Name, mut.Webhooks, want.Webhooks)
	var val admissionregistrationv1.ValidatingWebhookConfiguration
	find(t, objs, "ValidatingWebhookConfiguration", &val)
	wantVal := webhook.ValidatingWebhookConfiguration(svc(webhook.ValidatePath), "faultline-system")
	sameWebhooks(t, "validating", val.Name, wantVal.Name, val.Webhooks, wantVal.Webhooks)
}

func sameWebhooks(t *testing.T, kind, name, wantName string, got, want any) {
	t.Helper()
	if name != wantName || !equality.Semantic.DeepEqual(got, want) {
		a, _ := yaml.Marshal(got)
		b, _ := yaml.Marshal(want)
		t.Errorf("%s webhooks differ (%s vs %s)\nchart:\n%s\ngo:\n%s", kind, name, wantName, a, b)
	}
}

// adminKubeconfig writes a kubeconfig for a system:masters user of env.
func adminKubeconfig(t *testing.T, env *envtest.Environment) string {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// integrationCRDs makes the API server know cert-manager's Certificate and
// Issuer and the Prometheus Operator's ServiceMonitor, with their real
// schemas, so that those objects are checked like the rest.
func integrationCRDs(t *testing.T, env *envtest.Environment) {
	cm := filepath.Join(testenv.ModuleDir(t, certManagerModule), "deploy", "crds")
	po := filepath.Join(testenv.ModuleDir(t, promOperatorModule), "example", "prometheus-operator-crd")
	env.CRDInstallOptions.Paths = append(env.CRDInstallOptions.Paths,
		filepath.Join(cm, "cert-manager.io_certificates.yaml"), filepath.Join(cm, "cert-manager.io_issuers.yaml"),
		filepath.Join(po, "monitoring.coreos.com_servicemonitors.yaml"))
}

// Every rendered object of every combination is accepted by a real
// kube-apiserver in a server-side dry-run apply: a schema mistake, a bad
// selector or a wrong field in any template fails here.
func TestEveryRenderedObjectPassesAServerSideDryRun(t *testing.T) {
	env := &envtest.Environment{}
	integrationCRDs(t, env)
	_, _, c := testenv.APIServer(t, env)
	kubeconfig := adminKubeconfig(t, env)
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "faultline-system"}}); err != nil {
		t.Fatal(err)
	}
	for _, comb := range combinations {
		t.Run(comb.name+" is accepted by the API server", func(t *testing.T) {
			manifest := render(t, comb.set...)
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, manifest, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(testenv.Assets(t), "kubectl"), "--kubeconfig", kubeconfig,
				"apply", "--server-side", "--dry-run=server", "--field-manager=faultline-chart-test", "-f", file)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("server-side dry run refused the render: %v\n%s", err, out)
			}
			if n, want := bytes.Count(out, []byte("serverside-applied (server dry run)")), len(objects(t, manifest)); n != want {
				t.Fatalf("%d of %d objects applied:\n%s", n, want, out)
			}
		})
	}
}
