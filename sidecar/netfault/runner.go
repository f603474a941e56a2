package netfault

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
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

// Arm records the dead man's switch being armed.
func (r *Recorder) Arm(_ context.Context, ttl time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, fmt.Sprintf("# arm ipset %s for %s\n", AliveSet, ttl))
	return nil
}

// Off records the switch's sets being emptied.
func (r *Recorder) Off(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, "# flush ipset "+AliveSet+"\n")
	return nil
}

// Disarm records the switch's set being destroyed.
func (r *Recorder) Disarm(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, "# destroy ipset "+AliveSet+"\n")
	return nil
}

// Gated is a Runner with the dead man's switch (Switch).
type Gated struct {
	Runner
	*KernelSwitch
}

// HostRunner is what the agent uses in its pod: iptables runs here as a
// process, tc and ip through netlink in-process (TCNetlink), and the jumps
// are gated by the dead man's switch, when the kernel has ipset. ok says
// whether it does (without, every command is a process and nothing gates).
func HostRunner() (r Runner, ok bool) {
	ks, err := NewKernelSwitch("")
	if err != nil {
		return Exec{}, false
	}
	if _, _, err := ks.h.IpsetProtocol(); err != nil {
		ks.Close()
		return Exec{}, false
	}
	return Gated{Runner: NewTCNetlink(Exec{}, ks), KernelSwitch: ks}, true
}
