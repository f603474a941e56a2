// Command faultline is the offline CLI: `inject` previews what the webhook
// would add to manifests (like istioctl kube-inject); `validate` checks
// faultline's annotations. Exit status: 0 ok, 2 bad input, 1 other failure.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	inv, err := parseArgs(args, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errBadInput
	}
	if inv == nil {
		return nil // help or version, printed
	}
	objs, err := inv.read(stdin)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errBadInput
	}
	problems := workload.Validate(objs)
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if inv.cmd == "validate" {
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
	outcomes, err := kubeinject.Inject(ctx, objs, kubeinject.Options{Config: inv.cfg, AllowAll: inv.allowAll, Policies: inv.policies}, &out)
	if err != nil {
		return err
	}
	if inv.cmd == "inject" && len(problems) == 0 {
		if _, err := stdout.Write(out.Bytes()); err != nil {
			return err
		}
	}
	if inv.cmd == "explain" {
		stderr = stdout // explain's answer is its output
	}
	if err := report(stderr, outcomes, inv.output); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errBadInput
	}
	return nil
}

// report says what was decided for each pod template: a line each, or
// the decisions as JSON or YAML (explain --output).
func report(w io.Writer, outcomes []kubeinject.Outcome, output string) error {
	if output == "json" || output == "yaml" {
		return writeExplained(w, outcomes, output)
	}
	for _, oc := range outcomes {
		if oc.Injected {
			fmt.Fprintf(w, "%s: injected %v\n", oc.Object.ID(), oc.Decision.Spec.Kinds())
			if oc.Decision.ClockMethod != "" {
				fmt.Fprintf(w, "%s: clock: %s\n", oc.Object.ID(), oc.Decision.ClockMethod)
			}
			for _, warning := range oc.Warnings {
				fmt.Fprintf(w, "%s: %s\n", oc.Object.ID(), warning)
			}
			continue
		}
		fmt.Fprintf(w, "%s: not injected: %s\n", oc.Object.ID(), oc.Decision.Message())
	}
	return nil
}

// explained is one pod template's decision, for --output json|yaml.
type explained struct {
	Object   string   `json:"object"`
	Injected bool     `json:"injected"`
	Faults   []string `json:"faults,omitempty"`
	// ClockMethod: how clock faults reach the programs, and why.
	ClockMethod string   `json:"clockMethod,omitempty"`
	Reasons     []reason `json:"reasons"`
	Warnings    []string `json:"warnings,omitempty"`
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
			e.Faults, e.ClockMethod = oc.Decision.Spec.Kinds(), oc.Decision.ClockMethod
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
