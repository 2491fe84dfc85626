/*
 * The HTTP server: libmicrohttpd in epoll mode with suspend/resume, so thousands of watch
 * streams share a thread or two.
 *
 * Every request takes the same way:
 *   on_request -> authorize (the one gate) -> wc_http_route_parse -> fixed routes answer at once
 *   data routes -> wc_http_query_parse -> 429 before the cache is ready
 *     -> a read that needs a newer cache (consistent, or RV=N ahead of it) is suspended and
 *        handed to the waiter thread, which resumes it; on_request runs again and goes on
 *     -> serve: get (one object), list (streamed from the pre-encoded objects, Content-Length
 *        known up front) or watch (stream.c)
 * and every answer leaves through wc_http_respond() (respond.c), which counts it by code. Both
 * route families (/keys and Kubernetes) reach serve() as the same wc_http_route, so get, list
 * and watch are written once. conn.c keeps the connections' own state: the descriptor budget
 * and the header deadline.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "http_internal.h"
#include "wcached/cpu.h"
#include "table.h"
#include "wcached/log.h"

/* libmicrohttpd 0.9.75's record of one query parameter or header field in the connection's
 * buffer (its struct MHD_HTTP_Header, aligned), measured as what each parameter more takes. */
#define MHD_PARAM_BYTES 64
#define MAX_DROPPED_BODY (64 * 1024) /* a body read and dropped before the answer */
#define LIST_BLOCK (32 * 1024)       /* bytes per content-reader call of a list */
#define DRAIN_MS 3000                /* how long stop waits for streams to end */
#define CONN_LIMIT_MARGIN 16         /* MHD's connection limit above the budget, per thread */

static void observe(wc_http *h, struct MHD_Connection *conn, const wc_http_req *r);

void wc_http_opts_default(wc_http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = WC_HTTP_LISTEN;
    o->k8s_prefix = WC_HTTP_K8S_PREFIX;
    o->threads = WC_HTTP_THREADS;
    o->coalesce_ms = WC_HTTP_COALESCE_MS;
    /* conn_memory 0: what the request bounds need, 32 KiB at the defaults. libmicrohttpd takes
     * a pool of 32 KiB or less from the heap, and maps a bigger one on its own: then every
     * connection costs an mmap, page faults, and an munmap whose TLB shootdown interrupts every
     * other thread of the process. With mapped pools a storm of 10,000 re-watches cost 5.6
     * CPU-seconds instead of 1.9-2.3, and its streams took 3.7 s to catch up instead of 1.4-1.7
     * (docs/BENCHMARKS.md, "Connections' buffers from the heap"). The holes the freed pools
     * leave among the streams' small blocks are given back by the trim after a storm
     * (stream.c). */
    o->idle_timeout_s = 300;
    o->header_timeout_ms = WC_HTTP_HEADER_TIMEOUT_MS;
    o->wait_ms = 3000;
    o->max_requests_inflight = WC_HTTP_MAX_REQUESTS_INFLIGHT;
    o->max_header_bytes = WC_HTTP_MAX_HEADER_BYTES;
    o->max_query_params = WC_HTTP_MAX_QUERY_PARAMS;
    o->max_uri_bytes = WC_HTTP_MAX_URI_BYTES;
    o->max_page_size = WC_HTTP_MAX_PAGE_SIZE;
    o->max_timeout_s = WC_HTTP_MAX_TIMEOUT_SECONDS;
}

int64_t wc_http_now(const wc_http *h)
{
    return h->o.now_ms ? h->o.now_ms(h->o.clock_arg) : wc_mono_ms();
}

/* ---------------------------------------------------------------------------------------
 * Get
 * ------------------------------------------------------------------------------------- */

static void body_release(void *body)
{
    free(body);
}

static enum MHD_Result not_found(wc_http *h, struct MHD_Connection *conn, const wc_http_route *rt)
{
    wc_http_error e;
    char q[WC_HTTP_QUOTE_MAX];
    const char *name = rt->name ? rt->name : "";
    wc_http_fail(&e, WC_ENOENT, 404, "NotFound", "%s \"%s\" not found",
                 rt->res ? rt->res->plural : "key", wc_http_quote(name, strlen(name), q));
    return wc_http_respond_status(h, conn, &e);
}

static enum MHD_Result serve_get(wc_http *h, struct MHD_Connection *conn, wc_http_req *r)
{
    wc_kv *kv = NULL;
    int rc = wc_cacher_get(h->o.cacher, r->route.key, r->route.key_len, &kv, NULL);
    if (rc == WC_ENOENT)
        return not_found(h, conn, &r->route);
    if (rc != 0)
        return wc_http_respond_err(h, conn, rc, 0, false);
    size_t len;
    bool object = r->route.family == WC_FAMILY_KEYS || wc_kv_is_object(kv);
    char *body = object ? wc_kv_encode_new(kv, r->route.family, &len) : NULL;
    wc_kv_unref(kv);
    if (!object) /* not a JSON object: not served on the Kubernetes routes */
        return not_found(h, conn, &r->route);
    if (!body)
        return MHD_NO;
    if (r->table.printer) {
        size_t tl = 0;
        char *t = wc_http_table_get(&r->table, body, len, &tl);
        free(body);
        return wc_http_respond_take(h, conn, 200, WC_HTTP_TABLE_CTYPE, t, tl);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, body, body_release, body);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    return wc_http_respond(h, conn, 200, resp, "application/json");
}

/* ---------------------------------------------------------------------------------------
 * List: streamed piece by piece, each object encoded as its turn comes
 * ------------------------------------------------------------------------------------- */

typedef struct list_body {
    wc_list l;
    wc_family family;
    char *head;
    size_t head_len;
    size_t piece; /* 0 head; 2j+1 the separator before item j; 2j+2 item j; 2n+1 the tail */
    size_t off;   /* bytes of the current piece already sent */
    char *item;   /* the encoding of item item_j (item_len bytes, room for item_cap) */
    size_t item_j, item_len, item_cap;
} list_body;

static const char LIST_TAIL[] = "]}";

static bool list_piece(list_body *b, const char **p, size_t *len)
{
    size_t k = b->piece, n = b->l.n;
    if (k == 0) {
        *p = b->head;
        *len = b->head_len;
    } else if (k <= 2 * n) {
        size_t j = (k - 1) / 2;
        if (k % 2) {
            *p = ",";
            *len = j ? 1 : 0;
        } else {
            if (b->item_j != j || !b->item) {
                const wc_kv *kv = b->l.items[j];
                size_t need = wc_kv_encode(kv, b->family, NULL);
                if (need > b->item_cap) {
                    char *m = realloc(b->item, need);
                    if (!m)
                        return false;
                    b->item = m;
                    b->item_cap = need;
                }
                b->item_len = wc_kv_encode(kv, b->family, b->item);
                b->item_j = j;
            }
            *p = b->item;
            *len = b->item_len;
        }
    } else if (k == 2 * n + 1) {
        *p = LIST_TAIL;
        *len = sizeof(LIST_TAIL) - 1;
    } else {
        return false;
    }
    return true;
}

static ssize_t list_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    list_body *b = cls;
    size_t out = 0;
    const char *p;
    size_t len;
    (void)pos;
    while (out < max && list_piece(b, &p, &len)) {
        size_t n = len - b->off;
        if (n > max - out)
            n = max - out;
        memcpy(buf + out, p + b->off, n);
        out += n;
        b->off += n;
        if (b->off == len) {
            b->piece++;
            b->off = 0;
        }
    }
    return out ? (ssize_t)out : MHD_CONTENT_READER_END_OF_STREAM;
}

static void list_free(void *cls)
{
    list_body *b = cls;
    wc_list_release(&b->l);
    free(b->head);
    free(b->item);
    free(b);
}

static enum MHD_Result serve_list(wc_http *h, struct MHD_Connection *conn, wc_http_req *r)
{
    const wc_http_route *rt = &r->route;
    const wc_http_query *q = &r->query;
    wc_filter f = {.family = rt->family,
                   .key = rt->key,
                   .key_len = rt->key_len,
                   .prefix = true,
                   .labels = q->labels,
                   .fields = q->fields};
    int64_t at = 0;
    char *start = NULL;
    size_t start_len = 0;
    if (q->has_continue) {
        at = q->cont_rv;
        start_len = rt->key_len + q->cont_key_len;
        start = malloc(start_len + 1);
        if (!start)
            return MHD_NO;
        memcpy(start, rt->key, rt->key_len);
        memcpy(start + rt->key_len, q->cont_key, q->cont_key_len);
        start[start_len] = '\0';
    } else if (q->match == WC_HTTP_MATCH_EXACT) {
        at = q->rv;
    }
    list_body *b = calloc(1, sizeof(*b));
    if (!b) {
        free(start);
        return MHD_NO;
    }
    b->family = rt->family;
    int rc = wc_cacher_list(h->o.cacher, &f, at, start, start_len, (size_t)q->limit, &b->l);
    free(start);
    if (rc != 0) {
        free(b);
        return wc_http_respond_err(h, conn, rc, at, q->has_continue);
    }

    /* Drop what the family cannot serve, so the sizes below are exact. */
    size_t kept = 0, total = 0;
    for (size_t i = 0; i < b->l.n; i++) {
        size_t len = wc_kv_encode(b->l.items[i], b->family, NULL);
        if (!len) {
            wc_kv_unref(b->l.items[i]);
            continue;
        }
        b->l.items[kept++] = b->l.items[i];
        total += len;
    }
    b->l.n = kept;
    total += kept ? kept - 1 : 0;

    char *tok = NULL;
    if (b->l.more && b->l.next_key_len >= rt->key_len) {
        tok = wc_http_continue_encode(b->l.rev, b->l.next_key + rt->key_len,
                                      b->l.next_key_len - rt->key_len);
        if (!tok) {
            list_free(b);
            return MHD_NO;
        }
    }
    if (r->table.printer) {
        size_t tl = 0;
        char *t = wc_http_table_list(&r->table, b->l.items, b->l.n, b->family, b->l.rev, tok, &tl);
        free(tok);
        list_free(b);
        return wc_http_respond_take(h, conn, 200, WC_HTTP_TABLE_CTYPE, t, tl);
    }
    wc_buf head = {0};
    wc_buf_printf(&head,
                  "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{"
                  "\"resourceVersion\":\"%" PRId64 "\"",
                  rt->kind_name, rt->api_version, b->l.rev);
    if (tok)
        wc_buf_printf(&head, ",\"continue\":\"%s\"", tok);
    free(tok);
    wc_buf_puts(&head, "},\"items\":[");
    if (head.oom) {
        wc_buf_free(&head);
        list_free(b);
        return MHD_NO;
    }
    b->head = head.p;
    b->head_len = head.len;
    total += head.len + sizeof(LIST_TAIL) - 1;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(total, LIST_BLOCK, list_read, b, list_free);
    if (!resp) {
        list_free(b);
        return MHD_NO;
    }
    return wc_http_respond(h, conn, 200, resp, "application/json");
}

/* ---------------------------------------------------------------------------------------
 * Watch
 * ------------------------------------------------------------------------------------- */

static void req_free(wc_http_req *r)
{
    wc_buf_free(&r->body);
    wc_http_route_free(&r->route);
    wc_http_query_free(&r->query);
    free(r);
}

/* The one ERROR event of a watch from an expired resourceVersion. */
static char *expired_event(int64_t rv, int64_t floor, size_t *len)
{
    wc_http_error e;
    wc_http_fail(&e, WC_EEXPIRED, 410, "Expired",
                 "too old resource version: %" PRId64 " (%" PRId64 ")", rv, floor);
    size_t slen;
    char *status = wc_http_status_json(&e, &slen);
    if (!status)
        return NULL;
    wc_buf b = {0};
    wc_buf_puts(&b, "{\"type\":\"ERROR\",\"object\":");
    wc_buf_put(&b, status, slen);
    wc_buf_puts(&b, "}\n");
    free(status);
    if (b.oom) {
        wc_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static enum MHD_Result serve_watch(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                   void **con_cls)
{
    const wc_http_route *rt = &r->route;
    wc_http_query *q = &r->query;
    wc_http_stream *s = wc_http_stream_new(h);
    if (!s)
        return MHD_NO;
    int admitted = wc_http_stream_admit(h, s, r->user);
    if (admitted != 0) {
        wc_http_stream_free(s);
        if (admitted == WC_ENOMEM)
            return MHD_NO;
        wc_http_error e;
        wc_http_fail(&e, WC_ETOOBIG, 429, "TooManyRequests",
                     "too many watches at once%s%s%s: try again later",
                     h->o.max_watches_per_user ? " for user \"" : "",
                     h->o.max_watches_per_user ? r->user : "",
                     h->o.max_watches_per_user ? "\"" : "");
        e.retry_after = 1;
        char quoted[WC_HTTP_QUOTE_MAX];
        wc_log(WC_LOG_INFO, "http: 429 %s: watch of %s by \"%s\"", e.reason,
               wc_http_quote(rt->key, rt->key_len, quoted), r->user);
        return wc_http_respond_status(h, conn, &e);
    }
    wc_watch_opts wo = {
        .filter = {.family = rt->family,
                   .key = rt->key,
                   .key_len = rt->key_len,
                   .prefix = rt->prefix,
                   .labels = q->labels,
                   .fields = q->fields},
        .labels_owned = q->labels,
        .fields_owned = q->fields,
        .rv = q->rv,
        .allow_bookmarks = q->allow_bookmarks,
        .kind = rt->kind_name,
        .api_version = rt->api_version,
        .wake = wc_http_stream_wake,
        .wake_arg = s,
    };
    if (q->send_initial == 1) {
        /* The state at least as new as RV (the wait saw to that), then the end bookmark. */
        wo.rv = 0;
        wo.send_initial = true;
        wo.initial_end_bookmark = true;
    } else if (q->rv == WC_RV_UNSET || q->rv == 0) {
        wo.send_initial = q->send_initial != 0;
    }
    if (q->timeout_s)
        wo.deadline_ms = wc_http_now(h) + q->timeout_s * 1000;
    int64_t floor = 0;
    int rc = wc_cacher_watch(h->o.cacher, &wo, &s->w, &floor);
    if (rc == 0) {
        q->labels = q->fields = NULL; /* moved into the watcher */
    } else if (rc == WC_EEXPIRED) {
        s->pre = expired_event(q->rv, floor, &s->pre_len);
        if (!s->pre) {
            wc_http_stream_free(s);
            return MHD_NO;
        }
    } else {
        wc_http_stream_free(s);
        return wc_http_respond_err(h, conn, rc, q->rv, false);
    }
    if (r->table.printer && !(s->table = wc_http_table_watch_new(&r->table))) {
        wc_http_stream_free(s);
        return MHD_NO;
    }
    /* MHD only sends the headers: its first call of the reader hands the socket to a pump
     * (stream.c), so the block size does not matter. The connection is not reused after a
     * watch, and the headers say so. */
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
    /* From here MHD's per-request pointer is the stream; the request is done with. Its
     * latency is counted now, at its headers: on_completed comes only when the stream ends. */
    observe(h, conn, r);
    wc_http_stream_opened(s, conn, !r->http10);
    *con_cls = s;
    req_free(r);
    return MHD_YES;
}

/* ---------------------------------------------------------------------------------------
 * Data routes
 * ------------------------------------------------------------------------------------- */

static enum MHD_Result serve(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                             void **con_cls)
{
    if (r->watch)
        return serve_watch(h, conn, r, con_cls);
    if (!r->route.prefix)
        return serve_get(h, conn, r);
    return serve_list(h, conn, r);
}

/* The parameters of a request: room for the usual few on the stack, more from the heap. */
#define PARAMS_ON_STACK 64
typedef struct params {
    wc_http_param *p;
    size_t n, cap;
} params;

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    params *ps = cls;
    (void)kind;
    if (ps->n == ps->cap)
        return MHD_NO;
    ps->p[ps->n].key = key;
    ps->p[ps->n].value = value;
    ps->n++;
    return MHD_YES;
}

/*
 * Decides whether r must wait for the cache before it is served: a consistent read (RV unset)
 * waits for etcd's current revision, a read at RV=N (NotOlderThan, Exact, or a continue
 * token's revision) for N. Returns true with r->need_current / r->target set.
 */
static bool needs_wait(wc_http *h, wc_http_req *r)
{
    const wc_http_query *q = &r->query;
    r->need_current = false;
    r->target = 0;
    if (!r->watch && r->route.prefix && q->has_continue)
        r->target = q->cont_rv;
    else if (q->rv == WC_RV_UNSET)
        r->need_current = h->o.current_rev != NULL;
    else
        r->target = q->rv;
    return r->need_current || r->target > wc_cacher_rev(h->o.cacher);
}

static enum MHD_Result serve_data(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                  void **con_cls)
{
    wc_http_error e;
    /* on_uri refused a request with more than the bound: this is only a backstop */
    int count = MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL);
    if (count < 0 || (unsigned)count > h->o.max_query_params) {
        wc_http_fail(&e, WC_EINVAL, 400, "BadRequest", "more than %u query parameters",
                     h->o.max_query_params);
        return wc_http_respond_status(h, conn, &e);
    }
    wc_http_param on_stack[PARAMS_ON_STACK];
    params ps = {.p = on_stack, .cap = (size_t)count};
    if (ps.cap > PARAMS_ON_STACK) {
        ps.p = malloc(ps.cap * sizeof(*ps.p));
        if (!ps.p)
            return MHD_NO;
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_param, &ps);
    wc_http_query_bounds qb = {.max_limit = h->o.max_page_size,
                               .max_timeout_s = h->o.max_timeout_s};
    int rc = wc_http_query_parse(ps.p, ps.n, h->index_field, wc_http_resource_fields(r->route.res),
                                 r->route.watch_path, &qb, &r->query, &e);
    if (ps.p != on_stack)
        free(ps.p);
    if (rc == WC_ENOMEM)
        return MHD_NO;
    if (rc != 0)
        return wc_http_respond_status(h, conn, &e);
    r->watch = r->query.watch;
    if (wc_http_table_negotiate(conn, &r->route, &r->table, &e) != 0)
        return wc_http_respond_status(h, conn, &e);
    if (!wc_cacher_ready(h->o.cacher))
        return wc_http_respond_err(h, conn, WC_ENOTREADY, 0, false);
    if (needs_wait(h, r)) {
        r->deadline = wc_mono_ms() + h->o.wait_ms;
        if (wc_http_waiter_submit(h, r)) {
            MHD_suspend_connection(conn);
            return MHD_YES;
        }
        return wc_http_respond_err(h, conn, r->wait_rc, r->target, false);
    }
    return serve(h, conn, r, con_cls);
}

/* After the waiter resumed r. */
static enum MHD_Result after_wait(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                  void **con_cls)
{
    int rc;
    if (!wc_http_waiter_done(h, r, &rc))
        rc = WC_EINVAL; /* resumed by someone else: not expected */
    if (r->route.kind == WC_HTTP_R_ETCD)
        return wc_http_etcd_after_wait(h, conn, r, rc);
    if (rc != 0)
        return wc_http_respond_err(h, conn, rc, r->target, false);
    return serve(h, conn, r, con_cls);
}

/* ---------------------------------------------------------------------------------------
 * Connections (conn.c keeps their state)
 * ------------------------------------------------------------------------------------- */

static wc_http_verb verb_of(const wc_http_req *r)
{
    if (!r->routed)
        return WC_HTTP_VERB_OTHER;
    switch (r->route.kind) {
    case WC_HTTP_R_HEALTHZ:
    case WC_HTTP_R_READYZ:
        return WC_HTTP_VERB_HEALTH;
    case WC_HTTP_R_METRICS:
        return WC_HTTP_VERB_METRICS;
    case WC_HTTP_R_ETCD: /* a range reads like a list */
        return r->watch ? WC_HTTP_VERB_WATCH : WC_HTTP_VERB_LIST;
    case WC_HTTP_R_DATA:
        return r->watch          ? WC_HTTP_VERB_WATCH
               : r->route.prefix ? WC_HTTP_VERB_LIST
                                 : WC_HTTP_VERB_GET;
    default:
        return WC_HTTP_VERB_DISCOVERY;
    }
}

/* Counts r's latency once it was answered (a request whose reader left first is not). */
static void observe(wc_http *h, struct MHD_Connection *conn, const wc_http_req *r)
{
    unsigned code = wc_http_conn_take_code(conn);
    if (code)
        wc_http_lat_observe(h, verb_of(r), code, wc_http_lat_now_us() - r->t0_us);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    wc_http *h = cls;
    wc_http_conn_notify(h, conn, socket_context, toe);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED && atomic_load(&h->tls_set))
        wc_http_tls_ask_client_cert(h, conn);
}

/* ---------------------------------------------------------------------------------------
 * The gate and the dispatcher
 * ------------------------------------------------------------------------------------- */

/* A probe: /healthz and /readyz, open to all and never turned away by a bound. */
static bool probe_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
}

/* Whether a request asks a watch: a /watch/ path, or watch=true|1 (a bad value is no watch
 * here; the query's own check answers it 400). */
static bool asks_watch(struct MHD_Connection *conn, const wc_http_route *rt)
{
    if (rt->kind != WC_HTTP_R_DATA)
        return false;
    const char *w = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "watch");
    bool watch = rt->watch_path;
    if (w && wc_http_parse_bool(w, &watch) != 0)
        watch = false;
    return watch;
}

/*
 * Who the reader is. No authentication configured (no token file, no client CA): everyone is
 * anonymous. Else, as the apiserver tries its authenticators: a client certificate first (one
 * that is not valid gets 401, whatever else the request carries), then a bearer token; a request
 * with neither, or with a token that is not valid, gets 401. /healthz and /readyz stay open to
 * all. Returns 0, or WC_EINVAL with the 401 Status in *e.
 */
static int authenticate(wc_http *h, struct MHD_Connection *conn, const char *url, wc_http_user *u,
                        wc_http_error *e)
{
    wc_http_auth_anonymous(u);
    const wc_http_auth_tokens *t = atomic_load(&h->tokens);
    if ((!t && !h->client_ca_file) || probe_path(url))
        return 0;
    int cert = h->client_ca_file ? wc_http_tls_peer_user(h, conn, u) : WC_ENOENT;
    if (cert == 0)
        return 0;
    const char *hdr = t && cert == WC_ENOENT
                          ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization")
                          : NULL;
    const char *token;
    size_t len;
    if (hdr && wc_http_auth_bearer(hdr, &token, &len) == 0 &&
        wc_http_auth_token_lookup(t, token, len, u) == 0)
        return 0;
    wc_http_auth_anonymous(u);
    wc_http_auth_unauthorized(e);
    return WC_EINVAL;
}

/*
 * What the reader may read, when a policy is in force: a Kubernetes route is a resource request
 * (get, list or watch of a group's resource in a namespace, "" across all or at the cluster
 * scope); everything else but /healthz and /readyz is a non-resource path, read with "get".
 */
static int authorize(wc_http *h, struct MHD_Connection *conn, const wc_http_route *rt,
                     const char *url, const wc_http_user *u, wc_http_error *e)
{
    const wc_http_auth_policy *p = atomic_load(&h->policy);
    if (!p || rt->kind == WC_HTTP_R_HEALTHZ || rt->kind == WC_HTTP_R_READYZ)
        return 0;
    wc_http_auth_attrs a = {.verb = "get", .path = url};
    if (rt->kind == WC_HTTP_R_DATA && rt->family == WC_FAMILY_K8S) {
        bool watch = asks_watch(conn, rt);
        a = (wc_http_auth_attrs){.verb = watch ? "watch" : (rt->name ? "get" : "list"),
                                 .resource = true,
                                 .group = rt->res->group,
                                 .plural = rt->res->plural,
                                 .ns = rt->ns ? rt->ns : "",
                                 .name = rt->name ? rt->name : ""};
    }
    if (wc_http_auth_policy_allows(p, u, &a))
        return 0;
    wc_http_auth_forbidden(e, u, &a, WC_HTTP_AUTH_NO_POLICY);
    return WC_EINVAL;
}

/* A refused request, for the operator: who, what and why, never the credential. */
static void log_refused(const wc_http_user *u, const char *method, const char *url,
                        const wc_http_error *e)
{
    char q[WC_HTTP_QUOTE_MAX];
    wc_log(WC_LOG_INFO, "http: %d %s: %s %s by \"%s\"", e->code, e->reason, method,
           wc_http_quote(url, strlen(url), q), u->name);
}

static bool ready(wc_http *h, char *reason, size_t reason_len)
{
    if (h->o.ready)
        return h->o.ready(h->o.cb_arg, reason, reason_len);
    if (wc_cacher_ready(h->o.cacher))
        return true;
    snprintf(reason, reason_len, "the cache has not loaded its first list");
    return false;
}

static bool read_method(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* A body small enough to read and drop before answering, so the connection stays usable. */
static bool small_body(struct MHD_Connection *conn)
{
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te)
        return false;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    int64_t n = 0;
    return !cl || wc_parse_i64(cl, strlen(cl), 0, MAX_DROPPED_BODY, &n) == 0;
}

/* Counts r in flight unless it is a probe or a watch (watches have bounds of their own).
 * Returns false, with a 429 Status in *e, when --max-requests-inflight are already. */
static bool inflight_admit(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                           wc_http_error *e)
{
    const wc_http_route *rt = &r->route;
    if (rt->kind == WC_HTTP_R_HEALTHZ || rt->kind == WC_HTTP_R_READYZ || asks_watch(conn, rt))
        return true;
    size_t before = atomic_fetch_add(&h->inflight, 1);
    r->inflight = true;
    if (!h->o.max_requests_inflight || before < h->o.max_requests_inflight)
        return true;
    atomic_fetch_sub(&h->inflight, 1);
    r->inflight = false;
    atomic_fetch_add_explicit(&h->inflight_dropped, 1, memory_order_relaxed);
    wc_http_fail(e, WC_ETOOBIG, 429, "TooManyRequests",
                 "Too many requests, please try again later.");
    e->retry_after = 1;
    return false;
}

static enum MHD_Result first_call(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                  const char *url, const char *method, void **con_cls)
{
    wc_http_error e;
    if (wc_http_conn_probe_only(conn) && !probe_path(url)) {
        /* The connection is in the room kept for probes: the budget is spent. */
        atomic_fetch_add_explicit(&h->refused, 1, memory_order_relaxed);
        wc_http_fail(&e, WC_ETOOBIG, 503, "ServiceUnavailable",
                     "too many open connections (--max-connections %zu): try again later",
                     h->max_conns);
        e.retry_after = 1;
        return wc_http_respond_status(h, conn, &e);
    }
    if (!read_method(method) && !r->etcd) {
        wc_http_fail(&e, WC_EINVAL, 405, "MethodNotAllowed",
                     "the server does not allow this method on the requested resource");
        return wc_http_respond_status(h, conn, &e);
    }
    wc_http_user user;
    int authn = authenticate(h, conn, url, &user, &e);
    snprintf(r->user, sizeof(r->user), "%s", user.name);
    if (authn != 0) {
        log_refused(&user, method, url, &e);
        return wc_http_respond_status(h, conn, &e);
    }
    int rc = wc_http_route_parse(h->res, h->k8s_prefix, url, &r->route, &e);
    if (rc == WC_ENOMEM)
        return MHD_NO;
    if (rc != 0)
        return wc_http_respond_status(h, conn, &e);
    r->routed = true;
    if (authorize(h, conn, &r->route, url, &user, &e) != 0 || !inflight_admit(h, conn, r, &e)) {
        log_refused(&user, method, url, &e);
        return wc_http_respond_status(h, conn, &e);
    }
    switch (r->route.kind) {
    case WC_HTTP_R_HEALTHZ:
        return wc_http_respond_copy(h, conn, 200, "text/plain; charset=utf-8", "ok", 2);
    case WC_HTTP_R_READYZ: {
        char reason[256] = "";
        char body[300];
        if (ready(h, reason, sizeof(reason))) {
            /* Ready may come with a note (how far back watches can resume): a line after "ok". */
            int n = snprintf(body, sizeof(body), reason[0] ? "ok\n%s\n" : "ok", reason);
            return wc_http_respond_copy(h, conn, 200, "text/plain; charset=utf-8", body,
                                        n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1);
        }
        if (!reason[0])
            snprintf(reason, sizeof(reason), "not ready");
        int n = snprintf(body, sizeof(body), "not ready: %s\n", reason);
        return wc_http_respond_copy(h, conn, 503, "text/plain; charset=utf-8", body,
                                    n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1);
    }
    case WC_HTTP_R_METRICS: {
        size_t len = 0;
        char *body = wc_http_metrics(h, &len);
        return wc_http_respond_take(h, conn, 200, "text/plain; version=0.0.4; charset=utf-8", body,
                                    len);
    }
    case WC_HTTP_R_API_VERSIONS:
    case WC_HTTP_R_API_GROUPS:
    case WC_HTTP_R_API_GROUP:
    case WC_HTTP_R_API_RESOURCES: {
        size_t len = 0;
        char *body = wc_http_discovery(h->res, &r->route, h->addr, &len);
        return wc_http_respond_take(h, conn, 200, "application/json", body, len);
    }
    case WC_HTTP_R_DATA:
        return serve_data(h, conn, r, con_cls);
    case WC_HTTP_R_ETCD: {
        enum MHD_Result ret =
            wc_http_etcd_serve(h, conn, r, url, method, small_body(conn), con_cls);
        if (*con_cls != r) { /* a watch: its stream took the request's place */
            if (r->inflight)
                atomic_fetch_sub(&h->inflight, 1);
            observe(h, conn, r);
            req_free(r);
        }
        return ret;
    }
    case WC_HTTP_R_VERSION: {
        /* The Kubernetes API whose read side wcached serves, and wcached's own version. */
        static const char body[] =
            "{\"major\":\"1\",\"minor\":\"" WC_HTTP_K8S_MINOR
            "\",\"gitVersion\":\"v1." WC_HTTP_K8S_MINOR ".0+wcached-" WCACHED_VERSION
            "\",\"gitCommit\":\"\","
            "\"gitTreeState\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"compiler\":\"\","
            "\"platform\":\"linux\"}";
        return wc_http_respond_copy(h, conn, 200, "application/json", body, sizeof(body) - 1);
    }
    }
    return MHD_NO;
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0);
    return MHD_YES;
}

/* The bytes of a request's header fields, names and values. */
static size_t header_bytes(struct MHD_Connection *conn)
{
    size_t n = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_bytes, &n);
    return n;
}

/*
 * MHD calls this once with the headers, then with each piece of a body, then once more when
 * the request is in whole. Answering only then keeps the connection open for the next
 * request: libmicrohttpd 0.9.75 closes every connection whose answer was queued on the first
 * call. A body is read and dropped; a request with a large or unknown body is answered at
 * once instead (a write gets its 405, a read its answer), and its connection then closes.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    wc_http *h = cls;
    (void)upload_data;
    wc_http_req *r = *con_cls;
    if (!r) { /* on_uri could not allocate it */
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->tag = WC_HTTP_TAG_REQ;
        r->t0_us = wc_http_lat_now_us();
        *con_cls = r;
    }
    if (r->tag == WC_HTTP_TAG_STREAM && ((wc_http_stream *)r)->mhd_reads)
        return wc_http_etcd_upload(h, conn, (wc_http_stream *)r, upload_data, upload_data_size);
    if (r->tag == WC_HTTP_TAG_REQ && !r->seen) {
        r->seen = true;
        r->etcd = strncmp(url, "/v3/", 4) == 0;
        r->conn = conn;
        r->http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;
        if (r->refuse) {
            wc_http_error e;
            wc_http_conn_request_in(h, r);
            wc_http_fail(&e, WC_EINVAL, 414, "BadRequest",
                         "the request URI is too long: more than %u query parameters or %zu "
                         "bytes",
                         h->o.max_query_params, h->o.max_uri_bytes);
            return wc_http_respond_status(h, conn, &e);
        }
        if (h->o.max_header_bytes && header_bytes(conn) > h->o.max_header_bytes) {
            wc_http_error e;
            wc_http_conn_request_in(h, r);
            wc_http_fail(&e, WC_EINVAL, 431, "BadRequest",
                         "the request's header fields are too large: more than %zu bytes",
                         h->o.max_header_bytes);
            return wc_http_respond_status(h, conn, &e);
        }
        if (!small_body(conn)) {
            wc_http_conn_request_in(h, r);
            return first_call(h, conn, r, url, method, con_cls);
        }
        return MHD_YES;
    }
    if (*upload_data_size) { /* a body nobody asked for: ignored */
        if (r->tag == WC_HTTP_TAG_REQ && r->etcd && r->body.len < MAX_DROPPED_BODY)
            wc_buf_put(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->tag != WC_HTTP_TAG_REQ)
        return MHD_NO;
    if (!r->started) {
        wc_http_conn_request_in(h, r);
        return first_call(h, conn, r, url, method, con_cls);
    }
    return after_wait(h, conn, r, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    wc_http *h = cls;
    wc_http_tag *tag = *con_cls;
    if (!tag)
        return;
    if (*tag == WC_HTTP_TAG_STREAM) {
        wc_http_stream *s = (wc_http_stream *)tag;
        if (s->mhd_reads) { /* an etcd watch whose body MHD read: its pump may be done */
            wc_http_conn_uncount(h, conn);
            wc_http_stream_mhd_done(s);
        } else {
            if (s->fd >= 0)
                wc_http_conn_uncount(
                    h, conn); /* its socket is a stream's from now on, counted as one */
            wc_http_stream_completed(s);
        }
    } else {
        wc_http_req *r = (wc_http_req *)tag;
        if (r->inflight)
            atomic_fetch_sub(&h->inflight, 1);
        observe(h, conn, r);
        req_free(r);
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            wc_http_conn_next_request(h, conn); /* kept alive: waits for its next request */
    }
    *con_cls = NULL;
}

/*
 * Called by MHD with the request-target before it splits the query. libmicrohttpd 0.9.75
 * keeps each parameter in the connection's memory pool, and when the pool runs out it neither
 * answers nor closes (about 600 parameters in 36 KiB): so a request with more parameters than
 * any read takes, or a longer target, has its query cut off here, in MHD's own read buffer,
 * before MHD parses it, and is answered 414. What is returned becomes the request's pointer.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    wc_http *h = cls;
    (void)conn;
    wc_http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->tag = WC_HTTP_TAG_REQ;
    r->t0_us = wc_http_lat_now_us();
    char *q = strchr(uri, '?');
    size_t n_params = 0;
    for (const char *p = q; p && *p; p++)
        n_params += *p == '&' || *p == '?';
    if (n_params > h->o.max_query_params || strlen(uri) > h->o.max_uri_bytes) {
        r->refuse = 414;
        if (q)
            q[1] = '\0';
    }
    return r;
}

/* The path reaches the router still percent-encoded (route.c decodes each segment), and so do
 * query values (query.c); MHD has already turned '+' into ' ' in the query. */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------- */

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force. */
static rlim_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* Resolves the listen address (numeric port) into a new addrinfo list; 0 or WC_EINVAL. */
static int resolve(const char *listen, char *host, size_t host_len, struct addrinfo **ai)
{
    uint16_t portnum;
    if (wc_parse_listen(listen, host, host_len, &portnum) != 0)
        return WC_EINVAL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)portnum);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    *ai = NULL;
    if (getaddrinfo(host, port, &hints, ai) != 0 || !*ai)
        return WC_EINVAL;
    return 0;
}

/*
 * The connection buffer a request within the bounds needs. libmicrohttpd keeps a request's
 * line and header block in the connection's buffer, and a record of each header field and each
 * query parameter beside them; when the buffer runs out while it splits the query it neither
 * answers nor closes. So: room for the longest target and header block, a record per parameter,
 * and a little for its own records of the header fields.
 */
static size_t conn_memory_for(const wc_http_opts *o)
{
    return o->max_header_bytes + o->max_uri_bytes + (size_t)o->max_query_params * MHD_PARAM_BYTES +
           4096;
}

int wc_http_new(const wc_http_opts *o, wc_http **out)
{
    if (!o->cacher || !o->hook || !o->listen)
        return WC_EINVAL;
    char host[256];
    struct addrinfo *ai = NULL;
    if (resolve(o->listen, host, sizeof(host), &ai) != 0)
        return WC_EINVAL;
    freeaddrinfo(ai);
    wc_http *h = calloc(1, sizeof(*h));
    if (!h)
        return WC_ENOMEM;
    h->o = *o;
    h->o.resources = NULL;
    h->hook = o->hook;
    h->listen_fd = MHD_INVALID_SOCKET;
    pthread_mutex_init(&h->wait_mu, NULL);
    pthread_mutex_init(&h->hdr_mu, NULL);
    pthread_condattr_t ca; /* the deadlines are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->hdr_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&h->wait_cond, NULL);
    if (h->o.wait_ms <= 0)
        h->o.wait_ms = 3000;
    if (h->o.threads == 0) {
        unsigned cores = wc_cpu_count(NULL);
        h->o.threads = cores > WC_HTTP_THREADS_MAX ? WC_HTTP_THREADS_MAX : cores;
    }
    if (h->o.max_query_params == 0)
        h->o.max_query_params = WC_HTTP_MAX_QUERY_PARAMS;
    if (h->o.max_uri_bytes == 0)
        h->o.max_uri_bytes = WC_HTTP_MAX_URI_BYTES;
    if (h->o.max_page_size <= 0)
        h->o.max_page_size = WC_HTTP_MAX_PAGE_SIZE;
    if (h->o.max_timeout_s <= 0)
        h->o.max_timeout_s = WC_HTTP_MAX_TIMEOUT_SECONDS;
    size_t need = conn_memory_for(&h->o);
    if (h->o.conn_memory < need)
        h->o.conn_memory = need;
    if (h->o.conn_memory < 2048)
        h->o.conn_memory = 2048;
    const char *pfx = o->k8s_prefix ? o->k8s_prefix : WC_HTTP_K8S_PREFIX;
    size_t pl = strlen(pfx);
    while (pl > 0 && pfx[pl - 1] == '/')
        pl--; /* keys are <prefix>/<path>/...: one slash */
    h->k8s_prefix = strndup(pfx, pl);
    h->listen = strdup(o->listen);
    h->o.listen = h->listen;
    h->index_field = o->index_field ? strdup(o->index_field) : NULL;
    h->token_file = o->token_auth_file ? strdup(o->token_auth_file) : NULL;
    h->policy_file = o->authorization_policy_file ? strdup(o->authorization_policy_file) : NULL;
    int rc = 0;
    if (o->tls_cert_file && o->tls_key_file) {
        h->tls_cert_file = strdup(o->tls_cert_file);
        h->tls_key_file = strdup(o->tls_key_file);
        h->client_ca_file = o->client_ca_file ? strdup(o->client_ca_file) : NULL;
        if (!h->tls_cert_file || !h->tls_key_file || (o->client_ca_file && !h->client_ca_file))
            rc = WC_ENOMEM;
    } else if (o->tls_cert_file || o->tls_key_file || o->client_ca_file) {
        rc = WC_EINVAL; /* a key without its certificate, or a client CA without HTTPS */
    }
    pthread_mutex_init(&h->auth_mu, NULL);
    h->res = wc_http_resources_new();
    if (!h->k8s_prefix || !h->listen || (o->index_field && !h->index_field) || !h->res ||
        (o->token_auth_file && !h->token_file) || (o->authorization_policy_file && !h->policy_file))
        rc = rc ? rc : WC_ENOMEM;
    for (const char *const *spec = o->resources; rc == 0 && spec && *spec; spec++)
        rc = wc_http_resources_add(h->res, *spec);
    if (rc != 0) {
        wc_http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int wc_http_start(wc_http *h)
{
    if (h->d || h->n_pumps)
        return WC_EINVAL;
    char host[256];
    struct addrinfo *ai = NULL;
    int rc = resolve(h->o.listen, host, sizeof(host), &ai);
    if (rc == 0)
        rc = wc_http_pumps_start(h);
    if (rc == 0)
        rc = wc_http_waiter_start(h);
    if (rc == 0 && h->o.header_timeout_ms > 0) {
        h->hdr_stop = false;
        if (pthread_create(&h->hdr_thread, NULL, wc_http_conn_deadline_main, h) != 0)
            rc = WC_ENOMEM;
        h->hdr_started = rc == 0;
    }
    if (rc != 0) {
        if (ai)
            freeaddrinfo(ai);
        wc_http_stop(h);
        return rc;
    }

    rlim_t nofile = raise_nofile();
    unsigned limit = h->o.max_connections;
    if (limit == 0) /* leave a few descriptors for the process's other files */
        limit = nofile > 1000064 ? 1000000u
                                 : (nofile > 128 ? (unsigned)(nofile - 64) : (unsigned)nofile / 2);
    /* MHD_USE_TURBO: among other things MHD then closes a connection without shutdown(),
     * which would also end the half a watch stream's pump now holds. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->max_conns = limit;
    /* The budget is wc_http_conn_accept's: MHD's own limit, reached first, would stop accepting and
     * leave new connections in the listen backlog, neither closed nor counted. It is kept a little
     * above the budget (MHD splits it among its threads) only as a backstop. */
    unsigned mhd_limit = limit + CONN_LIMIT_MARGIN * (h->o.threads > 1 ? h->o.threads : 1u);
    /* HTTPS: each handshake takes the certificate in force from the retrieve callback, so a
     * reload needs no new daemon. */
    struct MHD_OptionItem tls_opts[3];
    wc_http_tls_mhd_options(tls_opts);
    bool tls = atomic_load(&h->tls_set) != NULL;
    if (h->tls_cert_file && !tls) {
        freeaddrinfo(ai);
        wc_http_stop(h); /* wc_http_load_auth was not called */
        return WC_EINVAL;
    }
    if (tls)
        flags |= MHD_USE_TLS;
    h->d = MHD_start_daemon(
        flags, 0, wc_http_conn_accept, h, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->o.conn_memory, MHD_OPTION_CONNECTION_TIMEOUT,
        h->o.idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 16384u, MHD_OPTION_THREAD_POOL_SIZE,
        h->o.threads > 1 ? h->o.threads : 0u, MHD_OPTION_ARRAY, tls ? tls_opts : tls_opts + 2,
        MHD_OPTION_END);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (!h->d) {
        wc_http_stop(h);
        return WC_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    if (family == AF_INET6)
        snprintf(h->addr, sizeof(h->addr), "[%s]:%u", host, (unsigned)h->port);
    else
        snprintf(h->addr, sizeof(h->addr), "%s:%u", host, (unsigned)h->port);
    return 0;
}

/* etcd API progress threads use the cacher and the callbacks: the server ends after them (each
 * within the current-revision timeout and wait_ms). */
static void etcd_threads_wait(wc_http *h)
{
    while (atomic_load(&h->etcd_threads) > 0)
        usleep(5000);
}

void wc_http_stop(wc_http *h)
{
    if (!h)
        return;
    if (h->d)
        h->listen_fd = MHD_quiesce_daemon(h->d);
    wc_http_waiter_stop(h);
    etcd_threads_wait(h);
    if (h->n_pumps) {
        wc_http_streams_end(h);
        int64_t until = wc_mono_ms() + DRAIN_MS;
        for (;;) {
            pthread_mutex_lock(&h->hook->mu);
            size_t n = h->n_streams;
            pthread_mutex_unlock(&h->hook->mu);
            if (n == 0 || wc_mono_ms() >= until)
                break;
            usleep(5000);
        }
    }
    /* MHD first: no handoff can reach a pump that stopped. */
    if (h->d)
        MHD_stop_daemon(h->d);
    h->d = NULL;
    etcd_threads_wait(h); /* MHD's last requests may have started one */
    if (h->listen_fd != MHD_INVALID_SOCKET)
        close(h->listen_fd);
    h->listen_fd = MHD_INVALID_SOCKET;
    if (h->hdr_started) {
        pthread_mutex_lock(&h->hdr_mu);
        h->hdr_stop = true;
        pthread_cond_signal(&h->hdr_cond);
        pthread_mutex_unlock(&h->hdr_mu);
        pthread_join(h->hdr_thread, NULL);
        h->hdr_started = false;
    }
    wc_http_pumps_stop(h);
}

uint16_t wc_http_port(const wc_http *h)
{
    return h->port;
}

const char *wc_http_address(const wc_http *h)
{
    return h->addr;
}

int wc_http_add_resource(wc_http *h, const char *spec)
{
    return wc_http_resources_add(h->res, spec);
}

int wc_http_load_auth(wc_http *h, char *why, size_t why_len)
{
    wc_http_auth_tokens *t = NULL;
    wc_http_auth_policy *p = NULL;
    wc_http_auth_diag d;
    int rc = 0;
    snprintf(why, why_len, "%s", "");
    if (h->token_file && (rc = wc_http_auth_tokens_load(h->token_file, &t, &d)) != 0) {
        snprintf(why, why_len, "token file %s: %s", h->token_file, d.message);
        return rc;
    }
    if (h->policy_file && (rc = wc_http_auth_policy_load(h->policy_file, &p, &d)) != 0) {
        snprintf(why, why_len, "policy file %s: %s", h->policy_file, d.message);
        wc_http_auth_tokens_free(t);
        return rc;
    }
    wc_http_tls_set *tls = NULL;
    if (h->tls_cert_file && (rc = wc_http_tls_load(h->tls_cert_file, h->tls_key_file,
                                                   h->client_ca_file, &tls, why, why_len)) != 0) {
        wc_http_auth_tokens_free(t);
        wc_http_auth_policy_free(p);
        return rc;
    }
    pthread_mutex_lock(&h->auth_mu);
    wc_http_auth_tokens **ot =
        realloc(h->old_tokens, (h->n_old_tokens + 1) * sizeof(*h->old_tokens));
    if (ot)
        h->old_tokens = ot;
    wc_http_auth_policy **op =
        ot ? realloc(h->old_policies, (h->n_old_policies + 1) * sizeof(*h->old_policies)) : NULL;
    if (op)
        h->old_policies = op;
    if (!ot || !op) {
        pthread_mutex_unlock(&h->auth_mu);
        wc_http_auth_tokens_free(t);
        wc_http_auth_policy_free(p);
        wc_http_tls_free_all(tls);
        snprintf(why, why_len, "%s", "out of memory");
        return WC_ENOMEM;
    }
    h->old_tokens[h->n_old_tokens++] = atomic_exchange(&h->tokens, t);
    h->old_policies[h->n_old_policies++] = atomic_exchange(&h->policy, p);
    if (tls) /* the replaced set stays, behind the new one: a handshake may still hold it */
        wc_http_tls_retire(tls, atomic_exchange(&h->tls_set, tls));
    pthread_mutex_unlock(&h->auth_mu);
    return 0;
}

void wc_http_free(wc_http *h)
{
    if (!h)
        return;
    wc_http_stop(h);
    for (size_t i = 0; i < h->n_old_tokens; i++)
        wc_http_auth_tokens_free(h->old_tokens[i]);
    for (size_t i = 0; i < h->n_old_policies; i++)
        wc_http_auth_policy_free(h->old_policies[i]);
    free(h->old_tokens);
    free(h->old_policies);
    wc_http_auth_tokens_free(atomic_load(&h->tokens));
    wc_http_auth_policy_free(atomic_load(&h->policy));
    pthread_mutex_destroy(&h->auth_mu);
    /* h->watch_users is empty: every stream was freed by the stop, each leaving the counts. */
    free(h->token_file);
    free(h->policy_file);
    wc_http_tls_free_all(atomic_load(&h->tls_set));
    free(h->tls_cert_file);
    free(h->tls_key_file);
    free(h->client_ca_file);
    wc_http_resources_free(h->res);
    free(h->k8s_prefix);
    free(h->listen);
    free(h->index_field);
    pthread_mutex_destroy(&h->wait_mu);
    pthread_mutex_destroy(&h->hdr_mu);
    pthread_cond_destroy(&h->hdr_cond);
    pthread_cond_destroy(&h->wait_cond);
    free(h);
}
