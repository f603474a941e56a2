// Package httpfault owns HTTP and gRPC faults: a proxy that reads the
// requests a pod serves (or makes), matches them against rules (method,
// path, host, headers) and, per rule and percentage, answers with an error
// status or a gRPC status instead of forwarding, or forwards after a delay.
// HTTP/1.1 and h2c (prior knowledge, which is how gRPC speaks in clear) are
// read; anything else on the same port (TLS, a database protocol, a server
// that speaks first) passes through untouched, byte for byte.
//
// The proxy is given connections and told where each one was going; the
// netfilter rules that hand it those connections belong to the agent.
package httpfault
