package v1alpha1

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

var annotation = AnnotationPath(AnnotationFaults)

func TestParseFaultSpecAcceptsTheDesignExamples(t *testing.T) {
	cases := []struct {
		name, in string
		check    func(*testing.T, *FaultSpec)
	}{
		{"a delay with jitter and correlation defaults to egress", `
network:
  - delay: 100ms
    jitter: 20ms
    correlation: 25%
`, func(t *testing.T, s *FaultSpec) {
			if s.Network[0].Direction != DirectionEgress {
				t.Errorf("direction = %q, want egress", s.Network[0].Direction)
			}
		}},
		{"destinations are canonicalized", `{"network":[{"loss":"5%","to":["10.0.0.0/8","Postgres.DB.svc:5432",":53/UDP","[fd00::1]:443"]}]}`,
			func(t *testing.T, s *FaultSpec) {
				got := strings.Join(s.Network[0].To, " ")
				if want := "10.0.0.0/8 postgres.db.svc:5432 :53/udp [fd00::1]:443"; got != want {
					t.Errorf("to = %q, want %q", got, want)
				}
			}},
		{"a partition with reset is one rule", "network: [{partition: true, reset: true, direction: both}]", nil},
		{"dns percent defaults to 100%", "dns: {failure: nxdomain, hosts: ['*.db.svc.cluster.local']}", func(t *testing.T, s *FaultSpec) {
			if s.DNS.Percent != "100%" {
				t.Errorf("percent = %q", s.DNS.Percent)
			}
		}},
		{"a clock offset and drift with a schedule", "clock: {offset: +5m, drift: -200ppm}\nschedule: {every: 10m, for: 2m, jitter: 30s}", nil},
		{"bandwidth units are case-insensitive", "network: [{bandwidth: 1Mbit}, {bandwidth: 512kbit}, {bandwidth: 1GBIT}]", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, errs := ParseFaultSpec(c.in, annotation)
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs.ToAggregate())
			}
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

// Every parse error names the field, the value and the allowed form.
func TestParseFaultSpecRejects(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"an empty annotation", "  ", `metadata.annotations[faultline.dev/faults]: Required value: a FaultSpec`},
		{"a spec with no faults", "schedule: {every: 1m, for: 10s}", `Required value: at least one of network, dns, clock`},
		{"broken YAML", "network: [", `Invalid value: not valid YAML or JSON`},
		{"a list instead of a mapping", "[1, 2]", `got a list, must be a mapping with keys network, dns, clock, http, schedule`},
		{"a misspelt field, listing the allowed ones", "network: [{dealy: 1ms}]", `network[0].dealy: Forbidden: unknown field; allowed here: delay, jitter,`},
		{"an unknown top-level field", "netwrok: []", `[faultline.dev/faults].netwrok: Forbidden: unknown field; allowed here: network, dns, clock, http, schedule`},
		{"a duplicated YAML key", "clock: {offset: 1s, offset: 2s}", `already set in map`},
		{"a duplicated JSON key", `{"clock":{"offset":"1s","offset":"2s"}}`, `already set in map`},
		{"a number without a unit", "network: [{delay: 100}]", `network[0].delay: Invalid value: "100": got a number, must be a string with its unit`},
		{"a string for a boolean", `{"network":[{"partition":"yes"}]}`, `network[0].partition: Invalid value: got a string, must be true or false`},
		{"a mapping for the rule list", "network: {delay: 1ms}", `network: Invalid value: got a mapping, must be a list`},
		{"a delay with a space", "network: [{delay: 100 ms}]", `network[0].delay: Invalid value: "100 ms": want a duration such as 100ms`},
		{"a negative delay", "network: [{delay: -5ms}]", `network[0].delay: Invalid value: "-5ms": want a duration such as 100ms, 1.5s or 2m without a sign`},
		{"a zero delay", "network: [{delay: 0s}]", `more than 0 and at most 1m0s`},
		{"a delay over a minute", "network: [{delay: 2m}]", `network[0].delay: Invalid value: "2m"`},
		{"jitter without delay", "network: [{jitter: 5ms, loss: 1%}]", `network[0].jitter: Invalid value: "5ms": jitter needs delay`},
		{"jitter larger than delay", "network: [{delay: 5ms, jitter: 6ms}]", `no larger than delay (5ms)`},
		{"correlation without delay or loss", "network: [{correlation: 5%, bandwidth: 1mbit}]", `correlation needs delay or loss`},
		{"a distribution without jitter", "network: [{delay: 5ms, distribution: normal}]", `network[0].distribution: Invalid value: "normal": distribution needs jitter`},
		{"an unknown distribution", "network: [{delay: 5ms, jitter: 1ms, distribution: gaussian}]", `want uniform, normal, pareto or paretonormal`},
		{"reorder without delay", "network: [{reorder: 5%}]", `network[0].reorder: Invalid value: "5%": reorder needs delay`},
		{"gap without reorder", "network: [{delay: 10ms, gap: 5}]", `network[0].gap: Invalid value: 5: gap needs reorder`},
		{"gap past the bound", "network: [{delay: 10ms, reorder: 5%, gap: 20000}]", `network[0].gap: Invalid value: 20000: want a whole number of packets from 1 to 10000`},
		{"gap as a string", "network: [{delay: 10ms, reorder: 5%, gap: \"5\"}]", `network[0].gap: Invalid value: got a string, must be a whole number, such as 5`},
		{"gap with a fraction", "network: [{delay: 10ms, reorder: 5%, gap: 2.5}]", `network[0].gap: Invalid value: "2.5": got a number 2.5, must be a whole number, such as 5`},
		{"loss without a percent sign", "network: [{loss: '0.05'}]", `network[0].loss: Invalid value: "0.05": want a percentage such as 5% or 0.1% (the % sign is required)`},
		{"loss over 100%", "network: [{loss: 150%}]", `between 0% and 100%`},
		{"loss as NaN", "network: [{loss: NaN%}]", `network[0].loss: Invalid value: "NaN%"`},
		{"loss in exponent form", "network: [{loss: 1e1%}]", `network[0].loss: Invalid value: "1e1%"`},
		{"bandwidth in bytes", "network: [{bandwidth: 1Mbps}]", `network[0].bandwidth: Invalid value: "1Mbps": want a rate such as 512kbit, 1Mbit or 1Gbit`},
		{"bandwidth below 1kbit", "network: [{bandwidth: 10bit}]", `between 1kbit and 100Gbit`},
		{"an unknown direction", "network: [{loss: 1%, direction: up}]", `network[0].direction: Unsupported value: "up": supported values: "egress", "ingress", "both"`},
		{"a rule with no fault", "network: [{direction: egress}]", `network[0]: Required value: at least one of delay, loss`},
		{"a partition mixed with delay", "network: [{partition: true, delay: 1ms}]", `network[0].partition: Invalid value: true: a partition or reset drops every matching packet`},
		{"a CIDR with host bits", "network: [{loss: 1%, to: [10.0.0.1/8]}]", `network[0].to[0]: Invalid value: "10.0.0.1/8": CIDR "10.0.0.1/8" has host bits set: want 10.0.0.0/8`},
		{"port zero", "network: [{loss: 1%, to: ['db:0']}]", `network[0].to[0]: Invalid value: "db:0": port "0": want a number from 1 to 65535`},
		{"a port too large", "network: [{loss: 1%, except: [':70000']}]", `network[0].except[0]: Invalid value: ":70000"`},
		{"a host with underscores", "network: [{loss: 1%, to: [bad_host]}]", `network[0].to[0]: Invalid value: "bad_host": host "bad_host": want a destination such as`},
		{"a target that is only a colon", "network: [{loss: 1%, to: [':']}]", `network[0].to[0]: Invalid value: ":"`},
		{"dns without failure", "dns: {hosts: [a.b]}", `dns.failure: Required value: one of servfail, nxdomain, timeout`},
		{"an unknown dns failure", "dns: {failure: refused, hosts: [a.b]}", `dns.failure: Unsupported value: "refused"`},
		{"dns without hosts", "dns: {failure: timeout}", `dns.hosts: Required value`},
		{"a wildcard in the middle of a dns host", "dns: {failure: timeout, hosts: ['a.*.b']}", `dns.hosts[0]: Invalid value: "a.*.b"`},
		{"a dns percent of zero", "dns: {failure: timeout, percent: 0%, hosts: [a]}", `dns.percent: Invalid value: "0%": want more than 0%`},
		{"an empty clock", "clock: {}", `clock: Required value: at least one of offset, drift`},
		{"a clock offset without unit", "clock: {offset: '+5'}", `clock.offset: Invalid value: "+5": want a signed duration such as +5m or -30s`},
		{"a clock offset over a year", "clock: {offset: 9000h}", `within ±8760h0m0s`},
		{"drift without ppm", "clock: {drift: '200'}", `clock.drift: Invalid value: "200": want a signed rate in ppm such as 200ppm or -50ppm`},
		{"drift that stops the clock", "clock: {drift: -1000000ppm}", `within ±500000ppm`},
		{"a schedule without every", "clock: {offset: 1s}\nschedule: {for: 1m}", `schedule.every: Required value`},
		{"a schedule longer than its period", "clock: {offset: 1s}\nschedule: {every: 1m, for: 2m}", `schedule.for: Invalid value: "2m": want a duration no longer than every (1m)`},
		{"a schedule jitter as long as its period", "clock: {offset: 1s}\nschedule: {every: 1m, for: 10s, jitter: 1m}", `schedule.jitter: Invalid value: "1m"`},
		{"a spec over 32 KiB", "clock: {offset: 1s}\n#" + strings.Repeat("x", MaxSpecBytes), `Too long: may not be more than 32768`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, errs := ParseFaultSpec(c.in, annotation)
			if len(errs) == 0 {
				t.Fatalf("parsed %+v, want an error containing %q", s, c.want)
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, c.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", got, c.want)
			}
			if !strings.Contains(errs.ToAggregate().Error(), "metadata.annotations[faultline.dev/faults]") {
				t.Errorf("error does not name the annotation: %v", errs.ToAggregate())
			}
		})
	}
}

func TestParseFaultSpecReportsEveryProblemAtOnce(t *testing.T) {
	_, errs := ParseFaultSpec("network: [{delay: 1x, loss: 200%}]\nclock: {drift: fast}", annotation)
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(errs), errs.ToAggregate())
	}
}

// FuzzParseFaultSpec: no input may panic, and whatever parses must survive a
// JSON round trip unchanged (the webhook hands the agent the normalized JSON).
func FuzzParseFaultSpec(f *testing.F) {
	for _, s := range []string{
		"network: [{delay: 100ms, jitter: 20ms, to: ['10.0.0.0/8', 'db:5432', ':53/udp']}]",
		`{"dns":{"failure":"servfail","percent":"50%","hosts":["*.svc"]}}`,
		"clock: {offset: -5m, drift: 200ppm}\nschedule: {every: 10m, for: 2m, jitter: 30s}",
		"network: [{partition: true, except: ['[fd00::1]:80/tcp']}]",
		"network: [{bandwidth: 1.5Mbit, direction: both}]",
		"http: [{direction: inbound, port: 8080, match: {method: POST, path: '/checkout*', headers: {x-canary: 'true'}}, abort: {status: 503, percent: 10%}}]",
		`{"http":[{"direction":"outbound","to":["payments.shop.svc:80"],"delay":{"fixed":"2s","percent":"50%"},"abort":{"grpc":{"code":"UNAVAILABLE"}}}]}`,
		"{", "- a", "x: !!binary aGk=", "&a [*a]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, errs := ParseFaultSpec(in, annotation)
		if len(errs) > 0 {
			if s != nil {
				t.Fatalf("got both a spec and errors")
			}
			return
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, errs := ParseFaultSpec(string(js), annotation)
		if len(errs) > 0 {
			t.Fatalf("normalized spec %s does not parse: %v", js, errs.ToAggregate())
		}
		js2, _ := json.Marshal(again)
		if string(js) != string(js2) {
			t.Fatalf("normalization is not stable:\n%s\n%s", js, js2)
		}
	})
}

// One wrong type does not hide the other problems: each is reported, with
// its rule index (the decoder used to stop at the first, and lose the index).
func TestEveryProblemIsReportedInOneRun(t *testing.T) {
	_, errs := ParseFaultSpec("network: [{delay: 10ms}, {loss: 5}, {delay: forever}]\nclock: {offset: 5}", field.NewPath("spec"))
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	want := []string{"spec.network[1].loss", "spec.network[2].delay", "spec.clock.offset"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("problems at %v, want %v (%v)", got, want, errs)
	}
}
