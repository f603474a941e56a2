// Command faultline-agent runs inside an injected pod: `init` once before the
// app starts, `run` as the sidecar. Exit status 2 means a bad spec or flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "init" && os.Args[1] != "run") {
		fmt.Fprintln(os.Stderr, "usage: faultline-agent init|run [--spec-file FILE] [--listen ADDR] (spec from FAULTLINE_SPEC when no file)")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("faultline-agent "+cmd, flag.ContinueOnError)
	specFile := fs.String("spec-file", "", "FaultSpec file (YAML or JSON); default: env FAULTLINE_SPEC")
	listen := fs.String("listen", ":"+strconv.Itoa(v1alpha1.DefaultAgentPort), "address for /healthz and /metrics (run); the pod network reaches it")
	statusListen := fs.String("status-listen", "127.0.0.1:19092", "address for /status (run): loopback, it names the fault's targets and the pod's processes")
	podInfo := fs.String("podinfo-dir", os.Getenv(v1alpha1.EnvPodInfoDir), "downward API directory holding the pod's annotations")
	timeFile := fs.String("time-file", os.Getenv(sidecar.EnvTimeFile), "time shim state file (clock faults)")
	shimSrc := fs.String("shim-src", sidecar.DefaultShimSource, "libfaultline-time.so to install (init)")
	procRoot := fs.String("proc", "/proc", "where the pod's processes are visible, for clock coverage; empty disables")
	fs.StringVar(&terminationLog, "termination-log", terminationLog, "where init reports faults it could not apply (the container's terminationMessagePath)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs) // the subcommand's flag set: on flag.CommandLine they were unknown (exit 2)
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	// Only controller-runtime's log packages: importing the whole of it
	// (client, scheme, manager) would add ~10 MiB of RSS to every pod.
	logf.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)).WithName("faultline-agent"))
	log := logf.Log

	// A soft memory limit below the container's (64Mi by default): the Go
	// runtime collects harder before the kernel's OOM killer would act.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx := logf.IntoContext(sigctx, log)
	// Inside a pod the agent fails open: an init container that exits
	// non-zero, or a sidecar that never starts, keeps the app from
	// starting (Init:CrashLoopBackOff), which is far more chaos than any
	// spec asked for. So bad input is reported and the pod goes on without
	// faults; exit status 2 is only for a mistyped command line.
	spec, err := sidecar.LoadSpec(*specFile)
	if err == nil {
		_, err = sidecar.ParsePorts(os.Getenv(sidecar.EnvProbePorts))
		if err != nil {
			err = fmt.Errorf("%s: %w", sidecar.EnvProbePorts, err)
		}
	}
	if err != nil {
		failOpen(ctx, cmd, *listen, *statusListen, err)
		return
	}
	probePorts, _ := sidecar.ParsePorts(os.Getenv(sidecar.EnvProbePorts))
	exempt := netfault.Exemptions{ProbePorts: probePorts, ProbeSources: sidecar.ProbeSources(os.Getenv(sidecar.EnvHostIP), "/proc/net/route", "/proc/net/ipv6_route")}
	// The agent's own ports (metrics, and status for port-forward) pass
	// whatever the faults.
	for _, addr := range []string{*listen, *statusListen} {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			if ports, err := sidecar.ParsePorts(p); err == nil {
				exempt.Ports = append(exempt.Ports, ports...)
			}
		}
	}
	if cmd == "init" {
		var problems []error
		if err := sidecar.InitClock(ctx, spec, *timeFile, *shimSrc); err != nil {
			problems = append(problems, fmt.Errorf("clock: %w", err))
		}
		runner, _ := netfault.HostRunner()
		if err := sidecar.InitNetwork(ctx, spec, runner, exempt); err != nil {
			problems = append(problems, fmt.Errorf("network: %w", err))
		}
		if len(problems) > 0 {
			reportInitProblems(ctx, problems)
			return
		}
		log.Info("init done", "faults", spec.Kinds())
		return
	}
	agent, err := sidecar.New(sidecar.Options{Spec: spec, Listen: *listen, StatusListen: *statusListen, PodInfoDir: *podInfo,
		TimeFile: *timeFile, ProcRoot: *procRoot, Seed: os.Getenv(v1alpha1.EnvPodName), Exempt: exempt,
		ClockVDSO: os.Getenv(sidecar.EnvClockVDSO) == "true"})
	if err != nil {
		failOpen(ctx, cmd, *listen, *statusListen, err)
		return
	}
	if err := agent.Run(ctx); err != nil {
		// Run removes what it made before it returns; exiting lets the
		// kubelet start a fresh agent, which clears and re-applies.
		log.Error(err, "agent failed")
		os.Exit(1)
	}
}
