// Package golden compares test output with files under testdata, rewrites
// them with `go test -update`, and fails on goldens no test produced, so
// stale files cannot linger.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files instead of comparing")

var (
	mu   sync.Mutex
	seen = map[string]bool{}
)

// Assert compares got with the golden file at path.
func Assert(t testing.TB, path string, got []byte) {
	t.Helper()
	mu.Lock()
	seen[filepath.Clean(path)] = true
	mu.Unlock()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s missing (run go test -update): %v", path, err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs from output (-golden +got); run go test -update if intended:\n%s", path, d)
	}
}

// CheckStale fails for files matching glob that no Assert call produced; in
// -update mode it deletes them. Call it at the end of the test that owns
// the directory.
func CheckStale(t testing.TB, glob string) {
	t.Helper()
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "/") {
		return // only some subtests ran; the rest did not get a chance to claim their files
	}
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var stale []string
	for _, f := range files {
		if !seen[filepath.Clean(f)] {
			stale = append(stale, f)
		}
	}
	slices.Sort(stale)
	if len(stale) == 0 {
		return
	}
	if *update {
		for _, f := range stale {
			_ = os.Remove(f)
		}
		return
	}
	t.Errorf("stale golden files (no test produces them; run go test -update to delete): %s", strings.Join(stale, ", "))
}
