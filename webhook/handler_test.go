package webhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/hack/golden"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// staticNamespaces is the NamespaceReader seam filled from a map; the
// envtest suite uses the real API server.
type staticNamespaces map[string]map[string]string

func (s staticNamespaces) NamespaceLabels(_ context.Context, name string) (map[string]string, error) {
	l, ok := s[name]
	if !ok {
		return nil, errors.New("namespaces \"" + name + "\" not found")
	}
	return l, nil
}

func testHandler(mode SidecarMode, reg prometheus.Registerer) *Handler {
	cfg := DefaultConfig()
	cfg.AgentImage = "faultline-agent:test"
	cfg.Version = "test"
	cfg.SidecarMode = mode
	cfg.Bounds.Images = []string{"faultline-agent:debug"}
	return &Handler{
		Decider: &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
			Limiter: policy.AdmitRequested{Why: "opted in"}, Specs: policy.NewSpecCache(64)},
		Namespaces: staticNamespaces{"shop": {v1alpha1.LabelNamespaceInjection: "enabled"}},
		Injector:   NewInjector(cfg),
		Metrics:    NewMetrics(reg),
	}
}

func admissionRequest(t testing.TB, op admissionv1.Operation, podYAML []byte) admission.Request {
	t.Helper()
	raw, err := yaml.YAMLToJSON(podYAML)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Operation: op, Namespace: "shop",
		Object: runtime.RawExtension{Raw: raw},
	}}
}

// render applies the response's patch to the request and prints both what
// was decided and the resulting pod, which is what the golden files hold.
func render(t *testing.T, req admission.Request, resp admission.Response) []byte {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# allowed: %v\n# message: %s\n", resp.Allowed, resp.Result.Message)
	for _, w := range resp.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", w)
	}
	out := req.Object.Raw
	if len(resp.Patches) > 0 {
		t.Fatal("patches must be pre-encoded in resp.Patch")
	}
	if len(resp.Patch) > 0 {
		if *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch type %s", *resp.PatchType)
		}
		ops := resp.Patch
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatalf("patch does not decode: %v", err)
		}
		if out, err = patch.Apply(req.Object.Raw); err != nil {
			t.Fatalf("patch does not apply: %v\n%s", err, ops)
		}
	}
	y, err := yaml.JSONToYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(y)
	return []byte(b.String())
}

func TestHandlerInjectsPodsAsTheGoldenFilesShow(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/pods/*.yaml")
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(strings.ReplaceAll(name, "-", " "), func(t *testing.T) {
			mode := SidecarNative
			if strings.HasPrefix(name, "classic") {
				mode = SidecarClassic
			}
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			req := admissionRequest(t, admissionv1.Create, data)
			resp := testHandler(mode, nil).Handle(context.Background(), req)
			if !resp.Allowed {
				t.Fatalf("the injector must never deny a pod: %+v", resp.Result)
			}
			golden.Assert(t, filepath.Join("testdata", "golden", name+".yaml"), render(t, req, resp))
		})
	}
	golden.CheckStale(t, "testdata/golden/*.yaml")
}

func TestHandlerSkips(t *testing.T) {
	pod, _ := os.ReadFile("testdata/pods/network-delay.yaml")
	inOther := strings.Replace(string(pod), "namespace: shop", "namespace: ghost", 1)
	cases := []struct {
		name   string
		req    admission.Request
		code   policy.Code
		result string
		warn   string
		// patch is the whole patch: at most the decision mark.
		patch string
	}{
		{"an update is not a creation", admissionRequest(t, admissionv1.Update, pod), CodeNotCreate, ResultSkipped, "", ""},
		{"an unreadable namespace means no injection, and the pod is marked with why", admissionRequest(t, admissionv1.Create, []byte(inOther)), policy.CodeNamespaceUnknown, ResultSkipped, "namespace ghost could not be read",
			`[{"op":"add","path":"/metadata/annotations/faultline.dev~1decision","value":"namespace-unknown"}]`},
		{"an object that is not a pod is an error, but still allowed", admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, Namespace: "shop", Object: runtime.RawExtension{Raw: []byte(`{"kind":"Pod","spec":{"containers":7}}`)}}},
			CodeDecodeError, ResultError, "decoding pod", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := testHandler(SidecarNative, reg)
			resp := h.Handle(context.Background(), c.req)
			if !resp.Allowed || string(resp.Patch) != c.patch {
				t.Fatalf("want allowed with patch %q, got allowed=%v patch=%s", c.patch, resp.Allowed, resp.Patch)
			}
			if got := testutil.ToFloat64(h.Metrics.requests.WithLabelValues(c.result, string(c.code))); got != 1 {
				t.Errorf("faultline_admission_requests_total{result=%q,reason=%q} = %v, want 1", c.result, c.code, got)
			}
			if c.warn != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), c.warn) {
				t.Errorf("warnings %q do not mention %q", resp.Warnings, c.warn)
			}
		})
	}
}

func TestReinjectionIsANoOp(t *testing.T) {
	data, _ := os.ReadFile("testdata/pods/network-delay.yaml")
	h := testHandler(SidecarNative, nil)
	first := h.Handle(context.Background(), admissionRequest(t, admissionv1.Create, data))
	if len(first.Patch) == 0 {
		t.Fatal("first admission did not inject")
	}
	injected := render(t, admissionRequest(t, admissionv1.Create, data), first)
	second := h.Handle(context.Background(), admissionRequest(t, admissionv1.Create, injected))
	if len(second.Patch) != 0 || !strings.Contains(second.Result.Message, "already carries") {
		t.Fatalf("second admission patched again: %d ops, %q", len(second.Patch), second.Result.Message)
	}
}

func TestMain(m *testing.M) {
	// The handler logs through controller-runtime; tests keep quiet.
	logf.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
