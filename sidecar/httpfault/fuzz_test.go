package httpfault

import (
	"io"
	"net"
	"testing"
	"time"
)

// Whatever a client sends (anyone on the pod network can), the proxy
// neither panics nor hangs: it answers, forwards or closes.
func FuzzProxyConnection(f *testing.F) {
	for _, s := range []string{
		"GET /checkout HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"\x16\x03\x01\x00\x05hello",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	upstream := app(f)
	unavailable := 14
	p := &Proxy{Detect: 20 * time.Millisecond, Limit: &ConnLimit{Max: 64}, Rules: []*Rule{
		{Path: "/checkout*", Abort: &Abort{Status: 503, GRPCCode: &unavailable}},
		{Method: "POST", Delay: time.Millisecond},
	}}
	addr := through(f, p, upstream.Listener.Addr().String())
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite()
		// The proxy answers, forwards or closes; a hang would stop at the
		// deadline, a panic would end the process.
		_, _ = io.Copy(io.Discard, c)
	})
}
