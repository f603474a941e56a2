// Command run is `make run`: a one-node cluster on this machine (hack/
// localnode), faultline installed into it with the Helm chart from the
// images `make images` built, the examples applied, and a fault measured
// live on a running pod. Ctrl-C removes everything the node made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/hack/localnode"
)

func main() {
	assets := flag.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "cluster binaries (hack/build-control-plane.sh)")
	state := flag.String("state-dir", ".run", "certificates, configuration, logs and the node's data")
	images := flag.String("images", "bin/images/images.json", "image tarballs to import (make images)")
	examples := flag.String("examples", "examples", "manifests to apply")
	chart := flag.String("chart", "charts/faultline", "faultline's Helm chart")
	exitAfter := flag.Bool("exit", false, "stop after printing (CI smoke test)")
	clean := flag.Bool("clean", false, "only remove what an earlier run left, then exit")
	flag.Parse()
	logf.SetLogger(logr.Discard()) // the clients' own logs would drown the demo's lines
	if *clean {
		if err := localnode.Clean(); err != nil {
			fmt.Fprintln(os.Stderr, "make run:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*assets, *state, *images, *examples, *chart, *exitAfter); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func step(s string) { fmt.Printf("==> %s\n", s) }

func run(assets, state, imagesJSON, examples, chart string, exitAfter bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tarballs, err := localnode.ImageTarballs(imagesJSON)
	if err != nil {
		return err
	}
	start := time.Now()
	step("starting the node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy, CoreDNS")
	n, err := localnode.Start(ctx, localnode.Options{Assets: assets, StateDir: state, Images: tarballs,
		Log: func(s string) { fmt.Printf("    %s\n", s) }})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping: pods deleted, processes stopped, mounts, cgroups, namespaces and links removed")
		if err := n.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "stop:", err)
		}
	}()
	fmt.Printf("    node %s Ready after %s\n", localnode.NodeName, time.Since(start).Round(100*time.Millisecond))
	d := &demo{n: n, ctx: ctx}
	if err := d.install(chart); err != nil {
		return err
	}
	if err := d.apply(examples); err != nil {
		return err
	}
	if err := d.measure(); err != nil {
		return err
	}
	abs, _ := filepath.Abs(state)
	fmt.Printf("\nThe cluster is up. Logs: %s/logs/*.log\n\n  export KUBECONFIG=%s\n  alias kubectl=%s\n", abs, n.Kubeconfig, n.Kubectl)
	fmt.Printf("  kubectl -n shop get pods -o wide\n  kubectl -n shop annotate pod -l app=checkout faultline.dev/paused=true   # faults off\n")
	fmt.Printf("  kubectl -n shop exec client -- probe -url http://checkout:8080/          # median RTT, ms\n\nCtrl-C stops everything.\n")
	if exitAfter {
		return nil
	}
	<-ctx.Done()
	return nil
}
