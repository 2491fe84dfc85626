/*
 * The daemon end to end: a real etcd on free loopback ports, the real wcached binary, and
 * readers over HTTP. Each test starts its own etcd and wcached and stops both.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"
#include "harness.h"

static struct wc_test_etcd etcd;
static wc_test_daemon daemon_;

static void start(const char *const *args)
{
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0, "etcd did not start");
    int rc = wc_test_daemon_start(&daemon_, wc_test_etcd_client_url(&etcd, 0), args, true);
    cr_assert_eq(rc, 0, "wcached did not get ready; see %s", daemon_.log_path);
}

static void stop(void)
{
    if (daemon_.pid > 0)
        wc_test_daemon_stop(&daemon_, SIGTERM);
    wc_test_etcd_stop(&etcd);
}

static int64_t put(const char *key, const char *value)
{
    int64_t rev = 0;
    cr_assert_eq(wc_test_etcd_put(&etcd, key, value, &rev), 0, "etcd put %s", key);
    return rev;
}

static int64_t del(const char *key)
{
    int64_t rev = 0;
    cr_assert_eq(wc_test_etcd_delete(&etcd, key, &rev), 0, "etcd delete %s", key);
    return rev;
}

static json_t *get_json(const char *path, long want_code)
{
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, path, &r), 0, "GET %s", path);
    cr_assert_eq(r.code, want_code, "GET %s: %ld %s", path, r.code, r.body);
    json_t *j = wc_test_resp_json(&r);
    cr_assert_not_null(j, "GET %s: not JSON: %s", path, r.body);
    wc_test_resp_free(&r);
    return j;
}

static void expect_status(const char *path, long code, const char *reason, const char *needle)
{
    json_t *j = get_json(path, code);
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "Status", "%s", path);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "Failure");
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), code);
    if (reason)
        cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), reason, "%s", path);
    if (needle)
        cr_assert_not_null(strstr(json_string_value(json_object_get(j, "message")), needle),
                           "%s: message %s lacks %s", path,
                           json_string_value(json_object_get(j, "message")), needle);
    json_decref(j);
}

static char *pod(const char *name, const char *ns, const char *app, const char *node)
{
    char *s = NULL;
    int n = asprintf(&s,
                     "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
                     "\"namespace\":\"%s\",\"labels\":{\"app\":\"%s\"}},"
                     "\"spec\":{\"nodeName\":\"%s\"}}",
                     name, ns, app, node);
    cr_assert_gt(n, 0);
    return s;
}

static int64_t put_pod(const char *name, const char *ns, const char *app, const char *node)
{
    char key[256];
    snprintf(key, sizeof(key), "/registry/pods/%s/%s", ns, name);
    char *v = pod(name, ns, app, node);
    int64_t rev = put(key, v);
    free(v);
    return rev;
}

TestSuite(daemon, .fini = stop, .timeout = 120);

Test(daemon, health_ready_and_metrics)
{
    start(NULL);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/healthz", &r), 0);
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(r.body, "ok");
    wc_test_resp_free(&r);
    cr_assert_eq(wc_test_get(daemon_.base, "/metrics", &r), 0);
    cr_assert_eq(r.code, 200);
    cr_assert_not_null(strstr(r.body, "wcached_upstream_state{state=\"live\"} 1"), "%s", r.body);
    wc_test_resp_free(&r);
}

Test(daemon, keys_get_list_and_missing)
{
    start(NULL);
    int64_t r1 = put("/demo/a", "hello");
    put("/demo/b", "{\"x\":1}");
    put("/other", "z");
    json_t *one = NULL;
    /* The cache follows etcd; a consistent list catches up first. */
    json_t *list = get_json("/keys/demo/", 200);
    cr_assert_str_eq(json_string_value(json_object_get(list, "kind")), "KeyValueList");
    json_t *items = json_object_get(list, "items");
    cr_assert_eq(json_array_size(items), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "key")),
                     "/demo/a");
    one = get_json("/keys/demo/a", 200);
    cr_assert_str_eq(json_string_value(json_object_get(one, "value")), "hello");
    cr_assert_eq(json_integer_value(json_object_get(one, "modRevision")), r1);
    json_decref(one);
    json_decref(list);
    expect_status("/keys/demo/nope", 404, "NotFound", NULL);
}

Test(daemon, kubernetes_routes_list_get_and_unknown)
{
    start(NULL);
    put_pod("a", "ns1", "web", "n1");
    put_pod("b", "ns2", "web", "n2");
    put("/registry/namespaces/ns1", "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"ns1\"}}");
    json_t *all = get_json("/api/v1/pods", 200);
    cr_assert_str_eq(json_string_value(json_object_get(all, "kind")), "PodList");
    cr_assert_eq(json_array_size(json_object_get(all, "items")), 2);
    json_decref(all);
    json_t *ns = get_json("/api/v1/namespaces/ns1/pods", 200);
    cr_assert_eq(json_array_size(json_object_get(ns, "items")), 1);
    json_decref(ns);
    json_t *one = get_json("/api/v1/namespaces/ns2/pods/b", 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(one, "metadata"), "name")),
                     "b");
    json_decref(one);
    json_t *nsobj = get_json("/api/v1/namespaces/ns1", 200);
    cr_assert_str_eq(json_string_value(json_object_get(nsobj, "kind")), "Namespace");
    json_decref(nsobj);
    expect_status("/api/v1/namespaces/ns1/pods/zzz", 404, "NotFound", NULL);
    expect_status("/api/v1/nosuchresources", 404, "NotFound", NULL);
}

Test(daemon, bad_parameters_answer_400_naming_the_parameter)
{
    start(NULL);
    expect_status("/keys/demo/?watch=maybe", 400, "BadRequest", "watch");
    expect_status("/keys/demo/?resourceVersion=abc", 400, "BadRequest", "resourceVersion");
    expect_status("/keys/demo/?limit=-3", 400, "BadRequest", "limit");
    expect_status("/keys/demo/?timeoutSeconds=x&watch=1", 400, "BadRequest", "timeoutSeconds");
    expect_status("/api/v1/pods?labelSelector=a%20in%20(", 400, "BadRequest", "labelSelector");
    expect_status("/api/v1/pods?fieldSelector=spec.unknown=x", 400, "BadRequest", "fieldSelector");
    expect_status("/api/v1/pods?continue=%21%21garbage", 400, "BadRequest", "continue");
    expect_status("/api/v1/pods?resourceVersionMatch=Sometimes&resourceVersion=1", 400,
                  "BadRequest", "resourceVersionMatch");
    expect_status("/nothing/here", 404, "NotFound", NULL);
}

/* Reads `n` events from a watch, failing on timeout. */
static json_t **read_events(wc_test_watch *w, size_t n)
{
    json_t **evs = calloc(n, sizeof(*evs));
    for (size_t i = 0; i < n; i++) {
        evs[i] = wc_test_watch_next(w, 10000);
        cr_assert_not_null(evs[i], "event %zu of %zu did not come", i, n);
    }
    return evs;
}

static void free_events(json_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i]);
    free(evs);
}

Test(daemon, replay_equals_etcds_own_history)
{
    start(NULL);
    int64_t start_rev = put("/h/seed", "0");
    char key[32], val[32];
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "/h/k%d", i % 7);
        snprintf(val, sizeof(val), "v%d", i);
        if (i % 9 == 8)
            del(key);
        else
            put(key, val);
    }
    /* etcd's own account of the same range from the same revision. */
    wc_test_hist *hist = NULL;
    size_t nh = 0;
    cr_assert_eq(wc_test_etcd_history(wc_test_etcd_client_url(&etcd, 0), "/h/", start_rev + 1, 1500,
                                      &hist, &nh),
                 0);
    cr_assert_gt(nh, 40);
    char path[128];
    snprintf(path, sizeof(path), "/keys/h/?watch=1&resourceVersion=%" PRId64, start_rev);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    cr_assert_eq(wc_test_watch_code(w), 200);
    json_t **evs = read_events(w, nh);
    for (size_t i = 0; i < nh; i++) {
        cr_assert_str_eq(wc_test_ev_key(evs[i]), hist[i].key, "event %zu", i);
        cr_assert_eq(wc_test_ev_rv(evs[i]), hist[i].mod_rev, "event %zu", i);
        cr_assert_eq(strcmp(wc_test_ev_type(evs[i]), "DELETED") == 0, hist[i].deleted,
                     "event %zu: %s", i, wc_test_ev_type(evs[i]));
    }
    json_t *extra = wc_test_watch_next(w, 300);
    cr_assert_null(extra, "no event beyond etcd's history");
    free_events(evs, nh);
    wc_test_hist_free(hist, nh);
    wc_test_watch_close(w);
}

Test(daemon, too_old_rv_after_ring_overflow_gets_one_410_and_ends)
{
    const char *args[] = {"--ring-size", "5", NULL};
    start(args);
    int64_t first = put("/r/k", "0"), last = first;
    for (int i = 0; i < 20; i++)
        last = put("/r/k", "x");
    /* The cache must have seen the writes, or the watch would still find `first` in the ring. */
    for (int i = 0; i < 200 && wc_test_metric(daemon_.base, "wcached_cache_revision") < last; i++)
        usleep(50000);
    char path[128];
    snprintf(path, sizeof(path), "/keys/r/?watch=1&resourceVersion=%" PRId64, first);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    json_t *ev = wc_test_watch_next(w, 10000);
    cr_assert_not_null(ev);
    cr_assert_str_eq(wc_test_ev_type(ev), "ERROR");
    json_t *st = json_object_get(ev, "object");
    cr_assert_eq(json_integer_value(json_object_get(st, "code")), 410);
    cr_assert_str_eq(json_string_value(json_object_get(st, "reason")), "Expired");
    char want[64];
    snprintf(want, sizeof(want), "too old resource version: %" PRId64 " (", first);
    cr_assert_not_null(strstr(json_string_value(json_object_get(st, "message")), want));
    json_decref(ev);
    cr_assert_null(wc_test_watch_next(w, 5000));
    cr_assert(wc_test_watch_ended(w));
    wc_test_watch_close(w);
}

Test(daemon, bookmarks_and_timeout_seconds_end_the_stream)
{
    start(NULL);
    int64_t rev = put("/b/k", "1");
    char path[160];
    snprintf(path, sizeof(path),
             "/keys/b/?watch=1&allowWatchBookmarks=true&timeoutSeconds=3&resourceVersion=%" PRId64,
             rev);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    bool bookmark = false;
    json_t *ev;
    while ((ev = wc_test_watch_next(w, 8000)) != NULL) {
        if (strcmp(wc_test_ev_type(ev), "BOOKMARK") == 0) {
            bookmark = true;
            cr_assert_geq(wc_test_ev_rv(ev), rev);
        }
        json_decref(ev);
    }
    cr_assert(bookmark, "a BOOKMARK before timeoutSeconds ends");
    cr_assert(wc_test_watch_ended(w), "the server ended the stream");
    wc_test_watch_close(w);
}

Test(daemon, watch_with_selectors_sees_transitions)
{
    start(NULL);
    int64_t rev = put_pod("p", "ns", "db", "n1");
    char path[200];
    snprintf(
        path, sizeof(path),
        "/api/v1/namespaces/ns/pods?watch=true&labelSelector=app%%3Dweb&resourceVersion=%" PRId64,
        rev);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    int64_t r2 = put_pod("p", "ns", "web", "n1");
    int64_t r3 = put_pod("p", "ns", "web", "n2");
    int64_t r4 = put_pod("p", "ns", "db", "n2");
    json_t **evs = read_events(w, 3);
    cr_assert_str_eq(wc_test_ev_type(evs[0]), "ADDED");
    cr_assert_eq(wc_test_ev_rv(evs[0]), r2);
    cr_assert_str_eq(wc_test_ev_type(evs[1]), "MODIFIED");
    cr_assert_eq(wc_test_ev_rv(evs[1]), r3);
    cr_assert_str_eq(wc_test_ev_type(evs[2]), "DELETED");
    cr_assert_eq(wc_test_ev_rv(evs[2]), r4);
    free_events(evs, 3);
    wc_test_watch_close(w);
}

/* Appends the names of a list's items to `names`, each followed by a space; returns how many. */
static size_t add_names(json_t *list, char *names, size_t cap)
{
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(list, "items"), i, it)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
        size_t len = strlen(names);
        snprintf(names + len, cap - len, "%s ", name ? name : "?");
    }
    return json_array_size(json_object_get(list, "items"));
}

Test(daemon, pages_are_consistent_across_a_write)
{
    start(NULL);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        put_pod(name, "ns", "web", "n");
    }
    json_t *p1 = get_json("/api/v1/namespaces/ns/pods?limit=2", 200);
    json_t *md = json_object_get(p1, "metadata");
    const char *cont = json_string_value(json_object_get(md, "continue"));
    cr_assert_not_null(cont);
    cr_assert_eq(json_array_size(json_object_get(p1, "items")), 2);
    const char *rv1 = json_string_value(json_object_get(md, "resourceVersion"));
    /* One pod gone and one added: the count stays 5, so the names tell which state a page is
     * from. */
    del("/registry/pods/ns/p3");
    put_pod("p2a", "ns", "web", "n");
    char names[64] = "";
    size_t total = add_names(p1, names, sizeof(names));
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/namespaces/ns/pods?limit=2&continue=%s", cont);
    json_t *p = get_json(path, 200);
    for (;;) {
        json_t *pmd = json_object_get(p, "metadata");
        cr_assert_str_eq(json_string_value(json_object_get(pmd, "resourceVersion")), rv1,
                         "every page at the first page's revision");
        total += add_names(p, names, sizeof(names));
        const char *c = json_string_value(json_object_get(pmd, "continue"));
        if (!c || !*c)
            break;
        snprintf(path, sizeof(path), "/api/v1/namespaces/ns/pods?limit=2&continue=%s", c);
        json_decref(p);
        p = get_json(path, 200);
    }
    json_decref(p);
    cr_assert_eq(total, 5, "the five pods as of the first page, no more, no less");
    cr_assert_str_eq(names, "p0 p1 p2 p3 p4 ", "the pods as of the first page");
    json_decref(p1);
}

Test(daemon, list_right_after_a_write_includes_it)
{
    start(NULL);
    char key[32], path[64];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "/c/k%d", i);
        put(key, "v");
        snprintf(path, sizeof(path), "/keys%s", key);
        json_t *j = get_json(path, 200);
        json_decref(j);
        json_t *l = get_json("/keys/c/", 200);
        cr_assert_eq(json_array_size(json_object_get(l, "items")), (size_t)i + 1);
        json_decref(l);
    }
    /* A write outside the prefix still lets a consistent list through (progress notify). */
    int64_t rev = put("/elsewhere", "x");
    json_t *l = get_json("/keys/c/", 200);
    const char *rv =
        json_string_value(json_object_get(json_object_get(l, "metadata"), "resourceVersion"));
    cr_assert_geq(atoll(rv), rev);
    json_decref(l);
}

Test(daemon, sigterm_ends_streams_and_exits_zero)
{
    start(NULL);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/?watch=1");
    cr_assert_not_null(w);
    int code = wc_test_daemon_stop(&daemon_, SIGTERM);
    cr_assert_eq(code, 0);
    while (wc_test_watch_next(w, 3000))
        ;
    cr_assert(wc_test_watch_ended(w));
    wc_test_watch_close(w);
}

Test(daemon, watches_answer_429_before_the_cache_is_ready)
{
    /* etcd is started, but wcached points at a closed port: it never gets ready. */
    cr_assert_eq(wc_test_etcd_start(&etcd, 1), 0);
    cr_assert_eq(wc_test_daemon_start(&daemon_, "http://127.0.0.1:1", NULL, false), 0);
    wc_test_resp r;
    cr_assert_eq(wc_test_get(daemon_.base, "/keys/x/?watch=1", &r), 0);
    cr_assert_eq(r.code, 429, "%s", r.body);
    cr_assert_neq(r.retry_after[0], '\0', "Retry-After is set");
    wc_test_resp_free(&r);
    cr_assert_eq(wc_test_get(daemon_.base, "/readyz", &r), 0);
    cr_assert_eq(r.code, 503);
    wc_test_resp_free(&r);
}

Test(daemon, send_initial_events_then_the_end_bookmark_then_live)
{
    start(NULL);
    put("/s/a", "1");
    int64_t rb = put("/s/b", "2");
    char path[200];
    snprintf(path, sizeof(path),
             "/keys/s/?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
             "&resourceVersionMatch=NotOlderThan&resourceVersion=%" PRId64,
             rb);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    cr_assert_eq(wc_test_watch_code(w), 200);
    json_t **evs = read_events(w, 3);
    cr_assert_str_eq(wc_test_ev_type(evs[0]), "ADDED");
    cr_assert_str_eq(wc_test_ev_key(evs[0]), "/s/a");
    cr_assert_str_eq(wc_test_ev_key(evs[1]), "/s/b");
    cr_assert_str_eq(wc_test_ev_type(evs[2]), "BOOKMARK");
    cr_assert_geq(wc_test_ev_rv(evs[2]), rb);
    json_t *ann = json_object_get(json_object_get(json_object_get(evs[2], "object"), "metadata"),
                                  "annotations");
    cr_assert_str_eq(json_string_value(json_object_get(ann, "k8s.io/initial-events-end")), "true");
    int64_t rc = put("/s/c", "3");
    json_t *live = wc_test_watch_next(w, 10000);
    cr_assert_not_null(live);
    cr_assert_str_eq(wc_test_ev_type(live), "ADDED");
    cr_assert_eq(wc_test_ev_rv(live), rc);
    json_decref(live);
    free_events(evs, 3);
    wc_test_watch_close(w);
}

static double metric(const char *name)
{
    return wc_test_metric(daemon_.base, name);
}

static bool wait_metric(const char *name, double want)
{
    for (int i = 0; i < 300; i++) {
        if (metric(name) == want)
            return true;
        usleep(20000);
    }
    return false;
}

typedef struct stream {
    char *buf;
    size_t len;
} stream;

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    stream *s = arg;
    size_t n = size * nmemb;
    s->buf = realloc(s->buf, s->len + n + 1);
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static size_t count_lines(const stream *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->len; i++)
        n += s->buf[i] == '\n';
    return n;
}

Test(daemon, five_hundred_watchers_get_the_identical_stream)
{
    start(NULL);
    int64_t rv = put("/f/seed", "0");
    enum { N = 500, EVENTS = 40 };
    CURLM *m = curl_multi_init();
    CURL *h[N];
    stream s[N];
    memset(s, 0, sizeof(s));
    char url[256];
    snprintf(url, sizeof(url), "%s/keys/f/?watch=1&resourceVersion=%" PRId64, daemon_.base, rv);
    for (int i = 0; i < N; i++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, stream_write);
        curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &s[i]);
        curl_multi_add_handle(m, h[i]);
    }
    int running = 0;
    for (int i = 0; i < 1000 && metric("wcached_watchers") != N; i++) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    cr_assert_eq(metric("wcached_watchers"), N, "all %d watchers registered", N);
    char val[1100];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    int64_t revs[EVENTS];
    for (int e = 0; e < EVENTS; e++) {
        char key[32];
        snprintf(key, sizeof(key), "/f/k%d", e % 10);
        revs[e] = put(key, val);
    }
    for (int round = 0; round < 3000; round++) {
        curl_multi_perform(m, &running);
        bool all = true;
        for (int i = 0; i < N && all; i++)
            all = count_lines(&s[i]) >= EVENTS;
        if (all)
            break;
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(count_lines(&s[i]), EVENTS, "watcher %d got %zu events", i,
                     count_lines(&s[i]));
        cr_assert_eq(s[i].len, s[0].len);
        cr_assert_eq(memcmp(s[i].buf, s[0].buf, s[0].len), 0, "watcher %d differs", i);
    }
    /* ... and that stream is the writes themselves, not merely the same for everyone. */
    const char *line = s[0].buf;
    for (int e = 0; e < EVENTS; e++) {
        const char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        json_t *ev = json_loadb(line, (size_t)(nl - line), 0, NULL);
        cr_assert_not_null(ev, "event %d is not JSON", e);
        char key[32];
        snprintf(key, sizeof(key), "/f/k%d", e % 10);
        cr_assert_str_eq(wc_test_ev_type(ev), e < 10 ? "ADDED" : "MODIFIED", "event %d", e);
        cr_assert_str_eq(wc_test_ev_key(ev), key, "event %d", e);
        cr_assert_eq(wc_test_ev_rv(ev), revs[e], "event %d", e);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "object"), "value")),
                         val, "event %d", e);
        json_decref(ev);
        line = nl + 1;
    }
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
        free(s[i].buf);
    }
    curl_multi_cleanup(m);
    cr_assert(wait_metric("wcached_watchers", 0), "every watcher is gone after the readers left");
}

Test(daemon, readers_leaving_mid_stream_leave_nothing_behind)
{
    start(NULL);
    for (int round = 0; round < 3; round++) {
        wc_test_watch *w[50];
        for (int i = 0; i < 50; i++) {
            w[i] = wc_test_watch_open(daemon_.base, "/keys/g/?watch=1");
            cr_assert_not_null(w[i]);
        }
        put("/g/k", "x"); /* some of them are mid-frame when they go */
        for (int i = 0; i < 50; i++)
            wc_test_watch_close(w[i]);
    }
    put("/g/k", "y"); /* wakes any stream still suspended, which then finds its reader gone */
    cr_assert(wait_metric("wcached_watchers", 0), "watchers: %g", metric("wcached_watchers"));
    json_t *j = get_json("/keys/g/k", 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "value")), "y");
    json_decref(j);
}

Test(daemon, the_heap_metrics_count_what_the_cache_holds)
{
    const char *san = getenv("WCACHED_SANITIZED");
    if (san && strcmp(san, "0") != 0)
        cr_skip_test("a sanitizer's allocator is not the one these metrics read");
    if (getenv("WCACHED_WRAP"))
        cr_skip_test("the daemon runs under a wrapper (valgrind's allocator is not glibc's)");
    start(NULL);
    double before = metric("wcached_heap_inuse_bytes");
    cr_assert_gt(before, 0);
    enum { N = 100, SIZE = 20000 };
    char *val = malloc(SIZE + 1);
    cr_assert_not_null(val);
    memset(val, 'h', SIZE);
    val[SIZE] = '\0';
    int64_t last = 0;
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "/h/k%03d", i);
        last = put(key, val);
    }
    free(val);
    cr_assert(wait_metric("wcached_cache_revision", (double)last));
    /* the cache holds each value once, whatever the ring and the keys share of it */
    double after = metric("wcached_heap_inuse_bytes");
    cr_assert_geq(after - before, (double)N * SIZE, "heap in use %.0f -> %.0f", before, after);
    cr_assert_leq(after - before, 4.0 * N * SIZE, "heap in use %.0f -> %.0f", before, after);
    cr_assert_geq(metric("wcached_heap_held_bytes"), after);
}

Test(daemon, metrics_pass_promtool)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    start(NULL);
    put("/m/a", "1");
    wc_test_watch *w = wc_test_watch_open(daemon_.base, "/keys/m/?watch=1");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "curl -fsS %s/metrics | promtool check metrics", daemon_.base);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "promtool check metrics failed");
    wc_test_watch_close(w);
}

Test(daemon, bad_flags_exit_2_with_one_line)
{
    const char *bin = getenv("WCACHED_BIN");
    cr_assert_not_null(bin);
    const char *bad[] = {
        "--ring-size abc",          "--listen nope",        "--bogus",    "--log-level loud",
        "--etcd-endpoints ftp://x", "--index-field 'a..b'", "--ring-size"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "%s %s 2>/tmp/wcached-flag.err; echo $? >/tmp/wcached-flag.rc",
                 bin, bad[i]);
        cr_assert_eq(system(cmd), 0);
        FILE *f = fopen("/tmp/wcached-flag.rc", "r");
        int code = -1;
        cr_assert_eq(fscanf(f, "%d", &code), 1);
        fclose(f);
        cr_assert_eq(code, 2, "%s: exit %d", bad[i], code);
        f = fopen("/tmp/wcached-flag.err", "r");
        char line[512] = "";
        cr_assert_not_null(fgets(line, sizeof(line), f));
        cr_assert_not_null(strstr(line, "wcached: "), "%s: %s", bad[i], line);
        fclose(f);
    }
    /* The environment form works, and a flag wins over it. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "WCACHED_RING_SIZE=abc %s --help >/dev/null 2>&1", bin);
    cr_assert_eq(system(cmd), 0, "--help wins before values are checked");
    snprintf(cmd, sizeof(cmd), "WCACHED_LOG_LEVEL=loud %s --version >/dev/null 2>&1", bin);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "WCACHED_LISTEN=bad %s --listen 127.0.0.1:x >/dev/null 2>&1", bin);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
}

Test(daemon, coalesced_sends_keep_every_event_in_order)
{
    const char *args[] = {"--coalesce-ms", "20", NULL};
    start(args);
    int64_t rv = put("/co/seed", "0");
    char path[96];
    snprintf(path, sizeof(path), "/keys/co/?watch=1&resourceVersion=%" PRId64, rv);
    wc_test_watch *w = wc_test_watch_open(daemon_.base, path);
    cr_assert_not_null(w);
    int64_t revs[30];
    for (int i = 0; i < 30; i++)
        revs[i] = put("/co/k", "v");
    json_t **evs = read_events(w, 30);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(wc_test_ev_rv(evs[i]), revs[i], "event %d", i);
    free_events(evs, 30);
    wc_test_watch_close(w);
}
