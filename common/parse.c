/* The shared checks and parsers; see include/wcached/parse.h. */
#include <string.h>

#include "wcached/err.h"
#include "wcached/parse.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
size_t wc_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool wc_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n && !(wc_word8(s + i) & WC_BYTES_80)) {
            i += 8; /* ASCII */
            continue;
        }
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = wc_utf8_len(u + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* One part of a DNS-1123 name: [a-z0-9]([-a-z0-9]*[a-z0-9])?, of any length >= 1. */
static bool dns_part(const char *s, size_t n)
{
    if (n == 0 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

bool wc_dns_label_valid(const char *s, size_t n)
{
    return n <= 63 && dns_part(s, n);
}

bool wc_dns_subdomain_valid(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!dns_part(s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* Digits only, at least one, accumulated into *v as long as it stays <= max. */
static int digits(const char *s, size_t n, uint64_t max, uint64_t *v)
{
    if (n == 0)
        return WC_EINVAL;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WC_EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (max - d) / 10)
            return WC_EINVAL;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int wc_parse_i64(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    if (neg && min >= 0)
        return WC_EINVAL;
    uint64_t v;
    /* The magnitude may reach 2^63 for a negative number. */
    uint64_t bound = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (digits(s + neg, n - neg, bound, &v) != 0)
        return WC_EINVAL;
    int64_t x = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (x < min || x > max)
        return WC_EINVAL;
    *out = x;
    return 0;
}

int wc_parse_u64(const char *s, size_t n, uint64_t *out)
{
    return digits(s, n, UINT64_MAX, out);
}

int wc_parse_listen(const char *s, char *host, size_t host_len, uint16_t *port)
{
    const char *colon;
    const char *h0 = s, *h1;
    if (*s == '[') {
        h0 = s + 1;
        h1 = strchr(h0, ']');
        if (!h1 || h1[1] != ':')
            return WC_EINVAL;
        colon = h1 + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return WC_EINVAL;
        h1 = colon;
    }
    size_t hl = (size_t)(h1 - h0);
    if (hl == 0 || hl >= host_len)
        return WC_EINVAL;
    int64_t p;
    if (wc_parse_i64(colon + 1, strlen(colon + 1), 0, 65535, &p) != 0)
        return WC_EINVAL;
    memcpy(host, h0, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

size_t wc_i64_dec(int64_t v, char out[24])
{
    char tmp[24];
    size_t n = 0;
    /* the digits of |v|, last first, without negating INT64_MIN */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    out[o] = '\0';
    return o;
}
