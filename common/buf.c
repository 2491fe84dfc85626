/* The one growable byte buffer; see include/wcached/buf.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcached/buf.h"
#include "wcached/parse.h"

static bool buf_reserve(wc_buf *b, size_t more)
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

void wc_buf_put(wc_buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

char *wc_buf_room(wc_buf *b, size_t n)
{
    return buf_reserve(b, n) ? b->p + b->len : NULL;
}

void wc_buf_u64(wc_buf *b, uint64_t v)
{
    char d[20];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wc_buf_put(b, d + i, sizeof(d) - i);
}

void wc_buf_i64(wc_buf *b, int64_t v)
{
    if (v < 0) {
        wc_buf_put(b, "-", 1);
        wc_buf_u64(b, 0 - (uint64_t)v);
    } else {
        wc_buf_u64(b, (uint64_t)v);
    }
}

void wc_buf_puts(wc_buf *b, const char *s)
{
    wc_buf_put(b, s, strlen(s));
}

void wc_buf_printf(wc_buf *b, const char *fmt, ...)
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

void wc_buf_json(wc_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    wc_buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' && u[j] != '\\')
                j++;
            wc_buf_put(b, s + i, j - i);
            i = j;
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            wc_buf_put(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            wc_buf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t len = wc_utf8_len(u + i, n - i);
            if (len == 0) {
                wc_buf_puts(b, "\\ufffd");
                i++;
            } else {
                wc_buf_put(b, s + i, len);
                i += len;
            }
        }
    }
    wc_buf_put(b, "\"", 1);
}

void wc_buf_free(wc_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
