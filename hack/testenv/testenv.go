// Package testenv finds the locally built control plane for tests. Tests
// that need a real kube-apiserver fail (not skip) without it, naming the
// script that builds it, so missing coverage cannot pass unnoticed.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Assets returns the directory holding etcd and kube-apiserver, from
// KUBEBUILDER_ASSETS or by asking hack/build-control-plane.sh where its cache
// is (which does not build if the binaries are already there).
func Assets(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	root := RepoRoot(t)
	out, err := exec.Command(filepath.Join(root, "hack", "control-plane-dir.sh")).Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("no control plane binaries: set KUBEBUILDER_ASSETS or run hack/build-control-plane.sh (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver not built in %s: run hack/build-control-plane.sh", dir)
	}
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	return dir
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
