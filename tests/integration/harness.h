/*
 * Test harness for the daemon end to end: runs the real wcached binary against a real etcd
 * (tests/support/etcd.h) and talks to it over HTTP with libcurl, as a reader would.
 */
#ifndef WCACHED_TEST_HARNESS_H
#define WCACHED_TEST_HARNESS_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A running wcached. */
typedef struct wc_test_daemon {
    pid_t pid;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char log_path[512];
} wc_test_daemon;

/*
 * Starts build's wcached (path from the WCACHED_BIN environment variable, set by meson) with
 * `--listen 127.0.0.1:0`, `--etcd-endpoints endpoints` and the extra NULL-terminated `args`,
 * waits for its "listening on" line and then for /readyz (unless wait_ready is false).
 * Returns 0, or -1 (the log is kept at d->log_path).
 */
int wc_test_daemon_start(wc_test_daemon *d, const char *endpoints, const char *const *args,
                         bool wait_ready);

/* The monotonic clock, in milliseconds. */
int64_t wc_test_now_ms(void);

/* Sends `sig` and waits for the exit; returns the exit status (or 128+signal). */
int wc_test_daemon_stop(wc_test_daemon *d, int sig);

struct wc_test_etcd;
/* A test's end: stops the daemon (with SIGTERM, thawing it first in case the test froze it)
 * if it runs, then etcd. */
void wc_test_stop_all(wc_test_daemon *d, struct wc_test_etcd *e);

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
/* The same with the socket's receive buffer set to rcvbuf bytes (if > 0), as a slow reader's. */
wc_test_watch *wc_test_watch_open_rcvbuf(const char *base, const char *path, int rcvbuf);
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

/* One change as etcd itself reports it, or one key's state. */
typedef struct wc_test_hist {
    char *key;
    char *value; /* NULL for a deletion, or where it was not asked for */
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

/*
 * etcd's own state of the keys under `prefix` (a linearizable range through the JSON gateway
 * at `client_url`), in key order, with each key's value and mod_revision; *rev (if not NULL)
 * gets the range's revision. Returns 0 and a new array, or -1.
 */
int wc_test_etcd_range(const char *client_url, const char *prefix, wc_test_hist **out, size_t *n,
                       int64_t *rev);

/*
 * A reader as a Kubernetes reflector runs one: in a thread of its own it watches base's
 * `/keys<prefix>` from a resourceVersion and, whenever its stream ends (the server's end, or
 * its own cut), watches again from the last resourceVersion it saw (an event's or a bookmark's).
 * It records every event's change in `ev` (key, value, the object's resourceVersion) and checks
 * each stream as it goes.
 */
typedef struct wc_test_reader_opts {
    const char *prefix; /* e.g. "/t/" */
    const char *query;  /* more of the query string, e.g. "&timeoutSeconds=1"; may be NULL */
    /* > 0: the reader itself closes each stream after this many events, at the first change
     * of revision after them (the event with the new revision is left for the next stream):
     * a reader that cut inside a revision and resumed from it would miss the rest of it. */
    int cut_after;
    int rcvbuf; /* > 0: the socket's receive buffer (SO_RCVBUF), for a reader that stalls */
} wc_test_reader_opts;

#define WC_TEST_READER_ENDS 64

typedef struct wc_test_reader {
    pthread_t th;
    const char *base;
    wc_test_reader_opts o;
    int64_t start_rv;
    _Atomic int64_t rv;      /* the last resourceVersion seen */
    wc_test_hist *ev;        /* every event but bookmarks and errors, in the order received */
    size_t n, cap;           /* owned by the reader's thread until wc_test_readers_stop() */
    _Atomic int expired;     /* ERROR events (410): the reader would have had to relist */
    _Atomic int rewatches;   /* streams after the first */
    _Atomic int server_ends; /* streams the server ended */
    /* the newest event revision of each of them (the first WC_TEST_READER_ENDS) */
    int64_t ends_at[WC_TEST_READER_ENDS];
    _Atomic int backwards; /* events older than the one before them on the same stream */
    _Atomic int rv_lies;   /* objects whose metadata.resourceVersion is not their modRevision */
    /* Set by the test: while set, the reader reads nothing, and its socket fills up as a
     * stalled reader's does. */
    atomic_bool paused;
    atomic_bool stop;
} wc_test_reader;

/* Starts n readers of base from resourceVersion rv. */
void wc_test_readers_start(wc_test_reader *rs, int n, const char *base,
                           const wc_test_reader_opts *o, int64_t rv);
/* Waits up to timeout_ms for reader r to see revision rev; true when it did. */
bool wc_test_reader_wait(wc_test_reader *r, int64_t rev, int timeout_ms);
/* Stops and joins n readers; their records stay until wc_test_readers_free(). */
void wc_test_readers_stop(wc_test_reader *rs, int n);
void wc_test_readers_free(wc_test_reader *rs, int n);

#endif
