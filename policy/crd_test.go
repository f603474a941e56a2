package policy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The committed CRDs and deepcopy code must be what controller-gen makes of
// the types now; otherwise run make manifests.
func TestGeneratedManifestsAreCurrent(t *testing.T) {
	root := testenv.RepoRoot(t)
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "hack", "manifests.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	pairs := map[string]string{
		filepath.Join(out, "zz_generated.deepcopy.go"): filepath.Join(root, "policy", "api", "v1alpha1", "zz_generated.deepcopy.go"),
	}
	crds, _ := filepath.Glob(filepath.Join(out, "crds", "*.yaml"))
	for _, f := range crds {
		pairs[f] = filepath.Join(root, "charts", "faultline", "crds", filepath.Base(f))
	}
	for gen, committed := range pairs {
		want, err := os.ReadFile(gen)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(committed)
		if err != nil || !bytes.Equal(want, got) {
			t.Errorf("%s is stale or missing: run make manifests", committed)
		}
	}
}

// The API server itself refuses bad policies, with the schema's message.
func TestCRDValidationInARealAPIServer(t *testing.T) {
	_, _, c := testenv.APIServer(t, nil)
	create := func(y string) error {
		var p v1alpha1.ChaosPolicy
		if err := yaml.UnmarshalStrict([]byte(y), &p); err != nil {
			t.Fatal(err)
		}
		return c.Create(context.Background(), &p)
	}
	if err := create(stagingNet); err != nil {
		t.Fatalf("a valid policy was refused: %v", err)
	}
	var got v1alpha1.ChaosPolicy
	if err := c.Get(context.Background(), client.ObjectKey{Name: "staging-net"}, &got); err != nil || got.Spec.Mode != v1alpha1.ModeEnforce {
		t.Fatalf("mode should default to Enforce: %v %q", err, got.Spec.Mode)
	}
	cases := []struct{ name, policy, want string }{
		{"an hour out of range", `{metadata: {name: bad-hour}, spec: {windows: [{start: "25:00", end: "26:00"}]}}`, "spec.windows[0].start"},
		{"a window that starts when it ends", `{metadata: {name: empty-window}, spec: {windows: [{start: "09:00", end: "09:00"}]}}`, "start and end must differ"},
		{"an unknown mode", `{metadata: {name: bad-mode}, spec: {mode: Sometimes}}`, `spec.mode: Unsupported value: "Sometimes"`},
		{"a loss limit without %", `{metadata: {name: bad-loss}, spec: {limits: {maxLoss: "5"}}}`, "spec.limits.maxLoss"},
		{"an abortWhen.for that is not a duration", `{metadata: {name: bad-for}, spec: {abortWhen: {prometheusURL: "http://p:9090", query: up, threshold: "1", for: "2 minutes"}}}`, "spec.abortWhen.for"},
		{"an abortWhen.threshold that is not a number", `{metadata: {name: bad-threshold}, spec: {abortWhen: {prometheusURL: "http://p:9090", query: up, threshold: "five"}}}`, "spec.abortWhen.threshold"},
		{"an unknown day", `{metadata: {name: bad-day}, spec: {windows: [{days: [Funday], start: "09:00", end: "10:00"}]}}`, "spec.windows[0].days[0]"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused by the API server", func(t *testing.T) {
			err := create(c.policy)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}
