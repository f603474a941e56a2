package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The Dockerfiles users build and the images `make images` tests must not
// drift: each Dockerfile runs this program for its image's root filesystem
// and ends with the USER and ENTRYPOINT defined here.
func TestDockerfilesBuildTheDefinedImages(t *testing.T) {
	for _, img := range images("dev") {
		if img.Dockerfile == "" {
			continue
		}
		t.Run(img.Short+" is built from its definition by "+img.Dockerfile, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", img.Dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			stages := strings.Split(string(b), "\nFROM ")
			final := stages[len(stages)-1]
			if !strings.HasPrefix(final, "scratch\n") {
				t.Errorf("final stage is FROM %s, want scratch (everything comes from hack/images)", strings.SplitN(final, "\n", 2)[0])
			}
			if !strings.Contains(string(b), "go run ./hack/images -only "+img.Short+" ") {
				t.Errorf("the build stage does not run hack/images -only %s", img.Short)
			}
			if want := "COPY --from=build /out/" + img.Short + "/ /"; !strings.Contains(final, want) {
				t.Errorf("final stage lacks %q", want)
			}
			var user string
			var entry []string
			for _, l := range strings.Split(final, "\n") {
				switch {
				case strings.HasPrefix(l, "USER "):
					user = strings.TrimSpace(strings.TrimPrefix(l, "USER "))
				case strings.HasPrefix(l, "ENTRYPOINT "):
					if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "ENTRYPOINT ")), &entry); err != nil {
						t.Errorf("ENTRYPOINT is not the JSON form: %v", err)
					}
				}
			}
			if user != img.User {
				t.Errorf("USER %q, hack/images says %q", user, img.User)
			}
			if !slices.Equal(entry, img.Entrypoint) {
				t.Errorf("ENTRYPOINT %q, hack/images says %q", entry, img.Entrypoint)
			}
		})
	}
}

// The layer is reproducible: the same tree gives the same digest, so an
// unchanged image is not re-imported as a new one.
func TestLayerIsReproducible(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr", "bin", "x"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(dir, "usr", "bin", "y")); err != nil {
		t.Fatal(err)
	}
	a, da, err := layer(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := filepath.Join(dir, "usr", "bin", "x")
	if err := os.Chtimes(now, epoch.AddDate(5, 0, 0), epoch.AddDate(5, 0, 0)); err != nil {
		t.Fatal(err)
	}
	b, db, err := layer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.desc.Digest != b.desc.Digest || da != db {
		t.Errorf("digests differ after touching a file: %s/%s vs %s/%s", a.desc.Digest, da, b.desc.Digest, db)
	}
}
