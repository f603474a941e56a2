package sidecar

import (
	"context"
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
