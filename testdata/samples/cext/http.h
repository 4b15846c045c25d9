/*
 * The HTTP client interface the C samples use to talk to the Lambda platform.
 * Two implementations exist so the same extension logic can be built two ways:
 *   http_curl.c  libcurl + OpenSSL (cext*: a library-heavy binary whose loading
 *                and relocation cost real time, like most real C/C++ extensions);
 *   http_sock.c  plain sockets (cmini*: no external libraries, so it can also be
 *                linked -static and -static-pie).
 */
#ifndef CEXT_HTTP_H
#define CEXT_HTTP_H

#include <stddef.h>

struct http_resp {
	long status;          /* HTTP status code, 0 if no response */
	char ext_id[128];     /* value of Lambda-Extension-Identifier, "" if absent */
	char *body;           /* NUL-terminated body, malloc'd; free with http_resp_free */
	size_t body_len;
};

/* Called once from main before any thread starts. Returns 0 or -1 (with err). */
int http_global_init(char *err, size_t errlen);

/*
 * One request. hostport is "host:port"; headers is a NULL-terminated list of
 * "Name: value" strings; body may be NULL; timeout_ms 0 means no timeout (the
 * /next long-poll). before_send, if set, is called right before the request is
 * written on the connection. Returns 0 on a complete response (any status) and
 * -1 on a transport error, with a message in err.
 */
int http_do(const char *method, const char *hostport, const char *path,
	    const char *const *headers, const char *body, long timeout_ms,
	    void (*before_send)(void *), void *arg, struct http_resp *out,
	    char *err, size_t errlen);

void http_resp_free(struct http_resp *r);

#endif
