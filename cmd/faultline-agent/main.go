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
	"syscall"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	listen := fs.String("listen", ":19091", "address for /healthz, /status and /metrics (run)")
	podInfo := fs.String("podinfo-dir", os.Getenv("FAULTLINE_PODINFO_DIR"), "downward API directory holding the pod's annotations")
	timeFile := fs.String("time-file", os.Getenv(sidecar.EnvTimeFile), "time shim state file (clock faults)")
	shimSrc := fs.String("shim-src", sidecar.DefaultShimSource, "libfaultline-time.so to install (init)")
	procRoot := fs.String("proc", "/proc", "where the pod's processes are visible, for clock coverage; empty disables")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	// Only controller-runtime's log packages: importing the whole of it
	// (client, scheme, manager) would add ~10 MiB of RSS to every pod.
	logf.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)).WithName("faultline-agent"))
	log := logf.Log

	spec, err := sidecar.LoadSpec(*specFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline-agent:", err)
		os.Exit(2)
	}
	probePorts, err := sidecar.ParsePorts(os.Getenv(sidecar.EnvProbePorts))
	if err != nil {
		fmt.Fprintf(os.Stderr, "faultline-agent: %s: %v\n", sidecar.EnvProbePorts, err)
		os.Exit(2)
	}
	exempt := netfault.Exemptions{ProbePorts: probePorts, ProbeSources: sidecar.ProbeSources(os.Getenv(sidecar.EnvHostIP), "/proc/net/route")}
	if _, p, err := net.SplitHostPort(*listen); err == nil {
		if ports, err := sidecar.ParsePorts(p); err == nil {
			exempt.Ports = ports
		}
	}
	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx := logf.IntoContext(sigctx, log)
	if cmd == "init" {
		if err := sidecar.InitClock(ctx, spec, *timeFile, *shimSrc); err != nil {
			log.Error(err, "init failed")
			os.Exit(1)
		}
		if err := sidecar.InitNetwork(ctx, spec, netfault.Exec{}, exempt); err != nil {
			log.Error(err, "init failed")
			os.Exit(1)
		}
		log.Info("init done", "faults", spec.Kinds())
		return
	}
	agent, err := sidecar.New(sidecar.Options{Spec: spec, Listen: *listen, PodInfoDir: *podInfo,
		TimeFile: *timeFile, ProcRoot: *procRoot, Seed: os.Getenv("FAULTLINE_POD_NAME"), Exempt: exempt})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline-agent:", err)
		os.Exit(2)
	}
	if err := agent.Run(ctx); err != nil {
		log.Error(err, "agent failed")
		os.Exit(1)
	}
}
