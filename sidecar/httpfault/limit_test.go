package httpfault

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// At the limit the longest-idle keep-alive connection makes room; with
// none idle (here: connections passed through, never idle), a new one is
// closed. Either way the proxy holds no more than the limit.
func TestTheConnectionLimitEvictsTheLongestIdleThenRefuses(t *testing.T) {
	upstream := app(t)
	limit := &ConnLimit{Max: 3}
	p := &Proxy{Limit: limit, Detect: 50 * time.Millisecond}
	addr := through(t, p, upstream.Listener.Addr().String())
	open := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprint(c, "GET /cart HTTP/1.1\r\nHost: app\r\n\r\n")
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return c, r
	}
	first, firstR := open()
	time.Sleep(10 * time.Millisecond)
	open()
	open()
	if h := limit.Held(); h != 3 {
		t.Fatalf("held %d, want 3", h)
	}
	open() // the fourth: the first, idle longest, is closed for it
	_ = first.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := firstR.ReadByte(); err != io.EOF {
		t.Errorf("the longest-idle connection: read %v, want it closed (EOF)", err)
	}
	if limit.Evicted.Load() != 1 || limit.Held() != 3 {
		t.Errorf("evicted %d, held %d; want 1 and 3", limit.Evicted.Load(), limit.Held())
	}

	// Connections that say nothing are passed through and never idle.
	silent := &ConnLimit{Max: 2}
	q := &Proxy{Limit: silent, Detect: 20 * time.Millisecond}
	qaddr := through(t, q, upstream.Listener.Addr().String())
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", qaddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	for deadline := time.Now().Add(2 * time.Second); silent.Held() < 2 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
	}
	c, err := net.Dial("tcp", qaddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a connection past a full limit with none idle: read %v, want it closed (EOF)", err)
	}
	if silent.Refused.Load() != 1 || silent.Held() != 2 {
		t.Errorf("refused %d, held %d; want 1 and 2", silent.Refused.Load(), silent.Held())
	}
}

// Filled with connections held mid-request (a slow client, or one filling
// the proxy on purpose), the proxy fails open: the next connection is not
// read but passed through, untouched, so the app's clients still reach it
// (without faults); only past the bypass slots too is one closed.
func TestAFullProxyPassesNewConnectionsThroughUntouched(t *testing.T) {
	upstream := app(t)
	limit := &ConnLimit{Max: 1, Bypass: 1}
	p := &Proxy{Limit: limit, Detect: time.Second, Rules: []*Rule{{Abort: &Abort{Status: 503}}}}
	addr := through(t, p, upstream.Listener.Addr().String())
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET /cart HTTP/1.1\r\nHost: ap") // and never the rest
	for deadline := time.Now().Add(2 * time.Second); limit.Held() < 1 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/cart")
	if err != nil {
		t.Fatalf("a client of a full proxy: %v, want the app", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "app GET /cart" || limit.Bypassed.Load() != 1 {
		t.Errorf("a client of a full proxy got %d %q (bypassed %d), want the app's answer, untouched", resp.StatusCode, b, limit.Bypassed.Load())
	}
}
