package sidecar

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// PausedFromPodInfo reports whether the downward API annotations file in dir
// carries faultline.dev/paused="true". The kubelet writes one
// key="escaped value" pair per line. A missing dir means the agent runs
// outside a pod: not paused. An unreadable file is reported as an error so
// the caller can decide (the run loop treats it as paused: safety first).
func PausedFromPodInfo(dir string) (bool, error) {
	if dir == "" {
		return false, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "annotations"))
	if err != nil {
		return false, err
	}
	return pausedIn(data), nil
}

func pausedIn(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "=")
		if !ok || key != v1alpha1.AnnotationPaused {
			continue
		}
		if uq, err := strconv.Unquote(val); err == nil {
			val = uq
		}
		return val == "true"
	}
	return false
}
