package testenv

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// ModuleDir downloads a Go module (path@version) through the module proxy
// into the module cache and returns its directory. Tests use it for other
// projects' real manifests (cert-manager's and the Prometheus Operator's
// CRDs), which are served as module files like any source.
func ModuleDir(t testing.TB, pathAtVersion string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", pathAtVersion)
	cmd.Dir = RepoRoot(t)
	// -mod=mod: the module is not a dependency of faultline, and must not
	// become one.
	cmd.Env = append(cmd.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", pathAtVersion, err, m.Error)
	}
	return m.Dir
}
