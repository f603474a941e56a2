package netfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	nsh "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The dead man's switch: every jump into faultline's chains also matches
// the ipset AliveSet, whose two entries (together every IPv4 address)
// expire unless the agent keeps re-adding them. When the agent dies and
// nobody restarts it, the set empties within its TTL, the jumps match
// nothing, and the pod's traffic flows as if faultline were not there,
// rules and all. (Delay and DNS already fail open through --queue-bypass;
// this covers loss, partition and reset. Shaping is tc, not gated.)
const AliveSet = "faultline-alive"

// AliveSet6 is the switch for IPv6 rules: an ipset holds one family.
const AliveSet6 = "faultline-alive6"

// AliveSetHTTP and AliveSetHTTP6 gate the HTTP redirects. Their entries
// last HTTPAliveTTL, re-armed by the proxy's own loop (ArmHTTP): a
// redirect to a proxy that died refuses the pod's connections, so it must
// stop within a second.
const (
	AliveSetHTTP  = "faultline-alive-http"
	AliveSetHTTP6 = "faultline-alive-http6"
	HTTPAliveTTL  = time.Second
)

// Switch is a Runner that can arm the switch for ttl more; Apply, Remove
// and KeepAlive use it when the Runner offers it.
type Switch interface {
	Arm(ctx context.Context, ttl time.Duration) error
	// Off empties the sets: every gated jump stops matching at once,
	// before the rules themselves are deleted (an nftables transaction
	// that deletes anything takes 10-20 ms in the kernel).
	Off(ctx context.Context) error
	Disarm(ctx context.Context) error
}

// DefaultTTL is how long faults outlive the last keep-alive.
const DefaultTTL = 5 * time.Second

// aliveSets: each set and its entries, which together cover every address
// of its family (hash:net takes no /0).
var aliveSets = []struct {
	name    string
	family  uint8
	entries []string
	http    bool // an HTTP set: armed for HTTPAliveTTL, whatever the ttl
}{
	{AliveSet, unix.AF_INET, []string{"0.0.0.0/1", "128.0.0.0/1"}, false},
	{AliveSet6, unix.AF_INET6, []string{"::/1", "8000::/1"}, false},
	{AliveSetHTTP, unix.AF_INET, []string{"0.0.0.0/1", "128.0.0.0/1"}, true},
	{AliveSetHTTP6, unix.AF_INET6, []string{"::/1", "8000::/1"}, true},
}

// KernelSwitch arms the set through netlink in one network namespace.
type KernelSwitch struct{ h *netlink.Handle }

// NewKernelSwitch works in the network namespace at nsPath ("": the
// calling process's own).
func NewKernelSwitch(nsPath string) (*KernelSwitch, error) {
	ns := nsh.None()
	if nsPath != "" {
		var err error
		if ns, err = nsh.GetFromPath(nsPath); err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", nsPath, err)
		}
		defer ns.Close()
	}
	// Netfilter for the ipset, route for tc and links (TCNetlink).
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &KernelSwitch{h: h}, nil
}

// Close releases the netlink socket.
func (k *KernelSwitch) Close() { k.h.Close() }

// Arm creates the sets if needed and gives their entries ttl more (the
// HTTP sets' HTTPAliveTTL).
func (k *KernelSwitch) Arm(_ context.Context, ttl time.Duration) error {
	return k.arm(ttl, false)
}

// ArmHTTP gives the HTTP sets' entries HTTPAliveTTL more; the proxy calls
// it several times a second while it serves.
func (k *KernelSwitch) ArmHTTP(context.Context) error {
	return k.arm(HTTPAliveTTL, true)
}

func (k *KernelSwitch) arm(ttl time.Duration, httpOnly bool) error {
	zero := uint32(0)
	for _, set := range aliveSets {
		if httpOnly && !set.http {
			continue
		}
		secs := uint32(max(ttl.Seconds(), 1))
		if set.http {
			secs = uint32(HTTPAliveTTL.Seconds())
		}
		err := k.h.IpsetCreate(set.name, "hash:net", netlink.IpsetCreateOptions{Timeout: &zero, Family: set.family})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating ipset %s: %w", set.name, err)
		}
		for _, e := range set.entries {
			_, ipnet, _ := net.ParseCIDR(e)
			ones, _ := ipnet.Mask.Size()
			if err := k.h.IpsetAdd(set.name, &netlink.IPSetEntry{IP: ipnet.IP, CIDR: uint8(ones), Timeout: &secs, Replace: true}); err != nil {
				return fmt.Errorf("arming ipset %s: %w", set.name, err)
			}
		}
	}
	return nil
}

// Off flushes the sets' entries; sets that do not exist are already off.
func (k *KernelSwitch) Off(context.Context) error {
	for _, set := range aliveSets {
		if err := k.h.IpsetFlush(set.name); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("flushing ipset %s: %w", set.name, err)
		}
	}
	return nil
}

// Disarm destroys the sets; call it after the rules naming them are gone.
func (k *KernelSwitch) Disarm(context.Context) error {
	for _, set := range aliveSets {
		if err := k.h.IpsetDestroy(set.name); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("destroying ipset %s: %w", set.name, err)
		}
	}
	return nil
}

// KeepAlive re-arms the switch when r offers one.
func KeepAlive(ctx context.Context, r Runner, ttl time.Duration) error {
	if s, ok := r.(Switch); ok {
		return s.Arm(ctx, ttl)
	}
	return nil
}
