package main

import "io/fs"

// Image is one image's whole definition: `make images` builds it from this,
// and the Dockerfile that users build runs this same program for its root
// filesystem (images_test.go checks that the Dockerfile's USER and
// ENTRYPOINT are these).
type Image struct {
	Name string // full reference; Short names the tarball and -only
	// Short is the image's name in flags, tarballs and Dockerfiles.
	Short string
	// Dockerfile users build the image with; empty for test images.
	Dockerfile string
	// Packages are Debian bookworm packages, unpacked with their
	// dependencies but without maintainer scripts (nothing runs at build).
	Packages []string
	// Links stand in for what the maintainer scripts would have made
	// (update-alternatives): link path -> target.
	Links      map[string]string
	Files      []File
	User       string
	Entrypoint []string
	Cmd        []string
}

// File copies a built artifact (a key of artifacts in main.go) into the image.
type File struct {
	Artifact string
	Dst      string
	Mode     fs.FileMode
}

// iptablesNFT is the nft backend under the names the agent runs, as Debian's
// alternatives would link them.
var iptablesNFT = map[string]string{
	"/usr/sbin/iptables":          "xtables-nft-multi",
	"/usr/sbin/iptables-save":     "xtables-nft-multi",
	"/usr/sbin/iptables-restore":  "xtables-nft-multi",
	"/usr/sbin/ip6tables":         "xtables-nft-multi",
	"/usr/sbin/ip6tables-save":    "xtables-nft-multi",
	"/usr/sbin/ip6tables-restore": "xtables-nft-multi",
}

func images(tag string) []Image {
	return []Image{
		{
			Name: "ghcr.io/faultline-dev/faultline-agent:" + tag, Short: "faultline-agent",
			Dockerfile: "cmd/faultline-agent/Dockerfile",
			Packages:   []string{"iptables", "iproute2"},
			Links:      iptablesNFT,
			Files: []File{
				{"faultline-agent", "/usr/bin/faultline-agent", 0o755},
				{"libfaultline-time.so", "/usr/lib/faultline/libfaultline-time.so", 0o755},
				{"libfaultline-time-musl.so", "/usr/lib/faultline/libfaultline-time-musl.so", 0o755},
			},
			// The injected containers set their own user: root with
			// NET_ADMIN/NET_RAW for network faults, 65532 otherwise.
			User: "65532:65532", Entrypoint: []string{"/usr/bin/faultline-agent"},
		},
		{
			Name: "ghcr.io/faultline-dev/faultline-webhook:" + tag, Short: "faultline-webhook",
			Dockerfile: "cmd/faultline-webhook/Dockerfile",
			Files:      []File{{"faultline-webhook", "/faultline-webhook", 0o755}},
			User:       "65532:65532", Entrypoint: []string{"/faultline-webhook"},
		},
		{
			// The sandbox image, from kubernetes' own pause.c.
			Name: "registry.k8s.io/pause:3.10.2", Short: "pause",
			Files: []File{{"pause", "/pause", 0o755}},
			User:  "65535:65535", Entrypoint: []string{"/pause"},
		},
		{
			// Test apps: a static Go HTTP server (the time shim cannot
			// reach it) and the client that measures round trips.
			Name: "faultline.test/echo:1", Short: "echo",
			Files: []File{{"echo", "/usr/bin/echo-server", 0o755}, {"probe", "/usr/bin/probe", 0o755}},
			User:  "65532:65532", Entrypoint: []string{"/usr/bin/echo-server"},
		},
		{
			// glibc: date and python3 read the clock through libc;
			// python3 -m http.server is the examples' app.
			Name: "faultline.test/glibc-tools:1", Short: "glibc-tools",
			Packages: []string{"dash", "coreutils", "python3-minimal", "libpython3.11-stdlib"},
			Links:    map[string]string{"/bin/sh": "dash", "/usr/bin/python3": "python3.11"},
			Files:    []File{{"clock-glibc", "/usr/bin/clock", 0o755}},
			User:     "65532:65532", Cmd: []string{"/bin/sh"},
		},
		{
			// musl: a dynamically linked musl program reading the clock.
			Name: "faultline.test/musl-clock:1", Short: "musl-clock",
			Packages: []string{"musl"},
			Files:    []File{{"clock-musl", "/usr/bin/clock", 0o755}},
			User:     "65532:65532", Entrypoint: []string{"/usr/bin/clock"},
		},
	}
}
