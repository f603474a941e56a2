/*
 * The state file shared by faultline-agent (the only writer) and
 * libfaultline-time.so (readers in every app process). It is mapped
 * MAP_SHARED, so a write by the agent is seen by running programs on their
 * next clock call, with no system call on that path.
 *
 * Layout is little-endian, naturally aligned, and must match
 * sidecar/clockfault/state.go.
 */
#ifndef FAULTLINE_TIME_H
#define FAULTLINE_TIME_H

#include <stdint.h>

#define FL_TIME_MAGIC   0x4d544c46u /* "FLTM" */
#define FL_TIME_VERSION 2u
#define FL_TIME_SIZE    4096

/* Bounds a reader enforces on its own: anything outside is "corrupt". */
#define FL_MAX_OFFSET_NS (366LL * 24 * 3600 * 1000000000LL)
#define FL_MAX_DRIFT_PPB 500000000LL

/* One copy of the parameters. fake = real + offset + (real - base) * drift
 * / 1e9, with drift in parts per billion counted from base_real_ns (real
 * CLOCK_REALTIME when the fault started). */
struct fl_time_slot {
	uint32_t enabled;
	uint32_t flags;
	int64_t offset_ns;
	int64_t drift_ppb;
	int64_t base_real_ns;
};

/* A latch (the Linux kernel's seqcount_latch): the writer bumps seq, fills
 * slot[0], bumps seq again, fills slot[1]. Readers use slot[seq & 1], which
 * is never the one being written, so a writer stopped half-way (descheduled,
 * killed) never blocks or misleads a reader; a reader retries only if seq
 * moved during its read. */
struct fl_time_state {
	uint32_t magic;
	uint32_t version;
	uint64_t seq;
	struct fl_time_slot slot[2];
};

#endif
