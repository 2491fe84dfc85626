/*
 * Kubernetes label and field selectors (declared in include/wcached/selector.h).
 *
 * The HTTP layer hands a request's labelSelector or fieldSelector text to wc_selector_parse(),
 * which turns it into a flat array of requirements (key, operator, values), every string copied
 * out of the text. The cacher then calls wc_selector_match() for each object it considers: the
 * match asks the caller's lookup for each key and never writes, so one parsed selector serves any
 * number of threads at once until its owner frees it.
 *
 * Both grammars mirror k8s.io/apimachinery, so a selector the API server accepts is accepted
 * here and one it rejects is rejected:
 *  - labels (pkg/labels Parse): a lexer of '!' '=' '==' '!=' '(' ')' ',' '<' '>', whitespace
 *    (space, tab, CR, LF) and words, and a recursive-descent parser. `in` and `notin` are
 *    operators only right after a key; anywhere else they are plain words ("in in (in)" is
 *    valid). Keys are qualified names, values label values, both checked as Kubernetes does.
 *  - fields (pkg/fields ParseSelector): terms split at unescaped commas, empty terms skipped,
 *    each term split at its first '!=', '==' or '=', the value unescaped (\\ \, \=).
 * Where the grammars leave whitespace to the token (field paths and values), it is trimmed here,
 * as the header promises; whitespace inside a field value is kept.
 */
#include <stdlib.h>
#include <string.h>

#include "wcached/err.h"
#include "wcached/parse.h"
#include "wcached/selector.h"

/* One value of a requirement, copied and NUL-terminated; len saves a strlen per match. */
typedef struct sel_value {
    char *s;
    size_t len;
} sel_value;

/* EQ/NEQ hold one value, IN/NOTIN at least one, EXISTS/NOTEXISTS none. */
typedef struct sel_req {
    char *key;
    wc_sel_op op;
    size_t nvalues, cap;
    sel_value *values;
} sel_req;

/* Written only while wc_selector_parse() builds it; read-only (and thread-safe) afterwards. */
struct wc_selector {
    wc_sel_kind kind;
    size_t n, cap;
    sel_req *reqs;
};

/* ---------------------------------------------------------------------------------------
 * Building a selector
 * ------------------------------------------------------------------------------------- */

static int fail(wc_sel_error *err, size_t pos, const char *what)
{
    if (err) {
        err->pos = pos;
        err->what = what;
    }
    return WC_EINVAL;
}

static char *copy_bytes(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static void req_clear(sel_req *r)
{
    free(r->key);
    for (size_t i = 0; i < r->nvalues; i++)
        free(r->values[i].s);
    free(r->values);
    *r = (sel_req){0};
}

/* Appends a copy of s[0..n) to r's values. */
static int req_add_value(sel_req *r, const char *s, size_t n)
{
    if (r->nvalues == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1;
        sel_value *v = realloc(r->values, cap * sizeof(*v));
        if (!v)
            return WC_ENOMEM;
        r->values = v;
        r->cap = cap;
    }
    char *c = copy_bytes(s, n);
    if (!c)
        return WC_ENOMEM;
    r->values[r->nvalues++] = (sel_value){.s = c, .len = n};
    return 0;
}

/* Moves *r into the selector. On WC_ENOMEM *r is left to the caller to clear. */
static int sel_add_req(wc_selector *s, sel_req *r)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        sel_req *reqs = realloc(s->reqs, cap * sizeof(*reqs));
        if (!reqs)
            return WC_ENOMEM;
        s->reqs = reqs;
        s->cap = cap;
    }
    s->reqs[s->n++] = *r;
    *r = (sel_req){0};
    return 0;
}

void wc_selector_free(wc_selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        req_clear(&s->reqs[i]);
    free(s->reqs);
    free(s);
}

/* ---------------------------------------------------------------------------------------
 * Label keys and values (k8s.io/apimachinery/pkg/util/validation)
 * ------------------------------------------------------------------------------------- */

enum {
    QUALIFIED_NAME_MAX = 63,
    LABEL_VALUE_MAX = 63,
};

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * The shape shared by a qualified name's name part and a label value: [A-Za-z0-9_.-] that starts
 * and ends alphanumeric, at most `max` long. The empty string is accepted here; callers decide.
 */
static bool valid_name_chars(const char *s, size_t n, size_t max)
{
    if (n == 0)
        return true;
    if (n > max || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

static bool valid_label_value(const char *s, size_t n)
{
    return valid_name_chars(s, n, LABEL_VALUE_MAX);
}

/* A qualified name: [prefix '/'] name, prefix a DNS subdomain, name 1..63 name characters. */
static bool valid_label_key(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    const char *name = s;
    size_t nlen = n;
    if (slash) {
        size_t plen = (size_t)(slash - s);
        if (!wc_dns_subdomain_valid(s, plen))
            return false;
        name = slash + 1;
        nlen = n - plen - 1;
    }
    return nlen > 0 && valid_name_chars(name, nlen, QUALIFIED_NAME_MAX);
}

/* ---------------------------------------------------------------------------------------
 * Label selectors
 * ------------------------------------------------------------------------------------- */

typedef enum ltok_kind {
    LT_END,
    LT_WORD, /* keys, values, and the words in / notin */
    LT_NOT,  /* ! */
    LT_EQ,   /* = */
    LT_EQEQ, /* == */
    LT_NEQ,  /* != */
    LT_OPEN, /* ( */
    LT_CLOSE,
    LT_COMMA,
    LT_LESS, /* < and > are Kubernetes' Lt/Gt, which wc_sel_op has no room for */
    LT_MORE,
} ltok_kind;

typedef struct ltoken {
    ltok_kind kind;
    size_t pos, len;
} ltoken;

typedef struct label_parser {
    const char *text;
    size_t len;
    size_t pos; /* the next byte the lexer reads */
    wc_sel_error *err;
} label_parser;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_symbol(char c)
{
    return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

/*
 * Reads the token at p->pos and advances past it. A symbol takes its second character only to
 * make '==' or '!=', so "===" is '==' then '=', as Kubernetes' longest-match lexer has it.
 */
static ltoken lex(label_parser *p)
{
    const char *s = p->text;
    while (p->pos < p->len && is_space(s[p->pos]))
        p->pos++;
    ltoken t = {.kind = LT_END, .pos = p->pos, .len = 0};
    if (p->pos == p->len)
        return t;
    char c = s[p->pos];
    bool then_eq = p->pos + 1 < p->len && s[p->pos + 1] == '=';
    t.len = 1;
    switch (c) {
    case '!':
        t.kind = then_eq ? LT_NEQ : LT_NOT;
        t.len = then_eq ? 2 : 1;
        break;
    case '=':
        t.kind = then_eq ? LT_EQEQ : LT_EQ;
        t.len = then_eq ? 2 : 1;
        break;
    case '(':
        t.kind = LT_OPEN;
        break;
    case ')':
        t.kind = LT_CLOSE;
        break;
    case ',':
        t.kind = LT_COMMA;
        break;
    case '<':
        t.kind = LT_LESS;
        break;
    case '>':
        t.kind = LT_MORE;
        break;
    default:
        t.kind = LT_WORD;
        t.len = 0;
        while (p->pos + t.len < p->len && !is_space(s[p->pos + t.len]) &&
               !is_symbol(s[p->pos + t.len]))
            t.len++;
        break;
    }
    p->pos += t.len;
    return t;
}

static ltoken peek(label_parser *p)
{
    size_t save = p->pos;
    ltoken t = lex(p);
    p->pos = save;
    return t;
}

static bool word_is(const label_parser *p, ltoken t, const char *w)
{
    size_t n = strlen(w);
    return t.kind == LT_WORD && t.len == n && memcmp(p->text + t.pos, w, n) == 0;
}

/* Adds the word t as a value after checking it is a label value. */
static int add_label_value(label_parser *p, sel_req *r, ltoken t)
{
    if (!valid_label_value(p->text + t.pos, t.len))
        return fail(p->err, t.pos, "invalid label value");
    return req_add_value(r, p->text + t.pos, t.len);
}

/* The value after = == !=: a word, or nothing (the empty value) before ',' or the end. */
static int parse_exact_value(label_parser *p, sel_req *r)
{
    ltoken t = peek(p);
    if (t.kind == LT_END || t.kind == LT_COMMA)
        return req_add_value(r, "", 0);
    lex(p);
    if (t.kind != LT_WORD)
        return fail(p->err, t.pos, "expected a label value");
    return add_label_value(p, r, t);
}

/*
 * The "( v1, v2 )" after in / notin. Empty items are the empty value: "()" and "(,)" hold "",
 * "(a,)" and "(,a)" hold "a" and "". This follows Kubernetes' parseIdentifiersList step by step,
 * including its one oddity: after a word, a ',' that is directly followed by another ',' takes
 * that comma with it, so "(a,,b)" is {a, "", b} but "(a,,)" is an error, as the API server says.
 */
static int parse_value_set(label_parser *p, sel_req *r)
{
    ltoken t = lex(p);
    if (t.kind != LT_OPEN)
        return fail(p->err, t.pos, "expected '(' after in or notin");
    t = peek(p);
    if (t.kind == LT_CLOSE) {
        lex(p);
        return req_add_value(r, "", 0);
    }
    if (t.kind != LT_WORD && t.kind != LT_COMMA)
        return fail(p->err, t.pos, "expected a label value, ',' or ')'");
    for (;;) {
        int rc;
        t = lex(p);
        if (t.kind == LT_WORD) {
            rc = add_label_value(p, r, t);
            if (rc)
                return rc;
            ltoken next = peek(p);
            if (next.kind == LT_CLOSE) {
                lex(p);
                return 0;
            }
            if (next.kind != LT_COMMA)
                return fail(p->err, next.pos, "expected ',' or ')'");
            continue;
        }
        if (t.kind != LT_COMMA)
            return fail(p->err, t.pos, "expected a label value or ','");
        if (r->nvalues == 0) {
            rc = req_add_value(r, "", 0); /* "(," */
            if (rc)
                return rc;
        }
        ltoken next = peek(p);
        if (next.kind == LT_CLOSE) {
            lex(p);
            return req_add_value(r, "", 0); /* ",)" */
        }
        if (next.kind == LT_COMMA) {
            lex(p);
            rc = req_add_value(r, "", 0); /* ",," */
            if (rc)
                return rc;
        }
    }
}

/*
 * One requirement: [!] key [op value | in/notin (set)]. A bare key is "exists" and "!key" is
 * "does not exist"; for "!key" the caller rejects anything but ',' or the end that follows.
 */
static int parse_label_req(label_parser *p, sel_req *r)
{
    ltoken t = lex(p);
    bool negated = t.kind == LT_NOT;
    if (negated)
        t = lex(p);
    if (t.kind != LT_WORD)
        return fail(p->err, t.pos,
                    negated ? "expected a label key after '!'" : "expected a label key");
    if (!valid_label_key(p->text + t.pos, t.len))
        return fail(p->err, t.pos, "invalid label key");
    r->key = copy_bytes(p->text + t.pos, t.len);
    if (!r->key)
        return WC_ENOMEM;

    ltoken op = peek(p);
    if (negated || op.kind == LT_END || op.kind == LT_COMMA) {
        r->op = negated ? WC_SEL_NOTEXISTS : WC_SEL_EXISTS;
        return 0;
    }
    lex(p);
    switch (op.kind) {
    case LT_EQ:
    case LT_EQEQ:
        r->op = WC_SEL_EQ;
        return parse_exact_value(p, r);
    case LT_NEQ:
        r->op = WC_SEL_NEQ;
        return parse_exact_value(p, r);
    case LT_LESS:
    case LT_MORE:
        return fail(p->err, op.pos, "operators '<' and '>' are not supported");
    default:
        break;
    }
    if (word_is(p, op, "in")) {
        r->op = WC_SEL_IN;
        return parse_value_set(p, r);
    }
    if (word_is(p, op, "notin")) {
        r->op = WC_SEL_NOTIN;
        return parse_value_set(p, r);
    }
    return fail(p->err, op.pos, "expected an operator (=, ==, !=, in, notin), ',' or the end");
}

static int parse_labels(wc_selector *s, const char *text, size_t len, wc_sel_error *err)
{
    label_parser p = {.text = text, .len = len, .pos = 0, .err = err};
    if (peek(&p).kind == LT_END)
        return 0;
    for (;;) {
        sel_req r = {0};
        int rc = parse_label_req(&p, &r);
        if (!rc)
            rc = sel_add_req(s, &r);
        if (rc) {
            req_clear(&r);
            return rc;
        }
        ltoken t = lex(&p);
        if (t.kind == LT_END)
            return 0;
        if (t.kind != LT_COMMA)
            return fail(err, t.pos, "expected ',' or the end of the selector");
        t = peek(&p);
        if (t.kind != LT_WORD && t.kind != LT_NOT)
            return fail(err, t.pos, "expected a requirement after ','");
    }
}

/* ---------------------------------------------------------------------------------------
 * Field selectors
 * ------------------------------------------------------------------------------------- */

/* Unescapes text[b..e) (\\ \, \=) into r's one value; a bare ',' or '=' or a stray '\' fails. */
static int add_field_value(sel_req *r, const char *text, size_t b, size_t e, wc_sel_error *err)
{
    char *v = malloc(e - b + 1);
    if (!v)
        return WC_ENOMEM;
    size_t n = 0;
    for (size_t i = b; i < e; i++) {
        char c = text[i];
        if (c == '\\') {
            char next = i + 1 < e ? text[i + 1] : '\0';
            if (next != '\\' && next != ',' && next != '=') {
                free(v);
                return fail(err, i, "invalid escape sequence in a field value");
            }
            v[n++] = next;
            i++;
        } else if (c == '=' || c == ',') {
            free(v);
            return fail(err, i, "'=' and ',' in a field value must be escaped with '\\'");
        } else {
            v[n++] = c;
        }
    }
    v[n] = '\0';
    if (r->cap == 0) {
        r->values = malloc(sizeof(*r->values));
        if (!r->values) {
            free(v);
            return WC_ENOMEM;
        }
        r->cap = 1;
    }
    r->values[0] = (sel_value){.s = v, .len = n};
    r->nvalues = 1;
    return 0;
}

/*
 * One term text[b..e): path op value. The operator is the first '!=', '==' or '=' from the left
 * (escapes play no part in finding it, as in Kubernetes' splitTerm). An empty or blank term is
 * skipped, as Kubernetes skips empty terms.
 */
static int parse_field_term(wc_selector *s, const char *text, size_t b, size_t e, wc_sel_error *err)
{
    while (b < e && is_space(text[b]))
        b++;
    while (e > b && is_space(text[e - 1]))
        e--;
    if (b == e)
        return 0;

    size_t opos = e, olen = 0;
    wc_sel_op op = WC_SEL_EQ;
    for (size_t i = b; i < e && olen == 0; i++) {
        bool then_eq = i + 1 < e && text[i + 1] == '=';
        if (text[i] == '!' && then_eq) {
            opos = i;
            olen = 2;
            op = WC_SEL_NEQ;
        } else if (text[i] == '=') {
            opos = i;
            olen = then_eq ? 2 : 1;
        }
    }
    if (olen == 0)
        return fail(err, b, "expected '=', '==' or '!=' in a field requirement");

    size_t ke = opos;
    while (ke > b && is_space(text[ke - 1]))
        ke--;
    if (ke == b)
        return fail(err, b, "expected a field path");
    for (size_t i = b; i < ke; i++)
        if (is_space(text[i]) || text[i] == '\\')
            return fail(err, i, "invalid character in a field path");

    size_t vb = opos + olen;
    while (vb < e && is_space(text[vb]))
        vb++;

    sel_req r = {.op = op};
    r.key = copy_bytes(text + b, ke - b);
    int rc = r.key ? add_field_value(&r, text, vb, e, err) : WC_ENOMEM;
    if (!rc)
        rc = sel_add_req(s, &r);
    if (rc)
        req_clear(&r);
    return rc;
}

/* Splits at commas not preceded by an escaping '\' and parses each term. */
static int parse_fields(wc_selector *s, const char *text, size_t len, wc_sel_error *err)
{
    size_t start = 0;
    bool escaped = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len) {
            if (escaped) {
                escaped = false;
                continue;
            }
            if (text[i] == '\\') {
                escaped = true;
                continue;
            }
            if (text[i] != ',')
                continue;
        }
        int rc = parse_field_term(s, text, start, i, err);
        if (rc)
            return rc;
        start = i + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The public face
 * ------------------------------------------------------------------------------------- */

int wc_selector_parse(wc_sel_kind kind, const char *text, wc_selector **out, wc_sel_error *err)
{
    if (!out || (kind != WC_SEL_LABEL && kind != WC_SEL_FIELD))
        return fail(err, 0, "invalid argument");
    wc_selector *s = calloc(1, sizeof(*s));
    if (!s)
        return WC_ENOMEM;
    s->kind = kind;
    size_t len = text ? strlen(text) : 0;
    int rc =
        kind == WC_SEL_LABEL ? parse_labels(s, text, len, err) : parse_fields(s, text, len, err);
    if (rc) {
        wc_selector_free(s);
        return rc;
    }
    *out = s;
    return 0;
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

static bool has_value(const sel_req *r, const char *v, size_t len)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (r->values[i].len == len && (len == 0 || memcmp(r->values[i].s, v, len) == 0))
            return true;
    return false;
}

/*
 * Labels match as in Kubernetes' Requirement.Matches: = and in need the label, != and notin hold
 * when it is absent. A field is always there for Kubernetes, so an absent one reads as "".
 * A NULL lookup is an object with no labels and no fields.
 */
bool wc_selector_match(const wc_selector *s, wc_sel_lookup *lookup, void *ctx)
{
    if (!s)
        return true;
    for (size_t i = 0; i < s->n; i++) {
        const sel_req *r = &s->reqs[i];
        size_t len = 0;
        const char *v = lookup ? lookup(ctx, s->kind, r->key, &len) : NULL;
        if (!v && s->kind == WC_SEL_FIELD) {
            v = "";
            len = 0;
        }
        bool ok = false;
        switch (r->op) {
        case WC_SEL_EQ:
        case WC_SEL_IN:
            ok = v && has_value(r, v, len);
            break;
        case WC_SEL_NEQ:
        case WC_SEL_NOTIN:
            ok = !v || !has_value(r, v, len);
            break;
        case WC_SEL_EXISTS:
            ok = v != NULL;
            break;
        case WC_SEL_NOTEXISTS:
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
    if (!s || !name)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->reqs[i].op == WC_SEL_EQ && strcmp(s->reqs[i].key, name) == 0)
            return s->reqs[i].values[0].s;
    return NULL;
}
