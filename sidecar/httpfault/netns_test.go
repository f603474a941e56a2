package httpfault

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/testenv"
)

var inNetns, dialIn = testenv.InNetns, testenv.DialIn

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// The proxy is transparent to the pod's clients: a REDIRECT of the app's
// port in the pod's namespace sends their connections to it, it finds
// where each was going (SO_ORIGINAL_DST, both families), and what it
// forwards reaches the app over loopback without being redirected again.
func TestInboundRedirectThroughTheProxyInBothFamilies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: network-namespace tests need root (ip netns, veth, iptables); run make test as root")
	}
	id := rand.IntN(200) + 20
	pod, peer := fmt.Sprintf("flh-pod-%d-%d", os.Getpid(), id), fmt.Sprintf("flh-peer-%d-%d", os.Getpid(), id)
	podIP, peerIP := fmt.Sprintf("10.198.%d.1", id), fmt.Sprintf("10.198.%d.2", id)
	podIP6 := fmt.Sprintf("fd00:198:%x::1", id)
	for _, ns := range []string{pod, peer} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh(t, "ip", "link", "add", "flh0", "netns", pod, "type", "veth", "peer", "name", "flh1", "netns", peer)
	for _, c := range [][]string{
		{pod, "ip", "addr", "add", podIP + "/24", "dev", "flh0"},
		{pod, "ip", "addr", "add", podIP6 + "/64", "dev", "flh0", "nodad"},
		{pod, "ip", "link", "set", "flh0", "up"},
		{pod, "ip", "link", "set", "lo", "up"},
		{peer, "ip", "addr", "add", peerIP + "/24", "dev", "flh1"},
		{peer, "ip", "addr", "add", fmt.Sprintf("fd00:198:%x::2/64", id), "dev", "flh1", "nodad"},
		{peer, "ip", "link", "set", "flh1", "up"},
		{pod, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "15001"},
		{pod, "ip6tables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "15001"},
	} {
		sh(t, append([]string{"ip", "netns", "exec"}, c...)...)
	}
	var appLn, proxyLn net.Listener
	if err := inNetns(t, pod, func() (err error) {
		if appLn, err = net.Listen("tcp", ":8080"); err != nil {
			return err
		}
		proxyLn, err = net.Listen("tcp", ":15001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { appLn.Close(); proxyLn.Close() })
	go func() {
		_ = http.Serve(appLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() {
				// Apps that trust loopback callers must not take proxied
				// clients for local ones.
				http.Error(w, "called from loopback: "+r.RemoteAddr, http.StatusForbidden)
				return
			}
			fmt.Fprintf(w, "app %s from %s", r.URL.Path, r.Header.Get("X-Forwarded-For"))
		}))
	}()
	p := &Proxy{Rules: []*Rule{{Path: "/checkout", Abort: &Abort{Status: 503, Body: "injected"}}}, Dial: dialIn(t, pod)}
	t.Cleanup(func() { p.Close() })
	go func() { _ = p.ServeInbound(proxyLn) }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialIn(t, peer)(ctx, addr) }}}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{podIP, "[" + podIP6 + "]"} {
		if code, body := get("http://" + host + ":8080/checkout"); code != 503 || body != "injected" {
			t.Errorf("%s /checkout: %d %q, want the injected 503", host, code, body)
		}
		code, body := get("http://" + host + ":8080/cart")
		if code != 200 || !strings.HasPrefix(body, "app /cart from ") || !strings.Contains(body, strings.Trim(peerIPFor(host, peerIP, id), "[]")) {
			t.Errorf("%s /cart: %d %q, want the app's answer naming the client", host, code, body)
		}
	}
	if p.HTTP1.Load() < 2 {
		t.Errorf("%d connections reached the proxy, want the REDIRECTed ones", p.HTTP1.Load())
	}
}

func peerIPFor(host, peerIP string, id int) string {
	if strings.HasPrefix(host, "[") {
		return fmt.Sprintf("fd00:198:%x::2", id)
	}
	return peerIP
}
