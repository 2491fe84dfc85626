/*
 * The daemon's options; see options.h. Every option has one name, read from the environment
 * as WCACHED_<NAME> first and then from the flags; the values are checked once, here, and a
 * bad one ends the process with one line and exit code 2.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "wcached/cacher.h"
#include "wcached/http.h"
#include "wcached/parse.h"
#include "wcached/upstream.h"

/* The raw values, as given. */
typedef struct raw {
    const char *endpoints, *prefix, *listen, *k8s_prefix, *ring_size, *ring_bytes, *index_field;
    const char *refill_revisions;
    const char *log_level, *log_format, *slow_budget, *http_threads, *coalesce, *max_connections;
    const char *header_timeout, *max_watches, *max_watches_per_user, *max_inflight,
        *max_header_bytes, *max_query_params, *max_uri_bytes, *max_page_size, *max_timeout;
    const char *cacert, *cert, *key, *user, *password, *password_file, *token_file;
    const char *token_auth_file, *authorization_policy_file;
    const char *tls_cert_file, *tls_key_file, *client_ca_file;
} raw;

typedef struct opt_def {
    const char *name;
    const char **slot; /* NULL for --resource, which appends */
} opt_def;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wcached [options]\n"
            "  --etcd-endpoints URL[,URL...]  etcd client URLs (default %s)\n"
            "  --etcd-prefix PREFIX           the key range watched and cached (default: whole "
            "keyspace)\n"
            "  --listen HOST:PORT             HTTP address (default %s); port 0 picks one\n"
            "  --k8s-prefix PREFIX            root of Kubernetes-style keys (default %s)\n"
            "  --ring-size N                  event ring capacity in events (default %d: 5 "
            "minutes\n"
            "                                 at 1,000 changes/s)\n"
            "  --ring-bytes N                 event ring bound: the bytes its events hold in\n"
            "                                 memory (each event, the object it keeps, the\n"
            "                                 encodings made of it) (default %zu)\n"
            "  --refill-revisions N           at start, take back up to N revisions of "
            "etcd's history\n"
            "                                 into the ring (no further back than the N "
            "most recently\n"
            "                                 changed keys, fewer if compacted, at most "
            "--ring-size),\n"
            "                                 so readers resume without relisting; 0: off "
            "(default %d)\n"
            "  --index-field PATH             JSON field used as index trigger, e.g. "
            "spec.nodeName\n"
            "  --slow-reader-budget MS        how long a reader may lag before its stream is "
            "ended\n"
            "                                 (default %d)\n"
            "  --resource SPEC                add a Kubernetes resource, "
            "[GROUP/]VERSION/PLURAL=Kind\n"
            "                                 [:PATH][:cluster|:namespaced]; repeatable\n"
            "  --http-threads N               HTTP threads for requests, and as many stream "
            "pumps;\n"
            "                                 0: one per core the process may use (default: "
            "one per core)\n"
            "  --coalesce-ms MS               after a reader is sent events, gather its next "
            "ones for MS\n"
            "                                 and send them together; the first after a quiet "
            "spell\n"
            "                                 goes at once; 0: send every event at once "
            "(default %d);\n"
            "                                 etcd API watches (/v3/watch) are never "
            "gathered\n"
            "  --max-connections N            connections and watch streams at once (default: "
            "the open\n"
            "                                 files limit, raised to its hard limit, less 64)\n"
            "  --header-timeout-ms MS         how long a connection may take to send a "
            "request's\n"
            "                                 headers, from its start or its previous answer "
            "(default %d)\n"
            "  --max-watches N                watch streams at once; past it a watch gets 429\n"
            "                                 (default 0: no bound but --max-connections)\n"
            "  --max-watches-per-user N       watch streams at once per reader, the anonymous one "
            "included\n"
            "                                 (default 0: no bound)\n"
            "  --max-requests-inflight N      requests other than watches and probes served at "
            "once\n"
            "                                 (0: no bound); past it 429 (default %d)\n"
            "  --max-header-bytes N           bytes of a request's header fields read; past "
            "it 431\n"
            "                                 (default %d)\n"
            "  --max-query-params N           query parameters of a request; past it 414 "
            "(default %d)\n"
            "  --max-uri-bytes N              bytes of a request's target (path and query); "
            "past it 414\n"
            "                                 (default %d)\n"
            "  --max-page-size N              items in a list's page: a larger limit is served as "
            "pages\n"
            "                                 of N with a continue token (default %d)\n"
            "  --max-timeout-seconds N        the longest timeoutSeconds a request may ask; past "
            "it 400\n"
            "                                 (default %lld: 366 days)\n"
            "  --etcd-cacert FILE             CA certificate (PEM) that signed etcd's (https "
            "endpoints)\n"
            "  --etcd-cert FILE, --etcd-key FILE\n"
            "                                 client certificate and key (PEM) for etcd's\n"
            "                                 --client-cert-auth\n"
            "  --etcd-user USER               etcd user (etcd auth); the password comes from\n"
            "                                 WCACHED_ETCD_PASSWORD or --etcd-password-file\n"
            "  --etcd-password-file FILE      file whose first line is the etcd password\n"
            "  --etcd-token-file FILE         file whose first line is a bearer token sent to\n"
            "                                 the endpoints (a wcached with --token-auth-file\n"
            "                                 above this one); never logged; re-read on SIGHUP\n"
            "  --tls-cert-file FILE           serve HTTPS (TLS 1.2 and 1.3) with this certificate\n"
            "                                 chain (PEM); re-read on SIGHUP\n"
            "  --tls-private-key-file FILE    its private key (PEM); re-read on SIGHUP\n"
            "  --client-ca-file FILE          a client certificate signed by this CA (PEM)\n"
            "                                 authenticates its reader: CN is the user, each O a\n"
            "                                 group (needs HTTPS; re-read on SIGHUP)\n"
            "  --token-auth-file FILE         bearer tokens, the apiserver's CSV: "
            "token,user,uid[,\"groups\"];\n"
            "                                 a reader without a valid one gets 401 (re-read on "
            "SIGHUP)\n"
            "  --authorization-policy-file FILE\n"
            "                                 ABAC policy, one JSON object per line (the "
            "apiserver's);\n"
            "                                 a read it does not allow gets 403 (re-read on "
            "SIGHUP)\n"
            "  --log-level LEVEL              error|warn|info|debug (default info)\n"
            "  --log-format FORMAT            text|json: a line of text, or one JSON object per "
            "line (default text)\n"
            "  --help, --version\n"
            "Every option may also be given as WCACHED_<OPTION> (e.g. WCACHED_ETCD_ENDPOINTS); "
            "a flag\n"
            "wins. WCACHED_RESOURCE may hold several specs separated by ';'.\n",
            WC_UPSTREAM_ENDPOINT, WC_HTTP_LISTEN, WC_HTTP_K8S_PREFIX, WC_CACHER_RING_EVENTS,
            WC_CACHER_RING_BYTES, WC_UPSTREAM_REFILL_REVISIONS, WC_CACHER_SLOW_BUDGET_MS,
            WC_HTTP_COALESCE_MS, WC_HTTP_HEADER_TIMEOUT_MS, WC_HTTP_MAX_REQUESTS_INFLIGHT,
            WC_HTTP_MAX_HEADER_BYTES, WC_HTTP_MAX_QUERY_PARAMS, WC_HTTP_MAX_URI_BYTES,
            WC_HTTP_MAX_PAGE_SIZE, (long long)WC_HTTP_MAX_TIMEOUT_SECONDS);
}

/* One line about a bad option, and the hint; returns the exit code 2. */
__attribute__((format(printf, 1, 2))) static int fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wcached: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'wcached --help' for more information.\n");
    va_end(ap);
    return 2;
}

/* A whole decimal number in [min, max] into *out, unless s is NULL (the default stays). */
static bool number(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return !s || wc_parse_i64(s, strlen(s), min, max, out) == 0;
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

/* Splits the comma-separated endpoint list into cfg; checks each is an http(s) URL. */
static int split_endpoints(wc_config *cfg, const char *list)
{
    if (strlen(list) >= sizeof(cfg->endpoints_text))
        return fail_usage("--etcd-endpoints: too long");
    char *s = strcpy(cfg->endpoints_text, list);
    cfg->n_endpoints = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0)
            return fail_usage("--etcd-endpoints: '%s' is not an http:// or https:// URL", tok);
        if (cfg->n_endpoints == WC_CONFIG_MAX_ENDPOINTS)
            return fail_usage("--etcd-endpoints: more than %d endpoints", WC_CONFIG_MAX_ENDPOINTS);
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == '/')
            tok[--len] = '\0';
        cfg->endpoints[cfg->n_endpoints++] = tok;
    }
    if (cfg->n_endpoints == 0)
        return fail_usage("--etcd-endpoints: no endpoint given");
    return 0;
}

static int add_resource(wc_config *cfg, const char *spec)
{
    if (cfg->n_resources == WC_CONFIG_MAX_RESOURCES)
        return fail_usage("--resource: more than %d resources", WC_CONFIG_MAX_RESOURCES);
    if (wc_http_resource_check(spec) != 0)
        return fail_usage("--resource: malformed spec '%s' (want "
                          "[GROUP/]VERSION/PLURAL=Kind[:PATH][:cluster|:namespaced])",
                          spec);
    cfg->resources[cfg->n_resources++] = spec;
    cfg->resources[cfg->n_resources] = NULL;
    return 0;
}

enum { OPT_HELP = 'h', OPT_VERSION = 'V', OPT_FIRST = 256 };

/* Reads WCACHED_* variables, then the flags, into r and cfg's resources. 0, or 2. */
static int read_options(wc_config *cfg, raw *r, int argc, char **argv, bool *done)
{
    opt_def defs[] = {
        {"etcd-endpoints", &r->endpoints},
        {"etcd-prefix", &r->prefix},
        {"listen", &r->listen},
        {"k8s-prefix", &r->k8s_prefix},
        {"ring-size", &r->ring_size},
        {"ring-bytes", &r->ring_bytes},
        {"refill-revisions", &r->refill_revisions},
        {"index-field", &r->index_field},
        {"log-level", &r->log_level},
        {"log-format", &r->log_format},
        {"slow-reader-budget", &r->slow_budget},
        {"http-threads", &r->http_threads},
        {"coalesce-ms", &r->coalesce},
        {"max-connections", &r->max_connections},
        {"max-watches", &r->max_watches},
        {"max-watches-per-user", &r->max_watches_per_user},
        {"max-requests-inflight", &r->max_inflight},
        {"max-header-bytes", &r->max_header_bytes},
        {"max-query-params", &r->max_query_params},
        {"max-uri-bytes", &r->max_uri_bytes},
        {"max-page-size", &r->max_page_size},
        {"max-timeout-seconds", &r->max_timeout},
        {"header-timeout-ms", &r->header_timeout},
        {"etcd-cacert", &r->cacert},
        {"etcd-cert", &r->cert},
        {"etcd-key", &r->key},
        {"etcd-user", &r->user},
        {"etcd-password", &r->password},
        {"etcd-password-file", &r->password_file},
        {"etcd-token-file", &r->token_file},
        {"token-auth-file", &r->token_auth_file},
        {"tls-cert-file", &r->tls_cert_file},
        {"tls-private-key-file", &r->tls_key_file},
        {"client-ca-file", &r->client_ca_file},
        {"authorization-policy-file", &r->authorization_policy_file},
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
            *defs[i].slot = v;
            continue;
        }
        if (strlen(v) >= sizeof(cfg->env_resources))
            return fail_usage("%s: too long", env);
        char *copy = strcpy(cfg->env_resources, v);
        for (char *save = NULL, *t = strtok_r(copy, ";", &save); t;
             t = strtok_r(NULL, ";", &save)) {
            int rc = add_resource(cfg, t);
            if (rc)
                return rc;
        }
    }
    longopts[ndefs] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[ndefs + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[ndefs + 2] = (struct option){NULL, 0, NULL, 0};
    bool flag_resources = false;
    opterr = 0;
    for (;;) {
        int idx = 0;
        int ch = getopt_long(argc, argv, ":", longopts, &idx);
        if (ch == -1)
            break;
        if (ch == OPT_HELP) {
            usage(stdout);
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
            continue;
        }
        if (!flag_resources) {
            cfg->n_resources = 0; /* flags replace the environment's list */
            cfg->resources[0] = NULL;
            flag_resources = true;
        }
        int rc = add_resource(cfg, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind]);
    return 0;
}

int wc_config_read_token(const char *file, char *out, size_t cap)
{
    FILE *f = fopen(file, "r");
    bool ok = f && fgets(out, (int)cap, f);
    /* A line that does not fit would be sent cut: refuse it. */
    if (ok && !strchr(out, '\n') && !feof(f))
        ok = false;
    if (f)
        fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    if (!ok || !out[0]) {
        memset(out, 0, cap);
        return -1;
    }
    return 0;
}

/* The etcd password: the first line of --etcd-password-file, or WCACHED_ETCD_PASSWORD. */
static int read_password(wc_config *cfg, const raw *r)
{
    if (r->password_file) {
        FILE *pf = fopen(r->password_file, "r");
        bool ok = pf && fgets(cfg->password, sizeof(cfg->password), pf);
        if (pf)
            fclose(pf);
        if (!ok)
            return fail_usage("--etcd-password-file: '%s' holds no password", r->password_file);
        cfg->password[strcspn(cfg->password, "\r\n")] = '\0';
    } else if (r->password) {
        snprintf(cfg->password, sizeof(cfg->password), "%s", r->password);
    }
    if (cfg->password[0] && !r->user)
        return fail_usage("an etcd password needs --etcd-user");
    return 0;
}

int wc_config_parse(wc_config *cfg, int argc, char **argv, bool *done)
{
    memset(cfg, 0, sizeof(*cfg));
    raw r = {0};
    *done = false;
    int rc = read_options(cfg, &r, argc, argv, done);
    if (rc || *done)
        return rc;
    rc = split_endpoints(cfg, r.endpoints ? r.endpoints : WC_UPSTREAM_ENDPOINT);
    if (rc)
        return rc;
    char host[256];
    uint16_t port;
    cfg->listen = r.listen ? r.listen : WC_HTTP_LISTEN;
    if (wc_parse_listen(cfg->listen, host, sizeof(host), &port) != 0)
        return fail_usage("--listen: '%s' is not HOST:PORT with a port from 0 to 65535",
                          cfg->listen);
    cfg->k8s_prefix = r.k8s_prefix ? r.k8s_prefix : WC_HTTP_K8S_PREFIX;
    if (cfg->k8s_prefix[0] != '/')
        return fail_usage("--k8s-prefix: '%s' does not start with '/'", cfg->k8s_prefix);
    int64_t ring = WC_CACHER_RING_EVENTS, ring_bytes = (int64_t)WC_CACHER_RING_BYTES;
    int64_t budget = WC_CACHER_SLOW_BUDGET_MS, threads = WC_HTTP_THREADS;
    int64_t coalesce = WC_HTTP_COALESCE_MS, max_conns = 0;
    int64_t header_timeout = WC_HTTP_HEADER_TIMEOUT_MS;
    if (!number(r.ring_size, 1, 100000000, &ring))
        return fail_usage("--ring-size: '%s' is not a number from 1 to 100000000", r.ring_size);
    if (!number(r.ring_bytes, 4096, INT64_MAX, &ring_bytes))
        return fail_usage("--ring-bytes: '%s' is not a number of at least 4096", r.ring_bytes);
    int64_t refill = WC_UPSTREAM_REFILL_REVISIONS;
    if (!number(r.refill_revisions, 0, 1000000000, &refill))
        return fail_usage("--refill-revisions: '%s' is not a number from 0 to 1000000000",
                          r.refill_revisions);
    cfg->refill_revisions = refill;
    if (!number(r.slow_budget, 1, 3600000, &budget))
        return fail_usage("--slow-reader-budget: '%s' is not milliseconds from 1 to 3600000",
                          r.slow_budget);
    if (!number(r.coalesce, 0, 1000, &coalesce))
        return fail_usage("--coalesce-ms: '%s' is not milliseconds from 0 to 1000", r.coalesce);
    if (!number(r.max_connections, 1, 10000000, &max_conns))
        return fail_usage("--max-connections: '%s' is not a number from 1 to 10000000",
                          r.max_connections);
    if (!number(r.header_timeout, 100, 3600000, &header_timeout))
        return fail_usage("--header-timeout-ms: '%s' is not milliseconds from 100 to 3600000",
                          r.header_timeout);
    int64_t max_watches = 0, max_watches_user = 0;
    if (!number(r.max_watches, 0, 10000000, &max_watches))
        return fail_usage("--max-watches: '%s' is not a number from 0 to 10000000", r.max_watches);
    if (!number(r.max_watches_per_user, 0, 10000000, &max_watches_user))
        return fail_usage("--max-watches-per-user: '%s' is not a number from 0 to 10000000",
                          r.max_watches_per_user);
    int64_t max_inflight = WC_HTTP_MAX_REQUESTS_INFLIGHT;
    if (!number(r.max_inflight, 0, 10000000, &max_inflight))
        return fail_usage("--max-requests-inflight: '%s' is not a number from 0 to 10000000",
                          r.max_inflight);
    cfg->max_requests_inflight = (unsigned)max_inflight;
    int64_t max_header = WC_HTTP_MAX_HEADER_BYTES;
    if (!number(r.max_header_bytes, 1024, 1024 * 1024, &max_header))
        return fail_usage("--max-header-bytes: '%s' is not a number from 1024 to 1048576",
                          r.max_header_bytes);
    cfg->max_header_bytes = (size_t)max_header;
    int64_t max_params = WC_HTTP_MAX_QUERY_PARAMS, max_uri = WC_HTTP_MAX_URI_BYTES;
    int64_t max_page = WC_HTTP_MAX_PAGE_SIZE, max_timeout = WC_HTTP_MAX_TIMEOUT_SECONDS;
    if (!number(r.max_query_params, 1, 10000, &max_params))
        return fail_usage("--max-query-params: '%s' is not a number from 1 to 10000",
                          r.max_query_params);
    if (!number(r.max_uri_bytes, 1024, 1024 * 1024, &max_uri))
        return fail_usage("--max-uri-bytes: '%s' is not a number from 1024 to 1048576",
                          r.max_uri_bytes);
    if (!number(r.max_page_size, 1, 10000000, &max_page))
        return fail_usage("--max-page-size: '%s' is not a number from 1 to 10000000",
                          r.max_page_size);
    if (!number(r.max_timeout, 1, 10LL * 365 * 24 * 3600, &max_timeout))
        return fail_usage("--max-timeout-seconds: '%s' is not seconds from 1 to 315360000 "
                          "(10 years)",
                          r.max_timeout);
    cfg->max_query_params = (unsigned)max_params;
    cfg->max_uri_bytes = (size_t)max_uri;
    cfg->max_page_size = max_page;
    cfg->max_timeout_s = max_timeout;
    cfg->max_watches = (unsigned)max_watches;
    cfg->max_watches_per_user = (unsigned)max_watches_user;
    if (!number(r.http_threads, 0, WC_HTTP_THREADS_MAX, &threads))
        return fail_usage("--http-threads: '%s' is not a number from 0 to %d", r.http_threads,
                          WC_HTTP_THREADS_MAX);
    if (coalesce >= budget)
        return fail_usage("--coalesce-ms: %" PRId64
                          " is not less than --slow-reader-budget %" PRId64
                          ": a reader held that long would be ended as too slow",
                          coalesce, budget);
    cfg->ring_events = (size_t)ring;
    cfg->ring_bytes = (size_t)ring_bytes;
    cfg->slow_budget_ms = budget;
    cfg->coalesce_ms = coalesce;
    cfg->max_connections = (unsigned)max_conns;
    cfg->header_timeout_ms = header_timeout;
    cfg->http_threads = (unsigned)threads;
    if (r.index_field && *r.index_field && !valid_field_path(r.index_field))
        return fail_usage("--index-field: '%s' is not a field path such as spec.nodeName",
                          r.index_field);
    cfg->index_field = r.index_field && *r.index_field ? r.index_field : NULL;
    int level = wc_log_parse_level(r.log_level ? r.log_level : "info");
    if (level < 0)
        return fail_usage("--log-level: '%s' is not one of error, warn, info, debug", r.log_level);
    cfg->log_level = (wc_log_level)level;
    int format = wc_log_parse_format(r.log_format ? r.log_format : "text");
    if (format < 0)
        return fail_usage("--log-format: '%s' is not text or json", r.log_format);
    cfg->log_format = (wc_log_format)format;
    if ((r.tls_cert_file == NULL) != (r.tls_key_file == NULL))
        return fail_usage("--tls-cert-file and --tls-private-key-file go together");
    if (r.client_ca_file && !r.tls_cert_file)
        return fail_usage("--client-ca-file needs HTTPS: give --tls-cert-file and "
                          "--tls-private-key-file too");
    const char *files[] = {r.cacert,
                           r.cert,
                           r.key,
                           r.password_file,
                           r.token_file,
                           r.token_auth_file,
                           r.authorization_policy_file,
                           r.tls_cert_file,
                           r.tls_key_file,
                           r.client_ca_file};
    const char *file_flags[] = {"--etcd-cacert",
                                "--etcd-cert",
                                "--etcd-key",
                                "--etcd-password-file",
                                "--etcd-token-file",
                                "--token-auth-file",
                                "--authorization-policy-file",
                                "--tls-cert-file",
                                "--tls-private-key-file",
                                "--client-ca-file"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i] && access(files[i], R_OK) != 0) {
            fprintf(stderr, "wcached: %s: cannot read '%s': %s\n", file_flags[i], files[i],
                    strerror(errno));
            return 2;
        }
    }
    if ((r.cert == NULL) != (r.key == NULL))
        return fail_usage("--etcd-cert and --etcd-key go together");
    cfg->cacert = r.cacert;
    cfg->cert = r.cert;
    cfg->key = r.key;
    cfg->user = r.user;
    if (r.token_file && r.user)
        return fail_usage("--etcd-token-file and --etcd-user: one or the other (a bearer token "
                          "for a wcached above, or etcd's own authentication)");
    cfg->etcd_token_file = r.token_file;
    if (r.token_file) {
        char token[WC_UPSTREAM_TOKEN_MAX];
        rc = wc_config_read_token(r.token_file, token, sizeof(token));
        memset(token, 0, sizeof(token));
        if (rc)
            return fail_usage("--etcd-token-file: '%s' holds no token (or a first line of "
                              "%d bytes or more)",
                              r.token_file, WC_UPSTREAM_TOKEN_MAX);
    }
    cfg->token_auth_file = r.token_auth_file;
    cfg->authorization_policy_file = r.authorization_policy_file;
    cfg->tls_cert_file = r.tls_cert_file;
    cfg->tls_key_file = r.tls_key_file;
    cfg->client_ca_file = r.client_ca_file;
    rc = read_password(cfg, &r);
    if (rc)
        return rc;
    cfg->prefix = r.prefix ? r.prefix : "";
    return 0;
}
