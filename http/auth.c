/*
 * Readers' identities and rights, as the Kubernetes apiserver decides them (see auth.h).
 *
 * Two parsers build immutable tables at start (and on reload): the static token CSV, read with
 * Go's encoding/csv rules so that a file the apiserver takes means the same here, and the ABAC
 * policy lines, decoded with jansson and normalized as v1beta1's conversion does. A request then
 * only reads: the token is compared with every stored token, all bytes, no early exit; the
 * policy lines are tried in order until one allows. Refusals become the apiserver's Status
 * messages here, so that every gate words them alike.
 */
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "auth.h"
#include "http_internal.h"

#define V1BETA1 "abac.authorization.kubernetes.io/v1beta1"

/* ---------------------------------------------------------------------------------------
 * Identities
 * ------------------------------------------------------------------------------------- */

void wc_http_auth_anonymous(wc_http_user *u)
{
    memset(u, 0, sizeof(*u));
    strcpy(u->name, WC_HTTP_AUTH_ANONYMOUS);
    strcpy(u->groups[0], WC_HTTP_AUTH_UNAUTHENTICATED);
    u->ngroups = 1;
}

int wc_http_auth_user_set(wc_http_user *u, const char *name, const char *const *groups, size_t n)
{
    bool system = strcmp(name, WC_HTTP_AUTH_ANONYMOUS) == 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(groups[i], WC_HTTP_AUTH_AUTHENTICATED) == 0 ||
            strcmp(groups[i], WC_HTTP_AUTH_UNAUTHENTICATED) == 0)
            system = true;
    }
    if (strlen(name) >= WC_HTTP_AUTH_NAME_MAX || n + (system ? 0 : 1) > WC_HTTP_AUTH_GROUPS_MAX)
        goto too_big;
    for (size_t i = 0; i < n; i++) {
        if (strlen(groups[i]) >= WC_HTTP_AUTH_NAME_MAX)
            goto too_big;
    }
    u->authenticated = true;
    strcpy(u->name, name);
    for (size_t i = 0; i < n; i++)
        strcpy(u->groups[i], groups[i]);
    u->ngroups = n;
    if (!system)
        strcpy(u->groups[u->ngroups++], WC_HTTP_AUTH_AUTHENTICATED);
    return 0;
too_big:
    wc_http_auth_anonymous(u);
    return WC_ETOOBIG;
}

bool wc_http_auth_user_in(const wc_http_user *u, const char *group)
{
    for (size_t i = 0; i < u->ngroups; i++) {
        if (strcmp(u->groups[i], group) == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------
 * Shared by both parsers
 * ------------------------------------------------------------------------------------- */

static int fail(wc_http_auth_diag *d, int rc, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records an error for a person in `d` (when given) and returns rc. */
static int fail(wc_http_auth_diag *d, int rc, unsigned line, const char *fmt, ...)
{
    if (d) {
        d->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->message, sizeof(d->message), fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Reads a whole file into a new NUL-terminated buffer. 0, WC_EIO, WC_ETOOBIG or WC_ENOMEM. */
static int read_file(const char *path, char **out, size_t *len, wc_http_auth_diag *d)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(d, WC_EIO, 0, "cannot open %s: %s", path, strerror(errno));
    wc_buf b = {0};
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > WC_HTTP_AUTH_FILE_MAX) {
            fclose(f);
            wc_buf_free(&b);
            return fail(d, WC_ETOOBIG, 0, "%s is larger than %u bytes", path,
                        WC_HTTP_AUTH_FILE_MAX);
        }
        wc_buf_put(&b, chunk, n);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        wc_buf_free(&b);
        return fail(d, WC_EIO, 0, "cannot read %s", path);
    }
    wc_buf_put(&b, "", 1);
    if (b.oom) {
        wc_buf_free(&b);
        return fail(d, WC_ENOMEM, 0, "out of memory reading %s", path);
    }
    *out = b.p;
    *len = b.len - 1;
    return 0;
}

/* The 1-based line of byte `at` in text. */
static unsigned line_of(const char *text, size_t at)
{
    unsigned line = 1;
    for (size_t i = 0; i < at; i++)
        line += text[i] == '\n';
    return line;
}

/* ---------------------------------------------------------------------------------------
 * The token CSV: a reader with Go's encoding/csv rules (comma ',', no comment character,
 * quotes strict, any number of fields per record)
 * ------------------------------------------------------------------------------------- */

typedef struct csv {
    const char *text;
    size_t len, pos;
    unsigned line;          /* lines read so far */
    const char *s;          /* the current line's bytes, without its end */
    size_t n;               /* ... their count */
    bool nl;                /* ... and whether a newline ended it */
    wc_buf rec;             /* the record's field bytes, one after the other */
    size_t ends[64], nends; /* where each field ends in rec */
    size_t overflow;        /* fields past the ends array, counted only */
} csv;

/* Go's readLine: the next line, "\r\n" read as "\n", a '\r' before the end of text dropped.
 * False at the end of the text. */
static bool csv_line(csv *c)
{
    if (c->pos >= c->len)
        return false;
    const char *s = c->text + c->pos;
    size_t rest = c->len - c->pos;
    const char *nl = memchr(s, '\n', rest);
    c->line++;
    c->s = s;
    if (nl) {
        c->n = (size_t)(nl - s);
        c->nl = true;
        c->pos += c->n + 1;
    } else {
        c->n = rest;
        c->nl = false;
        c->pos = c->len;
    }
    if (c->n > 0 && s[c->n - 1] == '\r')
        c->n--;
    return true;
}

static void csv_end_field(csv *c)
{
    if (c->nends < sizeof(c->ends) / sizeof(c->ends[0]))
        c->ends[c->nends++] = c->rec.len;
    else
        c->overflow++;
}

static int csv_error(csv *c, wc_http_auth_diag *d, unsigned start, unsigned line, size_t col,
                     const char *what)
{
    if (start != line)
        return fail(d, WC_EINVAL, start,
                    "record on line %u; parse error on line %u, column %zu: %s", start, line, col,
                    what);
    return fail(d, WC_EINVAL, line, "parse error on line %u, column %zu: %s", line, col, what);
}

#define BARE_QUOTE "bare \" in non-quoted-field"
#define BAD_QUOTE "extraneous or missing \" in quoted-field"

/* Reads one record into c->rec / c->ends; *start is its first line. 1 for a record, 0 at the
 * end of the text, WC_EINVAL (diag filled) or WC_ENOMEM. */
static int csv_record(csv *c, unsigned *start, wc_http_auth_diag *d)
{
    do {
        if (!csv_line(c))
            return 0;
    } while (c->n == 0);
    *start = c->line;
    c->rec.len = 0;
    c->nends = 0;
    c->overflow = 0;
    size_t p = 0;
    for (;;) {
        if (p >= c->n || c->s[p] != '"') {
            const char *comma = memchr(c->s + p, ',', c->n - p);
            size_t end = comma ? (size_t)(comma - c->s) : c->n;
            const char *q = memchr(c->s + p, '"', end - p);
            if (q)
                return csv_error(c, d, *start, c->line, (size_t)(q - c->s) + 1, BARE_QUOTE);
            wc_buf_put(&c->rec, c->s + p, end - p);
            csv_end_field(c);
            if (!comma)
                break;
            p = end + 1;
            continue;
        }
        p++; /* the opening quote */
        bool field_done = false, record_done = false;
        while (!field_done) {
            const char *q = memchr(c->s + p, '"', c->n - p);
            if (q) {
                size_t i = (size_t)(q - c->s);
                wc_buf_put(&c->rec, c->s + p, i - p);
                p = i + 1;
                if (p < c->n && c->s[p] == '"') {
                    wc_buf_put(&c->rec, "\"", 1);
                    p++;
                } else if (p < c->n && c->s[p] == ',') {
                    p++;
                    field_done = true;
                } else if (p >= c->n) {
                    field_done = record_done = true;
                } else {
                    return csv_error(c, d, *start, c->line, i + 1, BAD_QUOTE);
                }
            } else if (p < c->n || c->nl) {
                wc_buf_put(&c->rec, c->s + p, c->n - p);
                if (c->nl)
                    wc_buf_put(&c->rec, "\n", 1);
                size_t col = c->n + (c->nl ? 1 : 0) + 1;
                unsigned line = c->line;
                if (!c->nl || !csv_line(c))
                    return csv_error(c, d, *start, line, col, BAD_QUOTE);
                p = 0;
            } else {
                return csv_error(c, d, *start, c->line, p + 1, BAD_QUOTE);
            }
        }
        csv_end_field(c);
        if (record_done)
            break;
    }
    if (c->rec.oom)
        return WC_ENOMEM;
    return 1;
}

/* Field i of the current record (not NUL-terminated) and its length. */
static const char *csv_field(const csv *c, size_t i, size_t *len)
{
    size_t from = i ? c->ends[i - 1] : 0;
    *len = c->ends[i] - from;
    return c->rec.p ? c->rec.p + from : "";
}

/* One token and whose it is. Entries are reached by index at lookup and by hash at load. */
typedef struct token_entry {
    unsigned char *tok; /* the token's bytes, never NUL-terminated nor shown */
    size_t len;
    char *ident; /* name, NUL, each group, NUL: one block */
    size_t ngroups;
    UT_hash_handle hh;
} token_entry;

struct wc_http_auth_tokens {
    token_entry **v; /* in order of first appearance */
    size_t n, cap;
    token_entry *by_token; /* load only: duplicates */
};

void wc_http_auth_tokens_free(wc_http_auth_tokens *t)
{
    if (!t)
        return;
    HASH_CLEAR(hh, t->by_token);
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i]->tok)
            memset(t->v[i]->tok, 0, t->v[i]->len);
        free(t->v[i]->tok);
        free(t->v[i]->ident);
        free(t->v[i]);
    }
    free(t->v);
    free(t);
}

size_t wc_http_auth_tokens_count(const wc_http_auth_tokens *t)
{
    return t ? t->n : 0;
}

/* The identity of a record (fields 1 and 3) as one block; 0, WC_EINVAL or WC_ENOMEM. */
static int make_ident(const csv *c, unsigned line, char **out, size_t *ngroups,
                      wc_http_auth_diag *d)
{
    size_t nlen, glen = 0;
    const char *name = csv_field(c, 1, &nlen);
    const char *groups = c->nends + c->overflow >= 4 ? csv_field(c, 3, &glen) : NULL;
    if (nlen >= WC_HTTP_AUTH_NAME_MAX)
        return fail(d, WC_EINVAL, line, "line %u: user name longer than %d bytes", line,
                    WC_HTTP_AUTH_NAME_MAX - 1);
    size_t n = 0;
    if (groups) {
        /* strings.Split: n commas make n + 1 groups, empty ones included */
        n = 1;
        size_t from = 0;
        for (size_t i = 0; i <= glen; i++) {
            if (i < glen && groups[i] != ',')
                continue;
            if (i - from >= WC_HTTP_AUTH_NAME_MAX)
                return fail(d, WC_EINVAL, line, "line %u: group name longer than %d bytes", line,
                            WC_HTTP_AUTH_NAME_MAX - 1);
            if (i < glen)
                n++;
            from = i + 1;
        }
        if (n > WC_HTTP_AUTH_GROUPS_MAX - 1)
            return fail(d, WC_EINVAL, line, "line %u: more than %d groups", line,
                        WC_HTTP_AUTH_GROUPS_MAX - 1);
    }
    char *b = malloc(nlen + 1 + glen + 1);
    if (!b)
        return WC_ENOMEM;
    memcpy(b, name, nlen);
    b[nlen] = '\0';
    for (size_t i = 0; i < glen; i++)
        b[nlen + 1 + i] = groups[i] == ',' ? '\0' : groups[i];
    b[nlen + 1 + glen] = '\0';
    *out = b;
    *ngroups = n;
    return 0;
}

static int add_token(wc_http_auth_tokens *t, const csv *c, unsigned line, wc_http_auth_diag *d)
{
    size_t len;
    const char *tok = csv_field(c, 0, &len);
    if (len == 0) {
        if (d && d->empty++ == 0)
            d->empty_line = line;
        return 0;
    }
    char *ident = NULL;
    size_t ngroups = 0;
    int rc = make_ident(c, line, &ident, &ngroups, d);
    if (rc != 0)
        return rc;
    token_entry *e = NULL;
    HASH_FIND(hh, t->by_token, tok, len, e);
    if (e) {
        if (d && d->duplicates++ == 0)
            d->duplicate_line = line;
        free(e->ident);
        e->ident = ident;
        e->ngroups = ngroups;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        token_entry **v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            goto oom;
        t->v = v;
        t->cap = cap;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->tok = malloc(len);
    if (!e->tok) {
        free(e);
        goto oom;
    }
    memcpy(e->tok, tok, len);
    e->len = len;
    e->ident = ident;
    e->ngroups = ngroups;
    t->v[t->n++] = e;
    HASH_ADD_KEYPTR(hh, t->by_token, e->tok, e->len, e);
    return 0;
oom:
    free(ident);
    return WC_ENOMEM;
}

int wc_http_auth_tokens_parse(const char *text, size_t len, wc_http_auth_tokens **out,
                              wc_http_auth_diag *diag)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof(*diag));
    if (len > WC_HTTP_AUTH_FILE_MAX)
        return fail(diag, WC_ETOOBIG, 0, "token file larger than %u bytes", WC_HTTP_AUTH_FILE_MAX);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        unsigned line = line_of(text, (size_t)(nul - text));
        return fail(diag, WC_EINVAL, line, "line %u: NUL byte", line);
    }
    wc_http_auth_tokens *t = calloc(1, sizeof(*t));
    if (!t)
        return WC_ENOMEM;
    csv c = {.text = text, .len = len};
    int rc;
    unsigned start;
    while ((rc = csv_record(&c, &start, diag)) == 1) {
        size_t nfields = c.nends + c.overflow;
        if (nfields < 3) {
            rc = fail(diag, WC_EINVAL, start,
                      "line %u: must have at least 3 columns (token, user name, user uid), "
                      "found %zu",
                      start, nfields);
            break;
        }
        rc = add_token(t, &c, start, diag);
        if (rc != 0)
            break;
    }
    if (c.rec.p)
        memset(c.rec.p, 0, c.rec.cap);
    wc_buf_free(&c.rec);
    HASH_CLEAR(hh, t->by_token);
    if (rc != 0) {
        wc_http_auth_tokens_free(t);
        if (rc == WC_ENOMEM)
            fail(diag, WC_ENOMEM, 0, "out of memory");
        return rc;
    }
    *out = t;
    return 0;
}

int wc_http_auth_tokens_load(const char *path, wc_http_auth_tokens **out, wc_http_auth_diag *diag)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof(*diag));
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, diag);
    if (rc != 0)
        return rc;
    rc = wc_http_auth_tokens_parse(text, len, out, diag);
    memset(text, 0, len);
    free(text);
    return rc;
}

int wc_http_auth_token_lookup(const wc_http_auth_tokens *t, const char *token, size_t len,
                              wc_http_user *u)
{
    const unsigned char *p = (const unsigned char *)token;
    size_t hit = 0, found = 0;
    for (size_t i = 0; t && i < t->n; i++) {
        const token_entry *e = t->v[i];
        unsigned char diff = 0;
        for (size_t j = 0; j < e->len; j++)
            diff |= e->tok[j] ^ (j < len ? p[j] : 0);
        size_t x = (size_t)diff | (e->len ^ len);
        /* all ones when x == 0, else zero, with no branch on x */
        size_t same = ((x | (0 - x)) >> (sizeof(size_t) * 8 - 1)) - 1;
        hit = (hit & ~same) | (i & same);
        found |= same;
    }
    if (!found)
        return WC_ENOENT;
    const token_entry *e = t->v[hit];
    const char *groups[WC_HTTP_AUTH_GROUPS_MAX];
    const char *s = e->ident + strlen(e->ident) + 1;
    for (size_t i = 0; i < e->ngroups; i++) {
        groups[i] = s;
        s += strlen(s) + 1;
    }
    return wc_http_auth_user_set(u, e->ident, groups, e->ngroups);
}

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int wc_http_auth_bearer(const char *header, const char **token, size_t *len)
{
    if (!header)
        return WC_ENOENT;
    const char *s = header;
    const char *end = header + strlen(header);
    while (s < end && space(*s))
        s++;
    while (end > s && space(end[-1]))
        end--;
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    if (!sp || sp - s != 6 || strncasecmp(s, "bearer", 6) != 0)
        return WC_ENOENT;
    const char *tok = sp + 1;
    const char *sp2 = memchr(tok, ' ', (size_t)(end - tok));
    size_t n = (size_t)((sp2 ? sp2 : end) - tok);
    if (n == 0)
        return WC_ENOENT;
    *token = tok;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The ABAC policy file
 * ------------------------------------------------------------------------------------- */

typedef struct policy {
    char *user, *group, *api_group, *resource, *ns, *path; /* never NULL; "" when unset */
    bool readonly;
} policy;

struct wc_http_auth_policy {
    policy *v;
    size_t n, cap;
};

static void policy_clear(policy *p)
{
    free(p->user);
    free(p->group);
    free(p->api_group);
    free(p->resource);
    free(p->ns);
    free(p->path);
}

void wc_http_auth_policy_free(wc_http_auth_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        policy_clear(&p->v[i]);
    free(p->v);
    free(p);
}

size_t wc_http_auth_policy_count(const wc_http_auth_policy *p)
{
    return p ? p->n : 0;
}

/* spec.<key> as a new string ("" when absent or null). 0, WC_EINVAL or WC_ENOMEM. */
static int spec_string(json_t *spec, const char *key, unsigned line, char **out,
                       wc_http_auth_diag *d)
{
    json_t *v = spec ? json_object_get(spec, key) : NULL;
    const char *s = "";
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return fail(d, WC_EINVAL, line, "line %u: spec.%s must be a string", line, key);
        s = json_string_value(v);
    }
    *out = strdup(s);
    return *out ? 0 : WC_ENOMEM;
}

/* One non-blank, non-comment line into *p. 0, WC_EINVAL or WC_ENOMEM. */
static int policy_line(const char *s, size_t n, unsigned line, policy *p, wc_http_auth_diag *d)
{
    json_error_t je;
    json_t *j = json_loadb(s, n, 0, &je);
    if (!j)
        return fail(d, WC_EINVAL, line, "line %u: %s", line, je.text);
    int rc = WC_EINVAL;
    json_t *spec = NULL;
    const char *av = json_string_value(json_object_get(j, "apiVersion"));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (!json_is_object(j)) {
        fail(d, rc, line, "line %u: not a JSON object", line);
    } else if (!av) {
        fail(d, rc, line, "line %u: no apiVersion: only %s policies are supported", line, V1BETA1);
    } else if (strcmp(av, V1BETA1) != 0) {
        fail(d, rc, line, "line %u: apiVersion: only %s is supported", line, V1BETA1);
    } else if (!kind || strcmp(kind, "Policy") != 0) {
        fail(d, rc, line, "line %u: kind must be \"Policy\"", line);
    } else {
        spec = json_object_get(j, "spec");
        if (spec && json_is_null(spec))
            spec = NULL;
        if (spec && !json_is_object(spec))
            fail(d, rc, line, "line %u: spec must be an object", line);
        else
            rc = 0;
    }
    json_t *ro = spec ? json_object_get(spec, "readonly") : NULL;
    if (rc == 0 && ro && !json_is_null(ro) && !json_is_boolean(ro))
        rc = fail(d, WC_EINVAL, line, "line %u: spec.readonly must be a boolean", line);
    if (rc == 0) {
        p->readonly = ro && json_is_true(ro);
        if ((rc = spec_string(spec, "user", line, &p->user, d)) == 0 &&
            (rc = spec_string(spec, "group", line, &p->group, d)) == 0 &&
            (rc = spec_string(spec, "apiGroup", line, &p->api_group, d)) == 0 &&
            (rc = spec_string(spec, "resource", line, &p->resource, d)) == 0 &&
            (rc = spec_string(spec, "namespace", line, &p->ns, d)) == 0)
            rc = spec_string(spec, "nonResourcePath", line, &p->path, d);
    }
    json_decref(j);
    if (rc != 0)
        return rc;
    /* v1beta1's conversion: a user or group "*" means every authenticated reader */
    if (strcmp(p->user, "*") == 0 || strcmp(p->group, "*") == 0) {
        char *g = strdup(WC_HTTP_AUTH_AUTHENTICATED);
        if (!g)
            return WC_ENOMEM;
        free(p->group);
        p->group = g;
        p->user[0] = '\0';
    }
    return 0;
}

int wc_http_auth_policy_parse(const char *text, size_t len, wc_http_auth_policy **out,
                              wc_http_auth_diag *diag)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof(*diag));
    if (len > WC_HTTP_AUTH_FILE_MAX)
        return fail(diag, WC_ETOOBIG, 0, "policy file larger than %u bytes", WC_HTTP_AUTH_FILE_MAX);
    wc_http_auth_policy *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return WC_ENOMEM;
    int rc = 0;
    unsigned line = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (n > WC_HTTP_AUTH_LINE_MAX) {
            rc = fail(diag, WC_EINVAL, line, "line %u: longer than %u bytes", line,
                      WC_HTTP_AUTH_LINE_MAX);
            break;
        }
        size_t a = 0, b = n;
        while (a < b && space(s[a]))
            a++;
        while (b > a && space(s[b - 1]))
            b--;
        if (a == b || s[a] == '#')
            continue;
        if (pl->n == pl->cap) {
            size_t cap = pl->cap ? 2 * pl->cap : 16;
            policy *v = realloc(pl->v, cap * sizeof(*v));
            if (!v) {
                rc = WC_ENOMEM;
                break;
            }
            pl->v = v;
            pl->cap = cap;
        }
        policy *p = &pl->v[pl->n];
        memset(p, 0, sizeof(*p));
        rc = policy_line(s, n, line, p, diag);
        if (rc != 0)
            policy_clear(p);
        else
            pl->n++;
    }
    if (rc != 0) {
        wc_http_auth_policy_free(pl);
        if (rc == WC_ENOMEM)
            fail(diag, WC_ENOMEM, line, "out of memory");
        return rc;
    }
    *out = pl;
    return 0;
}

int wc_http_auth_policy_load(const char *path, wc_http_auth_policy **out, wc_http_auth_diag *diag)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof(*diag));
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, diag);
    if (rc != 0)
        return rc;
    rc = wc_http_auth_policy_parse(text, len, out, diag);
    free(text);
    return rc;
}

static const char *str(const char *s)
{
    return s ? s : "";
}

static bool readonly_verb(const char *verb)
{
    return strcmp(verb, "get") == 0 || strcmp(verb, "list") == 0 || strcmp(verb, "watch") == 0;
}

/* The apiserver's subjectMatches: what is set must match, and something must be set. */
static bool subject_matches(const policy *p, const wc_http_user *u)
{
    bool matched = false;
    if (p->user[0]) {
        if (strcmp(p->user, "*") != 0 && strcmp(p->user, u->name) != 0)
            return false;
        matched = true;
    }
    if (p->group[0]) {
        if (strcmp(p->group, "*") != 0 && !wc_http_auth_user_in(u, p->group))
            return false;
        matched = true;
    }
    return matched;
}

static bool wild_or(const char *pattern, const char *value)
{
    return strcmp(pattern, "*") == 0 || strcmp(pattern, value) == 0;
}

static bool path_matches(const char *pattern, const char *path)
{
    if (strcmp(pattern, "*") == 0 || strcmp(pattern, path) == 0)
        return true;
    size_t n = strlen(pattern);
    if (n == 0 || pattern[n - 1] != '*')
        return false;
    while (n > 0 && pattern[n - 1] == '*') /* strings.TrimRight(path, "*") */
        n--;
    return strncmp(pattern, path, n) == 0;
}

bool wc_http_auth_policy_allows(const wc_http_auth_policy *pl, const wc_http_user *u,
                                const wc_http_auth_attrs *a)
{
    bool ro = readonly_verb(str(a->verb));
    for (size_t i = 0; pl && i < pl->n; i++) {
        const policy *p = &pl->v[i];
        if (!subject_matches(p, u))
            continue;
        if (!ro && p->readonly)
            continue;
        if (a->resource) {
            if (wild_or(p->ns, str(a->ns)) && wild_or(p->resource, str(a->plural)) &&
                wild_or(p->api_group, str(a->group)))
                return true;
        } else if (path_matches(p->path, str(a->path))) {
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------
 * Status messages
 * ------------------------------------------------------------------------------------- */

void wc_http_auth_unauthorized(struct wc_http_error *e)
{
    e->code = 401;
    e->reason = "Unauthorized";
    e->cause = NULL;
    e->retry_after = 0;
    snprintf(e->message, sizeof(e->message), "Unauthorized");
}

/* Appends s as Go's %q writes it (printable runes kept; a valid UTF-8 sequence counts as one). */
static void put_quoted(wc_buf *b, const char *s)
{
    static const char named[] = "\a\b\f\n\r\t\v";
    static const char letter[] = "abfnrtv";
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    wc_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        const char *k = c ? strchr(named, (int)c) : NULL;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            wc_buf_put(b, esc, 2);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            wc_buf_put(b, s + i, 1);
            i++;
        } else if (k) {
            char esc[2] = {'\\', letter[k - named]};
            wc_buf_put(b, esc, 2);
            i++;
        } else if (c < 0x80) {
            wc_buf_printf(b, "\\x%02x", c);
            i++;
        } else {
            size_t len = wc_utf8_len(u + i, n - i);
            if (len == 0) {
                wc_buf_printf(b, "\\x%02x", c);
                i++;
            } else {
                wc_buf_put(b, s + i, len);
                i += len;
            }
        }
    }
    wc_buf_put(b, "\"", 1);
}

/* Appends s with the apiserver's sanitizer: & < > as HTML entities. */
static void put_sanitized(wc_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '&')
            wc_buf_puts(b, "&amp;");
        else if (s[i] == '<')
            wc_buf_puts(b, "&lt;");
        else if (s[i] == '>')
            wc_buf_puts(b, "&gt;");
        else
            wc_buf_put(b, s + i, 1);
    }
}

void wc_http_auth_forbidden(struct wc_http_error *e, const wc_http_user *u,
                            const wc_http_auth_attrs *a, const char *reason)
{
    e->code = 403;
    e->reason = "Forbidden";
    e->cause = NULL;
    e->retry_after = 0;
    /* forbiddenMessage: who, what, where */
    wc_buf m = {0};
    wc_buf_puts(&m, "User ");
    put_quoted(&m, u->name);
    wc_buf_printf(&m, " cannot %s ", str(a->verb));
    if (!a->resource) {
        wc_buf_puts(&m, "path ");
        put_quoted(&m, str(a->path));
    } else {
        wc_buf_puts(&m, "resource ");
        put_quoted(&m, str(a->plural));
        wc_buf_puts(&m, " in API group ");
        put_quoted(&m, str(a->group));
        if (*str(a->ns)) {
            wc_buf_puts(&m, " in the namespace ");
            put_quoted(&m, a->ns);
        } else {
            wc_buf_puts(&m, " at the cluster scope");
        }
    }
    /* NewForbidden: the qualified resource and the name in front */
    wc_buf b = {0};
    const char *plural = a->resource ? str(a->plural) : "";
    const char *group = a->resource ? str(a->group) : "";
    if (!*plural && !*group) {
        wc_buf_puts(&b, "forbidden: ");
    } else {
        wc_buf_printf(&b, "%s%s%s", plural, *group ? "." : "", group);
        if (a->resource && *str(a->name)) {
            wc_buf_puts(&b, " ");
            put_quoted(&b, a->name);
        }
        wc_buf_puts(&b, " is forbidden: ");
    }
    put_sanitized(&b, m.p ? m.p : "", m.len);
    if (reason && *reason)
        wc_buf_printf(&b, ": %s", reason);
    size_t n = b.oom ? 0 : b.len;
    if (n >= sizeof(e->message)) {
        n = sizeof(e->message) - 1;
        while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80) /* not inside a character */
            n--;
    }
    if (n) {
        memcpy(e->message, b.p, n);
        e->message[n] = '\0';
    } else {
        snprintf(e->message, sizeof(e->message), "forbidden"); /* out of memory */
    }
    wc_buf_free(&m);
    wc_buf_free(&b);
}
