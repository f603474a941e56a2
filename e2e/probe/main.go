// Command probe is the e2e tests' client, run in another network namespace:
// it measures HTTP round trips to a URL on one kept-alive connection and
// prints the median in milliseconds, says how a connection failed ("ok",
// "timeout", "refused"), or prints a body (-body).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"syscall"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	n := flag.Int("n", 20, "round trips to measure")
	connect := flag.String("connect", "", "host:port: only say how a TCP connection attempt ends")
	body := flag.Bool("body", false, "print the body of one GET of -url")
	flood := flag.String("flood", "", "host:port: send UDP datagrams at -rate per second for -for, then print how many were sent")
	rate := flag.Int("rate", 10000, "datagrams per second (-flood)")
	dur := flag.Duration("for", 10*time.Second, "how long to send (-flood)")
	dial := flag.String("dial", "", "host:port: median TCP connect time (one round trip: SYN, SYN-ACK) over -n connects")
	flag.Parse()
	if *flood != "" {
		c, err := net.Dial("udp", *flood)
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		// Batches each millisecond: a sleep per datagram cannot keep 10k/s.
		payload := make([]byte, 64)
		sent, start := 0, time.Now()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for now := range tick.C {
			elapsed := now.Sub(start)
			if elapsed >= *dur {
				break
			}
			for due := int(elapsed.Seconds() * float64(*rate)); sent < due; sent++ {
				_, _ = c.Write(payload)
			}
		}
		fmt.Println(sent)
		return
	}
	if *dial != "" {
		var rtts []time.Duration
		for i := 0; i < *n; i++ {
			start := time.Now()
			c, err := net.DialTimeout("tcp", *dial, 5*time.Second)
			if err != nil {
				fmt.Fprintln(os.Stderr, "probe:", err)
				os.Exit(1)
			}
			rtts = append(rtts, time.Since(start))
			c.Close()
		}
		slices.Sort(rtts)
		fmt.Printf("%.2f\n", float64(rtts[len(rtts)/2].Microseconds())/1000)
		return
	}
	if *body {
		resp, err := http.Get(*url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(os.Stdout, resp.Body)
		return
	}
	if *connect != "" {
		c, err := net.DialTimeout("tcp", *connect, 2*time.Second)
		switch {
		case err == nil:
			c.Close()
			fmt.Println("ok")
		case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET):
			fmt.Println("refused")
		default:
			fmt.Println("timeout")
		}
		return
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(*url)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), nil
	}
	if _, err := get(); err != nil { // opens the connection
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	var rtts []time.Duration
	for i := 0; i < *n; i++ {
		d, err := get()
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		rtts = append(rtts, d)
	}
	slices.Sort(rtts)
	fmt.Printf("%.2f\n", float64(rtts[len(rtts)/2].Microseconds())/1000)
}
