// Package clockfault owns the agent's side of clock faults: the memory-mapped
// state file that libfaultline-time.so reads (layout in
// sidecar/timeshim/faultline_time.h), installing the shim into the shared
// volume, and reporting which of the pod's processes the shim can affect.
package clockfault
