/* A C program for the orderfile tests: built with -ffunction-sections, its
 * constructor and main are what init touches first. */
#include <stdio.h>

static int table[64] = {1};

__attribute__((constructor)) void fixture_ctor(void) { table[1] = 2; }
__attribute__((noinline)) int fixture_cold(int x) { return x * 3 + table[x & 63]; }
__attribute__((noinline)) int fixture_hot(int x) { return x + table[0]; }

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", fixture_hot(argc));
	return argc > 5 ? fixture_cold(argc) : 0;
}
