/*
 * loop: the micro-benchmark target of BenchmarkOverhead. It repeats one
 * probed operation N times and prints how long the loop took by its own
 * thread CPU clock, so the cost of a probe is (traced - untraced) / N.
 *
 *   loop call N     call probe_me() (the benchmark puts a uprobe on it)
 *   loop sock N     write 1 byte to a socketpair (sys_enter/exit_write + an event)
 *   loop null N     write 1 byte to /dev/null (the tracepoint fires, no event)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int probe_me(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

/* Thread CPU time, not wall time: the trap and the BPF program run on this
 * thread's clock, and a busy machine's time slicing does not inflate it. */
static unsigned long long cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: loop call|sock|null N\n");
		return 2;
	}
	long n = atol(argv[2]);
	int fd = -1, sv[2];
	char buf[64];
	if (strcmp(argv[1], "sock") == 0) {
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
			return 1;
		fd = sv[0];
	} else if (strcmp(argv[1], "null") == 0) {
		fd = open("/dev/null", O_WRONLY);
	}
	int acc = 0;
	unsigned long long t0 = cpu_ns();
	for (long i = 0; i < n; i++) {
		if (fd < 0) {
			acc = probe_me(acc);
		} else {
			if (write(fd, "x", 1) != 1)
				return 1;
			if (argv[1][0] == 's' && read(sv[1], buf, sizeof(buf)) != 1)
				return 1;
		}
	}
	unsigned long long t1 = cpu_ns();
	printf("LOOP ns=%llu acc=%d\n", t1 - t0, acc);
	return 0;
}
