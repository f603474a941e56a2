package sidecar

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/httpfault"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

// The proxy's ports in the pod: inbound on every address (PREROUTING's
// REDIRECT sends to the receiving interface's address), outbound on
// loopback only (OUTPUT's REDIRECT sends there).
const (
	HTTPInboundPort  = 19094
	HTTPOutboundPort = 19095
)

// HTTPMaxConns bounds the connections both proxies read together: about
// 24 KiB each, so 1,000 keep the agent near 45 MiB, inside the chart's
// 64Mi limit, whoever opens connections to a redirected port. As many
// again are passed through unread (spliced by the kernel) when none of
// those is idle; only past both is a connection closed.
const HTTPMaxConns = 1000

// httpArmEvery is how often the proxy re-arms the HTTP switch sets, well
// inside their HTTPAliveTTL.
const httpArmEvery = 200 * time.Millisecond

// httpDriver runs the proxies that http rules redirect to, while the rules
// are on. Its rules are made once, so their counts run across schedule
// windows and re-resolutions.
type httpDriver struct {
	// rules follow spec.HTTP, index for index.
	rules   []*httpfault.Rule
	inbound []bool
	// arm re-arms the HTTP switch sets.
	arm func(context.Context) error
	// limit is shared by both proxies and outlives them.
	limit *httpfault.ConnLimit

	mu      sync.Mutex
	in, out *httpfault.Proxy
	// before counts the connections of proxies already closed.
	before HTTPStatus
	lns    []net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

func newHTTPDriver(spec []v1alpha1.HTTPFault, arm func(context.Context) error) (*httpDriver, error) {
	h := &httpDriver{arm: arm, limit: &httpfault.ConnLimit{Max: HTTPMaxConns, Bypass: HTTPMaxConns}}
	for i, f := range spec {
		rl, err := httpfault.FromSpec(f)
		if err != nil {
			return nil, fmt.Errorf("http[%d].%w", i, err)
		}
		rl.SetTo([]httpfault.Dest{}) // nothing until a plan says where
		h.rules = append(h.rules, rl)
		h.inbound = append(h.inbound, f.Direction == v1alpha1.HTTPInbound)
	}
	return h, nil
}

// start listens and serves, and keeps the HTTP switch armed while it does;
// it is a no-op when already started. ipv6 adds the IPv6 loopback.
func (h *httpDriver) start(ctx context.Context, ipv6 bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.in != nil {
		return nil
	}
	var in, out []*httpfault.Rule
	for i, rl := range h.rules {
		if h.inbound[i] {
			in = append(in, rl)
		} else {
			out = append(out, rl)
		}
	}
	h.in = &httpfault.Proxy{Rules: in, Mark: netfault.HTTPMark, Limit: h.limit}
	h.out = &httpfault.Proxy{Rules: out, Mark: netfault.HTTPMark, Limit: h.limit}
	addrs := map[string]func(net.Listener) error{
		":" + strconv.Itoa(HTTPInboundPort):           h.in.ServeInbound, // both families
		"127.0.0.1:" + strconv.Itoa(HTTPOutboundPort): h.out.ServeOutbound,
	}
	if ipv6 {
		addrs["[::1]:"+strconv.Itoa(HTTPOutboundPort)] = h.out.ServeOutbound
	}
	for addr, serve := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			h.closeLocked()
			return fmt.Errorf("http proxy: %w", err)
		}
		h.lns = append(h.lns, ln)
		go func() { _ = serve(ln) }()
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel, h.done = cancel, make(chan struct{})
	go h.keepArmed(actx, h.done)
	return nil
}

// keepArmed re-arms the HTTP switch until the proxies stop: when this
// process dies, the redirects stop within HTTPAliveTTL.
func (h *httpDriver) keepArmed(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(httpArmEvery)
	defer t.Stop()
	var last string
	for {
		if err := h.arm(ctx); err != nil && err.Error() != last && ctx.Err() == nil {
			logf.FromContext(ctx).Error(err, "re-arming the HTTP switch")
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setTo tells each rule where its connections were going, from the plan.
func (h *httpDriver) setTo(to [][]v1alpha1.Target) {
	for i, rl := range h.rules {
		var ds []httpfault.Dest
		if i < len(to) {
			for _, t := range to[i] {
				ds = append(ds, httpfault.Dest{Prefix: t.Prefix, Port: t.Port})
			}
		}
		rl.SetTo(append([]httpfault.Dest{}, ds...))
	}
}

// stop closes the proxies and every connection they hold: their clients
// connect again, straight to where they were going once the redirects are
// gone (so stop after removing the rules).
func (h *httpDriver) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeLocked()
}

// stopArming stops re-arming the HTTP switch, so that emptying it holds.
func (h *httpDriver) stopArming() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopArmingLocked()
}

func (h *httpDriver) stopArmingLocked() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func (h *httpDriver) closeLocked() {
	h.stopArmingLocked()
	// Closing cannot fail in a way anyone could act on: the listeners and
	// connections are gone either way.
	for _, ln := range h.lns {
		_ = ln.Close()
	}
	h.lns = nil
	for _, p := range []*httpfault.Proxy{h.in, h.out} {
		if p != nil {
			_ = p.Close()
			h.before.HTTP1 += p.HTTP1.Load()
			h.before.H2C += p.H2C.Load()
			h.before.PassedOther += p.Passed.Load()
		}
	}
	h.in, h.out = nil, nil
}

// httpRuleStatus is one rule's counts, for /status.
type httpRuleStatus struct {
	Rule    string `json:"rule"`
	Matched uint64 `json:"matched"`
	Aborted uint64 `json:"aborted"`
	Delayed uint64 `json:"delayed"`
}

// HTTPStatus says what the proxy has seen: connections by protocol (what
// is not HTTP passes through untouched, and is counted as such) and each
// rule's requests.
type HTTPStatus struct {
	HTTP1       uint64 `json:"http1Connections"`
	H2C         uint64 `json:"h2cConnections"`
	PassedOther uint64 `json:"passedThroughConnections"`
	Open        int    `json:"openConnections"`
	// Evicted idle connections closed to make room under HTTPMaxConns;
	// Bypassed new ones passed through unread (no faults) with none idle;
	// Refused the ones closed past both.
	Evicted  uint64           `json:"evictedIdleConnections"`
	Bypassed uint64           `json:"bypassedConnections"`
	Refused  uint64           `json:"refusedConnections"`
	Rules    []httpRuleStatus `json:"rules"`
}

func (h *httpDriver) status() HTTPStatus {
	h.mu.Lock()
	s := h.before
	for _, p := range []*httpfault.Proxy{h.in, h.out} {
		if p != nil {
			s.HTTP1 += p.HTTP1.Load()
			s.H2C += p.H2C.Load()
			s.PassedOther += p.Passed.Load()
			s.Open += p.Open()
		}
	}
	h.mu.Unlock()
	s.Evicted, s.Bypassed, s.Refused = h.limit.Evicted.Load(), h.limit.Bypassed.Load(), h.limit.Refused.Load()
	for i, rl := range h.rules {
		s.Rules = append(s.Rules, httpRuleStatus{Rule: fmt.Sprintf("http[%d]", i),
			Matched: rl.Matched.Load(), Aborted: rl.Aborted.Load(), Delayed: rl.Delayed.Load()})
	}
	return s
}
