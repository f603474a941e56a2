package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	shimOnce sync.Once
	shimDir  string
	shimErr  error
	shimOut  []byte
)

// TimeShim builds libfaultline-time.so once per test binary with
// hack/build-timeshim.sh and returns its path. It fails the test (needs gcc).
func TimeShim(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	shimOnce.Do(func() {
		if shimDir, shimErr = os.MkdirTemp("", "faultline-shim-"); shimErr != nil {
			return
		}
		shimOut, shimErr = exec.Command(filepath.Join(root, "hack", "build-timeshim.sh"), shimDir).CombinedOutput()
	})
	if shimErr != nil {
		t.Fatalf("building the time shim (needs gcc): %v\n%s", shimErr, shimOut)
	}
	return filepath.Join(shimDir, "libfaultline-time.so")
}

// GoBinary builds a main package of this module into a temp dir.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// GoStaticBinary builds pkg with cgo off: a static binary, as most Go
// programs in containers are, which LD_PRELOAD never reaches.
func GoStaticBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
