/*
 * The real server in-process: a cacher fed directly by the test (no etcd), the server on
 * 127.0.0.1 port 0, libcurl as the client. Each Criterion test runs in its own process.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "http_internal.h"
#include "wcached/http.h"

/* ---------------------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------------------- */

typedef struct fixture_cfg {
    size_t ring_events;  /* 0: default */
    int64_t bookmark_ms; /* 0: default */
    int64_t wait_ms;     /* 0: 1000 */
    bool not_ready;      /* do not load the cache */
    bool consistent;     /* wire the current-revision and progress callbacks */
    const char *index_field;
    int64_t coalesce_ms;
    int64_t slow_budget_ms;    /* 0: default */
    unsigned max_connections;  /* 0: default */
    int64_t header_timeout_ms; /* 0: default */
    unsigned max_watches, max_watches_per_user;
    unsigned max_requests_inflight; /* 0: default */
    unsigned threads;               /* 0: default */
    size_t max_header_bytes;        /* 0: default */
    unsigned max_query_params;      /* 0: default */
    size_t max_uri_bytes;           /* 0: default */
    int64_t max_page_size;          /* 0: default */
    int64_t max_timeout_s;          /* 0: default */
} fixture_cfg;

static wc_http_hook *hook;
static wc_cacher *cache;
static wc_http *srv;
static char base[128];
static pthread_mutex_t prod_mu = PTHREAD_MUTEX_INITIALIZER; /* the one producer */
static int64_t g_rev = 1;                                   /* etcd's revision; prod_mu */
static atomic_int_fast64_t etcd_ahead; /* etcd is this far ahead of what the test wrote */
static atomic_bool progress_works = true;

static int cb_current_rev(void *arg, int64_t *rev)
{
    (void)arg;
    pthread_mutex_lock(&prod_mu);
    *rev = g_rev + atomic_load(&etcd_ahead);
    pthread_mutex_unlock(&prod_mu);
    return 0;
}

static void cb_progress(void *arg)
{
    (void)arg;
    if (!atomic_load(&progress_works))
        return;
    pthread_mutex_lock(&prod_mu);
    wc_cacher_progress(cache, g_rev + atomic_load(&etcd_ahead));
    pthread_mutex_unlock(&prod_mu);
}

static void cb_metrics(void *arg, FILE *out)
{
    (void)arg;
    fprintf(out, "# HELP wcached_upstream_up 1 when the upstream watch is live.\n"
                 "# TYPE wcached_upstream_up gauge\nwcached_upstream_up 1\n");
}

static void fixture_start(const fixture_cfg *cfg)
{
    curl_global_init(CURL_GLOBAL_ALL);
    hook = wc_http_hook_new();
    cr_assert_not_null(hook);
    wc_cacher_opts co;
    wc_cacher_opts_default(&co);
    if (cfg->ring_events)
        co.ring_events = cfg->ring_events;
    if (cfg->bookmark_ms)
        co.bookmark_ms = cfg->bookmark_ms;
    co.index_field = cfg->index_field;
    if (cfg->slow_budget_ms)
        co.slow_budget_ms = cfg->slow_budget_ms;
    co.after_dispatch = wc_http_after_dispatch;
    co.hook_arg = hook;
    cache = wc_cacher_new(&co);
    cr_assert_not_null(cache);
    if (!cfg->not_ready) {
        pthread_mutex_lock(&prod_mu);
        cr_assert_eq(wc_cacher_replace(cache, NULL, 0, g_rev, false), 0);
        pthread_mutex_unlock(&prod_mu);
    }
    wc_http_opts o;
    wc_http_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.cacher = cache;
    o.hook = hook;
    o.index_field = cfg->index_field;
    o.wait_ms = cfg->wait_ms ? cfg->wait_ms : 1000;
    o.metrics = cb_metrics;
    o.coalesce_ms = cfg->coalesce_ms;
    o.max_connections = cfg->max_connections;
    o.max_watches = cfg->max_watches;
    o.max_watches_per_user = cfg->max_watches_per_user;
    if (cfg->max_requests_inflight)
        o.max_requests_inflight = cfg->max_requests_inflight;
    if (cfg->threads)
        o.threads = cfg->threads;
    if (cfg->max_header_bytes)
        o.max_header_bytes = cfg->max_header_bytes;
    if (cfg->header_timeout_ms)
        o.header_timeout_ms = cfg->header_timeout_ms;
    if (cfg->max_query_params)
        o.max_query_params = cfg->max_query_params;
    if (cfg->max_uri_bytes)
        o.max_uri_bytes = cfg->max_uri_bytes;
    if (cfg->max_page_size)
        o.max_page_size = cfg->max_page_size;
    if (cfg->max_timeout_s)
        o.max_timeout_s = cfg->max_timeout_s;
    if (cfg->consistent) {
        o.current_rev = cb_current_rev;
        o.request_progress = cb_progress;
    }
    cr_assert_eq(wc_http_new(&o, &srv), 0);
    cr_assert_eq(wc_http_start(srv), 0);
    cr_assert_gt(wc_http_port(srv), 0);
    snprintf(base, sizeof(base), "http://%s", wc_http_address(srv));
}

static void fixture_default(void)
{
    fixture_cfg cfg = {0};
    fixture_start(&cfg);
}

static void fixture_stop(void)
{
    wc_http_free(srv);
    wc_cacher_free(cache);
    wc_http_hook_free(hook);
    curl_global_cleanup();
}

/* Publishes a put and marks its revision complete, as the upstream does. */
static int64_t put(const char *key, const char *value)
{
    pthread_mutex_lock(&prod_mu);
    int64_t rev = ++g_rev;
    wc_kv_spec s = {.key = key,
                    .key_len = strlen(key),
                    .value = value,
                    .value_len = strlen(value),
                    .create_rev = rev,
                    .mod_rev = rev,
                    .version = 1};
    cr_assert_eq(wc_cacher_put(cache, &s), 0);
    cr_assert_eq(wc_cacher_progress(cache, rev), 0);
    pthread_mutex_unlock(&prod_mu);
    return rev;
}

static int64_t del(const char *key)
{
    pthread_mutex_lock(&prod_mu);
    int64_t rev = ++g_rev;
    cr_assert_eq(wc_cacher_delete(cache, key, strlen(key), rev), 0);
    cr_assert_eq(wc_cacher_progress(cache, rev), 0);
    pthread_mutex_unlock(&prod_mu);
    return rev;
}

static char *url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url(const char *fmt, ...)
{
    static char bufs[8][8192];
    static int i;
    char *b = bufs[i++ % 8];
    size_t n = (size_t)snprintf(b, sizeof(bufs[0]), "%s", base);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, sizeof(bufs[0]) - n, fmt, ap);
    va_end(ap);
    return b;
}

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "not JSON (%s): %s", je.text, s);
    return j;
}

static const char *jstr(json_t *j, const char *path)
{
    char buf[256];
    strncpy(buf, path, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && j; t = strtok_r(NULL, ".", &save))
        j = json_object_get(j, t);
    return json_string_value(j);
}

/* GETs `u` and checks the status; returns the parsed body (the caller decrefs). */
static json_t *get_json(const char *u, long code)
{
    http_resp r;
    cr_assert_eq(http_get(u, &r), 0, "%s", u);
    cr_assert_eq(r.code, code, "%s: %ld, want %ld: %s", u, r.code, code, r.body);
    json_t *j = parse(r.body);
    http_resp_free(&r);
    return j;
}

/* Expects a Status with `code` and `reason`; returns its message (static copy). */
static const char *expect_status(const char *u, long code, const char *reason)
{
    static char msg[1024];
    json_t *j = get_json(u, code);
    cr_assert_str_eq(jstr(j, "kind"), "Status");
    cr_assert_str_eq(jstr(j, "apiVersion"), "v1");
    cr_assert_str_eq(jstr(j, "status"), "Failure");
    cr_assert_str_eq(jstr(j, "reason"), reason, "%s", u);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), code);
    cr_assert(json_is_object(json_object_get(j, "metadata")));
    snprintf(msg, sizeof(msg), "%s", jstr(j, "message"));
    json_decref(j);
    return msg;
}

/* Line i of a watch, parsed. */
static json_t *event(watch *w, size_t i)
{
    char *l = watch_line(w, i);
    cr_assert_not_null(l, "no line %zu", i);
    json_t *j = parse(l);
    free(l);
    return j;
}

static int64_t obj_rv(json_t *ev)
{
    const char *s = jstr(ev, "object.metadata.resourceVersion");
    cr_assert_not_null(s);
    return strtoll(s, NULL, 10);
}

static char *pod(const char *ns, const char *name, const char *app, const char *node)
{
    static char b[4][512];
    static int i;
    char *p = b[i++ % 4];
    snprintf(p, sizeof(b[0]),
             "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\",\"labels\":{\"app\":\"%s\"}},\"spec\":{\"nodeName\":\"%s\"}}",
             name, ns, app, node);
    return p;
}

static int64_t put_pod(const char *ns, const char *name, const char *app, const char *node)
{
    char key[256];
    snprintf(key, sizeof(key), "/registry/pods/%s/%s", ns, name);
    return put(key, pod(ns, name, app, node));
}

static uint64_t watchers_now(void)
{
    wc_cacher_stats st;
    wc_cacher_stats_get(cache, &st);
    return st.watchers;
}

/* ---------------------------------------------------------------------------------------
 * Fixed routes
 * ------------------------------------------------------------------------------------- */

TestSuite(server, .init = fixture_default, .fini = fixture_stop, .timeout = 60);
/* Tests that start the fixture themselves, with their own configuration. */
TestSuite(custom, .fini = fixture_stop, .timeout = 60);
/* Tests that stop the server themselves. */
TestSuite(shutdown, .init = fixture_default, .timeout = 60);

Test(server, health_ready_metrics)
{
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(r.body, "ok");
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/readyz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    put("/m/a", "1");
    cr_assert_eq(http_get(url("/nope"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/metrics"), &r), 0);
    cr_assert_eq(r.code, 200);
    const char *names[] = {"wcached_watchers ",
                           "wcached_events_received_total 1",
                           "wcached_events_sent_total",
                           "wcached_watchers_terminated_total{reason=\"slow\"}",
                           "wcached_cache_revision 2",
                           "wcached_ring_events 1",
                           "wcached_ring_oldest_revision",
                           "wcached_keys 1",
                           "wcached_non_object_values_skipped_total",
                           "wcached_http_requests_total{code=\"200\"} 2",
                           "wcached_http_requests_total{code=\"404\"} 1",
                           "wcached_upstream_up 1"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_not_null(strstr(r.body, names[i]), "missing %s in\n%s", names[i], r.body);
    cr_assert_not_null(strstr(r.headers, "text/plain; version=0.0.4"));
    http_resp_free(&r);
}

Test(server, metrics_pass_promtool)
{
    /* Skipped where it cannot run, visibly: a silent pass would claim a check never made. */
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    http_resp r;
    put("/m/a", "1");
    cr_assert_eq(http_get(url("/nope"), &r), 0);
    http_resp_free(&r);
    /* a series of the latency histogram for each verb */
    cr_assert_eq(http_get(url("/keys/m/"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/keys/m/a"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/api"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    http_resp_free(&r);
    watch *w = watch_open(url("/keys/m/?watch=1&timeoutSeconds=1"));
    cr_assert(watch_wait_end(w, 5000));
    watch_close(w);
    cr_assert_eq(http_get(url("/metrics"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/metrics"), &r), 0);
    cr_assert_eq(r.code, 200);
    cr_assert_not_null(strstr(r.body, "verb=\"metrics\""), "%s", r.body);
    char path[] = "/tmp/wcached-metrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, r.body, r.len), (ssize_t)r.len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    cr_assert_eq(rc, 0, "promtool check metrics failed");
    http_resp_free(&r);
}

Test(server, discovery_and_runtime_resources)
{
    json_t *j = get_json(url("/api/v1"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "APIResourceList");
    json_decref(j);
    j = get_json(url("/apis"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "APIGroupList");
    json_decref(j);
    expect_status(url("/apis/example.com/v1/widgets"), 404, "NotFound");
    cr_assert_eq(wc_http_add_resource(srv, "example.com/v1/widgets=Widget"), 0);
    cr_assert_eq(wc_http_add_resource(srv, "bad spec"), WC_EINVAL);
    put("/registry/example.com/widgets/ns/w1", "{\"metadata\":{\"name\":\"w1\"}}");
    j = get_json(url("/apis/example.com/v1/namespaces/ns/widgets"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "WidgetList");
    cr_assert_str_eq(jstr(j, "apiVersion"), "example.com/v1");
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
}

Test(server, start_errors)
{
    wc_http_opts o;
    wc_http_opts_default(&o);
    o.cacher = cache;
    o.hook = hook;
    wc_http *h2 = NULL;
    const char *bad_listen[] = {"nope",         "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                                "127.0.0.1:8x", "[::1:80"};
    for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
        o.listen = bad_listen[i];
        cr_assert_eq(wc_http_new(&o, &h2), WC_EINVAL, "%s", bad_listen[i]);
    }
    cr_assert_null(h2);
    o.listen = wc_http_address(srv); /* taken */
    cr_assert_eq(wc_http_new(&o, &h2), 0);
    cr_assert_eq(wc_http_start(h2), WC_EIO);
    wc_http_free(h2);
    h2 = NULL;
    o.listen = "127.0.0.1:0";
    const char *specs[] = {"example.com/v1/widgets=Widget", "not a spec", NULL};
    o.resources = specs;
    cr_assert_eq(wc_http_new(&o, &h2), WC_EINVAL);
    o.resources = NULL;
    o.cacher = NULL;
    cr_assert_eq(wc_http_new(&o, &h2), WC_EINVAL);
    o.cacher = cache;
    o.hook = NULL;
    cr_assert_eq(wc_http_new(&o, &h2), WC_EINVAL);
    cr_assert_null(h2);
    wc_http_stop(NULL);
    wc_http_free(NULL);
}

Test(server, not_found_method_hostile)
{
    expect_status(url("/nope"), 404, "NotFound");
    expect_status(url("/api/v1/widgets"), 404, "NotFound");
    expect_status(url("/keys/%%00"), 400, "BadRequest");
    expect_status(url("/keys/a%%zz"), 400, "BadRequest");
    expect_status(url("/api/v1/namespaces/default/pods/.."), 400, "BadRequest");
    expect_status(url("/api/v1/namespaces/../pods"), 400, "BadRequest");
    http_resp r;
    cr_assert_eq(http_do("POST", url("/keys/a"), &r), 0);
    cr_assert_eq(r.code, 405);
    json_t *j = parse(r.body);
    cr_assert_str_eq(jstr(j, "reason"), "MethodNotAllowed");
    json_decref(j);
    http_resp_free(&r);
    cr_assert_eq(http_do("DELETE", url("/api/v1/pods"), &r), 0);
    cr_assert_eq(r.code, 405);
    http_resp_free(&r);
    /* an overlong path */
    char *p = malloc(WC_HTTP_MAX_PATH + 200);
    strcpy(p, "/keys/");
    memset(p + 6, 'x', WC_HTTP_MAX_PATH + 10);
    p[WC_HTTP_MAX_PATH + 16] = '\0';
    cr_assert_eq(http_get(url("%s", p), &r), 0);
    cr_assert_geq(r.code, 400);
    cr_assert_lt(r.code, 500);
    http_resp_free(&r);
    free(p);
    /* still serving */
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

/* Sends `request` on a raw connection and returns everything the server sent until it closed
 * (malloc'd); fails the test if it has not closed within 10 s. */
static char *raw_exchange(const char *request)
{
    int fd = raw_open(wc_http_port(srv), 0, request);
    cr_assert_geq(fd, 0);
    char *out;
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &out, &len), 0,
                 "the server neither answered in whole nor closed: %s", out);
    return out;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

Test(server, keep_alive_for_every_answer_but_a_watch)
{
    put("/ka/a", "1");
    /* three requests on one connection, the last asking to close: every one is answered */
    char *out = raw_exchange("GET /keys/ka/a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /keys/ka/ HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /keys/ka/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(count(out, "HTTP/1.1 200 OK\r\n"), 2, "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1 404 Not Found\r\n"), 1, "%s", out);
    cr_assert_eq(count(out, "\r\nConnection: close\r\n"), 1, "only the last closes: %s", out);
    free(out);
    /* the same for the fixed routes and a Status */
    out = raw_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /api/v1/widgets HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(count(out, "HTTP/1.1 200 OK\r\n"), 2, "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1 404 Not Found\r\n"), 1, "%s", out);
    free(out);
    /* a watch is the one answer that closes: a request after it is not read */
    int fd = raw_open(wc_http_port(srv), 0,
                      "GET /keys/ka/?watch=1&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_geq(fd, 0);
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &out, &len), 0);
    cr_assert_eq(count(out, "HTTP/1.1 "), 1, "%s", out);
    cr_assert(strcasestr(out, "\r\nConnection: close\r\n"), "%s", out);
    free(out);
}

Test(server, libcurl_reuses_its_connection)
{
    CURL *c = curl_easy_init();
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    const char *paths[] = {"/healthz", "/keys/", "/api/v1/pods", "/keys/none"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        curl_easy_setopt(c, CURLOPT_URL, url("%s", paths[i]));
        cr_assert_eq(curl_easy_perform(c), CURLE_OK);
        long fresh = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &fresh);
        cr_assert_eq(fresh, i == 0 ? 1 : 0, "%s opened a new connection", paths[i]);
    }
    curl_easy_cleanup(c);
    fclose(devnull);
}

Test(server, every_write_verb_is_405)
{
    const char *verbs[] = {"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "BREW"};
    const char *paths[] = {"/keys/a",  "/keys/", "/api/v1/pods", "/api/v1/namespaces/d/pods/p",
                           "/healthz", "/nope"};
    for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
        for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
            http_resp r;
            cr_assert_eq(http_do(verbs[v], url("%s", paths[p]), &r), 0);
            cr_assert_eq(r.code, 405, "%s %s: %ld", verbs[v], paths[p], r.code);
            cr_assert(strcasestr(r.headers, "\r\nAllow: GET, HEAD\r\n"), "%s", r.headers);
            json_t *j = parse(r.body);
            cr_assert_str_eq(jstr(j, "kind"), "Status");
            cr_assert_str_eq(jstr(j, "reason"), "MethodNotAllowed");
            cr_assert_eq(json_integer_value(json_object_get(j, "code")), 405);
            json_decref(j);
            http_resp_free(&r);
        }
    }
    /* a small body is read and dropped: the connection goes on to the next request */
    char *out = raw_exchange("POST /keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                             "DELETE /keys/a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert_eq(count(out, "HTTP/1.1 405 Method Not Allowed\r\n"), 2, "%s", out);
    cr_assert_eq(count(out, "HTTP/1.1 200 OK\r\n"), 1, "%s", out);
    free(out);
    /* a large body is not read: the 405 comes at once and the connection closes */
    int fd = raw_open(wc_http_port(srv), 0,
                      "PUT /keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nxx");
    cr_assert_geq(fd, 0);
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &out, &len), 0, "not closed: %s", out);
    cr_assert(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"), "%s", out);
    cr_assert(strcasestr(out, "\r\nConnection: close\r\n"), "%s", out);
    free(out);
    /* a read with a large body is answered at once too, and closes */
    fd = raw_open(wc_http_port(srv), 0,
                  "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nxx");
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_read_to_end(fd, 10000, &out, &len), 0, "not closed: %s", out);
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%s", out);
    free(out);
    /* still serving */
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

Test(server, hostile_paths_on_both_route_families)
{
    put("/a/b", "{\"kind\":\"X\"}");
    put("/registry/pods/default/p", pod("default", "p", "web", "n1"));
    char longkey[WC_HTTP_MAX_PATH + 64] = "/keys/";
    memset(longkey + 6, 'k', WC_HTTP_MAX_PATH);
    char longname[400] = "/api/v1/namespaces/default/pods/";
    memset(longname + strlen(longname), 'n', WC_HTTP_MAX_NAME + 1);
    char longns[200] = "/api/v1/namespaces/";
    memset(longns + strlen(longns), 'x', 64);
    strcat(longns, "/pods");
    struct {
        const char *path;
        long code;
    } t[] = {
        /* /keys: dot segments, raw or encoded, anywhere */
        {"/keys/a/../b", 400},
        {"/keys/../a/b", 400},
        {"/keys/./a/b", 400},
        {"/keys/a/.", 400},
        {"/keys/a/..", 400},
        {"/keys/a/../", 400},
        {"/keys/%2e%2e/a/b", 400},
        {"/keys/a/%2E%2E", 400},
        {"/keys/a/%2e", 400},
        {"/keys/a%2f..%2fb", 400},
        {"/keys/.%2e/a", 400},
        /* NUL and broken escapes */
        {"/keys/a%00b", 400},
        {"/keys/%00", 400},
        {"/keys/a%", 400},
        {"/keys/a%4", 400},
        {"/keys/a%zz", 400},
        /* empty segments */
        {"/keys//a/b", 400},
        {"/keys/a//b", 400},
        {"/keys//", 400},
        /* not the family */
        {"/keys..", 404},
        {"/keysa/b", 404},
        {longkey, 414}, /* past --max-uri-bytes (8 KiB) before the path bound (test_route.c) */
        /* names that only look like dots are keys like any other */
        {"/keys/a/...", 404},
        {"/keys/.a", 404},
        {"/keys/a/b", 200},
        {"/keys/%61/b", 200},
        /* Kubernetes routes */
        {"/api/v1/namespaces/default/pods/..", 400},
        {"/api/v1/namespaces/default/pods/.", 400},
        {"/api/v1/namespaces/default/pods/%2e%2e", 400},
        {"/api/v1/namespaces/default/pods/%2E", 400},
        {"/api/v1/namespaces/../pods", 400},
        {"/api/v1/namespaces/%2e%2e/pods", 400},
        {"/api/v1/namespaces/default/pods/a%2fb", 400},
        {"/api/v1/namespaces/default/pods/p%00", 400},
        {"/api/v1/namespaces/default/pods/p%zz", 400},
        {"/api/v1/namespaces/default/pods/p%", 400},
        {"/api/v1/namespaces/de%00fault/pods", 400},
        {"/api/v1/namespaces/default//pods", 404},
        {"/api//v1/pods", 404},
        {"/api/v1//pods", 404},
        {"/api/v1/pods/", 404},
        {"/api/v1/../v1/pods", 404},
        {"/api/v1/namespaces/default/../default/pods/p", 404},
        {"/apis/%2e%2e/v1/pods", 404},
        {"/apis/../api/v1/pods", 404},
        {"/api/v1/namespaces/default/pods/p/..", 404},
        {"/api/v1/namespaces/default/pods/p/../../secrets", 404},
        {longname, 400},
        {longns, 400},
        {"/api/v1/namespaces/default/pods/p", 200},
        {"/api/v1/namespaces/default/pods/%70", 200},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        http_resp r;
        char *u = malloc(strlen(base) + strlen(t[i].path) + 1);
        strcpy(u, base);
        strcat(u, t[i].path);
        cr_assert_eq(http_get(u, &r), 0, "%s", t[i].path);
        free(u);
        cr_assert_eq(r.code, t[i].code, "%.80s: %ld, want %ld: %s", t[i].path, r.code, t[i].code,
                     r.body);
        json_t *j = parse(r.body);
        if (t[i].code != 200) {
            cr_assert_str_eq(jstr(j, "kind"), "Status", "%s", t[i].path);
            cr_assert_eq(json_integer_value(json_object_get(j, "code")), t[i].code);
        }
        json_decref(j);
        http_resp_free(&r);
    }
    /* still serving */
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

/* A request with n query parameters, as one raw request. */
static char *many_params(const char *path, int n)
{
    size_t cap = strlen(path) + (size_t)n * 16 + 128;
    char *req = malloc(cap);
    size_t o = (size_t)snprintf(req, cap, "GET %s?", path);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(req + o, cap - o, "%sp%d=1", i ? "&" : "", i);
    snprintf(req + o, cap - o, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return req;
}

Test(server, too_many_query_parameters_get_414_at_any_count)
{
    const int counts[] = {65, 400, 600, 1000, 3000};
    const char *paths[] = {"/keys/", "/api/v1/pods", "/healthz"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
            char *req = many_params(paths[p], counts[i]);
            char *out = raw_exchange(req);
            cr_assert(strstr(out, "HTTP/1.1 414 "), "%s with %d parameters: %.300s", paths[p],
                      counts[i], out);
            cr_assert(strstr(out, "\"kind\":\"Status\""), "%.300s", out);
            cr_assert(strstr(out, "\"code\":414"), "%.300s", out);
            free(out);
            free(req);
        }
    }
    /* 64 are still read as usual */
    char *req = many_params("/keys/", 64);
    char *out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%.300s", out);
    free(out);
    free(req);
    /* a request line too long for any path is refused, and the server goes on */
    char *line = malloc(40000);
    strcpy(line, "GET /keys/");
    memset(line + 10, 'a', 30000);
    strcpy(line + 30010, " HTTP/1.1\r\nHost: x\r\n\r\n");
    out = raw_exchange(line);
    cr_assert(strstr(out, "HTTP/1.1 414 "), "%.300s", out);
    free(out);
    free(line);
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

/* A request of n parameters (as many_params) answered `code`, with a Status for a refusal. */
static void expect_params_answer(int n, const char *code)
{
    char *req = many_params("/keys/", n);
    char *out = raw_exchange(req);
    cr_assert(strncmp(out, code, strlen(code)) == 0, "%d parameters: %.300s", n, out);
    free(out);
    free(req);
}

Test(custom, the_parameter_bound_is_a_setting)
{
    fixture_cfg cfg = {.max_query_params = 8};
    fixture_start(&cfg);
    expect_params_answer(8, "HTTP/1.1 200 OK\r\n");
    expect_params_answer(9, "HTTP/1.1 414 ");
    char *req = many_params("/keys/", 9);
    char *out = raw_exchange(req);
    cr_assert(strstr(out, "more than 8 query parameters"), "%.400s", out);
    free(out);
    free(req);
    expect_params_answer(64, "HTTP/1.1 414 ");
}

/* A bound far past what the default buffer holds: the buffer grows with it, so the requests
 * up to it are read and answered (not held with no answer, as when MHD's buffer runs out). */
Test(custom, a_large_parameter_bound_grows_the_buffer_to_hold_it)
{
    fixture_cfg cfg = {.max_query_params = 3000, .max_uri_bytes = 64 * 1024};
    fixture_start(&cfg);
    expect_params_answer(3000, "HTTP/1.1 200 OK\r\n");
    expect_params_answer(3001, "HTTP/1.1 414 ");
    expect_params_answer(600, "HTTP/1.1 200 OK\r\n");
}

/* A request-target of exactly n bytes: "/keys/" and a query of one long parameter. */
static char *target_of(size_t n)
{
    char *req = malloc(n + 128);
    size_t o = (size_t)sprintf(req, "GET /keys/?pad=");
    memset(req + o, 'a', n - (o - 4));
    o += n - (o - 4);
    strcpy(req + o, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return req;
}

Test(custom, the_target_bound_is_a_setting)
{
    fixture_cfg cfg = {.max_uri_bytes = 2048};
    fixture_start(&cfg);
    char *req = target_of(2048);
    char *out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%.300s", out);
    free(out);
    free(req);
    req = target_of(2049);
    out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 414 ") && strstr(out, "or 2048 bytes"), "%.400s", out);
    free(out);
    free(req);
    /* and at the largest allowed, with the longest header block and the most parameters the
     * defaults allow beside it, the buffer still holds the request */
    fixture_stop();
    fixture_cfg big = {.max_uri_bytes = 1024 * 1024};
    fixture_start(&big);
    req = target_of(1024 * 1024);
    out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%.300s", out);
    free(out);
    free(req);
}

/* At every default bound at once (16 KiB of target holding 64 parameters, 16 KiB of header
 * fields) the request is read and answered by wcached. */
Test(server, a_request_at_every_default_bound_is_answered)
{
    char *req = malloc(64 * 1024);
    size_t o = (size_t)sprintf(req, "GET /keys/?");
    for (int i = 0; i < WC_HTTP_MAX_QUERY_PARAMS - 1; i++)
        o += (size_t)sprintf(req + o, "p%d=1&", i);
    o += (size_t)sprintf(req + o, "pad=");
    size_t pad = WC_HTTP_MAX_URI_BYTES - (o - 4);
    memset(req + o, 'a', pad);
    o += pad;
    o += (size_t)sprintf(req + o, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ");
    /* "Host" "x" "Connection" "close" "X-Pad": 25 bytes of names and values besides the pad */
    pad = WC_HTTP_MAX_HEADER_BYTES - 25;
    memset(req + o, 'b', pad);
    o += pad;
    strcpy(req + o, "\r\n\r\n");
    char *out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%.300s", out);
    free(out);
    free(req);
}

Test(custom, the_page_cap_is_a_setting)
{
    fixture_cfg cfg = {.max_page_size = 3};
    fixture_start(&cfg);
    char key[32];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "/pc/%d", i);
        put(key, "v");
    }
    json_t *j = get_json(url("/keys/pc/?limit=100"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 3);
    const char *c = jstr(j, "metadata.continue");
    cr_assert_not_null(c);
    json_t *j2 = get_json(url("/keys/pc/?limit=100&continue=%s", c), 200);
    cr_assert_eq(json_array_size(json_object_get(j2, "items")), 2);
    cr_assert_null(jstr(j2, "metadata.continue"));
    json_decref(j2);
    json_decref(j);
    /* a list without limit is not paged */
    j = get_json(url("/keys/pc/"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 5);
    json_decref(j);
}

Test(custom, the_timeout_bound_is_a_setting)
{
    fixture_cfg cfg = {.max_timeout_s = 60};
    fixture_start(&cfg);
    const char *msg = expect_status(url("/keys/?watch=1&timeoutSeconds=61"), 400, "BadRequest");
    cr_assert(strstr(msg, "\"timeoutSeconds\"") && strstr(msg, "at most 60 seconds"), "%s", msg);
    json_t *j = get_json(url("/keys/?timeoutSeconds=60"), 200);
    json_decref(j);
    watch *w = watch_open(url("/keys/?watch=1&timeoutSeconds=1"));
    cr_assert_not_null(w);
    cr_assert(watch_wait_end(w, 10000), "the stream did not end at its timeout");
    cr_assert_eq(watch_code(w), 200);
    watch_close(w);
}

/* A request whose header block never ends in time is closed at its deadline. */
Test(custom, broken_or_unfinished_requests_are_answered_or_closed_in_time)
{
    fixture_cfg cfg = {.header_timeout_ms = 500};
    fixture_start(&cfg);
    const char *reqs[] = {
        "\x00\x01\x02\r\n\r\n",
        "\r\n\r\n",
        "\r\n",
        "xyz\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1",
        "GET /keys/a",
        "",
        /* a body announced and never sent in whole */
        "POST /keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = raw_open(wc_http_port(srv), 0, reqs[i]);
        cr_assert_geq(fd, 0);
        char *out;
        size_t len;
        /* the deadline is 0.5 s; 10 s is only the bound of the wait */
        cr_assert_eq(raw_read_to_end(fd, 10000, &out, &len), 0, "request %zu is held open: %s", i,
                     out);
        free(out);
    }
    /* a client that trickles its headers, a line every 100 ms, is closed all the same: the
     * deadline counts from the connection's start, not from its last byte */
    int fd = raw_open(wc_http_port(srv), 0, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    cr_assert_geq(fd, 0);
    bool closed = false;
    for (int i = 0; i < 100 && !closed; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char b[256];
        if (poll(&pfd, 1, 100) > 0 && recv(fd, b, sizeof(b), MSG_DONTWAIT) <= 0)
            closed = true;
        else if (send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0)
            closed = true;
    }
    close(fd);
    cr_assert(closed, "a trickling client held its connection for 10 s");
    cr_assert_geq(atomic_load(&srv->header_timeouts), 1);
    /* a complete request is answered, and its connection waits for the next one */
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    char *out = raw_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strstr(out, "HTTP/1.1 200 OK\r\n"), "%s", out);
    free(out);
}

Test(server, bad_params_name_the_parameter)
{
    struct {
        const char *q, *param;
    } t[] = {
        {"resourceVersion=abc", "resourceVersion"},
        {"resourceVersion=5&resourceVersionMatch=Sometimes", "resourceVersionMatch"},
        {"resourceVersionMatch=Exact", "resourceVersionMatch"},
        {"watch=maybe", "watch"},
        {"watch=1&allowWatchBookmarks=x", "allowWatchBookmarks"},
        {"watch=1&timeoutSeconds=-3", "timeoutSeconds"},
        {"watch=1&sendInitialEvents=true", "sendInitialEvents"},
        {"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "sendInitialEvents"},
        {"labelSelector=a+in+(", "labelSelector"},
        {"fieldSelector=spec.foo%3Dbar", "fieldSelector"},
        {"limit=x", "limit"},
        {"continue=not-a-token", "continue"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *msg = expect_status(url("/keys/a/?%s", t[i].q), 400, "BadRequest");
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "\"%s\"", t[i].param);
        cr_assert_not_null(strstr(msg, quoted), "%s: \"%s\" does not name %s", t[i].q, msg,
                           t[i].param);
    }
}

/* ---------------------------------------------------------------------------------------
 * Get and list
 * ------------------------------------------------------------------------------------- */

Test(server, keys_get_and_list)
{
    put("/k/b", "two");
    put("/k/a", "one");
    int64_t last = put("/k/c", "\xff\xfe");
    put("/other", "x");
    json_t *j = get_json(url("/keys/k/a"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "KeyValue");
    cr_assert_str_eq(jstr(j, "apiVersion"), "wcached/v1");
    cr_assert_str_eq(jstr(j, "key"), "/k/a");
    cr_assert_str_eq(jstr(j, "value"), "one");
    cr_assert_str_eq(jstr(j, "metadata.name"), "/k/a");
    json_decref(j);
    j = get_json(url("/keys/k/c"), 200);
    cr_assert_null(json_object_get(j, "value"));
    cr_assert_not_null(json_object_get(j, "valueBase64"));
    json_decref(j);
    const char *msg = expect_status(url("/keys/k/zz"), 404, "NotFound");
    cr_assert_not_null(strstr(msg, "/k/zz"));

    j = get_json(url("/keys/k/?resourceVersion=0"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "KeyValueList");
    cr_assert_str_eq(jstr(j, "apiVersion"), "wcached/v1");
    char rv[32];
    snprintf(rv, sizeof(rv), "%" PRId64, last + 1);
    cr_assert_str_eq(jstr(j, "metadata.resourceVersion"), rv);
    json_t *items = json_object_get(j, "items");
    cr_assert_eq(json_array_size(items), 3);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "key"), "/k/a");
    cr_assert_str_eq(jstr(json_array_get(items, 2), "key"), "/k/c");
    cr_assert_null(json_object_get(json_object_get(j, "metadata"), "continue"));
    json_decref(j);

    j = get_json(url("/keys/empty/"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    j = get_json(url("/keys"), 200); /* the whole key space */
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 4);
    json_decref(j);
}

Test(server, k8s_routes)
{
    put_pod("default", "web-1", "web", "n1");
    put_pod("default", "web-2", "web", "n2");
    put_pod("kube-system", "dns", "dns", "n1");
    put("/registry/pods/default/garbage", "\x0a\x03k8s\x00protobuf");
    put("/registry/deployments/default/api", "{\"metadata\":{\"name\":\"api\"}}");
    put("/registry/minions/n1", "{\"metadata\":{\"name\":\"n1\"}}");
    put("/registry/services/specs/default/svc", "{\"metadata\":{\"name\":\"svc\"}}");

    json_t *j = get_json(url("/api/v1/namespaces/default/pods/web-1"), 200);
    cr_assert_str_eq(jstr(j, "metadata.name"), "web-1");
    cr_assert_not_null(jstr(j, "metadata.resourceVersion"));
    json_decref(j);
    const char *msg = expect_status(url("/api/v1/namespaces/default/pods/nope"), 404, "NotFound");
    cr_assert_not_null(strstr(msg, "pods \"nope\" not found"), "%s", msg);
    expect_status(url("/api/v1/namespaces/default/pods/garbage"), 404, "NotFound");

    j = get_json(url("/api/v1/namespaces/default/pods"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "PodList");
    cr_assert_str_eq(jstr(j, "apiVersion"), "v1");
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 2); /* garbage left out */
    json_decref(j);
    j = get_json(url("/api/v1/pods"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 3);
    json_decref(j);
    j = get_json(url("/apis/apps/v1/namespaces/default/deployments"), 200);
    cr_assert_str_eq(jstr(j, "kind"), "DeploymentList");
    cr_assert_str_eq(jstr(j, "apiVersion"), "apps/v1");
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
    j = get_json(url("/api/v1/nodes/n1"), 200);
    cr_assert_str_eq(jstr(j, "metadata.name"), "n1");
    json_decref(j);
    j = get_json(url("/api/v1/services"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
    j = get_json(url("/api/v1/namespaces/default/pods?labelSelector=app%%3Dweb&"
                     "fieldSelector=metadata.name%%3Dweb-2"),
                 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
}

Test(server, pagination_is_consistent)
{
    char key[64];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "/p/%02d", i);
        put(key, "orig");
    }
    char cont[4096] = "";
    int seen = 0;
    const char *page_rv = NULL;
    char rv0[32] = "";
    for (int page = 0; page < 10; page++) {
        json_t *j = get_json(
            cont[0] ? url("/keys/p/?limit=3&continue=%s", cont) : url("/keys/p/?limit=3"), 200);
        page_rv = jstr(j, "metadata.resourceVersion");
        if (!rv0[0])
            snprintf(rv0, sizeof(rv0), "%s", page_rv);
        cr_assert_str_eq(page_rv, rv0, "pages of one list share one revision");
        json_t *items = json_object_get(j, "items");
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            snprintf(key, sizeof(key), "/p/%02d", seen);
            cr_assert_str_eq(jstr(it, "key"), key);
            cr_assert_str_eq(jstr(it, "value"), "orig");
            seen++;
        }
        /* change everything between pages: later pages must not see it */
        put("/p/05", "changed");
        put("/p/055", "new");
        if (page == 0)
            del("/p/08");
        const char *c = jstr(j, "metadata.continue");
        if (!c) {
            json_decref(j);
            break;
        }
        cr_assert_eq(json_array_size(items), 3);
        snprintf(cont, sizeof(cont), "%s", c);
        json_decref(j);
    }
    cr_assert_eq(seen, 10);
    /* a tampered token is refused */
    expect_status(url("/keys/p/?limit=3&continue=%sX", cont[0] ? cont : "AA"), 400, "BadRequest");
}

Test(server, list_resource_versions)
{
    int64_t r1 = put("/e/a", "v1");
    put("/e/a", "v2");
    put("/e/b", "x");
    /* Exact at a past revision: the state then */
    json_t *j =
        get_json(url("/keys/e/?resourceVersion=%" PRId64 "&resourceVersionMatch=Exact", r1), 200);
    json_t *items = json_object_get(j, "items");
    cr_assert_eq(json_array_size(items), 1);
    cr_assert_str_eq(jstr(json_array_get(items, 0), "value"), "v1");
    json_decref(j);
    /* NotOlderThan a revision the cache has: at once */
    j = get_json(url("/keys/e/?resourceVersion=%" PRId64 "&resourceVersionMatch=NotOlderThan", r1),
                 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 2);
    json_decref(j);
    /* a revision the cache does not reach in time: 504 with Retry-After */
    http_resp r;
    cr_assert_eq(http_get(url("/keys/e/?resourceVersion=%" PRId64, g_rev + 100), &r), 0);
    cr_assert_eq(r.code, 504);
    cr_assert_not_null(strstr(r.body, "Too large resource version"));
    cr_assert_not_null(strcasestr(r.headers, "Retry-After: 1"));
    http_resp_free(&r);
    /* a revision reached while the request waits */
    int64_t want = g_rev + 1;
    watch *w = watch_open(url("/keys/e/?resourceVersion=%" PRId64, want));
    usleep(200 * 1000);
    int64_t late = put("/e/c", "late");
    cr_assert(watch_wait_end(w, 5000));
    cr_assert_eq(watch_code(w), 200);
    /* The answer is the state at the awaited revision, not the one the request came to. */
    char *body = watch_body(w);
    j = parse(body);
    free(body);
    cr_assert_eq(strtoll(jstr(j, "metadata.resourceVersion"), NULL, 10), late);
    items = json_object_get(j, "items");
    cr_assert_eq(json_array_size(items), 3);
    cr_assert_str_eq(jstr(json_array_get(items, 2), "key"), "/e/c");
    json_decref(j);
    watch_close(w);
}

Test(custom, exact_below_floor_is_expired)
{
    fixture_cfg cfg = {.ring_events = 4};
    fixture_start(&cfg);
    int64_t first = put("/x/a", "0");
    for (int i = 0; i < 10; i++)
        put("/x/a", "more");
    expect_status(url("/keys/x/?resourceVersion=%" PRId64 "&resourceVersionMatch=Exact", first),
                  410, "Expired");
}

/* ---------------------------------------------------------------------------------------
 * Consistent reads and readiness
 * ------------------------------------------------------------------------------------- */

Test(custom, consistent_list_waits_for_etcd)
{
    fixture_cfg cfg = {.consistent = true, .wait_ms = 800};
    fixture_start(&cfg);
    put("/c/a", "1");
    atomic_store(&etcd_ahead, 5); /* writes elsewhere in etcd: the cache must catch up */
    json_t *j = get_json(url("/keys/c/"), 200);
    char rv[32];
    snprintf(rv, sizeof(rv), "%" PRId64, g_rev + 5);
    cr_assert_str_eq(jstr(j, "metadata.resourceVersion"), rv);
    json_decref(j);
    /* the upstream cannot make progress: 504 after the wait */
    atomic_store(&progress_works, false);
    atomic_store(&etcd_ahead, 50);
    http_resp r;
    cr_assert_eq(http_get(url("/keys/c/a"), &r), 0);
    cr_assert_eq(r.code, 504, "%s", r.body);
    http_resp_free(&r);
    /* RV=0 does not wait */
    j = get_json(url("/keys/c/?resourceVersion=0"), 200);
    json_decref(j);
}

Test(custom, not_ready_answers_429)
{
    fixture_cfg cfg = {.not_ready = true};
    fixture_start(&cfg);
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/readyz"), &r), 0);
    cr_assert_eq(r.code, 503);
    cr_assert_not_null(strstr(r.body, "not ready"));
    http_resp_free(&r);
    const char *paths[] = {"/keys/a", "/keys/a/", "/keys/a/?watch=true", "/api/v1/pods?watch=1"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(http_get(url("%s", paths[i]), &r), 0);
        cr_assert_eq(r.code, 429, "%s", paths[i]);
        cr_assert_not_null(strcasestr(r.headers, "Retry-After:"), "%s", paths[i]);
        json_t *j = parse(r.body);
        cr_assert_str_eq(jstr(j, "reason"), "TooManyRequests");
        json_decref(j);
        http_resp_free(&r);
    }
}

/* ---------------------------------------------------------------------------------------
 * Watch
 * ------------------------------------------------------------------------------------- */

/* The live-order check, shared by the plain and the coalescing server. */
static void live_puts_in_order(void)
{
    put("/w/seed", "0");
    watch *w = watch_open(url("/keys/w/?watch=true&resourceVersion=%" PRId64, g_rev));
    usleep(100 * 1000);
    int64_t revs[20];
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof(k), "/w/%d", i % 5);
        revs[i] = put(k, "v");
    }
    cr_assert(watch_wait_lines(w, 20, 5000), "got %zu lines", watch_nlines(w));
    cr_assert_eq(watch_code(w), 200);
    for (int i = 0; i < 20; i++) {
        json_t *ev = event(w, (size_t)i);
        cr_assert_str_eq(jstr(ev, "type"), i < 5 ? "ADDED" : "MODIFIED");
        cr_assert_eq(obj_rv(ev), revs[i]);
        json_decref(ev);
    }
    del("/w/0");
    cr_assert(watch_wait_lines(w, 21, 5000));
    json_t *ev = event(w, 20);
    cr_assert_str_eq(jstr(ev, "type"), "DELETED");
    json_decref(ev);
    watch_close(w);
}

Test(server, watch_sees_live_puts_in_order)
{
    live_puts_in_order();
}

Test(custom, coalesced_resumes_keep_order)
{
    fixture_cfg cfg = {.coalesce_ms = 5};
    fixture_start(&cfg);
    live_puts_in_order();
    /* a burst reaches many readers in few sends each, still in order and complete */
    enum { N = 20, EVENTS = 100 };
    watch *w[N];
    for (int i = 0; i < N; i++)
        w[i] = watch_open(url("/keys/cb/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < N; tries++)
        usleep(10 * 1000);
    int64_t first = g_rev + 1;
    for (int e = 0; e < EVENTS; e++)
        put("/cb/k", "{}");
    for (int i = 0; i < N; i++) {
        cr_assert(watch_wait_lines(w[i], EVENTS, 10000));
        cr_assert_eq(watch_nlines(w[i]), EVENTS, "reader %d: no event twice", i);
        for (int e = 0; e < EVENTS; e++) {
            json_t *ev = event(w[i], (size_t)e);
            cr_assert_eq(obj_rv(ev), first + e, "reader %d, event %d", i, e);
            json_decref(ev);
        }
        watch_close(w[i]);
    }
}

Test(custom, a_busy_stream_gathers_its_events_an_idle_one_is_sent_at_once)
{
    /* A long cooling (the longest the daemon takes), so that a stream sent to holds its next
     * events past the run of them. */
    fixture_cfg cfg = {.coalesce_ms = 1000};
    fixture_start(&cfg);
    enum { EVENTS = 30 };
    watch *a = watch_open(url("/keys/ca/?watch=1&resourceVersion=%" PRId64, g_rev));
    watch *b = watch_open(url("/keys/cbb/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < 2; tries++)
        usleep(10 * 1000);
    int64_t first = g_rev + 1;
    uint64_t sends0 = atomic_load(&srv->sends);
    /* Events for a, one every 20 ms: without gathering, each would be a send of its own. */
    for (int e = 0; e < EVENTS; e++) {
        put("/ca/k", "{}");
        if (e == 0)
            cr_assert(watch_wait_lines(a, 1, 2000), "an idle stream is sent its event at once");
        usleep(20 * 1000);
    }
    /* b was idle: its event goes at once, while a still cools. */
    put("/cbb/1", "{}");
    cr_assert(watch_wait_lines(b, 1, 2000), "another idle stream is not held by a's cooling");
    cr_assert(watch_wait_lines(a, EVENTS, 10000), "a's gathered events come when it cooled");
    cr_assert_eq(watch_nlines(a), EVENTS, "each once");
    for (size_t e = 0; e < EVENTS; e++) {
        json_t *ev = event(a, e);
        cr_assert_eq(obj_rv(ev), first + (int64_t)e, "in order");
        json_decref(ev);
    }
    uint64_t sends = atomic_load(&srv->sends) - sends0;
    cr_assert_leq(sends, 10, "%d events for a and 1 for b took %" PRIu64 " sends", EVENTS, sends);
    watch_close(a);
    watch_close(b);
}

Test(custom, a_pump_of_few_streams_is_sent_for_by_the_publisher_a_crowd_waits_for_its_pump)
{
    fixture_cfg cfg = {.threads = 1};
    fixture_start(&cfg);
    enum { EVENTS = 20, CROWD = 17 };
    /* One reader: its pump is idle between events, so the thread that publishes each one
     * sends it (pump 0's tick may hold the pump now and then: then the pump does). */
    watch *a = watch_open(url("/keys/fa/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < 1; tries++)
        usleep(10 * 1000);
    int64_t first = g_rev + 1;
    uint64_t here0 = atomic_load(&srv->rounds_here);
    for (int e = 0; e < EVENTS; e++) {
        put("/fa/k", "{}");
        cr_assert(watch_wait_lines(a, (size_t)e + 1, 5000), "event %d", e);
    }
    uint64_t here = atomic_load(&srv->rounds_here) - here0;
    cr_assert_gt(here, EVENTS / 2, "%" PRIu64 " of %d events sent by their publisher", here,
                 EVENTS);
    for (size_t e = 0; e < EVENTS; e++) {
        json_t *ev = event(a, e);
        cr_assert_eq(obj_rv(ev), first + (int64_t)e, "in order, each once");
        json_decref(ev);
    }
    /* A pump of more than 16 streams is always woken: the publisher is not held up by them. */
    watch *c[CROWD];
    for (int i = 0; i < CROWD; i++)
        c[i] = watch_open(url("/keys/fc/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < CROWD + 1; tries++)
        usleep(10 * 1000);
    first = g_rev + 1;
    here0 = atomic_load(&srv->rounds_here);
    for (int e = 0; e < EVENTS; e++) {
        put("/fc/k", "{}");
        cr_assert(watch_wait_lines(c[0], (size_t)e + 1, 5000), "event %d", e);
    }
    cr_assert_eq(atomic_load(&srv->rounds_here), here0, "no round run by the publisher");
    for (int i = 0; i < CROWD; i++) {
        cr_assert(watch_wait_lines(c[i], EVENTS, 5000));
        cr_assert_eq(watch_nlines(c[i]), EVENTS, "reader %d: each once", i);
        for (size_t e = 0; e < EVENTS; e++) {
            json_t *ev = event(c[i], e);
            cr_assert_eq(obj_rv(ev), first + (int64_t)e, "reader %d: in order", i);
            json_decref(ev);
        }
        watch_close(c[i]);
    }
    watch_close(a);
}

Test(server, watch_initial_state_and_replay)
{
    int64_t r1 = put("/r/a", "1");
    put("/r/b", "2");
    put("/r/c", "3");
    /* RV=0: the state as ADDED events */
    watch *w = watch_open(url("/keys/r/?watch=1&resourceVersion=0"));
    cr_assert(watch_wait_lines(w, 3, 5000));
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = event(w, i);
        cr_assert_str_eq(jstr(ev, "type"), "ADDED");
        json_decref(ev);
    }
    watch_close(w);
    /* RV=N: every change after N */
    w = watch_open(url("/keys/r/?watch=1&resourceVersion=%" PRId64, r1));
    cr_assert(watch_wait_lines(w, 2, 5000));
    json_t *ev = event(w, 0);
    cr_assert_str_eq(jstr(ev, "object.key"), "/r/b");
    json_decref(ev);
    ev = event(w, 1);
    cr_assert_str_eq(jstr(ev, "object.key"), "/r/c");
    json_decref(ev);
    usleep(300 * 1000);
    cr_assert_eq(watch_nlines(w), 2);
    watch_close(w);
    /* the legacy path form, on one named object */
    put_pod("d", "p1", "a", "n");
    w = watch_open(url("/api/v1/watch/namespaces/d/pods/p1?resourceVersion=0"));
    cr_assert(watch_wait_lines(w, 1, 5000));
    ev = event(w, 0);
    cr_assert_str_eq(jstr(ev, "object.metadata.name"), "p1");
    json_decref(ev);
    watch_close(w);
}

Test(custom, watch_too_old_gets_one_410_event)
{
    fixture_cfg cfg = {.ring_events = 4};
    fixture_start(&cfg);
    int64_t first = put("/o/a", "0");
    for (int i = 0; i < 10; i++)
        put("/o/a", "x");
    watch *w = watch_open(url("/keys/o/?watch=true&resourceVersion=%" PRId64, first));
    cr_assert(watch_wait_end(w, 5000));
    cr_assert_eq(watch_code(w), 200);
    cr_assert(watch_complete_chunked(w));
    cr_assert_eq(watch_nlines(w), 1);
    json_t *ev = event(w, 0);
    cr_assert_str_eq(jstr(ev, "type"), "ERROR");
    cr_assert_str_eq(jstr(ev, "object.kind"), "Status");
    cr_assert_str_eq(jstr(ev, "object.reason"), "Expired");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ev, "object"), "code")), 410);
    char want[64];
    snprintf(want, sizeof(want), "too old resource version: %" PRId64 " (", first);
    cr_assert_not_null(strstr(jstr(ev, "object.message"), want), "%s", jstr(ev, "object.message"));
    json_decref(ev);
    watch_close(w);
}

Test(server, watch_timeout_ends_cleanly)
{
    watch *w = watch_open(url("/keys/t/?watch=1&timeoutSeconds=1"));
    cr_assert(watch_wait_end(w, 4000), "the stream did not end");
    cr_assert_eq(watch_code(w), 200);
    cr_assert(watch_complete_chunked(w));
    watch_close(w);
}

Test(custom, bookmarks_before_timeout)
{
    fixture_cfg cfg = {.bookmark_ms = 500};
    fixture_start(&cfg);
    put("/b/a", "1");
    watch *w = watch_open(url("/keys/b/?watch=1&allowWatchBookmarks=true&timeoutSeconds=3&"
                              "resourceVersion=%" PRId64,
                              g_rev));
    cr_assert(watch_wait_end(w, 6000));
    cr_assert(watch_complete_chunked(w));
    size_t n = watch_nlines(w), bookmarks = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ev = event(w, i);
        if (strcmp(jstr(ev, "type"), "BOOKMARK") == 0) {
            bookmarks++;
            cr_assert_str_eq(jstr(ev, "object.kind"), "KeyValue");
            cr_assert_geq(obj_rv(ev), g_rev);
        }
        json_decref(ev);
    }
    cr_assert_geq(bookmarks, 1);
    watch_close(w);
}

Test(server, send_initial_events_then_end_bookmark)
{
    put_pod("ns", "a", "x", "n1");
    put_pod("ns", "b", "x", "n1");
    watch *w = watch_open(url("/api/v1/namespaces/ns/pods?watch=1&sendInitialEvents=true&"
                              "allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"));
    cr_assert(watch_wait_lines(w, 3, 5000));
    json_t *ev = event(w, 0);
    cr_assert_str_eq(jstr(ev, "type"), "ADDED");
    json_decref(ev);
    ev = event(w, 2);
    cr_assert_str_eq(jstr(ev, "type"), "BOOKMARK");
    cr_assert_str_eq(jstr(ev, "object.kind"), "Pod");
    json_t *ann =
        json_object_get(json_object_get(json_object_get(ev, "object"), "metadata"), "annotations");
    cr_assert_str_eq(json_string_value(json_object_get(ann, "k8s.io/initial-events-end")), "true");
    json_decref(ev);
    watch_close(w);
}

Test(server, selector_transitions)
{
    int64_t start = put_pod("s", "p", "db", "n1");
    watch *w = watch_open(url("/api/v1/namespaces/s/pods?watch=1&labelSelector=app%%3Dweb&"
                              "resourceVersion=%" PRId64,
                              start));
    usleep(100 * 1000);
    put_pod("s", "p", "db", "n2");  /* never matches: not sent */
    put_pod("s", "p", "web", "n2"); /* starts matching: ADDED */
    put_pod("s", "p", "web", "n3"); /* MODIFIED */
    put_pod("s", "p", "db", "n3");  /* stops matching: DELETED */
    put_pod("s", "q", "db", "n3");  /* never matches */
    cr_assert(watch_wait_lines(w, 3, 5000));
    const char *types[] = {"ADDED", "MODIFIED", "DELETED"};
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = event(w, i);
        cr_assert_str_eq(jstr(ev, "type"), types[i]);
        json_decref(ev);
    }
    usleep(300 * 1000);
    cr_assert_eq(watch_nlines(w), 3);
    watch_close(w);
}

Test(custom, index_field_selector)
{
    fixture_cfg cfg = {.index_field = "spec.nodeName"};
    fixture_start(&cfg);
    watch *w = watch_open(url("/api/v1/pods?watch=1&fieldSelector=spec.nodeName%%3Dnode-7&"
                              "resourceVersion=%" PRId64,
                              g_rev));
    usleep(100 * 1000);
    put_pod("a", "p1", "x", "node-1");
    put_pod("a", "p2", "x", "node-7");
    put_pod("b", "p3", "x", "node-7");
    cr_assert(watch_wait_lines(w, 2, 5000));
    json_t *ev = event(w, 1);
    cr_assert_str_eq(jstr(ev, "object.metadata.name"), "p3");
    json_decref(ev);
    watch_close(w);
    expect_status(url("/api/v1/pods?fieldSelector=spec.other%%3Dx"), 400, "BadRequest");
}

Test(server, many_watchers_see_the_identical_stream)
{
    enum { N = 200, EVENTS = 30 };
    watch *w[N];
    int64_t from = g_rev;
    for (int i = 0; i < N; i++)
        w[i] = watch_open(url("/keys/m/?watch=1&resourceVersion=%" PRId64, from));
    for (int tries = 0; tries < 500 && watchers_now() < N; tries++)
        usleep(10 * 1000);
    cr_assert_eq(watchers_now(), N);
    int64_t revs[EVENTS];
    for (int e = 0; e < EVENTS; e++) {
        char k[32];
        snprintf(k, sizeof(k), "/m/%d", e % 7);
        revs[e] = put(k, "{\"n\":1}");
    }
    /* The first reader's stream is the writes themselves; every other one is identical. */
    cr_assert(watch_wait_lines(w[0], EVENTS, 10000), "watcher 0 got %zu", watch_nlines(w[0]));
    for (int e = 0; e < EVENTS; e++) {
        char k[32];
        snprintf(k, sizeof(k), "/m/%d", e % 7);
        json_t *ev = event(w[0], (size_t)e);
        cr_assert_str_eq(jstr(ev, "type"), e < 7 ? "ADDED" : "MODIFIED", "event %d", e);
        cr_assert_str_eq(jstr(ev, "object.key"), k, "event %d", e);
        cr_assert_eq(obj_rv(ev), revs[e], "event %d", e);
        json_decref(ev);
    }
    char *ref = NULL;
    for (int i = 0; i < N; i++) {
        cr_assert(watch_wait_lines(w[i], EVENTS, 10000), "watcher %d got %zu", i,
                  watch_nlines(w[i]));
        char *last = watch_line(w[i], EVENTS - 1);
        if (!ref)
            ref = last;
        else {
            cr_assert_str_eq(last, ref);
            free(last);
        }
        for (size_t l = 0; l < EVENTS; l += 7) {
            char *a = watch_line(w[i], l), *b = watch_line(w[0], l);
            cr_assert_str_eq(a, b);
            free(a);
            free(b);
        }
    }
    free(ref);
    for (int i = 0; i < N; i++)
        watch_close(w[i]);
}

Test(server, big_objects_through_small_buffers)
{
    /* objects far larger than a connection's buffer arrive whole, in order */
    enum { SIZE = 64 * 1024 };
    char *v = malloc(SIZE + 64);
    watch *w = watch_open(url("/keys/big/?watch=1&resourceVersion=%" PRId64, g_rev));
    usleep(100 * 1000);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(v, SIZE, "{\"i\":%d,\"pad\":\"", i);
        memset(v + n, 'a' + i, SIZE - n - 2);
        strcpy(v + SIZE - 2, "\"}");
        put("/big/k", v);
    }
    cr_assert(watch_wait_lines(w, 5, 10000));
    for (size_t i = 0; i < 5; i++) {
        json_t *ev = event(w, i);
        json_t *val = parse(jstr(ev, "object.value"));
        cr_assert_eq(json_integer_value(json_object_get(val, "i")), (json_int_t)i);
        cr_assert_eq(strlen(jstr(val, "pad")), SIZE - 2 - strlen("{\"i\":0,\"pad\":\""));
        json_decref(val);
        json_decref(ev);
    }
    watch_close(w);
    /* and a big list through the same server */
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "/biglist/%03d", i);
        put(key, v);
    }
    json_t *j = get_json(url("/keys/biglist/?resourceVersion=0"), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "items")), 40);
    json_decref(j);
    free(v);
}

/* GETs /healthz with a bearer token of n bytes; returns the status (0: no answer). */
static long get_with_token(size_t n)
{
    char *hdr = malloc(n + 32);
    strcpy(hdr, "Authorization: Bearer ");
    size_t off = strlen(hdr);
    memset(hdr + off, 'x', n);
    hdr[off + n] = '\0';
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, hdr);
    curl_easy_setopt(c, CURLOPT_URL, url("/healthz"));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    fclose(devnull);
    free(hdr);
    return code;
}

Test(server, request_headers_within_the_buffer)
{
    /* bearer tokens of 2 and 16 KiB (service-account JWTs, OIDC tokens) fit the default
     * buffer; headers past it get a 4xx answer, not a hang or a reset */
    cr_assert_eq(get_with_token(2000), 200);
    cr_assert_eq(get_with_token(16000), 200);
    long big = get_with_token(64000);
    cr_assert(big >= 400 && big < 500, "oversized headers: %ld", big);
}

Test(custom, consistent_watch_starts_from_etcd_revision)
{
    fixture_cfg cfg = {.consistent = true};
    fixture_start(&cfg);
    put("/cw/a", "1");
    atomic_store(&etcd_ahead, 3);
    watch *w = watch_open(url("/keys/cw/?watch=1&allowWatchBookmarks=true&"
                              "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"));
    cr_assert(watch_wait_lines(w, 2, 5000));
    json_t *ev = event(w, 0);
    cr_assert_str_eq(jstr(ev, "type"), "ADDED");
    json_decref(ev);
    ev = event(w, 1);
    cr_assert_str_eq(jstr(ev, "type"), "BOOKMARK");
    cr_assert_eq(obj_rv(ev), g_rev + 3, "the initial state is as of etcd's revision");
    json_decref(ev);
    watch_close(w);
}

/* GETs `path` over a raw connection and reads until the server closes it; splits off the
 * header block (returned, NUL-terminated) from the body (*body). */
static char *raw_get(const char *request, char **body, size_t *body_len)
{
    int fd = raw_open(wc_http_port(srv), 0, request);
    cr_assert_geq(fd, 0);
    char *resp;
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &resp, &len), 0, "the server ends the stream");
    char *end = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(end, "no header block: %s", resp);
    *end = '\0';
    *body = end + 4;
    *body_len = len - (size_t)(end + 4 - resp);
    return resp;
}

/* The n bytes at `lines` are exactly one line: an ADDED event of /keys `key`. Writes into them. */
static void expect_one_added(char *lines, size_t n, const char *key)
{
    cr_assert_gt(n, 0);
    cr_assert_eq(lines[n - 1], '\n');
    lines[n - 1] = '\0';
    cr_assert_null(strchr(lines, '\n'), "one event: %s", lines);
    json_t *ev = parse(lines);
    cr_assert_str_eq(jstr(ev, "type"), "ADDED");
    cr_assert_str_eq(jstr(ev, "object.key"), key);
    json_decref(ev);
}

/*
 * The payload of a chunked body (a new string of *n bytes): every byte must belong to a chunk.
 * With `terminated`, the body must end with the last chunk and its empty trailer; without, it
 * may stop anywhere after a whole chunk.
 */
static char *dechunk(const char *body, size_t len, bool terminated, size_t *n)
{
    char *data = malloc(len + 1);
    cr_assert_not_null(data);
    size_t dn = 0, i = 0; /* payload bytes gathered; position in the body */
    for (;;) {
        if (!terminated && i == len)
            break;
        const char *crlf = memmem(body + i, len - i, "\r\n", 2);
        cr_assert_not_null(crlf, "a chunk header without CRLF at %zu", i);
        char *endp;
        unsigned long k = strtoul(body + i, &endp, 16);
        cr_assert_eq(endp, crlf, "a bad chunk size at %zu", i);
        i = (size_t)(crlf + 2 - body);
        if (k == 0) {
            cr_assert_eq(len - i, 2, "after the last chunk: the empty trailer, then the close");
            cr_assert_eq(memcmp(body + i, "\r\n", 2), 0);
            break;
        }
        cr_assert_leq(i + k + 2, len, "a chunk cut short");
        memcpy(data + dn, body + i, k);
        dn += k;
        cr_assert_eq(memcmp(body + i + k, "\r\n", 2), 0);
        i += k + 2;
    }
    cr_assert(!terminated || i < len, "no last chunk");
    data[dn] = '\0';
    *n = dn;
    return data;
}

Test(server, watch_chunks_are_framed_and_terminated)
{
    int64_t rev = put("/tc/a", "1");
    char req[256];
    snprintf(req, sizeof(req),
             "GET /keys/tc/?watch=1&resourceVersion=%" PRId64 "&timeoutSeconds=1 HTTP/1.1\r\n"
             "Host: x\r\n\r\n",
             rev - 1);
    char *body;
    size_t len;
    char *hdr = raw_get(req, &body, &len);
    cr_assert(strstr(hdr, " 200 "), "%s", hdr);
    cr_assert(strcasestr(hdr, "\r\nTransfer-Encoding: chunked"), "%s", hdr);
    cr_assert(strcasestr(hdr, "\r\nConnection: close"), "%s", hdr);
    size_t dn = 0;
    char *data = dechunk(body, len, true, &dn);
    expect_one_added(data, dn, "/tc/a");
    free(data);
    free(hdr);
}

Test(server, watch_over_http10_is_raw_until_close)
{
    put("/t10/a", "1");
    char *body;
    size_t len;
    char *hdr = raw_get("GET /keys/t10/?watch=1&timeoutSeconds=1 HTTP/1.0\r\n\r\n", &body, &len);
    cr_assert(strstr(hdr, " 200 "), "%s", hdr);
    cr_assert_null(strcasestr(hdr, "Transfer-Encoding"), "no chunking for HTTP/1.0: %s", hdr);
    /* the body is the event lines themselves, and the close ends it */
    expect_one_added(body, len, "/t10/a");
    free(hdr);
}

/* Puts n JSON values of `size` bytes each to `key`, one after the other. */
static void put_big(const char *key, int n, size_t size)
{
    char *v = malloc(size + 16);
    cr_assert_not_null(v);
    for (int i = 0; i < n; i++) {
        int k = snprintf(v, size + 16, "{\"i\":%d,\"pad\":\"", i);
        memset(v + k, 'x', size - (size_t)k - 2);
        strcpy(v + size - 2, "\"}");
        put(key, v);
    }
    free(v);
}

Test(custom, reader_whose_socket_stays_full_is_cut_off)
{
    enum { N = 200, BIG = 32 * 1024 };
    fixture_cfg cfg = {.slow_budget_ms = 200};
    fixture_start(&cfg);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /keys/slow/?watch=1&resourceVersion=%" PRId64 " HTTP/1.1\r\nHost: x\r\n\r\n",
             g_rev);
    int fd = raw_open(wc_http_port(srv), 4096, req); /* and then it reads nothing */
    cr_assert_geq(fd, 0);
    watch *fast = watch_open(url("/keys/slow/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < 2; tries++)
        usleep(10 * 1000);
    cr_assert_eq(watchers_now(), 2);
    put_big("/slow/k", N, BIG);
    cr_assert(watch_wait_lines(fast, N, 20000), "the fast reader got %zu of %d", watch_nlines(fast),
              N);
    wc_cacher_stats st;
    for (int tries = 0; tries < 1000; tries++) {
        wc_cacher_stats_get(cache, &st);
        pthread_mutex_lock(&hook->mu);
        size_t n = srv->n_streams;
        pthread_mutex_unlock(&hook->mu);
        if (st.ended[WC_END_SLOW] == 1 && n == 1)
            break;
        usleep(10 * 1000);
    }
    cr_assert_eq(st.ended[WC_END_SLOW], 1, "the slow watcher is ended");
    pthread_mutex_lock(&hook->mu);
    cr_assert_eq(srv->n_streams, 1, "and its stream is gone; the fast one stays");
    pthread_mutex_unlock(&hook->mu);
    /* It learns so at once, reading nothing: a reset, not a FIN queued behind the bytes that
     * its full window keeps in the server's kernel. */
    struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the slow reader hears of the cut-off without reading");
    cr_assert(pfd.revents & (POLLERR | POLLHUP), "a reset (revents %#x)", (unsigned)pfd.revents);
    char *got;
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &got, &len), 0, "the server closed the socket");
    cr_assert_lt(len, (size_t)N * BIG, "it was cut off, not drained");
    cr_assert(len < 5 || memcmp(got + len - 5, "0\r\n\r\n", 5) != 0,
              "a cut-off stream has no clean end");
    free(got);
    cr_assert_eq(watch_nlines(fast), N, "nothing more, nothing less for the fast one");
    watch_close(fast);
}

/* Publishes a transaction of n values of `size` bytes at one revision (keys key-0...). */
static int64_t put_big_txn(const char *key, int n, size_t size)
{
    char *v = malloc(size + 1), names[8][64];
    wc_change ch[8];
    cr_assert(v && n <= 8);
    memset(v, 'x', size);
    v[0] = '"';
    v[size - 1] = '"';
    pthread_mutex_lock(&prod_mu);
    int64_t rev = ++g_rev;
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%s-%d", key, i);
        ch[i] = (wc_change){.kv = {.key = names[i],
                                   .key_len = strlen(names[i]),
                                   .value = v,
                                   .value_len = size,
                                   .create_rev = rev,
                                   .mod_rev = rev,
                                   .version = 1}};
    }
    cr_assert_eq(wc_cacher_apply(cache, ch, (size_t)n), 0);
    pthread_mutex_unlock(&prod_mu);
    free(v);
    return rev;
}

Test(custom, a_lagging_reader_that_reads_again_gets_its_transaction_whole_and_a_clean_end)
{
    enum { TXNS = 60, PER = 3, BIG = 32 * 1024 };
    fixture_cfg cfg = {.slow_budget_ms = 200};
    fixture_start(&cfg);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /keys/txn/?watch=1&resourceVersion=%" PRId64 " HTTP/1.1\r\nHost: x\r\n\r\n",
             g_rev);
    int fd = raw_open(wc_http_port(srv), 4096, req); /* reads nothing for a while */
    cr_assert_geq(fd, 0);
    for (int tries = 0; tries < 500 && watchers_now() < 1; tries++)
        usleep(10 * 1000);
    for (int t = 0; t < TXNS; t++)
        put_big_txn("/txn/k", PER, BIG);
    wc_cacher_stats st;
    for (int tries = 0; tries < 1000; tries++) {
        wc_cacher_stats_get(cache, &st);
        if (st.ended[WC_END_SLOW] == 1)
            break;
        usleep(10 * 1000);
    }
    cr_assert_eq(st.ended[WC_END_SLOW], 1, "the reader lagged and its watcher was ended");
    /* It reads again: it gets the end of the transaction it had begun, and a clean end. */
    char *got;
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 10000, &got, &len), 0, "the server ends the stream");
    char *body = strstr(got, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    size_t dn = 0;
    char *data = dechunk(body, len - (size_t)(body - got), true, &dn);
    size_t events = 0;
    int64_t last = 0;
    int in_last = 0;
    for (char *line = data, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        json_t *ev = parse(line);
        int64_t rv = obj_rv(ev);
        if (rv != last) {
            cr_assert(last == 0 || in_last == PER, "revision %" PRId64 ": %d of %d events", last,
                      in_last, PER);
            cr_assert_gt(rv, last);
            last = rv;
            in_last = 0;
        }
        in_last++;
        events++;
        json_decref(ev);
    }
    cr_assert_gt(events, 0);
    cr_assert_eq(in_last, PER, "the last revision is whole: %d of %d", in_last, PER);
    cr_assert_lt(events, (size_t)TXNS * PER, "the stream ended early, not drained");
    free(data);
    free(got);
}

Test(custom, a_full_socket_still_gets_a_clean_end_at_timeout)
{
    enum { N = 100, BIG = 32 * 1024 };
    fixture_cfg cfg = {.slow_budget_ms = 60000}; /* never too slow here */
    fixture_start(&cfg);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /keys/full/?watch=1&timeoutSeconds=1&resourceVersion=%" PRId64
             " HTTP/1.1\r\nHost: x\r\n\r\n",
             g_rev);
    int fd = raw_open(wc_http_port(srv), 4096, req); /* reads nothing until the timeout */
    cr_assert_geq(fd, 0);
    for (int tries = 0; tries < 500 && watchers_now() < 1; tries++)
        usleep(10 * 1000);
    put_big("/full/k", N, BIG);
    wc_cacher_stats st;
    for (int tries = 0; tries < 1000; tries++) {
        wc_cacher_stats_get(cache, &st);
        if (st.ended[WC_END_TIMEOUT] == 1)
            break;
        usleep(10 * 1000);
    }
    cr_assert_eq(st.ended[WC_END_TIMEOUT], 1, "the watcher timed out while its socket was full");
    cr_assert_eq(st.ended[WC_END_SLOW], 0);
    char *got;
    size_t len;
    cr_assert_eq(raw_read_to_end(fd, 20000, &got, &len), 0);
    cr_assert_geq(len, 5);
    cr_assert_eq(memcmp(got + len - 5, "0\r\n\r\n", 5), 0,
                 "the stream ends with the chunked terminator once the reader reads");
    free(got);
}

static size_t streams_now(void)
{
    pthread_mutex_lock(&hook->mu);
    size_t n = srv->n_streams;
    pthread_mutex_unlock(&hook->mu);
    return n;
}

/* Opens n sockets that say nothing, and waits until the server holds them all. */
static void idle_sockets(int *fd, int n, size_t expect_conns)
{
    for (int i = 0; i < n; i++) {
        fd[i] = raw_open(wc_http_port(srv), 0, "");
        cr_assert_geq(fd[i], 0);
    }
    for (int tries = 0; tries < 500 && atomic_load(&srv->mhd_conns) < expect_conns; tries++)
        usleep(10 * 1000);
    cr_assert_eq(atomic_load(&srv->mhd_conns), expect_conns);
}

Test(custom, connections_past_the_budget_get_only_probes)
{
    enum { N = 3 };
    fixture_cfg cfg = {.max_connections = N};
    fixture_start(&cfg);
    watch *w[N];
    for (int i = 0; i < N; i++) {
        w[i] = watch_open(url("/keys/mc/?watch=1"));
        for (int tries = 0; tries < 500 && streams_now() < (size_t)i + 1; tries++)
            usleep(10 * 1000);
    }
    cr_assert_eq(streams_now(), N);
    /* streams count against the budget though libmicrohttpd no longer holds them: past it a
     * probe is still answered, in the room kept for probes, and nothing else is */
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/readyz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    cr_assert_eq(atomic_load(&srv->refused), 0);
    char *out = raw_exchange("GET /keys/mc/a HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strstr(out, "HTTP/1.1 503"), "%s", out);
    cr_assert(strstr(out, "Retry-After: 1"), "%s", out);
    cr_assert(strstr(out, "Connection: close"), "%s", out);
    cr_assert(strstr(out, "\"kind\":\"Status\"") && strstr(out, "too many open connections"), "%s",
              out);
    free(out);
    cr_assert_eq(atomic_load(&srv->refused), 1);
    put("/mc/a", "1");
    for (int i = 0; i < N; i++)
        cr_assert(watch_wait_lines(w[i], 1, 5000), "the open streams go on");
    /* one leaves: there is room again */
    watch_close(w[0]);
    for (int tries = 0; tries < 500 && streams_now() > N - 1; tries++)
        usleep(10 * 1000);
    cr_assert_eq(http_get(url("/keys/mc/a"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    for (int i = 1; i < N; i++)
        watch_close(w[i]);
}

Test(custom, idle_connections_past_the_budget_and_the_probes_room_are_closed_at_once)
{
    enum { N = 3 };
    fixture_cfg cfg = {.max_connections = N};
    fixture_start(&cfg);
    int fd[N + WC_HTTP_PROBE_ROOM];
    idle_sockets(fd, N, N);
    /* past the budget, a probe is answered (and its connection closed, for the next one) */
    char *out = raw_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strstr(out, "HTTP/1.1 200") && strstr(out, "Connection: close"), "%s", out);
    free(out);
    /* the room taken by idle sockets too: a connection past it is closed and counted, not
     * left in the listen backlog */
    idle_sockets(fd + N, WC_HTTP_PROBE_ROOM, N + WC_HTTP_PROBE_ROOM);
    out = raw_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(out[0], '\0', "answered past the budget and the room: %s", out);
    free(out);
    cr_assert_eq(atomic_load(&srv->refused), 1);
    /* sockets that say nothing in the probes' room are closed within its short deadline, and
     * a probe is answered again while the budget stays full */
    for (int tries = 0; tries < 1000 && atomic_load(&srv->mhd_conns) > N; tries++)
        usleep(10 * 1000);
    cr_assert_eq(atomic_load(&srv->mhd_conns), N);
    out = raw_exchange("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strstr(out, "HTTP/1.1 200"), "%s", out);
    free(out);
    /* they leave: there is room again for everything */
    for (int i = 0; i < N + WC_HTTP_PROBE_ROOM; i++)
        close(fd[i]);
    for (int tries = 0; tries < 500 && atomic_load(&srv->mhd_conns) > 0; tries++)
        usleep(10 * 1000);
    http_resp r;
    cr_assert_eq(http_get(url("/keys/x"), &r), 0);
    cr_assert_eq(r.code, 404);
    http_resp_free(&r);
}

Test(custom, requests_past_the_inflight_bound_get_429_until_one_ends)
{
    fixture_cfg cfg = {.max_requests_inflight = 1, .wait_ms = 20000};
    fixture_start(&cfg);
    /* a list that waits for a revision the cache has not reached is in flight meanwhile */
    watch *slow = watch_open(url("/keys/if/?resourceVersion=%" PRId64, g_rev + 2));
    for (int tries = 0; tries < 500 && atomic_load(&srv->inflight) < 1; tries++)
        usleep(10 * 1000);
    cr_assert_eq(atomic_load(&srv->inflight), 1);
    char *out = raw_exchange("GET /keys/if/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(strstr(out, "HTTP/1.1 429") && strstr(out, "Retry-After: 1"), "%s", out);
    cr_assert(strstr(out, "\"reason\":\"TooManyRequests\""), "%s", out);
    free(out);
    cr_assert_eq(atomic_load(&srv->inflight_dropped), 1);
    /* probes, watches and the metrics' gauge are not held by it */
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
    watch *w = watch_open(url("/keys/if/?watch=1"));
    put("/if/a", "1");
    cr_assert(watch_wait_lines(w, 1, 5000));
    put("/if/b", "2");
    cr_assert(watch_wait_end(slow, 10000), "the waiting list is answered");
    cr_assert_eq(watch_code(slow), 200);
    watch_close(slow);
    for (int tries = 0; tries < 500 && atomic_load(&srv->inflight) > 0; tries++)
        usleep(10 * 1000);
    cr_assert_eq(atomic_load(&srv->inflight), 0);
    cr_assert_eq(http_get(url("/metrics"), &r), 0);
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "wcached_http_requests_dropped_total 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "wcached_http_requests_inflight 1\n"), "the scrape itself: %s",
              r.body);
    http_resp_free(&r);
    watch_close(w);
}

Test(server, oversized_header_fields_get_431_and_the_server_goes_on)
{
    size_t big = WC_HTTP_MAX_HEADER_BYTES + 1024;
    char *req = malloc(big + 128);
    cr_assert_not_null(req);
    int n = sprintf(req, "GET /keys/x HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    char *out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 431"), "%.200s", out);
    cr_assert(strstr(out, "\"kind\":\"Status\"") && strstr(out, "\"code\":431"), "%.400s", out);
    free(out);
    /* just under the bound: read and answered */
    n = sprintf(req, "GET /keys/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ");
    memset(req + n, 'a', WC_HTTP_MAX_HEADER_BYTES - 64);
    strcpy(req + n + WC_HTTP_MAX_HEADER_BYTES - 64, "\r\n\r\n");
    out = raw_exchange(req);
    cr_assert(strstr(out, "HTTP/1.1 404"), "%.200s", out);
    free(out);
    free(req);
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

/* A request of `pad` bytes of header fields, on a connection of its own: the answer. */
static char *padded_request(size_t pad)
{
    char *req = malloc(pad + 128);
    cr_assert_not_null(req);
    int n = sprintf(req, "GET /keys/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    strcpy(req + n + pad, "\r\n\r\n");
    char *out = raw_exchange(req);
    free(req);
    return out;
}

Test(custom, the_header_bound_is_a_setting_and_the_buffer_grows_to_hold_it)
{
    fixture_cfg cfg = {.max_header_bytes = 64 * 1024};
    fixture_start(&cfg);
    /* past the default buffer, within the bound: read and answered */
    char *out = padded_request(40 * 1024);
    cr_assert(strstr(out, "HTTP/1.1 404"), "%.300s", out);
    free(out);
    /* past the bound: the Status, not libmicrohttpd's page */
    out = padded_request(70 * 1024);
    cr_assert(strstr(out, "HTTP/1.1 431") && strstr(out, "more than 65536 bytes"), "%.400s", out);
    free(out);
}

Test(server, readers_hanging_up_mid_stream)
{
    enum { N = 50 };
    watch *w[N];
    for (int i = 0; i < N; i++)
        w[i] = watch_open(url("/keys/h/?watch=1&resourceVersion=%" PRId64, g_rev));
    for (int tries = 0; tries < 500 && watchers_now() < N; tries++)
        usleep(10 * 1000);
    put("/h/a", "1");
    for (int i = 0; i < N; i++)
        cr_assert(watch_wait_lines(w[i], 1, 5000));
    /* half hang up while suspended, half while events flow */
    for (int i = 0; i < N / 2; i++)
        watch_close(w[i]);
    for (int i = N / 2; i < N; i++) {
        put("/h/b", "{\"big\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
        watch_close(w[i]);
    }
    for (int tries = 0; tries < 300 && watchers_now() > 0; tries++)
        usleep(10 * 1000);
    cr_assert_eq(watchers_now(), 0, "watchers left: %" PRIu64, watchers_now());
    for (int tries = 0; tries < 300; tries++) {
        pthread_mutex_lock(&hook->mu);
        size_t n = srv->n_streams;
        pthread_mutex_unlock(&hook->mu);
        if (n == 0)
            break;
        usleep(10 * 1000);
    }
    pthread_mutex_lock(&hook->mu);
    cr_assert_eq(srv->n_streams, 0);
    pthread_mutex_unlock(&hook->mu);
    http_resp r;
    cr_assert_eq(http_get(url("/healthz"), &r), 0);
    cr_assert_eq(r.code, 200);
    http_resp_free(&r);
}

Test(shutdown, stop_ends_streams_cleanly)
{
    watch *w[5];
    for (int i = 0; i < 5; i++)
        w[i] = watch_open(url("/keys/z/?watch=1"));
    for (int tries = 0; tries < 500 && watchers_now() < 5; tries++)
        usleep(10 * 1000);
    put("/z/a", "1");
    for (int i = 0; i < 5; i++)
        cr_assert(watch_wait_lines(w[i], 1, 5000));
    wc_http_stop(srv);
    for (int i = 0; i < 5; i++) {
        cr_assert(watch_wait_end(w[i], 5000));
        cr_assert(watch_complete_chunked(w[i]), "stream %d ended with %d", i, watch_result(w[i]));
        watch_close(w[i]);
    }
    wc_http_free(srv);
    wc_cacher_free(cache);
    wc_http_hook_free(hook);
    curl_global_cleanup();
}

/* The answer to one more watch: its HTTP code, and the Status reason when not 200. */
static long one_more_watch(char *reason, size_t len)
{
    http_resp r;
    cr_assert_eq(http_get(url("/keys/w/?watch=1&timeoutSeconds=1"), &r), 0);
    long code = r.code;
    json_t *j = code == 200 ? NULL : parse(r.body);
    snprintf(reason, len, "%s", j ? jstr(j, "reason") : "");
    json_decref(j);
    http_resp_free(&r);
    return code;
}

Test(custom, watches_past_their_bound_get_429_and_the_bound_frees_as_they_end)
{
    fixture_cfg cfg = {.max_watches = 2};
    fixture_start(&cfg);
    watch *w1 = watch_open(url("/keys/w/?watch=1"));
    watch *w2 = watch_open(url("/keys/w/?watch=1"));
    for (int tries = 0; tries < 500 && watchers_now() < 2; tries++)
        usleep(10 * 1000);
    cr_assert_eq(watchers_now(), 2);
    char reason[64];
    cr_assert_eq(one_more_watch(reason, sizeof(reason)), 429);
    cr_assert_str_eq(reason, "TooManyRequests");
    http_resp r;
    cr_assert_eq(http_get(url("/keys/w/"), &r), 0);
    cr_assert_eq(r.code, 200, "a list is no watch: it is not bounded");
    http_resp_free(&r);
    /* One ends: its room is given back. */
    watch_close(w1);
    long code = 0;
    int refused = 1; /* and each try before the server saw w1 go (a loaded machine) */
    for (int tries = 0; tries < 500 && code != 200; tries++) {
        code = one_more_watch(reason, sizeof(reason));
        if (code != 200) {
            refused++;
            usleep(10 * 1000);
        }
    }
    cr_assert_eq(code, 200, "the bound freed when a watch ended");
    size_t len;
    char *m = wc_http_metrics(srv, &len), want[80];
    snprintf(want, sizeof(want), "\nwcached_http_watches_refused_total %d\n", refused);
    cr_assert(strstr(m, want), "%s", m);
    free(m);
    watch_close(w2);
}

Test(custom, watches_per_reader_are_bounded_the_anonymous_one_included)
{
    fixture_cfg cfg = {.max_watches_per_user = 1};
    fixture_start(&cfg);
    watch *w1 = watch_open(url("/keys/w/?watch=1"));
    for (int tries = 0; tries < 500 && watchers_now() < 1; tries++)
        usleep(10 * 1000);
    http_resp r;
    cr_assert_eq(http_get(url("/keys/w/?watch=1&timeoutSeconds=1"), &r), 0);
    cr_assert_eq(r.code, 429);
    cr_assert(strstr(r.body, "for user \\\"system:anonymous\\\""), "%s", r.body);
    cr_assert(strcasestr(r.headers, "\r\nRetry-After: 1"), "a 429 says when to try again: %s",
              r.headers);
    http_resp_free(&r);
    watch_close(w1);
}

/* ---------------------------------------------------------------------------------------
 * Server-side printing and request latency
 * ------------------------------------------------------------------------------------- */

#define ACCEPT_TABLE                                                                               \
    "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"    \
    "g=meta.k8s.io,application/json\r\n"

Test(server, table_for_lists_and_gets_and_the_usual_json_otherwise)
{
    put_pod("default", "web-1", "web", "n1");
    put_pod("default", "web-2", "web", "n2");
    put("/tk/a", "1");
    char *body, *hdr;
    size_t len;
    hdr = raw_get("GET /api/v1/namespaces/default/pods HTTP/1.0\r\n" ACCEPT_TABLE "\r\n", &body,
                  &len);
    cr_assert(strcasestr(hdr, "Content-Type: application/json;as=Table;v=v1;g=meta.k8s.io"), "%s",
              hdr);
    json_t *t = parse(body);
    cr_assert_str_eq(jstr(t, "kind"), "Table");
    cr_assert_str_eq(jstr(t, "apiVersion"), "meta.k8s.io/v1");
    cr_assert_not_null(jstr(t, "metadata.resourceVersion"));
    cr_assert_eq(json_array_size(json_object_get(t, "columnDefinitions")), 9);
    json_t *rows = json_object_get(t, "rows");
    cr_assert_eq(json_array_size(rows), 2);
    json_t *cells = json_object_get(json_array_get(rows, 1), "cells");
    cr_assert_str_eq(json_string_value(json_array_get(cells, 0)), "web-2");
    cr_assert_str_eq(json_string_value(json_array_get(cells, 6)), "n2"); /* NODE */
    cr_assert_str_eq(jstr(json_array_get(rows, 1), "object.kind"), "PartialObjectMetadata");
    json_decref(t);
    free(hdr);

    /* a page of one: the continue token is the list's own */
    hdr = raw_get("GET /api/v1/namespaces/default/pods?limit=1 HTTP/1.0\r\n" ACCEPT_TABLE "\r\n",
                  &body, &len);
    t = parse(body);
    const char *tok = jstr(t, "metadata.continue");
    cr_assert_not_null(tok, "%s", body);
    json_t *plain = get_json(url("/api/v1/namespaces/default/pods?limit=1"), 200);
    cr_assert_str_eq(tok, jstr(plain, "metadata.continue"));
    json_decref(plain);
    json_decref(t);
    free(hdr);

    /* a get */
    hdr = raw_get(
        "GET /api/v1/namespaces/default/pods/web-1?includeObject=Object HTTP/1.0\r\n" ACCEPT_TABLE
        "\r\n",
        &body, &len);
    t = parse(body);
    cr_assert_eq(json_array_size(json_object_get(t, "rows")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(t, "rows"), 0), "object.kind"), "Pod");
    json_decref(t);
    free(hdr);

    /* an includeObject the apiserver refuses, refused the same way */
    hdr = raw_get("GET /api/v1/namespaces/default/pods?includeObject=all HTTP/1.0\r\n" ACCEPT_TABLE
                  "\r\n",
                  &body, &len);
    cr_assert(strstr(hdr, " 400 "), "%s", hdr);
    cr_assert(strstr(body, "includeObject"), "%s", body);
    free(hdr);

    /* without Table the bytes are the usual ones */
    char *a, *b;
    char *ha = raw_get("GET /api/v1/namespaces/default/pods HTTP/1.0\r\n\r\n", &a, &len);
    char *hb = raw_get("GET /api/v1/namespaces/default/pods HTTP/1.0\r\nAccept: application/json;"
                       "as=Table;v=v1beta1;g=meta.k8s.io, application/json\r\n\r\n",
                       &b, &len);
    cr_assert_str_eq(a, b);
    cr_assert(strstr(a, "\"kind\":\"PodList\""), "%s", a);
    free(ha);
    free(hb);
    hdr = raw_get("GET /keys/tk/ HTTP/1.0\r\n\r\n", &body, &len);
    cr_assert(strstr(body, "\"kind\":\"KeyValueList\""), "%s", body);
    free(hdr);
    /* /keys prints each key, its revisions and its value */
    hdr = raw_get("GET /keys/tk/ HTTP/1.0\r\n" ACCEPT_TABLE "\r\n", &body, &len);
    t = parse(body);
    cr_assert_str_eq(jstr(t, "kind"), "Table");
    cells = json_object_get(json_array_get(json_object_get(t, "rows"), 0), "cells");
    cr_assert_str_eq(json_string_value(json_array_get(cells, 0)), "/tk/a");
    cr_assert_gt(json_integer_value(json_array_get(cells, 1)), 0);
    cr_assert_str_eq(json_string_value(json_array_get(cells, 4)), "1");
    cr_assert_str_eq(jstr(json_array_get(json_object_get(t, "rows"), 0), "object.kind"),
                     "PartialObjectMetadata");
    json_decref(t);
    free(hdr);
}

Test(server, table_watch_events_are_tables_of_one_row)
{
    put_pod("default", "web-1", "web", "n1");
    put_pod("default", "web-2", "web", "n2");
    char *body;
    size_t len;
    char *hdr = raw_get("GET /api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1 "
                        "HTTP/1.0\r\n" ACCEPT_TABLE "\r\n",
                        &body, &len);
    cr_assert(strstr(hdr, " 200 "), "%s", hdr);
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *ev = parse(l);
        cr_assert_str_eq(jstr(ev, "type"), "ADDED");
        json_t *t = json_object_get(ev, "object");
        cr_assert_str_eq(jstr(t, "kind"), "Table");
        cr_assert_not_null(jstr(t, "metadata.resourceVersion"));
        cr_assert_eq(json_array_size(json_object_get(t, "rows")), 1);
        /* the columns come with the first event only */
        cr_assert_eq(json_array_size(json_object_get(t, "columnDefinitions")), n ? 0 : 9, "%s", l);
        json_t *cells = json_object_get(json_array_get(json_object_get(t, "rows"), 0), "cells");
        cr_assert_str_eq(json_string_value(json_array_get(cells, 0)), n ? "web-2" : "web-1");
        json_decref(ev);
        n++;
    }
    cr_assert_eq(n, 2);
    free(hdr);
}

Test(server, request_latency_by_verb_and_code)
{
    put_pod("default", "web-1", "web", "n1");
    http_resp r;
    cr_assert_eq(http_get(url("/api/v1/namespaces/default/pods"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/api/v1/namespaces/default/pods"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/api/v1/namespaces/default/pods/web-1"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/api/v1/namespaces/default/pods/nope"), &r), 0);
    http_resp_free(&r);
    cr_assert_eq(http_get(url("/nope"), &r), 0);
    http_resp_free(&r);
    watch *w = watch_open(url("/api/v1/pods?watch=1&timeoutSeconds=1"));
    cr_assert(watch_wait_end(w, 5000));
    watch_close(w);
    cr_assert_eq(http_get(url("/metrics"), &r), 0);
    const char *want[] = {
        "# TYPE wcached_http_request_duration_seconds histogram",
        "wcached_http_request_duration_seconds_count{verb=\"list\",code=\"200\"} 2",
        "wcached_http_request_duration_seconds_bucket{verb=\"list\",code=\"200\",le=\"+Inf\"} 2",
        "wcached_http_request_duration_seconds_count{verb=\"get\",code=\"200\"} 1",
        "wcached_http_request_duration_seconds_count{verb=\"get\",code=\"404\"} 1",
        "wcached_http_request_duration_seconds_count{verb=\"other\",code=\"404\"} 1",
        "wcached_http_request_duration_seconds_count{verb=\"watch\",code=\"200\"} 1",
        "wcached_http_request_duration_seconds_bucket{verb=\"get\",code=\"200\",le=\"0.00025\"}",
        "wcached_http_request_duration_seconds_sum{verb=\"watch\",code=\"200\"} ",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(r.body, want[i]), "missing %s in\n%s", want[i], r.body);
    /* buckets only grow toward +Inf */
    const char *p = strstr(r.body, "wcached_http_request_duration_seconds_bucket{verb=\"list\"");
    uint64_t prev = 0;
    for (int i = 0; i < 15; i++) {
        const char *sp = strchr(p, ' ');
        uint64_t v = strtoull(sp + 1, NULL, 10);
        cr_assert_geq(v, prev);
        prev = v;
        p = strchr(sp, '\n') + 1;
    }
    cr_assert_eq(prev, 2);
    http_resp_free(&r);
}
