package netfault

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// Runner runs one command. Every iptables and tc invocation goes through it,
// so tests can record exactly what would run.
type Runner interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// Exec runs commands for real.
type Exec struct{}

func (Exec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Recorder records commands instead of running them; Out answers by
// command line ("iptables-save -t filter").
type Recorder struct {
	mu    sync.Mutex
	Calls []string
	Out   map[string]string
	// Fail makes commands starting with one of its keys fail with that
	// error (a kernel that refuses, for fail-open tests).
	Fail map[string]error
}

func (r *Recorder) Run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := strings.TrimSpace(name + " " + strings.Join(args, " "))
	call := "$ " + line + "\n"
	if stdin != nil {
		call += string(stdin)
	}
	r.Calls = append(r.Calls, call)
	for prefix, err := range r.Fail {
		if strings.HasPrefix(line, prefix) {
			return nil, err
		}
	}
	return []byte(r.Out[line]), nil
}
