package httpfault

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync/atomic"
	"time"
)

// Rule is one HTTP fault: which requests it matches, and what it does to
// them. The first rule that matches a request decides it.
type Rule struct {
	// Method matches exactly (GET, POST...); "" matches any.
	Method string
	// Path matches the request path: exactly, as a prefix when it ends in
	// "*" ("/checkout*"), or as a glob (path.Match) when it holds other
	// wildcards; "" matches any.
	Path string
	// Host matches the Host header without its port; "" matches any.
	Host string
	// Headers must all be present with these values.
	Headers map[string]string
	// To are the connections the rule reads, by where they were going
	// (SetTo); none set means every connection the proxy is handed.
	to atomic.Pointer[[]Dest]

	// Abort answers instead of forwarding, with this share of requests.
	Abort *Abort
	// Delay holds a request this long before forwarding (or aborting),
	// with DelayPercent of requests (0 means all).
	Delay        time.Duration
	DelayPercent float64

	// Counts, read by the agent's metrics.
	Matched, Aborted, Delayed atomic.Uint64
}

// Abort is the answer a matching request gets.
type Abort struct {
	// Status is the HTTP status (HTTP/1.1 and plain HTTP/2).
	Status int
	// Body is sent with Status; "" sends the status text.
	Body string
	// GRPCCode, when set, answers gRPC requests (content-type
	// application/grpc) with a trailers-only response carrying this
	// grpc-status instead of Status.
	GRPCCode *int
	// Message is the grpc-message.
	Message string
	// Percent of matching requests aborted (0 means all).
	Percent float64
}

// Dest is a destination a rule reads: an address range (any when not
// valid) and a port (any when 0).
type Dest struct {
	Prefix netip.Prefix
	Port   uint16
}

// SetTo sets where the rule's connections were going; the agent calls it
// again when host names resolve to new addresses, while requests are read.
func (rl *Rule) SetTo(d []Dest) { rl.to.Store(&d) }

// reads says whether the rule applies to a connection that was going to dst.
func (rl *Rule) reads(dst netip.AddrPort) bool {
	to := rl.to.Load()
	if to == nil {
		return true
	}
	for _, d := range *to {
		if (d.Port == 0 || d.Port == dst.Port()) && (!d.Prefix.IsValid() || d.Prefix.Contains(dst.Addr().Unmap())) {
			return true
		}
	}
	return false
}

// matches says whether r, on a connection that was going to dst, is one of
// the rule's requests.
func (rl *Rule) matches(r *http.Request, dst netip.AddrPort) bool {
	if !rl.reads(dst) {
		return false
	}
	if rl.Method != "" && !strings.EqualFold(rl.Method, r.Method) {
		return false
	}
	if rl.Path != "" && !pathMatches(rl.Path, r.URL.Path) {
		return false
	}
	if rl.Host != "" {
		host := r.Host
		if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
			host = h
		}
		if !strings.EqualFold(rl.Host, host) {
			return false
		}
	}
	for k, v := range rl.Headers {
		if r.Header.Get(k) != v {
			return false
		}
	}
	return true
}

func pathMatches(pattern, p string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(prefix, "*?[") {
		return strings.HasPrefix(p, prefix)
	}
	if !strings.ContainsAny(pattern, "*?[") {
		return p == pattern
	}
	ok, err := path.Match(pattern, p)
	return err == nil && ok
}

// chance is true with probability pct (0 meaning always).
func chance(pct float64) bool { return pct <= 0 || pct >= 1 || rand.Float64() < pct }
