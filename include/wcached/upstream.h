/*
 * The upstream: ONE list+watch against etcd v3 through its JSON gateway, with libcurl.
 *
 * A thread of its own lists the key range in pages pinned to one revision, hands the snapshot to
 * the sink, then watches from that revision + 1 (progress_notify; no prev_kv, as the receiver
 * keeps the previous states it needs) and hands every change to the sink in revision order. A
 * start also takes etcd's history before the list back (refill_revisions) and hands it over
 * whole once it is in (backfill). It knows etcd's wire and nothing of readers; the sink (the
 * daemon wires it to the cacher) is called only from the upstream's thread.
 */
#ifndef WCACHED_UPSTREAM_H
#define WCACHED_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/err.h"
#include "wcached/change.h"

/* The etcd endpoint used when none is given (the daemon's default). */
#define WC_UPSTREAM_ENDPOINT "http://127.0.0.1:2379"
/* How many revisions of etcd's history a start takes back into the ring by default: at 1,000
 * writes/s, what a restart of up to 10 s leaves readers without. etcd 3.4 sends a watch from
 * the past about 1,000 revisions per 100 ms pass, each pass reading the history up to now; the
 * refill's watches from staggered revisions (up to 16) make that one or two passes, and the
 * window is still what a restart needs rather than the ring's size: readers who resume from
 * inside it wait for it. */
#define WC_UPSTREAM_REFILL_REVISIONS 10000

typedef struct wc_upstream wc_upstream;

typedef enum wc_upstream_state {
    WC_UP_CONNECTING = 0, /* listing or opening the watch */
    WC_UP_LIVE,           /* the watch is open and has caught up with etcd */
    WC_UP_DOWN,           /* broken; retrying after a backoff */
} wc_upstream_state;

/* Where changes go. Every callback runs on the upstream thread, one at a time. A callback
 * returning a negative code other than WC_ESTALE makes the upstream relist. */
typedef struct wc_upstream_sink {
    void *arg;
    /*
     * A whole snapshot of the range at `rev`, etcd's revision when it was listed, in key order
     * (initial list or relist). When `from` is older than `rev` (a refill, see
     * refill_revisions), the changes of (from, rev] follow later through backfill, or
     * backfill_abandon says they will not. `reset` says the history is not continuous with
     * what was handed over before — a different cluster answers, or the cluster went back
     * (restored from an older snapshot) — so the receiver must drop its history rather than
     * turn the difference into events.
     */
    int (*replace)(void *arg, const wc_kv_spec *kvs, size_t n, int64_t rev, int64_t from,
                   bool reset);
    /*
     * Optional, in place of `replace` when list_page is set: the same list handed over page by
     * page as it arrives, so that the receiver does its work on a page while etcd sends the
     * next. list_begin(count: the keys etcd reported in the range), then list_page for each
     * page in key order (borrowed for the call), then list_end(rev, from, reset) with the
     * meaning of `replace`; or list_abort when the list failed after list_begin. A non-zero
     * return from any of them fails the list. list_page needs list_end.
     */
    int (*list_begin)(void *arg, int64_t count);
    int (*list_page)(void *arg, const wc_kv_spec *kvs, size_t n);
    int (*list_end)(void *arg, int64_t rev, int64_t from, bool reset);
    void (*list_abort)(void *arg);
    /*
     * The changes of one watch response, in revision order (n >= 1). etcd never splits a
     * revision across responses, so every revision in a batch is whole: the receiver applies the
     * batch as one change and may treat its last revision as complete.
     */
    int (*apply)(void *arg, const wc_change *changes, size_t n);
    /* Called for every progress notification: every change up to `rev` has been handed over. */
    int (*progress)(void *arg, int64_t rev);
    /*
     * The history a list announced (from < rev there), whole: every change of the range in
     * (from, to], in revision order, each with the key's state before it when there was one
     * (wc_change.prev; etcd's prev_kv). Called once, between the changes handed to apply, while
     * the watch goes on; its return is not acted on. backfill_abandon instead says it will not
     * come (compacted under the watch, a stream that broke, or a quiet end that checks could
     * not prove), with a reason for the log.
     */
    int (*backfill)(void *arg, int64_t from, int64_t to, const wc_change *changes, size_t n);
    void (*backfill_abandon)(void *arg, const char *why);
    /* State changes, with a short reason for logs and /readyz (static or valid for the call). */
    void (*state)(void *arg, wc_upstream_state st, const char *reason);
} wc_upstream_sink;

typedef struct wc_upstream_opts {
    const char *const *endpoints; /* base URLs such as "http://127.0.0.1:2379" */
    size_t n_endpoints;
    const char *prefix; /* key range; "" or NULL for the whole keyspace */
    size_t prefix_len;
    size_t page_size; /* range page (default 1000) */
    /* TLS to etcd (PEM file paths; NULL when unused): the CA that signed etcd's certificate,
     * and a client certificate and key for etcd's --client-cert-auth. */
    const char *cacert, *cert, *key;
    /* etcd user and password (NULL when etcd auth is off): a token is obtained with
     * /v3/auth/authenticate and obtained again when etcd says it is no longer valid. The
     * password is kept in memory only and never logged. */
    const char *user, *password;
    /* A bearer token (NULL or "" when none; not with `user`), sent as "Authorization: Bearer
     * <token>" on every request: the endpoints are a wcached serving with --token-auth-file.
     * Kept in memory only and never logged. */
    const char *bearer;
#define WC_UPSTREAM_TOKEN_MAX 4096 /* bytes of a bearer token, or of etcd's own */
    /*
     * A refill: when the history starts from scratch (the first list, or one that drops it),
     * the changes of this many revisions before the list (but no further back than the
     * list's this-many most recently changed keys, nor than etcd's compaction revision) are
     * taken back from etcd's history on the watch's stream and handed to sink.backfill, so the
     * receiver can serve watches from then. 0: none.
     */
    int64_t refill_revisions;
    wc_upstream_sink sink;
} wc_upstream_opts;

/* The upstream's life, as every module's: new, start, stop, free. */

/* Returns a new, stopped upstream (copies opts), or NULL. */
wc_upstream *wc_upstream_new(const wc_upstream_opts *o);
/* Starts the upstream thread. 0, WC_EINVAL when it runs already, or WC_ENOMEM. */
int wc_upstream_start(wc_upstream *u);
/* Stops the thread (it ends its transfers promptly); no sink callback runs after it returns.
 * A stopped upstream may be started again. NULL is allowed. */
void wc_upstream_stop(wc_upstream *u);
/* Stops the upstream if it runs, and frees it. NULL is allowed. */
void wc_upstream_free(wc_upstream *u);

/*
 * Asks etcd for its current revision (a cheap range request), for consistent reads. Any
 * thread. 0 and *rev, or WC_EIO when no endpoint answers within timeout_ms.
 */
int wc_upstream_current_rev(wc_upstream *u, int64_t *rev, int64_t timeout_ms);

/* Why the watch was (re)opened, for metrics. */
typedef enum wc_upstream_cause {
    WC_UPC_TRANSPORT = 0, /* connection refused, reset, timed out */
    WC_UPC_STALLED,       /* open but silent past the stall bound */
    WC_UPC_ETCD,          /* etcd said no: an error object, a canceled watch */
    WC_UPC_PROTOCOL,      /* garbage on the wire */
    WC_UPC_COMPACTED,     /* the revision needed was compacted: relist */
    WC_UPC_BEHIND,        /* the member is behind the cache: try another */
    WC_UPC_WENT_BACK,     /* another cluster, or one restored from the past: reset */
    WC_UPC_LOCAL,         /* a failure on our side: allocation, libcurl set-up, the cache
                             refusing a change */
    WC_UPC_COUNT
} wc_upstream_cause;

/* Counters and gauges for /metrics; any thread. */
typedef struct wc_upstream_stats {
    uint64_t reconnects[WC_UPC_COUNT];
    uint64_t relists;        /* lists after the first */
    uint64_t resets;         /* lists that dropped the history (WC_UPC_WENT_BACK) */
    uint64_t refill_waits;   /* checks of a quiet refill that found history still to come */
    uint64_t refill_ends;    /* checks of a quiet refill that proved its end */
    uint64_t backfills;      /* histories handed over (sink.backfill) */
    uint64_t backfills_lost; /* ... and given up (sink.backfill_abandon) */
    size_t endpoint;         /* index into the endpoints in use */
    int64_t etcd_rev;        /* newest revision etcd has reported in any header */
    int64_t last_msg_age_ms; /* since the last message on the watch; -1 before the first */
} wc_upstream_stats;

void wc_upstream_stats_get(wc_upstream *u, wc_upstream_stats *out);
/* The cause's name for a metric label ("transport", "stalled", ...). */
const char *wc_upstream_cause_name(wc_upstream_cause c);

/*
 * Asks the live watch for a progress notification, so the cache's revision catches up with
 * etcd's even when nothing under the prefix changes. Any thread; returns at once.
 */
void wc_upstream_request_progress(wc_upstream *u);

/* The cluster, member and raft term of the latest etcd header seen (0 before the first), for
 * the etcd API's response headers. Any thread. */
void wc_upstream_header(wc_upstream *u, uint64_t *cluster_id, uint64_t *member_id,
                        int64_t *raft_term);

/*
 * Replaces the bearer token (NULL or "": none) for the requests made from now on (SIGHUP read
 * the token file again). Any thread. 0, WC_EINVAL with etcd auth (opts.user), or WC_ENOMEM with
 * the previous token kept.
 */
int wc_upstream_set_bearer(wc_upstream *u, const char *bearer);

#endif
