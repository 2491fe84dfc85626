/*
 * The upstream: ONE list+watch against etcd v3 through its JSON gateway, with libcurl.
 *
 * A thread of its own lists the key range in pages pinned to one revision, hands the snapshot to
 * the sink, then watches from that revision + 1 (prev_kv, progress_notify) and hands every
 * change to the sink in revision order. It knows etcd's wire and nothing of readers; the sink
 * (the daemon wires it to the cacher) is called only from the upstream's thread.
 */
#ifndef WCACHED_UPSTREAM_H
#define WCACHED_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/err.h"
#include "wcached/kv.h"

typedef struct wc_upstream wc_upstream;

typedef enum wc_upstream_state {
    WC_UP_CONNECTING = 0, /* listing or opening the watch */
    WC_UP_LIVE,           /* the watch is open and created */
    WC_UP_DOWN,           /* broken; retrying after a backoff */
} wc_upstream_state;

/* Where changes go. Every callback runs on the upstream thread, one at a time. A callback
 * returning a negative code other than WC_ESTALE/WC_ENOENT makes the upstream relist. */
typedef struct wc_upstream_sink {
    void *arg;
    /* A whole snapshot of the range at `rev`, in key order (initial list or relist). */
    int (*replace)(void *arg, const wc_kv_spec *kvs, size_t n, int64_t rev);
    int (*put)(void *arg, const wc_kv_spec *kv);
    int (*del)(void *arg, const char *key, size_t key_len, int64_t rev);
    /* Called for every progress notification, AND after each watch response that carried
     * events, with its last event's revision: it marks that revision complete (a txn's events
     * all arrive in one response, and the cache must not claim a revision half-applied). */
    int (*progress)(void *arg, int64_t rev);
    /* State changes, with a short reason for logs and /readyz (static or valid for the call). */
    void (*state)(void *arg, wc_upstream_state st, const char *reason);
} wc_upstream_sink;

typedef struct wc_upstream_opts {
    const char *const *endpoints; /* base URLs such as "http://127.0.0.1:2379" */
    size_t n_endpoints;
    const char *prefix; /* key range; "" or NULL for the whole keyspace */
    size_t prefix_len;
    size_t page_size;   /* range page (default 1000) */
    wc_upstream_sink sink;
} wc_upstream_opts;

/* Returns a new, stopped upstream (copies opts), or NULL. */
wc_upstream *wc_upstream_new(const wc_upstream_opts *o);
/* Starts the upstream thread. 0 or a negative wc_err. */
int wc_upstream_start(wc_upstream *u);
/* Stops the thread (it ends its transfers promptly) and frees everything. */
void wc_upstream_free(wc_upstream *u);

/*
 * Asks etcd for its current revision (a cheap range request), for consistent reads. Any
 * thread. 0 and *rev, or WC_EIO when no endpoint answers within timeout_ms.
 */
int wc_upstream_current_rev(wc_upstream *u, int64_t *rev, int64_t timeout_ms);

/*
 * Asks the live watch for a progress notification, so the cache's revision catches up with
 * etcd's even when nothing under the prefix changes. Any thread; returns at once.
 */
void wc_upstream_request_progress(wc_upstream *u);

#endif
