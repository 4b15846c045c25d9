/*
 * cext / cmini: a sample Lambda extension in C, the subject initprof's tests
 * profile. It behaves like a real external extension: register, bind a
 * telemetry listener, subscribe to the Telemetry API, then loop on /next until
 * SHUTDOWN. It prints ground-truth checkpoints on stdout,
 *
 *     INIT | checkpoint=<name> mono_ns=<CLOCK_MONOTONIC ns>
 *
 * at main, register_ok, listener_bound, subscribe_ok and before_next, so tests
 * can hold initprof's measurements against the program's own clock readings.
 *
 * The HTTP client is http_curl.c (cext: libcurl + OpenSSL, library-heavy) or
 * http_sock.c (cmini: libc only, static-linkable). The hot constructor
 * (cext_hot_spin, ~3 ms) is in hot.c: a shared library for cext, so it runs in
 * ld.so's _dl_init, and linked in for cmini.
 *
 * Environment (all optional except AWS_LAMBDA_RUNTIME_API):
 *   AWS_LAMBDA_RUNTIME_API     host:port of the platform (Lambda: 127.0.0.1:9001)
 *   INITPROF_SAMPLE_PORT       telemetry listener port on 127.0.0.1 (default 0 = ephemeral)
 *   INITPROF_SAMPLE_DEST_HOST  host in the subscription URI (default sandbox.localdomain)
 *   INITPROF_SAMPLE_H18=1      subscribe concurrently with the first /next
 *   INITPROF_SAMPLE_CRASH=register        exit 3 right after main, before registering
 *   INITPROF_SAMPLE_CRASH=after_register  exit 3 right after register_ok (a crash mid-init)
 *   INITPROF_SAMPLE_NONEXT=1   register, then sleep forever without calling /next
 *   INITPROF_SAMPLE_NOREGISTER=1  sleep forever without registering
 *   INITPROF_SAMPLE_INIT_DELAY_MS=N  sleep N ms after subscribing, before the first
 *                              /next (a slow extension init; not under H18)
 *   INITPROF_SAMPLE_CLOCK_SYSCALL=1  also print main_sys: CLOCK_MONOTONIC read with
 *                              a raw clock_gettime syscall before main's vDSO read,
 *                              so the first vDSO call's own cost (its page faults)
 *                              can be told apart from the probe's error
 */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The kernel reads the clock: no vDSO page is touched, so a process's first
 * read costs what every later one does. */
static uint64_t mono_ns_syscall(void)
{
	struct timespec ts;
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- output ------------------------------------------------------------ */

static const char *ext_name = "cext";

static void checkpoint(const char *name, uint64_t ns)
{
	printf("INIT | checkpoint=%s mono_ns=%llu\n", name, (unsigned long long)ns);
	fflush(stdout);
}

static const char *api;
static char ext_id[128];
static int init_done; /* set once the first /next has returned */

/* Reports a failure to the platform (init/error during init, exit/error
 * after), prints it, and exits 1. */
static void fail(const char *reason, const char *msg)
{
	fprintf(stderr, "%s: %s\n", ext_name, msg);
	fflush(stderr);
	if (ext_id[0]) {
		char h1[200], h2[200];
		snprintf(h1, sizeof(h1), "Lambda-Extension-Identifier: %s", ext_id);
		snprintf(h2, sizeof(h2), "Lambda-Extension-Function-Error-Type: Extension.%s", reason);
		const char *hs[] = {h1, h2, "Content-Type: application/json", NULL};
		char body[1200], esc[1024];
		size_t j = 0;
		for (const char *p = msg; *p && j + 2 < sizeof(esc); p++) {
			if (*p == '"' || *p == '\\')
				esc[j++] = '\\';
			esc[j++] = (*p == '\n') ? ' ' : *p;
		}
		esc[j] = 0;
		snprintf(body, sizeof(body), "{\"errorMessage\":\"%s\",\"errorType\":\"Extension.%s\",\"stackTrace\":[]}", esc, reason);
		struct http_resp r;
		char err[512];
		const char *path = init_done ? "/2020-01-01/extension/exit/error" : "/2020-01-01/extension/init/error";
		if (http_do("POST", api, path, hs, body, 5000, NULL, NULL, &r, err, sizeof(err)) == 0)
			http_resp_free(&r);
		else
			fprintf(stderr, "%s: reporting the error to the platform failed too: %s\n", ext_name, err);
	}
	_exit(1);
}

/* ---- telemetry listener ------------------------------------------------ */

static atomic_long tel_events;

/* Counts the events of one JSON array batch and prints each event's type. It
 * is a small scanner, not a JSON parser: it tracks strings and nesting and
 * takes the "type" key of each top-level object. */
static void tel_batch(const char *p, size_t n)
{
	int depth = 0, instr = 0, esc = 0, key_type = 0, want = 0;
	const char *s = NULL;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (instr) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"') {
				instr = 0;
				size_t len = (size_t)(p + i - s);
				if (depth == 2) {
					if (want) {
						printf("TELEMETRY | type=%.*s\n", (int)len, s);
						fflush(stdout);
						want = 0;
					} else if (len == 4 && memcmp(s, "type", 4) == 0) {
						key_type = 1;
					}
				}
			}
			continue;
		}
		switch (c) {
		case '"':
			instr = 1;
			s = p + i + 1;
			break;
		case ':':
			if (key_type && depth == 2)
				want = 1;
			key_type = 0;
			break;
		case ',':
			key_type = want = 0;
			break;
		case '{':
		case '[':
			depth++;
			want = key_type = 0;
			if (depth == 2 && c == '{')
				atomic_fetch_add(&tel_events, 1);
			break;
		case '}':
		case ']':
			depth--;
			break;
		}
	}
}

static void *tel_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		/* Read one request: headers, then Content-Length bytes of body. */
		char *he;
		while (!(buf[n] = 0, he = strstr(buf, "\r\n\r\n"))) {
			if (n == cap) {
				cap *= 2;
				buf = realloc(buf, cap + 1);
			}
			ssize_t g = recv(fd, buf + n, cap - n, 0);
			if (g <= 0)
				goto out;
			n += (size_t)g;
		}
		size_t hlen = (size_t)(he - buf) + 4;
		long clen = 0;
		for (char *l = strstr(buf, "\r\n"); l && l < he; l = strstr(l + 2, "\r\n"))
			if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
				clen = strtol(l + 17, NULL, 10);
		if (clen < 0)
			clen = 0;
		while (n < hlen + (size_t)clen) {
			if (n == cap) {
				cap = hlen + (size_t)clen;
				buf = realloc(buf, cap + 1);
			}
			ssize_t g = recv(fd, buf + n, cap - n, 0);
			if (g <= 0)
				goto out;
			n += (size_t)g;
		}
		tel_batch(buf + hlen, (size_t)clen);
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
		if (send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0)
			goto out;
		size_t used = hlen + (size_t)clen;
		memmove(buf, buf + used, n - used);
		n -= used;
	}
out:
	free(buf);
	close(fd);
	return NULL;
}

static void *tel_accept(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "%s: telemetry listener: accept: %s\n", ext_name, strerror(errno));
			return NULL;
		}
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, tel_conn, (void *)(intptr_t)c) != 0)
			close(c);
		pthread_attr_destroy(&a);
	}
}

/* ---- the extension ----------------------------------------------------- */

static char sub_body[512];

static void subscribe(void)
{
	char h1[200], err[512], msg[1024];
	snprintf(h1, sizeof(h1), "Lambda-Extension-Identifier: %s", ext_id);
	const char *hs[] = {h1, "Content-Type: application/json", NULL};
	struct http_resp r;
	if (http_do("PUT", api, "/2022-07-01/telemetry", hs, sub_body, 30000, NULL, NULL, &r, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "telemetry subscribe failed: %s", err);
		fail("SubscribeFailed", msg);
	}
	uint64_t t = mono_ns();
	if (r.status < 200 || r.status > 299) {
		snprintf(msg, sizeof(msg), "telemetry subscribe: HTTP %ld: %.600s", r.status, r.body);
		fail("SubscribeFailed", msg);
	}
	checkpoint("subscribe_ok", t);
	http_resp_free(&r);
}

static void *subscribe_thread(void *arg)
{
	(void)arg;
	subscribe();
	return NULL;
}

static int first_next = 1;

static void before_next(void *arg)
{
	(void)arg;
	if (first_next) {
		uint64_t t = mono_ns();
		first_next = 0;
		checkpoint("before_next", t);
	}
}

/* Returns the eventType of a /next body ("" if absent), case preserved. */
static void event_type(const char *body, char *out, size_t outlen)
{
	out[0] = 0;
	const char *k = strstr(body, "\"eventType\"");
	if (!k)
		return;
	k += 11;
	while (*k == ' ' || *k == ':' || *k == '\t' || *k == '\n' || *k == '\r')
		k++;
	if (*k != '"')
		return;
	k++;
	size_t n = strcspn(k, "\"");
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, k, n);
	out[n] = 0;
}

int main(int argc, char **argv)
{
	uint64_t t_sys = getenv("INITPROF_SAMPLE_CLOCK_SYSCALL") ? mono_ns_syscall() : 0;
	uint64_t t_main = mono_ns();
	setvbuf(stdout, NULL, _IOLBF, 0);
	(void)argc;
	if (argv[0] && argv[0][0]) {
		const char *b = strrchr(argv[0], '/');
		ext_name = b ? b + 1 : argv[0];
	}
	if (t_sys)
		checkpoint("main_sys", t_sys);
	checkpoint("main", t_main);

	const char *crash = getenv("INITPROF_SAMPLE_CRASH");
	int crash_after_register = 0;
	if (crash && *crash) {
		if (strcmp(crash, "register") == 0) {
			fprintf(stderr, "%s: INITPROF_SAMPLE_CRASH=register: exiting with status 3 before registering\n", ext_name);
			return 3;
		}
		if (strcmp(crash, "after_register") != 0) {
			fprintf(stderr, "%s: INITPROF_SAMPLE_CRASH=%s: unknown crash point (want: register or after_register)\n",
				ext_name, crash);
			return 2;
		}
		crash_after_register = 1;
	}
	const char *noreg = getenv("INITPROF_SAMPLE_NOREGISTER");
	if (noreg && strcmp(noreg, "1") == 0) {
		fprintf(stderr, "%s: INITPROF_SAMPLE_NOREGISTER=1: sleeping forever without registering\n", ext_name);
		for (;;)
			pause();
	}
	api = getenv("AWS_LAMBDA_RUNTIME_API");
	if (!api || !*api) {
		fprintf(stderr, "%s: AWS_LAMBDA_RUNTIME_API is not set: run me under a Lambda platform (e.g. initprof platform)\n", ext_name);
		return 1;
	}
	int port = 0;
	const char *ps = getenv("INITPROF_SAMPLE_PORT");
	if (ps && *ps) {
		char *end;
		long v = strtol(ps, &end, 10);
		if (*end || v < 0 || v > 65535) {
			fprintf(stderr, "%s: INITPROF_SAMPLE_PORT=%s is not a port number (0-65535)\n", ext_name, ps);
			return 2;
		}
		port = (int)v;
	}
	const char *dest = getenv("INITPROF_SAMPLE_DEST_HOST");
	if (!dest || !*dest)
		dest = "sandbox.localdomain";
	const char *h18s = getenv("INITPROF_SAMPLE_H18");
	int h18 = h18s && strcmp(h18s, "1") == 0;
	const char *nonexts = getenv("INITPROF_SAMPLE_NONEXT");
	int nonext = nonexts && strcmp(nonexts, "1") == 0;
	long delay_ms = 0;
	const char *ds = getenv("INITPROF_SAMPLE_INIT_DELAY_MS");
	if (ds && *ds) {
		char *end;
		delay_ms = strtol(ds, &end, 10);
		if (*end || delay_ms < 0 || delay_ms > 600000) {
			fprintf(stderr, "%s: INITPROF_SAMPLE_INIT_DELAY_MS=%s is not a number of milliseconds (0-600000)\n", ext_name, ds);
			return 2;
		}
	}

	char err[512], msg[1024];
	if (http_global_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", ext_name, err);
		return 1;
	}

	/* 1. Register. */
	{
		char h1[300];
		snprintf(h1, sizeof(h1), "Lambda-Extension-Name: %s", ext_name);
		const char *hs[] = {h1, "Content-Type: application/json", NULL};
		struct http_resp r;
		if (http_do("POST", api, "/2020-01-01/extension/register", hs, "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}",
			    30000, NULL, NULL, &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: register failed: %s\n", ext_name, err);
			return 1;
		}
		uint64_t t = mono_ns();
		if (r.status != 200) {
			fprintf(stderr, "%s: register: HTTP %ld: %.600s\n", ext_name, r.status, r.body);
			return 1;
		}
		if (!r.ext_id[0]) {
			fprintf(stderr, "%s: register: HTTP 200 but no Lambda-Extension-Identifier header\n", ext_name);
			return 1;
		}
		memcpy(ext_id, r.ext_id, sizeof(ext_id));
		checkpoint("register_ok", t);
		http_resp_free(&r);
	}
	if (crash_after_register) {
		fprintf(stderr, "%s: INITPROF_SAMPLE_CRASH=after_register: exiting with status 3 after registering\n", ext_name);
		_exit(3);
	}
	if (nonext) {
		fprintf(stderr, "%s: INITPROF_SAMPLE_NONEXT=1: registered; sleeping forever without calling /next\n", ext_name);
		for (;;)
			pause();
	}

	/* 2. Telemetry listener. */
	{
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0) {
			snprintf(msg, sizeof(msg), "telemetry listener: socket: %s", strerror(errno));
			fail("ListenerFailed", msg);
		}
		int one = 1;
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int br = bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
		uint64_t t = mono_ns();
		if (br < 0) {
			snprintf(msg, sizeof(msg), "telemetry listener: bind 127.0.0.1:%d: %s", port, strerror(errno));
			fail("ListenerFailed", msg);
		}
		checkpoint("listener_bound", t);
		if (listen(lfd, 128) < 0) {
			snprintf(msg, sizeof(msg), "telemetry listener: listen: %s", strerror(errno));
			fail("ListenerFailed", msg);
		}
		socklen_t sl = sizeof(sa);
		getsockname(lfd, (struct sockaddr *)&sa, &sl);
		port = ntohs(sa.sin_port);
		pthread_t th;
		if (pthread_create(&th, NULL, tel_accept, (void *)(intptr_t)lfd) != 0)
			fail("ListenerFailed", "telemetry listener: pthread_create failed");
	}

	/* 3. Subscribe (4. concurrently with the first /next under H18). */
	snprintf(sub_body, sizeof(sub_body),
		 "{\"schemaVersion\":\"2022-12-13\",\"types\":[\"platform\",\"function\"],"
		 "\"buffering\":{\"maxItems\":1000,\"maxBytes\":262144,\"timeoutMs\":25},"
		 "\"destination\":{\"protocol\":\"HTTP\",\"URI\":\"http://%s:%d/\"}}",
		 dest, port);
	pthread_t sub_th;
	if (h18) {
		if (pthread_create(&sub_th, NULL, subscribe_thread, NULL) != 0)
			fail("SubscribeFailed", "pthread_create for the H18 subscribe failed");
	} else {
		subscribe();
		if (delay_ms > 0) {
			struct timespec d = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000L};
			while (nanosleep(&d, &d) != 0 && errno == EINTR)
				;
		}
	}

	/* 4. The event loop. */
	char h1[200];
	snprintf(h1, sizeof(h1), "Lambda-Extension-Identifier: %s", ext_id);
	const char *hs[] = {h1, NULL};
	for (;;) {
		struct http_resp r;
		if (http_do("GET", api, "/2020-01-01/extension/event/next", hs, NULL, 0, before_next, NULL, &r, err,
			    sizeof(err)) < 0) {
			snprintf(msg, sizeof(msg), "/next failed: %s", err);
			fail("NextFailed", msg);
		}
		if (r.status != 200) {
			snprintf(msg, sizeof(msg), "/next: HTTP %ld: %.600s", r.status, r.body);
			fail("NextFailed", msg);
		}
		init_done = 1;
		char et[64];
		event_type(r.body, et, sizeof(et));
		http_resp_free(&r);
		if (strcasecmp(et, "SHUTDOWN") == 0) {
			/* Under H18 the subscribe may still be in flight: finish it, so
			 * its outcome (subscribe_ok or an error) is always reported. */
			if (h18)
				pthread_join(sub_th, NULL);
			printf("SHUTDOWN | telemetry_events=%ld\n", atomic_load(&tel_events));
			fflush(stdout);
			_exit(0);
		}
	}
}
