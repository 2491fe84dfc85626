/*
 * Test harness for the daemon end to end: runs the real wcached binary against a real etcd
 * (tests/support/etcd.h) and talks to it over HTTP with libcurl, as a reader would.
 */
#ifndef WCACHED_TEST_HARNESS_H
#define WCACHED_TEST_HARNESS_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A running wcached. */
typedef struct wc_test_daemon {
    pid_t pid;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char log_path[256];
} wc_test_daemon;

/*
 * Starts build's wcached (path from the WCACHED_BIN environment variable, set by meson) with
 * `--listen 127.0.0.1:0`, `--etcd-endpoints endpoints` and the extra NULL-terminated `args`,
 * waits for its "listening on" line and then for /readyz (unless wait_ready is false).
 * Returns 0, or -1 (the log is kept at d->log_path).
 */
int wc_test_daemon_start(wc_test_daemon *d, const char *endpoints, const char *const *args,
                         bool wait_ready);

/* Sends `sig` and waits for the exit; returns the exit status (or 128+signal). */
int wc_test_daemon_stop(wc_test_daemon *d, int sig);

/* A plain request's outcome. */
typedef struct wc_test_resp {
    long code;
    char *body; /* NUL-terminated */
    size_t len;
    char retry_after[16];
    char content_type[64];
} wc_test_resp;

/* GET base+path. Returns 0 or -1 (transport failure). */
int wc_test_get(const char *base, const char *path, wc_test_resp *r);
void wc_test_resp_free(wc_test_resp *r);
/* The body parsed as JSON (a new reference), or NULL. */
json_t *wc_test_resp_json(const wc_test_resp *r);

/* A streaming watch: lines are read as they arrive. */
typedef struct wc_test_watch wc_test_watch;

/* Opens GET base+path and waits for the response headers (up to 5 s). NULL on failure. */
wc_test_watch *wc_test_watch_open(const char *base, const char *path);
long wc_test_watch_code(wc_test_watch *w);
/*
 * The next event line, parsed (a new reference), waiting up to timeout_ms. NULL on timeout or
 * at the end of the stream (then wc_test_watch_ended() is true).
 */
json_t *wc_test_watch_next(wc_test_watch *w, int timeout_ms);
bool wc_test_watch_ended(wc_test_watch *w);
void wc_test_watch_close(wc_test_watch *w);

/* The value of one sample on base's /metrics (name with its labels, e.g.
 * `wcached_watchers` or `x_total{cause="etcd"}`), or -1. */
double wc_test_metric(const char *base, const char *name);

/* Event accessors. */
const char *wc_test_ev_type(json_t *ev);
int64_t wc_test_ev_rv(json_t *ev);
const char *wc_test_ev_key(json_t *ev); /* "key" (/keys) or metadata.name */

/* One change as etcd itself reports it. */
typedef struct wc_test_hist {
    char *key;
    int64_t mod_rev;
    bool deleted;
} wc_test_hist;

/*
 * etcd's own history of the keys under `prefix` from revision `from` (inclusive), read with
 * etcd's own watch through its JSON gateway at `client_url` for `ms` milliseconds. Returns 0 and
 * a new array, or -1.
 */
int wc_test_etcd_history(const char *client_url, const char *prefix, int64_t from, int ms,
                         wc_test_hist **out, size_t *n);
void wc_test_hist_free(wc_test_hist *h, size_t n);

#endif
