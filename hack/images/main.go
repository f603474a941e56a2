// Command images builds faultline's images and the e2e test images as OCI
// tarballs, without Docker or a registry (`make images`): Debian packages
// unpacked by mmdebstrap for the bases that need them, this repository's
// binaries on top, one layer each. The Dockerfiles run it with -rootfs, so
// the images users build and the images tested here are one definition.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	out := flag.String("out", "bin/images", "directory for the tarballs and images.json")
	tag := flag.String("tag", "dev", "tag of faultline's own images")
	version := flag.String("version", "dev", "version stamped into the binaries")
	only := flag.String("only", "", "comma-separated short names (default: all)")
	rootfsDir := flag.String("rootfs", "", "write root filesystems into DIR/SHORT instead of tarballs (the Dockerfiles)")
	cache := flag.String("cache", defaultCache(), "where unpacked Debian bases are kept between runs")
	flag.Parse()
	if err := run(*out, *tag, *version, *only, *rootfsDir, *cache); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func defaultCache() string {
	if c := os.Getenv("FAULTLINE_CACHE"); c != "" {
		return filepath.Join(c, "rootfs")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "faultline-rootfs")
	}
	return filepath.Join(d, "faultline", "rootfs")
}

func run(out, tag, version, only, rootfsDir, cache string) error {
	var want []Image
	for _, img := range images(tag) {
		if only == "" || slices.Contains(strings.Split(only, ","), img.Short) {
			want = append(want, img)
		}
	}
	if len(want) == 0 {
		return fmt.Errorf("-only %q: no such image", only)
	}
	work, err := os.MkdirTemp("", "faultline-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	arts, err := buildArtifacts(want, filepath.Join(work, "artifacts"), version)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// -only updates its images' entries and keeps the others.
	index := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(out, "images.json")); err == nil {
		_ = json.Unmarshal(b, &index)
	}
	for _, img := range want {
		dir := filepath.Join(work, "rootfs", img.Short)
		if rootfsDir != "" {
			dir = filepath.Join(rootfsDir, img.Short)
		}
		if err := assemble(img, dir, arts, cache); err != nil {
			return fmt.Errorf("%s: %w", img.Name, err)
		}
		if rootfsDir != "" {
			fmt.Printf("%s: root filesystem in %s\n", img.Name, dir)
			continue
		}
		tarball := filepath.Join(out, img.Short+".tar")
		size, err := writeOCI(tarball, img, dir)
		if err != nil {
			return err
		}
		abs, _ := filepath.Abs(tarball)
		index[img.Name] = abs
		fmt.Printf("%-48s %7.1f MB compressed  %s\n", img.Name, float64(size)/1e6, tarball)
	}
	if rootfsDir != "" {
		return nil
	}
	b, _ := json.MarshalIndent(index, "", "  ")
	return os.WriteFile(filepath.Join(out, "images.json"), b, 0o644)
}
