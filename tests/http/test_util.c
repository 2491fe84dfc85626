/*
 * Helpers without sockets: the Status object, quoting, the strict decoders.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "http_internal.h"

Test(status, exact_shape)
{
    wc_http_error e;
    cr_assert_eq(wc_http_fail(&e, WC_EINVAL, 400, "BadRequest", "bad \"%s\"", "limit"), WC_EINVAL);
    size_t len;
    char *s = wc_http_status_json(&e, &len);
    cr_assert_str_eq(s, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                        "\"status\":\"Failure\",\"message\":\"bad \\\"limit\\\"\","
                        "\"reason\":\"BadRequest\",\"code\":400}");
    cr_assert_eq(len, strlen(s));
    free(s);
}

Test(status, details)
{
    wc_http_error e;
    wc_http_fail(&e, WC_ETIMEDOUT, 504, "Timeout", "Too large resource version: 9, current: 3");
    e.cause = "ResourceVersionTooLarge";
    e.retry_after = 1;
    size_t len;
    char *s = wc_http_status_json(&e, &len);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "%s", s);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), 504);
    json_t *d = json_object_get(j, "details");
    cr_assert_eq(json_integer_value(json_object_get(d, "retryAfterSeconds")), 1);
    json_t *c0 = json_array_get(json_object_get(d, "causes"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "reason")), "ResourceVersionTooLarge");
    json_decref(j);
    free(s);
}

Test(status, hostile_message_is_valid_json)
{
    wc_http_error e;
    char q[WC_HTTP_QUOTE_MAX];
    const char evil[] = "\"}\n\x01\xff\xc3\x28 end";
    wc_http_fail(&e, WC_EINVAL, 400, "BadRequest", "value \"%s\"",
                 wc_http_quote(evil, sizeof(evil) - 1, q));
    size_t len;
    char *s = wc_http_status_json(&e, &len);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "%s: %s", s, je.text);
    json_decref(j);
    free(s);
}

Test(quote, bounds)
{
    char q[WC_HTTP_QUOTE_MAX];
    char big[300];
    memset(big, '\xff', sizeof(big));
    wc_http_quote(big, sizeof(big), q);
    cr_assert_lt(strlen(q), sizeof(q));
    cr_assert_str_eq(wc_http_quote("a\\b", 3, q), "a\\x5cb");
}

Test(unescape, strict)
{
    char out[64];
    size_t n;
    cr_assert_eq(wc_http_unescape("a%20b%2f%2F", 11, out, &n), 0);
    cr_assert_str_eq(out, "a b//");
    cr_assert_eq(n, 5);
    const char *badv[] = {"%", "%2", "%zz", "%g0", "a%00b", "%0"};
    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
        cr_assert_eq(wc_http_unescape(badv[i], strlen(badv[i]), out, &n), WC_EINVAL, "%s", badv[i]);
    cr_assert_eq(wc_http_unescape("ab", 3, out, &n), WC_EINVAL); /* an embedded NUL */
}

Test(parse, bools)
{
    bool b;
    cr_assert_eq(wc_http_parse_bool("True", &b), 0);
    cr_assert(b);
    cr_assert_eq(wc_http_parse_bool("F", &b), 0);
    cr_assert(!b);
    cr_assert_eq(wc_http_parse_bool("yes", &b), WC_EINVAL);
    cr_assert_eq(wc_http_parse_bool("", &b), WC_EINVAL);
}

Test(trim, after_a_crowd_left_only)
{
    size_t peak = 0;
    cr_assert(!wc_http_trim_due(&peak, 1000)); /* a crowd arrives */
    cr_assert_eq(peak, 1000);
    cr_assert(!wc_http_trim_due(&peak, 990)); /* a steady churn */
    cr_assert(!wc_http_trim_due(&peak, 501));
    cr_assert(wc_http_trim_due(&peak, 500)); /* half of them left */
    cr_assert_eq(peak, 500);
    cr_assert(!wc_http_trim_due(&peak, 400)); /* counted from the trim, not the old peak */
    cr_assert(wc_http_trim_due(&peak, 0));
    cr_assert(!wc_http_trim_due(&peak, 0)); /* once */
    peak = 0;
    cr_assert(!wc_http_trim_due(&peak, 100));
    cr_assert(!wc_http_trim_due(&peak, 37)); /* 63 left: too few to be worth it */
    cr_assert(wc_http_trim_due(&peak, 36));
}

Test(trim, after_a_storm_of_arrivals_once_it_settled)
{
    uint64_t at = 0, tick = 0;
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 0));    /* nothing opened */
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 5000)); /* a storm under way */
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 10000));
    cr_assert(wc_http_trim_after_storm(&at, &tick, 10000)); /* a tick with none: settled */
    cr_assert_eq(at, 10000);
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 10000)); /* once */
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 10100)); /* a trickle of re-watches */
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 10100)); /* 100 since: not worth it */
    cr_assert(!wc_http_trim_after_storm(&at, &tick, 10300));
    cr_assert(wc_http_trim_after_storm(&at, &tick, 10300));
    cr_assert_eq(at, 10300);
}

Test(trim, waits_for_a_tick_in_which_no_stream_sent)
{
    wc_http_trim_wait w = {0};
    cr_assert(!wc_http_trim_now(&w, false, 0));  /* nothing due */
    cr_assert(!wc_http_trim_now(&w, true, 100)); /* due while events flow */
    cr_assert(!wc_http_trim_now(&w, false, 250));
    cr_assert(wc_http_trim_now(&w, false, 250));  /* a tick without a send */
    cr_assert(!wc_http_trim_now(&w, false, 250)); /* once */
    cr_assert(wc_http_trim_now(&w, true, 250));   /* due in a quiet tick: at once */
    /* Under a steady flow it waits 30 ticks at most. */
    uint64_t sends = 300;
    cr_assert(!wc_http_trim_now(&w, true, sends));
    int ticks = 1;
    while (!wc_http_trim_now(&w, false, sends += 10))
        cr_assert_lt(++ticks, 30);
    cr_assert_eq(ticks, 29);
    cr_assert(!wc_http_trim_now(&w, false, sends += 10));
}

Test(pumps, a_few_streams_share_one_pump_and_many_spread_over_all)
{
    size_t c[3] = {0, 0, 0};
    /* 64 streams or fewer: all on the first pump, so an event wakes one thread. */
    for (int i = 0; i < 64; i++) {
        unsigned p = wc_http_pick_pump(c, 3, 64);
        cr_assert_eq(p, 0);
        c[p]++;
    }
    cr_assert_eq(wc_http_pick_pump(c, 3, 64), 1); /* then the next */
    c[1] = 64;
    cr_assert_eq(wc_http_pick_pump(c, 3, 64), 2);
    c[2] = 64;
    /* Every pump full to the pack: the one holding the fewest, the first of equals. */
    cr_assert_eq(wc_http_pick_pump(c, 3, 64), 0);
    size_t d[3] = {300, 120, 200};
    cr_assert_eq(wc_http_pick_pump(d, 3, 64), 1);
    /* Streams that left make room on the first pump again. */
    size_t e[3] = {10, 500, 500};
    cr_assert_eq(wc_http_pick_pump(e, 3, 64), 0);
    /* One pump takes everything. */
    size_t f[1] = {1000};
    cr_assert_eq(wc_http_pick_pump(f, 1, 64), 0);
    /* Pack 0: the least-loaded pump always (streams spread evenly). */
    size_t g[2] = {0, 0};
    for (int i = 0; i < 10; i++)
        g[wc_http_pick_pump(g, 2, 0)]++;
    cr_assert_eq(g[0], 5);
    cr_assert_eq(g[1], 5);
}
