/*
 * A small libcurl client for the in-process server tests: one-shot requests, and watch
 * streams read line by line on a thread of their own, which the test can wait on or cut.
 */
#ifndef WC_TEST_HTTP_CLIENT_H
#define WC_TEST_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_resp {
    long code;
    char *body; /* NUL-terminated */
    size_t len;
    char *headers; /* raw header block, NUL-terminated */
} http_resp;

/* Performs one request (the path is sent as is, no dot-segment removal). 0 or a CURLcode. */
int http_do(const char *method, const char *url, http_resp *r);
int http_get(const char *url, http_resp *r);
void http_resp_free(http_resp *r);

typedef struct watch watch;

/* Opens a stream on a thread of its own. */
watch *watch_open(const char *url);
/* Waits until the stream has at least n complete lines; false on timeout. */
bool watch_wait_lines(watch *w, size_t n, int timeout_ms);
/* Waits until the transfer ended; false on timeout. */
bool watch_wait_end(watch *w, int timeout_ms);
size_t watch_nlines(watch *w);
char *watch_line(watch *w, size_t i); /* a malloc'd copy without the newline, or NULL */
char *watch_body(watch *w);           /* everything received so far, a malloc'd copy */
long watch_code(watch *w);
int watch_result(watch *w);            /* the CURLcode once ended, else -1 */
bool watch_complete_chunked(watch *w); /* ended with CURLE_OK: the chunked body was closed */
/* Cuts the stream if it is still running (the reader hangs up), joins, frees. */
void watch_close(watch *w);

/* A raw TCP client, for what libcurl hides: the exact bytes, HTTP/1.0, a reader that stops
 * reading. raw_open connects to 127.0.0.1:port with a receive buffer of rcvbuf bytes (0: the
 * default) and sends `request` whole; -1 on failure. */
int raw_open(unsigned port, int rcvbuf, const char *request);
/* Reads until the peer closes (or resets), at most timeout_ms; the bytes, NUL-terminated, in
 * *out (malloc'd). Returns 0 when the peer closed, -1 on timeout. Closes fd. */
int raw_read_to_end(int fd, int timeout_ms, char **out, size_t *len);

#endif
