// Command echo is the e2e tests' app: an HTTP server on every port given
// (default 8080) answering "ok", or 500 on /fail, and counting both in
// echo_requests_total{code} on /metrics, for Prometheus to scrape.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

func main() {
	ports := []string{"8080"}
	if len(os.Args) > 1 {
		ports = strings.Split(os.Args[1], ",")
	}
	var ok, failed atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		ok.Add(1)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		failed.Add(1)
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE echo_requests_total counter\necho_requests_total{code=\"200\"} %d\necho_requests_total{code=\"500\"} %d\n", ok.Load(), failed.Load())
	})
	errs := make(chan error, len(ports))
	for _, p := range ports {
		go func() { errs <- http.ListenAndServe(":"+p, mux) }()
	}
	fmt.Fprintln(os.Stderr, "echo:", <-errs)
	os.Exit(1)
}
