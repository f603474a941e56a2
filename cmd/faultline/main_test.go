package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

const goodPod = `apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
  labels: {faultline.dev/inject: "true"}
  annotations: {faultline.dev/faults: "clock: {offset: 5m}"}
spec:
  containers: [{name: app, image: app}]
`

func TestCLIExitCodesAndMessages(t *testing.T) {
	badPod := strings.Replace(goodPod, "offset: 5m", "offset: 5", 1)
	cases := []struct {
		name     string
		args     []string
		stdin    string
		badInput bool
		stdout   string
		stderr   string
	}{
		{"validate accepts a good pod", []string{"validate", "-f", "-"}, goodPod, false, "", "1 objects, faultline annotations valid"},
		{"validate names object, annotation, field, value and form", []string{"validate", "-f", "-"}, badPod, true, "",
			`Pod shop/p: metadata.annotations[faultline.dev/faults].clock.offset: Invalid value: "5": got a number, must be a string with its unit`},
		{"inject without a policy explains how to preview", []string{"inject", "-f", "-"}, goodPod, false, "kind: Pod", "Pod shop/p: not injected: no ChaosPolicy given (--policies DIR or ChaosPolicy documents in the input); pass --allow-all"},
		{"inject --allow-all injects", []string{"inject", "-f", "-", "--allow-all"}, goodPod, false, "name: faultline-init", "Pod shop/p: injected [clock]"},
		{"inject with a bad spec prints the object and exits 2", []string{"inject", "--allow-all", "-f", "-"}, badPod, true, "kind: Pod", "clock.offset"},
		{"a missing -f is one line of usage", []string{"inject"}, "", true, "", "faultline inject: -f FILE is required"},
		{"an unknown flag is bad input", []string{"validate", "-f", "-", "--nope"}, goodPod, true, "", "flag provided but not defined: -nope"},
		{"an unknown sidecar mode names the allowed ones", []string{"inject", "-f", "-", "--sidecar", "sideways"}, goodPod, true, "", `sidecar mode "sideways": must be native or classic`},
		{"an unknown command is bad input", []string{"explode"}, "", true, "", `unknown command "explode": want inject, explain or validate`},
		{"YAML that is not an object is bad input", []string{"validate", "-f", "-"}, "just a string", true, "", "document 1"},
		{"explain with a policy says which policy allowed it", []string{"explain", "-f", "-"}, goodPod + `---
apiVersion: faultline.dev/v1alpha1
kind: ChaosPolicy
metadata: {name: shop-clock}
spec: {limits: {maxClockOffset: 10m}}
`, false, "Pod shop/p: injected [clock]", ""},
		{"explain names the limit a pod breaks", []string{"explain", "-f", "-"}, goodPod + `---
apiVersion: faultline.dev/v1alpha1
kind: ChaosPolicy
metadata: {name: shop-tight}
spec: {limits: {maxClockOffset: 1m}}
`, false, "not injected: policy shop-tight: clock.offset 5m exceeds maxClockOffset 1m", ""},
		{"a missing policies directory is bad input", []string{"inject", "-f", "-", "--policies", "/nonexistent"}, goodPod, true, "", "--policies: open /nonexistent"},
		{"help is not an error", []string{"--help"}, "", false, "usage: faultline inject", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), c.args, strings.NewReader(c.stdin), &out, &errOut)
			if got := errors.Is(err, errBadInput); got != c.badInput {
				t.Fatalf("bad input = %v (err %v), want %v; stderr: %s", got, err, c.badInput, errOut.String())
			}
			if c.badInput && strings.Count(strings.TrimSpace(errOut.String()), "\n") > 0 && !strings.Contains(c.name, "inject with") {
				t.Errorf("want one line on stderr, got:\n%s", errOut.String())
			}
			if !strings.Contains(out.String(), c.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", c.stdout, out.String())
			}
			if !strings.Contains(errOut.String(), c.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", c.stderr, errOut.String())
			}
		})
	}
}
