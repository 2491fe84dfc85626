/*
 * Query parameters without sockets: each one valid and invalid, the combinations Kubernetes
 * forbids, and continue tokens (round trip, tampering).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <string.h>

#include "http_internal.h"

#define INDEX "spec.nodeName"

/* Parses "k=v&k2=v2" the way MHD hands parameters over ('+' as space, %XX left alone). */
/* Parses qs as a resource whose extra field labels are `fields` (NULL: none) would. */
static int parse_for(const char *qs, const char *const *fields, bool watch_path, wc_http_query *q,
                     wc_http_error *e)
{
    static char buf[65536];
    wc_http_param p[64];
    size_t n = 0;
    strncpy(buf, qs, sizeof(buf) - 1);
    for (char *s = buf; *s; s++)
        if (*s == '+')
            *s = ' ';
    char *save = NULL;
    for (char *tok = strtok_r(buf, "&", &save); tok && n < 64; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = '\0';
        p[n].key = tok;
        p[n].value = eq ? eq + 1 : NULL;
        n++;
    }
    memset(e, 0, sizeof(*e));
    return wc_http_query_parse(p, n, INDEX, fields, watch_path, NULL, q, e);
}

static int parse(const char *qs, bool watch_path, wc_http_query *q, wc_http_error *e)
{
    return parse_for(qs, NULL, watch_path, q, e);
}

static wc_http_query good(const char *qs)
{
    wc_http_query q;
    wc_http_error e;
    int rc = parse(qs, false, &q, &e);
    cr_assert_eq(rc, 0, "%s: %d %s", qs, e.code, e.message);
    return q;
}

/* Expects a 400 whose message names `param`. */
static void bad(const char *qs, const char *param)
{
    wc_http_query q;
    wc_http_error e;
    int rc = parse(qs, false, &q, &e);
    cr_assert_eq(rc, WC_EINVAL, "%s: expected 400", qs);
    cr_assert_eq(e.code, 400, "%s", qs);
    cr_assert_str_eq(e.reason, "BadRequest");
    char quoted[128];
    snprintf(quoted, sizeof(quoted), "\"%s\"", param);
    cr_assert_not_null(strstr(e.message, quoted), "%s: message \"%s\" does not name %s", qs,
                       e.message, param);
}

Test(query, defaults)
{
    wc_http_query q = good("");
    cr_assert_eq(q.watch, false);
    cr_assert_eq(q.rv, WC_RV_UNSET);
    cr_assert_eq(q.match, WC_HTTP_MATCH_NONE);
    cr_assert_eq(q.send_initial, -1);
    cr_assert_eq(q.timeout_s, 0);
    cr_assert_eq(q.limit, 0);
    cr_assert_null(q.labels);
    cr_assert_null(q.fields);
    cr_assert_eq(q.has_continue, false);
    wc_http_query_free(&q);
    /* empty values read as unset; unknown parameters are ignored */
    q = good("resourceVersion=&limit=&watch&pretty=true&foo=%zz");
    cr_assert_eq(q.rv, WC_RV_UNSET);
    cr_assert_eq(q.watch, false);
    wc_http_query_free(&q);
}

Test(query, watch_and_bools)
{
    const char *yes[] = {"watch=true", "watch=1", "watch=True", "watch=TRUE", "watch=t"};
    for (size_t i = 0; i < 5; i++) {
        wc_http_query q = good(yes[i]);
        cr_assert(q.watch, "%s", yes[i]);
        wc_http_query_free(&q);
    }
    wc_http_query q = good("watch=false&allowWatchBookmarks=1");
    cr_assert(!q.watch);
    cr_assert(q.allow_bookmarks);
    wc_http_query_free(&q);
    bad("watch=yes", "watch");
    bad("watch=2", "watch");
    bad("allowWatchBookmarks=on", "allowWatchBookmarks");
    /* the legacy /watch/ path turns watch on */
    wc_http_error e;
    cr_assert_eq(parse("", true, &q, &e), 0);
    cr_assert(q.watch);
    wc_http_query_free(&q);
}

Test(query, first_occurrence_wins)
{
    wc_http_query q = good("limit=5&limit=abc");
    cr_assert_eq(q.limit, 5);
    wc_http_query_free(&q);
}

Test(query, resource_version)
{
    wc_http_query q = good("resourceVersion=0");
    cr_assert_eq(q.rv, 0);
    wc_http_query_free(&q);
    q = good("resourceVersion=9223372036854775807");
    cr_assert_eq(q.rv, INT64_MAX);
    wc_http_query_free(&q);
    bad("resourceVersion=-1", "resourceVersion");
    bad("resourceVersion=abc", "resourceVersion");
    bad("resourceVersion=%2B5", "resourceVersion");
    bad("resourceVersion=1.5", "resourceVersion");
    bad("resourceVersion=+5", "resourceVersion");
    bad("resourceVersion=9223372036854775808", "resourceVersion");
    bad("resourceVersion=12%00", "resourceVersion");
    bad("resourceVersion=%zz", "resourceVersion");
}

Test(query, resource_version_match)
{
    wc_http_query q = good("resourceVersion=5&resourceVersionMatch=Exact");
    cr_assert_eq(q.match, WC_HTTP_MATCH_EXACT);
    wc_http_query_free(&q);
    q = good("resourceVersion=5&resourceVersionMatch=NotOlderThan");
    cr_assert_eq(q.match, WC_HTTP_MATCH_NOT_OLDER);
    wc_http_query_free(&q);
    q = good("resourceVersion=0&resourceVersionMatch=NotOlderThan");
    wc_http_query_free(&q);
    bad("resourceVersion=5&resourceVersionMatch=exact", "resourceVersionMatch");
    bad("resourceVersion=5&resourceVersionMatch=Newest", "resourceVersionMatch");
    bad("resourceVersionMatch=Exact", "resourceVersionMatch"); /* needs an RV */
    bad("resourceVersion=0&resourceVersionMatch=Exact", "resourceVersionMatch");
    bad("watch=true&resourceVersion=5&resourceVersionMatch=NotOlderThan",
        "resourceVersionMatch"); /* watch: only with sendInitialEvents */
}

Test(query, timeout_and_limit)
{
    wc_http_query q = good("timeoutSeconds=30&limit=500");
    cr_assert_eq(q.timeout_s, 30);
    cr_assert_eq(q.limit, 500);
    wc_http_query_free(&q);
    bad("timeoutSeconds=-1", "timeoutSeconds");
    bad("timeoutSeconds=1s", "timeoutSeconds");
    bad("timeoutSeconds=99999999999", "timeoutSeconds");
    bad("limit=-5", "limit");
    bad("limit=ten", "limit");
    bad("limit=1e3", "limit");
    /* past the bounds: a timeout over a year is refused, a limit is served as smaller pages */
    bad("watch=1&timeoutSeconds=31708801", "timeoutSeconds");
    bad("watch=1&timeoutSeconds=99999999999999999999", "timeoutSeconds");
    q = good("limit=10000000");
    cr_assert_eq(q.limit, WC_HTTP_MAX_PAGE_SIZE);
    wc_http_query_free(&q);
    q = good("limit=9223372036854775807");
    cr_assert_eq(q.limit, WC_HTTP_MAX_PAGE_SIZE);
    wc_http_query_free(&q);
    bad("limit=9223372036854775808", "limit");
}

/* The server's bounds move the page cap and the timeout's limit, and nothing else. */
Test(query, the_page_cap_and_the_timeout_bound_are_settings)
{
    const wc_http_param lim[] = {{"limit", "101"}};
    const wc_http_param lim_at[] = {{"limit", "100"}};
    const wc_http_param lim_under[] = {{"limit", "7"}};
    const wc_http_param t_at[] = {{"watch", "1"}, {"timeoutSeconds", "60"}};
    const wc_http_param t_over[] = {{"watch", "1"}, {"timeoutSeconds", "61"}};
    const wc_http_param t_year[] = {{"watch", "1"}, {"timeoutSeconds", "31622400"}};
    wc_http_query_bounds b = {.max_limit = 100, .max_timeout_s = 60};
    wc_http_query q;
    wc_http_error e = {0};
    cr_assert_eq(wc_http_query_parse(lim, 1, NULL, NULL, false, &b, &q, &e), 0);
    cr_assert_eq(q.limit, 100);
    wc_http_query_free(&q);
    cr_assert_eq(wc_http_query_parse(lim_at, 1, NULL, NULL, false, &b, &q, &e), 0);
    cr_assert_eq(q.limit, 100);
    wc_http_query_free(&q);
    cr_assert_eq(wc_http_query_parse(lim_under, 1, NULL, NULL, false, &b, &q, &e), 0);
    cr_assert_eq(q.limit, 7);
    wc_http_query_free(&q);
    cr_assert_eq(wc_http_query_parse(t_at, 2, NULL, NULL, false, &b, &q, &e), 0);
    cr_assert_eq(q.timeout_s, 60);
    wc_http_query_free(&q);
    cr_assert_eq(wc_http_query_parse(t_over, 2, NULL, NULL, false, &b, &q, &e), WC_EINVAL);
    cr_assert_eq(e.code, 400);
    cr_assert(strstr(e.message, "\"timeoutSeconds\"") && strstr(e.message, "at most 60 seconds"),
              "%s", e.message);
    /* the defaults (no bounds given) allow what 60 refused, up to 366 days */
    cr_assert_eq(wc_http_query_parse(t_year, 2, NULL, NULL, false, NULL, &q, &e), 0);
    cr_assert_eq(q.timeout_s, WC_HTTP_MAX_TIMEOUT_SECONDS);
    wc_http_query_free(&q);
    cr_assert_eq(wc_http_query_parse(lim, 1, NULL, NULL, false, NULL, &q, &e), 0);
    cr_assert_eq(q.limit, 101);
    wc_http_query_free(&q);
    /* a larger bound lets a larger page through */
    b.max_limit = 20000;
    const wc_http_param big[] = {{"limit", "15000"}};
    cr_assert_eq(wc_http_query_parse(big, 1, NULL, NULL, false, &b, &q, &e), 0);
    cr_assert_eq(q.limit, 15000);
    wc_http_query_free(&q);
}

Test(query, send_initial_events)
{
    wc_http_query q = good("watch=1&sendInitialEvents=true&allowWatchBookmarks=true&"
                           "resourceVersionMatch=NotOlderThan");
    cr_assert_eq(q.send_initial, 1);
    wc_http_query_free(&q);
    q = good("watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan");
    cr_assert_eq(q.send_initial, 0);
    wc_http_query_free(&q);
    bad("watch=1&sendInitialEvents=true&allowWatchBookmarks=true", "sendInitialEvents");
    bad("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "sendInitialEvents");
    bad("watch=1&sendInitialEvents=maybe", "sendInitialEvents");
    bad("sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&"
        "resourceVersion=1",
        "sendInitialEvents"); /* list */
}

Test(query, label_selector)
{
    wc_http_query q = good("labelSelector=app%3Dweb,tier+in+(a,b),!legacy");
    cr_assert_not_null(q.labels);
    cr_assert_eq(wc_selector_count(q.labels), 3);
    wc_http_query_free(&q);
    bad("labelSelector=app%3D%3D%3D", "labelSelector");
    bad("labelSelector=a+in+(", "labelSelector");
    bad("labelSelector=%zz", "labelSelector");
}

Test(query, field_selector)
{
    wc_http_query q = good("fieldSelector=metadata.name%3Dweb,metadata.namespace!%3Ddefault");
    cr_assert_eq(wc_selector_count(q.fields), 2);
    wc_http_query_free(&q);
    q = good("fieldSelector=spec.nodeName%3D%3Dnode-1");
    cr_assert_str_eq(wc_selector_exact(q.fields, INDEX), "node-1");
    wc_http_query_free(&q);
    bad("fieldSelector=spec.other%3Dx", "fieldSelector");
    bad("fieldSelector=status.phase%3DRunning", "fieldSelector");
    bad("fieldSelector=metadata.name", "fieldSelector");
}

Test(query, continue_params)
{
    char *tok = wc_http_continue_encode(42, "b", 1);
    char qs[512];
    snprintf(qs, sizeof(qs), "limit=2&continue=%s", tok);
    wc_http_query q = good(qs);
    cr_assert(q.has_continue);
    cr_assert_eq(q.cont_rv, 42);
    cr_assert_eq(q.cont_key_len, 1);
    cr_assert_eq(q.cont_key[0], 'b');
    wc_http_query_free(&q);
    snprintf(qs, sizeof(qs), "continue=%s&resourceVersion=0", tok);
    q = good(qs);
    wc_http_query_free(&q);
    snprintf(qs, sizeof(qs), "continue=%s&resourceVersion=7", tok);
    bad(qs, "continue");
    snprintf(qs, sizeof(qs), "continue=%s&resourceVersion=7&resourceVersionMatch=Exact", tok);
    bad(qs, "resourceVersionMatch");
    snprintf(qs, sizeof(qs), "continue=%s&watch=1", tok);
    bad(qs, "continue");
    bad("continue=garbage!", "continue");
    bad("continue=eyJ2IjoxfQ", "continue");
    free(tok);
}

Test(query, oversized_value)
{
    size_t n = WC_HTTP_MAX_PARAM + 10;
    char *qs = malloc(n + 32);
    strcpy(qs, "labelSelector=");
    memset(qs + 14, 'a', n);
    qs[14 + n] = '\0';
    bad(qs, "labelSelector");
    free(qs);
}

/* ---------------------------------------------------------------------------------------
 * Continue tokens
 * ------------------------------------------------------------------------------------- */

Test(continue_token, round_trip)
{
    const char *keys[] = {"a", "pods/default/web-1", "\xff\xfe binary \x01", ""};
    size_t lens[] = {1, 18, 11, 0};
    for (size_t i = 0; i < 4; i++) {
        char *tok = wc_http_continue_encode(123456789, keys[i], lens[i]);
        cr_assert_not_null(tok);
        for (const char *p = tok; *p; p++)
            cr_assert(
                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p),
                "token not base64url: %s", tok);
        int64_t rv;
        char *key;
        size_t len;
        cr_assert_eq(wc_http_continue_decode(tok, strlen(tok), &rv, &key, &len), 0);
        cr_assert_eq(rv, 123456789);
        cr_assert_eq(len, lens[i]);
        cr_assert_eq(memcmp(key, keys[i], len), 0);
        free(key);
        free(tok);
    }
}

static int decode_raw(const char *json)
{
    char tok[1024];
    wc_b64_encode_to(json, strlen(json), tok, WC_B64_URL);
    int64_t rv;
    char *key = NULL;
    size_t len;
    int rc = wc_http_continue_decode(tok, strlen(tok), &rv, &key, &len);
    free(key);
    return rc;
}

Test(continue_token, tampered)
{
    cr_assert_eq(decode_raw("{\"v\":1,\"rv\":5,\"start\":\"YQ\"}"), 0);
    const char *badj[] = {
        "{\"v\":2,\"rv\":5,\"start\":\"YQ\"}", /* version */
        "{\"v\":1,\"rv\":0,\"start\":\"YQ\"}", /* rv */
        "{\"v\":1,\"rv\":-3,\"start\":\"YQ\"}",
        "{\"v\":1,\"rv\":\"5\",\"start\":\"YQ\"}",
        "{\"v\":1,\"rv\":5,\"start\":5}",     /* start */
        "{\"v\":1,\"rv\":5,\"start\":\"Y\"}", /* bad base64 */
        "{\"v\":1,\"rv\":5,\"start\":\"Y+Q\"}",
        "{\"v\":1,\"rv\":5}",                          /* missing */
        "{\"v\":1,\"rv\":5,\"start\":\"YQ\",\"x\":1}", /* extra */
        "{\"v\":1,\"v\":1,\"rv\":5,\"start\":\"YQ\"}", /* duplicate */
        "[1,5,\"YQ\"]",
        "{\"v\":1,\"rv\":5,\"start\":\"YQ\"",  /* truncated */
        "{\"rv\":5,\"v\":1,\"start\":\"YQ\"}", /* not the encoder's bytes */
        "{ \"v\":1,\"rv\":5,\"start\":\"YQ\"}",
        "{\"v\":1,\"rv\":5,\"start\":\"Y\\u0051\"}",
        "{\"v\":1,\"rv\":5,\"start\":\"YQ\"}\n",
        "",
        "null",
    };
    for (size_t i = 0; i < sizeof(badj) / sizeof(badj[0]); i++)
        cr_assert_eq(decode_raw(badj[i]), WC_EINVAL, "accepted %s", badj[i]);

    /* changing any character of a real token, to anything, never crashes and never yields
       another key silently outside what the token said: it fails, or it is the very token
       of what it decodes to (no lenient reading of a damaged token) */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_%";
    char *tok = wc_http_continue_encode(77, "k/1", 3);
    size_t n = strlen(tok);
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        for (const char *c = alphabet; *c; c++) {
            if (*c == tok[i])
                continue;
            char t[256];
            strcpy(t, tok);
            t[i] = *c;
            int64_t rv;
            char *key = NULL;
            size_t len;
            int rc = wc_http_continue_decode(t, n, &rv, &key, &len);
            cr_assert(rc == 0 || rc == WC_EINVAL, "%s: %d", t, rc);
            if (rc == 0) {
                accepted++;
                cr_assert_geq(rv, 1);
                char *again = wc_http_continue_encode(rv, key, len);
                cr_assert_str_eq(again, t, "%s read as rv %" PRId64 ", key %.*s", t, rv, (int)len,
                                 key);
                free(again);
            }
            free(key);
        }
    }
    cr_assert_gt(accepted, 0, "some changes make another valid token: the check above ran");
    int64_t rv;
    char *key;
    size_t len;
    cr_assert_eq(wc_http_continue_decode(tok, n - 1, &rv, &key, &len), WC_EINVAL);
    free(tok);
    char huge[WC_HTTP_MAX_TOKEN + 8];
    memset(huge, 'A', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    cr_assert_eq(wc_http_continue_decode(huge, strlen(huge), &rv, &key, &len), WC_EINVAL);
}

Test(query, a_resources_own_field_labels_are_accepted_and_only_for_it)
{
    wc_http_resources *t = wc_http_resources_new();
    cr_assert_not_null(t);
    const wc_http_resource *pods = wc_http_resources_find(t, "", "v1", "pods");
    const wc_http_resource *events = wc_http_resources_find(t, "", "v1", "events");
    const wc_http_resource *cms = wc_http_resources_find(t, "", "v1", "configmaps");
    cr_assert(pods && events && cms);
    cr_assert_null(wc_http_resource_fields(cms));
    wc_http_query q;
    wc_http_error e;
    cr_assert_eq(parse_for("fieldSelector=status.phase%3DRunning,spec.restartPolicy!%3DNever",
                           wc_http_resource_fields(pods), false, &q, &e),
                 0, "%s", e.message);
    cr_assert_eq(wc_selector_count(q.fields), 2);
    wc_http_query_free(&q);
    cr_assert_eq(parse_for("fieldSelector=involvedObject.name%3Dweb-1,involvedObject.kind%3DPod",
                           wc_http_resource_fields(events), false, &q, &e),
                 0, "%s", e.message);
    wc_http_query_free(&q);
    /* Another resource's label is still refused, and so is an unknown one. */
    cr_assert_eq(parse_for("fieldSelector=involvedObject.name%3Dx", wc_http_resource_fields(pods),
                           false, &q, &e),
                 WC_EINVAL);
    cr_assert(strstr(e.message, "field label not supported"), "%s", e.message);
    cr_assert_eq(parse_for("fieldSelector=status.phase%3DRunning", wc_http_resource_fields(cms),
                           false, &q, &e),
                 WC_EINVAL);
    wc_http_resources_free(t);
}
