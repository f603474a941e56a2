package netfault

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TCNetlink runs the tc and ip commands the builder makes (Plan.Shape and
// the clean-up's) in-process through netlink, and hands every other command
// to Next. The builder stays pure and its goldens stay tc commands; only
// the process per command goes (each cost about 5 ms here). It understands
// exactly the grammar shape.go writes and refuses anything else, so the
// two cannot drift apart silently.
type TCNetlink struct {
	Next Runner
	h    *netlink.Handle
}

// NewTCNetlink works in the network namespace of h (see NewKernelSwitch).
func NewTCNetlink(next Runner, ks *KernelSwitch) *TCNetlink {
	return &TCNetlink{Next: next, h: ks.h}
}

func (t *TCNetlink) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	line := strings.Join(args, " ")
	switch {
	case name == "tc" && line == "qdisc show":
		return t.qdiscShow()
	case (name == "tc" || name == "ip") && line == "-batch -":
		for _, l := range strings.Split(strings.TrimSpace(string(stdin)), "\n") {
			if l == "" {
				continue
			}
			if err := t.exec(name, strings.Fields(l)); err != nil {
				return nil, fmt.Errorf("%s %s: %w", name, l, err)
			}
		}
		return nil, nil
	case name == "ip" && len(args) == 3 && args[0] == "link" && args[1] == "del":
		if err := t.exec("ip", args); err != nil {
			return nil, fmt.Errorf("ip %s: %w", line, err)
		}
		return nil, nil
	}
	return t.Next.Run(ctx, stdin, name, args...)
}

// exec runs one tc or ip statement of shape.go's grammar.
func (t *TCNetlink) exec(tool string, f []string) error {
	if tool == "ip" {
		switch {
		case len(f) == 5 && f[0] == "link" && f[1] == "add" && f[3] == "type" && f[4] == "ifb":
			// NewLinkAttrs leaves the queue length to the kernel (32 for
			// an IFB); the zero value sets it to 0, and HTB's leaf queues
			// then drop every packet.
			attrs := netlink.NewLinkAttrs()
			attrs.Name = f[2]
			return t.h.LinkAdd(&netlink.Ifb{LinkAttrs: attrs})
		case len(f) == 4 && f[0] == "link" && f[1] == "set" && f[3] == "up":
			l, err := t.h.LinkByName(f[2])
			if err != nil {
				return err
			}
			return t.h.LinkSetUp(l)
		case len(f) == 3 && f[0] == "link" && f[1] == "del":
			l, err := t.h.LinkByName(f[2])
			if err != nil {
				return err
			}
			return t.h.LinkDel(l)
		}
		return fmt.Errorf("not a statement faultline writes")
	}
	if len(f) < 4 || f[2] != "dev" {
		return fmt.Errorf("not a statement faultline writes")
	}
	link, err := t.h.LinkByName(f[3])
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	kv := pairs(f[4:])
	switch f[0] + " " + f[1] {
	case "qdisc replace": // ... root handle fa17: htb default 1
		handle, err := parseHandle(kv["handle"])
		if err != nil || kv["htb"] != "default" {
			return fmt.Errorf("want root handle H htb default N")
		}
		q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Handle: handle, Parent: netlink.HANDLE_ROOT})
		def, err := strconv.ParseUint(kv["default"], 16, 32)
		if err != nil {
			return fmt.Errorf("default %q", kv["default"])
		}
		q.Defcls = uint32(def)
		return t.h.QdiscReplace(q)
	case "qdisc add": // ... handle ffff: ingress
		return t.h.QdiscAdd(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}})
	case "qdisc del": // ... root | ingress
		qs, err := t.h.QdiscList(link)
		if err != nil {
			return err
		}
		want := uint32(netlink.HANDLE_ROOT)
		if f[4] == "ingress" {
			want = netlink.HANDLE_INGRESS
		}
		for _, q := range qs {
			if q.Attrs().Parent == want {
				return t.h.QdiscDel(q)
			}
		}
		return nil
	case "class add": // ... parent P classid C htb rate R ceil R
		parent, err1 := parseHandle(kv["parent"])
		class, err2 := parseHandle(kv["classid"])
		rate, err3 := parseRate(kv["rate"])
		ceil := rate
		if c, ok := kv["ceil"]; ok {
			ceil, err3 = parseRate(c)
		}
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("want parent, classid, rate and ceil")
		}
		// A millisecond's worth of bytes plus an MTU, as tc computes it at
		// HZ 1000: the library's own default rounds a fast class's burst
		// to 0 ticks, and such a class never sends (100gbit, the default).
		burst := func(bps uint64) uint32 { return uint32(min(bps/8/1000+1600, 1<<30)) }
		return t.h.ClassAdd(netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: parent, Handle: class},
			netlink.HtbClassAttrs{Rate: rate, Ceil: ceil, Buffer: burst(rate), Cbuffer: burst(ceil)}))
	case "filter add":
		return t.filterAdd(idx, f[4:])
	}
	return fmt.Errorf("not a statement faultline writes")
}

// filterAdd: parent P protocol ip|ipv6|all [prio N] u32 match ... (flowid C |
// action mirred egress redirect dev D).
func (t *TCNetlink) filterAdd(idx int, f []string) error {
	u := &netlink.U32{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx}, Sel: &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL}}
	for i := 0; i < len(f); i++ {
		arg := func(n int) (string, error) {
			if i+n >= len(f) {
				return "", fmt.Errorf("%s: missing value", f[i])
			}
			return f[i+n], nil
		}
		switch f[i] {
		case "parent":
			v, err := arg(1)
			if err != nil {
				return err
			}
			if u.Parent, err = parseHandle(v); err != nil {
				return err
			}
			i++
		case "protocol":
			v, err := arg(1)
			if err != nil {
				return err
			}
			u.Protocol = map[string]uint16{"ip": unix.ETH_P_IP, "ipv6": unix.ETH_P_IPV6, "all": unix.ETH_P_ALL}[v]
			i++
		case "prio":
			v, err := arg(1)
			if err != nil {
				return err
			}
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return err
			}
			u.Priority = uint16(p)
			i++
		case "u32":
		case "match":
			keys, n, err := matchKeys(f[i+1:])
			if err != nil {
				return err
			}
			u.Sel.Keys = append(u.Sel.Keys, keys...)
			i += n
		case "flowid":
			v, err := arg(1)
			if err != nil {
				return err
			}
			if u.ClassId, err = parseHandle(v); err != nil {
				return err
			}
			i++
		case "action": // mirred egress redirect dev D
			if i+5 >= len(f) || f[i+1] != "mirred" || f[i+2] != "egress" || f[i+3] != "redirect" || f[i+4] != "dev" {
				return fmt.Errorf("want action mirred egress redirect dev D")
			}
			to, err := t.h.LinkByName(f[i+5])
			if err != nil {
				return err
			}
			m := netlink.NewMirredAction(to.Attrs().Index)
			u.Actions = append(u.Actions, m)
			i += 5
		default:
			return fmt.Errorf("%q is not in faultline's grammar", f[i])
		}
	}
	if u.Priority == 0 {
		u.Priority = 1
	}
	return t.h.FilterAdd(u)
}

// matchKeys reads one u32 match (u32 V M | ip|ip6 src|dst PREFIX |
// ip|ip6 protocol N M | ip|ip6 sport|dport N M) as keys in host order (the
// library converts) and says how many fields it took. An IPv6 prefix is up
// to four 32-bit keys.
func matchKeys(f []string) ([]netlink.TcU32Key, int, error) {
	num := func(s string) (uint32, error) {
		v, err := strconv.ParseUint(s, 0, 32)
		return uint32(v), err
	}
	bad := fmt.Errorf("match %s is not in faultline's grammar", strings.Join(f, " "))
	if len(f) < 3 {
		return nil, 0, bad
	}
	if f[0] == "u32" {
		v, err1 := num(f[1])
		m, err2 := num(f[2])
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("match u32 %s %s", f[1], f[2])
		}
		return []netlink.TcU32Key{{Val: v & m, Mask: m}}, 3, nil
	}
	if f[0] != "ip" && f[0] != "ip6" {
		return nil, 0, bad
	}
	v6 := f[0] == "ip6"
	// Offsets in the IP header: addresses, the protocol (next header),
	// and the transport header right after a fixed-size header, as tc's
	// own "match ip dport" and "match ip6 dport" assume.
	srcOff, dstOff, protoOff, protoShift, l4Off := int32(12), int32(16), int32(8), 16, int32(20)
	if v6 {
		srcOff, dstOff, protoOff, protoShift, l4Off = 8, 24, 4, 8, 40
	}
	switch f[1] {
	case "src", "dst":
		p, err := netip.ParsePrefix(f[2])
		if err != nil || p.Addr().Is4() == v6 {
			return nil, 0, fmt.Errorf("match %s %s %s", f[0], f[1], f[2])
		}
		off := dstOff
		if f[1] == "src" {
			off = srcOff
		}
		return prefixKeys(p, off), 3, nil
	case "protocol", "sport", "dport":
		if len(f) < 4 {
			return nil, 0, bad
		}
		v, err1 := num(f[2])
		m, err2 := num(f[3])
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("match %s %s %s %s", f[0], f[1], f[2], f[3])
		}
		off, shift := l4Off, 0
		switch f[1] {
		case "protocol":
			off, shift = protoOff, protoShift
		case "sport":
			shift = 16
		}
		return []netlink.TcU32Key{{Val: (v & m) << shift, Mask: m << shift, Off: off}}, 4, nil
	}
	return nil, 0, bad
}

// prefixKeys matches p at byte offset off, one key per 32-bit word the
// prefix covers (none for /0).
func prefixKeys(p netip.Prefix, off int32) []netlink.TcU32Key {
	addr := p.Addr().AsSlice()
	var keys []netlink.TcU32Key
	for w := 0; w*32 < p.Bits(); w++ {
		bits := min(p.Bits()-w*32, 32)
		mask := ^uint32(0) << (32 - bits)
		val := uint32(addr[4*w])<<24 | uint32(addr[4*w+1])<<16 | uint32(addr[4*w+2])<<8 | uint32(addr[4*w+3])
		keys = append(keys, netlink.TcU32Key{Val: val & mask, Mask: mask, Off: off + int32(4*w)})
	}
	if len(keys) == 0 {
		keys = append(keys, netlink.TcU32Key{Off: off})
	}
	return keys
}

// qdiscShow writes what `tc qdisc show` would, as far as the clean-up and
// the root-owner check read it: "qdisc KIND HANDLE dev IFACE root|parent P".
func (t *TCNetlink) qdiscShow() ([]byte, error) {
	links, err := t.h.LinkList()
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range links {
		qs, err := t.h.QdiscList(l)
		if err != nil {
			return nil, err
		}
		for _, q := range qs {
			a := q.Attrs()
			where := "root"
			if a.Parent != netlink.HANDLE_ROOT {
				where = "parent " + handleString(a.Parent)
			}
			lines = append(lines, fmt.Sprintf("qdisc %s %s dev %s %s", q.Type(), handleString(a.Handle), l.Attrs().Name, where))
		}
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

func handleString(h uint32) string {
	major, minor := h>>16, h&0xffff
	if minor == 0 {
		return fmt.Sprintf("%x:", major)
	}
	return fmt.Sprintf("%x:%x", major, minor)
}

func parseHandle(s string) (uint32, error) {
	major, minor, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("handle %q", s)
	}
	ma, err := strconv.ParseUint(major, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("handle %q", s)
	}
	var mi uint64
	if minor != "" {
		if mi, err = strconv.ParseUint(minor, 16, 16); err != nil {
			return 0, fmt.Errorf("handle %q", s)
		}
	}
	return netlink.MakeHandle(uint16(ma), uint16(mi)), nil
}

// parseRate reads the "Nbit" and "Ngbit" rates shape.go writes.
func parseRate(s string) (uint64, error) {
	for suffix, mult := range map[string]uint64{"gbit": 1e9, "mbit": 1e6, "kbit": 1e3} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			return n * mult, err
		}
	}
	v, ok := strings.CutSuffix(s, "bit")
	if !ok {
		return 0, fmt.Errorf("rate %q", s)
	}
	return strconv.ParseUint(v, 10, 64)
}

// pairs maps each word to the word after it, for reading key value lists.
func pairs(f []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(f); i++ {
		m[f[i]] = f[i+1]
	}
	return m
}
