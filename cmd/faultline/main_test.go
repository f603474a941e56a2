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
		{"inject with a bad spec prints nothing and exits 2", []string{"inject", "--allow-all", "-f", "-"}, badPod, true, "", "clock.offset"},
		{"a missing -f is one line of usage", []string{"inject"}, "", true, "", "faultline inject: -f FILE is required"},
		{"an unknown flag is bad input", []string{"validate", "-f", "-", "--nope"}, goodPod, true, "", "flag provided but not defined: -nope"},
		{"an unknown sidecar mode names the allowed ones", []string{"inject", "-f", "-", "--sidecar", "sideways"}, goodPod, true, "", `sidecar mode "sideways": must be native or classic`},
		{"an unknown command is bad input", []string{"explode"}, "", true, "", `unknown command "explode": want inject, explain, validate or version`},
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
		{"help shows an example for each command", []string{"help"}, "", false, "kubectl get deploy -n shop -o yaml | faultline validate -f -", ""},
		{"version prints the build's version", []string{"version"}, "", false, "faultline dev", ""},
		{"explain answers as JSON", []string{"explain", "--allow-all", "-o", "json", "-f", "-"}, goodPod, false, `"object": "Pod shop/p"`, ""},
		{"explain answers as YAML", []string{"explain", "--allow-all", "--output", "yaml", "-f", "-"}, goodPod, false, "injected: true", ""},
		{"an unknown output format is bad input", []string{"explain", "--output", "xml", "-f", "-"}, goodPod, true, "", `--output "xml": want text, json or yaml`},
		{"empty input is bad input, said in one line", []string{"inject", "--allow-all", "-f", "-"}, "# nothing here\n---\n", true, "", "no objects in the input"},
		{"--policies and --allow-all exclude each other", []string{"inject", "--allow-all", "--policies", ".", "-f", "-"}, goodPod, true, "", "--policies and --allow-all exclude each other"},
		{"explain takes the --allow-all its answer suggests", []string{"explain", "--allow-all", "-f", "-"}, goodPod, false, "Pod shop/p: injected [clock]", ""},
		{"separators kubectl accepts are accepted", []string{"validate", "-f", "-"}, "---\n---\n# header\n---\n---\n" + goodPod + "---\n---\n", false, "", "1 objects, faultline annotations valid"},
		{"a List (kubectl get -o yaml) is injected item by item and stays a List", []string{"inject", "--allow-all", "-f", "-"},
			"apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(goodPod), "\n", "\n  ") + "\n", false, "kind: List", "Pod shop/p: injected [clock]"},
		{"a bad annotation inside a List is found", []string{"validate", "-f", "-"},
			"apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(badPod), "\n", "\n  ") + "\n", true, "", "clock.offset"},
		{"an opted-in ReplicationController is injected", []string{"inject", "--allow-all", "-f", "-"},
			"apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {faultline.dev/inject: \"true\"}, annotations: {faultline.dev/faults: \"clock: {offset: 5m}\"}}\n    spec: {containers: [{name: app, image: app}]}\n",
			false, "name: faultline-init", "ReplicationController shop/rc: injected [clock]"},
		{"a classic sidecar is refused for a Job, which would never complete", []string{"inject", "--allow-all", "--sidecar", "classic", "-f", "-"},
			"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, namespace: shop}\nspec:\n  template:\n    metadata: {labels: {faultline.dev/inject: \"true\"}, annotations: {faultline.dev/faults: \"clock: {offset: 5m}\"}}\n    spec: {restartPolicy: Never, containers: [{name: app, image: app}]}\n",
			false, "kind: Job", "restartPolicy Never: the pod runs to completion"},
		{"field names are case-sensitive, as the API server reads them", []string{"inject", "--allow-all", "-f", "-"},
			strings.Replace(goodPod, "metadata:", "metAdAtA:", 1), false, "metAdAtA", "not injected"},
		{"numbers keep every digit when a template has no metadata", []string{"inject", "-f", "-"},
			"apiVersion: v1\nkind: Namespace\nmetadata: {name: staging, labels: {faultline.dev/injection: always}}\n---\n" +
				"apiVersion: faultline.dev/v1alpha1\nkind: ChaosPolicy\nmetadata: {name: always-skew}\nspec: {limits: {maxClockOffset: 1m}, defaultFaults: {clock: {offset: 10s}}}\n---\n" +
				"apiVersion: batch/v1\nkind: Job\nmetadata: {name: big, namespace: staging}\nspec:\n  activeDeadlineSeconds: 9007199254740993\n  template:\n    spec: {restartPolicy: Never, containers: [{name: app, image: app}]}\n",
			false, "activeDeadlineSeconds: 9007199254740993", "Job staging/big: injected [clock]"},
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
			if strings.Contains(c.name, "prints nothing") && out.Len() > 0 {
				t.Errorf("stdout should be empty:\n%s", out.String())
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
