/*
 * Kubernetes label and field selectors.
 *
 * A selector is parsed once per request into an immutable list of requirements and then matched
 * against many objects, from any number of threads at once. The module knows nothing of JSON:
 * matching asks a caller-supplied lookup for a label's or a field's value, so the same selector
 * works on a parsed object, a key, or a test's table.
 *
 * Label grammar (k8s.io/apimachinery/pkg/labels): requirements separated by ',', each one of
 *   key = value | key == value | key != value | key in (v1,v2) | key notin (v1,v2) | key | !key
 * Field grammar (k8s.io/apimachinery/pkg/fields): requirements separated by ',', each one of
 *   path = value | path == value | path != value
 * Whitespace around tokens is allowed. An empty or NULL text is the empty selector, which
 * matches everything.
 */
#ifndef WCACHED_SELECTOR_H
#define WCACHED_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum wc_sel_kind {
    WC_SEL_LABEL = 0,
    WC_SEL_FIELD = 1,
} wc_sel_kind;

typedef enum wc_sel_op {
    WC_SEL_EQ,        /* = or == */
    WC_SEL_NEQ,       /* != */
    WC_SEL_IN,        /* in (...) */
    WC_SEL_NOTIN,     /* notin (...) */
    WC_SEL_EXISTS,    /* key */
    WC_SEL_NOTEXISTS, /* !key */
} wc_sel_op;

typedef struct wc_selector wc_selector;

/* Where parsing stopped and why; `what` is a static string such as "expected value". */
typedef struct wc_sel_error {
    size_t pos;
    const char *what;
} wc_sel_error;

/*
 * Looks up a label (kind WC_SEL_LABEL) or a field path such as "spec.nodeName" (WC_SEL_FIELD)
 * on the object being matched. Returns the value's bytes and sets *len, or returns NULL when the
 * object has no such label or field. The pointer must stay valid until the match returns.
 */
typedef const char *wc_sel_lookup(void *ctx, wc_sel_kind kind, const char *name, size_t *len);

/*
 * Parses `text` as a selector of `kind`. On success returns 0 and sets *out to a new selector
 * the caller frees with wc_selector_free(). On error returns WC_EINVAL (filling *err when it is
 * not NULL) or WC_ENOMEM; *out is untouched. Label keys and values are checked as Kubernetes
 * does (qualified names up to 63 characters with an optional DNS prefix; values up to 63
 * characters of [A-Za-z0-9_.-], starting and ending alphanumeric, or empty).
 */
int wc_selector_parse(wc_sel_kind kind, const char *text, wc_selector **out, wc_sel_error *err);

/* Frees a selector; NULL is allowed. */
void wc_selector_free(wc_selector *s);

/* True when the selector has no requirement (NULL counts as empty). */
bool wc_selector_empty(const wc_selector *s);

/* True when every requirement holds for the object seen through `lookup`. NULL matches all. */
bool wc_selector_match(const wc_selector *s, wc_sel_lookup *lookup, void *ctx);

/*
 * If the selector pins `name` to one value (a requirement `name=value` or `name==value`),
 * returns that value (NUL-terminated, owned by the selector); otherwise NULL. This is
 * Kubernetes' RequiresExactMatch, used by the index trigger.
 */
const char *wc_selector_exact(const wc_selector *s, const char *name);

/* Number of requirements, and the key (label key or field path) of requirement i. */
size_t wc_selector_count(const wc_selector *s);
const char *wc_selector_key(const wc_selector *s, size_t i);

#endif
