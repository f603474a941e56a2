package httpfault

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h).
const ip6tSoOriginalDst = 80

// OriginalDst is where a connection that netfilter REDIRECTed to the proxy
// was going (SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST for IPv6).
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v6 := c.LocalAddr().(*net.TCPAddr).IP.To4() == nil
	var out netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if !v6 {
			// A sockaddr_in, read through the one getsockopt of 16 bytes
			// x/sys offers: family, port, address.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				serr = err
				return
			}
			b := m.Multiaddr
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
			return
		}
		// A sockaddr_in6, read as the first field of an ip6_mtuinfo.
		mi, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst)
		if err != nil {
			serr = err
			return
		}
		// The port is stored in network order in a uint16.
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], mi.Addr.Port)
		out = netip.AddrPortFrom(netip.AddrFrom16(mi.Addr.Addr), binary.BigEndian.Uint16(b[:]))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %v", errNoTarget, err)
	}
	return out, nil
}

// ServeInbound serves connections REDIRECTed from the pod's own ports: each
// goes on to the app at the address and port it was sent to. Not over
// 127.0.0.1: an app that trusts loopback callers (an admin endpoint "for
// local use only") would take every proxied client for one of its own. The
// proxy's connection is made inside the pod, so PREROUTING never sees it
// and it is not redirected again. It returns when ln is closed.
func (p *Proxy) ServeInbound(ln net.Listener) error {
	return p.serve(ln, func(od netip.AddrPort) string {
		return netip.AddrPortFrom(od.Addr().Unmap(), od.Port()).String()
	})
}

// ServeOutbound serves connections the pod's processes made that netfilter
// REDIRECTed here: each goes on to where it was going, from a socket that
// carries Mark so that it is not redirected again.
func (p *Proxy) ServeOutbound(ln net.Listener) error {
	return p.serve(ln, func(od netip.AddrPort) string { return od.String() })
}

func (p *Proxy) serve(ln net.Listener, upstream func(netip.AddrPort) string) error {
	own := uint16(0)
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		own = uint16(a.Port)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			tc, ok := c.(*net.TCPConn)
			if !ok {
				_ = c.Close()
				return
			}
			od, err := OriginalDst(tc)
			// A connection made to the proxy's port itself was not
			// redirected: its "original" destination is the proxy, which
			// it would dial again and again. Whoever makes one (a process
			// in the pod, a peer on the pod network) gets it closed.
			if err != nil || od.Port() == own {
				_ = c.Close()
				return
			}
			p.Handle(c, upstream(od))
		}()
	}
}

// markControl sets SO_MARK on a dialer's sockets (needs NET_ADMIN).
func markControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	if mark == 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("marking the proxy's socket: %w", serr)
		}
		return nil
	}
}
