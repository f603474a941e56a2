/*
 * libfaultline-time.so: an LD_PRELOAD shim that shifts and skews the wall
 * clock of dynamically linked programs, driven at run time by faultline-agent
 * through a memory-mapped state file (FAULTLINE_TIME_FILE).
 *
 * Rules this file keeps, because it runs inside other people's programs:
 *  - never harm the host: a missing, short or corrupt file, or a torn read,
 *    means real time;
 *  - no allocation, no locks, no stdio in the interceptors, so they are
 *    thread-safe and async-signal-safe; the mapping is made once, in the
 *    constructor, and survives fork();
 *  - monotonic clocks are never touched: timers and timeouts keep working.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "faultline_time.h"

#define EXPORT __attribute__((visibility("default")))

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static const struct fl_time_state *state;

static int raw_clock_gettime(clockid_t id, struct timespec *ts)
{
	clock_gettime_fn fn = __atomic_load_n(&real_clock_gettime, __ATOMIC_ACQUIRE);
	if (fn)
		return fn(id, ts);
	/* Called before our constructor (from another library's): the
	 * system call is slower than the vDSO but always correct. */
	return (int)syscall(SYS_clock_gettime, id, ts);
}

static void map_state(void)
{
	const char *path = getenv("FAULTLINE_TIME_FILE");
	if (!path || !*path)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(struct fl_time_state)) {
		void *p = mmap(NULL, FL_TIME_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED)
			__atomic_store_n(&state, (const struct fl_time_state *)p, __ATOMIC_RELEASE);
	}
	close(fd);
}

__attribute__((constructor)) static void fl_init(void)
{
	clock_gettime_fn fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	__atomic_store_n(&real_clock_gettime, fn, __ATOMIC_RELEASE);
	map_state();
}

struct params {
	int64_t offset_ns, drift_ppb, base_ns;
};

/* Latch read (see faultline_time.h). Returns 0 when real time applies. */
static int read_params(struct params *p)
{
	const struct fl_time_state *s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
	if (!s)
		return 0;
	if (__atomic_load_n(&s->magic, __ATOMIC_RELAXED) != FL_TIME_MAGIC ||
	    __atomic_load_n(&s->version, __ATOMIC_RELAXED) != FL_TIME_VERSION)
		return 0;
	for (int tries = 0; tries < 64; tries++) {
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		const struct fl_time_slot *sl = &s->slot[seq & 1];
		uint32_t enabled = __atomic_load_n(&sl->enabled, __ATOMIC_RELAXED);
		p->offset_ns = __atomic_load_n(&sl->offset_ns, __ATOMIC_RELAXED);
		p->drift_ppb = __atomic_load_n(&sl->drift_ppb, __ATOMIC_RELAXED);
		p->base_ns = __atomic_load_n(&sl->base_real_ns, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != seq)
			continue;
		if (!enabled)
			return 0;
		if (p->offset_ns > FL_MAX_OFFSET_NS || p->offset_ns < -FL_MAX_OFFSET_NS ||
		    p->drift_ppb > FL_MAX_DRIFT_PPB || p->drift_ppb < -FL_MAX_DRIFT_PPB)
			return 0;
		return 1;
	}
	return 0; /* the writer is rewriting faster than we can read: real time */
}

static void fake(struct timespec *ts)
{
	struct params p;
	if (!read_params(&p))
		return;
	/* int64 nanoseconds last until 2262; offsets are bounded to a year. */
	int64_t real = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
	int64_t faked = real + p.offset_ns;
	if (p.drift_ppb) {
		/* A double multiply instead of 128-bit division keeps the hot path
		 * near the vDSO; at a year of elapsed time and the largest drift
		 * the error is a few nanoseconds. */
		faked += (int64_t)((double)(real - p.base_ns) * ((double)p.drift_ppb * 1e-9));
	}
	if (faked < 0)
		faked = 0;
	ts->tv_sec = (time_t)(faked / 1000000000);
	ts->tv_nsec = (long)(faked % 1000000000);
}

static int is_wall_clock(clockid_t id)
{
	return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE;
}

EXPORT int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = raw_clock_gettime(id, ts);
	if (rc == 0 && is_wall_clock(id))
		fake(ts);
	return rc;
}

EXPORT int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;
	if (tz) {
		/* Obsolete timezone out-parameter: zero it as glibc does. */
		struct timezone *z = tz;
		z->tz_minuteswest = 0;
		z->tz_dsttime = 0;
	}
	/* glibc declares tv nonnull, but POSIX callers may pass NULL; read it
	 * through a volatile so the check survives optimisation. */
	struct timeval *volatile tvp = tv;
	if (!tvp)
		return 0;
	if (raw_clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	fake(&ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

EXPORT time_t time(time_t *out)
{
	struct timespec ts;
	if (raw_clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t)-1;
	fake(&ts);
	if (out)
		*out = ts.tv_sec;
	return ts.tv_sec;
}

EXPORT int timespec_get(struct timespec *ts, int base)
{
	if (base != TIME_UTC || raw_clock_gettime(CLOCK_REALTIME, ts) != 0)
		return 0;
	fake(ts);
	return base;
}
