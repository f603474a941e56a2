package netfault

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/hack/golden"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func testOptions() Options {
	return Options{
		Exempt: Exemptions{Ports: []int32{19091, 19091}, ProbePorts: []int32{8080, 8080},
			ProbeSources: []netip.Addr{netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("192.168.1.5")}},
		APIServer: []netip.Prefix{netip.MustParsePrefix("10.96.0.1/32")},
		Resolve: func(host string) ([]netip.Addr, error) {
			switch host {
			case "postgres.db.svc":
				return []netip.Addr{netip.MustParseAddr("10.1.0.12"), netip.MustParseAddr("10.1.0.11")}, nil
			case "kubernetes.default.svc":
				return []netip.Addr{netip.MustParseAddr("10.96.0.1")}, nil
			case "v6only.svc":
				return []netip.Addr{netip.MustParseAddr("fd00::1")}, nil
			}
			return nil, errors.New("no such host")
		},
	}
}

// The builder is pure: goldens pin the exact payload for each kind of rule.
func TestBuildAsTheGoldenFilesShow(t *testing.T) {
	specs, _ := filepath.Glob("testdata/build/*.spec.yaml")
	if len(specs) == 0 {
		t.Fatal("no specs")
	}
	for _, f := range specs {
		name := strings.TrimSuffix(filepath.Base(f), ".spec.yaml")
		t.Run(strings.ReplaceAll(name, "-", " "), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			spec, errs := v1alpha1.ParseFaultSpec(string(data), nil)
			if len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			opts := testOptions()
			if strings.HasPrefix(name, "bandwidth") {
				opts.Interface = "eth0"
			}
			if strings.HasPrefix(name, "http") {
				opts.HTTP = HTTPProxy{InPort: 19092, OutPort: 19093}
			}
			// Every kernel faultline meets has NFQUEUE but one golden's.
			opts.Caps.NFQueue = !strings.HasSuffix(name, "without-nfqueue")
			if strings.Contains(name, "dual-stack") {
				opts.Caps.IPv6 = true
				opts.Exempt.ProbeSources = append(opts.Exempt.ProbeSources, netip.MustParseAddr("fd00:10:244::1"))
				opts.APIServer = append(opts.APIServer, netip.MustParsePrefix("fd00:10:96::1/128"))
			}
			plan, err := Build(spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# active: %v\n", plan.Active)
			for _, d := range plan.Delays {
				fmt.Fprintf(&b, "# engine queue %d: delay %s, jitter %s %s, correlation %g, reorder %g gap %d, corrupt %g, duplicate %g, drop %g\n",
					d.Queue, d.Delay, d.Jitter, d.Dist, d.Correlation, d.Reorder, d.Gap, d.Corrupt, d.Duplicate, d.Drop)
			}
			for _, r := range plan.Refused {
				fmt.Fprintf(&b, "# refused: %s\n", r)
			}
			for i, to := range plan.HTTPTo {
				fmt.Fprintf(&b, "# http[%d] reads %v\n", i, to)
			}
			b.WriteString(plan.Restore)
			b.WriteString(plan.RestoreMangle)
			b.WriteString(plan.RestoreNat)
			if plan.Restore6 != "" {
				b.WriteString("# ip6tables\n" + plan.Restore6 + plan.RestoreMangle6 + plan.RestoreNat6)
			}
			for _, c := range plan.Shape {
				b.WriteString(strings.Join(c, " ") + "\n")
			}
			golden.Assert(t, filepath.Join("testdata", "build", name+".golden"), []byte(b.String()))
		})
	}
	golden.CheckStale(t, "testdata/build/*.golden")
}

// A rule whose host does not resolve is left out, and only that rule: the
// others apply now and the agent retries (issue 12 item 10). A rule whose
// exception does not resolve is left out whole: without its exception it
// would be more chaos than asked.
func TestAnUnresolvableHostLeavesOutOnlyItsRule(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec(`network:
  - {partition: true, to: [nowhere.svc]}
  - {loss: 5%, to: [10.0.0.0/8]}
  - {loss: 10%, except: [gone.svc]}
  - {bandwidth: 1Mbit, to: [nowhere.svc]}
  - {bandwidth: 2Mbit, to: [postgres.db.svc]}`, nil)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	o := testOptions()
	o.Interface = "eth0"
	plan, err := Build(spec, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"network[0].to: resolving nowhere.svc: no such host", "network[2].except: resolving gone.svc: no such host",
		"network[3].to: resolving nowhere.svc: no such host"}
	if !slices.Equal(plan.Unresolved, want) {
		t.Errorf("unresolved = %q, want %q", plan.Unresolved, want)
	}
	if got := strings.Count(plan.Restore, "-j DROP"); got != 1 || !strings.Contains(plan.Restore, "-s 10.0.0.0/8 -m statistic") {
		t.Errorf("want only rule 1's loss (no partition, rule 2 left out whole):\n%s", plan.Restore)
	}
	shape := fmt.Sprint(plan.Shape)
	if !strings.Contains(shape, "rate 2000000bit") || strings.Contains(shape, "rate 1000000bit") {
		t.Errorf("want only the resolvable bandwidth rule shaped: %s", shape)
	}
}

// A name is resolved once per plan: the iptables rules, the tc filters and
// the API server exemption agree even when its addresses change between
// lookups (a DNS answer rotating, a Service moving mid-build).
func TestAHostIsResolvedOncePerPlanSoRulesAndFiltersAgree(t *testing.T) {
	spec, errs := v1alpha1.ParseFaultSpec(`network:
  - {delay: 100ms, bandwidth: 1Mbit, to: [moving.svc]}`, nil)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	o := testOptions()
	o.Interface, o.Caps.NFQueue = "eth0", true
	lookups := 0
	o.Resolve = func(string) ([]netip.Addr, error) {
		lookups++
		return []netip.Addr{netip.AddrFrom4([4]byte{10, 1, 0, byte(lookups)})}, nil
	}
	plan, err := Build(spec, o)
	if err != nil {
		t.Fatal(err)
	}
	if lookups != 1 {
		t.Errorf("moving.svc looked up %d times for one plan, want 1", lookups)
	}
	shape := fmt.Sprint(plan.Shape)
	if !strings.Contains(plan.Restore, "-s 10.1.0.1/32") || !strings.Contains(shape, "10.1.0.1/32") {
		t.Errorf("iptables and tc disagree on moving.svc:\n%s\n%s", plan.Restore, shape)
	}
}

// Apply and Remove read once and write once; the recorded commands show the
// jump added when missing, de-duplicated after a crash, and nothing of other
// owners named.
func TestApplyAndRemoveCommands(t *testing.T) {
	spec, _ := v1alpha1.ParseFaultSpec("network: [{partition: true, to: [':5432/tcp']}]", nil)
	plan, err := Build(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const save = "iptables-nft-save"
	nat := "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	clean := "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:OTHER - [0:0]\n-A INPUT -j OTHER\nCOMMIT\n" + nat
	const gate = "-m set --match-set faultline-alive dst "
	older := "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:FAULTLINE-INPUT - [0:0]\n:FAULTLINE-OUTPUT - [0:0]\n:OTHER - [0:0]\n" +
		"-A INPUT -m comment --comment faultline -j FAULTLINE-INPUT\n-A INPUT -j OTHER\n-A OUTPUT -m comment --comment faultline -j FAULTLINE-OUTPUT\nCOMMIT\n" + nat
	applied := strings.ReplaceAll(older, "-m comment", gate+"-m comment")
	crashed := strings.Replace(applied, "-A INPUT -j OTHER\n", "-A INPUT -j OTHER\n-A INPUT "+gate+"-m comment --comment faultline -j FAULTLINE-INPUT\n", 1)
	cases := []struct {
		name, state string
		remove      bool
	}{
		{"apply to a clean netns", clean, false},
		{"apply again changes only the chains", applied, false},
		{"apply after a crash left two jumps", crashed, false},
		{"apply over ungated jumps an older agent left", older, false},
		{"remove everything faultline made", crashed, true},
		{"remove when nothing is there", clean, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &Recorder{Out: map[string]string{save: c.state}}
			if c.remove {
				err = Remove(context.Background(), rec, "")
			} else {
				err = Apply(context.Background(), rec, plan)
			}
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, filepath.Join("testdata", "commands", strings.ReplaceAll(c.name, " ", "-")+".golden"), []byte(strings.Join(rec.Calls, "")))
		})
	}
	golden.CheckStale(t, "testdata/commands/*.golden")
}

// HTTP redirects go to the nat table in the same transaction as the filter
// rules, their jumps gated by the HTTP switch set; the nat chain an older
// agent made for DNS is removed in the same section.
func TestApplyAndRemoveHTTPCommands(t *testing.T) {
	spec, _ := v1alpha1.ParseFaultSpec("http: [{direction: inbound, port: 8080, abort: {status: 503}}]", nil)
	plan, err := Build(spec, Options{HTTP: HTTPProxy{InPort: 19092, OutPort: 19093}})
	if err != nil {
		t.Fatal(err)
	}
	const save = "iptables-nft-save"
	filter := "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	oldDNS := filter + "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:FAULTLINE-DNS - [0:0]\n" +
		"-A OUTPUT -m comment --comment faultline -j FAULTLINE-DNS\n-A FAULTLINE-DNS -p udp --dport 53 -j REDIRECT --to-ports 15353\nCOMMIT\n"
	applied := filter + "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:FAULTLINE-HTTP-IN - [0:0]\n:FAULTLINE-HTTP-OUT - [0:0]\n" +
		"-A PREROUTING -m set --match-set faultline-alive-http dst -m comment --comment faultline -j FAULTLINE-HTTP-IN\n" +
		"-A OUTPUT -m set --match-set faultline-alive-http dst -m comment --comment faultline -j FAULTLINE-HTTP-OUT\n" +
		"-A FAULTLINE-HTTP-IN -p tcp --dport 8080 -j REDIRECT --to-ports 19092\nCOMMIT\n"
	for _, c := range []struct {
		name, state string
		remove      bool
	}{
		{"http apply over an older agent's DNS redirect", oldDNS, false},
		{"http apply again changes only the chains", applied, false},
		{"http remove", applied, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &Recorder{Out: map[string]string{save: c.state}}
			if c.remove {
				err = Remove(context.Background(), rec, "", NFT)
			} else {
				err = Apply(context.Background(), rec, plan)
			}
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, filepath.Join("testdata", "http-commands", strings.ReplaceAll(c.name, " ", "-")+".golden"), []byte(strings.Join(rec.Calls, "")))
		})
	}
	golden.CheckStale(t, "testdata/http-commands/*.golden")
}
