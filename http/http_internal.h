/*
 * Private layout of the http/ module, shared by its files and by tests/http/. Nothing else
 * includes this header.
 *
 * A request's way through the module:
 *   server.c  MHD hands over a connection -> authorize -> route.c (path) -> query.c (params)
 *             -> a read that must wait for the cache goes to waiter.c and comes back
 *             -> get / list (one response) or watch (stream.c)
 *   stream.c  watch streams: MHD sends the headers, then the socket moves to a pump thread
 *             that sends each woken stream's events as chunks (one poke per published
 *             change, from the cacher's after_dispatch hook), notices readers that left and
 *             ticks the cacher
 *   table.c   the Table a request asks for with its Accept header (gets, lists, watches)
 *   respond.c every answer leaves through it and is counted by code
 *   conn.c    MHD's connections: the descriptor budget, the header deadline
 *   etcd_api.c, etcd_req.c, tls.c: etcd's JSON gateway (read side; etcd_req.c decodes its
 *             requests), HTTPS for the streams.
 *   resources.c, metrics.c, util.c: the resource table and discovery, /metrics, helpers.
 */
#ifndef WC_HTTP_INTERNAL_H
#define WC_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/b64.h"
#include "wcached/buf.h"
#include "wcached/cacher.h"
#include "wcached/clock.h"
#include "wcached/http.h"
#include "wcached/parse.h"
#include "wcached/selector.h"

/* Bounds on what a request may carry. */
#define WC_HTTP_MAX_PATH 8192   /* raw path bytes */
#define WC_HTTP_MAX_NAME 253    /* a Kubernetes object name */
#define WC_HTTP_MAX_PARAM 16384 /* one raw query value */
#define WC_HTTP_MAX_TOKEN 16384 /* a continue token */

/* ---------------------------------------------------------------------------------------
 * Helpers (util.c)
 * ------------------------------------------------------------------------------------- */

/* An error for a person: the Status a request is answered with. Made at the edge only. */
typedef struct wc_http_error {
    int code;           /* HTTP status */
    const char *reason; /* Kubernetes StatusReason, e.g. "BadRequest" */
    const char *cause;  /* details.causes[0].reason, or NULL for no details */
    int retry_after;    /* seconds for Retry-After (and details), 0 for none */
    char message[512];
} wc_http_error;

/* Fills `e` (message printf-style) and returns `rc`, so parsers can `return wc_http_fail(...)`. */
int wc_http_fail(wc_http_error *e, int rc, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Quotes untrusted text for a message: at most 64 bytes, printable ASCII kept, others as \xNN.
 * Writes a NUL-terminated string into out (at least 4*64+4 bytes). */
#define WC_HTTP_QUOTE_MAX (4 * 64 + 4)
const char *wc_http_quote(const char *s, size_t n, char *out);

/* The Status object for `e`: a new NUL-terminated string (caller frees), or NULL. */
char *wc_http_status_json(const wc_http_error *e, size_t *len);

/* Strict percent-decoding: every '%' must start two hex digits and no byte may decode to NUL.
 * `out` has room for n + 1 bytes and is NUL-terminated. 0 or WC_EINVAL. */
int wc_http_unescape(const char *s, size_t n, char *out, size_t *out_len);

/* Go's strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. 0 or WC_EINVAL. */
int wc_http_parse_bool(const char *s, bool *out);

/* ---------------------------------------------------------------------------------------
 * The resource table (resources.c)
 * ------------------------------------------------------------------------------------- */

/* One Kubernetes resource; immutable once in a table. */
/* The field labels the apiserver supports for a built-in resource beyond metadata.name and
 * metadata.namespace (pods: spec.nodeName, status.phase, ...; events: involvedObject.name, ...),
 * NULL-terminated; NULL for a resource with none. */
struct wc_http_resource;
const char *const *wc_http_resource_fields(const struct wc_http_resource *r);

typedef struct wc_http_resource {
    const char *group;       /* "" for the core group */
    const char *version;     /* "v1" */
    const char *plural;      /* "deployments" */
    const char *kind;        /* "Deployment" */
    const char *path;        /* under the k8s prefix, without slashes at either end */
    const char *api_version; /* "v1" or "apps/v1" */
    bool namespaced;
} wc_http_resource;

/*
 * The table: built-in resources plus extensions. Entries are never freed before the table,
 * so a pointer from find stays valid for the table's life; `mu` (a rwlock) guards the
 * array of entries, which add may grow or change at any time.
 */
typedef struct wc_http_resources wc_http_resources;

wc_http_resources *wc_http_resources_new(void); /* with the built-ins; NULL on ENOMEM */
void wc_http_resources_free(wc_http_resources *t);

/* Parses a spec (see wc_http_add_resource) into one malloc'd block the caller frees with
 * free(). 0, WC_EINVAL, or WC_ENOMEM. */
int wc_http_resource_parse(const char *spec, wc_http_resource **out);

/* Adds or replaces an entry. 0, WC_EINVAL or WC_ENOMEM. */
int wc_http_resources_add(wc_http_resources *t, const char *spec);

/* The entry for group/version/plural, or NULL. */
const wc_http_resource *wc_http_resources_find(wc_http_resources *t, const char *group,
                                               const char *version, const char *plural);

/* True when some entry is in group (and version, when not NULL). */
bool wc_http_resources_has(wc_http_resources *t, const char *group, const char *version);

struct wc_http_route;
/* The discovery document for a WC_HTTP_R_API_* route (addr: the server's "HOST:PORT"), a new
 * string, or NULL on allocation failure. */
char *wc_http_discovery(wc_http_resources *t, const struct wc_http_route *route, const char *addr,
                        size_t *len);

/* ---------------------------------------------------------------------------------------
 * Routes (route.c)
 * ------------------------------------------------------------------------------------- */

typedef enum wc_http_route_kind {
    WC_HTTP_R_HEALTHZ = 0,
    WC_HTTP_R_READYZ,
    WC_HTTP_R_METRICS,
    WC_HTTP_R_API_VERSIONS,  /* /api */
    WC_HTTP_R_API_GROUPS,    /* /apis */
    WC_HTTP_R_API_GROUP,     /* /apis/<group> */
    WC_HTTP_R_API_RESOURCES, /* /api/v1, /apis/<group>/<version> */
    WC_HTTP_R_DATA,          /* /keys/... or a Kubernetes resource: get, list or watch */
    WC_HTTP_R_VERSION,       /* /version */
    WC_HTTP_R_ETCD,          /* /v3/...: etcd's JSON gateway, read side (etcd_api.c) */
} wc_http_route_kind;

typedef struct wc_http_route {
    wc_http_route_kind kind;
    /* WC_HTTP_R_API_GROUP, WC_HTTP_R_API_RESOURCES: owned copies */
    char *group, *version;
    /* WC_HTTP_R_DATA */
    wc_family family;
    char *key; /* owned; the exact key, or the prefix when `prefix` */
    size_t key_len;
    bool prefix;
    bool watch_path;             /* the legacy /watch/ form */
    const wc_http_resource *res; /* from the table; NULL under /keys */
    char *name;                  /* owned; the decoded object name of a get, else NULL */
    char *ns;                    /* owned; the namespace of a namespaced route, else NULL */
    const char *kind_name;       /* "Pod", "KeyValue" */
    const char *api_version;     /* "v1", "apps/v1", "wcached/v1" */
} wc_http_route;

/*
 * Parses a raw (still percent-encoded) path. 0 and *out (free with wc_http_route_free);
 * WC_ENOENT with a 404 in *err for an unknown route; WC_EINVAL with a 400 for a malformed one;
 * WC_ENOMEM.
 */
int wc_http_route_parse(wc_http_resources *t, const char *k8s_prefix, const char *path,
                        wc_http_route *out, wc_http_error *err);
void wc_http_route_free(wc_http_route *r);

/* ---------------------------------------------------------------------------------------
 * Query parameters and continue tokens (query.c)
 * ------------------------------------------------------------------------------------- */

/* One raw query parameter as MHD split it ('+' already a space, %XX not decoded yet). */
typedef struct wc_http_param {
    const char *key;
    const char *value; /* NULL for "?key" without '=' */
} wc_http_param;

typedef enum wc_http_match {
    WC_HTTP_MATCH_NONE = 0,
    WC_HTTP_MATCH_NOT_OLDER,
    WC_HTTP_MATCH_EXACT,
} wc_http_match;

typedef struct wc_http_query {
    bool watch;
    int64_t rv; /* WC_RV_UNSET, 0, or N */
    wc_http_match match;
    bool allow_bookmarks;
    int64_t timeout_s;   /* 0: none */
    int send_initial;    /* -1 unset, 0 false, 1 true */
    wc_selector *labels; /* owned; NULL when absent */
    wc_selector *fields; /* owned; NULL when absent */
    int64_t limit;       /* 0: no limit */
    bool has_continue;
    int64_t cont_rv;
    char *cont_key; /* owned; the next key relative to the route's key range */
    size_t cont_key_len;
} wc_http_query;

/* The server's bounds on what the parameters may ask (the --max-page-size and
 * --max-timeout-seconds settings). */
typedef struct wc_http_query_bounds {
    int64_t max_limit;     /* a larger `limit` is served as pages of this size */
    int64_t max_timeout_s; /* a larger `timeoutSeconds` gets 400 */
} wc_http_query_bounds;

/*
 * Parses and cross-checks the parameters (first occurrence wins, unknown ones are ignored;
 * `watch_path`: the route was the legacy /watch/ form) within `bounds` (NULL:
 * WC_HTTP_MAX_PAGE_SIZE and WC_HTTP_MAX_TIMEOUT_SECONDS). 0 and *q (free with
 * wc_http_query_free); WC_EINVAL with a 400 Status naming the parameter; or WC_ENOMEM.
 * `index_field` may be NULL. Field selectors may name metadata.name, metadata.namespace, the index
 * field, and the NULL-terminated `fields` of the resource (wc_http_resource_fields; NULL: none).
 */
int wc_http_query_parse(const wc_http_param *params, size_t n, const char *index_field,
                        const char *const *fields, bool watch_path,
                        const wc_http_query_bounds *bounds, wc_http_query *q, wc_http_error *err);
void wc_http_query_free(wc_http_query *q);

/* A continue token: base64url of {"v":1,"rv":RV,"start":"<base64url of the key>"}.
 * encode returns a new NUL-terminated string or NULL; decode returns 0 or WC_EINVAL. */
char *wc_http_continue_encode(int64_t rv, const char *key, size_t key_len);
int wc_http_continue_decode(const char *tok, size_t len, int64_t *rv, char **key, size_t *key_len);

/* ---------------------------------------------------------------------------------------
 * Server-side printing (table.c; its functions are in table.h)
 * ------------------------------------------------------------------------------------- */

/* What each row of a Table carries as its `object` (the apiserver's includeObject). */
typedef enum wc_http_table_include {
    WC_HTTP_TABLE_METADATA = 0, /* a PartialObjectMetadata (the default) */
    WC_HTTP_TABLE_OBJECT,       /* the whole object */
    WC_HTTP_TABLE_NONE,         /* null */
} wc_http_table_include;

typedef struct wc_http_table_printer wc_http_table_printer;

/* How one request is printed. Zeroed (printer NULL): no Table asked, the usual JSON. */
typedef struct wc_http_table_opts {
    const wc_http_table_printer *printer;
    wc_http_table_include include;
    int64_t now; /* wall-clock seconds since the epoch: what AGE counts up to */
} wc_http_table_opts;

struct wc_http_table_watch;

/* ---------------------------------------------------------------------------------------
 * Request latency (metrics.c)
 * ------------------------------------------------------------------------------------- */

/* What a request did, the `verb` label of wcached_http_request_duration_seconds. */
typedef enum wc_http_verb {
    WC_HTTP_VERB_OTHER = 0, /* refused before it was routed (401, 404, 405, 414) */
    WC_HTTP_VERB_GET,
    WC_HTTP_VERB_LIST,
    WC_HTTP_VERB_WATCH,
    WC_HTTP_VERB_DISCOVERY, /* /api, /apis..., /version */
    WC_HTTP_VERB_HEALTH,    /* /healthz, /readyz */
    WC_HTTP_VERB_METRICS,
    WC_HTTP_VERB_COUNT,
} wc_http_verb;

#define WC_HTTP_LAT_BUCKETS 14 /* and +Inf */
#define WC_HTTP_LAT_SLOTS 128  /* (verb, code) pairs; more are not recorded */

/* One (verb, code) series. `key` is claimed once (0: free) and then never changes; the
 * counts are atomics, so requests record and /metrics reads without a lock. */
typedef struct wc_http_lat_slot {
    atomic_uint key;                                       /* verb << 16 | code */
    atomic_uint_fast64_t buckets[WC_HTTP_LAT_BUCKETS + 1]; /* per bucket, the last is +Inf */
    atomic_uint_fast64_t sum_us;
} wc_http_lat_slot;

/* CLOCK_MONOTONIC in microseconds: most answers take well under the millisecond of
 * wc_mono_ms. */
int64_t wc_http_lat_now_us(void);

/* ---------------------------------------------------------------------------------------
 * The server (server.c, conn.c, respond.c, stream.c, waiter.c, metrics.c)
 * ------------------------------------------------------------------------------------- */

typedef struct wc_http_stream wc_http_stream;
typedef struct wc_http_req wc_http_req;

typedef struct wc_http_pump
    wc_http_pump; /* stream.c: admits one more watch stream for reader `user` within the server's
                   * bounds (max_watches, max_watches_per_user), counting it until the stream ends.
                   * 0, WC_ETOOBIG (over a bound: answer 429) or WC_ENOMEM. */
int wc_http_stream_admit(wc_http *h, wc_http_stream *s, const char *user);

/* stream.c */

struct wc_http_hook {
    /* Guards every pump's (h) fields (its marked list and its streams), every stream's (h)
     * fields and every server's (h) fields. Held only for list moves and eventfd writes. */
    pthread_mutex_t mu;
    wc_http_pump *pumps; /* of every server on this hook, through hook_next */
};

/* What MHD's per-request pointer points to: a request until its stream starts, then the
 * stream. Both begin with this tag. */
typedef enum wc_http_tag {
    WC_HTTP_TAG_REQ = 0x52455131,
    WC_HTTP_TAG_STREAM = 0x53545231,
} wc_http_tag;

struct wc_http_req {
    wc_http_tag tag;
    struct MHD_Connection *conn;
    wc_http_route route;
    wc_http_query query;
    bool watch;
    char user[256]; /* who asked (wc_http_user's name), for the per-reader watch bound */
    bool http10;    /* the request was HTTP/1.0: no chunked body */
    bool started;   /* answered or on its way: the whole request has been received */
    bool seen;      /* the handler has been called for it */
    int refuse;     /* 414: too many parameters or too long a URI (found before MHD parsed it) */
    bool inflight;  /* counted in wc_http.inflight until on_completed */
    int64_t t0_us;  /* when the request began (wc_http_lat_now_us) */
    bool routed;    /* its route parsed: route.kind says what it is */
    wc_http_table_opts table; /* a Table asked (table.printer set), how to print it */
    bool etcd;                /* a /v3/ request: its body is kept in `body` (etcd_api.c reads it) */
    wc_buf body;
    /* The wait for the cache (waiter.c). Fields marked (q) are guarded by wc_http.wait_mu. */
    bool need_current;      /* ask etcd for its current revision first */
    int64_t target;         /* revision the cache must reach */
    int64_t deadline;       /* CLOCK_MONOTONIC ms */
    wc_http_req *wait_next; /* (q) */
    int wait_state;         /* (q) 0 none, 1 queued or waiting, 2 done */
    int wait_rc;            /* (q) 0, WC_ETIMEDOUT, WC_EIO, WC_ENOTREADY */
};

/* What a stream's pump asks of a body sent in place of a watcher's frames. Each is given the
 * stream's `body`; all run on the pump's thread but `free`. */
typedef struct wc_http_body_ops {
    int (*read)(void *body, char *buf, size_t max, size_t *n); /* as wc_watcher_read */
    /* True when the body was ended for lagging (too slow, or out of the ring): a stream whose
     * socket stays full is then cut off, as any watch stream. */
    bool (*lagged)(void *body);
    void (*close)(void *body); /* the stream ends: nothing more is read */
    void (*free)(void *body);  /* the stream is freed */
    /* Sent as soon as it has bytes, never gathered for coalesce_ms: a body read by a program
     * that relays it (a wcached below this one), whose own readers would wait twice. */
    bool at_once;
} wc_http_body_ops;

struct wc_http_stream {
    wc_http_tag tag;
    struct wc_http *srv;
    /* Set on MHD's thread before the handoff, then read-only. */
    struct MHD_Connection *conn; /* until the handoff */
    wc_watcher *w;               /* NULL for a stream of fixed bytes only (the 410 ERROR event) */
    char *head; /* an HTTP header block wcached writes itself (etcd_api.c), sent unframed */
    size_t head_len, head_off;
    char *pre; /* bytes sent before the watcher's, or NULL */
    size_t pre_len;
    bool chunked; /* HTTP/1.1: chunked body; HTTP/1.0: raw bytes, the end is the close */
    int fd;       /* our duplicate of the socket, from the handoff on; -1 before */
    struct wc_http_table_watch *table; /* a Table watch: its frames go through it (p) */
    /* HTTPS: the sending half of its TLS session, taken with the socket; NULL: plain HTTP */
    struct wc_http_tls_tx *tls;
    /* (h): guarded by hook->mu */
    wc_http_pump *pump;          /* NULL until the handoff */
    wc_http_stream *prev, *next; /* pump->streams */
    wc_http_stream *mark_next;   /* pump->marked */
    bool marked;
    bool held;     /* woken while cooling: still marked, but off pump->marked until it is due */
    bool finished; /* its pump ended it: never marked again (MHD may still call mhd_done) */
    /* Its cool_until, for the pump's wakes (mark_locked); 0: not cooling. Stored by the thread
     * running its round without hook->mu, read under it: a marker that finds the pump asleep
     * sees the due of the pump's last round, which ended before the pump recorded its sleep
     * (asleep_until) under hook->mu; one that finds it awake pokes it whatever due says. */
    _Atomic int64_t due;
    /* (p): its pump's thread only */
    size_t pre_off;
    char *out; /* bytes a full socket did not take, or NULL */
    size_t out_len;
    bool blocked; /* the socket is full: wait for EPOLLOUT */
    bool gone;    /* the reader hung up */
    bool ending;  /* the body's end is sent or being sent: close after it */
    bool closed;  /* finished; freed at the end of the round */
    bool queued;  /* on this round's work list */
    wc_http_stream *work_next;
    struct wc_http_watcher_count *counted; /* (h) its reader's entry of the watch bound */
    int64_t cut_at; /* ended for lagging behind a full socket: cut off then, if still full */
    /* A body of its own in place of `w` (an etcd API watch, etcd_api.c), or NULL, and what the
     * pump asks of it. While `mhd_reads`, MHD still reads the request body on its own thread and
     * the pump must not read the socket; the stream is then freed by whichever of MHD
     * (on_completed) and the pump is done last (`pump_done`). Both (h). */
    const struct wc_http_body_ops *body_ops;
    void *body;
    bool mhd_reads, pump_done;
    wc_http_stream *linger_next; /* pump->lingering, while cut_at is set */
    bool fed;                    /* this round sent it bytes of its body */
    /* Sent to at a wake less than coalesce_ms ago: its next wake waits until cool_until (0: not
     * cooling), on pump->cooling, oldest first. */
    int64_t cool_until;
    wc_http_stream *cool_prev, *cool_next;
};

struct wc_http {
    wc_http_opts o;                          /* strings below are owned copies */
    char *k8s_prefix, *index_field, *listen; /* owned copies of the options' */
    struct MHD_Daemon *d;
    MHD_socket listen_fd;
    uint16_t port;
    char addr[300];
    wc_http_resources *res;
    wc_http_hook *hook;

    /* Who may read: the tables in force (NULL: none configured), swapped whole by
     * wc_http_load_auth; a replaced table is kept until the server is freed, as a request may
     * still read it. auth_mu guards the retired lists and serializes reloads. */
    _Atomic(struct wc_http_auth_tokens *) tokens;
    _Atomic(struct wc_http_auth_policy *) policy;
    pthread_mutex_t auth_mu;
    struct wc_http_auth_tokens **old_tokens;
    struct wc_http_auth_policy **old_policies;
    size_t n_old_tokens, n_old_policies;
    char *token_file, *policy_file; /* owned copies of the options' */
    /* HTTPS (tls.c): the certificate chain, key and client CA in force, NULL without HTTPS;
     * swapped whole by wc_http_load_auth (under auth_mu), the replaced sets chained behind it
     * until the server is freed. */
    _Atomic(struct wc_http_tls_set *) tls_set;
    char *tls_cert_file, *tls_key_file, *client_ca_file; /* owned copies of the options' */

    /* (h): guarded by hook->mu */
    size_t n_streams; /* watch streams from their start to their end */
    size_t n_watches; /* streams admitted by wc_http_stream_admit and not yet ended */
    struct wc_http_watcher_count *watch_users; /* open watches by reader (uthash) */
    atomic_uint_fast64_t watches_refused;      /* 429s for the watch bounds */
    atomic_bool stopping; /* set under the lock, read by the pumps without it */
    /* The pumps (stream.c): they send the streams' bodies; the first one ticks the cacher. */
    wc_http_pump **pumps;
    unsigned n_pumps;
    /* The waiter (waiter.c); wait_mu guards the (q) fields of requests and these. */
    pthread_t waiter;
    bool waiter_started;
    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cond;
    wc_http_req *wait_queue;
    bool wait_stop;
    /* The header deadline (conn.c): connections still waiting for a request's header block,
     * oldest first, and the thread that shuts down those past it. hdr_mu guards the list, the
     * slots' links and hdr_stop. */
    pthread_t hdr_thread;
    bool hdr_started;
    pthread_mutex_t hdr_mu;
    pthread_cond_t hdr_cond;
    /* [0] every connection, [1] those in the room kept for probes, whose deadline is
     * WC_HTTP_PROBE_HEADER_MS: each list is oldest first, as its deadline is the same for all. */
    struct wc_http_hdr_list {
        struct wc_http_conn_slot *head, *tail;
    } hdr_lists[2];
    bool hdr_stop;

    /* etcd API progress threads running (etcd_api.c): stop waits for them. */
    atomic_uint etcd_threads;
    /* Counters, atomics read by /metrics without a lock. */
    atomic_uint_fast64_t codes[600];
    atomic_uint_fast64_t sends, hangups, consistent_reads, refused, header_timeouts;
    wc_http_lat_slot lat[WC_HTTP_LAT_SLOTS]; /* wcached_http_request_duration_seconds */
    atomic_uint_fast64_t tls_streams;        /* watch streams that took a TLS session (stream.c) */
    atomic_uint_fast64_t streams_opened;     /* watch streams opened, TLS or not (stream.c) */
    atomic_uint_fast64_t rounds_here;        /* pump rounds run by a publisher (stream.c) */
    /* The descriptor budget (conn.c wc_http_conn_accept): MHD's connections plus the open streams.
     */
    size_t max_conns;
    atomic_size_t mhd_conns;
    /* Requests in flight (server.c inflight_admit), and those answered 429 for the bound. */
    atomic_size_t inflight;
    atomic_uint_fast64_t inflight_dropped;
};

/* The cacher's clock. */
int64_t wc_http_now(const wc_http *h);

/* stream.c */
wc_http_stream *wc_http_stream_new(wc_http *h);
void wc_http_stream_free(wc_http_stream *s); /* once nobody else can see it; NULL ok */
void wc_http_stream_wake(void *arg);         /* wc_watch_opts.wake */
/* The response carrying s was queued on conn: from here on_completed ends s. */
void wc_http_stream_opened(wc_http_stream *s, struct MHD_Connection *conn, bool chunked);
/* The content reader of a stream's response: takes the socket on its first call (the headers
 * are sent) and ends MHD's side of the response. */
ssize_t wc_http_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
/* MHD is done with the connection: hands the stream to a pump, or frees it if it never got
 * its socket. */
void wc_http_stream_completed(wc_http_stream *s);
int wc_http_pumps_start(wc_http *h);
void wc_http_streams_end(wc_http *h); /* stopping: every stream ends its body cleanly */
/* Whether the heap is worth trimming with `now` connections (streams and requests), given the
 * most seen since the last trim (*peak, updated): when at least half of them and at least 64
 * have left. True resets *peak to now. */
bool wc_http_trim_due(size_t *peak, size_t now);
/* Whether the heap is worth trimming once a tick, with `opened` streams opened so far: when at
 * least 256 opened since the last trim (*at_trim) and none since the tick before (*last_tick,
 * updated): a storm of arrivals that has settled. True sets *at_trim to opened. */
bool wc_http_trim_after_storm(uint64_t *at_trim, uint64_t *last_tick, uint64_t opened);
/* A trim found due (*w, pump 0's) waits for a quiet tick: true, once per due trim, at the
 * first tick whose `sends` (streams' sends so far) equal the last tick's, or at the 30th tick
 * of waiting. */
typedef struct {
    bool pending;    /* due, not done yet */
    unsigned waited; /* busy ticks since it was due */
    uint64_t sends;  /* the sends at the last tick */
} wc_http_trim_wait;
bool wc_http_trim_now(wc_http_trim_wait *w, bool due, uint64_t sends);
/* The pump a new stream goes to, given the streams each of the n pumps holds: the first that
 * holds fewer than `pack` (a few streams share one pump, so that an event wakes one thread),
 * else the one that holds the fewest (the first of them). n >= 1. */
unsigned wc_http_pick_pump(const size_t *streams, unsigned n, size_t pack);
void wc_http_pumps_stop(wc_http *h); /* after MHD stopped: cuts off what is left, joins */

/* Hands a stream whose response wcached writes itself (an etcd watch whose body is still
 * coming) to a pump now: takes a duplicate of conn's socket. 0, or WC_EIO. */
int wc_http_stream_take(wc_http_stream *s, struct MHD_Connection *conn);
/* Marks s and pokes its pump (a stream's own bytes to send, not its watcher's). Any thread. */
void wc_http_stream_poke(wc_http_stream *s);
/* MHD finished with a stream that it read the body of (on_completed). */
void wc_http_stream_mhd_done(wc_http_stream *s);

/* respond.c: every answer leaves through wc_http_respond (it takes over `resp`), which counts
 * it by code; the others are its shapes. */
enum MHD_Result wc_http_respond(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                struct MHD_Response *resp, const char *ctype);
enum MHD_Result wc_http_respond_copy(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                     const char *ctype, const char *body, size_t len);
/* Takes over `body` (malloc'd). */
enum MHD_Result wc_http_respond_take(wc_http *h, struct MHD_Connection *conn, unsigned code,
                                     const char *ctype, char *body, size_t len);
enum MHD_Result wc_http_respond_status(wc_http *h, struct MHD_Connection *conn,
                                       const wc_http_error *e);
/* The Status for an error code of the cacher or the waiter (want: the revision asked). */
enum MHD_Result wc_http_respond_err(wc_http *h, struct MHD_Connection *conn, int rc, int64_t want,
                                    bool from_continue);

/* conn.c: MHD's connections until they become streams (the descriptor budget, the header
 * deadline, what an answer notes on its connection). */
/* MHD's connection notifications (server.c's on_connection adds TLS to a new one). */
void wc_http_conn_notify(wc_http *h, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);
/* MHD's accept policy: past the budget and the probes' room, a connection is closed at once. */
enum MHD_Result wc_http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* The header deadline's thread (arg: the server). */
void *wc_http_conn_deadline_main(void *arg);
/* True for a connection opened in the room kept for /healthz and /readyz. */
bool wc_http_conn_probe_only(struct MHD_Connection *conn);
/* Notes the code of conn's answer, taken once by wc_http_conn_take_code (0: none yet). */
void wc_http_conn_answered(struct MHD_Connection *conn, unsigned code);
unsigned wc_http_conn_take_code(struct MHD_Connection *conn);
/* r is in whole (headers and any body), or answered before its body: off the deadline. */
void wc_http_conn_request_in(wc_http *h, wc_http_req *r);
/* conn's request was answered in whole: the deadline runs again for its next one. */
void wc_http_conn_next_request(wc_http *h, struct MHD_Connection *conn);
/* conn's socket became a stream's: it leaves MHD's count (the stream is counted instead). */
void wc_http_conn_uncount(wc_http *h, struct MHD_Connection *conn);

/* etcd_api.c: etcd's JSON gateway, read side. */
/* A /v3/ request in whole (r->body), or a watch's first call with its body still coming. */
enum MHD_Result wc_http_etcd_serve(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                   const char *url, const char *method, bool body_done,
                                   void **con_cls);
/* After the waiter resumed a consistent range (rc: the wait's result). */
enum MHD_Result wc_http_etcd_after_wait(wc_http *h, struct MHD_Connection *conn, wc_http_req *r,
                                        int rc);
/* A piece of a streaming watch body (n == 0: the body ended). MHD's thread. */
enum MHD_Result wc_http_etcd_upload(wc_http *h, struct MHD_Connection *conn, wc_http_stream *s,
                                    const char *data, size_t *n);

/* waiter.c */
int wc_http_waiter_start(wc_http *h);
void wc_http_waiter_stop(wc_http *h); /* answers every waiting request, then joins */
/* Queues r; true when the caller must now suspend r's connection (the waiter resumes it, maybe
 * even before the suspend, which MHD then skips), false when r was answered at once. */
bool wc_http_waiter_submit(wc_http *h, wc_http_req *r);
/* True when r's wait is over, with its result in *rc. */
bool wc_http_waiter_done(wc_http *h, wc_http_req *r, int *rc);

/* tls.c */
typedef struct wc_http_tls_set wc_http_tls_set;
/* Reads a certificate chain, its key and (ca not NULL) a client CA, all PEM: 0 and *out, or
 * WC_EINVAL / WC_ENOMEM with one line for a person in `why`. */
int wc_http_tls_load(const char *cert, const char *key, const char *ca, wc_http_tls_set **out,
                     char *why, size_t why_len);
void wc_http_tls_retire(wc_http_tls_set *t, wc_http_tls_set *older); /* t replaces older */
void wc_http_tls_free_all(wc_http_tls_set *t); /* t and every set it replaced; NULL ok */
/* The MHD options of HTTPS, ended by MHD_OPTION_END, for MHD_OPTION_ARRAY: the certificate
 * retrieve callback (each handshake gets the set in force) and the priorities (TLS 1.2, 1.3). */
void wc_http_tls_mhd_options(struct MHD_OptionItem out[3]);
/* A new connection: ask for a client certificate in its handshake (with a client CA). */
void wc_http_tls_ask_client_cert(wc_http *h, struct MHD_Connection *conn);
/* A watch stream's sending half of a TLS session (see tls.c). */
typedef struct wc_http_tls_tx wc_http_tls_tx;
#define WC_HTTP_TLS_ALERT 21
#define WC_HTTP_TLS_DATA 23
/* Takes the write key, IV and sequence number of an established session (a gnutls_session_t
 * whose last record has been sent): 0 and *out; WC_EINVAL for a cipher not offered; WC_ENOMEM. */
int wc_http_tls_tx_take(void *session, wc_http_tls_tx **out);
void wc_http_tls_tx_free(wc_http_tls_tx *t); /* NULL ok */
/* Seals len bytes (1 or more) of content `type` as records into out, which has room for
 * wc_http_tls_sealed_max(len): the bytes written, or -1. */
ssize_t wc_http_tls_seal(wc_http_tls_tx *t, unsigned char type, const char *p, size_t len,
                         char *out);
size_t wc_http_tls_sealed_max(size_t len);
/* True when sealing next_len more bytes could reach the key's record budget: the stream is to
 * end (its reader watches again, over a new session). */
bool wc_http_tls_tx_worn(const wc_http_tls_tx *t, size_t next_len);
struct wc_http_user;
/* Who the connection's client certificate says the reader is: 0 with *u (CN, each O a group);
 * WC_ENOENT when it sent none (or no client CA is configured); WC_EINVAL when it is not valid
 * against the CA in force (signature, dates, client-auth purpose, a CN). */
int wc_http_tls_peer_user(wc_http *h, struct MHD_Connection *conn, struct wc_http_user *u);

/* conn.c: the server of a connection (its slot's), or NULL; any thread of the connection. */
wc_http *wc_http_conn_server(struct MHD_Connection *conn);

/* metrics.c: the /metrics body, a new string, or NULL. */
char *wc_http_metrics(wc_http *h, size_t *len);
/* metrics.c: records one answered request that took `us` microseconds. */
void wc_http_lat_observe(wc_http *h, wc_http_verb verb, unsigned code, int64_t us);

#endif
