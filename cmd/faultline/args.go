package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
	"github.com/faultline-dev/faultline/webhook/workload"
)

// invocation is one command line, checked: what to read and how to decide.
type invocation struct {
	cmd, file, namespace string
	// output is explain's --output: "", text, json or yaml.
	output   string
	allowAll bool
	policies []v1alpha1.ChaosPolicy
	cfg      webhook.Config
}

// parseArgs checks the command line. A nil invocation with no error means
// it was answered already (help, version); an error is the one line to
// print before exiting 2.
func parseArgs(args []string, stdout io.Writer) (*invocation, error) {
	if len(args) == 0 {
		return nil, errors.New(usage)
	}
	inv := &invocation{cmd: args[0], cfg: webhook.DefaultConfig()}
	switch inv.cmd {
	case "version", "--version":
		fmt.Fprintln(stdout, "faultline", version)
		return nil, nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, help+usage+"\n")
		return nil, nil
	case "inject", "explain", "validate":
	default:
		return nil, fmt.Errorf("faultline: unknown command %q: want inject, explain, validate or version", inv.cmd)
	}
	fs := flag.NewFlagSet("faultline "+inv.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&inv.file, "f", "", "manifest file, or - for stdin")
	fs.StringVar(&inv.namespace, "namespace", "default", "namespace for objects that do not name one")
	var mode, policiesDir string
	if inv.cmd != "validate" {
		fs.StringVar(&policiesDir, "policies", "", "directory of ChaosPolicy YAML to decide with")
		// explain's "no policy" answer suggests it, so explain takes it too.
		fs.BoolVar(&inv.allowAll, "allow-all", false, "preview as if a ChaosPolicy allowed every requested fault")
	}
	switch inv.cmd {
	case "inject":
		fs.StringVar(&mode, "sidecar", string(webhook.SidecarNative), "native or classic")
		fs.StringVar(&inv.cfg.AgentImage, "agent-image", inv.cfg.AgentImage, "agent image")
	case "explain":
		fs.StringVar(&inv.output, "output", "", "text (default), json or yaml")
		fs.StringVar(&inv.output, "o", "", "shorthand for --output")
	}
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help+usage+"\n")
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("faultline %s: %v; %s", inv.cmd, err, usage)
	}
	switch {
	case inv.file == "" || fs.NArg() > 0:
		return nil, fmt.Errorf("faultline %s: -f FILE is required and takes no other arguments; %s", inv.cmd, usage)
	case inv.output != "" && inv.output != "text" && inv.output != "json" && inv.output != "yaml":
		return nil, fmt.Errorf("faultline explain: --output %q: want text, json or yaml", inv.output)
	case inv.allowAll && policiesDir != "":
		return nil, fmt.Errorf("faultline %s: --policies and --allow-all exclude each other: decide with the policies, or preview as if one allowed everything", inv.cmd)
	}
	inv.cfg.SidecarMode = webhook.SidecarMode(mode)
	if mode == "" {
		inv.cfg.SidecarMode = webhook.SidecarNative
	}
	if policiesDir != "" {
		var err error
		if inv.policies, err = workload.ReadPolicies(policiesDir); err != nil {
			return nil, fmt.Errorf("faultline %s: %v", inv.cmd, err)
		}
	}
	if inv.cmd == "inject" {
		if err := inv.cfg.Validate(); err != nil {
			return nil, fmt.Errorf("faultline inject: %v", err)
		}
	}
	return inv, nil
}

// read reads the objects of -f (stdin for "-"); an input with none is an
// error, not a silent success.
func (inv *invocation) read(stdin io.Reader) ([]*workload.Object, error) {
	in := stdin
	if inv.file != "-" {
		f, err := os.Open(inv.file)
		if err != nil {
			return nil, fmt.Errorf("faultline %s: %v", inv.cmd, err)
		}
		defer f.Close()
		in = f
	}
	objs, err := workload.Read(in, inv.namespace)
	if err != nil {
		return nil, fmt.Errorf("faultline %s: %s: %v", inv.cmd, inv.file, err)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("faultline %s: %s: no objects in the input", inv.cmd, inv.file)
	}
	return objs, nil
}
