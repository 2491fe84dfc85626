/*
 * The upstream: ONE list+watch against etcd's JSON gateway, on a thread of its own.
 *
 * The thread lists the key range in pages pinned to etcd's current revision (a big range as
 * disjoint key ranges at once, see list_parallel) and hands the snapshot to the sink
 * (sink.replace, or page by page in key order). It then opens one streaming POST /v3/watch from
 * that revision + 1 with progress_notify but without prev_kv (the cacher keeps each key's
 * previous state itself; prev_kv would only make etcd look up and send it), and hands every
 * change to the sink in revision order, one watch response per sink.apply() (a response holds
 * whole revisions) so the cache never claims a revision half-applied. A start also takes the
 * history before its list back on the same stream (see REFILL_QUIET_MS). The request body stays
 * open (chunked upload paused when there is nothing to send): {"progress_request":{}} lines sent on
 * it make etcd answer with a progress notification, which is how the cache's revision catches up
 * with etcd's for consistent reads, and how a silent stream is told from a dead one.
 *
 * On a broken or stalled stream, or any other failure on the way (etcd's, or ours: an
 * allocation, libcurl's set-up of a request), the thread backs off (exponential, with jitter),
 * moves to the next endpoint and resumes from the last revision the sink holds; when etcd says
 * that revision was compacted it relists, and the cacher turns the difference into events.
 * Every failure is counted by cause and reported with a reason naming the step that failed; the
 * thread ends only when the upstream is stopped.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "seam.h"
#include "wcached/b64.h"
#include "wcached/buf.h"
#include "wcached/clock.h"
#include "wcached/upstream.h"
#include "wire.h"

#define PAGE_DEFAULT 1000
#define MAX_LINE ((size_t)64 << 20)
#define IDLE_PROGRESS_MS 5000 /* ask for progress after this long without a message */
#define STALL_MS 15000        /* no message at all for this long: the stream is dead */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/*
 * etcd sends a watcher that starts in the past its history in responses of at most this many
 * revisions (watchBatchMaxRevs in etcd's mvcc); each response of such a catch-up carries, as its
 * header revision, etcd's revision when it was read. A response with fewer revisions is the
 * last of its catch-up pass: every change up to its header revision has been sent. This holds
 * for etcd 3.4 and 3.5, whose syncWatchers reads each pass up to the current revision; an etcd
 * that bounded a pass's read otherwise would break it (the watch that stays and the history's
 * watches rely on it).
 */
#define ETCD_BATCH_REVS 1000
/*
 * A start's history (a refill: the changes of the window (R0, H] before the list at H) comes
 * on the watch's stream beside the watch that stays, and is handed to the sink whole once every
 * change of the window has arrived (sink.backfill); the cache serves readers from H meanwhile.
 * Its watches prove their windows by what they send (take_history). A window whose last
 * revisions have no change of the range gets no proof from its own watch; an earlier watch's
 * pass proves it, unless nothing after it changed either (the window had no change under the
 * prefix at all, or a last pass of exactly ETCD_BATCH_REVS revisions), or etcd, on a busy
 * machine, does not send its passes in time. A history that sent nothing for this long (three
 * times as long before its first response, or twice its longest pause so far) is then checked
 * against etcd (check_history): does any key under the prefix differ at H from what it was at
 * P, the revision the windows are full to? If one does, history is still to come, which etcd
 * sends in order: it waits for it and checks again on its next quiet spell, REFILL_CHECKS times
 * in a row at most. If none does, every change in (P, H] is a key made and deleted in it, which
 * a list at H cannot show either: the history is handed over as it is, without those. Otherwise
 * (a check that fails, or too many in a row, or a compaction under the history) it is given up
 * (sink.backfill_abandon): readers from before H are refused with 410 as they would be without
 * a refill, and the watch that stays goes on. A progress notification cannot prove a window:
 * etcd before 3.4.25 and 3.5.8 answers a progress request at once, ahead of history it has yet
 * to send.
 */
#define REFILL_QUIET_MS 1000
#define REFILL_CHECKS 8
/*
 * The history comes through several watches on the one stream at once, one from every
 * REFILL_SPAN revisions of the window (REFILL_WATCHES at most), each with prev_kv (the state a
 * change replaced, which the cache does not hold for a key changed again since): etcd sends
 * each watch of a pass its next ETCD_BATCH_REVS revisions and reads the history once for all of
 * them, so the window takes a pass or two instead of one per ETCD_BATCH_REVS revisions. A
 * watch is cancelled once its window is full.
 */
#define REFILL_WATCHES 16
#define REFILL_SPAN ETCD_BATCH_REVS

typedef struct recent_revs recent_revs;

struct wc_upstream {
    char **endpoints;
    size_t n_endpoints;
    char *prefix;
    size_t prefix_len;
    char *key_b64, *end_b64; /* the range as the gateway wants it */
    size_t page;
    int64_t refill;       /* revisions a start takes back (opts.refill_revisions) */
    int64_t refill_span;  /* revisions per refill watch (REFILL_SPAN; a test may lower it) */
    int64_t refill_quiet; /* ms (REFILL_QUIET_MS; a test may lower it) */
    wc_upstream_sink sink;

    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool progress_wanted;
    atomic_size_t cur;         /* the endpoint in use */
    CURLM *multi;              /* the watch's; curl_multi_wakeup is the only use off the thread */
    unsigned seed;             /* jitter; the thread's own */
    uint64_t cluster_id;       /* of the cluster the cache's history came from; the thread's own */
    char *cacert, *cert, *key; /* TLS, or NULL */
    char *user, *password;     /* etcd auth, or NULL */
    pthread_mutex_t token_mu;  /* guards token, which any thread's request may renew */
    char *token;               /* the Authorization value: etcd's token, or "Bearer <bearer>" */
    /* Endpoints (bit i: endpoints[i]) that refused the bearer token as an etcd with its own
     * auth off refuses any token ("invalid auth token"): they are sent none from then on. */
    atomic_uint_fast32_t no_bearer;

    /* Metrics, written by the thread, read by any. */
    atomic_uint_fast64_t reconnects[WC_UPC_COUNT];
    atomic_uint_fast64_t relists, resets;
    atomic_int_fast64_t etcd_rev;
    /* What the latest header said of who answers (for the etcd API wcached itself serves). */
    atomic_uint_fast64_t hdr_cluster, hdr_member;
    atomic_int_fast64_t hdr_term;
    atomic_int_fast64_t last_msg; /* ms on the monotonic clock; 0 before the first */

    atomic_uint_fast32_t fail_at; /* steps a test makes fail (seam.h); 0 otherwise */
    atomic_bool hold;             /* a test's: the watch reads nothing more (seam.h) */
    /* A refill's checks (check_history): those that found history still to come, and those
     * that proved its end; histories handed over, and given up. */
    atomic_uint_fast64_t refill_waits, refill_ends;
    atomic_uint_fast64_t backfills, backfills_lost;
    recent_revs *recent; /* a list's newest mod revisions, while one that refills is under way */
};

/*
 * Why an attempt failed: the cause for the metric and a reason, naming the failing step, for
 * the log and /readyz. Every failure of the upstream path fills one before it returns, so the
 * thread can count it, report it and retry it, whatever failed.
 */
typedef struct up_err {
    wc_upstream_cause cause;
    char reason[256];
} up_err;

/* Fills e and returns rc, so that a failure is reported where it is returned. */
__attribute__((format(printf, 4, 5))) static int fail(up_err *e, int rc, wc_upstream_cause cause,
                                                      const char *fmt, ...)
{
    e->cause = cause;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    return rc;
}

/* True when a test asked `step` to fail (seam.h). */
static bool injected(wc_upstream *u, wc_upstream_step step)
{
    return (atomic_load_explicit(&u->fail_at, memory_order_relaxed) >> step) & 1;
}

void wc_upstream_fail_at(wc_upstream *u, uint32_t mask)
{
    atomic_store(&u->fail_at, mask);
}

void wc_upstream_refill_span(wc_upstream *u, int64_t revs)
{
    u->refill_span = revs > 0 ? revs : REFILL_SPAN;
}

void wc_upstream_refill_quiet(wc_upstream *u, int64_t ms)
{
    u->refill_quiet = ms > 0 ? ms : REFILL_QUIET_MS;
}

void wc_upstream_hold_watch(wc_upstream *u, bool hold)
{
    atomic_store(&u->hold, hold);
    curl_multi_wakeup(u->multi);
}

/* libcurl's global set-up is not thread-safe: done once, before any handle is made. */
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Remembers the newest revision etcd reported, for the lag metric, and who answered. */
static void saw_header(wc_upstream *u, const wc_wire_header *h)
{
    int_fast64_t cur = atomic_load(&u->etcd_rev);
    while (h->revision > cur && !atomic_compare_exchange_weak(&u->etcd_rev, &cur, h->revision))
        ;
    if (h->cluster_id)
        atomic_store(&u->hdr_cluster, h->cluster_id);
    if (h->member_id)
        atomic_store(&u->hdr_member, h->member_id);
    if (h->raft_term)
        atomic_store(&u->hdr_term, h->raft_term);
}

static void set_state(wc_upstream *u, wc_upstream_state st, const char *reason)
{
    if (u->sink.state)
        u->sink.state(u->sink.arg, st, reason);
}

/* ---------------------------------------------------------------------------------------
 * Plain requests
 * ------------------------------------------------------------------------------------- */

/* libcurl's write callback: collects a plain response. */
static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    wc_buf *b = arg;
    size_t n = size * nmemb;
    wc_buf_put(b, ptr, n);
    return b->oom ? 0 : n;
}

/* The token to send, copied into *out (NULL without auth or before the first authentication).
 * 0, or WC_ENOMEM with e filled. */
static int token_copy(wc_upstream *u, const char *what, char **out, up_err *e)
{
    pthread_mutex_lock(&u->token_mu);
    *out = u->token ? strdup(u->token) : NULL;
    bool oom = u->token && !*out;
    pthread_mutex_unlock(&u->token_mu);
    return oom ? fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: out of memory for the auth token", what) : 0;
}

/* The bit of `endpoint` in no_bearer (0 past the 32nd). */
static uint32_t endpoint_bit(const wc_upstream *u, const char *endpoint)
{
    for (size_t i = 0; i < u->n_endpoints && i < 32; i++) {
        if (strcmp(u->endpoints[i], endpoint) == 0)
            return 1u << i;
    }
    return 0;
}

/* The Authorization value for a request to `endpoint` in *out (caller frees; NULL: none). 0,
 * or WC_ENOMEM with e filled. */
static int token_for(wc_upstream *u, const char *what, const char *endpoint, char **out, up_err *e)
{
    *out = NULL;
    if (!u->user && (atomic_load(&u->no_bearer) & endpoint_bit(u, endpoint)))
        return 0;
    return token_copy(u, what, out, e);
}

/* True, and `endpoint` is sent no bearer token from now on, when a request that carried one
 * (`sent`) was refused as etcd refuses any token while its auth is off (`msg`: an etcd among the
 * endpoints of a tier reading a wcached that wants the token). */
static bool bearer_refused(wc_upstream *u, const char *endpoint, bool sent, const char *msg)
{
    if (u->user || !sent || !msg || !strstr(msg, "invalid auth token"))
        return false;
    atomic_fetch_or(&u->no_bearer, endpoint_bit(u, endpoint));
    return true;
}

/* Forgets a token etcd no longer takes, unless another thread already renewed it. */
static void drop_token(wc_upstream *u, const char *stale)
{
    pthread_mutex_lock(&u->token_mu);
    if (u->token && (!stale || strcmp(u->token, stale) == 0)) {
        free(u->token);
        u->token = NULL;
    }
    pthread_mutex_unlock(&u->token_mu);
}

/* True when etcd's answer says the request's credentials were not good (enough). */
static bool auth_refused(const char *body)
{
    return body && (strstr(body, "invalid auth token") || strstr(body, "user name is empty") ||
                    strstr(body, "auth: revision in header is old"));
}

/* The steps of one kind of request, for the seam. */
typedef struct req_steps {
    wc_upstream_step easy_init, slist, setopt;
} req_steps;

static const req_steps POST_STEPS = {WC_UPSTEP_POST_EASY_INIT, WC_UPSTEP_POST_SLIST,
                                     WC_UPSTEP_POST_SETOPT};
static const req_steps WATCH_STEPS = {WC_UPSTEP_WATCH_EASY_INIT, WC_UPSTEP_WATCH_SLIST,
                                      WC_UPSTEP_WATCH_SETOPT};

/* The first option of a request that libcurl refused (not built in, or no memory to copy a
 * string): a request is never sent half set up. */
typedef struct opt_err {
    const char *opt; /* NULL while every option was taken */
    CURLcode rc;
} opt_err;

#define SETOPT(u, steps, h, option, val, oe)                                                       \
    do {                                                                                           \
        if (!(oe)->opt) {                                                                          \
            CURLcode rc_ = injected((u), (steps)->setopt)                                          \
                               ? CURLE_OUT_OF_MEMORY                                               \
                               : curl_easy_setopt((h), (option), (val));                           \
            if (rc_ != CURLE_OK)                                                                   \
                *(oe) = (opt_err){#option, rc_};                                                   \
        }                                                                                          \
    } while (0)

/* Reports the option that failed, if one did. 0 or WC_ENOMEM. */
static int opt_failed(const opt_err *oe, const char *what, up_err *e)
{
    if (!oe->opt)
        return 0;
    return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: curl_easy_setopt(%s) failed: %s", what, oe->opt,
                curl_easy_strerror(oe->rc));
}

/* Appends a header line to *hdr (left as it was on failure). 0, or WC_ENOMEM with e filled. */
static int add_header(wc_upstream *u, const req_steps *steps, const char *what,
                      struct curl_slist **hdr, const char *line, up_err *e)
{
    struct curl_slist *more = injected(u, steps->slist) ? NULL : curl_slist_append(*hdr, line);
    if (!more)
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: curl_slist_append failed", what);
    *hdr = more;
    return 0;
}

/*
 * Sets the TLS options and headers every request shares; `token` may be NULL. 0, or WC_ENOMEM
 * with e filled. The headers are in *hdr either way (the caller frees them after the request).
 */
static int prepare(wc_upstream *u, const req_steps *steps, const char *what, CURL *h,
                   const char *token, struct curl_slist **hdr, up_err *e)
{
    opt_err oe = {0};
    if (u->cacert)
        SETOPT(u, steps, h, CURLOPT_CAINFO, u->cacert, &oe);
    if (u->cert)
        SETOPT(u, steps, h, CURLOPT_SSLCERT, u->cert, &oe);
    if (u->key)
        SETOPT(u, steps, h, CURLOPT_SSLKEY, u->key, &oe);
    SETOPT(u, steps, h, CURLOPT_NOSIGNAL, 1L, &oe);
    int rc = opt_failed(&oe, what, e);
    if (rc == 0)
        rc = add_header(u, steps, what, hdr, "Content-Type: application/json", e);
    if (rc == 0 && token) {
        char line[WC_UPSTREAM_TOKEN_MAX + 32];
        snprintf(line, sizeof(line), "Authorization: %s", token);
        rc = add_header(u, steps, what, hdr, line, e);
    }
    return rc;
}

/* One POST of `body` to endpoint+path with `token`, for `what` (the name reasons give the
 * request). 0 with the response in *out (caller frees out->p), or a negative code with e
 * filled. */
static int post_once(wc_upstream *u, const char *what, const char *endpoint, const char *path,
                     const char *body, const char *token, long timeout_ms, wc_buf *out, up_err *e)
{
    memset(out, 0, sizeof(*out));
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    CURL *h = injected(u, POST_STEPS.easy_init) ? NULL : curl_easy_init();
    if (!h)
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: curl_easy_init failed", what);
    struct curl_slist *hdr = NULL;
    int rc = prepare(u, &POST_STEPS, what, h, token, &hdr, e);
    if (rc == 0) {
        opt_err oe = {0};
        SETOPT(u, &POST_STEPS, h, CURLOPT_URL, url, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_POSTFIELDS, body, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_HTTPHEADER, hdr, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_WRITEFUNCTION, collect, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_WRITEDATA, out, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_TIMEOUT_MS, timeout_ms, &oe);
        SETOPT(u, &POST_STEPS, h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 3000 ? timeout_ms : 3000L,
               &oe);
        rc = opt_failed(&oe, what, e);
    }
    if (rc) {
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
        return rc;
    }
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (out->oom) {
        free(out->p);
        out->p = NULL;
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: %s: out of memory for the response", what,
                    endpoint);
    }
    if (cc != CURLE_OK) {
        free(out->p);
        out->p = NULL;
        return fail(e, WC_EIO, WC_UPC_TRANSPORT, "%s: %s: %s", what, endpoint,
                    curl_easy_strerror(cc));
    }
    if (!out->p)
        return fail(e, WC_EIO, WC_UPC_TRANSPORT, "%s: %s: empty response (HTTP %ld)", what,
                    endpoint, code);
    /* Refused credentials, said once in the reason (etcd's own expired token, or a bearer
     * token etcd takes for one, aside: post() tries again). */
    if ((code == 401 || code == 403) && !((u->user || token) && auth_refused(out->p))) {
        json_t *j = json_loadb(out->p, out->len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        fail(e, WC_EIO, WC_UPC_ETCD, "%s: %s: HTTP %ld, %s%s", what, endpoint, code,
             msg ? msg : "refused",
             code == 401 ? " (the credentials: --etcd-token-file, --etcd-user or --etcd-cert)"
                         : "");
        json_decref(j);
        free(out->p);
        out->p = NULL;
        return WC_EIO;
    }
    return 0;
}

/*
 * Obtains a token for the configured user from `endpoint`. 0, or a negative code with e
 * filled; the reason names the user and what etcd said, never the password.
 */
static int authenticate(wc_upstream *u, const char *endpoint, up_err *e)
{
    json_t *req = injected(u, WC_UPSTEP_AUTH_REQUEST)
                      ? NULL
                      : json_pack("{s:s,s:s}", "name", u->user, "password", u->password);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "auth: out of memory for the request");
    wc_buf resp;
    int rc = post_once(u, "auth", endpoint, "/v3/auth/authenticate", body, NULL, 10000, &resp, e);
    /* The body held the password: clear it before freeing. */
    memset(body, 0, strlen(body));
    free(body);
    if (rc)
        return rc;
    json_t *j = json_loadb(resp.p, resp.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        rc = fail(e, WC_EIO, WC_UPC_ETCD, "auth: %s: authentication as '%s' failed: %s", endpoint,
                  u->user, msg ? msg : "no token in the answer");
    } else {
        pthread_mutex_lock(&u->token_mu);
        free(u->token);
        u->token = strdup(tok);
        rc = u->token ? 0 : fail(e, WC_ENOMEM, WC_UPC_LOCAL, "auth: out of memory for the token");
        pthread_mutex_unlock(&u->token_mu);
    }
    json_decref(j);
    free(resp.p);
    return rc;
}

/* Makes sure a token is held when etcd auth is configured. */
static int ensure_token(wc_upstream *u, const char *endpoint, up_err *e)
{
    if (!u->user)
        return 0;
    pthread_mutex_lock(&u->token_mu);
    bool have = u->token != NULL;
    pthread_mutex_unlock(&u->token_mu);
    return have ? 0 : authenticate(u, endpoint, e);
}

/* POSTs with the current token, authenticating first when needed and once more when etcd
 * says the token is no longer valid. */
static int post(wc_upstream *u, const char *what, const char *endpoint, const char *path,
                const char *body, long timeout_ms, wc_buf *out, up_err *e)
{
    for (int attempt = 0;; attempt++) {
        int rc = ensure_token(u, endpoint, e);
        char *token = NULL;
        if (rc == 0)
            rc = token_for(u, what, endpoint, &token, e);
        if (rc)
            return rc;
        rc = post_once(u, what, endpoint, path, body, token, timeout_ms, out, e);
        if (rc == 0 && attempt == 0 &&
            ((u->user && auth_refused(out->p)) ||
             bearer_refused(u, endpoint, token != NULL, out->p))) {
            if (u->user)
                drop_token(u, token);
            free(token);
            free(out->p);
            continue;
        }
        free(token);
        return rc;
    }
}

/* ---------------------------------------------------------------------------------------
 * The list
 * ------------------------------------------------------------------------------------- */

/* A range request's `"revision"` member for `at` (with its leading comma), or "" for 0: now. */
#define REV_MEMBER 48
static void rev_member(char buf[REV_MEMBER], int64_t at)
{
    buf[0] = '\0';
    if (at > 0)
        snprintf(buf, REV_MEMBER, ",\"revision\":\"%" PRId64 "\"", at);
}

/* The body of a range request for the page starting at key_b64 and ending before end_b64, at
 * revision `at` (0: now). */
static char *range_body_to(const wc_upstream *u, const char *key_b64, const char *end_b64,
                           int64_t at)
{
    char atbuf[REV_MEMBER];
    rev_member(atbuf, at);
    char *body = NULL;
    if (asprintf(&body, "{\"key\":\"%s\",\"range_end\":\"%s\",\"limit\":\"%zu\"%s}", key_b64,
                 end_b64, u->page, atbuf) < 0)
        return NULL;
    return body;
}

/* The body of a range request for the page starting at key_b64, to the end of the range. */
static char *range_body(const wc_upstream *u, const char *key_b64, int64_t at)
{
    return range_body_to(u, key_b64, u->end_b64, at);
}

/* The start of the page after one that ended with `key`: that key plus a NUL byte, in base64. */
static char *next_start(const char *key, size_t key_len)
{
    char *next = malloc(key_len + 1);
    if (!next)
        return NULL;
    memcpy(next, key, key_len);
    next[key_len] = '\0';
    char *b64 = wc_b64_encode(next, key_len + 1, WC_B64_STD);
    free(next);
    return b64;
}

/* A range request under way on a thread of its own while the page before it is parsed. */
typedef struct prefetch {
    wc_upstream *u;
    const char *endpoint;
    char *body; /* what was asked; the page is used only if the list asks the same */
    pthread_t thread;
    bool started;
    wc_buf resp;
    int rc;
    up_err err;
} prefetch;

static void *prefetch_main(void *arg)
{
    prefetch *f = arg;
    f->rc = post(f->u, "list", f->endpoint, "/v3/kv/range", f->body, 30000, &f->resp, &f->err);
    return NULL;
}

/* Waits for f and forgets it; its page is freed unless the caller took it. On a wrong guess or
 * an error this waits for the page asked for, which etcd answers as fast as the one before it;
 * a request stuck on a hung member waits out its timeout either way. */
static void prefetch_end(prefetch *f)
{
    if (!f->started)
        return;
    pthread_join(f->thread, NULL);
    if (f->rc == 0)
        free(f->resp.p);
    free(f->body);
    f->started = false;
}

/*
 * Guesses from a page's raw text what the next request will be, before the page is parsed:
 * the gateway writes base64 (which has no quotes) for keys and values, so the last "key":"
 * is the last key's, the first "revision":" the header's, and "more":true says a page
 * follows. A wrong guess costs a request: the list checks it against the parsed page.
 */
static char *guess_next_body(const wc_upstream *u, const char *raw, size_t len, int64_t at)
{
    if (!memmem(raw, len, "\"more\":true", 11))
        return NULL;
    if (at == 0) {
        const char *r = memmem(raw, len, "\"revision\":\"", 12);
        if (!r)
            return NULL;
        at = strtoll(r + 12, NULL, 10);
        if (at <= 0)
            return NULL;
    }
    static const char K[] = "\"key\":\"";
    const char *last = NULL;
    for (const char *p = raw; (p = memmem(p, len - (size_t)(p - raw), K, sizeof(K) - 1));
         p += sizeof(K) - 1)
        last = p + sizeof(K) - 1;
    if (!last)
        return NULL;
    const char *end = memchr(last, '"', len - (size_t)(last - raw));
    if (!end)
        return NULL;
    size_t n = (size_t)(end - last);
    char *key = malloc(3 * (n / 4) + 2);
    size_t key_len = 0;
    char *body = NULL;
    if (key && wc_b64_decode_to(last, n, key, &key_len, WC_B64_STD) == 0) {
        char *start = next_start(key, key_len);
        body = start ? range_body(u, start, at) : NULL;
        free(start);
    }
    free(key);
    return body;
}

/* The cause of a failure to parse a range page. */
static wc_upstream_cause range_cause(int rc)
{
    switch (rc) {
    case WC_ENOMEM:
        return WC_UPC_LOCAL;
    case WC_EEXPIRED:
        return WC_UPC_COMPACTED;
    case WC_EIO:
        return WC_UPC_ETCD;
    default:
        return WC_UPC_PROTOCOL;
    }
}

/* A request body, formatted; NULL when out of memory. */
__attribute__((format(printf, 1, 2))) static char *bodyf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* POSTs one range request (`body` from bodyf, freed here; NULL: out of memory) and parses its
 * answer into *r, which the caller frees. 0, or a negative code with e filled: WC_EEXPIRED
 * when the revision asked for was compacted. */
static int range_post(wc_upstream *u, const char *what, const char *endpoint, char *body,
                      long timeout_ms, wc_range_resp *r, up_err *e)
{
    if (!body)
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "%s: out of memory for a range request", what);
    wc_buf resp;
    int rc = post(u, what, endpoint, "/v3/kv/range", body, timeout_ms, &resp, e);
    free(body);
    if (rc)
        return rc;
    rc = wc_etcd_parse_range(resp.p, resp.len, r);
    free(resp.p);
    if (rc)
        return fail(e, rc, range_cause(rc), "%s: %s: range: %s", what, endpoint, wc_strerror(rc));
    saw_header(u, &r->header);
    return 0;
}

/*
 * Asks whether etcd still has revision `at` (0: now) with a range of the prefix key alone,
 * which costs etcd one index lookup whatever the range holds. 0 with the header in *hdr;
 * WC_EEXPIRED when `at` was compacted; another negative code with e filled.
 */
static int probe_rev(wc_upstream *u, const char *endpoint, int64_t at, wc_wire_header *hdr,
                     up_err *e)
{
    char atbuf[REV_MEMBER];
    rev_member(atbuf, at);
    wc_range_resp r;
    int rc = range_post(
        u, "refill", endpoint,
        bodyf("{\"key\":\"%s\",\"keys_only\":true,\"limit\":\"1\"%s}", u->key_b64, atbuf), 10000,
        &r, e);
    if (rc)
        return rc;
    *hdr = r.header;
    wc_range_resp_free(&r);
    return 0;
}

/* The newest mod revisions of a list's keys, for where its history starts: a min-heap of the
 * `k` newest, out of `seen` keys. A heap that could not be made (no memory) leaves out the
 * bound it gives. */
struct recent_revs {
    int64_t *v;
    size_t n, k;
    uint64_t seen;
};

static void recent_add(recent_revs *r, int64_t rev)
{
    r->seen++;
    if (!r->v)
        return;
    size_t i;
    if (r->n < r->k) {
        i = r->n++;
    } else if (rev > r->v[0]) {
        i = 0; /* the oldest of the k goes: sift the new one down from the root */
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= r->n)
                break;
            if (c + 1 < r->n && r->v[c + 1] < r->v[c])
                c++;
            if (r->v[c] >= rev)
                break;
            r->v[i] = r->v[c];
            i = c;
        }
        r->v[i] = rev;
        return;
    } else {
        return;
    }
    while (i > 0 && r->v[(i - 1) / 2] > rev) { /* sift up */
        r->v[i] = r->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->v[i] = rev;
}

/*
 * Where the history of a list at `head` starts (see wc_upstream_opts.refill_revisions):
 * u->refill revisions before it, but not before the u->refill-th most recently changed key of
 * the list (its keys' mod revisions, in r), so that a history goes back no further than it
 * replays about that many keys' changes, however many keys each revision changed (a bulk load
 * in transactions of 100 keys is 100 keys a revision); and not before etcd's compaction
 * revision, found by bisection between a compacted revision and `head` with one-key ranges
 * (etcd tells no other way than by refusing a compacted one). `head` when there is nothing to
 * take back, or when a probe failed: a start without its history loses no more than that.
 */
static int64_t history_start(wc_upstream *u, const char *endpoint, int64_t head,
                             const recent_revs *r)
{
    int64_t lo = head - u->refill; /* etcd's first revision is 1, the empty store */
    if (lo < 1)
        lo = 1;
    if (r->v && r->seen > r->k && r->n > 0 && r->v[0] > lo)
        lo = r->v[0];
    if (lo >= head)
        return head;
    wc_wire_header hdr;
    up_err e;
    int rc = probe_rev(u, endpoint, lo, &hdr, &e);
    if (rc == 0)
        return lo;
    if (rc != WC_EEXPIRED)
        return head;
    /* lo is compacted, head is not: the compaction revision is the oldest one etcd has. */
    int64_t hi = head;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        rc = probe_rev(u, endpoint, mid, &hdr, &e);
        if (rc == 0)
            hi = mid;
        else if (rc == WC_EEXPIRED)
            lo = mid;
        else
            return head;
    }
    return hi;
}

/* Hands a page to a sink that takes pages (list_page), and frees it. 0 or the sink's code. */
static int hand_page(wc_upstream *u, wc_range_resp *page, bool *begun)
{
    int rc = 0;
    if (!*begun) {
        rc = u->sink.list_begin ? u->sink.list_begin(u->sink.arg, page->count) : 0;
        *begun = rc == 0;
    }
    wc_kv_spec *specs = rc == 0 ? malloc((page->n ? page->n : 1) * sizeof(*specs)) : NULL;
    if (rc == 0 && !specs)
        rc = WC_ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < page->n; i++) {
            specs[i] = page->kvs[i].spec;
            if (u->recent)
                recent_add(u->recent, specs[i].mod_rev);
        }
        rc = page->n ? u->sink.list_page(u->sink.arg, specs, page->n) : 0;
    }
    free(specs);
    for (size_t i = 0; i < page->n; i++)
        wc_wire_kv_free(&page->kvs[i]);
    free(page->kvs);
    page->kvs = NULL;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The list of a big range: disjoint key ranges at once
 * ------------------------------------------------------------------------------------- */

/*
 * A range of more than LIST_PARALLEL_MIN pages is cut into up to LIST_SEGMENTS disjoint key
 * ranges, listed at once by LIST_WORKERS threads at the one pinned revision: etcd serves each
 * request (and its gateway writes each JSON page) on a core of its own, and the workers parse
 * the pages on ours. The pages go to the sink in key order, one segment after the other, so the
 * sink sees what a list one page after another would have shown it. The cuts are found from the
 * first page's last key and the range's last key (last_by_probes): the range between them is
 * cut evenly on the two bytes after the prefix they share. Keys spread unevenly leave some
 * segments bigger than others; there are more segments than workers so that a worker done with
 * a small one takes the next.
 */
#define LIST_WORKERS 4
#define LIST_SEGMENTS 16
#define LIST_PARALLEL_MIN 4

/* Never backwards: a list from another cluster, or from before what the cache holds, is not
 * used unless the caller decided to drop the history. 0, or WC_ESTALE with e filled. */
static int check_list_header(wc_upstream *u, const char *endpoint, const wc_wire_header *h,
                             bool reset, int64_t rev, up_err *e)
{
    if (!reset && u->cluster_id && h->cluster_id != u->cluster_id)
        return fail(e, WC_ESTALE, WC_UPC_WENT_BACK,
                    "list: %s: another cluster (id %" PRIu64 ", was %" PRIu64 ")", endpoint,
                    h->cluster_id, u->cluster_id);
    if (!reset && h->revision < rev)
        return fail(e, WC_ESTALE, WC_UPC_BEHIND,
                    "list: %s: at revision %" PRId64 ", behind the cache's %" PRId64, endpoint,
                    h->revision, rev);
    u->cluster_id = h->cluster_id;
    return 0;
}

/* The first key in [from, to) at revision `at`, without its value, in *r (r->n is 0 when there
 * is none). etcd answers from its index and one read. 0, or a negative code with e filled. */
static int first_key_in(wc_upstream *u, const char *endpoint, int64_t at, const char *from,
                        size_t from_len, const char *to, size_t to_len, wc_range_resp *r, up_err *e)
{
    char *k = wc_b64_encode(from, from_len, WC_B64_STD), *t = wc_b64_encode(to, to_len, WC_B64_STD);
    char *body = k && t ? bodyf("{\"key\":\"%s\",\"range_end\":\"%s\",\"keys_only\":true,"
                                "\"limit\":\"1\",\"revision\":\"%" PRId64 "\"}",
                                k, t, at)
                        : NULL;
    free(k);
    free(t);
    return range_post(u, "list", endpoint, body, 30000, r, e);
}

#define LAST_PROBES 64 /* one-key ranges that last_by_probes may ask; past them, the sort */

/*
 * What the cuts need of the range's last key at `at`, found with one-key ranges instead of the
 * sort etcd does for it (it reads every key of the range): its bytes up to two past where it
 * leaves f, a key of the range. Byte by byte after the prefix, the greatest next byte with a
 * key after it: first whether any key goes past f's byte there (one range), then a bisection
 * of the bytes above, each answer's own byte taken as the new floor. 0 with the bytes in
 * *out (malloc'd), WC_EAGAIN when it takes more than LAST_PROBES ranges, or another negative
 * code with e filled.
 */
static int last_by_probes(wc_upstream *u, const char *endpoint, int64_t at, const wc_kv_spec *f,
                          char **out, size_t *out_len, up_err *e)
{
    size_t cap = u->prefix_len + f->key_len + 3, n = u->prefix_len;
    char *cur = malloc(cap), *end = malloc(cap + 1);
    int rc = cur && end ? 0 : fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
    if (rc == 0)
        memcpy(cur, u->prefix, n);
    int probes = 0;
    while (rc == 0) {
        size_t d = 0;
        while (d < n && d < f->key_len && cur[d] == f->key[d])
            d++;
        if (d < n && n >= d + 2)
            break; /* it left f, and two bytes after: enough for the cuts */
        if (n + 1 >= cap) {
            rc = WC_EAGAIN;
            break;
        }
        size_t elen = wc_etcd_range_end(cur, n, end);
        /* a byte a key is known to have after cur (f's, while cur is f's beginning), or none */
        int lo = d == n && f->key_len > n ? (unsigned char)f->key[n] : -1, hi = 255;
        bool first = lo >= 0;
        while (rc == 0 && lo < hi) {
            int mid = first ? lo + 1 : (lo + hi + 1) / 2;
            first = false;
            if (++probes > LAST_PROBES) {
                rc = WC_EAGAIN;
                break;
            }
            cur[n] = (char)mid;
            wc_range_resp r;
            rc = first_key_in(u, endpoint, at, cur, n + 1, end, elen, &r, e);
            if (rc)
                break;
            if (r.n > 0 && r.kvs[0].spec.key_len > n)
                lo = (unsigned char)r.kvs[0].spec.key[n];
            else
                hi = mid - 1;
            wc_range_resp_free(&r);
        }
        if (rc || lo < 0)
            break; /* no key goes past cur: the last key is cur, or begins it */
        cur[n++] = (char)lo;
    }
    free(end);
    if (rc) {
        free(cur);
        return rc;
    }
    *out = cur;
    *out_len = n;
    return 0;
}

/* A request for the last key of the range at `at` (0: now), without its value: etcd reads
 * and sorts every key of the range for it. NULL without memory. */
static char *last_body(const wc_upstream *u, int64_t at)
{
    return bodyf("{\"key\":\"%s\",\"range_end\":\"%s\",\"keys_only\":true,"
                 "\"limit\":\"1\",\"revision\":\"%" PRId64 "\",\"sort_order\":"
                 "\"DESCEND\",\"sort_target\":\"KEY\"}",
                 u->key_b64, u->end_b64, at);
}

/* The count a raw range page reports ("count" is written after the keys, whose base64 has no
 * quotes); 0 when it says none. */
static int64_t raw_count(const char *raw, size_t len)
{
    static const char C[] = "\"count\":\"";
    const char *p = len > 64 ? raw + len - 64 : raw;
    const char *c = memmem(p, len - (size_t)(p - raw), C, sizeof(C) - 1);
    return c ? strtoll(c + sizeof(C) - 1, NULL, 10) : 0;
}

/* The two bytes of key k after its first d, as a number (a missing byte counts as 0). */
static uint32_t two_bytes(const wc_kv_spec *k, size_t d)
{
    uint32_t hi = d < k->key_len ? (unsigned char)k->key[d] : 0;
    uint32_t lo = d + 1 < k->key_len ? (unsigned char)k->key[d + 1] : 0;
    return hi << 8 | lo;
}

typedef struct seg_page {
    struct seg_page *next;
    wc_range_resp page;
} seg_page;

/* One key range [key_b64, end_b64) of a parallel list. */
typedef struct segment {
    char *key_b64;
    const char *end_b64;   /* the next segment's key_b64, or the upstream's end */
    seg_page *head, *tail; /* parsed pages waiting for the sink, in key order */
    bool done;             /* no page follows those queued */
    int rc;                /* with err: why the segment ended early */
    up_err err;
} segment;

typedef struct plist {
    wc_upstream *u;
    const char *endpoint;
    int64_t at;
    segment seg[LIST_SEGMENTS];
    size_t n_seg;
    pthread_mutex_t mu; /* guards next, abort and every segment's queue, done, rc and err */
    pthread_cond_t cv;  /* a page was queued or a segment is done */
    size_t next;        /* the segment the next free worker takes */
    bool abort;         /* the list failed: workers stop */
} plist;

/* Queues a worker's page for the sink; false (the page is the caller's still) once the list
 * failed. */
static bool seg_push(plist *pl, segment *s, seg_page *sp)
{
    pthread_mutex_lock(&pl->mu);
    bool ok = !pl->abort;
    if (ok) {
        if (s->tail)
            s->tail->next = sp;
        else
            s->head = sp;
        s->tail = sp;
        pthread_cond_broadcast(&pl->cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return ok;
}

/* Lists segment s page by page. 0, or a negative code with e filled. */
static int seg_list(plist *pl, segment *s, up_err *e)
{
    wc_upstream *u = pl->u;
    char *key = strdup(s->key_b64);
    int rc = key ? 0 : fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
    while (rc == 0) {
        char *body =
            injected(u, WC_UPSTEP_LIST_REQUEST) ? NULL : range_body_to(u, key, s->end_b64, pl->at);
        if (!body) {
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a range request");
            break;
        }
        wc_buf resp;
        rc = post(u, "list", pl->endpoint, "/v3/kv/range", body, 30000, &resp, e);
        free(body);
        if (rc)
            break;
        seg_page *sp = calloc(1, sizeof(*sp));
        rc = sp ? wc_etcd_parse_range(resp.p, resp.len, &sp->page) : WC_ENOMEM;
        free(resp.p);
        if (rc) {
            free(sp);
            fail(e, rc, range_cause(rc), "list: %s: range: %s", pl->endpoint,
                 rc == WC_EEXPIRED ? "revision compacted while listing" : wc_strerror(rc));
            break;
        }
        saw_header(u, &sp->page.header);
        const wc_range_resp *p = &sp->page;
        bool more = p->more && p->n > 0;
        char *next =
            more ? next_start(p->kvs[p->n - 1].spec.key, p->kvs[p->n - 1].spec.key_len) : NULL;
        if (!seg_push(pl, s, sp)) {
            wc_range_resp_free(&sp->page);
            free(sp);
            free(next);
            break;
        }
        free(key);
        key = next;
        if (!more)
            break;
        if (!key)
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
    }
    free(key);
    return rc;
}

/* A worker: takes the next segment not yet taken, in key order, until none is left. */
static void *plist_worker(void *arg)
{
    plist *pl = arg;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        size_t i = pl->abort ? pl->n_seg : pl->next++;
        pthread_mutex_unlock(&pl->mu);
        if (i >= pl->n_seg)
            return NULL;
        segment *s = &pl->seg[i];
        up_err e = {0};
        int rc = seg_list(pl, s, &e);
        pthread_mutex_lock(&pl->mu);
        s->done = true;
        s->rc = rc;
        s->err = e;
        pthread_cond_broadcast(&pl->cv);
        pthread_mutex_unlock(&pl->mu);
    }
}

/* Hands the segments' pages to the sink in key order as they come. 0, or a negative code with
 * e filled (a segment's failure, or the sink's). */
static int plist_hand(plist *pl, bool *begun, up_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < pl->n_seg && rc == 0; i++) {
        segment *s = &pl->seg[i];
        for (;;) {
            pthread_mutex_lock(&pl->mu);
            while (!s->head && !s->done)
                pthread_cond_wait(&pl->cv, &pl->mu);
            seg_page *sp = s->head;
            if (sp) {
                s->head = sp->next;
                if (!s->head)
                    s->tail = NULL;
            } else if (s->rc) {
                rc = s->rc;
                *e = s->err;
            }
            pthread_mutex_unlock(&pl->mu);
            if (!sp)
                break;
            rc = hand_page(pl->u, &sp->page, begun);
            free(sp);
            if (rc) {
                fail(e, rc, WC_UPC_LOCAL, "list: the cache refused a page: %s", wc_strerror(rc));
                break;
            }
        }
    }
    return rc;
}

/* Cuts the range from start_b64 (just after key f) to its end, whose last key is l (f < l),
 * into pl->seg (at most LIST_SEGMENTS; one when it cannot be cut). 0 or WC_ENOMEM. */
static int plist_cut(plist *pl, const char *start_b64, const wc_kv_spec *f, const wc_kv_spec *l)
{
    wc_upstream *u = pl->u;
    size_t d = 0;
    while (d < f->key_len && d < l->key_len && f->key[d] == l->key[d])
        d++;
    uint32_t lo = two_bytes(f, d), hi = two_bytes(l, d);
    pl->seg[0].key_b64 = strdup(start_b64);
    if (!pl->seg[0].key_b64)
        return WC_ENOMEM;
    pl->n_seg = 1;
    char *cut = malloc(d + 2);
    if (!cut)
        return WC_ENOMEM;
    memcpy(cut, f->key, d);
    uint32_t prev = lo;
    for (uint32_t i = 1; i < LIST_SEGMENTS && hi > lo; i++) {
        /* lo < c < hi: the cut is above f and below l, and starts with the prefix */
        uint32_t c = lo + (uint32_t)((uint64_t)(hi - lo) * i / LIST_SEGMENTS);
        if (c <= prev)
            continue;
        prev = c;
        cut[d] = (char)(c >> 8);
        cut[d + 1] = (char)(c & 0xff);
        char *b64 = wc_b64_encode(cut, d + 2, WC_B64_STD);
        if (!b64) {
            free(cut);
            return WC_ENOMEM;
        }
        pl->seg[pl->n_seg - 1].end_b64 = b64;
        pl->seg[pl->n_seg++].key_b64 = b64;
    }
    free(cut);
    pl->seg[pl->n_seg - 1].end_b64 = u->end_b64;
    return 0;
}

/* Frees what the segments hold (the pages no sink took included). */
static void plist_free(plist *pl)
{
    for (size_t i = 0; i < pl->n_seg; i++) {
        segment *s = &pl->seg[i];
        while (s->head) {
            seg_page *sp = s->head;
            s->head = sp->next;
            wc_range_resp_free(&sp->page);
            free(sp);
        }
        free(s->key_b64); /* each cut is one segment's key and the one before's end */
    }
}

/*
 * Lists the range pinned to *at (0: etcd's revision now, then set), from its first page on: a
 * range of more than LIST_PARALLEL_MIN pages goes on in segments at once (see above), handed to
 * the sink page by page in key order (*begun says list_begin was called): 0 with *now (etcd's
 * revision when it was listed). For a smaller range nothing is handed over: WC_EAGAIN with the
 * first page's raw answer in *first_raw (the caller's), from which the caller lists on one page
 * after another, *at as it was, so that a small range costs etcd no more requests than before.
 * Another negative code with e filled.
 */
static int list_parallel(wc_upstream *u, const char *endpoint, int64_t *at, int64_t *now,
                         int64_t rev, bool reset, bool *begun, wc_buf *first_raw, up_err *e)
{
    memset(first_raw, 0, sizeof(*first_raw));
    char *body = injected(u, WC_UPSTEP_LIST_REQUEST) ? NULL : range_body(u, u->key_b64, *at);
    if (!body)
        return fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a range request");
    wc_buf resp;
    int rc = post(u, "list", endpoint, "/v3/kv/range", body, 30000, &resp, e);
    free(body);
    if (rc)
        return rc;
    if (!memmem(resp.p, resp.len, "\"more\":true", 11) ||
        raw_count(resp.p, resp.len) <= (int64_t)(LIST_PARALLEL_MIN * u->page)) {
        *first_raw = resp;
        return WC_EAGAIN;
    }
    wc_range_resp first = {0}, last = {0};
    rc = wc_etcd_parse_range(resp.p, resp.len, &first);
    free(resp.p);
    if (rc)
        return fail(e, rc, range_cause(rc), "list: %s: range: %s", endpoint,
                    rc == WC_EEXPIRED ? "revision compacted while listing" : wc_strerror(rc));
    saw_header(u, &first.header);
    rc = check_list_header(u, endpoint, &first.header, reset, rev, e);
    if (rc == 0 && first.n == 0)
        rc = fail(e, WC_EPROTO, WC_UPC_PROTOCOL, "list: %s: an empty page with more to come",
                  endpoint);
    int64_t pinned = *at ? *at : first.header.revision;
    /* The last key places the cuts: found with one-key ranges, or, when that takes too many,
     * asked for (etcd sorts the whole range for it). */
    char *lk = NULL;
    size_t lk_len = 0;
    int lrc =
        rc == 0 ? last_by_probes(u, endpoint, pinned, &first.kvs[first.n - 1].spec, &lk, &lk_len, e)
                : rc;
    if (rc == 0 && lrc == 0) {
        last.kvs = calloc(1, sizeof(*last.kvs));
        if (last.kvs) {
            last.kvs[0].key_buf = lk;
            last.kvs[0].spec = (wc_kv_spec){.key = lk, .key_len = lk_len};
            last.n = 1;
            lk = NULL;
        } else {
            lrc = WC_ENOMEM;
        }
    }
    free(lk);
    if (rc == 0 && lrc != 0)
        rc = range_post(u, "list", endpoint, last_body(u, pinned), 30000, &last, e);
    if (rc == 0 && last.n == 0)
        rc = fail(e, WC_EPROTO, WC_UPC_PROTOCOL, "list: %s: no last key in a range of %" PRId64,
                  endpoint, first.count);
    plist pl = {.u = u, .endpoint = endpoint, .at = pinned};
    if (rc == 0) {
        const wc_kv_spec *f = &first.kvs[first.n - 1].spec;
        char *start = next_start(f->key, f->key_len);
        if (!start || plist_cut(&pl, start, f, &last.kvs[0].spec))
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for the range's cuts");
        free(start);
    }
    int64_t count = first.count, head = first.header.revision;
    if (rc == 0) {
        rc = u->sink.list_begin ? u->sink.list_begin(u->sink.arg, count) : 0;
        *begun = rc == 0;
        if (rc == 0)
            rc = hand_page(u, &first, begun);
        first.n = 0; /* hand_page freed its keys */
        if (rc)
            fail(e, rc, WC_UPC_LOCAL, "list: the cache refused a page: %s", wc_strerror(rc));
    }
    pthread_t workers[LIST_WORKERS];
    size_t n_workers = 0;
    if (rc == 0) {
        pthread_mutex_init(&pl.mu, NULL);
        pthread_cond_init(&pl.cv, NULL);
        while (n_workers < LIST_WORKERS && n_workers < pl.n_seg &&
               pthread_create(&workers[n_workers], NULL, plist_worker, &pl) == 0)
            n_workers++;
        if (n_workers == 0)
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: no thread to list with");
        if (rc == 0)
            rc = plist_hand(&pl, begun, e);
        pthread_mutex_lock(&pl.mu);
        pl.abort = true;
        pthread_mutex_unlock(&pl.mu);
        for (size_t i = 0; i < n_workers; i++)
            pthread_join(workers[i], NULL);
        pthread_mutex_destroy(&pl.mu);
        pthread_cond_destroy(&pl.cv);
    }
    plist_free(&pl);
    if (rc == 0) {
        *at = pinned;
        *now = head;
    }
    wc_range_resp_free(&first);
    wc_range_resp_free(&last);
    return rc;
}

/* Lists the range in pages at etcd's current revision and hands it to the sink, with, for a
 * `refill`, where the history that the watch then takes back starts (history_start). 0, *rev
 * and *from (*rev when there is no history to take back), or a negative code with e filled.
 * While a page is parsed, the next one is already asked for (see guess_next_body), so etcd's
 * work on it and ours on this one overlap. */
static int list_at_head(wc_upstream *u, const char *endpoint, int64_t *rev, bool reset, bool refill,
                        int64_t *from, up_err *e);

static int list(wc_upstream *u, const char *endpoint, int64_t *rev, bool reset, bool refill,
                int64_t *from, up_err *e)
{
    recent_revs recent = {.k = (size_t)u->refill};
    if (refill) {
        recent.v = malloc((recent.k ? recent.k : 1) * sizeof(*recent.v));
        u->recent = &recent;
    }
    int rc = list_at_head(u, endpoint, rev, reset, refill, from, e);
    u->recent = NULL;
    free(recent.v);
    return rc;
}

/* list(), with u->recent set for a refill. */
static int list_at_head(wc_upstream *u, const char *endpoint, int64_t *rev, bool reset, bool refill,
                        int64_t *from, up_err *e)
{
    wc_wire_kv *all = NULL;
    size_t n = 0, cap = 0;
    int64_t at = 0, now = 0;
    /* A sink that takes pages gets each as it arrives (its states are made while etcd sends
     * the next); only the last key of the page before is kept here. */
    bool paged = u->sink.list_page != NULL, begun = false;
    /* A big range goes to a sink that takes pages in segments at once; a small one, or one
     * for a sink that wants the whole snapshot, one page after another. */
    wc_buf first_raw = {0}; /* a small range's first page, which the loop below starts with */
    int rc = paged ? list_parallel(u, endpoint, &at, &now, *rev, reset, &begun, &first_raw, e)
                   : WC_EAGAIN;
    bool serial = rc == WC_EAGAIN;
    if (serial)
        rc = 0;
    char *key_b64 = NULL;
    if (rc == 0 && serial) {
        key_b64 = strdup(u->key_b64);
        if (!key_b64)
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
    }
    prefetch pf = {.u = u, .endpoint = endpoint};
    while (rc == 0 && serial) {
        char *body = injected(u, WC_UPSTEP_LIST_REQUEST) ? NULL : range_body(u, key_b64, at);
        if (!body) {
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a range request");
            break;
        }
        wc_buf resp;
        if (first_raw.p) {
            resp = first_raw;
            first_raw = (wc_buf){0};
        } else if (pf.started && strcmp(pf.body, body) == 0) {
            pthread_join(pf.thread, NULL);
            pf.started = false;
            free(pf.body);
            rc = pf.rc;
            resp = pf.resp;
            if (rc)
                *e = pf.err;
        } else {
            prefetch_end(&pf);
            rc = post(u, "list", endpoint, "/v3/kv/range", body, 30000, &resp, e);
        }
        free(body);
        if (rc)
            break;
        pf.body = guess_next_body(u, resp.p, resp.len, at);
        if (pf.body) {
            if (pthread_create(&pf.thread, NULL, prefetch_main, &pf) == 0)
                pf.started = true;
            else {
                free(pf.body);
                pf.body = NULL;
            }
        }
        wc_range_resp page;
        rc = wc_etcd_parse_range(resp.p, resp.len, &page);
        free(resp.p);
        if (rc) {
            fail(e, rc, range_cause(rc), "list: %s: range: %s", endpoint,
                 rc == WC_EEXPIRED ? "revision compacted while listing" : wc_strerror(rc));
            break;
        }
        saw_header(u, &page.header);
        if (now == 0) {
            now = page.header.revision;
            if (at == 0)
                at = now;
            rc = check_list_header(u, endpoint, &page.header, reset, *rev, e);
            if (rc) {
                wc_range_resp_free(&page);
                break;
            }
        }
        if (paged) {
            bool more = page.more && page.n > 0;
            char *next =
                more ? next_start(page.kvs[page.n - 1].spec.key, page.kvs[page.n - 1].spec.key_len)
                     : NULL;
            rc = hand_page(u, &page, &begun);
            if (rc) {
                free(next);
                fail(e, rc, WC_UPC_LOCAL, "list: the cache refused a page: %s", wc_strerror(rc));
                break;
            }
            if (!more)
                break;
            free(key_b64);
            key_b64 = next;
            if (!key_b64)
                rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
            continue;
        }
        if (n + page.n > cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            while (ncap < n + page.n)
                ncap *= 2;
            wc_wire_kv *more =
                injected(u, WC_UPSTEP_LIST_ALLOC) ? NULL : realloc(all, ncap * sizeof(*all));
            if (!more) {
                rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL,
                          "list: out of memory for the snapshot (%zu keys)", n + page.n);
                wc_range_resp_free(&page);
                break;
            }
            all = more;
            cap = ncap;
        }
        if (page.n)
            memcpy(all + n, page.kvs, page.n * sizeof(*all));
        n += page.n;
        bool more = page.more && page.n > 0;
        /* The kvs moved into `all`; free only the page's array. */
        free(page.kvs);
        if (!more)
            break;
        const wc_kv_spec *last = &all[n - 1].spec;
        free(key_b64);
        key_b64 = next_start(last->key, last->key_len);
        if (!key_b64)
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for a key");
    }
    prefetch_end(&pf);
    free(key_b64);
    free(first_raw.p);
    int64_t start = at;
    if (rc == 0 && refill) {
        for (size_t i = 0; i < n && u->recent; i++)
            recent_add(u->recent, all[i].spec.mod_rev);
        start = history_start(u, endpoint, at, u->recent);
    }
    if (paged) {
        if (rc == 0 && !begun) { /* an empty range: no page was handed over */
            rc = u->sink.list_begin ? u->sink.list_begin(u->sink.arg, 0) : 0;
            begun = rc == 0;
            if (rc)
                fail(e, rc, WC_UPC_LOCAL, "list: the cache refused the list: %s", wc_strerror(rc));
        }
        if (rc == 0) {
            rc = u->sink.list_end(u->sink.arg, at, start, reset);
            if (rc)
                fail(e, rc, WC_UPC_LOCAL, "list: the cache refused the list at %" PRId64 ": %s", at,
                     wc_strerror(rc));
        } else if (begun && u->sink.list_abort) {
            u->sink.list_abort(u->sink.arg);
        }
    } else if (rc == 0) {
        wc_kv_spec *specs =
            injected(u, WC_UPSTEP_LIST_ALLOC) ? NULL : malloc((n ? n : 1) * sizeof(*specs));
        if (!specs) {
            rc = fail(e, WC_ENOMEM, WC_UPC_LOCAL, "list: out of memory for the snapshot (%zu keys)",
                      n);
        } else {
            for (size_t i = 0; i < n; i++)
                specs[i] = all[i].spec;
            rc = u->sink.replace ? u->sink.replace(u->sink.arg, specs, n, at, start, reset) : 0;
            if (rc)
                fail(e, rc, WC_UPC_LOCAL, "list: the cache refused the list at %" PRId64 ": %s", at,
                     wc_strerror(rc));
            free(specs);
        }
    }
    for (size_t i = 0; i < n; i++)
        wc_wire_kv_free(&all[i]);
    free(all);
    if (rc == 0) {
        *rev = at;
        *from = start;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The watch
 * ------------------------------------------------------------------------------------- */

/* How a watch ended. Zero is a failure, so a path that forgets to say is retried: only an
 * explicit END_STOPPED, set when the upstream is asked to stop, ends the thread. */
typedef enum watch_end {
    END_BROKEN = 0, /* a failure here or upstream: back off and try the next endpoint */
    END_STOPPED,    /* asked to stop */
    END_COMPACTED,  /* the revision needed is gone: relist */
    END_WENT_BACK,  /* another cluster answers: relist and drop the history */
    END_EARLY,      /* a progress notification came ahead of changes at or below it: the
                       receiver skipped them as old, so relist and drop the history */
} watch_end;

/* A start's history still to take back: the changes of (from, to], `to` being the list's
 * revision. None when from == to. */
typedef struct history {
    int64_t from, to;
} history;

/*
 * One watch of a start's history, on the stream beside the watch that stays (REFILL_WATCHES):
 * etcd sends it every change after `from`, with prev_kv, in order. Its window (from, cut] holds
 * the changes of those revisions, in order, as far as `held`: every watch that starts at or
 * before the window fills it up to what it has proven of its own stream (take_history), so a
 * window whose revisions have no change of the range is filled by an earlier watch's proof.
 */
typedef struct hpart {
    int64_t from, cut;
    int64_t id; /* etcd's watch id, once created */
    bool created;
    bool cancelled; /* its window is full (or the history was given up): what it still sends is
                       dropped */
    int64_t held;   /* the window holds every change in (from, held] (held <= cut) */
    const wc_wire_event **ev; /* into responses in watch_ctx.kept */
    size_t n, cap;
} hpart;

typedef struct watch_ctx {
    wc_upstream *u;
    CURL *h;
    int64_t *rev;
    history *hist;               /* from == to once handed over or given up */
    hpart parts[REFILL_WATCHES]; /* the history's watches, nparts of them */
    size_t nparts, ncreated;     /* ncreated counts the watch that stays too */
    wc_watch_resp *kept;         /* responses whose changes a window holds */
    size_t nkept, capkept;
    bool live; /* reported live: created and caught up with etcd */
    bool progress_queued;
    int64_t claimed; /* the newest revision a progress notification handed over */
    /* etcd's revision when the watch was created behind it (0: it was not): until the changes
     * up to it are in, or etcd is quiet for REFILL_QUIET_MS, no progress is taken (etcd before
     * 3.4.25 and 3.5.8 answers a watch still catching up with its head revision, ahead of the
     * changes it has yet to send). */
    int64_t catchup;
    int64_t last_evs;   /* when the watch that stays last had events (or was created), ms */
    int64_t last_hist;  /* when a history response last came (or the history was asked), ms */
    int64_t pause;      /* the longest time between two history responses, ms */
    bool got_hist;      /* a history response has come */
    int64_t checked_at; /* when a check last found history still to come, ms (0: never) */
    int checks;         /* such checks since the last history response */
    bool recv_held;     /* the test seam holds the stream (wc_upstream_hold_watch) */
    wc_linebuf lines;
    char *send; /* request lines waiting to go up the body; send_cap bytes */
    size_t send_cap, send_len, send_off;
    bool paused;
    bool created;
    bool failed;
    bool bearer; /* the request carried an Authorization header */
    watch_end end;
    up_err err;
    bool got; /* receive() had bytes since the loop last looked */
    int64_t last_msg;
} watch_ctx;

/* Ends the watch with the first failure seen; later ones are consequences. */
__attribute__((format(printf, 4, 5))) static void
fail_watch(watch_ctx *w, watch_end end, wc_upstream_cause cause, const char *fmt, ...)
{
    if (w->failed)
        return;
    w->failed = true;
    w->end = end;
    w->err.cause = cause;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err.reason, sizeof(w->err.reason), fmt, ap);
    va_end(ap);
}

static size_t send_body(char *dst, size_t size, size_t nmemb, void *arg)
{
    watch_ctx *w = arg;
    size_t room = size * nmemb;
    if (w->send_off == w->send_len) {
        w->send_off = w->send_len = 0;
        w->progress_queued = false;
        w->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = w->send_len - w->send_off;
    if (n > room)
        n = room;
    memcpy(dst, w->send + w->send_off, n);
    w->send_off += n;
    return n;
}

/* Queues a line to go up the request body. The buffer has room for every cancel_request of the
 * history's watches and one progress_request: a second one while one waits adds nothing. */
static void queue_request(watch_ctx *w, CURL *h, const char *line)
{
    size_t n = strlen(line);
    bool progress = strstr(line, "progress_request") != NULL;
    if (w->send_len + n > w->send_cap || (progress && w->progress_queued))
        return;
    w->progress_queued = w->progress_queued || progress;
    memcpy(w->send + w->send_len, line, n);
    w->send_len += n;
    if (w->paused) {
        w->paused = false;
        curl_easy_pause(h, CURLPAUSE_CONT);
    }
}

/* Every change up to rev has been handed over: tell the sink. */
static void claim(watch_ctx *w, int64_t rev)
{
    wc_upstream *u = w->u;
    if (rev <= *w->rev)
        return;
    *w->rev = rev;
    w->claimed = rev;
    if (u->sink.progress)
        u->sink.progress(u->sink.arg, rev);
}

/* The number of revisions in changes ev[0..n), which are in revision order. */
static size_t count_revs(const wc_wire_event *ev, size_t n)
{
    size_t revs = n ? 1 : 0;
    for (size_t i = 1; i < n; i++)
        revs += ev[i].kv.spec.mod_rev != ev[i - 1].kv.spec.mod_rev;
    return revs;
}

/* Hands changes ev[0..n) (n >= 1: whole revisions after *w->rev, in order) to the sink. False
 * when the watch failed. */
static bool hand(watch_ctx *w, const wc_wire_event *ev, size_t n)
{
    wc_upstream *u = w->u;
    wc_change *ch = injected(u, WC_UPSTEP_WATCH_ALLOC) ? NULL : malloc(n * sizeof(*ch));
    if (!ch) {
        fail_watch(w, END_BROKEN, WC_UPC_LOCAL,
                   "watch: out of memory for a watch response (%zu changes)", n);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        ch[i] = (wc_change){.kv = ev[i].kv.spec, .deleted = ev[i].deleted};
    int rc = u->sink.apply ? u->sink.apply(u->sink.arg, ch, n) : 0;
    free(ch);
    if (rc != 0 && rc != WC_ESTALE) {
        fail_watch(w, END_COMPACTED, WC_UPC_LOCAL, "the cache refused a change (%s): relisting",
                   wc_strerror(rc));
        return false;
    }
    int64_t last = ev[n - 1].kv.spec.mod_rev;
    if (last > *w->rev)
        *w->rev = last;
    return true;
}

/* The history's watch etcd's watch `id` is, or NULL: the watch that stays (etcd's watch 0,
 * created first), or a progress request's answer (-1). */
static hpart *part_of(watch_ctx *w, int64_t id)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].created && w->parts[i].id == id)
            return &w->parts[i];
    return NULL;
}

/*
 * True when `line` is for a history watch that was cancelled: what it still sends (the rest of
 * a pass already under way) is dropped without being parsed. Only a watch_id found in the line
 * counts (etcd's JSON has no other "watch_id" field, and its keys and values are base64), so a
 * line for the watch that stays, etcd's watch 0, whose id the gateway leaves out, is always
 * parsed.
 */
static bool for_cancelled(watch_ctx *w, const char *line, size_t len)
{
    static const char key[] = "\"watch_id\":\"";
    const char *f = memmem(line, len < 512 ? len : 512, key, sizeof(key) - 1);
    if (!f)
        return false;
    const char *p = f + sizeof(key) - 1, *end = line + len;
    int64_t id = 0;
    while (p < end && *p >= '0' && *p <= '9' && id < INT64_MAX / 10)
        id = id * 10 + (*p++ - '0');
    if (p == f + sizeof(key) - 1 || p >= end || *p != '"')
        return false;
    hpart *q = part_of(w, id);
    return q && q->cancelled;
}

/* A history watch no longer needed: cancelled with etcd, once created, so that etcd stops
 * reading and sending history for it. */
static void cancel_part(watch_ctx *w, hpart *p)
{
    p->cancelled = true;
    if (p->created && w->h) { /* (none once the stream is over) */
        char line[80];
        snprintf(line, sizeof(line), "{\"cancel_request\":{\"watch_id\":\"%" PRId64 "\"}}\n",
                 p->id);
        queue_request(w, w->h, line);
    }
}

static bool history_pending(const watch_ctx *w)
{
    return w->hist->from < w->hist->to;
}

/* The history is handed over (handed) or given up, and its watches cancelled; what it held is
 * freed. A history given up is the sink's to hear of (backfill_abandon, with why). */
static void end_history(watch_ctx *w, bool handed, const char *why)
{
    wc_upstream *u = w->u;
    if (!history_pending(w))
        return;
    for (size_t i = 0; i < w->nparts; i++) {
        hpart *p = &w->parts[i];
        if (!p->cancelled)
            cancel_part(w, p);
        free(p->ev);
        p->ev = NULL;
        p->n = p->cap = 0;
    }
    for (size_t i = 0; i < w->nkept; i++)
        wc_watch_resp_free(&w->kept[i]);
    free(w->kept);
    w->kept = NULL;
    w->nkept = w->capkept = 0;
    w->hist->from = w->hist->to;
    if (!handed) {
        atomic_fetch_add(&u->backfills_lost, 1);
        if (u->sink.backfill_abandon)
            u->sink.backfill_abandon(u->sink.arg, why);
    }
}

/* Every window is full: the history goes to the sink, in revision order. */
static void hand_history(watch_ctx *w)
{
    wc_upstream *u = w->u;
    size_t n = 0;
    for (size_t i = 0; i < w->nparts; i++)
        n += w->parts[i].n;
    wc_change *ch = malloc((n ? n : 1) * sizeof(*ch));
    if (!ch) {
        end_history(w, false, "out of memory for the history's changes");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < w->nparts; i++)
        for (size_t j = 0; j < w->parts[i].n; j++) {
            const wc_wire_event *e = w->parts[i].ev[j];
            ch[k++] = (wc_change){.kv = e->kv.spec,
                                  .deleted = e->deleted,
                                  .prev = e->has_prev ? &e->prev.spec : NULL};
        }
    int64_t from = w->hist->from, to = w->hist->to;
    atomic_fetch_add(&u->backfills, 1);
    if (u->sink.backfill)
        (void)u->sink.backfill(u->sink.arg, from, to, ch, n); /* a refusal ends its waiters */
    free(ch);
    end_history(w, true, NULL);
}

/* Cancels the history's watches whose windows are full, and hands the history over once every
 * window is. */
static void history_progress(watch_ctx *w)
{
    bool full = true;
    for (size_t i = 0; i < w->nparts; i++) {
        hpart *p = &w->parts[i];
        if (p->held >= p->cut && !p->cancelled)
            cancel_part(w, p);
        full = full && p->held >= p->cut;
    }
    if (full)
        hand_history(w);
}

/*
 * A history response from the watch of part j (r has changes). The watch has now sent every
 * change after its start up to s: its last change, or, for a response of fewer than etcd's
 * most revisions a pass (the last of its catch-up pass, or a live one), its header revision.
 * Every window from j's on takes the changes of r past what it holds, up to s (and its cut):
 * a window held (from, held] with held >= what this watch had proven before, since it took
 * this watch's earlier responses too, so r's changes are exactly the ones it lacks. r's
 * ownership moves to w->kept when a window took some of its changes.
 */
static void take_history(watch_ctx *w, size_t j, wc_watch_resp *r)
{
    int64_t now = wc_mono_ms();
    if (now - w->last_hist > w->pause)
        w->pause = now - w->last_hist;
    w->last_hist = now;
    w->got_hist = true;
    w->checks = 0;
    int64_t s = r->events[r->n - 1].kv.spec.mod_rev;
    if (count_revs(r->events, r->n) < ETCD_BATCH_REVS && r->header.revision > s)
        s = r->header.revision;
    bool used = false;
    for (size_t i = j; i < w->nparts; i++) {
        hpart *p = &w->parts[i];
        int64_t lim = s < p->cut ? s : p->cut;
        if (lim <= p->held)
            continue;
        for (size_t k = 0; k < r->n; k++) {
            int64_t rev = r->events[k].kv.spec.mod_rev;
            if (rev <= p->held || rev > lim)
                continue;
            if (p->n == p->cap) {
                size_t cap = p->cap ? p->cap * 2 : 256;
                const wc_wire_event **ev = realloc(p->ev, cap * sizeof(*ev));
                if (!ev) {
                    end_history(w, false, "out of memory for the history's changes");
                    return;
                }
                p->ev = ev;
                p->cap = cap;
            }
            p->ev[p->n++] = &r->events[k];
            used = true;
        }
        p->held = lim;
    }
    if (used) {
        if (w->nkept == w->capkept) {
            size_t cap = w->capkept ? w->capkept * 2 : 16;
            wc_watch_resp *kept = realloc(w->kept, cap * sizeof(*kept));
            if (!kept) {
                /* the windows point into r, which the caller frees */
                end_history(w, false, "out of memory for the history's changes");
                return;
            }
            w->kept = kept;
            w->capkept = cap;
        }
        w->kept[w->nkept++] = *r;
        memset(r, 0, sizeof(*r)); /* kept now: the caller's free is a no-op */
    }
    history_progress(w);
}

/* Reports the watch live once it is created and caught up with etcd: the cache then holds
 * every change up to etcd's revision of a moment ago. The history does not wait for that. */
static void check_live(watch_ctx *w)
{
    if (w->live || w->failed || !w->created || w->catchup)
        return;
    w->live = true;
    char reason[64];
    snprintf(reason, sizeof(reason), "caught up at revision %" PRId64, *w->rev);
    set_state(w->u, WC_UP_LIVE, reason);
}

/* Hands one parsed watch response to the sink, or to the history; may take r's ownership (r is
 * then emptied). */
static void handle(watch_ctx *w, wc_watch_resp *r)
{
    wc_upstream *u = w->u;
    hpart *p = r->kind == WC_WATCH_CREATED ? NULL : part_of(w, r->watch_id);
    if (p && p->cancelled)
        return; /* a history watch no longer needed: its cancellation's answer, or changes */
    switch (r->kind) {
    case WC_WATCH_ERROR:
    case WC_WATCH_CANCELED:
        if (p) {
            /* The history is lost (compacted under it, most likely); the watch that stays
             * goes on: readers from before the list's revision get 410, as without it. */
            end_history(w, false,
                        r->compact_revision > 0 ? "etcd compacted it while it was taken back"
                                                : "etcd cancelled its watch");
            return;
        }
        if (r->compact_revision > 0) {
            fail_watch(w, END_COMPACTED, WC_UPC_COMPACTED, "history compacted (relisting)");
            return;
        }
        if (u->user && auth_refused(r->message))
            drop_token(u, NULL); /* expired or revoked: authenticate again on the next try */
        /* A bearer token sent to an etcd with its auth off: none on the next try. */
        bearer_refused(u, u->endpoints[atomic_load(&u->cur) % u->n_endpoints], w->bearer,
                       r->message);
        fail_watch(w, END_BROKEN, WC_UPC_ETCD, "etcd: %s", r->message);
        return;
    case WC_WATCH_CREATED:
        /* Never backwards: the member must be of the cluster the history came from, and not
         * behind the revision the cache holds. */
        if (u->cluster_id && r->header.cluster_id && r->header.cluster_id != u->cluster_id) {
            fail_watch(w, END_WENT_BACK, WC_UPC_WENT_BACK, "%s", "another cluster answers");
            return;
        }
        if (r->header.revision > 0 && r->header.revision < *w->rev) {
            fail_watch(w, END_BROKEN, WC_UPC_BEHIND, "%s", "member behind the cache's revision");
            return;
        }
        /* etcd answers the create requests in order: the watch that stays went first */
        if (w->ncreated > 0 && w->ncreated <= w->nparts) {
            hpart *c = &w->parts[w->ncreated - 1];
            c->id = r->watch_id;
            c->created = true;
            if (c->cancelled)
                cancel_part(w, c);
        }
        w->ncreated++;
        if (!w->created) {
            w->created = true;
            w->last_evs = w->last_hist = wc_mono_ms();
            if (r->header.revision > *w->rev)
                w->catchup = r->header.revision;
        }
        return;
    case WC_WATCH_PROGRESS:
        if (p || w->catchup)
            return; /* catching up: etcd may answer ahead of the changes it still has to send */
        claim(w, r->header.revision);
        return;
    case WC_WATCH_EVENTS:
        break;
    }
    if (r->n == 0)
        return;
    if (p) {
        take_history(w, (size_t)(p - w->parts), r);
        return;
    }
    w->last_evs = wc_mono_ms();
    const wc_wire_event *ev = r->events;
    size_t n = r->n;
    if (ev[0].kv.spec.mod_rev <= w->claimed) {
        fail_watch(w, END_EARLY, WC_UPC_ETCD,
                   "etcd sent changes at revision %" PRId64 " after a progress notification "
                   "at %" PRId64 " (etcd before 3.4.25 and 3.5.8 may): relisting from scratch",
                   ev[0].kv.spec.mod_rev, w->claimed);
        return;
    }
    bool catching_up = w->catchup != 0;
    if (!hand(w, ev, n))
        return;
    int64_t last = ev[n - 1].kv.spec.mod_rev;
    /* A catch-up response with fewer than etcd's most revisions is the last of its pass: every
     * change up to its header revision has been sent, and the watch has caught up. */
    size_t revs = count_revs(r->events, r->n);
    if (catching_up && r->header.revision > last && revs < ETCD_BATCH_REVS)
        claim(w, r->header.revision);
    if (w->catchup && revs < ETCD_BATCH_REVS)
        w->catchup = 0; /* caught up */
}

/* True while the test seam holds the stream (wc_upstream_hold_watch) and it is created. */
static bool stream_held(watch_ctx *w)
{
    return w->created && atomic_load_explicit(&w->u->hold, memory_order_relaxed);
}

/* Handles the whole lines received, in order; while the stream is held, they wait. */
static void drain(watch_ctx *w)
{
    const char *line;
    size_t len;
    while (!w->failed && !stream_held(w) && wc_linebuf_next(&w->lines, &line, &len)) {
        int rc;
        if (len == 0 || for_cancelled(w, line, len))
            continue;
        wc_watch_resp r;
        rc = wc_etcd_parse_watch(line, len, &r);
        if (rc) {
            fail_watch(w, END_BROKEN, rc == WC_ENOMEM ? WC_UPC_LOCAL : WC_UPC_PROTOCOL,
                       "watch stream: %s%s", wc_strerror(rc),
                       rc == WC_ENOMEM ? " while parsing" : " from etcd");
            break;
        }
        saw_header(w->u, &r.header);
        handle(w, &r);
        wc_watch_resp_free(&r);
        check_live(w);
    }
}

static size_t receive(char *ptr, size_t size, size_t nmemb, void *arg)
{
    watch_ctx *w = arg;
    size_t n = size * nmemb;
    w->got = true;
    w->last_msg = wc_mono_ms();
    atomic_store(&w->u->last_msg, w->last_msg);
    int rc = wc_linebuf_feed(&w->lines, ptr, n);
    if (rc) {
        fail_watch(w, END_BROKEN, rc == WC_ENOMEM ? WC_UPC_LOCAL : WC_UPC_PROTOCOL,
                   "watch stream: %s", wc_strerror(rc));
        return 0;
    }
    drain(w);
    return w->failed ? 0 : n;
}

/*
 * True when etcd closed the watch's connection and every byte it sent has been read. libcurl
 * does not end a transfer whose request body is still open (the upload is paused between
 * progress requests), so it would not report this itself: the socket would sit in CLOSE-WAIT
 * until the next progress request failed to send.
 */
static bool peer_closed(curl_socket_t fd)
{
    if (fd == CURL_SOCKET_BAD)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Remembers the watch's socket (libcurl calls this once it is made). */
static int note_socket(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    if (purpose == CURLSOCKTYPE_IPCXN)
        *(curl_socket_t *)arg = fd;
    return CURL_SOCKOPT_OK;
}

/* How a check of a quiet history (check_history) came out. */
typedef enum check_result {
    CHECK_FAILED = 0, /* a request failed: e says why */
    CHECK_WAIT,       /* history is still to come */
    CHECK_END,        /* nothing under the prefix differs at the list's revision from P */
} check_result;

/* The number of keys in the range at revision `at` (0: now), with the answer's header in *hdr.
 * 0, or a negative code with e filled. */
static int range_count(wc_upstream *u, const char *endpoint, int64_t at, int64_t *count,
                       wc_wire_header *hdr, up_err *e)
{
    char atbuf[REV_MEMBER];
    rev_member(atbuf, at);
    wc_range_resp r;
    int rc = range_post(u, "refill check", endpoint,
                        bodyf("{\"key\":\"%s\",\"range_end\":\"%s\",\"count_only\":true%s}",
                              u->key_b64, u->end_b64, atbuf),
                        10000, &r, e);
    if (rc)
        return rc;
    *count = r.count;
    *hdr = r.header;
    wc_range_resp_free(&r);
    return 0;
}

/*
 * Checks a history that went quiet short of full (see REFILL_QUIET_MS) against etcd. The
 * windows hold every change up to P, the first one not full's `held`. While a later window
 * holds changes, those are changes after P: history is still to come. Otherwise, at H, the
 * list's revision, the range holds as many keys as at P (two counts, which etcd answers from
 * its index) and none changed after P (one key at most is sent, although etcd reads the range
 * to filter it: a count_only answer counts before min_mod_revision filters): then every key at
 * H was there at P with the same value, and P's keys are H's, so nothing the list shows
 * changed in (P, H]: the windows are full.
 */
static check_result check_history(watch_ctx *w, const char *endpoint, up_err *e)
{
    wc_upstream *u = w->u;
    size_t i = 0;
    while (i < w->nparts && w->parts[i].held >= w->parts[i].cut)
        i++;
    if (i == w->nparts)
        return CHECK_END;
    int64_t p = w->parts[i].held, h = w->hist->to, at_h = 0, at_p = 0;
    for (size_t k = i + 1; k < w->nparts; k++)
        if (w->parts[k].n > 0)
            return CHECK_WAIT;
    wc_wire_header hdr;
    if (range_count(u, endpoint, h, &at_h, &hdr, e) != 0 ||
        range_count(u, endpoint, p, &at_p, &hdr, e) != 0)
        return CHECK_FAILED;
    if (at_h != at_p)
        return CHECK_WAIT;
    wc_range_resp r;
    int rc = range_post(u, "refill check", endpoint,
                        bodyf("{\"key\":\"%s\",\"range_end\":\"%s\",\"keys_only\":true,"
                              "\"limit\":\"1\",\"min_mod_revision\":\"%" PRId64 "\","
                              "\"revision\":\"%" PRId64 "\"}",
                              u->key_b64, u->end_b64, p + 1, h),
                        30000, &r, e);
    if (rc)
        return CHECK_FAILED;
    bool changed = r.n > 0;
    wc_range_resp_free(&r);
    return changed ? CHECK_WAIT : CHECK_END;
}

/* A history pending and quiet: checked (check_history) on each quiet spell, REFILL_CHECKS times
 * in a row at most, and given up when a check fails, too many found it still to come, or none
 * of it came for STALL_MS. */
static void watch_history(watch_ctx *w, const char *endpoint, int64_t now)
{
    wc_upstream *u = w->u;
    if (!history_pending(w) || !w->created)
        return;
    /* etcd's first pass reads the window and may take over a second on a busy machine; later
     * ones come at least as often as the slowest pause so far. */
    int64_t q = u->refill_quiet;
    int64_t quiet = !w->got_hist ? 3 * q : q > 2 * w->pause ? q : 2 * w->pause;
    /* Quiet since the last history response or check. A response on its way (etcd writes a
     * pass of large values as one long line; bytes of a line not yet whole) is not a quiet
     * stream; the answers to progress requests, which the watch that stays asks for, are not
     * history. */
    int64_t since = w->last_hist > w->checked_at ? w->last_hist : w->checked_at;
    bool midline = w->lines.tail > 0;
    if (midline && w->last_msg > since)
        since = w->last_msg;
    char why[300];
    if (now - (midline && w->last_msg > w->last_hist ? w->last_msg : w->last_hist) >= STALL_MS) {
        snprintf(why, sizeof(why), "etcd sent none of it for %" PRId64 " ms", now - w->last_hist);
        end_history(w, false, why);
        return;
    }
    if (now - since < quiet)
        return;
    if (w->checks >= REFILL_CHECKS) {
        end_history(w, false, "etcd still had some of it to send after checks");
        return;
    }
    up_err ce = {.reason = ""};
    check_result cr = check_history(w, endpoint, &ce);
    w->checked_at = wc_mono_ms();
    w->checks++;
    if (cr == CHECK_WAIT) {
        atomic_fetch_add(&u->refill_waits, 1);
    } else if (cr == CHECK_END) {
        atomic_fetch_add(&u->refill_ends, 1);
        for (size_t i = 0; i < w->nparts; i++)
            w->parts[i].held = w->parts[i].cut;
        history_progress(w);
    } else {
        snprintf(why, sizeof(why), "a check of it failed: %s", ce.reason);
        end_history(w, false, why);
    }
}

/* Watches from *rev + 1 until the stream breaks or the upstream stops; e is filled unless it
 * stopped. A pending history (see REFILL_WATCHES) is taken back on the same stream, and handed
 * over or given up before this returns. */
static watch_end watch(wc_upstream *u, const char *endpoint, int64_t *rev, history *hist, up_err *e)
{
    watch_ctx w;
    memset(&w, 0, sizeof(w));
    w.u = u;
    w.rev = rev;
    w.hist = hist;
    wc_linebuf_init(&w.lines, MAX_LINE);
    CURL *h = NULL;
    struct curl_slist *hdr = NULL;
    bool added = false;
    /* A history wider than REFILL_SPAN comes through several watches at once (see
     * REFILL_WATCHES), each with its window of spans of etcd's most revisions a pass, so that
     * a watch's first pass is its window when every revision is under the prefix. */
    int64_t from = hist->from, span = u->refill_span, width = hist->to - from;
    size_t k = 0;
    if (history_pending(&w)) {
        if ((width + span - 1) / span > REFILL_WATCHES)
            span = (width + REFILL_WATCHES - 1) / REFILL_WATCHES;
        k = (size_t)((width + span - 1) / span); /* no window starts at or past the end */
    }
    w.nparts = k;
    for (size_t i = 0; i < k; i++) {
        hpart *p = &w.parts[i];
        p->from = p->held = from + span * (int64_t)i;
        p->cut = i + 1 < k ? p->from + span : hist->to;
    }
    /* The create requests go first, the watch that stays first (etcd's watch 0), without
     * prev_kv (the cacher keeps each key's previous state: asking would make etcd read the
     * previous revision of every key it sends, and send it too); the history's with it. The
     * room after them holds their cancellations and a progress request. */
    size_t line_max = 160 + strlen(u->key_b64) + strlen(u->end_b64);
    w.send_cap = (k + 1) * (line_max + 64) + 64;
    w.send = injected(u, WC_UPSTEP_WATCH_REQUEST) ? NULL : malloc(w.send_cap);
    if (!w.send) {
        fail_watch(&w, END_BROKEN, WC_UPC_LOCAL, "watch: out of memory for the create_request");
        goto out;
    }
    w.send_len = (size_t)snprintf(w.send, w.send_cap,
                                  "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                                  "\"start_revision\":\"%" PRId64 "\",\"progress_notify\":true}}\n",
                                  u->key_b64, u->end_b64, *rev + 1);
    for (size_t i = 0; i < k; i++)
        w.send_len += (size_t)snprintf(w.send + w.send_len, w.send_cap - w.send_len,
                                       "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                                       "\"start_revision\":\"%" PRId64 "\",\"prev_kv\":true}}\n",
                                       u->key_b64, u->end_b64, w.parts[i].from + 1);
    char url[1024];
    snprintf(url, sizeof(url), "%s/v3/watch", endpoint);
    char *token = NULL;
    int rc = ensure_token(u, endpoint, &w.err);
    if (rc == 0)
        rc = token_for(u, "watch", endpoint, &token, &w.err);
    if (rc) {
        /* w.err is filled already: mark the end without a second reason. */
        w.failed = true;
        goto out;
    }
    h = injected(u, WATCH_STEPS.easy_init) ? NULL : curl_easy_init();
    w.h = h;
    if (!h) {
        free(token);
        fail_watch(&w, END_BROKEN, WC_UPC_LOCAL, "watch: curl_easy_init failed");
        goto out;
    }
    w.bearer = token != NULL;
    rc = prepare(u, &WATCH_STEPS, "watch", h, token, &hdr, &w.err);
    free(token);
    if (rc == 0)
        rc = add_header(u, &WATCH_STEPS, "watch", &hdr, "Transfer-Encoding: chunked", &w.err);
    curl_socket_t sock = CURL_SOCKET_BAD;
    if (rc == 0) {
        opt_err oe = {0};
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_URL, url, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_POST, 1L, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_READFUNCTION, send_body, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_READDATA, &w, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_WRITEFUNCTION, receive, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_WRITEDATA, &w, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_HTTPHEADER, hdr, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_CONNECTTIMEOUT_MS, 3000L, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_TCP_KEEPALIVE, 1L, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_SOCKOPTFUNCTION, note_socket, &oe);
        SETOPT(u, &WATCH_STEPS, h, CURLOPT_SOCKOPTDATA, &sock, &oe);
        rc = opt_failed(&oe, "watch", &w.err);
    }
    if (rc) {
        w.failed = true;
        goto out;
    }
    CURLMcode mc = injected(u, WC_UPSTEP_WATCH_MULTI_ADD) ? CURLM_OUT_OF_MEMORY
                                                          : curl_multi_add_handle(u->multi, h);
    if (mc != CURLM_OK) {
        fail_watch(&w, END_BROKEN, WC_UPC_LOCAL, "watch: curl_multi_add_handle failed: %s",
                   curl_multi_strerror(mc));
        goto out;
    }
    added = true;
    w.last_msg = wc_mono_ms();
    int64_t last_ask = wc_mono_ms();
    for (;;) {
        if (stream_held(&w) != w.recv_held) { /* the test seam (wc_upstream_hold_watch) */
            w.recv_held = !w.recv_held;
            curl_easy_pause(h, w.recv_held ? CURLPAUSE_RECV
                                           : (w.paused ? CURLPAUSE_SEND : CURLPAUSE_CONT));
            drain(&w);
        }
        int running = 0;
        mc = injected(u, WC_UPSTEP_WATCH_PERFORM) ? CURLM_OUT_OF_MEMORY
                                                  : curl_multi_perform(u->multi, &running);
        if (mc != CURLM_OK) {
            fail_watch(&w, END_BROKEN, WC_UPC_LOCAL, "watch: curl_multi_perform failed: %s",
                       curl_multi_strerror(mc));
            break;
        }
        int left;
        CURLMsg *m;
        while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == h) {
                fail_watch(&w, END_BROKEN, WC_UPC_TRANSPORT, "watch stream ended: %s",
                           m->data.result == CURLE_OK ? "closed by etcd"
                                                      : curl_easy_strerror(m->data.result));
                running = 0;
            }
        }
        if (!running)
            fail_watch(&w, END_BROKEN, WC_UPC_TRANSPORT, "watch stream ended: %s",
                       "closed by etcd");
        if (w.failed)
            break;
        /* A turn that brought bytes skips the check (one system call a change): a close
         * that came with them wakes the next poll at once, and that turn brings none. */
        bool got = w.got;
        w.got = false;
        if (!got && peer_closed(sock)) {
            fail_watch(&w, END_BROKEN, WC_UPC_TRANSPORT, "%s", "etcd closed the watch stream");
            break;
        }
        if (atomic_load(&u->stop)) {
            w.end = END_STOPPED;
            break;
        }
        int64_t now = wc_mono_ms();
        watch_history(&w, endpoint, now);
        now = wc_mono_ms();
        /* Taken when a request goes up: one asked while catching up waits for its end. */
        bool asked = atomic_load(&u->progress_wanted);
        if (w.catchup && now - w.last_evs < REFILL_QUIET_MS) {
            /* catching up: progress waits (see watch_ctx.catchup) */
        } else if (w.catchup) {
            w.catchup = 0; /* quiet that long: etcd has sent what it had */
            check_live(&w);
        } else if (w.created && (asked || now - w.last_msg >= IDLE_PROGRESS_MS) &&
                   now - last_ask >= (asked ? 0 : IDLE_PROGRESS_MS)) {
            atomic_store(&u->progress_wanted, false);
            queue_request(&w, h, "{\"progress_request\":{}}\n");
            last_ask = now;
        }
        if (now - w.last_msg > STALL_MS) {
            fail_watch(&w, END_BROKEN, WC_UPC_STALLED,
                       "watch stream silent for %s s: treated as broken", "15");
            break;
        }
        mc = curl_multi_poll(u->multi, NULL, 0, 500, NULL);
        if (mc != CURLM_OK) {
            fail_watch(&w, END_BROKEN, WC_UPC_LOCAL, "watch: curl_multi_poll failed: %s",
                       curl_multi_strerror(mc));
            break;
        }
    }
out:
    if (added)
        curl_multi_remove_handle(u->multi, h);
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    /* A history not handed over is lost with the stream. */
    w.h = NULL;
    end_history(&w, false, w.end == END_STOPPED ? "the upstream stopped" : w.err.reason);
    free(w.send);
    wc_linebuf_free(&w.lines);
    if (w.end != END_STOPPED)
        *e = w.err;
    return w.end;
}

/* ---------------------------------------------------------------------------------------
 * The thread
 * ------------------------------------------------------------------------------------- */

/* Sleeps up to ms, waking early when asked to stop. */
static void pause_ms(wc_upstream *u, int64_t ms)
{
    int64_t until = wc_mono_ms() + ms;
    while (!atomic_load(&u->stop) && wc_mono_ms() < until) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int64_t next_backoff(wc_upstream *u, int64_t prev)
{
    int64_t b = prev ? prev * 2 : BACKOFF_MIN_MS;
    if (b > BACKOFF_MAX_MS)
        b = BACKOFF_MAX_MS;
    /* Jitter: between half and all of it, so that many proxies do not reconnect in step. */
    return b / 2 + (int64_t)(rand_r(&u->seed) % (unsigned)(b / 2 + 1));
}

/*
 * The thread. Never backwards: the list is a linearizable read, so a list that reports another
 * cluster, or a revision older than the cache's, proves the history the cache holds is gone
 * (a different cluster at the address, or one restored from an older snapshot); the next list
 * then resets the cache instead of diffing. A watch created on a member that is behind only
 * proves that member is behind: the thread tries the others, and after a few such members it
 * lists to find out which case it is.
 */
static void *run(void *arg)
{
    wc_upstream *u = arg;
    int64_t rev = 0;       /* the revision the sink holds */
    history hist = {0, 0}; /* a start's history still to take back */
    bool need_list = true, reset = false, listed = false;
    int behind = 0; /* watches in a row created on a member behind the cache */
    int64_t backoff = 0;
    while (!atomic_load(&u->stop)) {
        const char *ep = u->endpoints[atomic_load(&u->cur) % u->n_endpoints];
        int64_t started = wc_mono_ms();
        /* Every failure fills e; the default only shows if one ever forgot to. */
        up_err e = {.cause = WC_UPC_LOCAL, .reason = "failed for an unknown reason"};
        if (need_list) {
            set_state(u, WC_UP_CONNECTING, reset ? "relisting, dropping the history" : "listing");
            /* A history that starts from scratch is taken back from etcd's (a refill). */
            bool refill = u->refill > 0 && (!listed || reset);
            int64_t from = 0;
            int rc = list(u, ep, &rev, reset, refill, &from, &e);
            if (rc == 0)
                hist = (history){from, rev};
            if (rc == 0) {
                if (listed)
                    atomic_fetch_add(&u->relists, 1);
                if (reset)
                    atomic_fetch_add(&u->resets, 1);
                listed = true;
                need_list = reset = false;
                behind = 0;
            } else {
                if (rc == WC_ESTALE)
                    reset = true; /* proven: another cluster, or one that went back */
                atomic_fetch_add(&u->reconnects[e.cause], 1);
                set_state(u, WC_UP_DOWN, e.reason);
                backoff = next_backoff(u, backoff);
                atomic_store(&u->cur, (atomic_load(&u->cur) + 1) % u->n_endpoints);
                pause_ms(u, backoff);
                continue;
            }
        }
        set_state(u, WC_UP_CONNECTING, "watching");
        watch_end end = watch(u, ep, &rev, &hist, &e);
        if (end == END_STOPPED)
            break;
        atomic_fetch_add(&u->reconnects[e.cause], 1);
        if (end == END_COMPACTED || end == END_WENT_BACK || end == END_EARLY) {
            set_state(u, WC_UP_CONNECTING, e.reason);
            need_list = true;
            reset = reset || end == END_EARLY;
            continue;
        }
        if (e.cause == WC_UPC_BEHIND) {
            if (++behind >= 3)
                need_list = true; /* let a linearizable read tell a lagging member from a
                                     cluster that went back */
        } else {
            behind = 0;
        }
        set_state(u, WC_UP_DOWN, e.reason);
        if (wc_mono_ms() - started > 10000)
            backoff = 0; /* it was healthy for a while: start the backoff over */
        backoff = next_backoff(u, backoff);
        atomic_store(&u->cur, (atomic_load(&u->cur) + 1) % u->n_endpoints);
        pause_ms(u, backoff);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The public face
 * ------------------------------------------------------------------------------------- */

wc_upstream *wc_upstream_new(const wc_upstream_opts *o)
{
    if (!o || o->n_endpoints == 0)
        return NULL;
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    pthread_once(&curl_once, curl_init_once);
    wc_upstream *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->endpoints = calloc(o->n_endpoints, sizeof(*u->endpoints));
    u->n_endpoints = o->n_endpoints;
    bool ok = u->endpoints != NULL;
    for (size_t i = 0; ok && i < o->n_endpoints; i++) {
        u->endpoints[i] = strdup(o->endpoints[i]);
        ok = u->endpoints[i] != NULL;
    }
    size_t plen = o->prefix ? o->prefix_len : 0;
    /* The whole keyspace is the range ["\0", "\0"). */
    const char *key = plen ? o->prefix : "";
    size_t klen = plen ? plen : 1;
    char *end = malloc(klen + 1);
    size_t elen = 0;
    if (end)
        elen = plen ? wc_etcd_range_end(o->prefix, plen, end) : 1;
    if (end && !plen)
        end[0] = '\0';
    u->prefix = malloc(klen + 1);
    if (u->prefix) {
        memcpy(u->prefix, key, klen);
        u->prefix_len = plen;
    }
    u->key_b64 = wc_b64_encode(key, klen, WC_B64_STD);
    u->end_b64 = end ? wc_b64_encode(end, elen, WC_B64_STD) : NULL;
    free(end);
    u->page = o->page_size ? o->page_size : PAGE_DEFAULT;
    u->refill = o->refill_revisions > 0 ? o->refill_revisions : 0;
    u->refill_span = REFILL_SPAN;
    u->refill_quiet = REFILL_QUIET_MS;
    pthread_mutex_init(&u->token_mu, NULL);
    const char *const src[] = {o->cacert, o->cert, o->key, o->user, o->password};
    char **dst[] = {&u->cacert, &u->cert, &u->key, &u->user, &u->password};
    for (size_t i = 0; i < 5; i++) {
        if (src[i] && *src[i]) {
            *dst[i] = strdup(src[i]);
            ok = ok && *dst[i] != NULL;
        }
    }
    if (u->user && !u->password)
        u->password = strdup("");
    if (!u->user && o->bearer && *o->bearer)
        ok = ok && wc_upstream_set_bearer(u, o->bearer) == 0;
    u->sink = o->sink;
    u->multi = curl_multi_init();
    u->seed = (unsigned)wc_mono_ms() ^ (unsigned)(uintptr_t)u;
    if (!ok || !u->prefix || !u->key_b64 || !u->end_b64 || !u->multi) {
        wc_upstream_free(u);
        return NULL;
    }
    return u;
}

int wc_upstream_start(wc_upstream *u)
{
    if (u->started)
        return WC_EINVAL;
    if (pthread_create(&u->thread, NULL, run, u) != 0)
        return WC_ENOMEM;
    u->started = true;
    return 0;
}

void wc_upstream_stop(wc_upstream *u)
{
    if (!u || !u->started)
        return;
    atomic_store(&u->stop, true);
    curl_multi_wakeup(u->multi);
    pthread_join(u->thread, NULL);
    u->started = false;
    atomic_store(&u->stop, false);
}

void wc_upstream_free(wc_upstream *u)
{
    if (!u)
        return;
    wc_upstream_stop(u);
    if (u->multi)
        curl_multi_cleanup(u->multi);
    for (size_t i = 0; u->endpoints && i < u->n_endpoints; i++)
        free(u->endpoints[i]);
    free(u->endpoints);
    free(u->prefix);
    free(u->key_b64);
    free(u->end_b64);
    free(u->cacert);
    free(u->cert);
    free(u->key);
    free(u->user);
    if (u->password) {
        memset(u->password, 0, strlen(u->password));
        free(u->password);
    }
    if (u->token) {
        memset(u->token, 0, strlen(u->token));
        free(u->token);
    }
    pthread_mutex_destroy(&u->token_mu);
    free(u);
}

int wc_upstream_set_bearer(wc_upstream *u, const char *bearer)
{
    if (u->user)
        return WC_EINVAL; /* the token is etcd's own */
    char *line = NULL;
    if (bearer && *bearer && asprintf(&line, "Bearer %s", bearer) < 0)
        return WC_ENOMEM;
    pthread_mutex_lock(&u->token_mu);
    char *old = u->token;
    u->token = line;
    pthread_mutex_unlock(&u->token_mu);
    if (old) {
        memset(old, 0, strlen(old));
        free(old);
    }
    return 0;
}

int wc_upstream_current_rev(wc_upstream *u, int64_t *rev, int64_t timeout_ms)
{
    /* A linearizable range of one key (the prefix itself) costs etcd a read index and a
     * lookup, whatever the size of the range, and its header carries the current revision. */
    char *body = NULL;
    if (asprintf(&body, "{\"key\":\"%s\",\"keys_only\":true}", u->key_b64) < 0)
        return WC_ENOMEM;
    int64_t until = wc_mono_ms() + timeout_ms;
    size_t first = atomic_load(&u->cur);
    int rc = WC_EIO;
    for (size_t i = 0; i < u->n_endpoints && wc_mono_ms() < until; i++) {
        const char *ep = u->endpoints[(first + i) % u->n_endpoints];
        wc_buf resp;
        up_err e;
        long left = (long)(until - wc_mono_ms());
        rc = post(u, "revision", ep, "/v3/kv/range", body, left > 0 ? left : 1, &resp, &e);
        if (rc)
            continue;
        wc_range_resp r;
        rc = wc_etcd_parse_range(resp.p, resp.len, &r);
        free(resp.p);
        if (rc == 0) {
            *rev = r.header.revision;
            wc_range_resp_free(&r);
            break;
        }
        rc = WC_EIO;
    }
    free(body);
    return rc;
}

void wc_upstream_header(wc_upstream *u, uint64_t *cluster_id, uint64_t *member_id,
                        int64_t *raft_term)
{
    *cluster_id = atomic_load(&u->hdr_cluster);
    *member_id = atomic_load(&u->hdr_member);
    *raft_term = atomic_load(&u->hdr_term);
}

void wc_upstream_request_progress(wc_upstream *u)
{
    atomic_store(&u->progress_wanted, true);
    curl_multi_wakeup(u->multi);
}

static const char *const cause_names[WC_UPC_COUNT] = {
    "transport", "stalled", "etcd", "protocol", "compacted", "behind", "went_back", "local",
};

const char *wc_upstream_cause_name(wc_upstream_cause c)
{
    return (unsigned)c < WC_UPC_COUNT ? cause_names[c] : "unknown";
}

void wc_upstream_stats_get(wc_upstream *u, wc_upstream_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < WC_UPC_COUNT; i++)
        out->reconnects[i] = atomic_load(&u->reconnects[i]);
    out->relists = atomic_load(&u->relists);
    out->resets = atomic_load(&u->resets);
    out->refill_waits = atomic_load(&u->refill_waits);
    out->refill_ends = atomic_load(&u->refill_ends);
    out->backfills = atomic_load(&u->backfills);
    out->backfills_lost = atomic_load(&u->backfills_lost);
    out->endpoint = atomic_load(&u->cur) % u->n_endpoints;
    out->etcd_rev = atomic_load(&u->etcd_rev);
    int64_t last = atomic_load(&u->last_msg);
    out->last_msg_age_ms = last ? wc_mono_ms() - last : -1;
}
