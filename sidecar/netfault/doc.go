// Package netfault owns network faults inside the pod's network namespace:
// a pure builder that turns a FaultSpec into one iptables-restore payload
// living only in faultline's own chains (FAULTLINE-*), the Runner seam that
// every shell-out goes through, and Apply/Remove, which converge the kernel
// to exactly one copy of the rules however often they run or crash.
package netfault
