package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder captures failures instead of failing the real test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Helper()                           {}

func TestGoldenFiles(t *testing.T) {
	dir := t.TempDir()
	kept, stale := filepath.Join(dir, "kept.txt"), filepath.Join(dir, "stale.txt")
	for _, f := range []string{kept, stale} {
		if err := os.WriteFile(f, []byte("want\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("matching output passes", func(t *testing.T) {
		r := &recorder{TB: t}
		Assert(r, kept, []byte("want\n"))
		if len(r.errs) != 0 {
			t.Fatalf("errors: %v", r.errs)
		}
	})
	t.Run("different output fails with a diff", func(t *testing.T) {
		r := &recorder{TB: t}
		Assert(r, kept, []byte("got\n"))
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], "-update") {
			t.Fatalf("errors: %v", r.errs)
		}
	})
	t.Run("a golden no test produced is stale and fails", func(t *testing.T) {
		r := &recorder{TB: t}
		CheckStale(r, filepath.Join(dir, "*.txt"))
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], "stale.txt") || strings.Contains(r.errs[0], "kept.txt") {
			t.Fatalf("errors: %v", r.errs)
		}
	})
}
