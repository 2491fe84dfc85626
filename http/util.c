/*
 * Small helpers of the http/ module: the Status object every error is answered with, and the
 * strict decoders (percent-encoding, booleans) that untrusted input goes through before anything
 * else sees it. The buffer, UTF-8, numbers and the clock are common/'s.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_internal.h"
#include "wcached/b64.h"

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
    wc_buf b = {0};
    wc_buf_puts(&b, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                    "\"status\":\"Failure\",\"message\":");
    wc_buf_json(&b, e->message, strlen(e->message));
    wc_buf_puts(&b, ",\"reason\":");
    wc_buf_json(&b, e->reason, strlen(e->reason));
    wc_buf_printf(&b, ",\"code\":%d", e->code);
    if (e->cause || e->retry_after > 0) {
        wc_buf_puts(&b, ",\"details\":{");
        if (e->cause) {
            wc_buf_puts(&b, "\"causes\":[{\"reason\":");
            wc_buf_json(&b, e->cause, strlen(e->cause));
            wc_buf_puts(&b, ",\"message\":");
            wc_buf_json(&b, e->message, strlen(e->message));
            wc_buf_puts(&b, "}]");
        }
        if (e->retry_after > 0)
            wc_buf_printf(&b, "%s\"retryAfterSeconds\":%d", e->cause ? "," : "", e->retry_after);
        wc_buf_puts(&b, "}");
    }
    wc_buf_puts(&b, "}");
    if (b.oom) {
        wc_buf_free(&b);
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
