/*
 * libcurl transport for cext. Linking libcurl (OpenSSL flavour) pulls in about
 * thirty shared libraries, and curl_global_init + OPENSSL_init_ssl make the
 * loader and the libraries' own constructors do real work: this is the point
 * of the sample, whose load and relocation phases initprof measures.
 */
#include "http.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One easy handle per thread, so connections to the platform are reused the way
 * a real extension's HTTP client reuses them. */
static __thread CURL *tls_curl;

int http_global_init(char *err, size_t errlen)
{
	if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL) != 1) {
		snprintf(err, errlen, "OPENSSL_init_ssl failed");
		return -1;
	}
	CURLcode rc = curl_global_init(CURL_GLOBAL_ALL);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct buf *b = userp;
	size_t len = size * nmemb;
	char *np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	memcpy(np + b->n, data, len);
	b->n += len;
	np[b->n] = 0;
	b->p = np;
	return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_resp *r = userp;
	size_t len = size * nmemb;
	static const char name[] = "Lambda-Extension-Identifier:";
	size_t nl = sizeof(name) - 1;
	if (len > nl && strncasecmp(data, name, nl) == 0) {
		const char *v = data + nl;
		size_t vl = len - nl;
		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(r->ext_id))
			vl = sizeof(r->ext_id) - 1;
		memcpy(r->ext_id, v, vl);
		r->ext_id[vl] = 0;
	}
	return len;
}

struct prereq {
	void (*fn)(void *);
	void *arg;
};

/* CURLOPT_PREREQFUNCTION runs after the connection is set up and right before
 * the request is sent: the closest libcurl gets to "the request is written". */
static int on_prereq(void *clientp, char *conn_primary_ip, char *conn_local_ip,
		     int conn_primary_port, int conn_local_port)
{
	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	struct prereq *p = clientp;
	if (p->fn)
		p->fn(p->arg);
	return CURL_PREREQFUNC_OK;
}

int http_do(const char *method, const char *hostport, const char *path,
	    const char *const *headers, const char *body, long timeout_ms,
	    void (*before_send)(void *), void *arg, struct http_resp *out,
	    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!tls_curl) {
		tls_curl = curl_easy_init();
		if (!tls_curl) {
			snprintf(err, errlen, "curl_easy_init failed");
			return -1;
		}
	}
	CURL *c = tls_curl;
	curl_easy_reset(c);

	char url[512];
	snprintf(url, sizeof(url), "http://%s%s", hostport, path);
	struct curl_slist *hl = NULL;
	for (const char *const *h = headers; h && *h; h++)
		hl = curl_slist_append(hl, *h);
	/* libcurl adds "Expect: 100-continue" to large bodies; the platform must not
	 * have to answer it. */
	hl = curl_slist_append(hl, "Expect:");

	struct buf b = {0};
	struct prereq pr = {before_send, arg};
	char cerr[CURL_ERROR_SIZE] = "";

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(c, CURLOPT_PREREQDATA, &pr);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);

	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	if (rc != CURLE_OK) {
		free(b.p);
		snprintf(err, errlen, "%s %s: %s", method, url, cerr[0] ? cerr : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if (!b.p)
		b.p = calloc(1, 1);
	out->body = b.p;
	out->body_len = b.n;
	return 0;
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}
