package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

// The init container applies only rules that work without a running
// agent: DNS faults need the agent reading its queue, which the sidecar does.
func TestInitAppliesNoDNSFaults(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec("network: [{loss: 5%}]\ndns: {failure: servfail, percent: 50%, hosts: [\"*.db.svc.cluster.local\"]}", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{}
	if err := InitNetwork(context.Background(), spec, rec, netfault.Exemptions{}); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rec.Calls, "")
	if strings.Contains(all, netfault.ChainDNSQueue) || strings.Contains(all, "-j REDIRECT") {
		t.Errorf("init installed DNS rules:\n%s", all)
	}
	if !strings.Contains(all, "-A FAULTLINE-OUTPUT -j NFQUEUE --queue-num 4300") {
		t.Errorf("init did not apply the (egress) loss rule:\n%s", all)
	}
}

// When the kernel refuses the rules, nothing of the fault keeps running:
// no DNS responder, no delay queue, no shaping left half-applied (issue 12
// item 15: they used to stay up after a failed apply).
func TestAFailedApplyLeavesNothingRunning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (the DNS queue and its raw socket): run as make test does")
	}
	spec, errs := v1alpha1.ParseFaultSpec("network: [{bandwidth: 1Mbit}]\ndns: {failure: servfail, percent: 50%, hosts: [\"*.db.svc.cluster.local\"]}", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{Fail: map[string]error{"iptables-nft-restore": errors.New("iptables-restore: Permission denied (you must be root)")}}
	d := newNetDriver(context.Background(), spec, rec, netfault.Exemptions{})
	d.opts.Interface = "eth0"
	if _, _, err := d.set(context.Background(), true); err == nil {
		t.Fatal("apply succeeded against a runner that refuses iptables-restore")
	}
	if d.dns != nil {
		t.Error("the DNS queue is still read after the failed apply")
	}
	if d.engine.Load() != nil {
		t.Error("the delay engine is still running after the failed apply")
	}
	calls := strings.Join(rec.Calls, "")
	if i := strings.LastIndex(calls, "iptables-nft-restore"); i < 0 || !strings.Contains(calls[i:], "$ tc qdisc del") && !strings.Contains(calls[i:], "iptables-nft-save") {
		t.Errorf("no clean-up after the failed apply:\n%s", calls)
	}
	// The queue was let go: a retry can bind it again.
	if _, _, err := d.set(context.Background(), true); err == nil || strings.Contains(err.Error(), "NFQUEUE") {
		t.Errorf("retry: %v", err)
	}
}

// A rule whose host does not resolve yet (a Service created after the pod)
// waits while the others apply; once it resolves, refresh applies it too.
func TestARuleWaitingForItsHostIsAppliedOnceItResolves(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec("network: [{partition: true, to: ['db.shop.svc:5432']}, {loss: 5%, to: [10.0.0.0/8]}]", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{}
	d := newNetDriver(context.Background(), spec, rec, netfault.Exemptions{})
	exists := false
	d.opts.Resolve = func(host string) ([]netip.Addr, error) {
		if !exists {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("10.96.5.5")}, nil
	}
	if _, _, err := d.set(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := d.unresolved(); err == nil || !strings.Contains(err.Error(), "network[0].to: resolving db.shop.svc") {
		t.Fatalf("unresolved = %v", err)
	}
	if !strings.Contains(d.plan.Restore, "-d 10.0.0.0/8 -j NFQUEUE") || strings.Contains(d.plan.Restore, "10.96.5.5") {
		t.Fatalf("want the loss rule alone applied:\n%s", d.plan.Restore)
	}
	if changed, err := d.refresh(context.Background()); err != nil || changed {
		t.Fatalf("refresh before the host exists: changed %v, %v", changed, err)
	}
	exists = true
	if changed, err := d.refresh(context.Background()); err != nil || !changed {
		t.Fatalf("refresh after the host exists: changed %v, %v", changed, err)
	}
	if d.unresolved() != nil || !strings.Contains(d.plan.Restore, "10.96.5.5") {
		t.Fatalf("the waiting rule was not applied: %v\n%s", d.unresolved(), d.plan.Restore)
	}
}

// Rule hosts are looked up the way the pod's resolver would (search list,
// ndots) and again when the first answer's TTL runs out, not on a fixed
// timer: a real DNS server on loopback answers with TTL 3 s. A dual-stack
// Service has both an A and an AAAA record: both are returned.
func TestHostsAreLookedUpAgainWhenTheirTTLRunsOut(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "10.96.5.5"
	var mu sync.Mutex
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == "db.shop.svc.cluster.local." {
			mu.Lock()
			rr, _ := dns.NewRR("db.shop.svc.cluster.local. 3 IN A " + addr)
			mu.Unlock()
			if q.Question[0].Qtype == dns.TypeAAAA {
				rr, _ = dns.NewRR("db.shop.svc.cluster.local. 5 IN AAAA fd00:96::5")
			}
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	r := newTTLResolver("/nonexistent")
	r.conf = &dns.ClientConfig{Servers: []string{"127.0.0.1"}, Port: port, Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Ndots: 5}

	got, err := r.Resolve("db.shop.svc")
	if err != nil || fmt.Sprint(got) != "[10.96.5.5 fd00:96::5]" {
		t.Fatalf("Resolve = %v, %v; want both families", got, err)
	}
	if next := r.next(); next != 3*time.Second {
		t.Errorf("next lookup in %s, want the answer's TTL, 3s", next)
	}
	if next := r.next(); next != defaultRefresh {
		t.Errorf("with nothing looked up since, next lookup in %s, want %s", next, defaultRefresh)
	}
	mu.Lock()
	addr = "10.96.5.6" // the Service moved
	mu.Unlock()
	if got, _ := r.Resolve("db.shop.svc"); len(got) != 2 || got[0].String() != "10.96.5.6" {
		t.Errorf("after the move, Resolve = %v", got)
	}
}

// A kernel with IPv6 but without usable ip6tables (an old node, an image
// without the tools) must not cost the pod its IPv4 faults: the agent
// treats it as IPv4-only and says why IPv6 targets are left out.
func TestIPv4FaultsDoNotDependOnIPv6Tables(t *testing.T) {
	if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
		t.Fatal("this test needs a kernel with IPv6 (/proc/net/if_inet6)")
	}
	spec, errs := v1alpha1.ParseFaultSpec("network: [{partition: true, to: ['10.9.0.0/16', '[fd00:9::1]:5432']}]", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := &netfault.Recorder{Fail: map[string]error{"ip6tables-nft-save": errors.New("ip6tables v1.8.9 (nf_tables): table filter: Address family not supported")}}
	d := newNetDriver(context.Background(), spec, rec, netfault.Exemptions{})
	if d.opts.Caps.IPv6 {
		t.Fatal("IPv6 faults planned although ip6tables cannot run")
	}
	if err := d.build(); err != nil {
		t.Fatal(err)
	}
	if d.plan.Restore6 != "" || !strings.Contains(d.plan.Restore, "-d 10.9.0.0/16") {
		t.Errorf("want the IPv4 rules alone:\n%s\n%s", d.plan.Restore, d.plan.Restore6)
	}
	if refused := strings.Join(d.plan.Refused, "; "); !strings.Contains(refused, "[fd00:9::1]:5432: this pod has no IPv6 (or no usable ip6tables)") {
		t.Errorf("the IPv6 target's refusal is missing: %q", refused)
	}
}

// A name whose IPv6 address moved while its IPv4 one stayed must be applied
// again: the refresh compared only the IPv4 payloads once.
func TestARefreshAppliesWhenOnlyTheIPv6AddressMoved(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec("network: [{partition: true, to: ['db.shop.svc:5432']}]", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	v6 := netip.MustParseAddr("fd00:96::5")
	resolve := func(string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.96.5.5"), v6}, nil
	}
	d := &netDriver{runner: &netfault.Recorder{}, spec: spec, opts: netfault.Options{Resolve: resolve, Caps: netfault.Capabilities{IPv6: true}}}
	if err := d.build(); err != nil {
		t.Fatal(err)
	}
	if changed, err := d.refresh(context.Background()); changed || err != nil {
		t.Fatalf("nothing moved, yet refresh = %v, %v", changed, err)
	}
	v6 = netip.MustParseAddr("fd00:96::6")
	if changed, err := d.refresh(context.Background()); !changed || err != nil {
		t.Fatalf("the IPv6 address moved, refresh = %v, %v; want the rules applied again", changed, err)
	}
	if !strings.Contains(d.plan.Restore6, "fd00:96::6") {
		t.Errorf("the new IPv6 rules name the old address:\n%s", d.plan.Restore6)
	}
}
