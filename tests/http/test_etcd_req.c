/*
 * http/etcd_req.c: the etcd gateway's range bodies and watch lines decoded as etcd 3.4's
 * gateway reads them, and whether a range lies in the cached prefix. (The answers themselves
 * are held to etcd's own by tests/integration/test_etcd_api.py.)
 */
#include <criterion/criterion.h>
#include <string.h>

#include "etcd_req.h"
#include "wcached/err.h"

static int range(const char *body, wc_http_etcd_range *q, char *err)
{
    return wc_http_etcd_range_parse(body, strlen(body), q, err, 256);
}

Test(etcd_req, a_range_takes_both_spellings_strings_for_int64_and_enums_by_name_or_number)
{
    wc_http_etcd_range q;
    char err[256];
    cr_assert_eq(range("{\"key\":\"L3Av\",\"rangeEnd\":\"L3Aw\",\"limit\":\"3\",\"revision\":7,"
                       "\"sort_order\":\"DESCEND\",\"sortTarget\":3,\"keysOnly\":true,"
                       "\"serializable\":null}",
                       &q, err),
                 0, "%s", err);
    cr_assert_eq(q.key_len, 3);
    cr_assert_str_eq(q.key, "/p/");
    cr_assert_str_eq(q.end, "/p0");
    cr_assert_eq(q.limit, 3);
    cr_assert_eq(q.revision, 7);
    cr_assert_eq(q.sort_order, 2);
    cr_assert_eq(q.sort_target, 3);
    cr_assert(q.keys_only && !q.serializable && !q.count_only);
    wc_http_etcd_range_free(&q);
}

Test(etcd_req, a_bad_range_gets_the_gateways_message_and_holds_nothing)
{
    static const struct {
        const char *body, *says;
    } bad[] = {
        {"{bad", ""},
        {"[]", "cannot unmarshal"},
        {"{\"key\":123}", "cannot unmarshal number into Go value of type []uint8"},
        {"{\"key\":\"@@\"}", "illegal base64 data"},
        {"{\"key\":\"YQ==\",\"limit\":\"x\"}", "bad value for limit"},
        {"{\"key\":\"YQ==\",\"sort_order\":\"BOGUS\"}", "unknown value BOGUS for enum"},
        {"{\"key\":\"YQ==\",\"sort_target\":9}", "unknown sort order or target"},
        {"{\"key\":\"YQ==\",\"keys_only\":1}", "bad value for keys_only"},
        {"{}", "etcdserver: key is not provided"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wc_http_etcd_range q;
        char err[256] = "";
        cr_assert_eq(range(bad[i].body, &q, err), WC_EINVAL, "%s", bad[i].body);
        cr_assert(err[0] && strstr(err, bad[i].says), "%s: %s", bad[i].body, err);
        cr_assert(!q.key && !q.end, "%s", bad[i].body);
    }
}

Test(etcd_req, range_ends_take_etcds_three_forms_and_stay_inside_the_prefix)
{
    const char *end;
    size_t len;
    wc_http_etcd_range_form(NULL, 0, &end, &len);
    cr_assert_null(end);
    wc_http_etcd_range_form("\0", 1, &end, &len);
    cr_assert(end && len == 0);
    wc_http_etcd_range_form("/p0", 3, &end, &len);
    cr_assert(end && len == 3);
    cr_assert(wc_http_etcd_in_prefix("/p/", "/p/a", 4, NULL, 0));
    cr_assert(wc_http_etcd_in_prefix("/p/", "/p/", 3, "/p0", 3));
    cr_assert(wc_http_etcd_in_prefix("/p/", "/p/a", 4, "/p/b", 4));
    cr_assert_not(wc_http_etcd_in_prefix("/p/", "/p/", 3, "/p1", 3));
    cr_assert_not(wc_http_etcd_in_prefix("/p/", "/p/", 3, "/p00", 4));
    cr_assert_not(wc_http_etcd_in_prefix("/p/", "/p/", 3, "", 0)); /* to the key space's end */
    cr_assert_not(wc_http_etcd_in_prefix("/p/", "/q/x", 4, NULL, 0));
    cr_assert_not(wc_http_etcd_in_prefix("/p/", "/p", 2, NULL, 0));
    cr_assert(wc_http_etcd_in_prefix("", "", 0, "", 0));
    cr_assert(wc_http_etcd_in_prefix("\xff\xff", "\xff\xff", 2, "", 0)); /* no end above it */
}

static wc_http_etcd_watch_kind line(const char *p, wc_http_etcd_watch_req *r)
{
    bool oom;
    wc_http_etcd_watch_kind k = wc_http_etcd_watch_parse(p, strlen(p), r, &oom);
    cr_assert_not(oom);
    return k;
}

Test(etcd_req, watch_lines_are_creates_cancels_progress_ignored_or_bad)
{
    wc_http_etcd_watch_req r;
    cr_assert_eq(line(" \t\r", &r), WC_HTTP_ETCD_IGNORED);
    cr_assert_eq(line("{\"nothing\":{}}", &r), WC_HTTP_ETCD_IGNORED);
    cr_assert_eq(line("{bad", &r), WC_HTTP_ETCD_BAD);
    cr_assert_eq(line("[1]", &r), WC_HTTP_ETCD_BAD);
    cr_assert_eq(line("{\"create_request\":{\"key\":1}}", &r), WC_HTTP_ETCD_BAD);
    cr_assert_null(r.key);
    cr_assert_eq(line("{\"cancel_request\":{\"watch_id\":\"x\"}}", &r), WC_HTTP_ETCD_BAD);
    cr_assert_eq(line("{\"progress_request\":{}}\r", &r), WC_HTTP_ETCD_PROGRESS);
    cr_assert_eq(line("{\"cancelRequest\":{\"watchId\":\"42\"}}", &r), WC_HTTP_ETCD_CANCEL);
    cr_assert_eq(r.watch_id, 42);

    cr_assert_eq(line("  {\"create_request\":{\"key\":\"L3Av\",\"range_end\":\"AA==\","
                      "\"start_revision\":\"5\",\"prev_kv\":true,\"filters\":[\"NOPUT\",1]}} ",
                      &r),
                 WC_HTTP_ETCD_CREATE);
    cr_assert_str_eq(r.key, "/p/");
    cr_assert(r.end && r.end_len == 0, "\"\\0\": every key from key on");
    cr_assert_eq(r.start_revision, 5);
    cr_assert_eq(r.watch_id, -1, "no watch_id given");
    cr_assert(r.prev_kv && r.noput && r.nodelete && !r.progress_notify);
    wc_http_etcd_watch_free(&r);

    cr_assert_eq(line("{\"createRequest\":{\"key\":\"L3Av\",\"watchId\":7,\"progressNotify\":true,"
                      "\"filters\":[\"NODELETE\"]}}",
                      &r),
                 WC_HTTP_ETCD_CREATE);
    cr_assert_null(r.end, "no range_end: the one key");
    cr_assert_eq(r.watch_id, 7);
    cr_assert(r.progress_notify && r.nodelete && !r.noput);
    wc_http_etcd_watch_free(&r);
}
