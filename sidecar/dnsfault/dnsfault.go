// Package dnsfault owns DNS failures. The pod's UDP DNS queries pass through
// an NFQUEUE (mangle OUTPUT, chain FAULTLINE-DNS-GATE, --queue-bypass) that
// the agent reads: a query for a name the spec targets fails at the
// requested percent (the query is dropped and, for SERVFAIL or NXDOMAIN, an
// answer is written back to the asking socket as if from the server);
// every other query goes on to the pod's real resolver untouched.
//
// Nothing is redirected and no port is held, which is what makes DNS
// faults fail open: when the agent dies its queue has no reader, the kernel
// lets queries through, and no lookup fails, waits on a dead responder or
// reaches a process that took its port. (An earlier design redirected
// queries to a resolver in the agent; after a SIGKILL the nat rule and its
// conntrack entries kept sending lookups to a dead or hijacked port.)
package dnsfault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/miekg/dns"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Queue is the NFQUEUE number the pod's DNS queries are sent to.
const Queue = 4199

// Mark is an SO_MARK the queue rule lets pass (RETURN) unread.
const Mark = 0xfa17

// Interceptor fails matching DNS queries per a DNSFault.
type Interceptor struct {
	failure  v1alpha1.DNSFailure
	percent  float64
	patterns []string

	nf *nfqueue.Nfqueue
	// raw and raw6 answer IPv4 and IPv6 queries (raw6 is -1 without IPv6).
	raw, raw6 int
	cancel    context.CancelFunc

	// Failed counts queries failed; Forwarded, queries let through.
	Failed, Forwarded atomic.Uint64
}

// New builds an interceptor for f; Start makes it act.
func New(f *v1alpha1.DNSFault) (*Interceptor, error) {
	pct := 1.0
	if f.Percent != "" {
		p, err := v1alpha1.ParsePercent(f.Percent)
		if err != nil {
			return nil, fmt.Errorf("dns.percent: %w", err)
		}
		pct = p
	}
	r := &Interceptor{failure: f.Failure, percent: pct, raw: -1, raw6: -1}
	for _, h := range f.Hosts {
		r.patterns = append(r.patterns, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	return r, nil
}

// Matches reports whether name is one the fault targets.
func (r *Interceptor) Matches(name string) bool {
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

// Start reads Queue in the calling process's network namespace until Stop.
// Failures are answered through a raw socket (CAP_NET_RAW).
func (r *Interceptor) Start() error {
	raw, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("dns faults: raw socket for answers: %w", err)
	}
	// IPPROTO_RAW on IPv6 takes the whole packet too; without IPv6 in
	// the namespace there are no IPv6 queries to answer.
	raw6, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		raw6 = -1
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      Queue,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  4096,
		Copymode:     nfqueue.NfQnlCopyPacket,
		// A full queue lets queries through rather than dropping them.
		Flags:        nfqueue.NfQaCfgFlagFailOpen,
		WriteTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		_ = syscall.Close(raw)
		if raw6 >= 0 {
			_ = syscall.Close(raw6)
		}
		return fmt.Errorf("dns faults: opening NFQUEUE %d: %w", Queue, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.nf, r.raw, r.raw6, r.cancel = nf, raw, raw6, cancel
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		verdict := nfqueue.NfAccept
		if a.Payload != nil && r.intercept(*a.Payload) {
			verdict = nfqueue.NfDrop
		}
		_ = nf.SetVerdict(*a.PacketID, verdict)
		return 0
	}
	errFn := func(error) int {
		if ctx.Err() != nil {
			return 1
		}
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errFn); err != nil {
		r.Stop()
		return fmt.Errorf("dns faults: registering NFQUEUE %d: %w", Queue, err)
	}
	return nil
}

// Stop closes the queue (queries pass from then on) and the raw socket.
func (r *Interceptor) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.nf != nil {
		_ = r.nf.Close()
		r.nf = nil
	}
	for _, fd := range []*int{&r.raw, &r.raw6} {
		if *fd >= 0 {
			_ = syscall.Close(*fd)
			*fd = -1
		}
	}
}

// intercept decides one queued packet: true drops it (the query fails).
// Anything it cannot read as a UDP DNS query goes on untouched.
func (r *Interceptor) intercept(pkt []byte) bool {
	q, err := parseQuery(pkt)
	if err != nil || len(q.msg.Question) == 0 || !r.Matches(q.msg.Question[0].Name) || rand.Float64() >= r.percent {
		r.Forwarded.Add(1)
		return false
	}
	r.Failed.Add(1)
	rcode := dns.RcodeServerFailure
	switch r.failure {
	case v1alpha1.DNSTimeout:
		return true // no answer at all: the client times out
	case v1alpha1.DNSNXDomain:
		rcode = dns.RcodeNameError
	}
	m := new(dns.Msg)
	m.SetRcode(q.msg, rcode)
	body, err := m.Pack()
	if err != nil {
		return true
	}
	_ = r.answer(q, body)
	return true
}

// query is a DNS query read from an IPv4 or IPv6 UDP packet.
type query struct {
	src, dst         net.IP // 4 or 16 bytes
	srcPort, dstPort uint16
	msg              *dns.Msg
}

var errNotDNS = errors.New("not a UDP DNS query")

func parseQuery(pkt []byte) (*query, error) {
	var q query
	var udp []byte
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == syscall.IPPROTO_UDP:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+8 {
			return nil, errNotDNS
		}
		q.src, q.dst, udp = net.IP(pkt[12:16]), net.IP(pkt[16:20]), pkt[ihl:]
	case len(pkt) >= 48 && pkt[0]>>4 == 6 && pkt[6] == syscall.IPPROTO_UDP:
		// UDP right after the fixed header; a query behind extension
		// headers passes untouched.
		q.src, q.dst, udp = net.IP(pkt[8:24]), net.IP(pkt[24:40]), pkt[40:]
	default:
		return nil, errNotDNS
	}
	q.msg = new(dns.Msg)
	if err := q.msg.Unpack(udp[8:]); err != nil || q.msg.Response {
		return nil, errNotDNS
	}
	q.srcPort, q.dstPort = binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	return &q, nil
}

// answer sends body to the asking socket as if from the server it asked.
func (r *Interceptor) answer(q *query, body []byte) error {
	hdr := 20
	if len(q.src) == net.IPv6len {
		hdr = 40
	}
	pkt := make([]byte, hdr+8+len(body))
	udp := pkt[hdr:]
	binary.BigEndian.PutUint16(udp[0:2], q.dstPort)
	binary.BigEndian.PutUint16(udp[2:4], q.srcPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(body)))
	copy(udp[8:], body)
	// The checksum's pseudo-header sums the same way for both families
	// (addresses, protocol, length); IPv6 requires it.
	binary.BigEndian.PutUint16(udp[6:8], udpChecksum(q.dst, q.src, udp))
	if hdr == 40 {
		if r.raw6 < 0 {
			return errors.New("no IPv6 raw socket")
		}
		pkt[0], pkt[6], pkt[7] = 0x60, syscall.IPPROTO_UDP, 64
		binary.BigEndian.PutUint16(pkt[4:6], uint16(8+len(body)))
		copy(pkt[8:24], q.dst)
		copy(pkt[24:40], q.src)
		to := &syscall.SockaddrInet6{}
		copy(to.Addr[:], q.src)
		return syscall.Sendto(r.raw6, pkt, 0, to)
	}
	pkt[0], pkt[8], pkt[9] = 0x45, 64, syscall.IPPROTO_UDP
	binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
	copy(pkt[12:16], q.dst)
	copy(pkt[16:20], q.src)
	// IP_HDRINCL: the kernel fills in the IP checksum and ID.
	to := &syscall.SockaddrInet4{}
	copy(to.Addr[:], q.src)
	return syscall.Sendto(r.raw, pkt, 0, to)
}

func udpChecksum(src, dst, udp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	sum += syscall.IPPROTO_UDP + uint32(len(udp))
	add(udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if c := ^uint16(sum); c != 0 {
		return c
	}
	return 0xffff
}
