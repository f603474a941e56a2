package sidecar

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

// The init container applies only rules that work without a running
// agent: its DNS responder exits with it, so a DNS redirect would fail every
// lookup until the sidecar takes over.
func TestInitAppliesNoDNSRedirect(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec("network: [{loss: 5%}]\ndns: {failure: servfail, percent: 50%, hosts: [\"*.db.svc.cluster.local\"]}", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{}
	if err := InitNetwork(context.Background(), spec, rec, netfault.Exemptions{}); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rec.Calls, "")
	if strings.Contains(all, "-j REDIRECT") {
		t.Errorf("init installed a DNS redirect:\n%s", all)
	}
	if !strings.Contains(all, "-A FAULTLINE-INPUT -m statistic") {
		t.Errorf("init did not apply the loss rule:\n%s", all)
	}
}

// When the kernel refuses the rules, nothing of the fault keeps running:
// no DNS responder, no delay queue, no shaping left half-applied (issue 12
// item 15: they used to stay up after a failed apply).
func TestAFailedApplyLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := ResolvConf
	ResolvConf = resolv
	t.Cleanup(func() { ResolvConf = old })
	spec, errs := v1alpha1.ParseFaultSpec("network: [{bandwidth: 1Mbit}]\ndns: {failure: servfail, percent: 50%, hosts: [\"*.db.svc.cluster.local\"]}", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{Fail: map[string]error{"iptables-restore": errors.New("iptables-restore: Permission denied (you must be root)")}}
	d := newNetDriver(context.Background(), spec, rec, netfault.Exemptions{})
	d.opts.Interface = "eth0"
	if _, _, err := d.set(context.Background(), true); err == nil {
		t.Fatal("apply succeeded against a runner that refuses iptables-restore")
	}
	if d.dns != nil {
		t.Error("the DNS responder is still running after the failed apply")
	}
	if d.engine.Load() != nil {
		t.Error("the delay engine is still running after the failed apply")
	}
	calls := strings.Join(rec.Calls, "")
	if i := strings.LastIndex(calls, "iptables-restore"); i < 0 || !strings.Contains(calls[i:], "$ tc qdisc del") && !strings.Contains(calls[i:], "iptables-save") {
		t.Errorf("no clean-up after the failed apply:\n%s", calls)
	}
	// The responder's port is free again: a retry can start it.
	if _, _, err := d.set(context.Background(), true); err == nil || strings.Contains(err.Error(), "address already in use") {
		t.Errorf("retry: %v", err)
	}
}
