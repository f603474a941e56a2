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

func TestAgentFollowsThePauseAnnotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "annotations")
	if err := os.WriteFile(file, []byte(`faultline.dev/paused="false"`), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	spec, _ := v1alpha1.ParseFaultSpec("clock: {offset: 1s}", nil)
	a := New(Options{Spec: spec, Listen: addr, PodInfoDir: dir, PollInterval: 10 * time.Millisecond})
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
	if s := status(); s.Paused || len(s.NotDone) != 1 {
		t.Fatalf("status = %+v, want unpaused with the clock fault reported as not applied", s)
	}
	if err := os.WriteFile(file, []byte(`faultline.dev/paused="true"`), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !status().Paused {
		if time.Now().After(deadline) {
			t.Fatal("agent did not see the pause annotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
