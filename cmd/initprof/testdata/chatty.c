/* chatty: an extension that writes MB megabytes to stdout (100-byte lines)
 * and a few lines to stderr before it registers, then execs the real
 * extension REAL. Outside initprof the writing takes a few tens of ms. Built
 * by chatty_test.go with -DMB and -DREAL. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
	(void)argc;
	char line[101];
	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\n';
	long n = (long)MB * 1000 * 1000 / sizeof line;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	for (long i = 0; i < n; i++) {
		int k = snprintf(line, 12, "%010ld ", i);
		line[k] = 'x';
		fwrite(line, 1, sizeof line, stdout);
	}
	fflush(stdout);
	fprintf(stderr, "chatty: wrote %ld lines\n", n);
	execv(REAL, argv);
	perror("execv " REAL);
	return 127;
}
