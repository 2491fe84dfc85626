/*
 * JSON text without a tree: what the cacher needs of a value it keeps only as bytes. A state
 * is parsed (and validated) once when it is made; afterwards these read its raw text: a field
 * path's value for a selector, a string escaped as jansson writes it, and where a compact
 * encoding holds metadata.resourceVersion. The readers are given text that jansson or the
 * scanner at the end of this file has already accepted (or written), so they never meet
 * malformed input; that scanner, which makes a state's Kubernetes encoding without a tree,
 * checks everything it reads.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wcached/parse.h"

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

/* jansson escapes control characters, the quote and the backslash (wc_json_plain): what that
 * adds to the byte's one, 1 for a short escape, 5 for \u00XX. */
static const unsigned char ESCAPE_ADDS[256] = {
    [0 ... 7] = 5, ['\b'] = 1, ['\t'] = 1,          ['\n'] = 1, [0x0b] = 5,
    ['\f'] = 1,    ['\r'] = 1, [0x0e ... 0x1f] = 5, ['"'] = 1,  ['\\'] = 1,
};

size_t wc_json_escape_raw(const char *s, size_t n, char *out)
{
    if (!out) { /* measured only: a word at a time, or its bytes when it has one to escape */
        size_t o = n, i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w = wc_word8(s + i);
            if (wc_word8_below(w, 0x20) | wc_word8_has(w, '"') | wc_word8_has(w, '\\'))
                for (size_t j = i; j < i + 8; j++)
                    o += ESCAPE_ADDS[(unsigned char)s[j]];
        }
        for (; i < n; i++)
            o += ESCAPE_ADDS[(unsigned char)s[i]];
        return o;
    }
    size_t o = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        i += wc_json_plain(s + i, n - i);
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i];
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

/* s[i] is '"': the index just after the closing quote, the first quote after an even run of
 * backslashes (memchr finds quotes far faster than a loop over every byte). */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    i++;
    while (i < n) {
        const char *q = memchr(s + i, '"', n - i);
        if (!q)
            return n;
        size_t j = (size_t)(q - s), k = j;
        while (k > i && s[k - 1] == '\\')
            k--;
        if ((j - k) % 2 == 0)
            return j + 1;
        i = j + 1;
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

/* ---------------------------------------------------------------------------------------
 * The Kubernetes encoding without a tree
 *
 * One pass over a value that validates it as jansson would (JSON_REJECT_DUPLICATES) and
 * writes, as it goes, what json_dumps(JSON_COMPACT) gives of it with metadata.resourceVersion
 * set: the same tokens without the blanks between them, the old resourceVersion's value
 * replaced in place, or the member added at the end of metadata (metadata added at the end of
 * the object, or put in place of a metadata that is not an object), as jansson's ordered
 * objects do. It takes only what it can write byte for byte as jansson would: strings with
 * jansson's own escapes, integers of up to 18 digits, true, false and null, and objects of a
 * bounded depth and key count; anything else (reals, other escapes, "-0", \u0000, a duplicate
 * key past the bound, malformed text) is declined and the caller asks jansson.
 * ------------------------------------------------------------------------------------- */

#define CANON_DEPTH 64 /* jansson's own bound is 2,048 */
#define CANON_KEYS 128 /* keys of the objects open at once, for the duplicate check */

typedef enum canon_obj {
    OBJ_TOP,      /* the value itself: holds metadata */
    OBJ_METADATA, /* the top object's metadata: holds resourceVersion */
    OBJ_OTHER,
} canon_obj;

typedef struct canon {
    const char *s;
    size_t n, i;
    char *out; /* NULL while the value being replaced is read */
    size_t o;
    const char *rv;
    size_t rvn;
    size_t rv_at; /* where the digits are in out */
    int depth;
    size_t nkeys;
    struct {
        uint32_t at, len; /* values stay far below 4 GiB (see wc_kv_new) */
    } keys[CANON_KEYS];
} canon;

static void c_put(canon *c, const char *p, size_t n)
{
    if (!c->out)
        return;
    memcpy(c->out + c->o, p, n);
    c->o += n;
}

static void c_ws(canon *c)
{
    c->i = skip_ws(c->s, c->n, c->i);
}

/* The string token at s[i] ('"'), copied; *at and *len tell its bytes between the quotes. */
static bool c_string(canon *c, size_t *at, size_t *len)
{
    const char *s = c->s;
    size_t start = c->i, i = c->i + 1;
    for (;;) {
        if (i >= c->n)
            return false;
        i += wc_json_plain(s + i, c->n - i);
        if (i >= c->n)
            return false;
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"')
            break;
        if (ch < 0x20)
            return false; /* jansson refuses a raw control character */
        /* a backslash */
        if (i + 1 >= c->n)
            return false;
        switch (s[i + 1]) {
        case '"':
        case '\\':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i += 2;
            continue;
        case 'u':
            break;
        default:
            return false; /* "\/": jansson writes '/' */
        }
        /* jansson writes \u00XX (upper-case hex) for the control characters without a short
         * escape, and nothing else; \u0000 it refuses without JSON_ALLOW_NUL. */
        if (i + 6 > c->n || s[i + 2] != '0' || s[i + 3] != '0' ||
            (s[i + 4] != '0' && s[i + 4] != '1'))
            return false;
        char h = s[i + 5];
        int v = h >= '0' && h <= '9' ? h - '0' : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (v < 0)
            return false;
        v += (s[i + 4] - '0') * 16;
        if (v == 0 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
            return false;
        i += 6;
    }
    *at = start + 1;
    *len = i - start - 1;
    c_put(c, s + start, i + 1 - start);
    c->i = i + 1;
    return true;
}

/* An integer as jansson writes it: no "-0", no fraction or exponent, at most 18 digits. */
static bool c_number(canon *c)
{
    const char *s = c->s;
    size_t start = c->i, i = c->i;
    if (s[i] == '-')
        i++;
    size_t d = i;
    while (i < c->n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t digits = i - d;
    if (digits == 0 || digits > 18 || (s[d] == '0' && (digits > 1 || d > start)))
        return false;
    if (i < c->n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E'))
        return false;
    c_put(c, s + start, i - start);
    c->i = i;
    return true;
}

static bool c_literal(canon *c, const char *word, size_t len)
{
    if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0)
        return false;
    c_put(c, word, len);
    c->i += len;
    return true;
}

static bool c_value(canon *c);

/* The value at s[i], read but not written: the one the resourceVersion replaces. */
static bool c_skip(canon *c)
{
    char *out = c->out;
    size_t o = c->o;
    c->out = NULL;
    bool ok = c_value(c);
    c->out = out;
    c->o = o;
    return ok;
}

static bool c_key_is(const canon *c, size_t at, size_t len, const char *name, size_t name_len)
{
    return len == name_len && memcmp(c->s + at, name, len) == 0;
}

/* The new resourceVersion as a string, and where its digits went. */
static void c_put_rv(canon *c)
{
    c_put(c, "\"", 1);
    c->rv_at = c->o;
    c_put(c, c->rv, c->rvn);
    c_put(c, "\"", 1);
}

static void c_put_rv_member(canon *c)
{
    c_put(c, "\"resourceVersion\":", 18);
    c_put_rv(c);
}

/* After a member or an element: 1 past a ',' (another follows), 0 at `close` (left for the
 * caller), -1 at anything else. */
static int c_more(canon *c, char close)
{
    c_ws(c);
    if (c->i < c->n && c->s[c->i] == ',') {
        c_put(c, ",", 1);
        c->i++;
        c_ws(c);
        return 1;
    }
    return c->i < c->n && c->s[c->i] == close ? 0 : -1;
}

static bool c_object(canon *c, canon_obj kind)
{
    if (++c->depth > CANON_DEPTH)
        return false;
    size_t first_key = c->nkeys;
    bool seen = false, empty = true;
    c_put(c, "{", 1);
    c->i++;
    c_ws(c);
    if (c->i < c->n && c->s[c->i] == '}')
        goto close;
    for (;;) {
        size_t at, len;
        if (c->i >= c->n || c->s[c->i] != '"' || !c_string(c, &at, &len))
            return false;
        /* Strings taken here have one spelling each, so equal bytes are equal keys. */
        for (size_t k = first_key; k < c->nkeys; k++)
            if (c->keys[k].len == len && memcmp(c->s + c->keys[k].at, c->s + at, len) == 0)
                return false;
        if (c->nkeys == CANON_KEYS)
            return false;
        c->keys[c->nkeys].at = (uint32_t)at;
        c->keys[c->nkeys++].len = (uint32_t)len;
        empty = false;
        c_ws(c);
        if (c->i >= c->n || c->s[c->i] != ':')
            return false;
        c_put(c, ":", 1);
        c->i++;
        c_ws(c);
        bool ok;
        if (kind == OBJ_TOP && c_key_is(c, at, len, "metadata", 8)) {
            seen = true;
            if (c->i < c->n && c->s[c->i] == '{') {
                ok = c_object(c, OBJ_METADATA);
            } else {
                ok = c_skip(c);
                c_put(c, "{", 1);
                c_put_rv_member(c);
                c_put(c, "}", 1);
            }
        } else if (kind == OBJ_METADATA && c_key_is(c, at, len, "resourceVersion", 15)) {
            seen = true;
            ok = c_skip(c);
            c_put_rv(c);
        } else {
            ok = c_value(c);
        }
        if (!ok)
            return false;
        int more = c_more(c, '}');
        if (more < 0)
            return false;
        if (!more)
            break;
    }
close:
    if (!seen && kind == OBJ_TOP) {
        c_put(c, empty ? "\"metadata\":{" : ",\"metadata\":{", empty ? 12 : 13);
        c_put_rv_member(c);
        c_put(c, "}", 1);
    } else if (!seen && kind == OBJ_METADATA) {
        if (!empty)
            c_put(c, ",", 1);
        c_put_rv_member(c);
    }
    c_put(c, "}", 1);
    c->i++;
    c->nkeys = first_key;
    c->depth--;
    return true;
}

static bool c_array(canon *c)
{
    if (++c->depth > CANON_DEPTH)
        return false;
    c_put(c, "[", 1);
    c->i++;
    c_ws(c);
    if (c->i < c->n && c->s[c->i] == ']')
        goto close;
    for (;;) {
        if (!c_value(c))
            return false;
        int more = c_more(c, ']');
        if (more < 0)
            return false;
        if (!more)
            break;
    }
close:
    c_put(c, "]", 1);
    c->i++;
    c->depth--;
    return true;
}

static bool c_value(canon *c)
{
    if (c->i >= c->n)
        return false;
    size_t at, len;
    switch (c->s[c->i]) {
    case '{':
        return c_object(c, OBJ_OTHER);
    case '[':
        return c_array(c);
    case '"':
        return c_string(c, &at, &len);
    case 't':
        return c_literal(c, "true", 4);
    case 'f':
        return c_literal(c, "false", 5);
    case 'n':
        return c_literal(c, "null", 4);
    default:
        return (c->s[c->i] == '-' || (c->s[c->i] >= '0' && c->s[c->i] <= '9')) && c_number(c);
    }
}

bool wc_json_k8s_encode(const char *s, size_t n, const char *rv, size_t rvn, char *out,
                        size_t *out_len, size_t *rv_at)
{
    canon cs, *c = &cs;
    if (n > UINT32_MAX)
        return false;
    c->s = s;
    c->n = n;
    c->i = skip_ws(s, n, 0);
    c->out = out;
    c->o = 0;
    c->rv = rv;
    c->rvn = rvn;
    c->rv_at = 0;
    c->depth = 0;
    c->nkeys = 0;
    bool ok = c->i < n && s[c->i] == '{' && c_object(c, OBJ_TOP);
    if (ok) {
        c_ws(c);
        ok = c->i == n;
    }
    *out_len = c->o;
    *rv_at = c->rv_at;
    return ok;
}
