/* A deterministic busy function called from a constructor and from main
 * through three noinline levels; built -O2 -fomit-frame-pointer -g by the test
 * so only CFI unwinding gets full stacks. The statement after each call keeps
 * it from becoming a tail call (which would drop a frame for real). */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

volatile uint64_t sink;

__attribute__((noinline)) void spin_busy(uint64_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (uint64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		x ^= x >> 29;
	}
	sink = x;
}

__attribute__((noinline)) void spin_level3(uint64_t n) { spin_busy(n); sink++; }
__attribute__((noinline)) void spin_level2(uint64_t n) { spin_level3(n); sink++; }
__attribute__((noinline)) void spin_level1(uint64_t n) { spin_level2(n); sink++; }

__attribute__((constructor)) static void spin_ctor(void)
{
	spin_level1(10000000);
	sink++;
}

/* in libspinlib.so, whose constructor ld.so runs from _dl_init */
void spinlib_touch(void);

int main(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* the same ground-truth line as the sample extensions print */
	printf("INIT | checkpoint=main mono_ns=%llu\n", (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
	fflush(stdout);
	spinlib_touch();
	spin_level1(30000000);
	return 0;
}
