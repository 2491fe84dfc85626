/*
 * The HTTP front: serves the cacher's state and watch streams to any number of readers.
 *
 * Readers speak to it as to a Kubernetes apiserver (GET /api/v1/..., /apis/<group>/<version>/...)
 * or through the raw key space (/keys/<key>); both route families reach the same three verbs
 * (get, list, watch) over the same cache. libmicrohttpd parses requests and answers gets and
 * lists; a watch stream leaves it once its headers are sent and is then only its watcher and
 * its socket, on one of the server's pump threads, which sends it what its watcher has when
 * the cacher's after_dispatch hook pokes the pump, once per published change (see
 * wc_http_hook below). An idle stream holds no thread and no buffer.
 *
 * The server knows HTTP and nothing of etcd: what it needs from upstream (readiness, etcd's
 * current revision, progress requests, upstream metrics) comes through callbacks the daemon
 * fills in wc_http_opts.
 */
#ifndef WCACHED_HTTP_H
#define WCACHED_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wcached/cacher.h"
#include "wcached/err.h"

typedef struct wc_http wc_http;

/*
 * The wake batcher shared by the cacher and the server: the watchers' wake callbacks mark
 * streams on their pumps' lists, and the cacher's after_dispatch hook pokes every pump that
 * has marks, once per published change (or sends for one idle pump of a few streams itself). It
 * exists before both (the cacher needs its hook at wc_cacher_new, the server needs the cacher at
 * wc_http_new) and is freed after both.
 */
typedef struct wc_http_hook wc_http_hook;

/* Returns a new hook, or NULL on allocation failure. */
wc_http_hook *wc_http_hook_new(void);

/* Frees a hook once no cacher and no server uses it any more; NULL is allowed. */
void wc_http_hook_free(wc_http_hook *hook);

/*
 * The cacher's after_dispatch hook: set wc_cacher_opts.after_dispatch to this function and
 * hook_arg to the wc_http_hook. Pokes the pumps of the streams marked since the last call; of an
 * idle pump holding at most 16 streams, runs the round on the calling thread instead, sending
 * those streams what their watchers hold. Any thread that holds no cacher lock (pump 0 calls
 * it at its tick, in its own round: its own pump is then busy and is poked).
 */
void wc_http_after_dispatch(void *hook);

/* The defaults, in one place (the daemon's flags, --help and the README use these). */
#define WC_HTTP_LISTEN "127.0.0.1:8080"
#define WC_HTTP_K8S_PREFIX "/registry"
/* 0: one per core the process may use (wc_cpu_count), at most WC_HTTP_THREADS_MAX. */
#define WC_HTTP_THREADS 0
#define WC_HTTP_THREADS_MAX 64
#define WC_HTTP_COALESCE_MS 5
/* The Kubernetes minor version whose read API wcached serves (answered at /version). */
#define WC_HTTP_K8S_MINOR "29"
#define WC_HTTP_HEADER_TIMEOUT_MS 30000
/* Requests other than watches and probes being served at once (the apiserver's default). */
#define WC_HTTP_MAX_REQUESTS_INFLIGHT 400
/* Bytes of a request's header fields (names and values) that are read; past it 431. */
#define WC_HTTP_MAX_HEADER_BYTES (16 * 1024)
/* Query parameters, and bytes of the request-target (path and query), a request may carry;
 * past either 414. */
#define WC_HTTP_MAX_QUERY_PARAMS 64
#define WC_HTTP_MAX_URI_BYTES (8 * 1024)
/* Items in a list's page, whatever `limit` asks: a larger limit is served as pages of this size
 * with a continue token (the apiserver too may return fewer items than asked). */
#define WC_HTTP_MAX_PAGE_SIZE 10000
/* The longest timeoutSeconds a request may ask for (366 days); a longer one gets 400. */
#define WC_HTTP_MAX_TIMEOUT_SECONDS (366LL * 24 * 3600)
/* Connections past --max-connections kept for /healthz and /readyz alone. */
#define WC_HTTP_PROBE_ROOM 8
/* How long a connection in that room may take to send its request (at most the header
 * timeout): idle sockets do not keep the room from probes for long. */
#define WC_HTTP_PROBE_HEADER_MS 1000

typedef struct wc_http_opts {
    const char *listen;           /* "HOST:PORT" or "[V6]:PORT"; port 0 picks a free port */
    const char *k8s_prefix;       /* root of Kubernetes-style keys (WC_HTTP_K8S_PREFIX) */
    const char *etcd_prefix;      /* the cached key range, for the etcd API ("" or NULL: all) */
    const char *index_field;      /* the --index-field path, allowed in fieldSelector; NULL: none */
    wc_cacher *cacher;            /* borrowed; outlives the server */
    wc_http_hook *hook;           /* borrowed; the one wired into the cacher's after_dispatch */
    const char *const *resources; /* NULL-terminated extra resource specs (see
                                     wc_http_add_resource), or NULL */
    /* libmicrohttpd's threads, and as many stream pumps; 0: one per core (WC_HTTP_THREADS). */
    unsigned threads;
    /* Connections and watch streams at once (a stream leaves libmicrohttpd after its headers,
     * so this counts both); past it a new connection is closed at once. 0: RLIMIT_NOFILE
     * (raised to its hard limit) less a reserve of 64. */
    unsigned max_connections;
    /* Watch streams at once, in all and per reader (its user name; every anonymous reader is
     * one); past either a new watch gets 429 with Retry-After. 0: no bound of its own. */
    unsigned max_watches, max_watches_per_user;
    /* Requests other than watches, /healthz and /readyz served at once (a list waiting for the
     * cache included); past it a request gets 429 with Retry-After. 0: no bound. The daemon
     * passes WC_HTTP_MAX_REQUESTS_INFLIGHT unless told otherwise. */
    unsigned max_requests_inflight;
    /* Per-connection buffer in bytes, at least what the request bounds need (0: that, 32 KiB at
     * the defaults; never below 2 KiB): holds a request's headers and its answer's header
     * block. A watch stream gives it back with its headers. */
    size_t conn_memory;
    /* A connection that makes no progress while its answer is sent (a reader that stopped
     * reading a list) is closed after this (default 300). One waiting for a request, the first
     * or the next on a kept-alive connection, is bounded by header_timeout_ms instead. */
    unsigned idle_timeout_s;
    /* A connection whose request's header block is not in whole this long after the
     * connection opened or its previous answer was sent is closed (WC_HTTP_HEADER_TIMEOUT_MS;
     * 0: no deadline but the idle timeout). */
    int64_t header_timeout_ms;
    /* Bytes of a request's header fields (names and values) read; past it 431
     * (WC_HTTP_MAX_HEADER_BYTES). The connection's buffer grows to hold them. */
    size_t max_header_bytes;
    /* A request with more query parameters, or a longer request-target, gets 414
     * (WC_HTTP_MAX_QUERY_PARAMS, WC_HTTP_MAX_URI_BYTES; 0: the default). The connection's
     * buffer grows to hold both. */
    unsigned max_query_params;
    size_t max_uri_bytes;
    /* A list's page holds at most this many items (WC_HTTP_MAX_PAGE_SIZE; 0: the default). */
    int64_t max_page_size;
    /* A larger timeoutSeconds gets 400 (WC_HTTP_MAX_TIMEOUT_SECONDS; 0: the default). */
    int64_t max_timeout_s;
    int64_t wait_ms; /* how long a read waits for the cache to catch up (default 3000) */
    /* A stream sent events waits this long before it is sent again: what its watcher gathers
     * meanwhile goes out in one send, so a busy reader gets several events per send (less CPU
     * per delivery under fan-out), while the first event after a quiet spell is sent at once.
     * 0: every wake is sent at once. (WC_HTTP_COALESCE_MS) */
    int64_t coalesce_ms;
    int64_t (*now_ms)(void *arg); /* the cacher's clock (its wc_cacher_opts.now_ms); NULL for
                                     CLOCK_MONOTONIC */
    void *clock_arg;

    /* Callbacks into the daemon, all given cb_arg; each may be NULL. */
    void *cb_arg;
    /* True when the cache is ready and the upstream live; otherwise false with a short reason
     * for /readyz written into `reason`. When ready it may write a note there, which /readyz
     * shows on a line after "ok". NULL: ready when the cacher is. Any thread. */
    bool (*ready)(void *arg, char *reason, size_t reason_len);
    /* etcd's current revision, for consistent reads: 0 and *rev, or a negative wc_err. May
     * block (the server calls it from a thread of its own). NULL: reads use the cache as is. */
    int (*current_rev)(void *arg, int64_t *rev);
    /* Asks the upstream watch for a progress notification; returns at once. */
    void (*request_progress)(void *arg);
    /* The upstream's cluster, member and raft term for the etcd API's response headers (0 when
     * not known). */
    void (*etcd_header)(void *arg, uint64_t *cluster_id, uint64_t *member_id, int64_t *raft_term);
    /* Appends upstream metrics, in Prometheus text format 0.0.4 (HELP and TYPE lines
     * included), to the /metrics body. */
    void (*metrics)(void *arg, FILE *out);
    /* Who may read (the Kubernetes apiserver's formats; NULL for none): the static bearer
     * token CSV, and the ABAC policy, one JSON object per line. Loaded by wc_http_load_auth. */
    const char *token_auth_file;
    const char *authorization_policy_file;
    /* HTTPS (TLS 1.2 and 1.3): the certificate chain and its private key, PEM, both or neither;
     * and a client CA (PEM, needs HTTPS): a client certificate it signed authenticates its
     * reader, CN as the user and each O as a group. Read by wc_http_load_auth. */
    const char *tls_cert_file, *tls_key_file;
    const char *client_ca_file;
} wc_http_opts;

/* Prometheus text format 0.0.4 for the metrics callback: a family's HELP and TYPE lines, then
 * its samples; `labels` is NULL or what goes between the braces (`state="live"`). */
void wc_http_metric_family(FILE *out, const char *name, const char *type, const char *help);
void wc_http_metric_u64(FILE *out, const char *name, const char *labels, uint64_t v);
void wc_http_metric_i64(FILE *out, const char *name, const char *labels, int64_t v);
void wc_http_metric_f64(FILE *out, const char *name, const char *labels, double v);

/* Fills `o` with the defaults above (listen WC_HTTP_LISTEN). */
void wc_http_opts_default(wc_http_opts *o);

/*
 * The server's life, as every module's: new, start, stop, free.
 *
 * wc_http_new makes a stopped server from `o` (copied): the listen address is checked and the
 * resource table built. Returns 0 and *out; WC_EINVAL for a bad listen address, resource spec or
 * missing cacher/hook; or WC_ENOMEM.
 */
int wc_http_new(const wc_http_opts *o, wc_http **out);

/* Starts serving: binds the listen address, raises RLIMIT_NOFILE, starts the event loop, the
 * stream pumps (one ticks the cacher about once a second) and the consistency waiter. 0;
 * WC_EIO when the address cannot be bound (the server stays stopped); or WC_ENOMEM. */
int wc_http_start(wc_http *h);

/* The port bound (the chosen one when the listen port was 0). */
uint16_t wc_http_port(const wc_http *h);

/* The address bound as "HOST:PORT" (IPv6 as "[HOST]:PORT"), owned by the server; for the
 * daemon's "listening on http://HOST:PORT" line. */
const char *wc_http_address(const wc_http *h);

/*
 * Stops gracefully: stops accepting, ends every watch stream cleanly (its chunked body is
 * terminated), answers waiting reads with 503, waits up to a few seconds for the streams to
 * drain, then closes every connection and ends the server's threads. NULL is allowed.
 */
void wc_http_stop(wc_http *h);

/*
 * (Re)reads the token file, the policy file, and the TLS certificate, key and client CA named in
 * the options and puts them in force at once for new requests and handshakes (a request under
 * way keeps the tables it started with; open connections and watch streams keep their TLS
 * sessions). Call after wc_http_new and before wc_http_start (HTTPS needs its certificate),
 * and again to reload (SIGHUP). 0; or WC_EINVAL, WC_EIO, WC_ETOOBIG or WC_ENOMEM with
 * everything in force unchanged and `why` saying what is wrong (never a token or a key).
 */
int wc_http_load_auth(wc_http *h, char *why, size_t why_len);

/* Stops the server if it runs, and frees it. NULL is allowed. */
void wc_http_free(wc_http *h);

/*
 * Adds a Kubernetes resource to the server's table, or replaces the one with the same group,
 * version and plural. Any thread, at any time. `spec` is
 *     [GROUP/]VERSION/PLURAL=Kind[:PATH][:cluster|:namespaced]
 * e.g. "example.com/v1/widgets=Widget", "v1/things=Thing:things:cluster". PATH is where the
 * objects live under the k8s prefix (default PLURAL for the core group, GROUP/PLURAL otherwise,
 * as the apiextensions server stores custom resources); the scope defaults to namespaced.
 * Returns 0, WC_EINVAL for a malformed spec, or WC_ENOMEM.
 */
int wc_http_add_resource(wc_http *h, const char *spec);

/* Checks a resource spec without a server (for the daemon's option parsing): 0 or WC_EINVAL. */
int wc_http_resource_check(const char *spec);

#endif
