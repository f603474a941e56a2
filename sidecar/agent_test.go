package sidecar

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	ln.Close()
	spec, _ := v1alpha1.ParseFaultSpec("clock: {offset: 1s}", nil)
	timeFile := filepath.Join(dir, "time", "state")
	a, err := New(Options{Spec: spec, Listen: addr, PodInfoDir: dir, TimeFile: timeFile, PollInterval: 10 * time.Millisecond})
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
			resp, err := http.Get("http://" + addr + "/status")
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
