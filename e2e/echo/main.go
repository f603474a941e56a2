// Command echo is the e2e tests' app: an HTTP server answering "ok" on every
// port given (default 8080), standing in for the app container's image.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

func main() {
	ports := []string{"8080"}
	if len(os.Args) > 1 {
		ports = strings.Split(os.Args[1], ",")
	}
	errs := make(chan error, len(ports))
	for _, p := range ports {
		go func() {
			errs <- http.ListenAndServe(":"+p, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
		}()
	}
	fmt.Fprintln(os.Stderr, "echo:", <-errs)
	os.Exit(1)
}
