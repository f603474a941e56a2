// Command faultline is the offline CLI: `inject` previews what the webhook
// would add to manifests (like istioctl kube-inject); `validate` checks
// faultline's annotations. Exit status: 0 ok, 2 bad input, 1 other failure.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
	"github.com/faultline-dev/faultline/webhook/kubeinject"
	"github.com/faultline-dev/faultline/webhook/workload"
	"sigs.k8s.io/yaml"
)

// version is set at build time (hack/build.sh).
var version = "dev"

// help is what --help prints: the usage and an example for each command.
const help = `faultline: preview and check faultline's injection offline.

  faultline inject -f deploy.yaml --policies policies/ | kubectl apply -f -
      what the webhook would add, decided by the ChaosPolicies in policies/
  faultline inject -f deploy.yaml --allow-all
      as if a policy allowed every requested fault
  faultline explain -f deploy.yaml --policies policies/ [--output json|yaml]
      why each pod template would or would not get chaos
  kubectl get deploy -n shop -o yaml | faultline validate -f -
      check faultline's labels and annotations; exit 2 on a problem
  faultline version

`

const usage = `usage: faultline inject -f FILE [--policies DIR | --allow-all] [--sidecar native|classic] [--agent-image IMAGE] [--namespace NS] | faultline explain -f FILE [--policies DIR | --allow-all] | faultline validate -f FILE  (FILE may hold several YAML documents; "-" reads stdin)`

// errBadInput makes main exit 2.
var errBadInput = errors.New("bad input")

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errBadInput):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "faultline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errBadInput
	}
	cmd, args := args[0], args[1:]
	if cmd == "version" || cmd == "--version" {
		fmt.Fprintln(stdout, "faultline", version)
		return nil
	}
	fs := flag.NewFlagSet("faultline "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("f", "", "manifest file, or - for stdin")
	namespace := fs.String("namespace", "default", "namespace for objects that do not name one")
	cfg := webhook.DefaultConfig()
	var allowAll bool
	var mode, policiesDir string
	if cmd == "inject" || cmd == "explain" {
		fs.StringVar(&policiesDir, "policies", "", "directory of ChaosPolicy YAML to decide with")
		// explain's "no policy" answer suggests it, so explain takes it too.
		fs.BoolVar(&allowAll, "allow-all", false, "preview as if a ChaosPolicy allowed every requested fault")
	}
	if cmd == "inject" {
		fs.StringVar(&mode, "sidecar", string(webhook.SidecarNative), "native or classic")
		fs.StringVar(&cfg.AgentImage, "agent-image", cfg.AgentImage, "agent image")
	} else if cmd == "-h" || cmd == "--help" || cmd == "help" {
		fmt.Fprint(stdout, help+usage+"\n")
		return nil
	} else if cmd != "validate" && cmd != "explain" {
		fmt.Fprintf(stderr, "faultline: unknown command %q: want inject, explain, validate or version\n", cmd)
		return errBadInput
	}
	var output string
	if cmd == "explain" {
		fs.StringVar(&output, "output", "", "text (default), json or yaml")
		fs.StringVar(&output, "o", "", "shorthand for --output")
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help+usage+"\n")
		return nil
	} else if err != nil {
		fmt.Fprintf(stderr, "faultline %s: %v; %s\n", cmd, err, usage)
		return errBadInput
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "faultline %s: -f FILE is required and takes no other arguments; %s\n", cmd, usage)
		return errBadInput
	}
	if output != "" && output != "text" && output != "json" && output != "yaml" {
		fmt.Fprintf(stderr, "faultline explain: --output %q: want text, json or yaml\n", output)
		return errBadInput
	}
	if allowAll && policiesDir != "" {
		fmt.Fprintf(stderr, "faultline %s: --policies and --allow-all exclude each other: decide with the policies, or preview as if one allowed everything\n", cmd)
		return errBadInput
	}
	cfg.SidecarMode = webhook.SidecarMode(mode)
	if mode == "" {
		cfg.SidecarMode = webhook.SidecarNative
	}
	var policies []v1alpha1.ChaosPolicy
	if policiesDir != "" {
		var err error
		if policies, err = workload.ReadPolicies(policiesDir); err != nil {
			fmt.Fprintf(stderr, "faultline %s: %v\n", cmd, err)
			return errBadInput
		}
	}
	if cmd == "inject" {
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "faultline inject: %v\n", err)
			return errBadInput
		}
	}

	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(stderr, "faultline %s: %v\n", cmd, err)
			return errBadInput
		}
		defer f.Close()
		in = f
	}
	objs, err := workload.Read(in, *namespace)
	if err != nil {
		fmt.Fprintf(stderr, "faultline %s: %s: %v\n", cmd, *file, err)
		return errBadInput
	}
	if len(objs) == 0 {
		fmt.Fprintf(stderr, "faultline %s: %s: no objects in the input\n", cmd, *file)
		return errBadInput
	}

	problems := workload.Validate(objs)
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if cmd == "validate" {
		if len(problems) > 0 {
			return errBadInput
		}
		fmt.Fprintf(stderr, "%d objects, faultline annotations valid\n", len(objs))
		return nil
	}

	// Nothing reaches stdout unless the whole input is good: with a bad
	// annotation, `faultline inject | kubectl apply -f -` without pipefail
	// would otherwise apply it.
	var out bytes.Buffer
	outcomes, err := kubeinject.Inject(ctx, objs, kubeinject.Options{Config: cfg, AllowAll: allowAll, Policies: policies}, &out)
	if err != nil {
		return err
	}
	if cmd == "inject" && len(problems) == 0 {
		if _, err := stdout.Write(out.Bytes()); err != nil {
			return err
		}
	}
	if cmd == "explain" {
		stderr = stdout // explain's answer is its output
		if output == "json" || output == "yaml" {
			if err := writeExplained(stdout, outcomes, output); err != nil {
				return err
			}
			if len(problems) > 0 {
				return errBadInput
			}
			return nil
		}
	}
	for _, oc := range outcomes {
		if oc.Injected {
			fmt.Fprintf(stderr, "%s: injected %v\n", oc.Object.ID(), oc.Decision.Spec.Kinds())
			for _, w := range oc.Warnings {
				fmt.Fprintf(stderr, "%s: %s\n", oc.Object.ID(), w)
			}
			continue
		}
		fmt.Fprintf(stderr, "%s: not injected: %s\n", oc.Object.ID(), oc.Decision.Message())
	}
	if len(problems) > 0 {
		return errBadInput
	}
	return nil
}

// explained is one pod template's decision, for --output json|yaml.
type explained struct {
	Object   string   `json:"object"`
	Injected bool     `json:"injected"`
	Faults   []string `json:"faults,omitempty"`
	Reasons  []reason `json:"reasons"`
	Warnings []string `json:"warnings,omitempty"`
}

type reason struct {
	Code    string `json:"code"`
	Policy  string `json:"policy,omitempty"`
	Message string `json:"message"`
}

func writeExplained(w io.Writer, outcomes []kubeinject.Outcome, format string) error {
	out := make([]explained, 0, len(outcomes))
	for _, oc := range outcomes {
		e := explained{Object: oc.Object.ID(), Injected: oc.Injected, Warnings: oc.Warnings, Reasons: []reason{}}
		if oc.Injected && oc.Decision.Spec != nil {
			e.Faults = oc.Decision.Spec.Kinds()
		}
		for _, r := range oc.Decision.Reasons {
			e.Reasons = append(e.Reasons, reason{Code: string(r.Code), Policy: r.Policy, Message: r.Message})
		}
		out = append(out, e)
	}
	js, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if js, err = yaml.JSONToYAML(js); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(w, strings.TrimSpace(string(js)))
	return err
}
