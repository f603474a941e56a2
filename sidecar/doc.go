// Package sidecar owns the agent that runs inside an injected pod: it loads
// the admitted FaultSpec, follows the pause annotation through the downward
// API file, and serves /healthz, /status and /metrics. The kernel work
// (iptables, tc) and the time shim live in sub-packages as they land; until
// then /status says plainly that no fault is applied.
package sidecar
