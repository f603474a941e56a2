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
// the node's address and the pod's default gateway (a bridge CNI's node end,
// which is the source when the kubelet reaches the pod over the bridge).
// Empty when neither is known: the probe ports are then exempt for everyone.
func ProbeSources(hostIP, routeFile string) []netip.Addr {
	var out []netip.Addr
	if a, err := netip.ParseAddr(strings.TrimSpace(hostIP)); err == nil {
		out = append(out, a.Unmap())
	}
	if gw, ok := defaultGateway(routeFile); ok {
		out = append(out, gw)
	}
	return out
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
