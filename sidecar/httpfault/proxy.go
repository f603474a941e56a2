package httpfault

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Proxy reads the connections it is handed and applies Rules to the HTTP
// requests on them. The zero value forwards everything untouched.
type Proxy struct {
	// Rules are read in order; the first that matches decides. Where a
	// rule's connections go may change while the proxy serves (Rule.SetTo);
	// the list itself does not.
	Rules []*Rule
	// Detect is how long a connection may stay silent before it is taken
	// for a protocol where the server speaks first and passed through;
	// 0 means 500ms.
	Detect time.Duration
	// Dial reaches where a connection was going; nil dials TCP with Mark.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Mark is set (SO_MARK) on the default Dial's sockets, so that the
	// netfilter rules that send the pod's connections here let the
	// proxy's own pass; 0 sets none.
	Mark uint32
	// Limit bounds the connections held (shared between proxies); nil
	// holds any number.
	Limit *ConnLimit

	// Passed counts connections passed through untouched (not HTTP);
	// HTTP1 and H2C the connections read as HTTP/1.x and h2c.
	Passed, HTTP1, H2C atomic.Uint64

	once    sync.Once
	h1      *http.Server
	h1conns *connListener
	fwd     *httputil.ReverseProxy

	mu     sync.Mutex
	conns  map[*peekedConn]struct{}
	closed bool
}

type targetKey struct{}

// target is where a connection was going: as dialled, and parsed for the
// rules' destinations.
type target struct {
	addr string
	ap   netip.AddrPort
}

// Handle serves one connection whose original destination was target
// ("host:port"), until it closes.
func (p *Proxy) Handle(c net.Conn, dst string) {
	p.once.Do(p.init)
	ap, _ := netip.ParseAddrPort(dst)
	// Detection needs 24 bytes at most; reads past what it peeked go
	// straight to the socket, so the buffer can stay small.
	br := bufio.NewReaderSize(c, 64)
	conn := &peekedConn{Conn: c, r: br, target: target{dst, ap}, p: p}
	if !p.track(conn) {
		return
	}
	if conn.admission == bypass {
		// Past the limit: not read, no faults, the socket spliced as is.
		p.pass(conn, conn.Conn, dst)
		return
	}
	switch p.detect(c, br) {
	case kindH1:
		p.HTTP1.Add(1)
		p.h1conns.push(conn)
	case kindH2C:
		p.H2C.Add(1)
		defer conn.Close()
		ctx := context.WithValue(context.Background(), targetKey{}, conn.target)
		(&http2.Server{}).ServeConn(conn, &http2.ServeConnOpts{Context: ctx, Handler: p, BaseConfig: p.h1})
	default:
		p.Passed.Add(1)
		p.pass(conn, conn, dst)
	}
}

// track notes c as open, or closes it when the proxy is closed or full.
func (p *Proxy) track(c *peekedConn) bool {
	if c.admission = p.Limit.take(); c.admission == refused {
		_ = c.Conn.Close()
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.Limit.release(c.admission)
		_ = c.Conn.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) init() {
	p.conns = map[*peekedConn]struct{}{}
	if p.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, Control: markControl(p.Mark)}
		p.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	h1 := &http.Transport{
		DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return p.Dial(ctx, addr) },
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	// h2c upstream, as the client spoke it: gRPC keeps its trailers and
	// streams.
	h2 := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			return p.Dial(ctx, addr)
		},
	}
	p.fwd = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(targetKey{}).(target).addr
			pr.Out.Host = pr.In.Host
			// The app sees the proxy's loopback address: the client's
			// goes in X-Forwarded-For.
			pr.SetXForwarded()
		},
		Transport: protoSwitch{h1: h1, h2: h2},
		// Without a pool every response body is copied through a fresh
		// 32 KiB buffer: 4% of the proxy's CPU clearing it, more in GC.
		BufferPool: bufferPool{},
		// No periodic flush: ReverseProxy already flushes every write of
		// a streaming response (gRPC, server-sent events, unknown
		// length), and flushing a sized body's every write cost a system
		// call per response.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			// The app did not answer: what a client without faultline
			// would see is a failed connection, so say so plainly.
			http.Error(w, "faultline: the app did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.h1conns = newConnListener()
	p.h1 = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: time.Minute,
		ConnState:         p.Limit.state,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peekedConn); ok {
				return context.WithValue(ctx, targetKey{}, pc.target)
			}
			return ctx
		},
	}
	go func() { _ = p.h1.Serve(p.h1conns) }()
}

// Close closes every connection the proxy holds (their clients connect
// again, past the proxy once its rules are gone) and refuses new ones.
func (p *Proxy) Close() error {
	p.once.Do(p.init)
	p.mu.Lock()
	p.closed = true
	open := make([]*peekedConn, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return p.h1.Close()
}

// Open is how many connections the proxy holds.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// ServeHTTP applies the first matching rule, then forwards.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dst, _ := r.Context().Value(targetKey{}).(target)
	for _, rl := range p.Rules {
		if !rl.matches(r, dst.ap) {
			continue
		}
		rl.Matched.Add(1)
		if rl.Delay > 0 && chance(rl.DelayPercent) {
			rl.Delayed.Add(1)
			t := time.NewTimer(rl.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if rl.Abort != nil && chance(rl.Abort.Percent) {
			rl.Aborted.Add(1)
			abort(w, r, rl.Abort)
			return
		}
		break
	}
	p.fwd.ServeHTTP(w, r)
}

// abort answers r itself: a gRPC status as a trailers-only response to a
// gRPC request when the rule has one, else the HTTP status and body.
func abort(w http.ResponseWriter, r *http.Request, a *Abort) {
	w.Header().Set("X-Faultline-Fault", "abort")
	if a.GRPCCode != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", strconv.Itoa(*a.GRPCCode))
		if a.Message != "" {
			w.Header().Set("Grpc-Message", a.Message)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	body := a.Body
	if body == "" {
		body = http.StatusText(a.Status)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, body)
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// protoSwitch forwards HTTP/2 requests over h2c and the others over
// HTTP/1.1, as the client spoke.
type protoSwitch struct{ h1, h2 http.RoundTripper }

func (s protoSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ProtoMajor == 2 {
		return s.h2.RoundTrip(r)
	}
	return s.h1.RoundTrip(r)
}

// pass copies bytes both ways until both sides are done; from is c itself
// when detection peeked at it, its socket when nothing was read (the
// kernel then splices, with no buffer in the agent).
func (p *Proxy) pass(c *peekedConn, from io.Reader, target string) {
	defer c.Close()
	up, err := p.Dial(context.Background(), target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, from); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c.Conn, up); closeWrite(c.Conn); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// peekedConn reads first what detection buffered.
type peekedConn struct {
	net.Conn
	r         *bufio.Reader
	target    target
	p         *Proxy
	admission admission
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// Close closes the connection and forgets it.
func (c *peekedConn) Close() error {
	c.p.mu.Lock()
	_, held := c.p.conns[c]
	delete(c.p.conns, c)
	c.p.mu.Unlock()
	if held {
		c.p.Limit.state(c, http.StateClosed)
		c.p.Limit.release(c.admission)
	}
	return c.Conn.Close()
}

// connListener is a net.Listener fed by Handle, for http.Server.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

var errNoTarget = errors.New("no original destination")
