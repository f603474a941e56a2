package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func policy(t testing.TB, y string) v1alpha1.ChaosPolicy {
	t.Helper()
	var p v1alpha1.ChaosPolicy
	if err := yaml.UnmarshalStrict([]byte(y), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

const stagingNet = `
metadata: {name: staging-net}
spec:
  namespaceSelector: {matchLabels: {env: staging}}
  limits: {maxDelay: 200ms, maxLoss: 5%}
  windows: [{days: [Mon, Tue, Wed, Thu, Fri], start: "09:00", end: "17:00", timeZone: Europe/Berlin}]
`

const httpPolicy = `
metadata: {name: http-staging}
spec: {limits: {http: {ports: [8080, 80], maxDelay: 2s, maxAbortPercent: 10%}}}
`

// Wednesday 2026-11-25 11:00 in Berlin (UTC+1).
var wednesdayMorning = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func decide(t *testing.T, policies []v1alpha1.ChaosPolicy, nsLabels map[string]string, spec string, now time.Time) Decision {
	t.Helper()
	e := Engine{Limiter: &Policies{Source: StaticPolicies(policies), Now: func() time.Time { return now }}}
	return e.Decide(context.Background(), &Request{
		Pod:             pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: spec}),
		NamespaceLabels: merge(nsEnabled, nsLabels), NamespaceKnown: true,
	})
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

var staging = map[string]string{"env": "staging"}

func TestChaosPolicyDecisions(t *testing.T) {
	cases := []struct {
		name     string
		policies []string
		ns       map[string]string
		spec     string
		at       time.Time
		inject   bool
		code     Code
		contains string
	}{
		{name: "a delay within the limit in the window is injected", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{delay: 100ms}]", at: wednesdayMorning, inject: true, code: CodeInjected, contains: "allowed by ChaosPolicy staging-net"},
		{name: "no policy for the namespace means no chaos", policies: []string{stagingNet}, ns: map[string]string{"env": "prod"},
			spec: "network: [{delay: 100ms}]", at: wednesdayMorning, code: CodeNoPolicy, contains: "no ChaosPolicy selects namespace shop"},
		{name: "a delay over the limit names the policy and the limit", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{delay: 2s}]", at: wednesdayMorning, code: CodeLimitExceeded, contains: "policy staging-net: network[0].delay 2s exceeds maxDelay 200ms"},
		{name: "sixteen rules of 4.9% loss each add up past maxLoss 5%", policies: []string{stagingNet}, ns: staging,
			spec: "network: [" + strings.Repeat("{loss: 4.9%, to: [10.0.0.0/8]},", 15) + "{loss: 4.9%}]", at: wednesdayMorning, code: CodeLimitExceeded,
			contains: "the rules together drop or damage 55.24% of packets (1 − Π(1 − p) over 16 values), more than maxLoss 5%"},
		{name: "two rules of 2% loss stay within maxLoss 5% together", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{loss: 2%, to: [10.0.0.0/8]}, {loss: 2%}]", at: wednesdayMorning, inject: true, code: CodeInjected},
		{name: "loss and duplication compound against maxLoss", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{loss: 3%, to: [10.0.0.0/8]}, {duplicate: 3%}]", at: wednesdayMorning, code: CodeLimitExceeded, contains: "5.91% of packets"},
		{name: "delays of several rules add up against maxDelay", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{delay: 150ms, to: [10.0.0.0/8]}, {delay: 150ms}]", at: wednesdayMorning, code: CodeLimitExceeded, contains: "delays add up to 300ms, more than maxDelay 200ms"},
		{name: "a kind the policy does not list is not allowed", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{partition: true}]", at: wednesdayMorning, code: CodeLimitExceeded, contains: "network[0].partition is not allowed (limits.partition is false)"},
		{name: "clock faults need their own limit", policies: []string{stagingNet}, ns: staging,
			spec: "clock: {offset: 1m}", at: wednesdayMorning, code: CodeLimitExceeded, contains: "clock.offset is not allowed (no maxClockOffset)"},
		{name: "outside the window nothing is injected", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{delay: 100ms}]", at: time.Date(2026, 11, 25, 17, 30, 0, 0, time.UTC), code: CodeOutsideWindow, contains: "outside its windows (Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Berlin)"},
		{name: "saturday is outside a weekday window", policies: []string{stagingNet}, ns: staging,
			spec: "network: [{delay: 100ms}]", at: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), code: CodeOutsideWindow},
		{name: "several policies combine to the most restrictive", ns: staging, spec: "network: [{delay: 150ms}]", at: wednesdayMorning,
			policies: []string{stagingNet, `
metadata: {name: tight}
spec: {limits: {maxDelay: 100ms}}`}, code: CodeLimitExceeded, contains: "policy tight: network[0].delay 150ms exceeds maxDelay 100ms"},
		{name: "the kill switch stops chaos even in Audit mode", ns: staging, spec: "network: [{delay: 100ms}]", at: wednesdayMorning,
			policies: []string{`
metadata: {name: audit-paused}
spec: {mode: Audit, paused: true, limits: {maxDelay: 1s}}`}, code: CodePolicyPaused, contains: "paused (kill switch)"},
		{name: "Audit injects anyway and says what was broken", ns: staging, spec: "network: [{delay: 2s}]", at: wednesdayMorning,
			policies: []string{`
metadata: {name: audit}
spec: {mode: Audit, limits: {maxDelay: 1s}}`}, inject: true, code: CodeInjected, contains: "Audit: injected although network[0].delay 2s exceeds maxDelay 1s"},
		{name: "DryRun never injects and says what would have happened", ns: staging, spec: "network: [{delay: 100ms}]", at: wednesdayMorning,
			policies: []string{`
metadata: {name: rehearsal}
spec: {mode: DryRun, limits: {maxDelay: 1s}}`}, code: CodeDryRun, contains: "policy rehearsal: DryRun: would inject network"},
		{name: "DryRun reports a refusal too", ns: staging, spec: "network: [{delay: 2s}]", at: wednesdayMorning,
			policies: []string{`
metadata: {name: rehearsal}
spec: {mode: DryRun, limits: {maxDelay: 1s}}`}, code: CodeDryRun, contains: "would not inject: network[0].delay 2s exceeds maxDelay 1s"},
		{name: "a pod selector narrows the policy", ns: staging, spec: "network: [{delay: 100ms}]", at: wednesdayMorning,
			policies: []string{`
metadata: {name: only-api}
spec: {podSelector: {matchLabels: {app: api}}, limits: {maxDelay: 1s}}`}, code: CodeNoPolicy},
		{name: "a window across midnight counts the early hours to the day it began", ns: staging, spec: "clock: {offset: 1m}",
			at: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC), // Saturday 01:00 UTC, still Friday night's window
			policies: []string{`
metadata: {name: night}
spec: {limits: {maxClockOffset: 5m}, windows: [{days: [Fri], start: "22:00", end: "02:00"}]}`}, inject: true, code: CodeInjected},
		{name: "HTTP faults need limits.http", policies: []string{stagingNet}, ns: staging, at: wednesdayMorning,
			spec: "http: [{direction: inbound, port: 8080, abort: {status: 503, percent: 10%}}]", code: CodeLimitExceeded, contains: "http[0] is not allowed (no limits.http)"},
		{name: "an HTTP abort within maxAbortPercent on an allowed port is injected", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: inbound, port: 8080, match: {method: POST, path: /checkout*}, abort: {status: 503, percent: 10%}}]",
			policies: []string{httpPolicy}, inject: true, code: CodeInjected},
		{name: "an HTTP abort over maxAbortPercent names the limit", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: inbound, port: 8080, abort: {status: 503, percent: 50%}}]",
			policies: []string{httpPolicy}, code: CodeLimitExceeded, contains: "http[0].abort.percent 50% exceeds limits.http.maxAbortPercent 10%"},
		{name: "an HTTP abort without percent is 100% of matching requests", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: inbound, port: 8080, abort: {grpc: {code: UNAVAILABLE}}}]",
			policies: []string{httpPolicy}, code: CodeLimitExceeded, contains: "http[0].abort.percent 100% exceeds limits.http.maxAbortPercent 10%"},
		{name: "an HTTP delay over maxDelay names the limit", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: outbound, to: ['payments.shop.svc:80'], delay: {fixed: 5s}}]",
			policies: []string{httpPolicy}, code: CodeLimitExceeded, contains: "http[0].delay.fixed 5s exceeds limits.http.maxDelay 2s"},
		{name: "a port outside limits.http.ports is refused", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: inbound, port: 9090, delay: {fixed: 1s}}]",
			policies: []string{httpPolicy}, code: CodeLimitExceeded, contains: "http[0] port 9090 is not in limits.http.ports [8080 80]"},
		{name: "an outbound destination without a port is every port, refused when ports are listed", ns: staging, at: wednesdayMorning,
			spec:     "http: [{direction: outbound, to: ['10.0.0.0/8'], delay: {fixed: 1s}}]",
			policies: []string{httpPolicy}, code: CodeLimitExceeded, contains: "http[0].to names every port of a destination; limits.http.ports allows only [8080 80]"},
		{name: "an HTTP delay without maxDelay is not allowed", ns: staging, at: wednesdayMorning,
			spec: "http: [{direction: inbound, port: 8080, delay: {fixed: 1s}}]",
			policies: []string{`
metadata: {name: aborts-only}
spec: {limits: {http: {maxAbortPercent: 5%}}}`}, code: CodeLimitExceeded, contains: "http[0].delay is not allowed (no limits.http.maxDelay)"},
		{name: "an unknown time zone is a policy error, not an injection", ns: staging, spec: "clock: {offset: 1m}", at: wednesdayMorning,
			policies: []string{`
metadata: {name: bad-tz}
spec: {limits: {maxClockOffset: 5m}, windows: [{start: "00:00", end: "23:59", timeZone: Mars/Olympus}]}`}, code: CodePolicyInvalid, contains: `timeZone "Mars/Olympus"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ps []v1alpha1.ChaosPolicy
			for _, y := range c.policies {
				ps = append(ps, policy(t, y))
			}
			d := decide(t, ps, c.ns, c.spec, c.at)
			if d.Inject != c.inject || d.Code() != c.code && d.Reasons[0].Code != c.code {
				t.Fatalf("inject=%v code=%s (%s), want inject=%v code=%s", d.Inject, d.Code(), d.Message(), c.inject, c.code)
			}
			if !strings.Contains(d.Message(), c.contains) {
				t.Errorf("message %q does not contain %q", d.Message(), c.contains)
			}
		})
	}
}

// Windows follow the zone's daylight-saving rules: 09:00 Berlin is 08:00 UTC
// in winter and 07:00 UTC in summer.
func TestWindowsFollowDaylightSaving(t *testing.T) {
	w := []v1alpha1.Window{{Start: "09:00", End: "17:00", TimeZone: "Europe/Berlin"}}
	cases := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"winter 08:00 UTC is 09:00 in Berlin", time.Date(2026, 1, 14, 8, 0, 0, 0, time.UTC), true},
		{"winter 07:30 UTC is 08:30 in Berlin", time.Date(2026, 1, 14, 7, 30, 0, 0, time.UTC), false},
		{"summer 07:00 UTC is 09:00 in Berlin", time.Date(2026, 7, 15, 7, 0, 0, 0, time.UTC), true},
		{"summer 15:00 UTC is 17:00 in Berlin, the end is exclusive", time.Date(2026, 7, 15, 15, 0, 0, 0, time.UTC), false},
		{"the morning after the spring change", time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := inWindows(w, c.at)
			if err != nil || got != c.want {
				t.Fatalf("inWindows = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

type profiles map[string]v1alpha1.FaultProfile

func (p profiles) FaultProfile(_ context.Context, ns, name string) (*v1alpha1.FaultProfile, error) {
	if fp, ok := p[ns+"/"+name]; ok {
		return &fp, nil
	}
	return nil, nil
}

func TestProfilesAndDefaultFaults(t *testing.T) {
	pol := policy(t, `
metadata: {name: staging}
spec:
  limits: {maxDelay: 200ms, maxLoss: 2%}
  defaultFaults: {network: [{loss: 1%}]}
`)
	slow := v1alpha1.FaultProfile{Spec: v1alpha1.FaultSpec{Network: []v1alpha1.NetworkRule{{Delay: "150ms"}}}}
	broken := v1alpha1.FaultProfile{Spec: v1alpha1.FaultSpec{Network: []v1alpha1.NetworkRule{{Delay: "soon"}}}}
	e := Engine{
		Limiter:  &Policies{Source: StaticPolicies{pol}},
		Profiles: profiles{"shop/slow-db": slow, "shop/broken": broken},
	}
	always := map[string]string{v1alpha1.LabelNamespaceInjection: "always"}
	cases := []struct {
		name     string
		ann      map[string]string
		ns       map[string]string
		inject   bool
		contains string
	}{
		{"a pod naming a FaultProfile gets its spec", map[string]string{v1alpha1.AnnotationProfile: "slow-db"}, nsEnabled, true, "allowed by ChaosPolicy staging"},
		{"a missing profile is named", map[string]string{v1alpha1.AnnotationProfile: "nope"}, nsEnabled, false, "FaultProfile shop/nope: not found"},
		{"an invalid profile names its field", map[string]string{v1alpha1.AnnotationProfile: "broken"}, nsEnabled, false, "FaultProfile broken.spec.network[0].delay"},
		{"a quiet pod in an always-on namespace gets the policy's defaultFaults", nil, always, true, "policy staging: defaultFaults for an always-on namespace"},
		{"a quiet pod in an opt-in namespace gets nothing", nil, nsEnabled, false, "neither faultline.dev/faults nor faultline.dev/profile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(context.Background(), &Request{Pod: pod("shop", optedIn, c.ann), NamespaceLabels: c.ns, NamespaceKnown: true})
			if d.Inject != c.inject || !strings.Contains(d.Message(), c.contains) {
				t.Fatalf("inject=%v %q; want inject=%v containing %q", d.Inject, d.Message(), c.inject, c.contains)
			}
		})
	}
}
