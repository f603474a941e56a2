/* Test program for the time shim. It reads the real clock with a raw system
 * call (which no LD_PRELOAD can intercept) next to the library calls, so it
 * can print the offset it sees with nanosecond resolution. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t raw_real(void)
{
	struct timespec t;
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &t);
	return ns(t);
}

static int64_t raw_mono(void)
{
	struct timespec t;
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
	return ns(t);
}

/* offset of clock_gettime(CLOCK_REALTIME) against the raw real clock; a
 * reading where the thread was preempted between the three calls (the
 * bracket is wider than 200us) is taken again. */
static int64_t offset_now(void)
{
	for (;;) {
		int64_t before = raw_real();
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		int64_t after = raw_real();
		if (after - before < 200000)
			return ns(t) - before / 2 - after / 2;
	}
}

static void once(void)
{
	int64_t before = raw_real();
	struct timespec cg, tg, mono, rawmono;
	struct timeval tv;
	clock_gettime(CLOCK_REALTIME, &cg);
	gettimeofday(&tv, NULL);
	timespec_get(&tg, TIME_UTC);
	time_t tt = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &rawmono);
	int64_t after = raw_real();
	int64_t mid = before / 2 + after / 2;
	printf("clock_gettime %lld\n", (long long)(ns(cg) - mid));
	printf("gettimeofday %lld\n", (long long)((int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000 - mid));
	printf("timespec_get %lld\n", (long long)(ns(tg) - mid));
	printf("time %lld\n", (long long)((int64_t)tt * 1000000000 - mid));
	printf("monotonic %lld\n", (long long)(ns(mono) - ns(rawmono)));
}

static void drift(double seconds)
{
	struct timespec f0, f1;
	int64_t m0 = raw_mono();
	clock_gettime(CLOCK_REALTIME, &f0);
	struct timespec d = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&d, NULL);
	clock_gettime(CLOCK_REALTIME, &f1);
	int64_t m1 = raw_mono();
	double ppm = ((double)(ns(f1) - ns(f0)) / (double)(m1 - m0) - 1.0) * 1e6;
	printf("drift_ppm %.1f\n", ppm);
}

static void watch(int n)
{
	for (int i = 0; i < n; i++) {
		printf("offset %lld\n", (long long)offset_now());
		fflush(stdout);
		struct timespec d = {0, 50 * 1000000};
		nanosleep(&d, NULL);
	}
}

static int64_t allowed[2];
static void *hammer(void *arg)
{
	long bad = 0;
	for (int i = 0; i < 200000; i++) {
		int64_t off = offset_now();
		int ok = 0;
		for (int j = 0; j < 2; j++)
			if (llabs(off - allowed[j]) < 2000000)
				ok = 1;
		if (!ok && bad < 3)
			fprintf(stderr, "unexpected offset %lld\n", (long long)off);
		bad += !ok;
	}
	return (void *)bad;
}

static void threads(int64_t a, int64_t b)
{
	allowed[0] = a, allowed[1] = b;
	pthread_t th[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, hammer, NULL);
	long bad = 0;
	for (int i = 0; i < 8; i++) {
		void *r;
		pthread_join(th[i], &r);
		bad += (long)r;
	}
	printf("torn %ld of %d\n", bad, 8 * 200000);
}

static void forked(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		printf("child %lld\n", (long long)offset_now());
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void bench(long n)
{
	struct timespec t;
	int64_t m0 = raw_mono();
	for (long i = 0; i < n; i++)
		clock_gettime(CLOCK_REALTIME, &t);
	int64_t m1 = raw_mono();
	printf("ns_per_call %.2f\n", (double)(m1 - m0) / (double)n);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "once"))
		once();
	else if (!strcmp(argv[1], "drift"))
		drift(atof(argv[2]));
	else if (!strcmp(argv[1], "watch"))
		watch(atoi(argv[2]));
	else if (!strcmp(argv[1], "threads"))
		threads(atoll(argv[2]), atoll(argv[3]));
	else if (!strcmp(argv[1], "fork"))
		forked();
	else if (!strcmp(argv[1], "sleep"))
		sleep(atoi(argv[2]));
	else if (!strcmp(argv[1], "bench"))
		bench(atol(argv[2]));
	else
		return 2;
	return 0;
}
