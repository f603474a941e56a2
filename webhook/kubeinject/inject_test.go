package kubeinject

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/golden"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
	"github.com/faultline-dev/faultline/webhook/workload"
)

func testConfig() webhook.Config {
	cfg := webhook.DefaultConfig()
	cfg.AgentImage = "faultline-agent:test"
	cfg.Version = "test"
	return cfg
}

func TestInjectWorkloadsAsTheGoldenFilesShow(t *testing.T) {
	policies, err := workload.ReadPolicies("testdata/policies")
	if err != nil || len(policies) == 0 {
		t.Fatalf("policies: %v (%d)", err, len(policies))
	}
	for _, name := range []string{"allow-all", "no-policy", "policies"} {
		allowAll := name == "allow-all"
		var ps []v1alpha1.ChaosPolicy
		if name == "policies" {
			ps = policies
		}
		t.Run("with "+name, func(t *testing.T) {
			f, err := os.Open("testdata/workloads.yaml")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			objs, err := workload.Read(f, "default")
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			outcomes, err := Inject(context.Background(), objs, Options{Config: testConfig(), AllowAll: allowAll, Policies: ps,
				Now: func() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) }}, &out)
			if err != nil {
				t.Fatal(err)
			}
			var report strings.Builder
			for _, oc := range outcomes {
				fmt.Fprintf(&report, "# %s: injected=%v: %s\n", oc.Object.ID(), oc.Injected, oc.Decision.Message())
			}
			golden.Assert(t, filepath.Join("testdata", "golden", name+".yaml"), []byte(report.String()+out.String()))
		})
	}
	golden.CheckStale(t, "testdata/golden/*.yaml")
}

func TestInjectDecidesPerKind(t *testing.T) {
	f, _ := os.Open("testdata/workloads.yaml")
	defer f.Close()
	objs, err := workload.Read(f, "default")
	if err != nil {
		t.Fatal(err)
	}
	outcomes, err := Inject(context.Background(), objs, Options{Config: testConfig(), AllowAll: true}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": false, "ReplicaSet": false, "Job": true, "CronJob": true}
	if len(outcomes) != len(want) {
		t.Fatalf("got %d outcomes, want %d", len(outcomes), len(want))
	}
	for _, oc := range outcomes {
		if oc.Injected != want[oc.Object.Kind] {
			t.Errorf("%s: injected=%v, want %v (%s)", oc.Object.ID(), oc.Injected, want[oc.Object.Kind], oc.Decision.Message())
		}
	}
}

func TestReadRejectsWhatIsNotAnObject(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"a document without kind", "metadata: {name: x}", "document 1: not a Kubernetes object: kind is missing"},
		{"broken YAML in the second document", "kind: Pod\n---\nkind: [", "document 2"},
		{"a pod whose spec is the wrong type", "kind: Pod\nmetadata: {name: p}\nspec: 7", "Pod default/p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := workload.Read(strings.NewReader(c.in), "default")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// FuzzRead: manifests come from users; nothing they write may panic the
// reader, the validator or the injector.
func FuzzRead(f *testing.F) {
	seed, _ := os.ReadFile("testdata/workloads.yaml")
	f.Add(string(seed))
	f.Add("kind: Pod\nmetadata: {labels: {faultline.dev/inject: 'true'}, annotations: {faultline.dev/faults: 'clock: {offset: 1s}'}}\nspec: {containers: [{name: a, env: [{name: LD_PRELOAD, value: x}]}]}")
	f.Add("kind: CronJob\nspec: {jobTemplate: {spec: {template: {}}}}")
	f.Fuzz(func(t *testing.T, in string) {
		objs, err := workload.Read(strings.NewReader(in), "default")
		if err != nil {
			return
		}
		_ = workload.Validate(objs)
		if _, err := Inject(context.Background(), objs, Options{Config: testConfig(), AllowAll: true}, &bytes.Buffer{}); err != nil {
			t.Fatalf("inject failed on input Read accepted: %v", err)
		}
	})
}
