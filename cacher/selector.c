/*
 * Kubernetes label and field selectors (see include/wcached/selector.h).
 *
 * A selector text is parsed once into a flat list of requirements: key, operator and a small
 * set of values, all copied. Matching walks the list and asks the caller's lookup for each
 * key, so the parsed selector is immutable and shared freely between threads.
 *
 * Labels follow k8s.io/apimachinery/pkg/labels: `!` `=` `==` `!=` `(` `)` `,` and whitespace
 * separate identifiers; `in` and `notin` are keywords after a key; `()` is the set holding the
 * empty value; keys are qualified names and values label values. Fields follow
 * k8s.io/apimachinery/pkg/fields: terms split at unescaped commas, the first of `!=` `==` `=`
 * splits a term, and values may escape `\\` `\,` `\=`.
 */
#include <stdlib.h>
#include <string.h>

#include "wcached/err.h"
#include "wcached/selector.h"

typedef struct requirement {
    char *key;
    wc_sel_op op;
    char **values;
    size_t nvalues;
} requirement;

struct wc_selector {
    wc_sel_kind kind;
    requirement *reqs;
    size_t n, cap;
};

void wc_selector_free(wc_selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->reqs[i].key);
        for (size_t k = 0; k < s->reqs[i].nvalues; k++)
            free(s->reqs[i].values[k]);
        free(s->reqs[i].values);
    }
    free(s->reqs);
    free(s);
}

bool wc_selector_empty(const wc_selector *s)
{
    return !s || s->n == 0;
}

size_t wc_selector_count(const wc_selector *s)
{
    return s ? s->n : 0;
}

const char *wc_selector_key(const wc_selector *s, size_t i)
{
    return s && i < s->n ? s->reqs[i].key : NULL;
}

static int fail(wc_sel_error *err, size_t pos, const char *what)
{
    if (err) {
        err->pos = pos;
        err->what = what;
    }
    return WC_EINVAL;
}

/* Appends a requirement, taking over key and values. */
static int add_req(wc_selector *s, char *key, wc_sel_op op, char **values, size_t nvalues)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        requirement *r = realloc(s->reqs, cap * sizeof(*r));
        if (!r)
            return WC_ENOMEM;
        s->reqs = r;
        s->cap = cap;
    }
    s->reqs[s->n++] = (requirement){.key = key, .op = op, .values = values, .nvalues = nvalues};
    return 0;
}

static void free_values(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---------------------------------------------------------------------------------------
 * Validation of label keys and values (k8s.io/apimachinery/pkg/util/validation)
 * ------------------------------------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A qualified name's name part, or a label value when allow_empty: up to 63 characters of
 * [A-Za-z0-9_.-], starting and ending alphanumeric. */
static bool valid_name(const char *s, size_t n, bool allow_empty)
{
    if (n == 0)
        return allow_empty;
    if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* A DNS-1123 subdomain: lowercase labels of [a-z0-9-] separated by dots, up to 253. */
static bool valid_dns_subdomain(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

static bool valid_label_key(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    if (!slash)
        return valid_name(s, n, false);
    size_t plen = (size_t)(slash - s);
    return valid_dns_subdomain(s, plen) && valid_name(slash + 1, n - plen - 1, false);
}

/* ---------------------------------------------------------------------------------------
 * Labels
 * ------------------------------------------------------------------------------------- */

typedef enum tok_kind {
    T_END,
    T_IDENT,
    T_NOT,   /* ! */
    T_EQ,    /* = */
    T_EQEQ,  /* == */
    T_NEQ,   /* != */
    T_OPEN,  /* ( */
    T_CLOSE, /* ) */
    T_COMMA, /* , */
    T_IN,    /* in (only where an operator is expected) */
    T_NOTIN, /* notin (likewise) */
    T_BAD,   /* a character the grammar has no use for: < > */
} tok_kind;

typedef struct lexer {
    const char *s;
    size_t pos, len;
} lexer;

typedef struct token {
    tok_kind kind;
    size_t pos, len;
} token;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_special(char c)
{
    return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

static token next_token(lexer *lx)
{
    while (lx->pos < lx->len && is_space(lx->s[lx->pos]))
        lx->pos++;
    token t = {.kind = T_END, .pos = lx->pos, .len = 0};
    if (lx->pos >= lx->len)
        return t;
    const char *p = lx->s + lx->pos;
    size_t left = lx->len - lx->pos;
    if (is_special(*p)) {
        t.len = 1;
        switch (*p) {
        case '!':
            if (left > 1 && p[1] == '=') {
                t.kind = T_NEQ;
                t.len = 2;
            } else {
                t.kind = T_NOT;
            }
            break;
        case '=':
            if (left > 1 && p[1] == '=') {
                t.kind = T_EQEQ;
                t.len = 2;
            } else {
                t.kind = T_EQ;
            }
            break;
        case '(':
            t.kind = T_OPEN;
            break;
        case ')':
            t.kind = T_CLOSE;
            break;
        case ',':
            t.kind = T_COMMA;
            break;
        default:
            t.kind = T_BAD;
            break;
        }
        lx->pos += t.len;
        return t;
    }
    size_t n = 0;
    while (n < left && !is_space(p[n]) && !is_special(p[n]))
        n++;
    t.kind = T_IDENT;
    t.len = n;
    if (n == 2 && memcmp(p, "in", 2) == 0)
        t.kind = T_IN;
    else if (n == 5 && memcmp(p, "notin", 5) == 0)
        t.kind = T_NOTIN;
    lx->pos += n;
    return t;
}

static token peek_token(lexer *lx)
{
    size_t save = lx->pos;
    token t = next_token(lx);
    lx->pos = save;
    return t;
}

/* Parses "( v1, v2, ... )" after in/notin. Items may be empty, as in Kubernetes: `()` is the
 * set holding the empty value and `(a,)` holds "a" and "". */
static int parse_set(lexer *lx, char ***out, size_t *nout, wc_sel_error *err)
{
    token t = next_token(lx);
    if (t.kind != T_OPEN)
        return fail(err, t.pos, "expected '(' after in/notin");
    size_t cap = 4, n = 0;
    char **vals = malloc(cap * sizeof(*vals));
    if (!vals)
        return WC_ENOMEM;
    int rc = 0;
    for (;;) {
        t = next_token(lx);
        size_t vpos = t.pos, vlen = 0;
        if (t.kind == T_IDENT) {
            vlen = t.len;
            t = next_token(lx);
        }
        if (t.kind != T_COMMA && t.kind != T_CLOSE) {
            rc = fail(err, t.pos, "expected ',' or ')'");
            break;
        }
        if (!valid_name(lx->s + vpos, vlen, true)) {
            rc = fail(err, vpos, "invalid label value");
            break;
        }
        if (n == cap) {
            char **more = realloc(vals, cap * 2 * sizeof(*vals));
            if (!more) {
                rc = WC_ENOMEM;
                break;
            }
            vals = more;
            cap *= 2;
        }
        vals[n] = strndup(lx->s + vpos, vlen);
        if (!vals[n]) {
            rc = WC_ENOMEM;
            break;
        }
        n++;
        if (t.kind == T_CLOSE)
            break;
    }
    if (rc) {
        free_values(vals, n);
        return rc;
    }
    *out = vals;
    *nout = n;
    return 0;
}

static int parse_labels(const char *text, size_t len, wc_selector *s, wc_sel_error *err)
{
    lexer lx = {.s = text, .pos = 0, .len = len};
    for (;;) {
        token t = next_token(&lx);
        bool negated = false;
        if (t.kind == T_NOT) {
            negated = true;
            t = next_token(&lx);
        }
        if (t.kind != T_IDENT) /* "in" and "notin" are keywords, as in Kubernetes */
            return fail(err, t.pos, "expected a label key");
        if (!valid_label_key(text + t.pos, t.len))
            return fail(err, t.pos, "invalid label key");
        char *key = strndup(text + t.pos, t.len);
        if (!key)
            return WC_ENOMEM;
        token op = peek_token(&lx);
        int rc = 0;
        if (negated) {
            if (op.kind != T_COMMA && op.kind != T_END) {
                free(key);
                return fail(err, op.pos, "expected ',' after !key");
            }
            rc = add_req(s, key, WC_SEL_NOTEXISTS, NULL, 0);
        } else if (op.kind == T_COMMA || op.kind == T_END) {
            rc = add_req(s, key, WC_SEL_EXISTS, NULL, 0);
        } else if (op.kind == T_EQ || op.kind == T_EQEQ || op.kind == T_NEQ) {
            next_token(&lx);
            token v = peek_token(&lx);
            size_t vpos = v.pos, vlen = 0;
            if (v.kind == T_IDENT) {
                next_token(&lx);
                vlen = v.len;
            } else if (v.kind != T_COMMA && v.kind != T_END) {
                free(key);
                return fail(err, v.pos, "expected a value");
            }
            if (!valid_name(text + vpos, vlen, true)) {
                free(key);
                return fail(err, vpos, "invalid label value");
            }
            char **vals = malloc(sizeof(*vals));
            if (vals)
                vals[0] = strndup(text + vpos, vlen);
            if (!vals || !vals[0]) {
                free(vals);
                free(key);
                return WC_ENOMEM;
            }
            rc = add_req(s, key, op.kind == T_NEQ ? WC_SEL_NEQ : WC_SEL_EQ, vals, 1);
            if (rc)
                free_values(vals, 1);
        } else if (op.kind == T_IN || op.kind == T_NOTIN) {
            next_token(&lx);
            char **vals = NULL;
            size_t n = 0;
            rc = parse_set(&lx, &vals, &n, err);
            if (rc) {
                free(key);
                return rc;
            }
            rc = add_req(s, key, op.kind == T_IN ? WC_SEL_IN : WC_SEL_NOTIN, vals, n);
            if (rc)
                free_values(vals, n);
        } else {
            free(key);
            return fail(err, op.pos, "expected an operator (=, ==, !=, in, notin) or ','");
        }
        if (rc) {
            free(key);
            return rc;
        }
        t = next_token(&lx);
        if (t.kind == T_END)
            return 0;
        if (t.kind != T_COMMA)
            return fail(err, t.pos, "expected ','");
    }
}

/* ---------------------------------------------------------------------------------------
 * Fields
 * ------------------------------------------------------------------------------------- */

/* Unescapes a field value (\\ \, \=); an unescaped ',' or '=' or a lone '\' is an error. */
static int unescape_value(const char *s, size_t n, size_t base, char **out, wc_sel_error *err)
{
    char *v = malloc(n + 1);
    if (!v)
        return WC_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 == n || (s[i + 1] != '\\' && s[i + 1] != ',' && s[i + 1] != '=')) {
                free(v);
                return fail(err, base + i, "invalid escape sequence");
            }
            v[o++] = s[++i];
        } else if (c == '=' || c == ',') {
            free(v);
            return fail(err, base + i, "unescaped '=' or ',' in value");
        } else {
            v[o++] = c;
        }
    }
    v[o] = '\0';
    *out = v;
    return 0;
}

static int parse_field_term(const char *text, size_t b, size_t e, wc_selector *s, wc_sel_error *err)
{
    while (b < e && is_space(text[b]))
        b++;
    while (e > b && is_space(text[e - 1]))
        e--;
    if (b == e)
        return fail(err, b, "empty requirement");
    /* The first operator from the left splits the term: !=, then ==, then =. */
    size_t opos = e, olen = 0;
    wc_sel_op op = WC_SEL_EQ;
    for (size_t i = b; i < e; i++) {
        if (text[i] == '!' && i + 1 < e && text[i + 1] == '=') {
            opos = i, olen = 2, op = WC_SEL_NEQ;
            break;
        }
        if (text[i] == '=') {
            opos = i;
            olen = (i + 1 < e && text[i + 1] == '=') ? 2 : 1;
            op = WC_SEL_EQ;
            break;
        }
    }
    if (olen == 0)
        return fail(err, b, "expected an operator (=, ==, !=)");
    size_t kb = b, ke = opos;
    while (ke > kb && is_space(text[ke - 1]))
        ke--;
    if (ke == kb)
        return fail(err, b, "expected a field path");
    for (size_t i = kb; i < ke; i++)
        if (is_space(text[i]) || text[i] == '\\')
            return fail(err, i, "invalid field path");
    size_t vb = opos + olen;
    while (vb < e && is_space(text[vb]))
        vb++;
    char *key = strndup(text + kb, ke - kb);
    char **vals = malloc(sizeof(*vals));
    if (!key || !vals) {
        free(key);
        free(vals);
        return WC_ENOMEM;
    }
    int rc = unescape_value(text + vb, e - vb, vb, &vals[0], err);
    if (rc) {
        free(key);
        free(vals);
        return rc;
    }
    rc = add_req(s, key, op, vals, 1);
    if (rc) {
        free(key);
        free_values(vals, 1);
    }
    return rc;
}

static int parse_fields(const char *text, size_t len, wc_selector *s, wc_sel_error *err)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i + 1 < len && text[i] == '\\') {
            i++; /* an escaped character never splits; a lone trailing '\' is the value's error */
            continue;
        }
        if (i == len || text[i] == ',') {
            int rc = parse_field_term(text, start, i < len ? i : len, s, err);
            if (rc)
                return rc;
            start = i + 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The public face
 * ------------------------------------------------------------------------------------- */

int wc_selector_parse(wc_sel_kind kind, const char *text, wc_selector **out, wc_sel_error *err)
{
    wc_selector *s = calloc(1, sizeof(*s));
    if (!s)
        return WC_ENOMEM;
    s->kind = kind;
    size_t len = text ? strlen(text) : 0;
    size_t b = 0;
    while (b < len && is_space(text[b]))
        b++;
    int rc = 0;
    if (b < len)
        rc = kind == WC_SEL_LABEL ? parse_labels(text, len, s, err)
                                  : parse_fields(text, len, s, err);
    if (rc) {
        wc_selector_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static bool in_set(const requirement *r, const char *v, size_t len)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (strlen(r->values[i]) == len && memcmp(r->values[i], v, len) == 0)
            return true;
    return false;
}

bool wc_selector_match(const wc_selector *s, wc_sel_lookup *lookup, void *ctx)
{
    if (!s)
        return true;
    for (size_t i = 0; i < s->n; i++) {
        const requirement *r = &s->reqs[i];
        size_t len = 0;
        const char *v = lookup(ctx, s->kind, r->key, &len);
        if (!v && s->kind == WC_SEL_FIELD) {
            v = ""; /* a field that is not there reads as the empty string */
            len = 0;
        }
        bool ok;
        switch (r->op) {
        case WC_SEL_EQ:
        case WC_SEL_IN:
            ok = v && in_set(r, v, len);
            break;
        case WC_SEL_NEQ:
        case WC_SEL_NOTIN:
            ok = !v || !in_set(r, v, len);
            break;
        case WC_SEL_EXISTS:
            ok = v != NULL;
            break;
        default:
            ok = v == NULL;
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

const char *wc_selector_exact(const wc_selector *s, const char *name)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->reqs[i].op == WC_SEL_EQ && strcmp(s->reqs[i].key, name) == 0)
            return s->reqs[i].values[0];
    return NULL;
}
