/*
 * cprobe: the vdso tests' static C program (gcc -static, glibc). For each
 * line on stdin it prints clock_gettime(CLOCK_REALTIME), gettimeofday and
 * time through libc (the vDSO), and the real clock from a raw system call,
 * all in nanoseconds: "ct gtod time raw". "fork" starts a child that writes
 * the same line to the file named after it every 20 ms for 10 s, and prints
 * the child's pid.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void line(FILE *f)
{
	struct timespec ts, raw;
	struct timeval tv;
	clock_gettime(CLOCK_REALTIME, &ts);
	gettimeofday(&tv, NULL);
	long long t = (long long)time(NULL);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &raw);
	fprintf(f, "%lld %lld %lld %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
		(long long)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL, t * 1000000000LL,
		(long long)raw.tv_sec * 1000000000LL + raw.tv_nsec);
	fflush(f);
}

int main(void)
{
	char buf[512];
	while (fgets(buf, sizeof buf, stdin)) {
		if (strncmp(buf, "fork ", 5) == 0) {
			buf[strcspn(buf, "\n")] = 0;
			pid_t pid = fork();
			if (pid == 0) {
				for (int i = 0; i < 500; i++) {
					FILE *f = fopen(buf + 5, "w");
					if (f) {
						line(f);
						fclose(f);
					}
					usleep(20000);
				}
				_exit(0);
			}
			printf("%d\n", (int)pid);
			fflush(stdout);
			continue;
		}
		line(stdout);
	}
	return 0;
}
