//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// 17. HTTP faults on the real kubelet: 10% of the pod's GET /checkout
// answered 503 by the agent's proxy (other paths untouched), and its calls
// to another pod's /slow held 200 ms, measured from outside the pod and
// from inside it.
func TestScenario17HTTPFaults(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "dep", "", false, nil)
	dep := running(t, ctx, "shop", "dep")
	faults := fmt.Sprintf(`http: [{direction: inbound, port: 8080, match: {method: GET, path: /checkout*}, abort: {status: 503, percent: 10%%}},
  {direction: outbound, to: ["%s:8081"], match: {path: /slow}, delay: {fixed: 200ms}}]`, dep.Status.PodIP)
	createPod(t, ctx, "shop", "web", faults, true, nil)
	web := running(t, ctx, "shop", "web")
	waitFor(t, ctx, 30*time.Second, "the HTTP faults", func() bool { return agentActive(t, web.Status.PodIP, "http") })

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	count := func(path string, n int) (aborted, ok int) {
		for i := 0; i < n; i++ {
			resp, err := client.Get("http://" + web.Status.PodIP + ":8080" + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 503 && resp.Header.Get("X-Faultline-Fault") == "abort":
				aborted++
			case resp.StatusCode == 200:
				ok++
			}
		}
		return aborted, ok
	}
	const n = 2000
	aborted, ok := count("/checkout", n)
	cartAborted, cartOK := count("/cart", 200)
	share := float64(aborted) / n
	bound := 3 * math.Sqrt(0.1*0.9/n)

	// From inside the pod: the probe binary in the pod's network namespace.
	pid := containerPID(t, ctx, "shop", "web", "app")
	median := func(path string) float64 {
		out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "--", bins["probe"],
			"-url", "http://"+dep.Status.PodIP+":8081"+path, "-n", "10").CombinedOutput()
		if err != nil {
			t.Fatalf("probe %s from the pod: %v: %s", path, err, out)
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		return v
	}
	slow, fast := median("/slow"), median("/fast")
	pass := math.Abs(share-0.1) <= bound && aborted+ok == n && cartAborted == 0 && cartOK == 200 && slow-fast > 195 && slow-fast < 230
	record("17 HTTP faults", "inbound GET /checkout* abort 503 at 10%; outbound to another pod's :8081 /slow delay 200ms",
		fmt.Sprintf("/checkout: %d of %d answered 503 by the proxy (%.2f%%, bound 10 ± %.2f%%), the rest 200; /cart: %d of 200 aborted; from the pod: /slow %.1f ms, /fast %.1f ms (p50 of 10)",
			aborted, n, 100*share, 100*bound, cartAborted, slow, fast), pass)
	if !pass {
		t.Fatalf("aborted %d/%d (ok %d), cart %d/%d, slow %.1f fast %.1f", aborted, n, ok, cartAborted, cartOK, slow, fast)
	}
}
