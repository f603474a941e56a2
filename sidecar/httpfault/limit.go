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
// would (the client connects again when it has something to send). With
// none idle (connections held mid-request, slowly, to fill the proxy), a
// new connection is not read at all but passed through to where it was
// going, untouched and without faults: fail open, so that nobody can turn
// the proxy into a way of refusing the app's clients. Only past Bypass such
// connections as well is a new one closed.
type ConnLimit struct {
	Max, Bypass int

	mu       sync.Mutex
	n        int
	bypassed int
	idle     []net.Conn // HTTP/1 connections between requests, oldest first
	// Evicted counts idle connections closed to make room, Bypassed the
	// connections passed through untouched for want of any, Refused the
	// ones closed past both limits.
	Evicted, Bypassed, Refused atomic.Uint64
}

// admission is what take decides for a new connection.
type admission int

const (
	admitted admission = iota
	bypass
	refused
)

// take admits one more connection, closing the longest-idle one if that
// is what it takes, or says to pass it through, or to close it.
func (l *ConnLimit) take() admission {
	if l == nil || l.Max <= 0 {
		return admitted
	}
	l.mu.Lock()
	if l.n < l.Max {
		l.n++
		l.mu.Unlock()
		return admitted
	}
	if len(l.idle) == 0 {
		defer l.mu.Unlock()
		if l.bypassed < l.Bypass {
			l.bypassed++
			l.Bypassed.Add(1)
			return bypass
		}
		l.Refused.Add(1)
		return refused
	}
	oldest := l.idle[0]
	l.idle = l.idle[1:]
	l.Evicted.Add(1)
	// The evicted connection's slot passes to the new one: its release
	// below must not free a second.
	l.n++
	l.mu.Unlock()
	_ = oldest.Close()
	return admitted
}

// release gives back what take gave.
func (l *ConnLimit) release(a admission) {
	if l == nil || l.Max <= 0 {
		return
	}
	l.mu.Lock()
	if a == bypass {
		l.bypassed--
	} else {
		l.n--
	}
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
