package httpfault

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkForwarding is one kept-alive GET to the app, directly and
// through the proxy with a rule that matches nothing, in the same run:
// what faultline costs requests it does not touch (goal: ≤ 0.2 ms added,
// ≥ 80% of the direct rate). Client, proxy and app share the machine's
// cores. Two apps: an echo that does nothing (the proxy's worst case: it
// works about as hard per request as the app and its client together),
// and one that spends about 200 µs of CPU per request, as a small service
// answering from memory does.
func BenchmarkForwarding(b *testing.B) {
	for _, a := range []struct {
		name string
		srv  *httptest.Server
	}{{"echo app", app(b)}, {"app working 200µs", workingApp(b, 200*time.Microsecond)}} {
		p := &Proxy{Rules: []*Rule{{Path: "/never", Abort: &Abort{Status: 503}}}}
		proxied := through(b, p, a.srv.Listener.Addr().String())
		for _, c := range []struct{ name, addr string }{
			{"direct", a.srv.Listener.Addr().String()},
			{"through the proxy", proxied},
		} {
			b.Run(a.name+"/"+c.name+"/one client, sequential (latency)", func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				url := "http://" + c.addr + "/cart"
				lat := make([]time.Duration, 0, b.N)
				for i := 0; i < b.N; i++ {
					start := time.Now()
					get(b, client, url)
					lat = append(lat, time.Since(start))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
			b.Run(a.name+"/"+c.name+"/parallel (throughput)", func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				url := "http://" + c.addr + "/cart"
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						get(b, client, url)
					}
				})
			})
		}
	}
}

func get(b *testing.B, client *http.Client, url string) {
	resp, err := client.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// workingApp hashes for about work per request.
func workingApp(b *testing.B, work time.Duration) *httptest.Server {
	buf := make([]byte, 4096)
	// How many hashes of buf take work on this machine.
	start, n := time.Now(), 0
	for time.Since(start) < 50*time.Millisecond {
		sha256.Sum256(buf)
		n++
	}
	per := int(float64(n) * float64(work) / float64(time.Since(start)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sum [32]byte
		for i := 0; i < per; i++ {
			sum = sha256.Sum256(buf)
		}
		fmt.Fprintf(w, "app %s %x", r.URL.Path, sum[:4])
	}))
	b.Cleanup(srv.Close)
	return srv
}
