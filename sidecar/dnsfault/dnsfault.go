// Package dnsfault owns DNS failures: a small resolver the agent runs in the
// pod's network namespace. iptables (nat OUTPUT, chain FAULTLINE-DNS)
// redirects the pod's DNS queries to it; names that match the spec fail
// (SERVFAIL, NXDOMAIN or no answer) at the requested percent, and everything
// else is forwarded to the pod's real resolver, marked so that the redirect
// does not catch the agent's own queries.
package dnsfault

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Mark is the SO_MARK on upstream queries; the nat rules RETURN on it.
const Mark = 0xfa17

// Port is where the responder listens on loopback.
const Port = 15353

// Responder answers or fails DNS queries per a DNSFault.
type Responder struct {
	failure  v1alpha1.DNSFailure
	percent  float64
	patterns []string
	upstream string
	client   *dns.Client
	servers  []*dns.Server
	wg       sync.WaitGroup

	Failed, Forwarded atomic.Uint64
}

// New builds a responder; upstream is "ip:port" of the real resolver.
func New(f *v1alpha1.DNSFault, upstream string) (*Responder, error) {
	pct := 1.0
	if f.Percent != "" {
		p, err := v1alpha1.ParsePercent(f.Percent)
		if err != nil {
			return nil, fmt.Errorf("dns.percent: %w", err)
		}
		pct = p
	}
	r := &Responder{failure: f.Failure, percent: pct, upstream: upstream}
	for _, h := range f.Hosts {
		r.patterns = append(r.patterns, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, Mark)
		}); err != nil {
			return err
		}
		return serr
	}}
	r.client = &dns.Client{Dialer: dialer, Timeout: 2 * time.Second}
	return r, nil
}

// Matches reports whether name is one the fault targets.
func (r *Responder) Matches(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, p := range r.patterns {
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(name, "."+rest) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// ServeDNS fails matching queries at the configured rate; forwards the rest.
func (r *Responder) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) > 0 && r.Matches(q.Question[0].Name) && rand.Float64() < r.percent {
		r.Failed.Add(1)
		switch r.failure {
		case v1alpha1.DNSTimeout:
			return // no answer at all: the client times out
		case v1alpha1.DNSNXDomain:
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeNameError)
			_ = w.WriteMsg(m)
		default:
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeServerFailure)
			_ = w.WriteMsg(m)
		}
		return
	}
	r.Forwarded.Add(1)
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := *r.client
	c.Net = proto
	resp, _, err := c.Exchange(q, r.upstream)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeServerFailure)
		_ = w.WriteMsg(m)
		return
	}
	_ = w.WriteMsg(resp)
}

// Start listens on addr (UDP and TCP) until Stop.
func (r *Responder) Start(addr string) error {
	for _, proto := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: addr, Net: proto, Handler: r, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		r.wg.Add(1)
		go func() { defer r.wg.Done(); errc <- srv.ListenAndServe() }()
		select {
		case <-started:
			r.servers = append(r.servers, srv)
		case err := <-errc:
			r.Stop()
			return fmt.Errorf("dns responder %s %s: %w", proto, addr, err)
		}
	}
	return nil
}

// Stop closes the listeners.
func (r *Responder) Stop() {
	for _, s := range r.servers {
		_ = s.ShutdownContext(context.Background())
	}
	r.servers = nil
	r.wg.Wait()
}

// Upstream reads the first nameserver from a resolv.conf.
func Upstream(resolvConf string) (string, error) {
	f, err := os.Open(resolvConf)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			return net.JoinHostPort(fields[1], "53"), nil
		}
	}
	return "", fmt.Errorf("%s names no nameserver", resolvConf)
}
