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

// Switch is a Runner that can arm the switch for ttl more; Apply, Remove
// and KeepAlive use it when the Runner offers it.
type Switch interface {
	Arm(ctx context.Context, ttl time.Duration) error
	Disarm(ctx context.Context) error
}

// DefaultTTL is how long faults outlive the last keep-alive.
const DefaultTTL = 5 * time.Second

var aliveEntries = []string{"0.0.0.0/1", "128.0.0.0/1"}

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

// Arm creates the set if needed and gives its entries ttl more.
func (k *KernelSwitch) Arm(_ context.Context, ttl time.Duration) error {
	zero := uint32(0)
	err := k.h.IpsetCreate(AliveSet, "hash:net", netlink.IpsetCreateOptions{Timeout: &zero})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating ipset %s: %w", AliveSet, err)
	}
	secs := uint32(max(ttl.Seconds(), 1))
	for _, e := range aliveEntries {
		_, ipnet, _ := net.ParseCIDR(e)
		ones, _ := ipnet.Mask.Size()
		if err := k.h.IpsetAdd(AliveSet, &netlink.IPSetEntry{IP: ipnet.IP, CIDR: uint8(ones), Timeout: &secs, Replace: true}); err != nil {
			return fmt.Errorf("arming ipset %s: %w", AliveSet, err)
		}
	}
	return nil
}

// Disarm destroys the set; call it after the rules naming it are gone.
func (k *KernelSwitch) Disarm(context.Context) error {
	if err := k.h.IpsetDestroy(AliveSet); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("destroying ipset %s: %w", AliveSet, err)
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
