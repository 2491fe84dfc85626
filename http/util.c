/*
 * Small helpers of the http/ module: a growable buffer, JSON string escaping, the Status
 * object every error is answered with, and the strict decoders (percent-encoding, base64url,
 * booleans, integers) that untrusted input goes through before anything else sees it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_internal.h"
#include "wcached/b64.h"

/* ---------------------------------------------------------------------------------------
 * Buffer
 * ------------------------------------------------------------------------------------- */

static bool buf_reserve(wc_http_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void wc_http_buf_put(wc_http_buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void wc_http_buf_puts(wc_http_buf *b, const char *s)
{
    wc_http_buf_put(b, s, strlen(s));
}

void wc_http_buf_printf(wc_http_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
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

void wc_http_buf_json(wc_http_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    wc_http_buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' && u[j] != '\\')
                j++;
            wc_http_buf_put(b, s + i, j - i);
            i = j;
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            wc_http_buf_put(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            wc_http_buf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t len = utf8_len(u + i, n - i);
            if (len == 0) {
                wc_http_buf_puts(b, "\\ufffd");
                i++;
            } else {
                wc_http_buf_put(b, s + i, len);
                i += len;
            }
        }
    }
    wc_http_buf_put(b, "\"", 1);
}

void wc_http_buf_free(wc_http_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------------------------------
 * Errors and Status
 * ------------------------------------------------------------------------------------- */

int wc_http_fail(wc_http_error *e, int rc, int code, const char *reason, const char *fmt, ...)
{
    e->code = code;
    e->reason = reason;
    e->cause = NULL;
    e->retry_after = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return rc;
}

const char *wc_http_quote(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t lim = n > 64 ? 64 : n;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (n > lim) {
        out[o++] = '.';
        out[o++] = '.';
        out[o++] = '.';
    }
    out[o] = '\0';
    return out;
}

char *wc_http_status_json(const wc_http_error *e, size_t *len)
{
    wc_http_buf b = {0};
    wc_http_buf_puts(&b, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                         "\"status\":\"Failure\",\"message\":");
    wc_http_buf_json(&b, e->message, strlen(e->message));
    wc_http_buf_puts(&b, ",\"reason\":");
    wc_http_buf_json(&b, e->reason, strlen(e->reason));
    wc_http_buf_printf(&b, ",\"code\":%d", e->code);
    if (e->cause || e->retry_after > 0) {
        wc_http_buf_puts(&b, ",\"details\":{");
        if (e->cause) {
            wc_http_buf_puts(&b, "\"causes\":[{\"reason\":");
            wc_http_buf_json(&b, e->cause, strlen(e->cause));
            wc_http_buf_puts(&b, ",\"message\":");
            wc_http_buf_json(&b, e->message, strlen(e->message));
            wc_http_buf_puts(&b, "}]");
        }
        if (e->retry_after > 0)
            wc_http_buf_printf(&b, "%s\"retryAfterSeconds\":%d", e->cause ? "," : "",
                               e->retry_after);
        wc_http_buf_puts(&b, "}");
    }
    wc_http_buf_puts(&b, "}");
    if (b.oom) {
        wc_http_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---------------------------------------------------------------------------------------
 * Decoders
 * ------------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int wc_http_unescape(const char *s, size_t n, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\0')
            return WC_EINVAL;
        if (c == '%') {
            if (n - i < 3)
                return WC_EINVAL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return WC_EINVAL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return WC_EINVAL;
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

size_t wc_http_b64url_encode(const void *in, size_t n, char *out)
{
    return wc_b64_encode_to(in, n, out, WC_B64_URL);
}

int wc_http_b64url_decode(const char *in, size_t n, void *out, size_t *out_len)
{
    return wc_b64_decode_to(in, n, out, out_len, WC_B64_URL);
}

int wc_http_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return WC_EINVAL;
}

int wc_http_parse_uint(const char *s, int64_t max, int64_t *out)
{
    if (*s == '\0')
        return WC_EINVAL;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return WC_EINVAL;
        int d = *p - '0';
        if (v > (max - d) / 10)
            return WC_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int64_t wc_http_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
