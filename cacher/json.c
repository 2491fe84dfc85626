/*
 * JSON text without a tree: what the cacher needs of a value it keeps only as bytes. A state
 * is parsed (and validated) once when it is made; afterwards these read its raw text: a field
 * path's value for a selector, a string escaped as jansson writes it, and where a compact
 * encoding holds metadata.resourceVersion. Every function here is given text that jansson has
 * already accepted (or written), so it never meets malformed input.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------------------------
 * Writing: jansson's string escapes
 * ------------------------------------------------------------------------------------- */

static const char HEX[] = "0123456789ABCDEF";

/* Appends n bytes to out at *o (out NULL: only counts). */
static inline void put(char *out, size_t *o, const char *s, size_t n)
{
    if (out)
        memcpy(out + *o, s, n);
    *o += n;
}

/* The bytes jansson escapes in a string: control characters, the quote and the backslash. */
static const bool ESCAPED[256] = {
    [0 ... 0x1f] = true,
    ['"'] = true,
    ['\\'] = true,
};

size_t wc_json_escape_raw(const char *s, size_t n, char *out)
{
    size_t o = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!ESCAPED[c])
            continue;
        put(out, &o, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            /* jansson writes other control characters as \u00XX, upper-case hex */
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = HEX[c >> 4];
            esc[5] = HEX[c & 15];
            len = 6;
        }
        put(out, &o, esc, len);
    }
    put(out, &o, s + run, n - run);
    return o;
}

size_t wc_json_escape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    put(out, &o, "\"", 1);
    o += wc_json_escape_raw(s, n, out ? out + o : NULL);
    put(out, &o, "\"", 1);
    return o;
}

/* ---------------------------------------------------------------------------------------
 * Reading: skipping values, comparing keys, a field path's value
 * ------------------------------------------------------------------------------------- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is '"': the index just after the closing quote. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* The index just after the value that starts at s[i]. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return n;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, n, i);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return n;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
           s[i] != '\t' && s[i] != '\r')
        i++;
    return i;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v = v * 16 + (c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : c - 'A' + 10);
    }
    return v;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string token s[i..end) (quotes included) into out (room for end - i bytes);
 * returns the decoded length. */
static size_t unescape(const char *s, size_t i, size_t end, char *out)
{
    size_t o = 0;
    for (i++; i + 1 < end; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u': {
            unsigned cp = (unsigned)hex4(s + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < end && s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo = (unsigned)hex4(s + i + 3);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default:
            out[o++] = c; /* " \ / */
        }
    }
    return o;
}

/* True when the string token s[i..end) decodes to name[0..len). */
static bool key_is(const char *s, size_t i, size_t end, const char *name, size_t len)
{
    if (memchr(s + i, '\\', end - i) == NULL)
        return end - i - 2 == len && memcmp(s + i + 1, name, len) == 0;
    char stack[256];
    char *buf = end - i <= sizeof(stack) ? stack : malloc(end - i);
    if (!buf)
        return false;
    size_t n = unescape(s, i, end, buf);
    bool eq = n == len && memcmp(buf, name, len) == 0;
    if (buf != stack)
        free(buf);
    return eq;
}

/* The value of member `name` of the object that starts at s[i] ('{'), as the index of its
 * first byte; n when there is none. */
static size_t member(const char *s, size_t n, size_t i, const char *name, size_t len)
{
    i = skip_ws(s, n, i + 1);
    while (i < n && s[i] == '"') {
        size_t kend = skip_string(s, n, i);
        bool hit = key_is(s, i, kend, name, len);
        i = skip_ws(s, n, kend);
        i = skip_ws(s, n, i + 1); /* ':' */
        if (hit)
            return i;
        i = skip_ws(s, n, skip_value(s, n, i));
        if (i >= n || s[i] != ',')
            break;
        i = skip_ws(s, n, i + 1);
    }
    return n;
}

/* The string token at s[i], decoded: in place when it has no escapes, else into tmp or a new
 * *heap (replacing the one before). NULL when out of memory. */
static const char *string_at(const char *s, size_t n, size_t i, char *tmp, size_t tmp_len,
                             char **heap, size_t *len)
{
    size_t end = skip_string(s, n, i);
    if (memchr(s + i, '\\', end - i) == NULL) {
        *len = end - i - 2;
        return s + i + 1;
    }
    char *buf = end - i <= tmp_len ? tmp : malloc(end - i);
    if (!buf)
        return NULL;
    if (buf != tmp) {
        free(*heap);
        *heap = buf;
    }
    *len = unescape(s, i, end, buf);
    return buf;
}

const char *wc_json_raw_path(const char *s, size_t n, const char *path, char *tmp, size_t tmp_len,
                             char **heap, size_t *len)
{
    size_t i = skip_ws(s, n, 0);
    const char *p = path;
    bool moved = false;
    while (i < n && *p) {
        const char *dot = strchr(p, '.');
        size_t seg = dot ? (size_t)(dot - p) : strlen(p);
        if (s[i] != '{')
            return NULL;
        i = member(s, n, i, p, seg);
        moved = true;
        p += seg;
        if (*p == '.')
            p++;
    }
    if (i >= n || !moved)
        return NULL;
    size_t end = skip_value(s, n, i);
    char c = s[i];
    if (c == '"')
        return string_at(s, n, i, tmp, tmp_len, heap, len);
    if (c == 't' || c == 'f') {
        *len = c == 't' ? 4 : 5;
        return s + i;
    }
    if (c != '-' && (c < '0' || c > '9'))
        return NULL; /* null, an object or an array */
    char num[64];
    size_t tl = end - i;
    if (tl >= sizeof(num))
        return NULL;
    memcpy(num, s + i, tl);
    num[tl] = '\0';
    int w;
    if (strpbrk(num, ".eE"))
        w = snprintf(tmp, tmp_len, "%.17g", strtod(num, NULL));
    else
        w = snprintf(tmp, tmp_len, "%lld", strtoll(num, NULL, 10));
    if (w < 0 || (size_t)w >= tmp_len)
        return NULL;
    *len = (size_t)w;
    return tmp;
}

const char *wc_json_raw_label(const char *s, size_t n, const char *name, char *tmp, size_t tmp_len,
                              char **heap, size_t *len)
{
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{')
        return NULL;
    i = member(s, n, i, "metadata", 8);
    if (i >= n || s[i] != '{')
        return NULL;
    i = member(s, n, i, "labels", 6);
    if (i >= n || s[i] != '{')
        return NULL;
    i = member(s, n, i, name, strlen(name));
    if (i >= n || s[i] != '"')
        return NULL;
    return string_at(s, n, i, tmp, tmp_len, heap, len);
}

bool wc_json_find_rv(const char *s, size_t n, size_t *at)
{
    size_t i = member(s, n, 0, "metadata", 8);
    if (i >= n || s[i] != '{')
        return false;
    i = member(s, n, i, "resourceVersion", 15);
    if (i >= n || s[i] != '"')
        return false;
    *at = i + 1;
    return true;
}
