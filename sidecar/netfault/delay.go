package netfault

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
)

// The in-agent delay engine, for kernels without sch_netem. iptables hands
// the packets a delay rule matches to an NFQUEUE; the engine holds each one
// and accepts it when its time comes. It works on the inbound direction (a
// rule "delay to X" queues the packets coming back from X), because packets
// held in OUTPUT stay charged to the local socket and throttle the sender.
// The rules use --queue-bypass, so if the agent dies traffic flows again.

// QueueBase is the first delay NFQUEUE number; rule i uses QueueBase+i.
// DropQueueBase is the same for egress loss and partition.
const (
	QueueBase     = 4200
	DropQueueBase = 4300
)

// DelayRule is one queue and what to do to its packets: drop each with
// probability Drop (a verdict given later, so the sender never sees
// EPERM), hold the rest for Delay ± Jitter.
type DelayRule struct {
	Queue  uint16
	Delay  time.Duration
	Jitter time.Duration
	Drop   float64
	// Dist shapes the jitter: "" or uniform, normal, pareto, paretonormal.
	Dist string
	// Correlation ties each jitter draw to the previous one (0..1).
	Correlation float64
	// Reorder sends this share of packets at once, ahead of held ones;
	// with Gap, only after Gap-1 packets were held (netem's gap).
	Reorder float64
	Gap     int
	// Corrupt flips one bit past the IP header in this share of packets.
	Corrupt float64
	// Duplicate delivers this share of packets twice (duplicate.go).
	Duplicate float64
}

// DelayEngine runs one queue per rule.
type DelayEngine struct {
	queues  []*delayQueue
	Delayed atomic.Uint64
	// Dropped counts packets an egress loss or partition queue dropped.
	Dropped atomic.Uint64
	// Corrupted counts packets sent with a flipped bit; Duplicated the
	// copies sent.
	Corrupted, Duplicated atomic.Uint64
	dup                   *duplicator
	cancel                context.CancelFunc
	wg                    sync.WaitGroup
}

// StartDelay opens the queues (in the network namespace open on netnsFD, or
// the agent's own when it is 0) and starts holding packets.
func StartDelay(ctx context.Context, rules []DelayRule, netnsFD int) (*DelayEngine, error) {
	ctx, cancel := context.WithCancel(ctx)
	e := &DelayEngine{cancel: cancel}
	for _, r := range rules {
		if r.Duplicate > 0 && e.dup == nil {
			var err error
			if e.dup, err = newDuplicator(netnsFD); err != nil {
				cancel()
				return nil, err
			}
		}
	}
	for _, r := range rules {
		q, err := openQueue(ctx, e, r, netnsFD)
		if err != nil {
			e.Stop()
			return nil, err
		}
		e.queues = append(e.queues, q)
	}
	return e, nil
}

// Stop releases every held packet at once and closes the queues, in an
// order that loses none: first the hooks stop handing packets over (they
// accept at once instead), then the release loops accept what they hold
// and what was handed over, and only then are the queues unbound. Unbinding
// earlier made the kernel drop every packet still queued: 5% of a 10,000
// packet stream at each stop, measured.
func (e *DelayEngine) Stop() {
	for _, q := range e.queues {
		q.mu.Lock()
		q.stopping = true
		q.mu.Unlock()
	}
	e.cancel()
	e.wg.Wait()
	for _, q := range e.queues {
		q.drain()
		q.unbind()
		_ = q.nf.Close()
	}
	e.dup.close()
}

// drain waits, at most half a second, until the reader has gone 20 ms
// without a packet: packets the kernel queued before the rules went are
// still in the socket, unread, and an unbind now would drop them.
func (q *delayQueue) drain() {
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) && time.Since(time.Unix(0, q.lastPacket.Load())) < 20*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
}

type held struct {
	id      uint32
	release time.Time
	pkt     []byte // the packet to send instead (corrupted), or nil
	dup     []byte // a copy to deliver right after it, or nil
}

// accept lets a packet go, rewritten when pkt is set, and sends its copy
// when it has one.
func (e *DelayEngine) accept(nf *nfqueue.Nfqueue, p held) {
	if p.pkt != nil {
		_ = nf.SetVerdictModPacket(p.id, nfqueue.NfAccept, p.pkt)
	} else {
		_ = nf.SetVerdict(p.id, nfqueue.NfAccept)
	}
	if p.dup != nil && e.dup.send(p.dup) {
		e.Duplicated.Add(1)
	}
}

type heldHeap []held

func (h heldHeap) Len() int           { return len(h) }
func (h heldHeap) Less(i, j int) bool { return h[i].release.Before(h[j].release) }
func (h heldHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)        { *h = append(*h, x.(held)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type delayQueue struct {
	rule DelayRule
	nf   *nfqueue.Nfqueue
	in   chan held
	// unbind ends the library's reader, which unbinds the queue.
	unbind context.CancelFunc

	// mu orders the hand-over against Stop: hooks hold it shared while
	// they pass a packet to the release loop; Stop takes it to set
	// stopping, after which hooks accept packets themselves.
	mu       sync.RWMutex
	stopping bool
	// lastPacket is when the hook last ran (unix nanoseconds).
	lastPacket atomic.Int64
}

func openQueue(ctx context.Context, e *DelayEngine, r DelayRule, netnsFD int) (*delayQueue, error) {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      r.Queue,
		NetNS:        netnsFD,
		MaxPacketLen: copyLen(r),
		MaxQueueLen:  16384,
		Copymode:     copyMode(r),
		// Fail open: when the queue is full the kernel accepts rather
		// than drops, so the engine can add delay but never loss.
		Flags:        nfqueue.NfQaCfgFlagFailOpen,
		WriteTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("opening NFQUEUE %d: %w", r.Queue, err)
	}
	// A netlink message the socket has no room for is lost, and with it
	// the packet's verdict: the packet stays queued, never sent, which is
	// loss nobody asked for (measured on the real node: 28% at 10k
	// packets/s with the default buffer). A large buffer absorbs bursts;
	// with NET_ADMIN the size is forced past net.core.rmem_max.
	if err := nf.Con.SetReadBuffer(8 << 20); err != nil {
		_ = nf.Close()
		return nil, fmt.Errorf("NFQUEUE %d read buffer: %w", r.Queue, err)
	}
	q := &delayQueue{rule: r, nf: nf, in: make(chan held, 16384)}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(r.Queue)))
	jitter := newJitter(r, rng)
	// As netem: with a gap, the first gap-1 packets since the last
	// reordered one are held whatever the draw. The hook runs on one
	// goroutine per queue, so the count needs no lock.
	since := 0
	reorder := func() bool {
		if r.Reorder == 0 {
			return false
		}
		if r.Gap > 0 && since < r.Gap-1 || rng.Float64() >= r.Reorder {
			since++
			return false
		}
		since = 0
		return true
	}
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		d := r.Delay + jitter()
		if d < 0 || reorder() {
			d = 0 // reordered: out at once, ahead of the held ones
		}
		p := held{id: *a.PacketID}
		if r.Corrupt > 0 && a.Payload != nil && rng.Float64() < r.Corrupt {
			p.pkt = corrupt(*a.Payload, rng)
			e.Corrupted.Add(1)
		}
		if r.Duplicate > 0 && a.Payload != nil && rng.Float64() < r.Duplicate {
			p.dup = append([]byte(nil), *a.Payload...)
			if p.pkt != nil {
				p.dup = append([]byte(nil), p.pkt...)
			}
		}
		// Count from when the kernel queued the packet, when it says, so
		// the time spent reaching the agent is part of the delay, not extra.
		base := time.Now()
		if a.Timestamp != nil && !a.Timestamp.IsZero() && a.Timestamp.Before(base) && base.Sub(*a.Timestamp) < time.Second {
			base = *a.Timestamp
		}
		q.lastPacket.Store(time.Now().UnixNano())
		if r.Drop > 0 && (r.Drop >= 1 || rng.Float64() < r.Drop) {
			_ = nf.SetVerdict(*a.PacketID, nfqueue.NfDrop)
			e.Dropped.Add(1)
			return 0
		}
		if d == 0 {
			e.accept(nf, p)
			return 0
		}
		q.mu.RLock()
		defer q.mu.RUnlock()
		if q.stopping {
			e.accept(nf, p)
			return 0
		}
		p.release = base.Add(d)
		q.in <- p
		return 0
	}
	// The reader has a context of its own: when it ends, the library
	// unbinds the queue and the kernel drops what is still queued, so it
	// must outlive the release loop (Stop).
	regCtx, unbind := context.WithCancel(context.Background())
	q.unbind = unbind
	errFn := func(err error) int {
		if regCtx.Err() != nil {
			return 1
		}
		return 0
	}
	if err := nf.RegisterWithErrorFunc(regCtx, hook, errFn); err != nil {
		unbind()
		_ = nf.Close()
		return nil, fmt.Errorf("registering NFQUEUE %d: %w", r.Queue, err)
	}
	e.wg.Add(1)
	go q.release(ctx, e)
	return q, nil
}

// release accepts held packets in release order, one goroutine per queue.
func (q *delayQueue) release(ctx context.Context, e *DelayEngine) {
	defer e.wg.Done()
	var h heldHeap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// Timers fire late (0.4ms median, 1ms p99 on the test VM), so the
	// engine learns how late and wakes that much earlier: an exponentially
	// weighted average of how far past its release each packet went out.
	var early time.Duration
	for {
		now := time.Now()
		for h.Len() > 0 && !h[0].release.After(now.Add(early)) {
			p := heap.Pop(&h).(held)
			e.accept(q.nf, p)
			e.Delayed.Add(1)
			// How late the verdict landed, had we not woken early; the
			// verdict's own system call is part of it.
			late := time.Since(p.release) + early
			early += (late - early) / 8
			early = min(max(early, 0), 5*time.Millisecond)
		}
		if h.Len() > 0 {
			timer.Reset(time.Until(h[0].release) - early)
		}
		select {
		case <-ctx.Done():
			for h.Len() > 0 {
				e.accept(q.nf, heap.Pop(&h).(held))
			}
			// Stop set stopping before cancelling: nothing more comes in.
			for {
				select {
				case p := <-q.in:
					e.accept(q.nf, p)
				default:
					return
				}
			}
		case p := <-q.in:
			heap.Push(&h, p)
		case <-timer.C:
		}
	}
}
