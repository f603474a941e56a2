package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// artifacts: how each file an image copies is built. Go binaries are static
// (CGO_ENABLED=0); the C ones need gcc, libc6-dev (libc.a for pause) and
// musl-tools.
var artifacts = map[string]func(out, version string) error{
	"faultline-agent":           goBinary("./cmd/faultline-agent"),
	"faultline-webhook":         goBinary("./cmd/faultline-webhook"),
	"echo":                      goBinary("./e2e/echo"),
	"probe":                     goBinary("./e2e/probe"),
	"libfaultline-time.so":      timeShim,
	"libfaultline-time-musl.so": timeShim,
	"pause":                     pause,
	"clock-glibc":               cc("gcc", "e2e/clock/clock.c"),
	"clock-musl":                cc("musl-gcc", "e2e/clock/clock.c"),
}

func goBinary(pkg string) func(out, version string) error {
	return func(out, version string) error {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
		return runCmd(cmd)
	}
}

func timeShim(out, _ string) error {
	if err := runCmd(exec.Command("hack/build-timeshim.sh", filepath.Dir(out))); err != nil {
		return err
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("%s not built: the musl shim needs musl-gcc (apt-get install musl-tools)", filepath.Base(out))
	}
	return nil
}

func cc(compiler, src string) func(out, version string) error {
	return func(out, _ string) error {
		if _, err := exec.LookPath(compiler); err != nil {
			return fmt.Errorf("%s not found (apt-get install %s)", compiler, map[string]string{"gcc": "gcc libc6-dev", "musl-gcc": "musl-tools"}[compiler])
		}
		return runCmd(exec.Command(compiler, "-O2", "-Wall", "-o", out, src))
	}
}

// pause builds kubernetes' own pause.c, from the k8s.io/kubernetes module
// at the version the node runs.
func pause(out, _ string) error {
	k8s := strings.TrimSpace(os.Getenv("K8S_VERSION"))
	if k8s == "" {
		k8s = "v1.37.2"
	}
	cmd := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+k8s)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	b, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(b, &m); err != nil || jerr != nil || m.Dir == "" {
		return fmt.Errorf("k8s.io/kubernetes@%s for pause.c: %v %s", k8s, err, m.Error)
	}
	return runCmd(exec.Command("gcc", "-Os", "-static", "-Wall", "-DVERSION=faultline-"+k8s, "-o", out,
		filepath.Join(m.Dir, "build", "pause", "linux", "pause.c")))
}

func buildArtifacts(imgs []Image, dir, version string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, img := range imgs {
		for _, f := range img.Files {
			if _, done := paths[f.Artifact]; done {
				continue
			}
			build, ok := artifacts[f.Artifact]
			if !ok {
				return nil, fmt.Errorf("image %s: no recipe for artifact %q", img.Short, f.Artifact)
			}
			p := filepath.Join(dir, f.Artifact)
			if err := build(p, version); err != nil {
				return nil, fmt.Errorf("building %s: %w", f.Artifact, err)
			}
			paths[f.Artifact] = p
		}
	}
	return paths, nil
}

// assemble makes the image's root filesystem in dir: the Debian base (cached
// by package list), the links, the artifacts and the users.
func assemble(img Image, dir string, arts map[string]string, cache string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(img.Packages) > 0 {
		base, err := debianBase(img.Packages, cache)
		if err != nil {
			return err
		}
		if err := runCmd(exec.Command("cp", "-a", base+"/.", dir)); err != nil {
			return err
		}
	}
	for link, target := range img.Links {
		p := filepath.Join(dir, link)
		if _, err := os.Lstat(p); err == nil {
			continue // the package shipped it
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	for _, f := range img.Files {
		dst := filepath.Join(dir, f.Dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(arts[f.Artifact])
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, f.Mode); err != nil {
			return err
		}
	}
	for _, d := range []string{"etc", "tmp", "dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	users := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groups := "root:x:0:\nnonroot:x:65532:\n"
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte(users), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etc", "group"), []byte(groups), 0o644)
}

// debianBase unpacks packages (and what they depend on) from Debian
// bookworm with mmdebstrap's extract variant: no maintainer scripts run, so
// it needs no chroot, and the documentation is left out.
func debianBase(pkgs []string, cache string) (string, error) {
	sum := sha256.Sum256([]byte("bookworm\n" + strings.Join(pkgs, "\n")))
	dir := filepath.Join(cache, hex.EncodeToString(sum[:8]))
	done := dir + ".complete"
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("mmdebstrap not found (apt-get install mmdebstrap): it unpacks the Debian base of %v", pkgs)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	args := []string{"--variant=extract", "--mode=root", "--include=" + strings.Join(pkgs, ","), "--quiet"}
	for _, ex := range []string{"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/lintian/*"} {
		args = append(args, "--dpkgopt=path-exclude="+ex)
	}
	args = append(args, "bookworm", dir)
	if err := runCmd(exec.Command("mmdebstrap", args...)); err != nil {
		return "", err
	}
	// The runtime gives every container its own /dev; mmdebstrap's device
	// nodes and apt's state have no place in an image.
	for _, d := range []string{"dev", "var/lib/apt", "var/cache/apt", "var/log", "etc/apt", "etc/hostname", "etc/resolv.conf", "etc/fstab"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return "", err
		}
	}
	return dir, os.WriteFile(done, nil, 0o644)
}

func runCmd(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}
