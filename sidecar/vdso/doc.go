// Package vdso owns clock faults for programs the LD_PRELOAD shim cannot
// reach: it reads a process's vDSO (where the kernel mapped it, where its
// clock functions are) and patches it live, so that __vdso_clock_gettime,
// __vdso_gettimeofday and __vdso_time, which Go's runtime and libc call
// directly, apply the fault from a state in the shim's latch layout. The
// patch is x86-64 code; elsewhere Patch says so. Which processes to patch,
// and when, belongs to the agent.
package vdso
