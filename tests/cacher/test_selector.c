/* Label and field selectors: grammar, validation and matching. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "wcached/err.h"
#include "wcached/selector.h"

/* A table-driven object: "k=v" pairs for labels and fields, NULL-terminated. */
typedef struct obj {
    const char *const *labels;
    const char *const *fields;
} obj;

static const char *lookup(void *ctx, wc_sel_kind kind, const char *name, size_t *len)
{
    const obj *o = ctx;
    const char *const *kv = kind == WC_SEL_LABEL ? o->labels : o->fields;
    size_t n = strlen(name);
    for (size_t i = 0; kv && kv[i]; i++) {
        if (strncmp(kv[i], name, n) == 0 && kv[i][n] == '=') {
            *len = strlen(kv[i] + n + 1);
            return kv[i] + n + 1;
        }
    }
    return NULL;
}

static bool matches(wc_sel_kind kind, const char *sel, const obj *o)
{
    wc_selector *s = NULL;
    wc_sel_error err = {0};
    int rc = wc_selector_parse(kind, sel, &s, &err);
    cr_assert_eq(rc, 0, "'%s' did not parse: %s at %zu", sel, err.what, err.pos);
    bool m = wc_selector_match(s, lookup, (void *)o);
    wc_selector_free(s);
    return m;
}

static void rejects(wc_sel_kind kind, const char *sel, size_t min_pos, size_t max_pos)
{
    wc_selector *s = NULL;
    wc_sel_error err = {0, NULL};
    int rc = wc_selector_parse(kind, sel, &s, &err);
    cr_assert_eq(rc, WC_EINVAL, "'%s' should be rejected", sel);
    cr_assert_null(s);
    cr_assert_not_null(err.what, "'%s': a reason", sel);
    cr_assert(err.pos >= min_pos && err.pos <= max_pos, "'%s': error at %zu, want %zu..%zu (%s)",
              sel, err.pos, min_pos, max_pos, err.what);
}

static const char *const web_labels[] = {"app=web", "tier=front", "env=", NULL};
static const obj web = {.labels = web_labels};
static const obj bare = {0};

Test(selector, empty_and_null_match_everything)
{
    cr_assert(matches(WC_SEL_LABEL, "", &web));
    cr_assert(matches(WC_SEL_LABEL, "   ", &bare));
    cr_assert(matches(WC_SEL_FIELD, NULL, &bare));
    wc_selector *s = NULL;
    cr_assert_eq(wc_selector_parse(WC_SEL_LABEL, NULL, &s, NULL), 0);
    cr_assert(wc_selector_empty(s));
    cr_assert_eq(wc_selector_count(s), 0);
    wc_selector_free(s);
    cr_assert(wc_selector_empty(NULL));
    cr_assert(wc_selector_match(NULL, lookup, (void *)&bare));
}

Test(selector, equality_forms)
{
    cr_assert(matches(WC_SEL_LABEL, "app=web", &web));
    cr_assert(matches(WC_SEL_LABEL, "app==web", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app=db", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app=web", &bare), "= needs the label");
    cr_assert(matches(WC_SEL_LABEL, "env=", &web), "an empty value matches an empty label");
    cr_assert_not(matches(WC_SEL_LABEL, "env=", &bare));
}

Test(selector, inequality_matches_when_absent)
{
    cr_assert(matches(WC_SEL_LABEL, "app!=db", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app!=web", &web));
    cr_assert(matches(WC_SEL_LABEL, "app!=web", &bare));
}

Test(selector, set_based)
{
    cr_assert(matches(WC_SEL_LABEL, "app in (db,web)", &web));
    cr_assert(matches(WC_SEL_LABEL, "app in(web)", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app in (db, cache)", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app in (web)", &bare));
    cr_assert(matches(WC_SEL_LABEL, "app notin (db,cache)", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app notin (web)", &web));
    cr_assert(matches(WC_SEL_LABEL, "app notin (web)", &bare));
    cr_assert(matches(WC_SEL_LABEL, "env in ()", &web), "() is the set of the empty value");
    cr_assert(matches(WC_SEL_LABEL, "env in (x,)", &web), "a trailing comma adds ''");
}

Test(selector, existence)
{
    cr_assert(matches(WC_SEL_LABEL, "app", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app", &bare));
    cr_assert(matches(WC_SEL_LABEL, "!app", &bare));
    cr_assert_not(matches(WC_SEL_LABEL, "!app", &web));
    cr_assert(matches(WC_SEL_LABEL, "! missing", &web));
}

Test(selector, requirements_are_anded_with_whitespace_anywhere)
{
    cr_assert(matches(WC_SEL_LABEL, " app = web ,tier in ( front , back ) , !gone ", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app=web,tier=back", &web));
    cr_assert_not(matches(WC_SEL_LABEL, "app=web,gone", &web));
}

Test(selector, qualified_keys)
{
    static const char *const l[] = {"example.com/role=x", "a-b_c.d=1", NULL};
    obj o = {.labels = l};
    cr_assert(matches(WC_SEL_LABEL, "example.com/role=x", &o));
    cr_assert(matches(WC_SEL_LABEL, "a-b_c.d", &o));
    rejects(WC_SEL_LABEL, "Example.com/role=x", 0, 0);
    rejects(WC_SEL_LABEL, "example.com/=x", 0, 0);
    rejects(WC_SEL_LABEL, "/role=x", 0, 0);
    rejects(WC_SEL_LABEL, "-app=x", 0, 0);
    rejects(WC_SEL_LABEL, "app-=x", 0, 0);
}

Test(selector, overlong_keys_and_values_are_rejected)
{
    char sel[400];
    memset(sel, 'a', 64);
    strcpy(sel + 64, "=x");
    rejects(WC_SEL_LABEL, sel, 0, 0);
    memset(sel, 'a', 63);
    strcpy(sel + 63, "=x");
    wc_selector *s = NULL;
    cr_assert_eq(wc_selector_parse(WC_SEL_LABEL, sel, &s, NULL), 0, "63 is the limit");
    wc_selector_free(s);
    strcpy(sel, "k=");
    memset(sel + 2, 'v', 64);
    sel[66] = '\0';
    rejects(WC_SEL_LABEL, sel, 2, 2);
    /* A DNS prefix over 253 characters. */
    memset(sel, 'a', 300);
    sel[254] = '/';
    strcpy(sel + 255, "k");
    rejects(WC_SEL_LABEL, sel, 0, 0);
}

Test(selector, label_grammar_errors)
{
    rejects(WC_SEL_LABEL, "app in (a", 9, 9);
    rejects(WC_SEL_LABEL, "app in a", 7, 7);
    rejects(WC_SEL_LABEL, "app notin", 9, 9);
    rejects(WC_SEL_LABEL, "app=a b", 6, 6);
    rejects(WC_SEL_LABEL, "app=web,", 8, 8);
    rejects(WC_SEL_LABEL, ",app", 0, 0);
    rejects(WC_SEL_LABEL, "app > 3", 4, 4);
    rejects(WC_SEL_LABEL, "!app=web", 4, 4);
    rejects(WC_SEL_LABEL, "app=(web)", 4, 4);
    rejects(WC_SEL_LABEL, "app in (a b)", 10, 10);
    rejects(WC_SEL_LABEL, "in=x", 0, 0);
    rejects(WC_SEL_LABEL, "app=w!b", 5, 5);
    rejects(WC_SEL_LABEL, "app=-web", 4, 4);
}

Test(selector, field_equality_and_inequality)
{
    static const char *const f[] = {"metadata.name=a", "spec.nodeName=n1", NULL};
    obj o = {.fields = f};
    cr_assert(matches(WC_SEL_FIELD, "metadata.name=a", &o));
    cr_assert(matches(WC_SEL_FIELD, "metadata.name==a", &o));
    cr_assert(matches(WC_SEL_FIELD, "metadata.name!=b", &o));
    cr_assert_not(matches(WC_SEL_FIELD, "metadata.name!=a", &o));
    cr_assert(matches(WC_SEL_FIELD, "metadata.name=a,spec.nodeName=n1", &o));
    cr_assert_not(matches(WC_SEL_FIELD, "metadata.name=a,spec.nodeName=n2", &o));
    /* A field that is not there reads as "". */
    cr_assert(matches(WC_SEL_FIELD, "spec.missing=", &o));
    cr_assert(matches(WC_SEL_FIELD, "spec.missing!=x", &o));
    cr_assert_not(matches(WC_SEL_FIELD, "spec.missing=x", &o));
}

Test(selector, field_values_with_escapes)
{
    static const char *const f[] = {"metadata.name=a,b=c\\d", NULL};
    obj o = {.fields = f};
    cr_assert(matches(WC_SEL_FIELD, "metadata.name=a\\,b\\=c\\\\d", &o));
    rejects(WC_SEL_FIELD, "metadata.name=a\\x", 15, 15);
    rejects(WC_SEL_FIELD, "metadata.name=a\\", 15, 15);
    rejects(WC_SEL_FIELD, "metadata.name=a=b", 15, 15);
}

Test(selector, field_grammar_errors)
{
    rejects(WC_SEL_FIELD, "metadata.name", 0, 0);
    rejects(WC_SEL_FIELD, "=x", 0, 0);
    rejects(WC_SEL_FIELD, "a=b,,c=d", 4, 4);
    rejects(WC_SEL_FIELD, "a=b,", 4, 4);
    rejects(WC_SEL_FIELD, "a b=c", 1, 1);
}

Test(selector, exact_match_extraction_for_the_index)
{
    wc_selector *s = NULL;
    cr_assert_eq(
        wc_selector_parse(WC_SEL_FIELD, "metadata.namespace=ns,spec.nodeName==n7", &s, NULL), 0);
    cr_assert_str_eq(wc_selector_exact(s, "spec.nodeName"), "n7");
    cr_assert_str_eq(wc_selector_exact(s, "metadata.namespace"), "ns");
    cr_assert_null(wc_selector_exact(s, "metadata.name"));
    cr_assert_eq(wc_selector_count(s), 2);
    cr_assert_str_eq(wc_selector_key(s, 1), "spec.nodeName");
    cr_assert_null(wc_selector_key(s, 2));
    wc_selector_free(s);
    cr_assert_eq(wc_selector_parse(WC_SEL_FIELD, "spec.nodeName!=n7", &s, NULL), 0);
    cr_assert_null(wc_selector_exact(s, "spec.nodeName"), "!= does not pin a value");
    wc_selector_free(s);
    cr_assert_eq(wc_selector_parse(WC_SEL_LABEL, "app in (a)", &s, NULL), 0);
    cr_assert_null(wc_selector_exact(s, "app"), "a set does not pin (as RequiresExactMatch)");
    wc_selector_free(s);
    cr_assert_null(wc_selector_exact(NULL, "x"));
}

Test(selector, many_requirements)
{
    char sel[4096] = "";
    static const char *labels[101];
    static char store[100][32];
    for (int i = 0; i < 100; i++) {
        char part[32];
        snprintf(part, sizeof(part), "%sk%d=v%d", i ? "," : "", i, i);
        strcat(sel, part);
        snprintf(store[i], sizeof(store[i]), "k%d=v%d", i, i);
        labels[i] = store[i];
    }
    labels[100] = NULL;
    obj o = {.labels = labels};
    cr_assert(matches(WC_SEL_LABEL, sel, &o));
    store[57][4] = 'x'; /* k57=vx7: one requirement fails */
    cr_assert_not(matches(WC_SEL_LABEL, sel, &o));
}
