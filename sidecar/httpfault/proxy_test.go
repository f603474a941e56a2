package httpfault

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// through starts a proxy on loopback that sends every connection to
// target, as the agent's REDIRECT would, and returns its address.
func through(t testing.TB, p *Proxy, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); p.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.Handle(c, target)
		}
	}()
	return ln.Addr().String()
}

func app(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "app %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPFaultsAbortAndDelayWhatTheyMatch(t *testing.T) {
	upstream := app(t)
	checkout := &Rule{Method: "POST", Path: "/checkout*", Abort: &Abort{Status: 503, Body: "injected", Percent: 0.10}}
	slow := &Rule{Path: "/slow", Delay: 200 * time.Millisecond}
	p := &Proxy{Rules: []*Rule{checkout, slow}}
	addr := through(t, p, upstream.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader("x"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("abort 10% answers its share with the status and body, over kept-alive connections", func(t *testing.T) {
		const n = 10000
		aborted := 0
		for i := 0; i < n; i++ {
			code, body := do("POST", "/checkout/pay")
			switch {
			case code == 503 && body == "injected":
				aborted++
			case code == 200 && body == "app POST /checkout/pay":
			default:
				t.Fatalf("unexpected answer %d %q", code, body)
			}
		}
		share := float64(aborted) / n
		// σ at 10% over 10,000 is 0.3 points: ±1.2 is 4σ.
		t.Logf("abort 10%%: %d of %d requests answered 503 (%.2f%%); rule counts matched %d aborted %d; connections read as HTTP/1 %d",
			aborted, n, 100*share, checkout.Matched.Load(), checkout.Aborted.Load(), p.HTTP1.Load())
		if math.Abs(share-0.10) > 0.012 {
			t.Errorf("aborted %.2f%%, want 10 ± 1.2", 100*share)
		}
		if p.HTTP1.Load() > 8 {
			t.Errorf("%d connections for %d requests: keep-alive was lost", p.HTTP1.Load(), n)
		}
	})
	t.Run("other methods and paths are untouched", func(t *testing.T) {
		for _, c := range [][2]string{{"GET", "/checkout/pay"}, {"POST", "/cart"}} {
			for i := 0; i < 500; i++ {
				if code, body := do(c[0], c[1]); code != 200 || body != "app "+c[0]+" "+c[1] {
					t.Fatalf("%s %s: %d %q", c[0], c[1], code, body)
				}
			}
		}
	})
	t.Run("a delay on one path holds it that long and no other", func(t *testing.T) {
		p50 := func(path string) time.Duration {
			var d []time.Duration
			for i := 0; i < 41; i++ {
				start := time.Now()
				do("GET", path)
				d = append(d, time.Since(start))
			}
			slices.Sort(d)
			return d[len(d)/2]
		}
		slowP50, otherP50 := p50("/slow"), p50("/fast")
		t.Logf("delay 200ms on /slow: p50 %s; /fast p50 %s", slowP50.Round(10*time.Microsecond), otherP50.Round(10*time.Microsecond))
		if slowP50 < 200*time.Millisecond || slowP50-otherP50 > 202*time.Millisecond {
			t.Errorf("/slow p50 %s, want 200ms within 2ms of the other path's %s", slowP50, otherP50)
		}
		if otherP50 > 20*time.Millisecond {
			t.Errorf("/fast p50 %s: the delay leaked", otherP50)
		}
	})
}

// A gRPC service over h2c: a matching method gets the gRPC status as a
// trailers-only answer; others are forwarded with their trailers.
func TestGRPCAbortIsATrailersOnlyStatus(t *testing.T) {
	grpcApp := httptest.NewServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write([]byte{0, 0, 0, 0, 0}) // an empty message
		w.Header().Set("Grpc-Status", "0")
	}), &http2.Server{}))
	t.Cleanup(grpcApp.Close)
	unavailable := 14
	rule := &Rule{Path: "/shop.Payments/*", Abort: &Abort{GRPCCode: &unavailable, Message: "injected by faultline"}}
	addr := through(t, &Proxy{Rules: []*Rule{rule}}, grpcApp.Listener.Addr().String())
	client := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}}}
	call := func(method string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", "http://"+addr+method, strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := call("/shop.Payments/Charge")
	if resp.ProtoMajor != 2 || resp.Header.Get("Grpc-Status") != "14" || resp.Header.Get("Grpc-Message") != "injected by faultline" || len(body) != 0 {
		t.Errorf("aborted call: proto %d, grpc-status %q, message %q, %d body bytes; want HTTP/2, 14, the message, none",
			resp.ProtoMajor, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"), len(body))
	}
	resp, body = call("/shop.Cart/Get")
	if resp.Trailer.Get("Grpc-Status") != "0" || len(body) != 5 {
		t.Errorf("forwarded call: grpc-status trailer %q, %d body bytes; want 0 and the message", resp.Trailer.Get("Grpc-Status"), len(body))
	}
}

// What is not HTTP passes untouched: TLS on the same port, and a protocol
// where the server speaks first.
func TestWhatIsNotHTTPPassesThrough(t *testing.T) {
	tlsApp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secret") }))
	t.Cleanup(tlsApp.Close)
	p := &Proxy{Rules: []*Rule{{Abort: &Abort{Status: 500}}}, Detect: 100 * time.Millisecond}
	addr := through(t, p, tlsApp.Listener.Addr().String())
	client := tlsApp.Client()
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "secret" {
		t.Errorf("TLS through the proxy: %d %q", resp.StatusCode, b)
	}

	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { banner.Close() })
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "220 ready\r\n")
			c.Close()
		}
	}()
	p2 := &Proxy{Rules: []*Rule{{Abort: &Abort{Status: 500}}}, Detect: 100 * time.Millisecond}
	c, err := net.Dial("tcp", through(t, p2, banner.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if string(got) != "220 ready\r\n" {
		t.Errorf("server-first protocol: got %q", got)
	}
	if p.Passed.Load() != 1 || p2.Passed.Load() != 1 {
		t.Errorf("passed through: %d and %d connections, want 1 each", p.Passed.Load(), p2.Passed.Load())
	}
}

func TestClassifyNeedsNoMoreBytesThanItMust(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    kind
		decided bool
	}{
		{"G", kindOther, false},
		{"GET ", kindH1, true},
		{"POST /x HTTP/1.1", kindH1, true},
		{"P", kindOther, false},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", kindH2C, true},
		{"PRI * HTTP/2.0\r\n", kindOther, false},
		{"\x16\x03\x01", kindOther, true}, // a TLS ClientHello
		{"GETX", kindOther, true},
	} {
		if k, d := classify([]byte(c.in)); k != c.want || d != c.decided {
			t.Errorf("classify(%q) = %v, %v; want %v, %v", c.in, k, d, c.want, c.decided)
		}
	}
}
