package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/hack/testenv"
)

// The agent never keeps a pod from starting: init reports what it could not
// do in the termination message and exits 0, whatever the input.
func TestInitFailsOpen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root for ip netns and iptables")
	}
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	ns := "fl-failopen-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, tc := range []struct{ name, spec, want, applied string }{
		{"a destination that does not resolve is reported, the other rules apply, and the pod starts",
			`{"network":[{"partition":true,"to":["db.nowhere.invalid:5432"]},{"loss":"5%","to":["10.0.0.0/8"]}]}`, "network: network[0].to", "-d 10.0.0.0/8 -j NFQUEUE --queue-num 4301"},
		{"a spec the agent cannot parse is reported, and the pod starts",
			`{"network":[{"delay":"a lot"}]}`, "delay", ""},
		{"a clock fault without a shim to install is reported, and the pod starts",
			`{"clock":{"offset":"+5m"}}`, "clock: ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := filepath.Join(t.TempDir(), "termination-log")
			cmd := exec.Command("ip", "netns", "exec", ns, agent, "init", "--termination-log="+msg,
				"--shim-src=/nonexistent/libfaultline-time.so", "--time-file="+filepath.Join(t.TempDir(), "time"))
			cmd.Env = append(os.Environ(), "FAULTLINE_SPEC="+tc.spec)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("init exited with %v, want 0 (fail open)\n%s", err, out)
			}
			b, err := os.ReadFile(msg)
			if err != nil {
				t.Fatalf("no termination message: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(b), TerminationPrefix) || !strings.Contains(string(b), tc.want) {
				t.Errorf("termination message %q, want %q...%q", b, TerminationPrefix, tc.want)
			}
			rules, _ := exec.Command("ip", "netns", "exec", ns, "iptables-save").Output()
			drops := strings.Count(string(rules), "-j DROP") + strings.Count(string(rules), "-j REJECT") + strings.Count(string(rules), "-j NFQUEUE")
			switch {
			case tc.applied == "" && strings.Contains(string(rules), "FAULTLINE"):
				t.Errorf("rules left by a failed init:\n%s", rules)
			case tc.applied != "" && (!strings.Contains(string(rules), tc.applied) || drops != 1):
				t.Errorf("want only the rule that resolved applied (%q):\n%s", tc.applied, rules)
			}
			// The namespace is the test's own: start the next case empty.
			_ = exec.Command("ip", "netns", "exec", ns, "iptables", "-F").Run()
			_ = exec.Command("ip", "netns", "exec", ns, "iptables", "-X").Run()
		})
	}
}

// The --zap-* log flags belong to the subcommand (they were bound to
// another flag set, so using one made the agent exit 2).
func TestLogFlagsAreAccepted(t *testing.T) {
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	cmd := exec.Command(agent, "init", "--zap-log-level=debug", "--zap-devel=false")
	cmd.Env = append(os.Environ(), "FAULTLINE_SPEC={}")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init with --zap-log-level: %v\n%s", err, out)
	}
}
