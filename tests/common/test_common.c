/*
 * common/: the buffer's JSON strings, base64, UTF-8, DNS-1123 names, numbers, listen addresses,
 * the core count.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>

#include "wcached/b64.h"
#include "wcached/buf.h"
#include "wcached/clock.h"
#include "wcached/cpu.h"
#include "wcached/err.h"
#include "wcached/parse.h"

/* wc_parse_i64 on a NUL-terminated string. */
static int i64(const char *s, int64_t min, int64_t max, int64_t *v)
{
    return wc_parse_i64(s, strlen(s), min, max, v);
}

Test(json, escaping)
{
    wc_buf b = {0};
    wc_buf_json(&b, "a\"b\\c\n\x01\xe2\x82\xac\xff", 11);
    cr_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\xe2\x82\xac\\ufffd\"");
    wc_buf_free(&b);
    /* overlong encodings and surrogates are not valid UTF-8 */
    wc_buf_json(&b, "\xc0\xaf\xed\xa0\x80", 5);
    cr_assert_eq(strstr(b.p, "\xc0"), NULL);
    cr_assert_eq(strstr(b.p, "\xed"), NULL);
    wc_buf_free(&b);
}

Test(buf, decimals_and_room)
{
    wc_buf b = {0};
    wc_buf_i64(&b, 0);
    wc_buf_put(&b, " ", 1);
    wc_buf_i64(&b, INT64_MIN);
    wc_buf_put(&b, " ", 1);
    wc_buf_i64(&b, INT64_MAX);
    wc_buf_put(&b, " ", 1);
    wc_buf_u64(&b, UINT64_MAX);
    wc_buf_put(&b, " ", 1);
    wc_buf_i64(&b, -7);
    cr_assert_str_eq(b.p, "0 -9223372036854775808 9223372036854775807 18446744073709551615 -7");
    size_t len = b.len;
    char *room = wc_buf_room(&b, 1000); /* past the first capacity: the buffer grows */
    cr_assert_not_null(room);
    cr_assert_eq(b.len, len);
    cr_assert_geq(b.cap, len + 1001);
    memset(room, 'x', 1000);
    b.len += 1000;
    b.p[b.len] = '\0';
    wc_buf_puts(&b, "!");
    cr_assert_eq(strlen(b.p), len + 1001);
    cr_assert_eq(b.p[len + 1000], '!');
    wc_buf_free(&b);
}

Test(base64url, round_trip_and_strictness)
{
    for (size_t len = 0; len < 40; len++) {
        unsigned char in[40];
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len);
        char enc[64];
        size_t el = wc_b64_encode_to(in, len, enc, WC_B64_URL);
        cr_assert_eq(el, strlen(enc));
        unsigned char dec[64];
        size_t dl;
        cr_assert_eq(wc_b64_decode_to(enc, el, dec, &dl, WC_B64_URL), 0);
        cr_assert_eq(dl, len);
        cr_assert_eq(memcmp(dec, in, len), 0);
    }
    unsigned char dec[16];
    size_t dl;
    cr_assert_eq(wc_b64_decode_to("YQ==", 4, dec, &dl, WC_B64_URL), WC_EINVAL);
    cr_assert_eq(wc_b64_decode_to("Y", 1, dec, &dl, WC_B64_URL), WC_EINVAL);
    cr_assert_eq(wc_b64_decode_to("YR", 2, dec, &dl, WC_B64_URL), WC_EINVAL); /* trailing bits */
    cr_assert_eq(wc_b64_decode_to("a+b/", 4, dec, &dl, WC_B64_URL), WC_EINVAL);
}

/* Each byte at each place of a quad and of a short tail: taken exactly when it is of the kind's
 * alphabet ('-' and '_' in both), with the six bits the alphabet gives it. */
Test(base64, every_byte_in_every_place)
{
    static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int kind = 0; kind < 2; kind++) {
        wc_b64_kind k = kind ? WC_B64_URL : WC_B64_STD;
        for (int c = 0; c < 256; c++) {
            const char *in_std = c ? memchr(STD, c, 64) : NULL;
            int six = in_std ? (int)(in_std - STD) : c == '-' ? 62 : c == '_' ? 63 : -1;
            if (k == WC_B64_URL && (c == '+' || c == '/'))
                six = -1;
            for (size_t at = 0; at < 7; at++) {
                if (c == '=' && at == 6 && k == WC_B64_STD)
                    continue;           /* padding, dropped */
                char in[8] = "AAAAAAA"; /* one quad, then a tail of three */
                in[at] = (char)c;
                unsigned char out[8];
                size_t n;
                bool tail_bits = at == 6 && six >= 0 && (six & 3) != 0;
                int want = six < 0 || (k == WC_B64_URL && tail_bits) ? WC_EINVAL : 0;
                cr_assert_eq(wc_b64_decode_to(in, 7, out, &n, k), want, "%d at %zu", c, at);
                if (want != 0)
                    continue;
                cr_assert_eq(n, 5);
                uint64_t bits = 0, got = 0;
                for (size_t i = 0; i < 7; i++)
                    bits = bits << 6 | (uint64_t)(i == at ? six : 0);
                for (size_t i = 0; i < 5; i++)
                    got = got << 8 | out[i];
                cr_assert_eq(got, bits >> 2, "%d at %zu", c, at);
            }
        }
    }
}

Test(parse, numbers)
{
    int64_t v;
    cr_assert_eq(i64("0", 0, 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(i64("10", 0, 10, &v), 0);
    cr_assert_eq(i64("11", 0, 10, &v), WC_EINVAL);
    cr_assert_eq(i64("", 0, 10, &v), WC_EINVAL);
    cr_assert_eq(i64(" 1", 0, 10, &v), WC_EINVAL);
    cr_assert_eq(i64("+1", 0, 10, &v), WC_EINVAL);
    cr_assert_eq(i64("-1", 0, 10, &v), WC_EINVAL, "no sign when min >= 0");
    cr_assert_eq(i64("9223372036854775807", 0, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(i64("99999999999999999999", 0, INT64_MAX, &v), WC_EINVAL);
    cr_assert_eq(i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(i64("-9223372036854775809", INT64_MIN, INT64_MAX, &v), WC_EINVAL);
    cr_assert_eq(i64("-", INT64_MIN, INT64_MAX, &v), WC_EINVAL);
    cr_assert_eq(i64("-5", -10, 10, &v), 0);
    cr_assert_eq(v, -5);
    cr_assert_eq(wc_parse_i64("123", 2, 0, 100, &v), 0, "only the n characters given");
    cr_assert_eq(v, 12);
    uint64_t u;
    cr_assert_eq(wc_parse_u64("18446744073709551615", 20, &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(wc_parse_u64("18446744073709551616", 20, &u), WC_EINVAL);
    cr_assert_eq(wc_parse_u64("-1", 2, &u), WC_EINVAL);
}

Test(parse, listen_addresses)
{
    char host[64];
    uint16_t port;
    cr_assert_eq(wc_parse_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 8080);
    cr_assert_eq(wc_parse_listen("[::1]:0", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 0);
    const char *bad[] = {"8080", ":8080", "h:", "h:65536", "h:-1", "[::1]8080", "[::1", "h:80x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(wc_parse_listen(bad[i], host, sizeof(host), &port), WC_EINVAL, "%s", bad[i]);
    cr_assert_eq(wc_parse_listen("a-very-long-host-name:1", host, 8, &port), WC_EINVAL);
}

Test(parse, utf8)
{
    cr_assert(wc_utf8_valid("", 0));
    cr_assert(wc_utf8_valid("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "\xff", "\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(wc_utf8_valid(bad[i], strlen(bad[i])), "bad #%zu", i);
    cr_assert_eq(wc_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    cr_assert_eq(wc_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
}

/* What wc_json_plain stops at, one byte at a time. */
static bool json_special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20;
}

Test(parse, the_eight_byte_scans_stop_at_every_byte_in_every_place)
{
    /* Each byte value in each place of a run, on both sides of a word's edge, over fillers
     * next to the bounds the word tests use (0x1f/0x20, '"', '\\', 0x7f/0x80). */
    const unsigned char fill[] = {'a', ' ', '!', '#', '[', ']', 0x7e, 0x7f, 0x80, 0xff};
    char buf[40];
    for (size_t f = 0; f < sizeof(fill); f++) {
        for (unsigned c = 0; c < 256; c++) {
            for (size_t at = 0; at < sizeof(buf); at++) {
                memset(buf, fill[f], sizeof(buf));
                buf[at] = (char)c;
                size_t want = json_special((unsigned char)c) ? at : sizeof(buf);
                cr_assert_eq(wc_json_plain(buf, sizeof(buf)), want, "fill %02x byte %02x at %zu",
                             fill[f], c, at);
                cr_assert_eq(wc_json_plain(buf + at, sizeof(buf) - at),
                             json_special((unsigned char)c) ? 0 : sizeof(buf) - at);
                if (fill[f] < 0x80) /* ASCII with one byte in it: valid unless that one is not */
                    cr_assert_eq(wc_utf8_valid(buf, sizeof(buf)), c < 0x80, "byte %02x at %zu", c,
                                 at);
            }
        }
    }
    /* a valid sequence across every word edge */
    for (size_t at = 0; at + 4 <= sizeof(buf); at++) {
        memset(buf, 'a', sizeof(buf));
        memcpy(buf + at, "\xf0\x9f\x98\x80", 4);
        cr_assert(wc_utf8_valid(buf, sizeof(buf)), "at %zu", at);
        buf[at + 3] = 'a'; /* cut short */
        cr_assert_not(wc_utf8_valid(buf, sizeof(buf)), "at %zu", at);
    }
}

Test(parse, decimals_as_printf_writes_them)
{
    const int64_t v[] = {0,
                         1,
                         -1,
                         9,
                         10,
                         99,
                         100,
                         1234567890,
                         -1234567890,
                         INT64_MAX,
                         INT64_MIN,
                         INT64_MIN + 1,
                         1000000000000000000LL};
    for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
        char want[32], got[24];
        int n = snprintf(want, sizeof(want), "%" PRId64, v[i]);
        cr_assert_eq(wc_i64_dec(v[i], got), (size_t)n);
        cr_assert_str_eq(got, want);
    }
    for (int64_t x = 1; x > 0 && x < INT64_MAX / 7; x = x * 7 + 3) {
        char want[32], got[24];
        snprintf(want, sizeof(want), "%" PRId64, -x);
        wc_i64_dec(-x, got);
        cr_assert_str_eq(got, want);
    }
}

Test(parse, dns_names)
{
    char l63[64], l64[65], s254[255];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'a', 64);
    l64[64] = '\0';
    cr_assert(wc_dns_label_valid("kube-system", 11));
    cr_assert(wc_dns_label_valid(l63, 63));
    cr_assert_not(wc_dns_label_valid(l64, 64));
    const char *bad[] = {"", "-a", "a-", "A", "a.b", "a_b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(wc_dns_label_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
    cr_assert(wc_dns_subdomain_valid("apps.example.com", 16));
    cr_assert(wc_dns_subdomain_valid(l64, 64), "no bound of 63 on a part, as Kubernetes");
    const char *bad_sub[] = {"", ".a", "a.", "a..b", "a.-b", "A.b"};
    for (size_t i = 0; i < sizeof(bad_sub) / sizeof(bad_sub[0]); i++)
        cr_assert_not(wc_dns_subdomain_valid(bad_sub[i], strlen(bad_sub[i])), "%s", bad_sub[i]);
    memset(s254, 'a', 254);
    cr_assert_not(wc_dns_subdomain_valid(s254, 254));
    cr_assert(wc_dns_subdomain_valid(s254, 253));
}

Test(clock, monotonic)
{
    int64_t a = wc_mono_ms(), b = wc_mono_ms();
    cr_assert_geq(b, a);
    cr_assert_gt(a, 0);
}

/* Writes a cgroup directory holding cpu.max = `content` (NULL: no file); returns its path. */
static char *cgroup_dir(const char *content)
{
    char *dir = strdup("/tmp/wc-cgroup-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    if (content) {
        char path[256];
        snprintf(path, sizeof(path), "%s/cpu.max", dir);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(content, f);
        fclose(f);
    }
    return dir;
}

static void cgroup_gone(char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/cpu.max", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
}

Test(cpu, the_affinity_mask_bounded_by_the_cgroup_quota)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    unsigned mask = (unsigned)CPU_COUNT(&set);
    char *none = cgroup_dir(NULL), *unlimited = cgroup_dir("max 100000\n"),
         *half = cgroup_dir("50000 100000\n"), *big = cgroup_dir("100000000 100000\n"),
         *bad = cgroup_dir("garbage\n");
    cr_assert_eq(wc_cpu_count(none), mask, "no cpu.max: the mask");
    cr_assert_eq(wc_cpu_count(unlimited), mask, "no quota: the mask");
    cr_assert_eq(wc_cpu_count(half), 1, "half a core rounds up to one");
    cr_assert_eq(wc_cpu_count(big), mask, "a quota above the mask: the mask");
    cr_assert_eq(wc_cpu_count(bad), mask, "an unreadable quota is ignored");
    /* one CPU in the mask wins over a bigger quota */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            CPU_SET(c, &one);
            break;
        }
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    cr_assert_eq(wc_cpu_count(big), 1);
    cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
    cgroup_gone(none);
    cgroup_gone(unlimited);
    cgroup_gone(half);
    cgroup_gone(big);
    cgroup_gone(bad);
}
