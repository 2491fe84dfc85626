/*
 * libFuzzer target: arbitrary text through both selector parsers, then a match against a fixed
 * object whose values are exact-length heap copies with no NUL after them (so an over-read is an
 * ASan report), and the parser's promises checked: only 0 or WC_EINVAL, an error position inside
 * the text with a reason, every parsed label key valid on its own, matching deterministic.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wcached/err.h"
#include "wcached/selector.h"

typedef struct entry {
    wc_sel_kind kind;
    const char *name, *value;
} entry;

static const entry object[] = {
    {WC_SEL_LABEL, "app", "web"},
    {WC_SEL_LABEL, "a", "b"},
    {WC_SEL_LABEL, "env", ""},
    {WC_SEL_LABEL, "in", "notin"},
    {WC_SEL_LABEL, "example.com/team", "core"},
    {WC_SEL_FIELD, "metadata.name", "a,b=c\\d"},
    {WC_SEL_FIELD, "metadata.namespace", "ns"},
    {WC_SEL_FIELD, "a", "b"},
};
enum { NENTRIES = sizeof(object) / sizeof(object[0]) };

/* Exact-length copies of the values, made once: no NUL follows any of them. */
static char *copies[NENTRIES];

static const char *lookup(void *ctx, wc_sel_kind kind, const char *name, size_t *len)
{
    (void)ctx;
    for (size_t i = 0; i < NENTRIES; i++) {
        if (object[i].kind == kind && strcmp(object[i].name, name) == 0) {
            *len = strlen(object[i].value);
            return copies[i];
        }
    }
    return NULL;
}

static void check(wc_sel_kind kind, const char *text, size_t len)
{
    wc_selector *s = NULL;
    wc_sel_error err = {(size_t)-1, NULL};
    int rc = wc_selector_parse(kind, text, &s, &err);
    if (rc == WC_EINVAL) {
        if (s || !err.what || err.pos > len)
            abort();
        return;
    }
    if (rc != 0 || !s)
        abort();
    size_t n = wc_selector_count(s);
    if (wc_selector_empty(s) != (n == 0) || wc_selector_key(s, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *key = wc_selector_key(s, i);
        if (!key || !*key)
            abort();
        const char *v = wc_selector_exact(s, key);
        if (v && strlen(v) > len)
            abort();
        if (kind == WC_SEL_LABEL) {
            wc_selector *k = NULL;
            if (wc_selector_parse(WC_SEL_LABEL, key, &k, NULL) != 0 || wc_selector_count(k) != 1)
                abort();
            wc_selector_free(k);
        }
    }
    bool m = wc_selector_match(s, lookup, NULL);
    if (wc_selector_match(s, lookup, NULL) != m)
        abort();
    wc_selector_match(s, NULL, NULL);
    wc_selector_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!copies[0]) {
        for (size_t i = 0; i < NENTRIES; i++) {
            size_t n = strlen(object[i].value);
            copies[i] = malloc(n ? n : 1);
            if (!copies[i])
                abort();
            memcpy(copies[i], object[i].value, n);
        }
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    check(WC_SEL_LABEL, text, len);
    check(WC_SEL_FIELD, text, len);
    free(text);
    return 0;
}
