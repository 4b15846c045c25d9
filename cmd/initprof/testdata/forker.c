/* forker: an extension that leaves helpers behind. It forks a helper that
 * stays in its process group and a daemon that double-forks into its own
 * session, appends their pids to PIDFILE, then execs the real extension
 * REAL (argv unchanged). Both helpers sleep for a day: only the platform or
 * the sandbox can end them. Built by orphans_test.go with -DMARK, -DPIDFILE
 * and -DREAL. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void record(pid_t pid) {
	FILE *f = fopen(PIDFILE, "a");
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
}

int main(int argc, char **argv) {
	(void)argc;
	int fds[2];
	pid_t helper = fork();
	if (helper == 0) {
		execl("/bin/sleep", "sleep", MARK "1", (char *)0);
		_exit(127);
	}
	record(helper);
	if (pipe(fds) != 0)
		return 1;
	pid_t mid = fork();
	if (mid == 0) {
		setsid();
		pid_t d = fork();
		if (d == 0) {
			execl("/bin/sleep", "sleep", MARK "2", (char *)0);
			_exit(127);
		}
		if (write(fds[1], &d, sizeof d) != sizeof d)
			_exit(1);
		_exit(0);
	}
	pid_t daemon = 0;
	if (read(fds[0], &daemon, sizeof daemon) == sizeof daemon)
		record(daemon);
	waitpid(mid, 0, 0);
	execv(REAL, argv);
	perror("execv " REAL);
	return 127;
}
