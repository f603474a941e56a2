package httpfault

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkForwarding is one kept-alive GET to the app, directly and
// through the proxy with a rule that matches nothing, in the same run:
// what faultline costs requests it does not touch (goal: ≤ 0.2 ms added,
// ≥ 80% of the direct rate).
func BenchmarkForwarding(b *testing.B) {
	upstream := app(b)
	p := &Proxy{Rules: []*Rule{{Path: "/never", Abort: &Abort{Status: 503}}}}
	proxied := through(b, p, upstream.Listener.Addr().String())
	for _, c := range []struct{ name, addr string }{
		{"direct", upstream.Listener.Addr().String()},
		{"through the proxy", proxied},
	} {
		b.Run(c.name+"/one client, sequential (latency)", func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			url := "http://" + c.addr + "/cart"
			for i := 0; i < b.N; i++ {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		b.Run(c.name+"/parallel (throughput)", func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			url := "http://" + c.addr + "/cart"
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
