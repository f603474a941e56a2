package sidecar

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"strings"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// EnvHostIP is the node's address (downward API status.hostIP), set by the
// webhook: one of the addresses the kubelet's probes come from.
const EnvHostIP = v1alpha1.EnvHostIP

// ProbeSources are the addresses the kubelet's probes reach the pod from:
// the node's address and the pod's default gateways, IPv4's (routeFile,
// /proc/net/route) and IPv6's (route6File, /proc/net/ipv6_route): a bridge
// CNI's node end is the source when the kubelet reaches the pod over the
// bridge, in the pod's primary family. Empty when none is known: the probe
// ports are then exempt for everyone.
func ProbeSources(hostIP, routeFile, route6File string) []netip.Addr {
	var out []netip.Addr
	if a, err := netip.ParseAddr(strings.TrimSpace(hostIP)); err == nil {
		out = append(out, a.Unmap())
	}
	if gw, ok := defaultGateway(routeFile); ok {
		out = append(out, gw)
	}
	if gw, ok := defaultGateway6(route6File); ok {
		out = append(out, gw)
	}
	return out
}

// defaultGateway6 reads /proc/net/ipv6_route: the next hop of the ::/0
// route (destination, its length, source, its length, next hop: hex).
func defaultGateway6(routeFile string) (netip.Addr, bool) {
	b, err := os.ReadFile(routeFile)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		raw, err := hex.DecodeString(f[4])
		if err != nil || len(raw) != 16 {
			continue
		}
		if a := netip.AddrFrom16([16]byte(raw)); !a.IsUnspecified() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// defaultGateway reads /proc/net/route: the gateway of the 0.0.0.0/0 route,
// little-endian hex.
func defaultGateway(routeFile string) (netip.Addr, bool) {
	b, err := os.ReadFile(routeFile)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], binary.LittleEndian.Uint32(raw))
		if a := netip.AddrFrom4(ip); !a.IsUnspecified() {
			return a, true
		}
	}
	return netip.Addr{}, false
}
