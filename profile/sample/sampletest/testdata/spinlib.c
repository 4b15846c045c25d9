/* A shared library with a constructor: ld.so runs it from _dl_init, before
 * the executable's own constructors (which __libc_start_main runs). */
#include <stdint.h>

extern volatile uint64_t spinlib_sink;
volatile uint64_t spinlib_sink;

__attribute__((noinline)) void spinlib_busy(uint64_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (uint64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		x ^= x >> 29;
	}
	spinlib_sink = x;
}

__attribute__((constructor)) static void spinlib_ctor(void)
{
	spinlib_busy(10000000);
	spinlib_sink++;
}

void spinlib_touch(void) { spinlib_sink++; }
