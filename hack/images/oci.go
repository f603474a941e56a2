package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// epoch is every file's mtime: the same inputs give the same layer digest.
var epoch = time.Unix(0, 0)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

type blob struct {
	desc descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{desc: descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}, data: data}
}

// layer is the gzipped tar of a directory tree; the second result is its
// diff ID (the digest of the tar before compression).
func layer(root string) (blob, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return blob{}, "", err
	}
	sort.Strings(paths)
	seen := map[uint64]string{} // inode -> first path, for hard links
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return blob{}, "", err
		}
		name := strings.TrimPrefix(p, root+"/")
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return blob{}, "", err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return blob{}, "", err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, dup := seen[st.Ino]; dup {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[st.Ino] = name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return blob{}, "", err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return blob{}, "", err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return blob{}, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return blob{}, "", err
	}
	diff := sha256.Sum256(raw.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return blob{}, "", err
	}
	if err := zw.Close(); err != nil {
		return blob{}, "", err
	}
	return newBlob("application/vnd.oci.image.layer.v1.tar+gzip", gz.Bytes()), "sha256:" + hex.EncodeToString(diff[:]), nil
}

// writeOCI writes an OCI image layout as one tar file, the form `ctr images
// import` loads, with the image's full name in the index annotations.
func writeOCI(out string, img Image, rootfs string) (int64, error) {
	l, diffID, err := layer(rootfs)
	if err != nil {
		return 0, fmt.Errorf("layer of %s: %w", img.Name, err)
	}
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{
			"User": img.User, "Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "WorkingDir": "/",
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"created": epoch.UTC().Format(time.RFC3339),
	}
	cb, _ := json.Marshal(cfg)
	config := newBlob("application/vnd.oci.image.config.v1+json", cb)
	mb, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": config.desc, "layers": []descriptor{l.desc},
	})
	manifest := newBlob("application/vnd.oci.image.manifest.v1+json", mb)
	md := manifest.desc
	md.Platform = map[string]string{"architecture": "amd64", "os": "linux"}
	md.Annotations = map[string]string{
		"io.containerd.image.name":          img.Name,
		"org.opencontainers.image.ref.name": img.Name[strings.LastIndex(img.Name, ":")+1:],
	}
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{md}})

	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", ib},
	}
	for _, b := range []blob{l, config, manifest} {
		files = append(files, struct {
			name string
			data []byte
		}{"blobs/sha256/" + strings.TrimPrefix(b.desc.Digest, "sha256:"), b.data})
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return 0, err
		}
	}
	for _, e := range files {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return 0, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	return l.desc.Size, nil
}
