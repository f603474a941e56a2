package httpfault

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// ConnLimit bounds the connections one or more proxies hold together, so
// that whoever can reach a redirected port (anyone on the pod network)
// cannot grow the agent past its memory limit by opening connections: a
// proxied connection costs about 24 KiB. At the limit the proxy closes the
// keep-alive connection that has been idle longest, as a busy server
// would (the client connects again when it has something to send); with
// none idle, the new connection is closed.
type ConnLimit struct {
	Max int

	mu   sync.Mutex
	n    int
	idle []net.Conn // HTTP/1 connections between requests, oldest first
	// Evicted counts idle connections closed to make room, Refused new
	// connections closed for want of any.
	Evicted, Refused atomic.Uint64
}

// take admits one more connection, closing the longest-idle one if that
// is what it takes; false means the new one must be closed.
func (l *ConnLimit) take() bool {
	if l == nil || l.Max <= 0 {
		return true
	}
	l.mu.Lock()
	if l.n < l.Max {
		l.n++
		l.mu.Unlock()
		return true
	}
	if len(l.idle) == 0 {
		l.Refused.Add(1)
		l.mu.Unlock()
		return false
	}
	oldest := l.idle[0]
	l.idle = l.idle[1:]
	l.Evicted.Add(1)
	// The evicted connection's slot passes to the new one: its release
	// below must not free a second.
	l.n++
	l.mu.Unlock()
	_ = oldest.Close()
	return true
}

func (l *ConnLimit) release() {
	if l == nil || l.Max <= 0 {
		return
	}
	l.mu.Lock()
	l.n--
	l.mu.Unlock()
}

// state follows http.Server's ConnState: idle connections are the ones
// that may be closed to make room.
func (l *ConnLimit) state(c net.Conn, s http.ConnState) {
	if l == nil || l.Max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ic := range l.idle {
		if ic == c {
			l.idle = append(l.idle[:i], l.idle[i+1:]...)
			break
		}
	}
	if s == http.StateIdle {
		l.idle = append(l.idle, c)
	}
}

// Held is how many connections the limit counts now.
func (l *ConnLimit) Held() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
