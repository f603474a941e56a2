// Package vdso owns reading a process's vDSO: where the kernel mapped it
// and where its clock functions are. Go's runtime and libc call
// __vdso_clock_gettime and friends there directly, so that is where a clock
// fault must act for static programs (issue 13); this package only reads.
package vdso
