package netfault

import (
	"math"
	"math/rand/v2"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
)

// newJitter returns the jitter draws of one rule: around zero, spread by
// r.Jitter in r.Dist's shape, each draw tied to the one before by
// r.Correlation (as netem: next = c·last + (1−c)·fresh, on the uniform
// source, so the shape is kept and runs of similar delays appear).
func newJitter(r DelayRule, rng *rand.Rand) func() time.Duration {
	if r.Jitter <= 0 {
		return func() time.Duration { return 0 }
	}
	last := rng.Float64()
	uniform := func() float64 {
		u := rng.Float64()
		if r.Correlation > 0 {
			u = r.Correlation*last + (1-r.Correlation)*u
			last = u
		}
		return u
	}
	j := float64(r.Jitter)
	switch r.Dist {
	case "normal":
		return func() time.Duration { return time.Duration(j * normal(uniform, rng)) }
	case "pareto":
		return func() time.Duration { return time.Duration(j * pareto(uniform())) }
	case "paretonormal":
		// netem's mix: a quarter normal, three quarters pareto.
		return func() time.Duration { return time.Duration(j * (0.25*normal(uniform, rng) + 0.75*pareto(uniform()))) }
	}
	return func() time.Duration { return time.Duration(j * (2*uniform() - 1)) }
}

// normal is a standard normal draw (Box-Muller) on the correlated source.
func normal(uniform func() float64, rng *rand.Rand) float64 {
	u1 := max(uniform(), 1e-12)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*rng.Float64())
}

// pareto is a Pareto draw (shape 3) shifted to mean 0 and scaled to unit
// standard deviation: a long tail of large delays, as netem's table.
func pareto(u float64) float64 {
	const alpha = 3.0
	xm := 1 / math.Sqrt(alpha/((alpha-1)*(alpha-1)*(alpha-2))) // sd 1
	x := xm / math.Pow(max(1-u, 1e-12), 1/alpha)
	return x - alpha*xm/(alpha-1)
}

// corrupt returns a copy of an IPv4 packet with one bit flipped past its
// header, so the packet still routes and the damage is the transport's to
// find (its checksum), as with netem's corrupt.
func corrupt(pkt []byte, rng *rand.Rand) []byte {
	out := append([]byte(nil), pkt...)
	ihl := 20
	switch {
	case len(out) > 0 && out[0]>>4 == 6:
		ihl = 40 // IPv6's fixed header
	case len(out) > 0:
		ihl = int(out[0]&0x0f) * 4
	}
	if len(out) <= ihl {
		return out
	}
	i := ihl + rng.IntN(len(out)-ihl)
	out[i] ^= 1 << rng.IntN(8)
	return out
}

// copyMode asks the kernel for the packet's bytes only when a fault needs
// them: copying costs every packet.
func copyMode(r DelayRule) uint8 {
	if r.Corrupt > 0 || r.Duplicate > 0 {
		return nfqueue.NfQnlCopyPacket
	}
	return nfqueue.NfQnlCopyMeta
}

func copyLen(r DelayRule) uint32 {
	if r.Corrupt > 0 || r.Duplicate > 0 {
		return 0xffff
	}
	return 0
}
