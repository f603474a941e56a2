package v1alpha1

import (
	"strings"
	"testing"
)

func TestParseFaultSpecAcceptsTheIssuesHTTPExample(t *testing.T) {
	s, errs := ParseFaultSpec(`
http:
  - direction: inbound
    port: 8080
    match: {method: POST, path: /checkout*, headers: {x-canary: "true"}}
    abort: {status: 503, percent: 10%}
  - direction: outbound
    to: ["Payments.shop.svc.cluster.local:80"]
    delay: {fixed: 2s, percent: 50%}
  - direction: inbound
    port: 9090
    abort: {grpc: {code: UNAVAILABLE, message: injected}}
`, annotation)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs.ToAggregate())
	}
	if got := strings.Join(s.Kinds(), ","); got != "http" || !s.HasNetwork() {
		t.Errorf("kinds %q, HasNetwork %v: http needs the pod's network like network rules", got, s.HasNetwork())
	}
	if s.HTTP[1].To[0] != "payments.shop.svc.cluster.local:80" {
		t.Errorf("to = %q, want it canonical", s.HTTP[1].To[0])
	}
	if a := s.HTTP[2].Abort; a.Status != 503 || a.Percent != "100%" {
		t.Errorf("a gRPC-only abort = status %d percent %q, want 503 for other requests and 100%%", a.Status, a.Percent)
	}
}

func TestParseFaultSpecRejectsBadHTTPFaults(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"a rule without direction", "http: [{port: 80, abort: {status: 503}}]", `http[0].direction: Required value: one of inbound, outbound`},
		{"an unknown direction", "http: [{direction: both, port: 80, abort: {status: 503}}]", `http[0].direction: Unsupported value: "both": supported values: "inbound", "outbound"`},
		{"an inbound rule without port", "http: [{direction: inbound, abort: {status: 503}}]", `http[0].port: Required value: the container port`},
		{"an inbound rule with to", "http: [{direction: inbound, port: 80, to: [a.b:80], abort: {status: 503}}]", `http[0].to: Forbidden: inbound rules read one container port`},
		{"an outbound rule with a port", "http: [{direction: outbound, port: 80, to: [a.b:80], abort: {status: 503}}]", `http[0].port: Forbidden: outbound rules name their destinations`},
		{"an outbound rule without to", "http: [{direction: outbound, abort: {status: 503}}]", `http[0].to: Required value: a TCP destination`},
		{"a UDP destination", "http: [{direction: outbound, to: [':53/udp'], abort: {status: 503}}]", `http[0].to[0]: Invalid value: ":53/udp": HTTP runs over TCP`},
		{"a port past 65535", "http: [{direction: inbound, port: 70000, abort: {status: 503}}]", `http[0].port: Invalid value: 70000: want a port from 1 to 65535`},
		{"a port as a string", `{"http":[{"direction":"inbound","port":"80","abort":{"status":503}}]}`, `http[0].port: Invalid value: got a string, must be a whole number`},
		{"a rule that does nothing", "http: [{direction: inbound, port: 80}]", `http[0]: Required value: at least one of abort, delay`},
		{"a misspelt key", "http: [{direction: inbound, port: 80, abrot: {status: 503}}]", `http[0].abrot: Forbidden: unknown field; allowed here: direction, port, to, match, abort, delay`},
		{"a misspelt abort key", "http: [{direction: inbound, port: 80, abort: {code: 503}}]", `http[0].abort.code: Forbidden: unknown field; allowed here: status, body, grpc, percent`},
		{"an abort without status", "http: [{direction: inbound, port: 80, abort: {percent: 5%}}]", `http[0].abort.status: Required value: an HTTP status from 200 to 599, or grpc: {code: UNAVAILABLE}`},
		{"a status that is not an error", "http: [{direction: inbound, port: 80, abort: {status: 99}}]", `http[0].abort.status: Invalid value: 99: want an HTTP status from 200 to 599`},
		{"an abort percent without its sign", "http: [{direction: inbound, port: 80, abort: {status: 503, percent: '10'}}]", `http[0].abort.percent: Invalid value: "10": want a percentage such as 5%`},
		{"an abort of 0%", "http: [{direction: inbound, port: 80, abort: {status: 503, percent: 0%}}]", `http[0].abort.percent: Invalid value: "0%": want more than 0% (omit abort to disable it)`},
		{"an unknown gRPC code", "http: [{direction: inbound, port: 80, abort: {grpc: {code: unavailable}}}]", `http[0].abort.grpc.code: Unsupported value: "unavailable": supported values: "OK", "CANCELLED"`},
		{"a gRPC message over two lines", "http: [{direction: inbound, port: 80, abort: {grpc: {code: UNAVAILABLE, message: \"a\\nb\"}}}]", `http[0].abort.grpc.message: Invalid value: "a\nb": want at most 256 characters on one line`},
		{"a delay without fixed", "http: [{direction: inbound, port: 80, delay: {percent: 5%}}]", `http[0].delay.fixed: Required value: a duration such as 100ms`},
		{"a delay over a minute", "http: [{direction: inbound, port: 80, delay: {fixed: 2m}}]", `http[0].delay.fixed: Invalid value: "2m": want a duration such as 100ms, 1.5s or 2m, more than 0 and at most 1m0s`},
		{"a lower-case method", "http: [{direction: inbound, port: 80, match: {method: post}, abort: {status: 503}}]", `http[0].match.method: Invalid value: "post": want an upper-case HTTP method`},
		{"a path without its slash", "http: [{direction: inbound, port: 80, match: {path: checkout}, abort: {status: 503}}]", `http[0].match.path: Invalid value: "checkout": want a path such as "/checkout"`},
		{"a broken glob", "http: [{direction: inbound, port: 80, match: {path: '/a[b'}, abort: {status: 503}}]", `http[0].match.path: Invalid value: "/a[b"`},
		{"a host with a port", "http: [{direction: inbound, port: 80, match: {host: 'a.b:80'}, abort: {status: 503}}]", `http[0].match.host: Invalid value: "a.b:80": want a host name without a port`},
		{"a header name with a space", "http: [{direction: inbound, port: 80, match: {headers: {'x canary': '1'}}, abort: {status: 503}}]", `http[0].match.headers[x canary]: Invalid value: "x canary": want a header name`},
		{"a header value with a newline", "http: [{direction: inbound, port: 80, match: {headers: {x-a: \"1\\r\\nx-b: 2\"}}, abort: {status: 503}}]", `http[0].match.headers[x-a]: Invalid value: "1\r\nx-b: 2": want a value of at most 256 characters on one line`},
		{"a list of 17 rules", "http: [" + strings.Repeat("{direction: inbound, port: 80, abort: {status: 503}},", 16) + "{direction: inbound, port: 80, abort: {status: 503}}]", `http: Too many: 17: must have at most 16 items`},
		{"a mapping for the rule list", "http: {direction: inbound}", `http: Invalid value: got a mapping, must be a list`},
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
		})
	}
}
