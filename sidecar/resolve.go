package sidecar

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/faultline-dev/faultline/sidecar/dnsfault"
)

// Bounds on how soon a rule's host names are looked up again: their DNS
// TTL, within these (a TTL of 0 would mean a lookup per tick; a day-long
// one would keep a moved Service's old address for a day).
const (
	minRefresh     = 2 * time.Second
	maxRefresh     = 5 * time.Minute
	defaultRefresh = 30 * time.Second
)

// ttlResolver resolves rule hosts the way the pod's resolver would (its
// resolv.conf: servers, search list, ndots) and remembers the smallest TTL
// of the answers since the last reset, so the agent looks again when the
// first of them expires instead of on a fixed timer. Its queries carry
// dnsfault.Mark: the pod's own DNS faults must not fail the agent's lookups.
// When the server cannot be asked directly, Go's resolver answers and the
// default refresh applies.
type ttlResolver struct {
	conf   *dns.ClientConfig
	client *dns.Client

	mu  sync.Mutex
	min time.Duration
}

func newTTLResolver(resolvConf string) *ttlResolver {
	conf, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil || len(conf.Servers) == 0 {
		conf = nil
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, dnsfault.Mark)
		}); err != nil {
			return err
		}
		return serr
	}}
	return &ttlResolver{conf: conf, client: &dns.Client{Dialer: dialer, Timeout: 2 * time.Second}}
}

// Resolve returns host's addresses, both families, and notes their TTL.
func (r *ttlResolver) Resolve(host string) ([]netip.Addr, error) {
	if r.conf != nil {
		if addrs, ttl, ok := r.lookup(host); ok {
			r.note(ttl)
			return addrs, nil
		}
	}
	r.note(defaultRefresh)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// lookup tries the names the pod's resolver would (search list, ndots) in
// order, asking for both families (A and AAAA: a dual-stack Service has
// both); ok is false when no server could be asked (then Go's resolver is
// the judge, and its answer the truth).
func (r *ttlResolver) lookup(host string) ([]netip.Addr, time.Duration, bool) {
	for _, name := range r.conf.NameList(host) {
		var addrs []netip.Addr
		ttl := maxRefresh
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			q := new(dns.Msg)
			q.SetQuestion(name, qtype)
			resp, _, err := r.client.Exchange(q, net.JoinHostPort(r.conf.Servers[0], r.conf.Port))
			if err != nil {
				return nil, 0, false
			}
			if resp.Rcode != dns.RcodeSuccess {
				continue
			}
			for _, rr := range resp.Answer {
				ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
				var ip net.IP
				switch a := rr.(type) {
				case *dns.A:
					ip = a.A.To4()
				case *dns.AAAA:
					ip = a.AAAA
				default:
					continue
				}
				if addr, ok := netip.AddrFromSlice(ip); ok {
					addrs = append(addrs, addr.Unmap())
				}
			}
		}
		if len(addrs) > 0 {
			return addrs, ttl, true
		}
	}
	return nil, 0, false
}

func (r *ttlResolver) note(ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.min == 0 || ttl < r.min {
		r.min = ttl
	}
}

// next is how long until the first answer since the last reset expires,
// within the bounds; it resets.
func (r *ttlResolver) next() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.min
	r.min = 0
	switch {
	case d == 0:
		return defaultRefresh
	case d < minRefresh:
		return minRefresh
	case d > maxRefresh:
		return maxRefresh
	}
	return d
}
