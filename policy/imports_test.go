package policy

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The import graph stays one-way: cmd → webhook → policy → api,
// cmd → sidecar → api, and the controllers only from cmd. policy itself
// reads the cluster through interfaces, never a client of its own.
func TestTheImportGraphStaysOneWay(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	out, err := exec.Command("go", "list", "-C", filepath.Join(filepath.Dir(here), ".."),
		"-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/faultline-dev/faultline/"
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[strings.TrimPrefix(f[0], mod)] = f[1:]
	}
	if len(imports) < 10 {
		t.Fatalf("go list saw %d packages; the test is not looking at the repository", len(imports))
	}
	for pkg, deps := range imports {
		for _, d := range deps {
			dep := strings.TrimPrefix(d, mod)
			switch {
			case dep == "policy/controllers" && pkg != "cmd/faultline-webhook":
				t.Errorf("%s imports policy/controllers; only cmd/faultline-webhook wires the controllers", pkg)
			case strings.HasPrefix(pkg, "policy") && pkg != "policy/controllers" &&
				(strings.HasPrefix(dep, "webhook") || strings.HasPrefix(dep, "sidecar") || strings.HasPrefix(dep, "cmd")):
				t.Errorf("%s imports %s: policy must not depend on its users", pkg, dep)
			case pkg == "policy/controllers" && (strings.HasPrefix(dep, "webhook") || strings.HasPrefix(dep, "sidecar")):
				t.Errorf("policy/controllers imports %s", dep)
			case strings.HasPrefix(pkg, "sidecar") && (strings.HasPrefix(dep, "webhook") || dep == "policy" || dep == "policy/controllers"):
				t.Errorf("%s imports %s: the agent shares only policy/api with the webhook", pkg, dep)
			case strings.HasPrefix(pkg, "webhook") && strings.HasPrefix(dep, "sidecar"):
				t.Errorf("%s imports %s: the webhook shares only policy/api with the agent", pkg, dep)
			}
		}
	}
	for _, banned := range []string{"sigs.k8s.io/controller-runtime/pkg/client", "sigs.k8s.io/controller-runtime/pkg/metrics",
		"k8s.io/client-go/rest", "k8s.io/client-go/kubernetes", "sigs.k8s.io/controller-runtime"} {
		if slices.Contains(imports["policy"], banned) {
			t.Errorf("policy imports %s: the decision is pure; clients and controllers live in policy/controllers", banned)
		}
	}
}
