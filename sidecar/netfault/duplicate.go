package netfault

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Duplicate without netem: a queue verdict cannot send a packet twice, so
// the engine accepts the packet and writes a copy of it, headers and all,
// through a raw socket in the pod's network namespace. The copy is
// addressed to the pod, so the kernel loops it back and delivers it as a
// second arrival. It carries DupMark, and faultline's chains RETURN marked
// packets first, so a copy is never queued, dropped or copied again.

// DupMark marks the copies (a value no CNI or mesh in a pod's namespace
// uses: Istio marks 0x539, Linkerd none).
const DupMark = 0x0fa17d00

// dupRule is the RETURN that lets copies through, in both chains.
var dupRule = fmt.Sprintf("-m mark --mark 0x%x -j RETURN", DupMark)

// duplicator holds one raw socket per family.
type duplicator struct{ fd4, fd6 int }

// newDuplicator opens the raw sockets in the network namespace open on
// netnsFD (0: the caller's own).
func newDuplicator(netnsFD int) (*duplicator, error) {
	d := &duplicator{fd4: -1, fd6: -1}
	err := inNetns(netnsFD, func() error {
		var err error
		if d.fd4, err = rawSocket(unix.AF_INET); err != nil {
			return err
		}
		// Without IPv6 in the namespace the copies are IPv4 only.
		d.fd6, _ = rawSocket(unix.AF_INET6)
		return nil
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("duplicate: raw socket: %w", err)
	}
	return d, nil
}

func rawSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, DupMark); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// inNetns runs f on a thread of its own in the namespace open on fd (0:
// the caller's), so that sockets f creates belong there.
func inNetns(fd int, f func() error) error {
	if fd == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Left locked: the thread ends with this goroutine rather
			// than run other goroutines in the wrong namespace.
			errc <- fmt.Errorf("returning to the agent's namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// send writes a copy of pkt (a whole IPv4 or IPv6 packet) to its
// destination; best effort, like the duplicate it stands for.
func (d *duplicator) send(pkt []byte) bool {
	if d == nil || len(pkt) < 20 {
		return false
	}
	switch pkt[0] >> 4 {
	case 4:
		var sa unix.SockaddrInet4
		copy(sa.Addr[:], pkt[16:20])
		return unix.Sendto(d.fd4, pkt, 0, &sa) == nil
	case 6:
		if len(pkt) < 40 || d.fd6 < 0 {
			return false
		}
		var sa unix.SockaddrInet6
		copy(sa.Addr[:], pkt[24:40])
		return unix.Sendto(d.fd6, pkt, 0, &sa) == nil
	}
	return false
}

func (d *duplicator) close() {
	if d == nil {
		return
	}
	for _, fd := range []int{d.fd4, d.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
