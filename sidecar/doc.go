// Package sidecar owns the agent that runs inside an injected pod: it loads
// the admitted FaultSpec, follows the pause annotation through the downward
// API file and the schedule, keeps the dead man's switch armed while faults
// are on, serves /healthz and /metrics to the pod network and /status on
// loopback, and removes everything it made on SIGTERM. The kernel work lives
// in sub-packages: netfault (iptables, the NFQUEUE engine, tc through
// netlink), dnsfault (DNS failures from a queue), clockfault (the time
// shim's state), schedule (windows).
package sidecar
