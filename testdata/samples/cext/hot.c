/*
 * hot.c: the samples' constructor with a known hot function, cext_hot_spin, a
 * deterministic busy loop of about 3 ms, so flamegraph tests have a function
 * they know must be in the constructors phase.
 *
 * cext and its variants get it from a shared library, libcexthot.so, found
 * through RUNPATH $ORIGIN/../lib. Only shared objects' initialisers run inside
 * ld.so's _dl_init, between relocation and the executable's entry point (the
 * `constructors` phase); on glibc >= 2.34 an executable's own constructors run
 * later, from __libc_start_main. So the library's frames unwind up through
 * _dl_init, as issue 6 asks. The layout mirrors Lambda, where a layer puts
 * /opt/extensions/<name> next to its libraries in /opt/lib.
 *
 * cmini links the same file into the executable (its static variants cannot
 * load a shared library), so its constructor runs from __libc_start_main.
 *
 * -DCTOR_SLEEP_US=N adds an N µs sleep after the loop: a known injected delay
 * for the statistical comparison tests (cext-delay), in the same phase.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <time.h>

#ifndef CEXT_HOT_ITERS
/* Calibrated on the development machine (x86_64, kernel 6.18) to ~3 ms. The
 * count is fixed, not timed, so the work is the same in every run and build. */
#define CEXT_HOT_ITERS 2150000ULL
#endif

volatile uint64_t cext_hot_sink;

/* A deterministic busy loop: a 64-bit LCG with an xorshift, a dependency chain
 * the compiler cannot shorten or remove (the result goes to a volatile). */
__attribute__((noinline)) void cext_hot_spin(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (uint64_t i = 0; i < CEXT_HOT_ITERS; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		x ^= x >> 29;
	}
	cext_hot_sink = x;
}

volatile int cext_ctor_ran;

/* The store after the call keeps hot_ctor's own frame: without it, gcc -O2
 * turns the call into a tail jump and hot_ctor vanishes from the stacks the
 * flamegraph tests expect (cext_hot_spin <- hot_ctor <- ... <- _dl_init). */
__attribute__((constructor)) static void hot_ctor(void)
{
	cext_hot_spin();
	cext_ctor_ran = 1;
#ifdef CTOR_SLEEP_US
	struct timespec d = {.tv_sec = CTOR_SLEEP_US / 1000000, .tv_nsec = (CTOR_SLEEP_US % 1000000) * 1000L};
	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
#endif
}
