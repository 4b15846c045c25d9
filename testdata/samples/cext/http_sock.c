/*
 * Plain-socket HTTP/1.1 transport for cmini. It needs nothing beyond libc, so
 * cmini links -static and -static-pie. One connection per request
 * ("Connection: close") keeps the parser small. The platform address must be a
 * numeric IPv4 address, "localhost" or "sandbox[.localdomain]" (Lambda always
 * sets 127.0.0.1:9001): a static glibc binary cannot use the NSS resolver
 * reliably, so none is used.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int http_global_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

static int parse_hostport(const char *hostport, struct sockaddr_in *sa, char *err, size_t errlen)
{
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || !colon[1]) {
		snprintf(err, errlen, "platform address %s is not host:port", hostport);
		return -1;
	}
	char host[256];
	size_t hl = (size_t)(colon - hostport);
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "platform address %s: host too long", hostport);
		return -1;
	}
	memcpy(host, hostport, hl);
	host[hl] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535) {
		snprintf(err, errlen, "platform address %s: bad port", hostport);
		return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((unsigned short)port);
	/* The names Lambda's sandbox maps to itself (its /etc/hosts). */
	if (strcmp(host, "localhost") == 0 || strcmp(host, "sandbox") == 0 || strcmp(host, "sandbox.localdomain") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		snprintf(err, errlen, "platform address %s: host must be a numeric IPv4 address, localhost or sandbox", hostport);
		return -1;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int http_do(const char *method, const char *hostport, const char *path,
	    const char *const *headers, const char *body, long timeout_ms,
	    void (*before_send)(void *), void *arg, struct http_resp *out,
	    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct sockaddr_in sa;
	if (parse_hostport(hostport, &sa, err, errlen) < 0)
		return -1;

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s http://%s%s: socket: %s", method, hostport, path, strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s http://%s%s: connect: %s", method, hostport, path, strerror(errno));
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	size_t blen = body ? strlen(body) : 0;
	size_t cap = 1024 + blen;
	for (const char *const *h = headers; h && *h; h++)
		cap += strlen(*h) + 2;
	char *req = malloc(cap);
	if (!req) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cmini\r\nConnection: close\r\n",
			 method, path, hostport);
	for (const char *const *h = headers; h && *h; h++)
		n += snprintf(req + n, cap - (size_t)n, "%s\r\n", *h);
	if (body || strcmp(method, "GET") != 0)
		n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
	n += snprintf(req + n, cap - (size_t)n, "\r\n");
	if (blen) {
		memcpy(req + n, body, blen);
		n += (int)blen;
	}
	if (before_send)
		before_send(arg);
	if (write_all(fd, req, (size_t)n) < 0) {
		snprintf(err, errlen, "%s http://%s%s: send: %s", method, hostport, path, strerror(errno));
		free(req);
		close(fd);
		return -1;
	}
	free(req);

	/* Read until the server closes (we sent Connection: close) or until
	 * Content-Length bytes of body have arrived. */
	size_t rcap = 4096, rn = 0;
	char *r = malloc(rcap);
	long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
	char *hdr_end = NULL;
	long clen = -1;
	int chunked = 0;
	for (;;) {
		if (hdr_end && clen >= 0 && rn >= (size_t)(hdr_end - r) + 4 + (size_t)clen)
			break;
		if (deadline) {
			long long left = deadline - now_ms();
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (left <= 0 || poll(&p, 1, (int)left) == 0) {
				snprintf(err, errlen, "%s http://%s%s: timed out after %ld ms", method, hostport, path, timeout_ms);
				free(r);
				close(fd);
				return -1;
			}
		}
		size_t hdr_off = hdr_end ? (size_t)(hdr_end - r) : 0;
		if (rn + 1024 > rcap) {
			rcap *= 2;
			char *nr = realloc(r, rcap);
			if (!nr) {
				free(r);
				close(fd);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			r = nr;
			if (hdr_end)
				hdr_end = r + hdr_off;
		}
		ssize_t got = recv(fd, r + rn, rcap - rn - 1, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s http://%s%s: recv: %s", method, hostport, path, strerror(errno));
			free(r);
			close(fd);
			return -1;
		}
		if (got == 0)
			break;
		rn += (size_t)got;
		r[rn] = 0;
		if (!hdr_end) {
			hdr_end = strstr(r, "\r\n\r\n");
			if (hdr_end) {
				/* Scan header lines for what we need. */
				for (char *line = strstr(r, "\r\n"); line && line < hdr_end; line = strstr(line + 2, "\r\n")) {
					char *l = line + 2;
					if (strncasecmp(l, "Content-Length:", 15) == 0)
						clen = strtol(l + 15, NULL, 10);
					else if (strncasecmp(l, "Transfer-Encoding:", 18) == 0 && strstr(l, "chunked") &&
						 strstr(l, "chunked") < strstr(l, "\r\n"))
						chunked = 1;
					else if (strncasecmp(l, "Lambda-Extension-Identifier:", 28) == 0) {
						char *v = l + 28;
						while (*v == ' ' || *v == '\t')
							v++;
						size_t vl = strcspn(v, "\r\n");
						if (vl >= sizeof(out->ext_id))
							vl = sizeof(out->ext_id) - 1;
						memcpy(out->ext_id, v, vl);
						out->ext_id[vl] = 0;
					}
				}
			}
		}
	}
	close(fd);
	r[rn] = 0;
	if (!hdr_end || sscanf(r, "HTTP/1.%*d %ld", &out->status) != 1) {
		snprintf(err, errlen, "%s http://%s%s: malformed or truncated HTTP response (%zu bytes)", method, hostport, path, rn);
		free(r);
		return -1;
	}
	char *b = hdr_end + 4;
	size_t bl = rn - (size_t)(b - r);
	if (clen >= 0 && (size_t)clen < bl)
		bl = (size_t)clen;
	if (chunked) {
		/* Decode in place: "<hex size>[;ext]\r\n<data>\r\n" ... "0\r\n\r\n". */
		char *src = b, *dst = b, *end = b + bl;
		while (src < end) {
			char *e;
			unsigned long sz = strtoul(src, &e, 16);
			char *crlf = strstr(e, "\r\n");
			if (!crlf || sz == 0)
				break;
			src = crlf + 2;
			if (sz > (unsigned long)(end - src))
				sz = (unsigned long)(end - src);
			memmove(dst, src, sz);
			dst += sz;
			src += sz + 2;
		}
		bl = (size_t)(dst - b);
	}
	out->body = malloc(bl + 1);
	memcpy(out->body, b, bl);
	out->body[bl] = 0;
	out->body_len = bl;
	free(r);
	return 0;
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}
