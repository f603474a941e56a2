package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/hack/testenv"
)

// HTTP faults with the real binary in real network namespaces: an app in
// the "pod" namespace, a dependency in a "peer" namespace on a veth. The
// agent redirects the app's port and its calls to the dependency through
// its proxy; a keep-alive connection opened before the faults is reset
// once and comes back through the proxy; SIGKILL leaves the app's port
// answering again within the HTTP switch's second; SIGTERM removes
// everything within 1 s.
func TestAgentBinaryHTTPFaultsInboundOutboundAndFailOpen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root for ip netns and iptables")
	}
	agent := testenv.GoBinary(t, "./cmd/faultline-agent")
	echo := testenv.GoBinary(t, "./e2e/echo")
	id := rand.IntN(200) + 20
	pod, peer := fmt.Sprintf("flh-apod-%d-%d", os.Getpid(), id), fmt.Sprintf("flh-apeer-%d-%d", os.Getpid(), id)
	podIP, peerIP := fmt.Sprintf("10.197.%d.1", id), fmt.Sprintf("10.197.%d.2", id)
	podIP6 := fmt.Sprintf("fd00:197:%x::1", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, ns := range []string{pod, peer} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "link", "add", "flha0", "netns", pod, "type", "veth", "peer", "name", "flha1", "netns", peer)
	for _, c := range [][]string{
		{pod, "ip", "addr", "add", podIP + "/24", "dev", "flha0"},
		{pod, "ip", "addr", "add", podIP6 + "/64", "dev", "flha0", "nodad"},
		{pod, "ip", "link", "set", "flha0", "up"},
		{pod, "ip", "link", "set", "lo", "up"},
		{peer, "ip", "addr", "add", peerIP + "/24", "dev", "flha1"},
		{peer, "ip", "addr", "add", fmt.Sprintf("fd00:197:%x::2/64", id), "dev", "flha1", "nodad"},
		{peer, "ip", "link", "set", "flha1", "up"},
	} {
		run(append([]string{"ip", "netns", "exec"}, c...)...)
	}
	for _, ns := range []string{pod, peer} {
		app := exec.Command("ip", "netns", "exec", ns, echo, "8080,80")
		if err := app.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	}
	// Clients: from the peer to the app (inbound), from the pod to the
	// dependency (outbound). keepAlive reuses its connections.
	client := func(ns string, keepAlive bool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return testenv.DialIn(t, ns)(ctx, addr) }}}
	}
	get := func(c *http.Client, url string) (int, string, time.Duration, error) {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), time.Since(start), nil
	}
	fromPeer, fresh, fromPod := client(peer, true), client(peer, false), client(pod, false)
	appURL := "http://" + podIP + ":8080"
	waitFor(t, "the app to listen", func() bool { _, _, _, err := get(fresh, appURL+"/"); return err == nil })
	waitFor(t, "the dependency to listen", func() bool { _, _, _, err := get(fromPod, "http://"+peerIP+":80/"); return err == nil })
	if code, _, _, err := get(fromPeer, appURL+"/checkout"); code != 200 || err != nil {
		t.Fatalf("before faults: %d %v", code, err)
	}
	fromPodKept := client(pod, true)
	if code, _, _, err := get(fromPodKept, "http://"+peerIP+":80/slow"); code != 200 || err != nil {
		t.Fatalf("before faults, outbound: %d %v", code, err)
	}

	podinfo := t.TempDir()
	pause := func(on bool) {
		v := ""
		if on {
			v = "faultline.dev/paused=\"true\"\n"
		}
		if err := os.WriteFile(podinfo+"/annotations", []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pause(false)
	spec := fmt.Sprintf(`{"http":[`+
		`{"direction":"inbound","port":8080,"match":{"method":"GET","path":"/checkout*"},"abort":{"status":503,"body":"injected"}},`+
		`{"direction":"outbound","to":["%s:80"],"match":{"path":"/slow"},"delay":{"fixed":"200ms"}}]}`, peerIP)
	start := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command("ip", "netns", "exec", pod, agent, "run", "--listen=127.0.0.1:19191", "--status-listen=127.0.0.1:19192", "--proc=", "--podinfo-dir="+podinfo)
		cmd.Env = append(os.Environ(), "FAULTLINE_SPEC="+spec)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		applied, log := make(chan struct{}), &strings.Builder{}
		go func() {
			sc := bufio.NewScanner(stderr)
			once := false
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if !once && strings.Contains(sc.Text(), `"msg":"network faults"`) && strings.Contains(sc.Text(), `"on":true`) {
					once = true
					close(applied)
				}
			}
		}()
		select {
		case <-applied:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("agent did not apply within 10s:\n%s", log)
		}
		return cmd, log
	}
	agentRun, _ := start()

	// The keep-alive connection opened before the faults is reset once;
	// the client's retry (a GET is idempotent) comes back through the proxy.
	code, body, _, err := get(fromPeer, appURL+"/checkout")
	if err != nil || code != 503 || body != "injected" {
		t.Errorf("inbound /checkout on the connection opened before the faults: %d %q %v, want the injected 503", code, body, err)
	}
	for _, u := range []string{appURL, "http://[" + podIP6 + "]:8080"} {
		if code, body, _, err := get(fresh, u+"/checkout/42"); code != 503 || body != "injected" || err != nil {
			t.Errorf("inbound %s/checkout/42: %d %q %v, want the injected 503", u, code, body, err)
		}
		if code, body, _, err := get(fresh, u+"/cart"); code != 200 || body != "ok" || err != nil {
			t.Errorf("inbound %s/cart: %d %q %v, want the app's answer", u, code, body, err)
		}
	}
	// The pod's own keep-alive connection to the dependency, opened before
	// the faults, is reset once and its retry goes through the proxy.
	if code, _, d, err := get(fromPodKept, "http://"+peerIP+":80/slow"); code != 200 || err != nil || d < 200*time.Millisecond {
		t.Errorf("outbound /slow on the connection opened before the faults: %d in %s %v, want it delayed 200ms", code, d, err)
	}
	// Outbound: the pod's call to /slow waits 200 ms more than /fast.
	var slow, fast []time.Duration
	for i := 0; i < 5; i++ {
		_, _, d1, err1 := get(fromPod, "http://"+peerIP+":80/slow")
		_, _, d2, err2 := get(fromPod, "http://"+peerIP+":80/fast")
		if err1 != nil || err2 != nil {
			t.Fatalf("outbound: %v %v", err1, err2)
		}
		slow, fast = append(slow, d1), append(fast, d2)
	}
	ms, mf := median(slow), median(fast)
	if ms-mf < 195*time.Millisecond || ms-mf > 260*time.Millisecond {
		t.Errorf("outbound /slow %s vs /fast %s: want 200ms between them", ms, mf)
	}
	_, metrics, _, err := get(client(pod, false), "http://127.0.0.1:19191/metrics")
	if err != nil {
		t.Errorf("metrics: %v", err)
	}
	for _, want := range []string{`faultline_agent_http_aborted_requests_total{rule="http[0]"} 3`, `faultline_agent_http_delayed_requests_total{rule="http[1]"} 6`,
		`faultline_agent_fault_active{kind="http"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The proxy's ports reached directly (a peer on the pod network, a
	// process in the pod) would send it to itself: such connections are
	// closed, and the proxy is not left dialling itself.
	for _, c := range []struct{ ns, addr string }{{peer, podIP + ":19094"}, {pod, "127.0.0.1:19095"}, {pod, "127.0.0.1:19094"}} {
		if code, _, _, err := get(client(c.ns, false), "http://"+c.addr+"/"); err == nil || os.IsTimeout(err) {
			t.Errorf("GET straight to the proxy at %s from %s: %d %v, want the connection closed at once", c.addr, c.ns, code, err)
		}
	}
	if _, metrics, _, _ := get(client(pod, false), "http://127.0.0.1:19191/metrics"); !strings.Contains(metrics, `faultline_agent_http_connections_total{protocol="http1"}`) {
		t.Errorf("the agent stopped answering after connections to its proxy ports")
	}

	// The agent's memory with 1,500 client connections opened through its
	// proxy (each after one request and then idle), against the same agent
	// before: past its 1,000 the longest-idle are closed, and the agent
	// stays inside the chart's 64Mi.
	rss := func() float64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", agentRun.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
	rssBefore := rss()
	var held []net.Conn
	for i := 0; i < 1500; i++ {
		c, err := testenv.DialIn(t, peer)(context.Background(), podIP+":8080")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
		fmt.Fprintf(c, "GET /cart HTTP/1.1\r\nHost: app\r\n\r\n")
		if _, err := c.Read(make([]byte, 512)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	rssHeld := rss()
	_, metrics, _, _ = get(client(pod, false), "http://127.0.0.1:19191/metrics")
	for _, c := range held {
		c.Close()
	}
	if rssHeld > 64 {
		t.Errorf("agent RSS %.1f MiB after 1,500 connections (%.1f MiB before): over the chart's 64Mi limit", rssHeld, rssBefore)
	}
	if !strings.Contains(metrics, `faultline_agent_http_connections_limited_total{outcome="evicted"} 5`) {
		t.Errorf("want about 500 idle connections evicted past the limit:\n%s", grepLines(metrics, "limited"))
	}
	// 1,000 connections held mid-request (a slow-loris peer) fill the
	// proxy with nothing idle: the app's next client is passed through,
	// unread and unfaulted, not refused.
	var slowConns []net.Conn
	for i := 0; i < 1000; i++ {
		c, err := testenv.DialIn(t, peer)(context.Background(), podIP+":8080")
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		slowConns = append(slowConns, c)
		fmt.Fprintf(c, "GET /cart HTTP/1.1\r\nHost: ap")
	}
	time.Sleep(600 * time.Millisecond) // past detection: all of them read as HTTP
	code, body, _, err = get(fresh, appURL+"/checkout")
	rssSlow := rss()
	for _, c := range slowConns {
		c.Close()
	}
	if err != nil || code != 200 || body != "ok" {
		t.Errorf("a client while 1,000 slow connections fill the proxy: %d %q %v, want the app itself (passed through)", code, body, err)
	}
	if rssSlow > 64 {
		t.Errorf("agent RSS %.1f MiB with 1,000 slow connections: over the chart's 64Mi limit", rssSlow)
	}

	// SIGKILL: nobody re-arms the HTTP switch; the redirects stop matching
	// and the app answers itself.
	_ = agentRun.Process.Signal(syscall.SIGKILL)
	_ = agentRun.Wait()
	killed := time.Now()
	var back time.Duration
	for back == 0 && time.Since(killed) < 5*time.Second {
		if code, _, _, err := get(fresh, appURL+"/checkout"); err == nil && code == 200 {
			back = time.Since(killed)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if back == 0 || back > 1500*time.Millisecond {
		t.Errorf("after SIGKILL the app answered /checkout itself after %s, want within the HTTP switch's 1s (0: never)", back)
	}
	if code, _, d, err := get(fromPod, "http://"+peerIP+":80/slow"); err != nil || code != 200 || d > 150*time.Millisecond {
		t.Errorf("after SIGKILL outbound /slow: %d in %s %v, want straight through", code, d, err)
	}

	// Pause and resume: the redirects go and come back, and the proxy's
	// kept-alive connections are closed so their clients reach the app.
	agentRun, log := start()
	if code, _, _, _ := get(fromPeer, appURL+"/checkout"); code != 503 {
		t.Fatalf("restarted agent: /checkout %d, want 503", code)
	}
	pause(true)
	waitFor(t, "the pause to reach the app's port", func() bool { code, _, _, err := get(fresh, appURL+"/checkout"); return err == nil && code == 200 })
	if code, _, _, err := get(fromPeer, appURL+"/checkout"); code != 200 || err != nil {
		t.Errorf("paused: a client that kept its connection to the proxy got %d %v, want the app (reconnected)\n%s", code, err, log)
	}
	if out, _ := exec.Command("ip", "netns", "exec", pod, "iptables-save", "-t", "nat").Output(); strings.Contains(string(out), "FAULTLINE") {
		t.Errorf("paused, the nat table still holds:\n%s", out)
	}
	pause(false)
	waitFor(t, "the resume", func() bool { code, _, _, _ := get(fresh, appURL+"/checkout"); return code == 503 })

	// SIGTERM: everything gone within 1 s, connections through the proxy
	// closed, fresh ones straight to the app.
	sent := time.Now()
	_ = agentRun.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- agentRun.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("agent did not exit within 1s of SIGTERM:\n%s", log)
	}
	took := time.Since(sent)
	for _, bin := range []string{"iptables-save", "ip6tables-save"} {
		out, _ := exec.Command("ip", "netns", "exec", pod, bin).Output()
		if strings.Contains(string(out), "FAULTLINE") || strings.Contains(string(out), "faultline") {
			t.Errorf("%s after SIGTERM:\n%s", bin, out)
		}
	}
	if code, _, _, err := get(fresh, appURL+"/checkout"); code != 200 || err != nil {
		t.Errorf("after SIGTERM /checkout: %d %v, want the app", code, err)
	}
	t.Logf("inbound abort and outbound delay (/slow %s, /fast %s); agent RSS %.1f MiB, %.1f MiB after 1,500 connections (1,000 held), %.1f MiB with 1,000 slow ones and a client passed through; SIGKILL -> app answers itself after %s; SIGTERM -> all removed, exit in %s",
		ms.Round(100*time.Microsecond), mf.Round(100*time.Microsecond), rssBefore, rssHeld, rssSlow, back.Round(time.Millisecond), took.Round(time.Millisecond))
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
