/*
 * wcached: the daemon. It parses options (flags, or WCACHED_* environment variables), wires
 * the three stages together and handles signals:
 *
 *   etcd --> upstream (its own thread) --sink--> cacher --wake/after_dispatch--> http --> readers
 *
 * The upstream's sink callbacks feed the cacher; the HTTP server asks the daemon, through its
 * callbacks, whether the upstream is live and what etcd's current revision is. SIGTERM or
 * SIGINT stops the upstream, ends every stream cleanly and exits 0.
 */
#include <errno.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wcached/cacher.h"
#include "wcached/http.h"
#include "wcached/log.h"
#include "wcached/parse.h"
#include "wcached/upstream.h"

#ifndef WCACHED_VERSION
#define WCACHED_VERSION "unknown"
#endif

#define MAX_RESOURCES 64
#define MAX_ENDPOINTS 16

typedef struct options {
    char *endpoints;
    char *prefix;
    char *listen;
    char *k8s_prefix;
    char *ring_size;
    char *ring_bytes;
    char *index_field;
    char *log_level;
    char *slow_budget;
    char *http_threads;
    char *coalesce;
    char *max_connections;
    char *cacert, *cert, *key, *user, *password, *password_file;
    char *resources[MAX_RESOURCES];
    size_t n_resources;
    char env_resources[8192]; /* WCACHED_RESOURCE, split in place */
} options;

/* What the upstream last said, for /readyz and /metrics. Guarded by its own mutex. */
typedef struct daemon_state {
    wc_cacher *cacher;
    wc_upstream *upstream;
    char *index_field;
    pthread_mutex_t mu;
    wc_upstream_state up_state;
    char up_reason[128];
    char last_failure[256];       /* the last "down" reason, kept while retrying, for /readyz */
    const char *const *endpoints; /* for the endpoint metric */
    size_t n_endpoints;
    char logged_down[128]; /* the last "down" reason logged, and when: repeats are rate-limited */
    time_t logged_down_at;
    atomic_uint_fast64_t up_changes[3]; /* transitions into each state */
} daemon_state;

static const char usage_text[] =
    "usage: wcached [options]\n"
    "  --etcd-endpoints URL[,URL...]  etcd client URLs (default http://127.0.0.1:2379)\n"
    "  --etcd-prefix PREFIX           the key range watched and cached (default: whole keyspace)\n"
    "  --listen HOST:PORT             HTTP address (default 127.0.0.1:8080); port 0 picks one\n"
    "  --k8s-prefix PREFIX            root of Kubernetes-style keys (default /registry)\n"
    "  --ring-size N                  event ring capacity in events (default 300000: 5 minutes\n"
    "                                 at 1,000 changes/s)\n"
    "  --ring-bytes N                 event ring bound in bytes (default 536870912)\n"
    "  --index-field PATH             JSON field used as index trigger, e.g. spec.nodeName\n"
    "  --slow-reader-budget MS        how long a reader may lag before its stream is ended\n"
    "                                 (default 2000)\n"
    "  --resource SPEC                add a Kubernetes resource, [GROUP/]VERSION/PLURAL=Kind\n"
    "                                 [:PATH][:cluster|:namespaced]; repeatable\n"
    "  --http-threads N               HTTP threads for requests, and as many stream pumps (default 1)\n"
    "  --coalesce-ms MS               gather a reader's events for up to MS before sending them,\n"
    "                                 trading that much latency for fewer sends (default 0)\n"
    "  --max-connections N            connections and watch streams at once (default: the open\n"
    "                                 files limit, raised to its hard limit, less 64)\n"
    "  --etcd-cacert FILE             CA certificate (PEM) that signed etcd's (https endpoints)\n"
    "  --etcd-cert FILE, --etcd-key FILE\n"
    "                                 client certificate and key (PEM) for etcd's\n"
    "                                 --client-cert-auth\n"
    "  --etcd-user USER               etcd user (etcd auth); the password comes from\n"
    "                                 WCACHED_ETCD_PASSWORD or --etcd-password-file\n"
    "  --etcd-password-file FILE      file whose first line is the etcd password\n"
    "  --log-level LEVEL              error|warn|info|debug (default info)\n"
    "  --help, --version\n"
    "Every option may also be given as WCACHED_<OPTION> (e.g. WCACHED_ETCD_ENDPOINTS); a flag\n"
    "wins. WCACHED_RESOURCE may hold several specs separated by ';'.\n";

enum { OPT_HELP = 'h', OPT_VERSION = 'V', OPT_FIRST = 256 };

typedef struct opt_def {
    const char *name;
    char **slot; /* NULL for --resource, which appends */
} opt_def;

static int fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "wcached: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'wcached --help' for more information.\n");
    return 2;
}

/* Parses a whole decimal number in [min, max]; false otherwise. */
static bool parse_num(const char *s, long long min, long long max, long long *out)
{
    int64_t v;
    if (!s || wc_parse_i64(s, strlen(s), min, max, &v) != 0)
        return false;
    *out = v;
    return true;
}

static bool valid_listen(const char *s)
{
    char host[256];
    uint16_t port;
    return wc_parse_listen(s, host, sizeof(host), &port) == 0;
}

static bool valid_field_path(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '.' || *p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

/* Splits a comma-separated endpoint list in place; checks each is an http(s) URL. */
static int split_endpoints(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0)
            return fail_usage("--etcd-endpoints: '%s' is not an http:// or https:// URL", tok);
        if (*n == MAX_ENDPOINTS)
            return fail_usage("--etcd-endpoints: more than %s endpoints", "16");
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == '/')
            tok[--len] = '\0';
        out[(*n)++] = tok;
    }
    if (*n == 0)
        return fail_usage("--etcd-endpoints: %s", "no endpoint given");
    return 0;
}

static int add_resource(options *o, const char *spec)
{
    if (o->n_resources == MAX_RESOURCES)
        return fail_usage("--resource: more than %s resources", "64");
    if (wc_http_resource_check(spec) != 0)
        return fail_usage("--resource: malformed spec '%s' (want "
                          "[GROUP/]VERSION/PLURAL=Kind[:PATH][:cluster|:namespaced])",
                          spec);
    o->resources[o->n_resources++] = (char *)spec;
    return 0;
}

/* Reads WCACHED_* variables as defaults, then the flags. 0, or the exit code (2). */
static int parse_options(int argc, char **argv, options *o, bool *done)
{
    opt_def defs[] = {
        {"etcd-endpoints", &o->endpoints},
        {"etcd-prefix", &o->prefix},
        {"listen", &o->listen},
        {"k8s-prefix", &o->k8s_prefix},
        {"ring-size", &o->ring_size},
        {"ring-bytes", &o->ring_bytes},
        {"index-field", &o->index_field},
        {"log-level", &o->log_level},
        {"slow-reader-budget", &o->slow_budget},
        {"http-threads", &o->http_threads},
        {"coalesce-ms", &o->coalesce},
        {"max-connections", &o->max_connections},
        {"etcd-cacert", &o->cacert},
        {"etcd-cert", &o->cert},
        {"etcd-key", &o->key},
        {"etcd-user", &o->user},
        {"etcd-password", &o->password},
        {"etcd-password-file", &o->password_file},
        {"resource", NULL},
    };
    size_t ndefs = sizeof(defs) / sizeof(*defs);
    struct option longopts[sizeof(defs) / sizeof(*defs) + 3];
    for (size_t i = 0; i < ndefs; i++) {
        longopts[i] = (struct option){defs[i].name, required_argument, NULL, OPT_FIRST + (int)i};
        char env[64] = "WCACHED_";
        for (const char *p = defs[i].name; *p; p++)
            env[strlen(env)] = *p == '-' ? '_' : (char)(*p - ('a' <= *p && *p <= 'z' ? 32 : 0));
        const char *v = getenv(env);
        if (!v)
            continue;
        if (defs[i].slot) {
            *defs[i].slot = (char *)v;
        } else {
            if (strlen(v) >= sizeof(o->env_resources))
                return fail_usage("%s: too long", env);
            char *copy = strcpy(o->env_resources, v);
            for (char *save = NULL, *t = strtok_r(copy, ";", &save); t;
                 t = strtok_r(NULL, ";", &save)) {
                int rc = add_resource(o, t);
                if (rc)
                    return rc;
            }
        }
    }
    longopts[ndefs] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[ndefs + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[ndefs + 2] = (struct option){NULL, 0, NULL, 0};
    size_t env_resources = o->n_resources;
    bool flag_resources = false;
    opterr = 0;
    for (;;) {
        int idx = 0;
        int ch = getopt_long(argc, argv, ":", longopts, &idx);
        if (ch == -1)
            break;
        if (ch == OPT_HELP) {
            fputs(usage_text, stdout);
            *done = true;
            return 0;
        }
        if (ch == OPT_VERSION) {
            printf("wcached %s\n", WCACHED_VERSION);
            *done = true;
            return 0;
        }
        if (ch == ':')
            return fail_usage("option '%s' needs a value", argv[optind - 1]);
        if (ch == '?')
            return fail_usage("unknown option '%s'", argv[optind - 1]);
        opt_def *d = &defs[ch - OPT_FIRST];
        if (d->slot) {
            *d->slot = optarg;
        } else {
            if (!flag_resources) {
                o->n_resources -= env_resources; /* flags replace the environment's list */
                flag_resources = true;
            }
            int rc = add_resource(o, optarg);
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The upstream's sink: etcd's changes into the cacher
 * ------------------------------------------------------------------------------------- */

/* Makes states [from, to) of a list; a NULL slot is an allocation failure. */
typedef struct kv_batch {
    const wc_kv_spec *specs;
    wc_kv **out;
    size_t from, to;
    const char *index_field;
} kv_batch;

static void *kv_batch_run(void *arg)
{
    kv_batch *b = arg;
    for (size_t i = b->from; i < b->to; i++)
        b->out[i] = wc_kv_new(&b->specs[i], b->index_field);
    return NULL;
}

/* A list's states: each parses its value once, which is most of a cold start's work, so a big
 * list is split over the machine's cores (etcd is idle by then: it sent every page). */
#define KV_BATCH_MIN 4096
#define KV_BATCH_THREADS 8

static int make_kvs(const wc_kv_spec *specs, size_t n, const char *index_field, wc_kv **out)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t parts = n < KV_BATCH_MIN || cores < 2 ? 1 : (size_t)cores;
    if (parts > KV_BATCH_THREADS)
        parts = KV_BATCH_THREADS;
    kv_batch b[KV_BATCH_THREADS];
    pthread_t t[KV_BATCH_THREADS];
    bool started[KV_BATCH_THREADS] = {false};
    for (size_t p = 0; p < parts; p++) {
        b[p] = (kv_batch){.specs = specs,
                          .out = out,
                          .from = n * p / parts,
                          .to = n * (p + 1) / parts,
                          .index_field = index_field};
        if (p > 0)
            started[p] = pthread_create(&t[p], NULL, kv_batch_run, &b[p]) == 0;
    }
    for (size_t p = 0; p < parts; p++)
        if (!started[p])
            kv_batch_run(&b[p]); /* this thread's part, and any a thread could not take */
    for (size_t p = 1; p < parts; p++)
        if (started[p])
            pthread_join(t[p], NULL);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!out[i])
            rc = WC_ENOMEM;
    return rc;
}

static int sink_replace(void *arg, const wc_kv_spec *kvs, size_t n, int64_t rev, bool reset)
{
    daemon_state *d = arg;
    wc_kv **arr = malloc((n ? n : 1) * sizeof(*arr));
    if (!arr)
        return WC_ENOMEM;
    int rc = make_kvs(kvs, n, d->index_field, arr);
    if (rc == 0) {
        bool first = !wc_cacher_ready(d->cacher);
        wc_cacher_stats before, after;
        wc_cacher_stats_get(d->cacher, &before);
        rc = wc_cacher_replace(d->cacher, arr, n, rev, reset);
        wc_cacher_stats_get(d->cacher, &after);
        if (rc == 0 && !reset && after.resets > before.resets)
            wc_log(WC_LOG_WARN,
                   "cache: the list at revision %" PRId64 " cannot follow the history held (a key "
                   "changed at a revision already served): dropped the history, ended every "
                   "stream, reloaded %zu keys",
                   rev, n);
        else if (rc == 0 && reset && !first)
            wc_log(WC_LOG_WARN,
                   "cache: etcd's history went back or another cluster answers: dropped the "
                   "history, ended every stream, reloaded %zu keys at revision %" PRId64,
                   n, rev);
        else if (rc == 0)
            wc_log(WC_LOG_INFO, "cache: %s %zu keys at revision %" PRId64,
                   first ? "loaded" : "relisted", n, rev);
        else
            wc_log(WC_LOG_WARN, "cache: list at revision %" PRId64 " refused: %s", rev,
                   wc_strerror(rc));
    }
    for (size_t i = 0; i < n; i++)
        wc_kv_unref(arr[i]); /* NULL where a state could not be made */
    free(arr);
    return rc;
}

static int sink_apply(void *arg, const wc_change *changes, size_t n)
{
    daemon_state *d = arg;
    return wc_cacher_apply(d->cacher, changes, n);
}

static int sink_progress(void *arg, int64_t rev)
{
    daemon_state *d = arg;
    return wc_cacher_progress(d->cacher, rev);
}

static const char *const state_names[] = {"connecting", "live", "down"};

static void sink_state(void *arg, wc_upstream_state st, const char *reason)
{
    daemon_state *d = arg;
    const char *why = reason ? reason : "";
    time_t now = time(NULL);
    pthread_mutex_lock(&d->mu);
    d->up_state = st;
    snprintf(d->up_reason, sizeof(d->up_reason), "%s", why);
    /* While etcd stays unreachable the same failure repeats with every retry: log it when it
     * changes, and again every 30 s. */
    bool log_down =
        st == WC_UP_DOWN && (strcmp(d->logged_down, why) != 0 || now - d->logged_down_at >= 30);
    if (log_down) {
        snprintf(d->logged_down, sizeof(d->logged_down), "%s", why);
        d->logged_down_at = now;
    }
    if (st == WC_UP_DOWN)
        snprintf(d->last_failure, sizeof(d->last_failure), "%s", why);
    if (st == WC_UP_LIVE)
        d->logged_down[0] = d->last_failure[0] = '\0';
    pthread_mutex_unlock(&d->mu);
    if ((unsigned)st < 3)
        atomic_fetch_add(&d->up_changes[st], 1);
    wc_log_level level = st == WC_UP_DOWN   ? WC_LOG_WARN
                         : st == WC_UP_LIVE ? WC_LOG_INFO
                                            : WC_LOG_DEBUG;
    if (st != WC_UP_DOWN || log_down)
        wc_log(level, "upstream: %s%s%s", (unsigned)st < 3 ? state_names[st] : "?",
               *why ? ": " : "", why);
}

/* ---------------------------------------------------------------------------------------
 * The server's callbacks
 * ------------------------------------------------------------------------------------- */

static bool http_ready(void *arg, char *reason, size_t reason_len)
{
    daemon_state *d = arg;
    bool loaded = wc_cacher_ready(d->cacher);
    pthread_mutex_lock(&d->mu);
    bool live = loaded && d->up_state == WC_UP_LIVE;
    if (!live)
        snprintf(reason, reason_len, "%supstream watch is %s%s%s%s%s",
                 loaded ? "" : "initial list not loaded yet; ", state_names[d->up_state],
                 d->up_reason[0] ? ": " : "", d->up_reason,
                 d->last_failure[0] && d->up_state != WC_UP_DOWN ? "; last failure: " : "",
                 d->up_state != WC_UP_DOWN ? d->last_failure : "");
    pthread_mutex_unlock(&d->mu);
    return live;
}

static int http_current_rev(void *arg, int64_t *rev)
{
    daemon_state *d = arg;
    return wc_upstream_current_rev(d->upstream, rev, 2000);
}

static void http_request_progress(void *arg)
{
    daemon_state *d = arg;
    wc_upstream_request_progress(d->upstream);
}

static void http_metrics(void *arg, FILE *out)
{
    daemon_state *d = arg;
    pthread_mutex_lock(&d->mu);
    wc_upstream_state st = d->up_state;
    pthread_mutex_unlock(&d->mu);
    fputs("# HELP wcached_upstream_state Upstream watch state (1 for the current one).\n"
          "# TYPE wcached_upstream_state gauge\n",
          out);
    for (int i = 0; i < 3; i++)
        fprintf(out, "wcached_upstream_state{state=\"%s\"} %d\n", state_names[i], (int)st == i);
    fputs("# HELP wcached_upstream_state_changes_total Upstream transitions into each state.\n"
          "# TYPE wcached_upstream_state_changes_total counter\n",
          out);
    for (int i = 0; i < 3; i++)
        fprintf(out, "wcached_upstream_state_changes_total{state=\"%s\"} %" PRIu64 "\n",
                state_names[i], (uint64_t)atomic_load(&d->up_changes[i]));
    wc_upstream_stats us;
    wc_upstream_stats_get(d->upstream, &us);
    fputs("# HELP wcached_upstream_reconnects_total Upstream lists and watches that failed or "
          "ended, by cause (local: on wcached's side, such as allocation or libcurl set-up).\n"
          "# TYPE wcached_upstream_reconnects_total counter\n",
          out);
    for (int i = 0; i < WC_UPC_COUNT; i++)
        fprintf(out, "wcached_upstream_reconnects_total{cause=\"%s\"} %" PRIu64 "\n",
                wc_upstream_cause_name((wc_upstream_cause)i), us.reconnects[i]);
    fprintf(out,
            "# HELP wcached_upstream_relists_total Lists after the first one.\n"
            "# TYPE wcached_upstream_relists_total counter\n"
            "wcached_upstream_relists_total %" PRIu64 "\n"
            "# HELP wcached_upstream_resets_total Lists that dropped the history (another "
            "cluster, or one that went back).\n"
            "# TYPE wcached_upstream_resets_total counter\n"
            "wcached_upstream_resets_total %" PRIu64 "\n",
            us.relists, us.resets);
    fputs("# HELP wcached_upstream_endpoint The etcd endpoint in use (1).\n"
          "# TYPE wcached_upstream_endpoint gauge\n",
          out);
    for (size_t i = 0; i < d->n_endpoints; i++)
        fprintf(out, "wcached_upstream_endpoint{url=\"%s\"} %d\n", d->endpoints[i],
                i == us.endpoint);
    int64_t lag = us.etcd_rev - wc_cacher_rev(d->cacher);
    fprintf(out,
            "# HELP wcached_upstream_lag_revisions etcd's newest reported revision minus the "
            "cache's.\n"
            "# TYPE wcached_upstream_lag_revisions gauge\n"
            "wcached_upstream_lag_revisions %" PRId64 "\n"
            "# HELP wcached_upstream_last_message_age_seconds Time since the last message on "
            "the upstream watch (-1 before the first).\n"
            "# TYPE wcached_upstream_last_message_age_seconds gauge\n"
            "wcached_upstream_last_message_age_seconds %.3f\n",
            lag > 0 ? lag : 0, us.last_msg_age_ms < 0 ? -1.0 : (double)us.last_msg_age_ms / 1000.0);
}

/* ---------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    options o = {0};
    bool done = false;
    int rc = parse_options(argc, argv, &o, &done);
    if (rc || done)
        return rc;

    char endpoints_text[4096];
    const char *ep_arg = o.endpoints ? o.endpoints : "http://127.0.0.1:2379";
    if (strlen(ep_arg) >= sizeof(endpoints_text))
        return fail_usage("--etcd-endpoints: %s", "too long");
    strcpy(endpoints_text, ep_arg);
    const char *endpoints[MAX_ENDPOINTS];
    size_t n_endpoints = 0;
    rc = split_endpoints(endpoints_text, endpoints, &n_endpoints);
    if (rc)
        return rc;
    const char *listen = o.listen ? o.listen : "127.0.0.1:8080";
    if (!valid_listen(listen))
        return fail_usage("--listen: '%s' is not HOST:PORT with a port from 0 to 65535", listen);
    const char *k8s_prefix = o.k8s_prefix ? o.k8s_prefix : "/registry";
    if (k8s_prefix[0] != '/')
        return fail_usage("--k8s-prefix: '%s' does not start with '/'", k8s_prefix);
    long long ring = 300000, ring_bytes = 512LL << 20, budget = 2000, threads = 1;
    if (o.ring_size && !parse_num(o.ring_size, 1, 100000000, &ring))
        return fail_usage("--ring-size: '%s' is not a number from 1 to 100000000", o.ring_size);
    if (o.ring_bytes && !parse_num(o.ring_bytes, 4096, LLONG_MAX, &ring_bytes))
        return fail_usage("--ring-bytes: '%s' is not a number of at least 4096", o.ring_bytes);
    if (o.slow_budget && !parse_num(o.slow_budget, 1, 3600000, &budget))
        return fail_usage("--slow-reader-budget: '%s' is not milliseconds from 1 to 3600000",
                          o.slow_budget);
    long long coalesce = 0;
    if (o.coalesce && !parse_num(o.coalesce, 0, 1000, &coalesce))
        return fail_usage("--coalesce-ms: '%s' is not milliseconds from 0 to 1000", o.coalesce);
    long long max_conns = 0;
    if (o.max_connections && !parse_num(o.max_connections, 1, 10000000, &max_conns))
        return fail_usage("--max-connections: '%s' is not a number from 1 to 10000000",
                          o.max_connections);
    if (o.http_threads && !parse_num(o.http_threads, 1, 64, &threads))
        return fail_usage("--http-threads: '%s' is not a number from 1 to 64", o.http_threads);
    if (o.index_field && *o.index_field && !valid_field_path(o.index_field))
        return fail_usage("--index-field: '%s' is not a field path such as spec.nodeName",
                          o.index_field);
    int level = wc_log_parse_level(o.log_level ? o.log_level : "info");
    if (level < 0)
        return fail_usage("--log-level: '%s' is not one of error, warn, info, debug", o.log_level);
    wc_log_set_level((wc_log_level)level);
    const char *index_field = o.index_field && *o.index_field ? o.index_field : NULL;
    const char *files[] = {o.cacert, o.cert, o.key, o.password_file};
    const char *file_flags[] = {"--etcd-cacert", "--etcd-cert", "--etcd-key",
                                "--etcd-password-file"};
    for (size_t i = 0; i < 4; i++) {
        if (files[i] && access(files[i], R_OK) != 0) {
            fprintf(stderr, "wcached: %s: cannot read '%s': %s\n", file_flags[i], files[i],
                    strerror(errno));
            return 2;
        }
    }
    if ((o.cert == NULL) != (o.key == NULL))
        return fail_usage("%s", "--etcd-cert and --etcd-key go together");
    char password[512] = "";
    if (o.password_file) {
        FILE *pf = fopen(o.password_file, "r");
        if (!pf || !fgets(password, sizeof(password), pf)) {
            if (pf)
                fclose(pf);
            return fail_usage("--etcd-password-file: '%s' holds no password", o.password_file);
        }
        fclose(pf);
        password[strcspn(password, "\r\n")] = '\0';
    } else if (o.password) {
        snprintf(password, sizeof(password), "%s", o.password);
    }
    if (password[0] && !o.user)
        return fail_usage("%s", "an etcd password needs --etcd-user");
    const char *prefix = o.prefix ? o.prefix : "";

    /* Signals are taken by sigwait in this thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    daemon_state d = {.index_field = (char *)index_field,
                      .up_state = WC_UP_CONNECTING,
                      .endpoints = endpoints,
                      .n_endpoints = n_endpoints};
    pthread_mutex_init(&d.mu, NULL);
    wc_http_hook *hook = wc_http_hook_new();
    wc_cacher_opts co;
    wc_cacher_opts_default(&co);
    co.ring_events = (size_t)ring;
    co.ring_bytes = (size_t)ring_bytes;
    co.index_field = index_field;
    co.slow_budget_ms = budget;
    co.after_dispatch = wc_http_after_dispatch;
    co.hook_arg = hook;
    d.cacher = hook ? wc_cacher_new(&co) : NULL;

    wc_upstream_opts uo = {
        .endpoints = endpoints,
        .n_endpoints = n_endpoints,
        .prefix = prefix,
        .prefix_len = strlen(prefix),
        .cacert = o.cacert,
        .cert = o.cert,
        .key = o.key,
        .user = o.user,
        .password = password,
        .sink = {.arg = &d,
                 .replace = sink_replace,
                 .apply = sink_apply,
                 .progress = sink_progress,
                 .state = sink_state},
    };
    d.upstream = d.cacher ? wc_upstream_new(&uo) : NULL;
    memset(password, 0, sizeof(password)); /* the upstream keeps its own copy */
    if (!d.upstream) {
        wc_log(WC_LOG_ERROR, "out of memory at start-up");
        return 1;
    }

    const char *resources[MAX_RESOURCES + 1];
    for (size_t i = 0; i < o.n_resources; i++)
        resources[i] = o.resources[i];
    resources[o.n_resources] = NULL;
    wc_http_opts ho;
    wc_http_opts_default(&ho);
    ho.listen = listen;
    ho.k8s_prefix = k8s_prefix;
    ho.index_field = index_field;
    ho.cacher = d.cacher;
    ho.hook = hook;
    ho.resources = resources;
    ho.threads = (unsigned)threads;
    ho.coalesce_ms = coalesce;
    ho.max_connections = (unsigned)max_conns;
    ho.cb_arg = &d;
    ho.ready = http_ready;
    ho.current_rev = http_current_rev;
    ho.request_progress = http_request_progress;
    ho.metrics = http_metrics;
    wc_http *http = NULL;
    rc = wc_http_start(&ho, &http);
    if (rc != 0) {
        wc_log(WC_LOG_ERROR, "cannot serve on %s: %s", listen, wc_strerror(rc));
        wc_upstream_free(d.upstream);
        wc_cacher_free(d.cacher);
        wc_http_hook_free(hook);
        return 1;
    }
    wc_log(WC_LOG_INFO, "listening on http://%s (etcd %s, prefix '%s', ring %lld events)",
           wc_http_address(http), endpoints[0], prefix, ring);
    rc = wc_upstream_start(d.upstream);
    if (rc != 0) {
        wc_log(WC_LOG_ERROR, "cannot start the upstream: %s", wc_strerror(rc));
        wc_http_stop(http);
        wc_upstream_free(d.upstream);
        wc_cacher_free(d.cacher);
        wc_http_hook_free(hook);
        return 1;
    }

    int sig = 0;
    sigwait(&sigs, &sig);
    wc_log(WC_LOG_INFO, "%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* The server first: its threads call into the upstream (consistent reads). The upstream
     * keeps feeding the cacher meanwhile, which is safe: streams end one by one. */
    wc_http_stop(http);
    wc_upstream_free(d.upstream);
    wc_cacher_free(d.cacher);
    wc_http_hook_free(hook);
    pthread_mutex_destroy(&d.mu);
    wc_log(WC_LOG_INFO, "stopped");
    return 0;
}
