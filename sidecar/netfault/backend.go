package netfault

import (
	"context"
	"strconv"
	"strings"
)

// Backend is an iptables backend. A pod's network namespace may already
// hold rules from a CNI plugin or a mesh's init container (istio-init,
// linkerd-init) in either; "first in the chain" only means something within
// one backend, so faultline writes where those rules are, as
// istio-iptables does. Both backends' tools ship in the agent image.
//
// Detection goes through the Runner like every other command (two save
// commands, counted here) rather than github.com/coreos/go-iptables: that
// library runs iptables itself, in the calling process's network namespace,
// one command per chain, and listing a legacy table that does not exist
// yet creates it.
type Backend string

const (
	NFT    Backend = "nft"
	Legacy Backend = "legacy"
)

// Save and Restore are the backend's commands; Save6 and Restore6 its
// IPv6 ones.
func (b Backend) Save() string     { return "iptables-" + string(b.orNFT()) + "-save" }
func (b Backend) Restore() string  { return "iptables-" + string(b.orNFT()) + "-restore" }
func (b Backend) Save6() string    { return "ip6tables-" + string(b.orNFT()) + "-save" }
func (b Backend) Restore6() string { return "ip6tables-" + string(b.orNFT()) + "-restore" }

func (b Backend) orNFT() Backend {
	if b == "" {
		return NFT
	}
	return b
}

// DetectBackend picks the backend whose tables already hold other owners'
// rules; nft when only nft does, when neither does, or when the legacy
// tools are missing. why says what was counted.
func DetectBackend(ctx context.Context, r Runner) (b Backend, why string) {
	counts := map[Backend]int{}
	for _, b := range []Backend{NFT, Legacy} {
		out, err := r.Run(ctx, nil, b.Save())
		if err != nil {
			counts[b] = -1
			continue
		}
		counts[b] = othersRules(string(out))
	}
	why = "nft rules: " + itoa(counts[NFT]) + ", legacy rules: " + itoa(counts[Legacy])
	if counts[Legacy] > counts[NFT] {
		return Legacy, why
	}
	return NFT, why
}

// othersRules counts the rules in a save that are not faultline's.
func othersRules(save string) int {
	n := 0
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") && !strings.Contains(l, "FAULTLINE") {
			n++
		}
	}
	return n
}

func itoa(n int) string {
	if n < 0 {
		return "unavailable"
	}
	return strconv.Itoa(n)
}
