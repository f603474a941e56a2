package sidecar

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/clockfault"
)

func TestPausedFromTheDownwardAPIFile(t *testing.T) {
	cases := []struct {
		name, file string
		want       bool
	}{
		{"an annotation set to true pauses", "a=\"b\"\nfaultline.dev/paused=\"true\"\n", true},
		{"an annotation set to false does not", "faultline.dev/paused=\"false\"\n", false},
		{"no annotation does not", "faultline.dev/faults=\"clock: {offset: 1s}\\n\"\n", false},
		{"an unquoted value is read as is", "faultline.dev/paused=true\n", true},
		{"a similar key does not count", "x.faultline.dev/paused=\"true\"\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := pausedIn([]byte(c.file)); got != c.want {
				t.Fatalf("paused = %v, want %v", got, c.want)
			}
		})
	}
}

func TestLoadSpecRefusesBadSpecsNamingTheSource(t *testing.T) {
	t.Setenv(EnvSpec, `{"network":[{"delay":"-1s"}]}`)
	_, err := LoadSpec("")
	if err == nil || !strings.Contains(err.Error(), "FAULTLINE_SPEC.network[0].delay") {
		t.Fatalf("err = %v", err)
	}
}

func TestAgentDrivesTheClockByPauseAndStopsClean(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "annotations")
	if err := os.WriteFile(file, []byte(`faultline.dev/paused="false"`), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	sln, _ := net.Listen("tcp", "127.0.0.1:0")
	statusAddr := sln.Addr().String()
	sln.Close()
	ln.Close()
	spec, _ := v1alpha1.ParseFaultSpec("clock: {offset: 1s}", nil)
	timeFile := filepath.Join(dir, "time", "state")
	a, err := New(Options{Spec: spec, Listen: addr, StatusListen: statusAddr, PodInfoDir: dir, TimeFile: timeFile, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	state, err := clockfault.Open(timeFile)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	status := func() Status {
		var s Status
		for i := 0; i < 200; i++ {
			resp, err := http.Get("http://" + statusAddr + "/status")
			if err == nil {
				defer resp.Body.Close()
				if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("agent did not serve /status")
		return s
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; status %+v, shim state %+v", what, status(), state.Read())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the clock fault to apply", func() bool {
		s := status()
		return !s.Paused && len(s.Applied) == 1 && state.Read().Enabled && state.Read().Offset == time.Second
	})
	// The port the pod network reaches serves metrics and liveness, not
	// the report that names targets and processes (issue 12 item 11).
	for path, want := range map[string]int{"/status": http.StatusNotFound, "/metrics": http.StatusOK, "/healthz": http.StatusOK} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the public port: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if err := os.WriteFile(file, []byte(`faultline.dev/paused="true"`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the pause to restore real time", func() bool { return status().Paused && !state.Read().Enabled })
	if err := os.WriteFile(file, []byte(`faultline.dev/paused="false"`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("unpausing to bring the fault back", func() bool { return state.Read().Enabled })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if state.Read().Enabled {
		t.Fatal("the agent exited leaving the fake clock on")
	}
}

// The agent's port is open to the pod network: idle connections cannot
// pile up in the agent (a cap, then the kernel's backlog), and connections
// that never send a request are closed (issue 12 item 11).
func TestIdleConnectionsAreCappedAndClosed(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	spec, _ := v1alpha1.ParseFaultSpec("clock: {offset: 1s}", nil)
	a, err := New(Options{Spec: spec, Listen: addr, PodInfoDir: dir, TimeFile: filepath.Join(dir, "time", "state"), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("agent not listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for i := 0; i < 500; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break // the backlog is full: also fine
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if grown := runtime.NumGoroutine() - base; grown > MaxConnections+8 {
		t.Errorf("%d idle connections grew the agent by %d goroutines, want at most about %d", len(conns), grown, MaxConnections)
	}
	// An accepted connection that sends nothing is closed after the header
	// timeout.
	start := time.Now()
	_ = conns[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err == nil || time.Since(start) > 8*time.Second {
		t.Errorf("an idle connection stayed open %s (read: %v)", time.Since(start).Round(time.Millisecond), err)
	}
}

// A port someone else holds does not stop the agent: it goes on without
// HTTP, so faults, pause and clean-up still work (issue 12 item 12: it used
// to exit before cleaning up, forever).
func TestATakenPortDoesNotStopTheAgent(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "annotations"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, _ := v1alpha1.ParseFaultSpec("clock: {offset: 1s}", nil)
	timeFile := filepath.Join(dir, "time", "state")
	a, err := New(Options{Spec: spec, Listen: holder.Addr().String(), PodInfoDir: dir, TimeFile: timeFile, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	state, err := clockfault.Open(timeFile)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	deadline := time.Now().Add(2 * time.Second)
	for !state.Read().Enabled {
		select {
		case err := <-done:
			t.Fatalf("the agent stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the clock fault was not applied with the port taken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if state.Read().Enabled {
		t.Error("real time not restored on the way out")
	}
}
