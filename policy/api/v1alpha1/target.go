package v1alpha1

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Target is a parsed destination from NetworkRule.To or .Except. Exactly one
// of Prefix and Host is set, or neither (any host, e.g. ":53/udp").
// +kubebuilder:object:generate=false
type Target struct {
	Prefix   netip.Prefix // an address is a /32 or /128
	Host     string       // a DNS name, resolved by the agent
	Port     uint16       // 0 means any port
	Protocol string       // "tcp", "udp" or "" for both
}

// ParseTarget parses "[HOST|IP|CIDR][:PORT][/tcp|/udp]". IPv6 addresses with
// a port go in brackets: "[fd00::1]:443".
func ParseTarget(s string) (Target, error) {
	var t Target
	if s == "" {
		return t, fmt.Errorf("want %s", formTarget)
	}
	rest := s
	lower := strings.ToLower(rest)
	for _, p := range []string{"tcp", "udp"} {
		if strings.HasSuffix(lower, "/"+p) {
			t.Protocol = p
			rest = rest[:len(rest)-len(p)-1]
			break
		}
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return t, err
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || port[0] == '+' {
			return t, fmt.Errorf("port %q: want a number from 1 to 65535", port)
		}
		t.Port = uint16(n)
	}
	switch {
	case host == "":
		if t.Port == 0 && t.Protocol == "" {
			return t, fmt.Errorf("want %s", formTarget)
		}
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return t, fmt.Errorf("CIDR %q: want %s", host, formTarget)
		}
		if p.Masked() != p {
			return t, fmt.Errorf("CIDR %q has host bits set: want %s", host, p.Masked())
		}
		t.Prefix = p
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" {
				return t, fmt.Errorf("address %q: zones are not supported", host)
			}
			t.Prefix = netip.PrefixFrom(a, a.BitLen())
			break
		}
		if errs := validation.IsDNS1123Subdomain(strings.ToLower(host)); len(errs) > 0 {
			return t, fmt.Errorf("host %q: want %s", host, formTarget)
		}
		t.Host = strings.ToLower(host)
	}
	return t, nil
}

func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", fmt.Errorf("missing ] in %q: want %s", s, formTarget)
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("unexpected %q after ]: want [IPv6]:PORT", rest)
		}
		return host, rest[1:], nil
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", nil
	case 1:
		i := strings.LastIndex(s, ":")
		return s[:i], s[i+1:], nil
	default:
		// A bare IPv6 address or CIDR, without a port.
		return s, "", nil
	}
}

// String renders the target in its canonical form.
func (t Target) String() string {
	var b strings.Builder
	host := t.Host
	if t.Prefix.IsValid() {
		if t.Prefix.IsSingleIP() {
			host = t.Prefix.Addr().String()
		} else {
			host = t.Prefix.String()
		}
	}
	if t.Port != 0 && strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if t.Port != 0 {
		b.WriteString(":" + strconv.Itoa(int(t.Port)))
	}
	if t.Protocol != "" {
		b.WriteString("/" + t.Protocol)
	}
	return b.String()
}

// ValidDNSPattern checks a dns.hosts entry: a name or "*." plus a name.
func ValidDNSPattern(s string) error {
	name := strings.TrimPrefix(strings.ToLower(s), "*.")
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 || strings.Contains(name, "*") {
		return fmt.Errorf("want %s", formDNSHostname)
	}
	return nil
}
