package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// terminationLog is where the kubelet reads a container's termination
// message (the pod's status shows it; the webhook's reporter turns the init
// container's into a FaultsNotApplied Event). Its own file, writable under a
// read-only root.
var terminationLog = "/dev/termination-log"

// TerminationPrefix marks the messages the webhook's reporter looks for.
const TerminationPrefix = v1alpha1.AgentProblemPrefix

// reportInitProblems says what init could not do, where a user will see it,
// and lets the pod start: the sidecar retries on its own schedule.
func reportInitProblems(ctx context.Context, problems []error) {
	err := errors.Join(problems...)
	logf.FromContext(ctx).Error(err, "init could not apply every fault; the pod starts anyway and the sidecar retries")
	msg := TerminationPrefix + strings.ReplaceAll(err.Error(), "\n", "; ")
	if werr := os.WriteFile(terminationLog, []byte(msg), 0o644); werr != nil && !errors.Is(werr, os.ErrNotExist) {
		logf.FromContext(ctx).Error(werr, "writing the termination message")
	}
}

// failOpen handles input the agent cannot act on (a spec it cannot parse,
// which admission should have refused, e.g. from a newer webhook). init
// reports and exits 0; run reports, answers /healthz and /status with the
// problem and waits for SIGTERM, applying nothing: a sidecar that exits at
// once would crash-loop and, as a native sidecar, hold the app back.
func failOpen(ctx context.Context, cmd, listen, statusListen string, err error) {
	if cmd == "init" {
		reportInitProblems(ctx, []error{err})
		return
	}
	log := logf.FromContext(ctx)
	log.Error(err, "no faults will be applied: the agent idles until the pod stops")
	body := fmt.Sprintf(`{"applied":[],"notApplied":[%q]}`+"\n", err.Error())
	public := http.NewServeMux()
	public.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	status := http.NewServeMux()
	status.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	var servers []*http.Server
	for _, s := range []struct {
		addr string
		mux  http.Handler
	}{{listen, public}, {statusListen, status}} {
		if s.addr == "" {
			continue
		}
		srv := &http.Server{Addr: s.addr, Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() { _ = srv.ListenAndServe() }()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
}
