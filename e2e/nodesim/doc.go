// Package nodesim plays kubelet for the e2e tests: it runs the pods of some
// namespaces as processes in network namespaces joined to a test "cluster"
// namespace by veth pairs on a bridge.
//
// What it simulates: init containers in order (a restartPolicy Always init
// container is a native sidecar: started, not awaited), then the
// containers, from the mutated spec's command, args and env (value and the
// fieldRefs metadata.name, metadata.namespace, status.podIP); emptyDir and
// downward-API volumes as directories (the annotations file rewritten when
// the pod's annotations change, as the kubelet does); pod phase, IP and
// Ready reported through the API; SIGTERM, then SIGKILL after the grace
// period, and the network namespace removed when the pod goes away.
//
// What it does not: images (each image maps to a local binary, whose
// entrypoint the container's command replaces, as a container's would);
// mount namespaces (a mount path in an env value or argument is rewritten to
// the volume's directory); users, capabilities and seccomp (everything runs
// as the test's root); probes, resource limits, restarts of crashed
// containers other than native sidecars, scheduling (pods need no node).
package nodesim
