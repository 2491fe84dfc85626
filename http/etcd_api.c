/*
 * etcd's v3 JSON gateway, read side, served out of the cache: POST /v3/kv/range and POST
 * /v3/watch answer as etcd 3.4's gateway does (the proto's field names, int64 as strings, keys
 * and values base64, fields at their default left out, errors as {"error","message","code"}),
 * so etcd's HTTP clients and another wcached (--etcd-endpoints naming this one) read from the
 * cache unchanged. Every write answers 501: writes go to etcd.
 *
 * A range is answered on MHD's thread from wc_cacher_range; one that is not serializable is a
 * consistent read and first waits on the waiter thread, as a Kubernetes list without a
 * resourceVersion does, for the cache to reach etcd's current revision.
 *
 * A watch is a session of etcd watches on one stream (a wc_http_stream whose `etcd` is set):
 * requests come as newline-separated JSON in the request body, responses leave as one
 * {"result":{...}} line each. A body sent whole (Content-Length) is read first and the stream
 * then goes the way of every watch stream (MHD sends the headers, a pump the rest). A body
 * that stays open (chunked: etcd's clients, wcached's own upstream) cannot wait for its end,
 * and libmicrohttpd 0.9.75 queues no response before it: so at its first piece the stream takes
 * a duplicate of the socket and its pump writes the header block and the responses itself,
 * while MHD goes on reading the body on its own thread and hands each piece here (over HTTPS the
 * stream takes the sending half of the TLS session with the socket, and MHD reads the body
 * through the receiving half: stream.c). When the body ends MHD is told to drop the
 * connection, which with MHD_USE_TURBO closes its descriptor without a shutdown(): the
 * stream's socket lives on.
 *
 * Locking: a session's `mu` guards its watches, its control lines and its flags; it is taken
 * before the cacher's locks (reading or closing a watcher) and before the hook's (pokes), never
 * after them. The pump's own bytes (`out`) are its thread's.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_req.h"
#include "http_internal.h"

#define MAX_BODY (64 * 1024) /* a range request's body; one watch request line */
#define ROUND_EVENTS 4096    /* events a watch hands over per pump round */
/* Key and value bytes a stream takes from its watches per round: what a full socket leaves
 * unread stays in the watchers (and counts against the slow-reader budget), not here. */
#define ROUND_BYTES (256 * 1024)
#define MAX_WATCHES_PER_STREAM 1000

/* gRPC codes the gateway reports, with the HTTP status it maps them to. */
enum {
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_NOT_FOUND = 5,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
};

static unsigned grpc_http(int code)
{
    switch (code) {
    case GRPC_INVALID_ARGUMENT:
    case GRPC_FAILED_PRECONDITION:
    case GRPC_OUT_OF_RANGE:
        return 400;
    case GRPC_NOT_FOUND:
        return 404;
    case GRPC_RESOURCE_EXHAUSTED:
        return 429;
    case GRPC_UNIMPLEMENTED:
        return 501;
    case GRPC_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

static const char ERR_COMPACTED[] = "etcdserver: mvcc: required revision has been compacted";
static const char ERR_FUTURE[] = "etcdserver: mvcc: required revision is a future revision";

/* The gateway's error body: {"error":M,"message":M,"code":N}. */
static enum MHD_Result gw_error(wc_http *h, struct MHD_Connection *conn, int code, const char *fmt,
                                ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result gw_error(wc_http *h, struct MHD_Connection *conn, int code, const char *fmt,
                                ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    wc_buf b = {0};
    wc_buf_puts(&b, "{\"error\":");
    wc_buf_json(&b, msg, strlen(msg));
    wc_buf_puts(&b, ",\"message\":");
    wc_buf_json(&b, msg, strlen(msg));
    wc_buf_printf(&b, ",\"code\":%d}", code);
    if (b.oom) {
        wc_buf_free(&b);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        wc_buf_free(&b);
        return MHD_NO;
    }
    return wc_http_respond(h, conn, grpc_http(code), resp, "application/json");
}

/* ---------------------------------------------------------------------------------------
 * Encoding: jsonpb as the gateway writes it
 * ------------------------------------------------------------------------------------- */

/* ,"name": (or without the comma first), the opening quote of its value included. */
static void put_name(wc_buf *b, bool *first, const char *name)
{
    if (!*first)
        wc_buf_put(b, ",", 1);
    *first = false;
    wc_buf_put(b, "\"", 1);
    wc_buf_puts(b, name);
    wc_buf_put(b, "\":\"", 3);
}

/* ,"name":"v" (or without the comma first), left out at 0. The encoders of this file write
 * every response of every etcd watch stream: they append directly, without printf's pass over
 * its format and a base64 copy of each value. */
static void put_i64(wc_buf *b, bool *first, const char *name, int64_t v)
{
    if (v == 0)
        return;
    put_name(b, first, name);
    wc_buf_i64(b, v);
    wc_buf_put(b, "\"", 1);
}

static void put_u64(wc_buf *b, bool *first, const char *name, uint64_t v)
{
    if (v == 0)
        return;
    put_name(b, first, name);
    wc_buf_u64(b, v);
    wc_buf_put(b, "\"", 1);
}

static void put_b64(wc_buf *b, bool *first, const char *name, const char *p, size_t n)
{
    if (n == 0)
        return;
    put_name(b, first, name);
    char *out = wc_buf_room(b, wc_b64_encoded_size(n));
    if (!out)
        return;
    b->len += wc_b64_encode_to(p, n, out, WC_B64_STD);
    wc_buf_put(b, "\"", 1);
}

/* "header":{...} with the cache's revision. */
static void put_header(wc_http *h, wc_buf *b, int64_t rev)
{
    uint64_t cluster = 0, member = 0;
    int64_t term = 0;
    if (h->o.etcd_header)
        h->o.etcd_header(h->o.cb_arg, &cluster, &member, &term);
    bool first = true;
    wc_buf_puts(b, "\"header\":{");
    put_u64(b, &first, "cluster_id", cluster);
    put_u64(b, &first, "member_id", member);
    put_i64(b, &first, "revision", rev);
    put_i64(b, &first, "raft_term", term);
    wc_buf_puts(b, "}");
}

/* A KeyValue. */
static void put_kv(wc_buf *b, const wc_kv *kv, bool keys_only)
{
    size_t kl, vl;
    const char *k = wc_kv_key(kv, &kl);
    const char *v = wc_kv_value(kv, &vl);
    bool first = true;
    wc_buf_puts(b, "{");
    put_b64(b, &first, "key", k, kl);
    put_i64(b, &first, "create_revision", wc_kv_create_rev(kv));
    put_i64(b, &first, "mod_revision", wc_kv_mod_rev(kv));
    put_i64(b, &first, "version", wc_kv_version(kv));
    if (!keys_only)
        put_b64(b, &first, "value", v, vl);
    put_i64(b, &first, "lease", wc_kv_lease(kv));
    wc_buf_puts(b, "}");
}

/* ---------------------------------------------------------------------------------------
 * Range
 * ------------------------------------------------------------------------------------- */

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int r = n ? memcmp(a, b, n) : 0;
    return r ? r : (al < bl ? -1 : al > bl);
}

/* etcd's sort targets; ties (and KEY) by key. arg: the target, an int. */
static int cmp_kv(const void *a, const void *b, void *arg)
{
    const wc_kv *x = *(wc_kv *const *)a, *y = *(wc_kv *const *)b;
    int64_t u = 0, v = 0;
    switch (*(const int *)arg) {
    case 1:
        u = wc_kv_version(x), v = wc_kv_version(y);
        break;
    case 2:
        u = wc_kv_create_rev(x), v = wc_kv_create_rev(y);
        break;
    case 3:
        u = wc_kv_mod_rev(x), v = wc_kv_mod_rev(y);
        break;
    case 4: {
        size_t xl, yl;
        const char *xv = wc_kv_value(x, &xl), *yv = wc_kv_value(y, &yl);
        int c = key_cmp(xv, xl, yv, yl);
        if (c)
            return c;
        break;
    }
    default:
        break;
    }
    if (u != v)
        return u < v ? -1 : 1;
    size_t xl, yl;
    const char *xk = wc_kv_key(x, &xl), *yk = wc_kv_key(y, &yl);
    return key_cmp(xk, xl, yk, yl);
}

/* Answers a parsed range from the cache (the wait, if any, is over). */
static enum MHD_Result range_answer(wc_http *h, struct MHD_Connection *conn,
                                    const wc_http_etcd_range *q)
{
    const char *end;
    size_t end_len;
    wc_http_etcd_range_form(q->end, q->end_len, &end, &end_len);
    if (!wc_http_etcd_in_prefix(h->o.etcd_prefix, q->key, q->key_len, end, end_len)) {
        char k[WC_HTTP_QUOTE_MAX];
        return gw_error(h, conn, GRPC_FAILED_PRECONDITION,
                        "wcached: the range is outside the cached prefix \"%s\"",
                        wc_http_quote(h->o.etcd_prefix, strlen(h->o.etcd_prefix), k));
    }
    int64_t cur = wc_cacher_rev(h->o.cacher);
    if (q->revision > cur)
        return gw_error(h, conn, GRPC_OUT_OF_RANGE, "%s", ERR_FUTURE);
    wc_list l;
    int rc = wc_cacher_range(h->o.cacher, q->key, q->key_len, end, end_len,
                             q->revision > 0 ? q->revision : 0, &l);
    if (rc == WC_EEXPIRED)
        return gw_error(h, conn, GRPC_OUT_OF_RANGE, "%s", ERR_COMPACTED);
    if (rc == WC_ETIMEDOUT)
        return gw_error(h, conn, GRPC_OUT_OF_RANGE, "%s", ERR_FUTURE);
    if (rc == WC_ENOTREADY)
        return gw_error(h, conn, GRPC_UNAVAILABLE, "wcached: the cache is being initialized");
    if (rc != 0)
        return MHD_NO;
    size_t count = l.n, n = 0;
    for (size_t i = 0; i < l.n; i++) { /* etcd filters after counting */
        wc_kv *kv = l.items[i];
        int64_t mr = wc_kv_mod_rev(kv), cr = wc_kv_create_rev(kv);
        if ((q->max_mod && mr > q->max_mod) || (q->min_mod && mr < q->min_mod) ||
            (q->max_create && cr > q->max_create) || (q->min_create && cr < q->min_create)) {
            wc_kv_unref(kv);
            continue;
        }
        l.items[n++] = kv;
    }
    l.n = n;
    int order = q->sort_order;
    if (q->sort_target != 0 && order == 0)
        order = 1; /* etcd: a target other than the key sorts ascending by default */
    if (order != 0 && q->sort_target != 0) {
        int target = q->sort_target;
        qsort_r(l.items, l.n, sizeof(*l.items), cmp_kv, &target);
    }
    if (order == 2)
        for (size_t i = 0; i < l.n / 2; i++) {
            wc_kv *t = l.items[i];
            l.items[i] = l.items[l.n - 1 - i];
            l.items[l.n - 1 - i] = t;
        }
    bool more = false;
    size_t shown = q->count_only ? 0 : l.n;
    if (!q->count_only && q->limit > 0 && l.n > (size_t)q->limit) {
        shown = (size_t)q->limit;
        more = true;
    }
    wc_buf b = {0};
    wc_buf_puts(&b, "{");
    put_header(h, &b, l.rev);
    if (shown) {
        wc_buf_puts(&b, ",\"kvs\":[");
        for (size_t i = 0; i < shown; i++) {
            if (i)
                wc_buf_puts(&b, ",");
            put_kv(&b, l.items[i], q->keys_only);
        }
        wc_buf_puts(&b, "]");
    }
    if (more)
        wc_buf_puts(&b, ",\"more\":true");
    if (count)
        wc_buf_printf(&b, ",\"count\":\"%zu\"", count);
    wc_buf_puts(&b, "}");
    wc_list_release(&l);
    if (b.oom) {
        wc_buf_free(&b);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        wc_buf_free(&b);
        return MHD_NO;
    }
    return wc_http_respond(h, conn, 200, resp, "application/json");
}

static enum MHD_Result range_bad(wc_http *h, struct MHD_Connection *conn, int rc, const char *err)
{
    if (rc == WC_ENOMEM)
        return MHD_NO;
    return gw_error(h, conn, GRPC_INVALID_ARGUMENT, "%s", err);
}

static enum MHD_Result serve_range(wc_http *h, struct MHD_Connection *conn, wc_http_req *r)
{
    wc_http_etcd_range q;
    char err[256];
    int rc = wc_http_etcd_range_parse(r->body.p, r->body.len, &q, err, sizeof(err));
    if (rc != 0)
        return range_bad(h, conn, rc, err);
    if (!wc_cacher_ready(h->o.cacher)) {
        wc_http_etcd_range_free(&q);
        return gw_error(h, conn, GRPC_UNAVAILABLE, "wcached: the cache is being initialized");
    }
    if (!q.serializable && h->o.current_rev) {
        /* A linearizable read: the cache first reaches etcd's current revision. */
        wc_http_etcd_range_free(&q);
        r->need_current = true;
        r->target = 0;
        r->deadline = wc_mono_ms() + h->o.wait_ms;
        if (wc_http_waiter_submit(h, r)) {
            MHD_suspend_connection(conn);
            return MHD_YES;
        }
        return wc_http_etcd_after_wait(h, conn, r, r->wait_rc);
    }
    enum MHD_Result ret = range_answer(h, conn, &q);
    wc_http_etcd_range_free(&q);
    return ret;
}

enum MHD_Result wc_http_etcd_after_wait(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                        int rc)
{
    if (rc == WC_ETIMEDOUT)
        return gw_error(h, conn, GRPC_UNAVAILABLE, "etcdserver: request timed out");
    if (rc == WC_ENOTREADY)
        return gw_error(h, conn, GRPC_UNAVAILABLE, "wcached: the cache is being initialized");
    if (rc != 0)
        return gw_error(h, conn, GRPC_UNAVAILABLE,
                        "wcached: etcd did not tell its current revision: a linearizable read "
                        "is not possible now");
    wc_http_etcd_range q;
    char err[256];
    rc = wc_http_etcd_range_parse(r->body.p, r->body.len, &q, err, sizeof(err));
    if (rc != 0)
        return range_bad(h, conn, rc, err);
    enum MHD_Result ret = range_answer(h, conn, &q);
    wc_http_etcd_range_free(&q);
    return ret;
}

/* ---------------------------------------------------------------------------------------
 * Watch sessions
 * ------------------------------------------------------------------------------------- */

typedef struct etcd_watch {
    int64_t id;
    wc_watcher *w;
    char *key, *end; /* the range; end NULL: the one key; end_len 0 (end set): no bound */
    size_t key_len, end_len;
    bool narrow; /* the watcher's prefix is wider than the range: filter here */
    bool prev_kv, noput, nodelete;
    wc_event **evs; /* read this round, not yet encoded */
    size_t n_evs, cap_evs;
    int64_t progress; /* a bookmark fell due: a progress notification at this revision */
    bool capped;      /* this round's share ran out: its last revision may go on */
    size_t pulled;    /* events read this round */
    struct etcd_watch *next;
} etcd_watch;

typedef struct wc_http_etcd_session {
    wc_http *h;
    wc_http_stream *s;
    pthread_mutex_t mu;
    unsigned refs;       /* the stream's, and one per progress thread */
    bool closed;         /* the stream ended: no more watches, no more pokes */
    bool gone;           /* the stream was freed */
    etcd_watch *watches; /* by creation */
    size_t n_watches;
    int64_t next_id;
    wc_buf ctl;          /* responses to requests, sent before any event */
    bool deaf;           /* a request that did not parse: the rest of the body is ignored */
    int64_t progress_at; /* answer a progress_request once the cache is at this revision */
    bool progress_want;
    /* MHD's thread only: the request line being received. */
    wc_buf line;
    /* The pump's only: encoded bytes not yet handed over. */
    wc_buf out;
    size_t out_off;
} wc_http_etcd_session;

static void watch_free(etcd_watch *w)
{
    if (w->w)
        wc_watcher_free(w->w);
    for (size_t i = 0; i < w->n_evs; i++)
        wc_event_unref(w->evs[i]);
    free(w->evs);
    free(w->key);
    free(w->end);
    free(w);
}

static void session_unref_locked(wc_http_etcd_session *e, bool *free_it)
{
    *free_it = --e->refs == 0;
}

static void session_destroy(wc_http_etcd_session *e)
{
    wc_buf_free(&e->ctl);
    wc_buf_free(&e->line);
    wc_buf_free(&e->out);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static void session_close(void *arg)
{
    wc_http_etcd_session *e = arg;
    pthread_mutex_lock(&e->mu);
    e->closed = true;
    etcd_watch *w = e->watches;
    e->watches = NULL;
    e->n_watches = 0;
    while (w) {
        etcd_watch *next = w->next;
        watch_free(w);
        w = next;
    }
    pthread_mutex_unlock(&e->mu);
}

static bool session_lagged(void *arg)
{
    wc_http_etcd_session *e = arg;
    bool lagged = false;
    pthread_mutex_lock(&e->mu);
    for (etcd_watch *w = e->watches; w && !lagged; w = w->next) {
        if (!wc_watcher_ended(w->w))
            continue;
        wc_end_reason r = wc_watcher_end_reason(w->w);
        lagged = r == WC_END_SLOW || r == WC_END_EXPIRED;
    }
    pthread_mutex_unlock(&e->mu);
    return lagged;
}

static void session_free(void *arg)
{
    wc_http_etcd_session *e = arg;
    bool free_it;
    pthread_mutex_lock(&e->mu);
    e->gone = true;
    session_unref_locked(e, &free_it);
    pthread_mutex_unlock(&e->mu);
    if (free_it)
        session_destroy(e);
}

/* A response line: {"result":{"header":{..},"watch_id":..., <rest>}}. */
static void put_result(wc_http *h, wc_buf *b, int64_t rev, int64_t watch_id, const char *rest)
{
    wc_buf_puts(b, "{\"result\":{");
    put_header(h, b, rev);
    if (watch_id)
        wc_buf_printf(b, ",\"watch_id\":\"%" PRId64 "\"", watch_id);
    wc_buf_puts(b, rest);
    wc_buf_puts(b, "}}\n");
}

/* One create_request (its key and end move into the watch). Holds e->mu. */
static void create_watch(wc_http_etcd_session *e, wc_http_etcd_watch_req *req)
{
    wc_http *h = e->h;
    etcd_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        e->ctl.oom = true;
        return;
    }
    w->key = req->key;
    w->key_len = req->key_len;
    w->end = req->end;
    w->end_len = req->end_len;
    req->key = req->end = NULL;
    w->prev_kv = req->prev_kv;
    w->noput = req->noput;
    w->nodelete = req->nodelete;
    int64_t start = req->start_revision, id = req->watch_id;
    bool progress_notify = req->progress_notify;
    int64_t cur = wc_cacher_rev(h->o.cacher);
    if (id <= 0) /* none given (jsonpb cannot tell 0 from none): the next free one */
        id = e->next_id;
    for (etcd_watch *o = e->watches; o; o = o->next)
        if (o->id == id) {
            put_result(h, &e->ctl, cur, -1,
                       ",\"created\":true,\"canceled\":true,\"cancel_reason\":"
                       "\"etcdserver: duplicate watch ID\"");
            watch_free(w);
            return;
        }
    if (id >= e->next_id)
        e->next_id = id + 1;
    if (!wc_http_etcd_in_prefix(h->o.etcd_prefix, w->key, w->key_len, w->end, w->end_len) ||
        e->n_watches >= MAX_WATCHES_PER_STREAM) {
        wc_buf reason = {0};
        wc_buf_puts(&reason, ",\"created\":true,\"canceled\":true,\"cancel_reason\":");
        const char *why = e->n_watches >= MAX_WATCHES_PER_STREAM
                              ? "wcached: too many watches on one stream"
                              : "wcached: the range is outside the cached prefix";
        wc_buf_json(&reason, why, strlen(why));
        put_result(h, &e->ctl, cur, -1, reason.p ? reason.p : "");
        wc_buf_free(&reason);
        watch_free(w);
        return;
    }
    w->id = id;
    int64_t floor = wc_cacher_floor(h->o.cacher);
    if (start > 0 && start - 1 < floor) {
        /* As etcd: created, then canceled with the revision history starts after. */
        char rest[96];
        put_result(h, &e->ctl, cur, id, ",\"created\":true");
        snprintf(rest, sizeof(rest), ",\"canceled\":true,\"compact_revision\":\"%" PRId64 "\"",
                 floor);
        put_result(h, &e->ctl, 0, id, rest);
        watch_free(w);
        return;
    }
    /* The watcher: the exact key, the prefix the range is, or the longest prefix common to
     * both ends (every key from key on: all the cache) with the range checked here. */
    wc_watch_opts wo = {.filter = {.family = WC_FAMILY_KEYS},
                        .rv = start > 0 ? start - 1 : WC_RV_UNSET,
                        .allow_bookmarks = progress_notify,
                        .raw_events = true,
                        .wake = wc_http_stream_wake,
                        .wake_arg = e->s};
    wo.filter.key = w->key;
    wo.filter.key_len = w->key_len;
    if (w->end) {
        size_t cp = 0, n = w->key_len;
        while (cp < n && cp < w->end_len && w->key[cp] == w->end[cp])
            cp++;
        /* [P, P with its last byte raised) is exactly the keys under P. */
        bool prefix = n > 0 && w->end_len == n && cp == n - 1 &&
                      (unsigned char)w->key[cp] != 0xff &&
                      (unsigned char)w->end[cp] == (unsigned char)w->key[cp] + 1;
        wo.filter.prefix = true;
        wo.filter.key_len = prefix ? n : (w->end_len ? cp : 0);
        w->narrow = !prefix;
    }
    int rc = wc_cacher_watch(h->o.cacher, &wo, &w->w, &floor);
    if (rc == WC_EEXPIRED) {
        char rest[96];
        put_result(h, &e->ctl, cur, id, ",\"created\":true");
        snprintf(rest, sizeof(rest), ",\"canceled\":true,\"compact_revision\":\"%" PRId64 "\"",
                 floor);
        put_result(h, &e->ctl, 0, id, rest);
        w->w = NULL;
        watch_free(w);
        return;
    }
    if (rc != 0) {
        w->w = NULL;
        put_result(h, &e->ctl, cur, -1,
                   ",\"created\":true,\"canceled\":true,\"cancel_reason\":"
                   "\"wcached: the cache cannot take a watch now\"");
        watch_free(w);
        return;
    }
    put_result(h, &e->ctl, cur, id, ",\"created\":true");
    etcd_watch **pp = &e->watches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    e->n_watches++;
}

static void cancel_watch(wc_http_etcd_session *e, int64_t id)
{
    for (etcd_watch **pp = &e->watches; *pp; pp = &(*pp)->next) {
        etcd_watch *w = *pp;
        if (w->id != id)
            continue;
        *pp = w->next;
        e->n_watches--;
        watch_free(w);
        put_result(e->h, &e->ctl, wc_cacher_rev(e->h->o.cacher), id, ",\"canceled\":true");
        return;
    }
}

/* Waits, off MHD's thread, for the cache to reach etcd's current revision, then lets the pump
 * answer the progress_request. On failure nothing is answered (as etcd, while a watcher is not
 * synced). */
static void *progress_main(void *arg)
{
    wc_http_etcd_session *e = arg;
    wc_http *h = e->h;
    int64_t rev = 0;
    int rc = h->o.current_rev(h->o.cb_arg, &rev);
    if (rc == 0) {
        if (h->o.request_progress)
            h->o.request_progress(h->o.cb_arg);
        rc = wc_cacher_wait_rev(h->o.cacher, rev, h->o.wait_ms);
    }
    bool free_it;
    pthread_mutex_lock(&e->mu);
    if (rc == 0 && !e->closed) {
        if (rev > e->progress_at)
            e->progress_at = rev;
        e->progress_want = true;
        wc_http_stream_poke(e->s); /* e->mu keeps the stream from being freed meanwhile */
    }
    session_unref_locked(e, &free_it);
    pthread_mutex_unlock(&e->mu);
    if (free_it)
        session_destroy(e);
    atomic_fetch_sub(&h->etcd_threads, 1); /* the last touch of h: stop waits for it */
    return NULL;
}

static void progress_request(wc_http_etcd_session *e)
{
    if (!e->h->o.current_rev) {
        e->progress_want = true;
        return;
    }
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    e->refs++;
    atomic_fetch_add(&e->h->etcd_threads, 1);
    if (pthread_create(&t, &a, progress_main, e) != 0) {
        e->refs--; /* no answer, as when etcd cannot give one */
        atomic_fetch_sub(&e->h->etcd_threads, 1);
    }
    pthread_attr_destroy(&a);
}

/* One request line. Holds e->mu. */
static void handle_line(wc_http_etcd_session *e, const char *p, size_t n)
{
    if (e->deaf || e->closed)
        return;
    wc_http_etcd_watch_req req;
    bool oom;
    switch (wc_http_etcd_watch_parse(p, n, &req, &oom)) {
    case WC_HTTP_ETCD_CREATE:
        create_watch(e, &req);
        wc_http_etcd_watch_free(&req);
        break;
    case WC_HTTP_ETCD_CANCEL:
        cancel_watch(e, req.watch_id);
        break;
    case WC_HTTP_ETCD_PROGRESS:
        progress_request(e);
        break;
    case WC_HTTP_ETCD_BAD:
        /* As the gateway: a request it cannot decode ends its reading. */
        if (oom)
            e->ctl.oom = true;
        else
            e->deaf = true;
        break;
    case WC_HTTP_ETCD_IGNORED:
        break;
    }
}

/* Request bytes as they come; whole lines are handled. MHD's thread. */
static void feed(wc_http_etcd_session *e, const char *p, size_t n, bool last)
{
    pthread_mutex_lock(&e->mu);
    size_t ctl_before = e->ctl.len;
    bool want_before = e->progress_want;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (e->line.len + k > MAX_BODY) {
            e->deaf = true;
        } else if (nl && e->line.len == 0) {
            handle_line(e, p, k);
        } else {
            wc_buf_put(&e->line, p, k);
            if (nl) {
                handle_line(e, e->line.p, e->line.len);
                e->line.len = 0;
            }
        }
        p += nl ? k + 1 : k;
        n -= nl ? k + 1 : k;
    }
    if (last && e->line.len) {
        handle_line(e, e->line.p, e->line.len);
        e->line.len = 0;
    }
    bool poke = !e->closed && (e->ctl.len != ctl_before || e->progress_want != want_before);
    if (poke)
        wc_http_stream_poke(e->s);
    pthread_mutex_unlock(&e->mu);
}

/* ---------------------------------------------------------------------------------------
 * The pump's side: events and answers into bytes
 * ------------------------------------------------------------------------------------- */

static bool watch_wants(const etcd_watch *w, const wc_event *ev)
{
    bool del = wc_event_type(ev) == WC_EV_DELETED;
    if ((del && w->nodelete) || (!del && w->noput))
        return false;
    if (!w->narrow)
        return true;
    const wc_kv *k = del ? wc_event_prev(ev) : wc_event_kv(ev);
    size_t kl;
    const char *key = wc_kv_key(k, &kl);
    if (!w->end)
        return key_cmp(key, kl, w->key, w->key_len) == 0;
    if (key_cmp(key, kl, w->key, w->key_len) < 0)
        return false;
    return w->end_len == 0 || key_cmp(key, kl, w->end, w->end_len) < 0;
}

static void put_event(wc_buf *b, const etcd_watch *w, const wc_event *ev)
{
    const wc_kv *prev = wc_event_prev(ev);
    if (wc_event_type(ev) == WC_EV_DELETED) {
        size_t kl;
        const char *key = wc_kv_key(prev, &kl);
        bool first = true;
        wc_buf_puts(b, "{\"type\":\"DELETE\",\"kv\":{");
        put_b64(b, &first, "key", key, kl);
        put_i64(b, &first, "mod_revision", wc_event_rev(ev));
        wc_buf_puts(b, "}");
    } else {
        wc_buf_puts(b, "{\"kv\":");
        put_kv(b, wc_event_kv(ev), false);
    }
    if (w->prev_kv && prev) {
        wc_buf_puts(b, ",\"prev_kv\":");
        put_kv(b, prev, false);
    }
    wc_buf_puts(b, "}");
}

static size_t event_bytes(const wc_event *ev)
{
    const wc_kv *k = wc_event_kv(ev) ? wc_event_kv(ev) : wc_event_prev(ev);
    size_t kl, vl;
    wc_kv_key(k, &kl);
    wc_kv_value(k, &vl);
    return kl + vl;
}

/* Reads a watch's events until it has none, or the round's share (ROUND_EVENTS of its own,
 * ROUND_BYTES in *bytes for the stream) is used; the highest revision read in *max_rev.
 * Returns 0, WC_EOF when the watcher ended, or 1 when the share ran out. */
static int pull(etcd_watch *w, int64_t *max_rev, size_t *bytes)
{
    for (;;) {
        if (w->pulled >= ROUND_EVENTS || *bytes >= ROUND_BYTES) {
            w->capped = true;
            return 1;
        }
        if (w->cap_evs - w->n_evs < 256) {
            size_t cap = w->cap_evs ? w->cap_evs * 2 : 256;
            wc_event **more = realloc(w->evs, cap * sizeof(*more));
            if (!more)
                return WC_ENOMEM;
            w->evs = more;
            w->cap_evs = cap;
        }
        size_t n = 0;
        int64_t progress = 0;
        int rc = wc_watcher_read_events(w->w, w->evs + w->n_evs, 16, &n, &progress);
        if (rc == WC_EAGAIN)
            return 0;
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            *bytes += event_bytes(w->evs[w->n_evs + i]);
        w->n_evs += n;
        w->pulled += n;
        if (n && wc_event_rev(w->evs[w->n_evs - 1]) > *max_rev)
            *max_rev = wc_event_rev(w->evs[w->n_evs - 1]);
        if (progress > w->progress)
            w->progress = progress;
    }
}

/* Encodes what the watches have into e->out. Holds e->mu. True when a watch used up its share
 * of the round: the pump must come back. */
static bool collect(wc_http_etcd_session *e)
{
    wc_http *h = e->h;
    bool again = false;
    int64_t rev;
    /* A revision is only sent whole: events read past the cache's revision (a batch being
     * published) are completed by reading again once the batch is in. */
    size_t bytes = 0;
    for (;;) {
        rev = wc_cacher_rev(h->o.cacher);
        int64_t max_rev = 0;
        again = false;
        for (etcd_watch *w = e->watches; w; w = w->next) {
            w->capped = false;
            w->pulled = 0;
            int rc = pull(w, &max_rev, &bytes);
            if (rc == 1)
                again = true;
            else if (rc == WC_EOF || rc == WC_ENOMEM)
                w->progress = -1; /* ended */
        }
        if (again || max_rev <= rev)
            break;
    }
    for (etcd_watch **pp = &e->watches; *pp;) {
        etcd_watch *w = *pp;
        size_t keep = 0;
        if (w->capped && w->n_evs && w->progress >= 0) {
            /* The last revision may go on: it waits for the next round (all of it, when one
             * revision is more than a round: a revision is never split). */
            int64_t last = wc_event_rev(w->evs[w->n_evs - 1]);
            while (keep < w->n_evs && wc_event_rev(w->evs[w->n_evs - 1 - keep]) == last)
                keep++;
        }
        size_t send = w->n_evs - keep, shown = 0;
        /* The header's revision tells the reader it has every change up to it (etcd's own
         * watch responses mean that, and a wcached below takes it as progress): the cache's
         * revision only when this watch is caught up, else the last revision it sends whole. */
        int64_t upto = w->capped && send ? wc_event_rev(w->evs[send - 1]) : rev;
        for (size_t i = 0; i < send; i++) {
            if (!watch_wants(w, w->evs[i]))
                continue;
            if (shown++ == 0) {
                wc_buf_puts(&e->out, "{\"result\":{");
                put_header(h, &e->out, upto);
                if (w->id) {
                    wc_buf_puts(&e->out, ",\"watch_id\":\"");
                    wc_buf_i64(&e->out, w->id);
                    wc_buf_puts(&e->out, "\"");
                }
                wc_buf_puts(&e->out, ",\"events\":[");
            } else {
                wc_buf_puts(&e->out, ",");
            }
            put_event(&e->out, w, w->evs[i]);
        }
        if (shown)
            wc_buf_puts(&e->out, "]}}\n");
        for (size_t i = 0; i < send; i++)
            wc_event_unref(w->evs[i]);
        memmove(w->evs, w->evs + send, keep * sizeof(*w->evs));
        w->n_evs = keep;
        if (w->progress < 0) {
            /* Ended: too slow, out of the ring, a reset or shutdown. Canceled, with the
             * ring's floor when history the reader needs is gone. */
            wc_end_reason why = wc_watcher_end_reason(w->w);
            char rest[256];
            if (why == WC_END_EXPIRED || why == WC_END_RESET)
                snprintf(rest, sizeof(rest),
                         ",\"canceled\":true,\"compact_revision\":\"%" PRId64 "\"",
                         wc_cacher_floor(h->o.cacher));
            else
                snprintf(rest, sizeof(rest), ",\"canceled\":true,\"cancel_reason\":\"wcached: %s\"",
                         wc_end_reason_text(why));
            put_result(h, &e->out, rev, w->id, rest);
            *pp = w->next;
            e->n_watches--;
            watch_free(w);
            continue;
        }
        if (w->progress > 0 && !shown && !keep)
            put_result(h, &e->out, rev, w->id, "");
        w->progress = 0;
        pp = &w->next;
    }
    if (e->progress_want && !again && rev >= e->progress_at) {
        put_result(h, &e->out, rev, -1, "");
        e->progress_want = false;
    }
    return again;
}

static int session_read(void *arg, char *buf, size_t max, size_t *n)
{
    wc_http_etcd_session *e = arg;
    *n = 0;
    if (e->out_off == e->out.len) {
        e->out.len = e->out_off = 0;
        pthread_mutex_lock(&e->mu);
        if (e->closed) {
            pthread_mutex_unlock(&e->mu);
            return WC_EOF;
        }
        wc_buf_put(&e->out, e->ctl.p, e->ctl.len);
        e->ctl.len = 0;
        bool again = collect(e);
        bool oom = e->out.oom || e->ctl.oom;
        if (again)
            wc_http_stream_poke(e->s);
        pthread_mutex_unlock(&e->mu);
        if (oom)
            return WC_ENOMEM;
        if (e->out.len == 0)
            return WC_EAGAIN;
    }
    size_t k = e->out.len - e->out_off;
    if (k > max)
        k = max;
    memcpy(buf, e->out.p + e->out_off, k);
    e->out_off += k;
    *n = k;
    return 0;
}

/* The pump's side of an etcd watch stream (wc_http_stream.body). */
static const wc_http_body_ops session_ops = {
    .read = session_read,
    .lagged = session_lagged,
    .close = session_close,
    .free = session_free,
    /* etcd's gateway sends each response when it is ready; a tier below gathers for its own
     * readers, so gathering here too would only add its wait to theirs. */
    .at_once = true,
};

/* ---------------------------------------------------------------------------------------
 * Watch requests
 * ------------------------------------------------------------------------------------- */

static enum MHD_Result serve_watch(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                   bool body_done, void **con_cls)
{
    r->watch = true; /* for the request metrics */
    if (!wc_cacher_ready(h->o.cacher))
        return gw_error(h, conn, GRPC_UNAVAILABLE, "wcached: the cache is being initialized");
    wc_http_stream *s = wc_http_stream_new(h);
    wc_http_etcd_session *e = calloc(1, sizeof(*e));
    if (!s || !e) {
        free(e);
        wc_http_stream_free(s);
        return MHD_NO;
    }
    pthread_mutex_init(&e->mu, NULL);
    e->h = h;
    e->s = s;
    e->refs = 1;
    s->body_ops = &session_ops;
    s->body = e;
    int admitted = wc_http_stream_admit(h, s, r->user);
    if (admitted != 0) {
        wc_http_stream_free(s);
        if (admitted == WC_ENOMEM)
            return MHD_NO;
        return gw_error(h, conn, GRPC_RESOURCE_EXHAUSTED,
                        "wcached: too many watches at once: try again later");
    }
    if (body_done) {
        /* The requests are all in: the stream goes the way of every watch stream. */
        feed(e, r->body.p ? r->body.p : "", r->body.len, true);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, wc_http_stream_read, s, NULL);
        if (!resp) {
            wc_http_stream_free(s);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        if (wc_http_respond(h, conn, 200, resp, "application/json") != MHD_YES) {
            wc_http_stream_free(s);
            return MHD_NO;
        }
        wc_http_stream_opened(s, conn, !r->http10);
        *con_cls = s;
        return MHD_YES;
    }
    /* The body stays open: MHD reads it, the stream's pump writes the answer. */
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "Cache-Control: no-cache, private\r\n"
                               "Connection: close\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    s->head = strdup(head);
    if (!s->head) {
        wc_http_stream_free(s);
        return MHD_NO;
    }
    s->head_len = sizeof(head) - 1;
    s->mhd_reads = true;
    atomic_fetch_add_explicit(&h->codes[200], 1, memory_order_relaxed);
    wc_http_stream_opened(s, conn, true);
    *con_cls = s;
    return MHD_YES;
}

enum MHD_Result wc_http_etcd_upload(wc_http *h, struct MHD_Connection *conn, wc_http_stream *s,
                                    const char *data, size_t *n)
{
    (void)h;
    /* Nothing is written before the first piece: by then MHD has sent any 100 Continue. */
    if (s->fd < 0 && wc_http_stream_take(s, conn) != 0)
        return MHD_NO;
    size_t len = *n;
    *n = 0;
    feed(s->body, data, len, len == 0);
    /* The body ended: MHD drops its side (no shutdown, MHD_USE_TURBO); the stream goes on. */
    return len ? MHD_YES : MHD_NO;
}

/* ---------------------------------------------------------------------------------------
 * The entry
 * ------------------------------------------------------------------------------------- */

enum MHD_Result wc_http_etcd_serve(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                   const char *url, const char *method, bool body_done,
                                   void **con_cls)
{
    bool post = method && strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (strcmp(url, "/v3/kv/range") == 0 || strcmp(url, "/v3/watch") == 0) {
        if (!post)
            return gw_error(h, conn, GRPC_NOT_FOUND, "Method Not Allowed");
        if (strcmp(url, "/v3/watch") == 0)
            return serve_watch(h, conn, r, body_done, con_cls);
        if (!body_done)
            return gw_error(h, conn, GRPC_INVALID_ARGUMENT,
                            "wcached: a range request's body is sent whole, with its "
                            "Content-Length, and is at most %d bytes",
                            MAX_BODY);
        return serve_range(h, conn, r);
    }
    static const char *const writes[] = {
        "/v3/kv/put",   "/v3/kv/deleterange", "/v3/kv/txn", "/v3/kv/compaction", "/v3/lease/",
        "/v3/cluster/", "/v3/maintenance/",   "/v3/auth/",  "/v3/election/",     "/v3/lock/",
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        if (strncmp(url, writes[i], strlen(writes[i])) == 0)
            return gw_error(h, conn, GRPC_UNIMPLEMENTED,
                            "wcached serves the read side of etcd's API (range and watch): "
                            "send writes, leases, auth and maintenance to etcd");
    return gw_error(h, conn, GRPC_NOT_FOUND, "Not Found");
}
