/*
 * clock: the e2e tests' clock reader, built against glibc and against musl.
 * Every 200 ms it prints the wall clock as libc sees it (time(),
 * gettimeofday() and clock_gettime(CLOCK_REALTIME)), one line each, so a
 * test can read how far the time shim moved it. With an argument it prints
 * once and exits.
 */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	(void)argv;
	for (;;) {
		struct timespec ts;
		struct timeval tv;
		clock_gettime(CLOCK_REALTIME, &ts);
		gettimeofday(&tv, NULL);
		printf("time=%lld gettimeofday=%lld.%06ld clock_gettime=%lld.%09ld\n", (long long)time(NULL),
		       (long long)tv.tv_sec, (long)tv.tv_usec, (long long)ts.tv_sec, ts.tv_nsec);
		fflush(stdout);
		if (argc > 1)
			return 0;
		usleep(200000);
	}
}
