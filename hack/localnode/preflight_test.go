package localnode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A machine without the node's binaries is told which and how to get them,
// before anything is started or changed.
func TestPreflightNamesWhatIsMissingAndHowToGetIt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Preflight(dir)
	if !errors.Is(err, errMissing) {
		t.Fatalf("Preflight = %v, want the missing-parts error", err)
	}
	for _, want := range []string{"kubelet in " + dir + ": run hack/build-control-plane.sh", "containerd in", "coredns in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "etcd in") {
		t.Errorf("etcd is there but named missing:\n%v", err)
	}
	if _, err := os.Stat(recordPath); err == nil {
		t.Errorf("a failed preflight left %s", recordPath)
	}
}

func TestCgroupControllerTable(t *testing.T) {
	table := "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t4\t1\t0\n"
	for _, tc := range []struct {
		name string
		want bool
	}{{"cpu", true}, {"memory", false}, {"pids", false}} {
		if got := cgroupEnabled(table, tc.name); got != tc.want {
			t.Errorf("cgroupEnabled(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
