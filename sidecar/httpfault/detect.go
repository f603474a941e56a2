package httpfault

import (
	"bufio"
	"bytes"
	"net"
	"time"
)

type kind int

const (
	kindOther kind = iota
	kindH1
	kindH2C
)

// h2Preface opens every HTTP/2 connection; in clear it means h2c with prior
// knowledge, which is how gRPC clients speak without TLS.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

var methods = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE ")}

// detect reads as few bytes as tell the protocol, waiting at most Detect:
// a client that says nothing (the server speaks first: SMTP, MySQL) or
// starts with anything else (TLS) is passed through.
func (p *Proxy) detect(c net.Conn, br *bufio.Reader) kind {
	wait := p.Detect
	if wait == 0 {
		wait = 500 * time.Millisecond
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return kindOther
		}
		if k, decided := classify(b); decided {
			return k
		}
	}
	return kindOther
}

// classify says what the first bytes b are, or that more are needed.
func classify(b []byte) (kind, bool) {
	undecided := false
	if bytes.HasPrefix(h2Preface, b) {
		if len(b) == len(h2Preface) {
			return kindH2C, true
		}
		undecided = true
	}
	for _, m := range methods {
		if bytes.HasPrefix(b, m) {
			return kindH1, true
		}
		if bytes.HasPrefix(m, b) {
			undecided = true
		}
	}
	if undecided {
		return kindOther, false
	}
	return kindOther, true
}
