package localnode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// proc is a started process; done closes when it exits, whoever waits.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type procs struct {
	logDir string
	mu     sync.Mutex
	list   []*proc
}

func (ps *procs) logPath(name string) string { return filepath.Join(ps.logDir, name+".log") }

func (ps *procs) start(name string, env []string, argv ...string) (*proc, error) {
	logf, err := os.Create(ps.logPath(name))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a Ctrl-C on the terminal reaches the run,
	// which then stops the node in order (pods first), not all at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// exited names the first process that ended on its own.
func (ps *procs) exited() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); see %s", p.name, p.err, ps.logPath(p.name))
		default:
		}
	}
	return nil
}

func (ps *procs) pids() []int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []int
	for _, p := range ps.list {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// stopAll stops the processes newest first.
func (ps *procs) stopAll(grace time.Duration) {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(grace)
	}
}

// stop stops the named processes.
func (ps *procs) stop(grace time.Duration, names ...string) {
	ps.mu.Lock()
	var keep, stop []*proc
	for _, p := range ps.list {
		if slices.Contains(names, p.name) {
			stop = append(stop, p)
		} else {
			keep = append(keep, p)
		}
	}
	ps.list = keep
	ps.mu.Unlock()
	for _, p := range stop {
		p.stop(grace)
	}
}

// stop sends SIGTERM, then SIGKILL to the process group after grace.
func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
