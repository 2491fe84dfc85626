/*
 * Label and field selectors: grammar, validation and matching, checked against the behaviour of
 * k8s.io/apimachinery's labels.Parse and fields.ParseSelector.
 *
 * Objects are tiny tables of name/value pairs; one lookup and two helpers (matches, rejects)
 * serve every test.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcached/err.h"
#include "wcached/selector.h"

typedef struct pair {
    const char *name, *value;
    size_t len; /* 0: strlen(value); lets a test hand out values that are not NUL-terminated */
} pair;

/* An object seen through its labels and fields, each a table ended by a NULL name. */
typedef struct obj {
    const pair *labels;
    const pair *fields;
} obj;

#define KV(n, v)                                                                                   \
    {                                                                                              \
        (n), (v), 0                                                                                \
    }
#define KV_END                                                                                     \
    {                                                                                              \
        NULL, NULL, 0                                                                              \
    }

static const char *lookup(void *ctx, wc_sel_kind kind, const char *name, size_t *len)
{
    const obj *o = ctx;
    const pair *t = kind == WC_SEL_LABEL ? o->labels : o->fields;
    for (size_t i = 0; t && t[i].name; i++) {
        if (strcmp(t[i].name, name) == 0) {
            *len = t[i].len ? t[i].len : strlen(t[i].value);
            return t[i].value;
        }
    }
    return NULL;
}

static wc_selector *parse_ok(wc_sel_kind kind, const char *sel)
{
    wc_selector *s = NULL;
    wc_sel_error err = {0, NULL};
    int rc = wc_selector_parse(kind, sel, &s, &err);
    cr_assert_eq(rc, 0, "'%s' did not parse: %s at %zu", sel, err.what ? err.what : "?", err.pos);
    cr_assert_not_null(s);
    return s;
}

/* The selector's match against a test object (the lookup only reads it). */
static bool match_obj(const wc_selector *s, const obj *o)
{
    return wc_selector_match(s, lookup, (void *)(uintptr_t)o);
}

static bool matches(wc_sel_kind kind, const char *sel, const obj *o)
{
    wc_selector *s = parse_ok(kind, sel);
    bool m = match_obj(s, o);
    wc_selector_free(s);
    return m;
}

/* Asserts sel is rejected with WC_EINVAL at a position within [lo, hi]. */
static void rejects(wc_sel_kind kind, const char *sel, size_t lo, size_t hi)
{
    wc_selector *s = (wc_selector *)&s; /* must stay untouched */
    wc_selector *const before = s;
    wc_sel_error err = {(size_t)-1, NULL};
    int rc = wc_selector_parse(kind, sel, &s, &err);
    cr_assert_eq(rc, WC_EINVAL, "'%s' should be rejected, got %d", sel, rc);
    cr_assert_eq(s, before, "'%s': *out must be untouched on error", sel);
    cr_assert_not_null(err.what, "'%s': a reason", sel);
    cr_assert(err.pos >= lo && err.pos <= hi, "'%s': error at %zu, want %zu..%zu (%s)", sel,
              err.pos, lo, hi, err.what);
}

static const pair web_labels[] = {KV("app", "web"), KV("tier", "front"), KV("env", ""),
                                  KV("example.com/team", "core"), KV_END};
static const obj web = {.labels = web_labels};
static const obj bare = {0};

#define L WC_SEL_LABEL
#define F WC_SEL_FIELD

Test(selector, empty_and_null_are_the_empty_selector)
{
    const char *texts[] = {NULL, "", "   ", "\t\r\n"};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            wc_selector *s = parse_ok(k ? F : L, texts[i]);
            cr_assert(wc_selector_empty(s));
            cr_assert_eq(wc_selector_count(s), 0);
            cr_assert_null(wc_selector_key(s, 0));
            cr_assert(match_obj(s, &bare));
            cr_assert(match_obj(s, &web));
            wc_selector_free(s);
        }
    }
    cr_assert(wc_selector_empty(NULL));
    cr_assert_eq(wc_selector_count(NULL), 0);
    cr_assert(match_obj(NULL, &bare));
    wc_selector_free(NULL);
}

Test(selector, label_equality)
{
    cr_assert(matches(L, "app=web", &web));
    cr_assert(matches(L, "app==web", &web));
    cr_assert_not(matches(L, "app=db", &web));
    cr_assert_not(matches(L, "app=we", &web), "no prefix match");
    cr_assert_not(matches(L, "app=WEB", &web), "values are case-sensitive");
    cr_assert_not(matches(L, "app=web", &bare), "= needs the label");
    cr_assert(matches(L, "env=", &web), "an empty value matches an empty label");
    cr_assert(matches(L, "env==", &web));
    cr_assert_not(matches(L, "env=", &bare), "= with an empty value still needs the label");
    cr_assert_not(matches(L, "app=", &web));
    cr_assert(matches(L, "example.com/team=core", &web));
}

Test(selector, label_inequality_holds_when_absent)
{
    cr_assert(matches(L, "app!=db", &web));
    cr_assert_not(matches(L, "app!=web", &web));
    cr_assert(matches(L, "app!=web", &bare), "as in Kubernetes, != holds for a missing label");
    cr_assert(matches(L, "env!=x", &web));
    cr_assert_not(matches(L, "env!=", &web));
    cr_assert(matches(L, "env!=", &bare));
}

Test(selector, label_in_and_notin)
{
    cr_assert(matches(L, "app in (db,web)", &web));
    cr_assert(matches(L, "app in(web)", &web));
    cr_assert(matches(L, "app in (web,web)", &web));
    cr_assert_not(matches(L, "app in (db, cache)", &web));
    cr_assert_not(matches(L, "app in (web)", &bare), "in needs the label");
    cr_assert(matches(L, "app notin (db,cache)", &web));
    cr_assert_not(matches(L, "app notin (cache,web)", &web));
    cr_assert(matches(L, "app notin (web)", &bare), "notin holds for a missing label");
}

Test(selector, label_sets_with_empty_items)
{
    /* Kubernetes: "()" and "(,)" are {""}; "(a,)" "(,a)" "(a,,b)" add "" to the words. */
    const char *with_empty[] = {"env in ()",     "env in (,)",   "env in (x,)",  "env in (,x)",
                                "env in (x,,y)", "env in ( , )", "env in (,,x)", "env in (x,,,,,)"};
    for (size_t i = 0; i < sizeof(with_empty) / sizeof(with_empty[0]); i++) {
        cr_assert(matches(L, with_empty[i], &web), "'%s' holds \"\"", with_empty[i]);
        cr_assert_not(matches(L, with_empty[i], &bare), "'%s' needs the label", with_empty[i]);
    }
    cr_assert_not(matches(L, "env in (x,y)", &web));
    cr_assert(matches(L, "app in (x,,web)", &web));
    cr_assert_not(matches(L, "env notin ()", &web));
    cr_assert(matches(L, "app notin ()", &web));
}

Test(selector, label_set_errors_match_kubernetes)
{
    /* parseIdentifiersList pairs up ",," after a word, so these fail on the API server too. */
    rejects(L, "a in (x,,)", 9, 9);
    rejects(L, "a in (,,)", 8, 8);
    rejects(L, "a in (x,,,,)", 11, 11);
    wc_selector_free(parse_ok(L, "a in (x,,,)")); /* an odd run of commas pairs up */
    rejects(L, "a in", 4, 4);
    rejects(L, "a notin x", 8, 8);
    rejects(L, "a in (x", 7, 7);
    rejects(L, "a in (x y)", 8, 8);
    rejects(L, "a in (x,=)", 8, 8);
    rejects(L, "a in ((x))", 6, 6);
    rejects(L, "a in (x) y", 9, 9);
    rejects(L, "a in (-x)", 6, 6);
    rejects(L, "a in (x, y-)", 9, 9);
}

Test(selector, label_exists_and_not_exists)
{
    cr_assert(matches(L, "app", &web));
    cr_assert(matches(L, "env", &web), "an empty label exists");
    cr_assert_not(matches(L, "app", &bare));
    cr_assert(matches(L, "!app", &bare));
    cr_assert_not(matches(L, "!app", &web));
    cr_assert_not(matches(L, "!env", &web));
    cr_assert(matches(L, "! missing", &web), "whitespace may follow '!'");
    cr_assert(matches(L, "app,!missing,tier", &web));
    rejects(L, "!app=web", 4, 4);
    rejects(L, "!app in (web)", 5, 5);
    rejects(L, "!", 1, 1);
    rejects(L, "!!app", 1, 1);
    rejects(L, "!=app", 0, 0);
}

Test(selector, in_and_notin_are_words_outside_the_operator_slot)
{
    static const pair l[] = {KV("in", "notin"), KV("notin", "in"), KV_END};
    const obj o = {.labels = l};
    cr_assert(matches(L, "in=notin", &o));
    cr_assert(matches(L, "notin==in", &o));
    cr_assert(matches(L, "in in (in,notin)", &o));
    cr_assert(matches(L, "notin notin (notin)", &o));
    cr_assert(matches(L, "in,notin", &o));
    cr_assert(matches(L, "!app,in", &o));
    cr_assert_not(matches(L, "!in", &o));
    cr_assert(matches(L, "app!=in", &web));
    rejects(L, "app in in", 7, 7);
    rejects(L, "app web", 4, 4);
}

Test(selector, label_whitespace_around_every_token)
{
    cr_assert(matches(L, " app = web ,tier in ( front , back ) , !gone ", &web));
    cr_assert(matches(L, "\tapp\t==\tweb\r\n,\ntier\nnotin\n(\nback\n)\n", &web));
    cr_assert(matches(L, "app=web , env", &web));
    rejects(L, "app=a b", 6, 6);
    /* Only space, tab, CR and LF separate tokens; a form feed is part of a word. */
    rejects(L, "app\f=web", 0, 0);
}

Test(selector, label_requirements_are_anded)
{
    cr_assert(matches(L, "app=web,tier=front", &web));
    cr_assert_not(matches(L, "app=web,tier=back", &web));
    cr_assert_not(matches(L, "tier=back,app=web", &web));
    cr_assert_not(matches(L, "app=web,gone", &web));
    cr_assert_not(matches(L, "app=web,!tier", &web));
    cr_assert(matches(L, "app=web,app in (web,db),app!=db,app notin (x)", &web));
    cr_assert_not(matches(L, "app=web,app=db", &web));
}

Test(selector, label_keys_are_qualified_names)
{
    char key[400];
    const char *valid[] = {
        "a",         "A",         "a-b_c.d", "MyName", "123-abc", "a.b/c", "example.com/MyName",
        "x-1.y-2/z", "a/b.c_d-E", "k8s.io/x"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        snprintf(key, sizeof(key), "%s", valid[i]);
        wc_selector *s = parse_ok(L, key);
        cr_assert_str_eq(wc_selector_key(s, 0), valid[i]);
        wc_selector_free(s);
    }
    /* The name part may be 63 long; the DNS prefix 253, with no limit on each of its labels. */
    memset(key, 'a', 63);
    key[63] = '\0';
    wc_selector_free(parse_ok(L, key));
    memset(key, 'b', 253);
    key[80] = '.';
    key[253] = '/';
    memset(key + 254, 'n', 63);
    key[317] = '\0';
    wc_selector_free(parse_ok(L, key));
}

Test(selector, invalid_label_keys_are_rejected_at_the_key)
{
    const char *bad[] = {
        "Example.com/x=1", "example.com/=1", "/x=1",      "-app=1",         "app-=1",
        "_app=1",          "app.=1",         "a/b/c=1",   "ex_ample.com/x", "-ex.com/x",
        "ex-.com/x",       "ex..com/x",      ".ex.com/x", "ex.com./x",      "a/-b",
        "app@1=1",         "app:x=1",        "ä=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rejects(L, bad[i], 0, 0);
    rejects(L, "a b/c=1", 2, 2); /* "a" is a key; the word after it is no operator */
    rejects(L, "x/y z", 4, 4);
    rejects(L, "app=1, Bad/x", 7, 7);
}

Test(selector, overlong_keys_and_values_are_rejected)
{
    char sel[1200];
    memset(sel, 'a', 64); /* name part of 64 */
    strcpy(sel + 64, "=x");
    rejects(L, sel, 0, 0);
    memset(sel, 'p', 254); /* prefix of 254 */
    sel[254] = '/';
    strcpy(sel + 255, "k=v");
    rejects(L, sel, 0, 0);
    strcpy(sel, "k=");
    memset(sel + 2, 'v', 63);
    sel[65] = '\0';
    wc_selector_free(parse_ok(L, sel));
    strcpy(sel, "k=");
    memset(sel + 2, 'v', 64);
    sel[66] = '\0';
    rejects(L, sel, 2, 2);
    strcpy(sel, "k in (a,");
    memset(sel + 8, 'v', 1000);
    strcpy(sel + 1008, ")");
    rejects(L, sel, 8, 8);
    /* A very long key is rejected, not truncated. */
    char *huge = malloc(100001);
    cr_assert_not_null(huge);
    memset(huge, 'k', 100000);
    huge[100000] = '\0';
    rejects(L, huge, 0, 0);
    free(huge);
}

Test(selector, label_values_are_checked)
{
    static const pair l[] = {KV("v", "v.1_2-3"), KV_END};
    const obj o = {.labels = l};
    cr_assert(matches(L, "v=v.1_2-3", &o));
    cr_assert(matches(L, "v in (V, v.1_2-3)", &o));
    rejects(L, "v=-x", 2, 2);
    rejects(L, "v=x-", 2, 2);
    rejects(L, "v=.x", 2, 2);
    rejects(L, "v=a/b", 2, 2);
    rejects(L, "v=a:b", 2, 2);
    rejects(L, "v!=a*", 3, 3);
}

Test(selector, label_grammar_errors_point_at_the_token)
{
    rejects(L, "app=web,", 8, 8);
    rejects(L, "app=web, ", 9, 9);
    rejects(L, "app=web,,tier", 8, 8);
    rejects(L, ",app", 0, 0);
    rejects(L, "=web", 0, 0);
    rejects(L, "(app)", 0, 0);
    rejects(L, "app=(web)", 4, 4);
    rejects(L, "app==(web)", 5, 5);
    rejects(L, "app===web", 5, 5);
    rejects(L, "app=!web", 4, 4);
    rejects(L, "app=w!b", 5, 5);
    rejects(L, "app=web)", 7, 7);
    rejects(L, "app web", 4, 4);
    rejects(L, "app in (a) , ,b", 13, 13);
}

Test(selector, ordering_operators_are_refused)
{
    /* Kubernetes has Gt/Lt (key>1, key<1); wc_sel_op has no room for them, so they are a 400. */
    rejects(L, "replicas>1", 8, 8);
    rejects(L, "replicas < 1", 9, 9);
    rejects(L, "app=web,x>1", 9, 9);
}

static const pair pod_fields[] = {KV("metadata.name", "a"), KV("metadata.namespace", "ns1"),
                                  KV("spec.nodeName", "n1"), KV("status.phase", "Running"), KV_END};
static const obj pod = {.fields = pod_fields};

Test(selector, field_equality_and_inequality)
{
    cr_assert(matches(F, "metadata.name=a", &pod));
    cr_assert(matches(F, "metadata.name==a", &pod));
    cr_assert_not(matches(F, "metadata.name=b", &pod));
    cr_assert(matches(F, "metadata.name!=b", &pod));
    cr_assert_not(matches(F, "metadata.name!=a", &pod));
    cr_assert(matches(F, "metadata.name=a,spec.nodeName=n1,status.phase!=Pending", &pod));
    cr_assert_not(matches(F, "metadata.name=a,spec.nodeName=n2", &pod));
}

Test(selector, field_absent_reads_as_empty)
{
    cr_assert(matches(F, "spec.missing=", &pod));
    cr_assert(matches(F, "spec.missing==", &pod));
    cr_assert(matches(F, "spec.missing!=x", &pod));
    cr_assert_not(matches(F, "spec.missing=x", &pod));
    cr_assert_not(matches(F, "spec.missing!=", &pod));
    cr_assert(matches(F, "metadata.name!=", &pod));
    cr_assert_not(matches(F, "metadata.name=", &pod));
    cr_assert(matches(F, "metadata.name=", &bare));
    wc_selector *s = parse_ok(F, "x=,y!=z");
    cr_assert(wc_selector_match(s, NULL, NULL), "a NULL lookup is an object with no fields");
    wc_selector_free(s);
}

Test(selector, field_escapes)
{
    static const pair f[] = {KV("metadata.name", "a,b=c\\d"), KV("x", "=,"), KV_END};
    const obj o = {.fields = f};
    cr_assert(matches(F, "metadata.name=a\\,b\\=c\\\\d", &o));
    cr_assert(matches(F, "metadata.name=a\\,b\\=c\\\\d,x=\\=\\,", &o), "\\, does not split");
    cr_assert_not(matches(F, "metadata.name=a\\,b", &o));
    wc_selector *s = parse_ok(F, "k=\\\\,k2=v2"); /* escaped backslash, then a real comma */
    cr_assert_eq(wc_selector_count(s), 2);
    cr_assert_str_eq(wc_selector_exact(s, "k"), "\\");
    cr_assert_str_eq(wc_selector_exact(s, "k2"), "v2");
    wc_selector_free(s);
    s = parse_ok(F, "k=\\\\\\,,k2=v2"); /* \\ then \, */
    cr_assert_eq(wc_selector_count(s), 2);
    cr_assert_str_eq(wc_selector_exact(s, "k"), "\\,");
    wc_selector_free(s);
}

Test(selector, field_bad_escapes_and_bare_specials)
{
    rejects(F, "metadata.name=a\\x", 15, 15);
    rejects(F, "metadata.name=a\\", 15, 15);
    rejects(F, "metadata.name=\\ ", 14, 14);
    rejects(F, "metadata.name=a=b", 15, 15);
    rejects(F, "metadata.name==a=b", 16, 16);
    rejects(F, "a=b,c=d\\q", 7, 7);
    rejects(F, "a=!=b", 3, 3);
}

Test(selector, field_empty_terms_are_skipped)
{
    /* Kubernetes' parseSelector skips empty terms. */
    const char *sels[] = {"a=1,", ",a=1", "a=1,,b=2", ",", ",,", " , a=1 , "};
    static const pair f[] = {KV("a", "1"), KV("b", "2"), KV_END};
    const obj o = {.fields = f};
    for (size_t i = 0; i < sizeof(sels) / sizeof(sels[0]); i++)
        cr_assert(matches(F, sels[i], &o), "'%s'", sels[i]);
    wc_selector *s = parse_ok(F, "a=1,,b=2,");
    cr_assert_eq(wc_selector_count(s), 2);
    wc_selector_free(s);
    s = parse_ok(F, ",");
    cr_assert(wc_selector_empty(s));
    wc_selector_free(s);
}

Test(selector, field_grammar_errors)
{
    rejects(F, "metadata.name", 0, 0);
    rejects(F, "a=1,metadata.name", 4, 4);
    rejects(F, "=x", 0, 0);
    rejects(F, " ==x", 1, 1);
    rejects(F, "a=1, !=x", 5, 5);
    rejects(F, "a b=c", 1, 1);
    rejects(F, "a\\b=c", 1, 1);
    rejects(F, "a<b", 0, 0);
}

Test(selector, field_whitespace_is_trimmed_inner_kept)
{
    static const pair f[] = {KV("spec.nodeName", "n1"), KV("x", "a b"), KV_END};
    const obj o = {.fields = f};
    cr_assert(matches(F, " spec.nodeName = n1 ", &o));
    cr_assert(matches(F, "spec.nodeName\t==\tn1\n,\nx = a b ", &o));
    cr_assert_not(matches(F, "x=ab", &o));
    wc_selector *s = parse_ok(F, " spec.nodeName != n1 ");
    cr_assert_str_eq(wc_selector_key(s, 0), "spec.nodeName");
    wc_selector_free(s);
}

Test(selector, field_first_operator_splits_the_term)
{
    static const pair f[] = {KV("a!b", "c"), KV("a", "!b"), KV_END};
    const obj o = {.fields = f};
    cr_assert(matches(F, "a!b=c", &o), "a lone '!' belongs to the path");
    cr_assert(matches(F, "a=!b", &o), "'!' needs no escape in a value");
    cr_assert(matches(F, "a!=c", &o));
    wc_selector *s = parse_ok(F, "a!!=b");
    cr_assert_str_eq(wc_selector_key(s, 0), "a!");
    cr_assert_null(wc_selector_exact(s, "a!"));
    wc_selector_free(s);
}

Test(selector, exact_match_extraction)
{
    wc_selector *s = parse_ok(F, "metadata.namespace=ns,spec.nodeName==n7,status.phase!=x");
    cr_assert_str_eq(wc_selector_exact(s, "spec.nodeName"), "n7");
    cr_assert_str_eq(wc_selector_exact(s, "metadata.namespace"), "ns");
    cr_assert_null(wc_selector_exact(s, "status.phase"), "!= does not pin a value");
    cr_assert_null(wc_selector_exact(s, "metadata.name"));
    cr_assert_null(wc_selector_exact(s, "spec"), "a whole key, not a prefix");
    cr_assert_null(wc_selector_exact(s, NULL));
    wc_selector_free(s);

    s = parse_ok(F, "spec.nodeName!=n1,spec.nodeName=n2");
    cr_assert_str_eq(wc_selector_exact(s, "spec.nodeName"), "n2");
    wc_selector_free(s);
    s = parse_ok(F, "spec.nodeName=");
    cr_assert_str_eq(wc_selector_exact(s, "spec.nodeName"), "", "the empty value is a value");
    wc_selector_free(s);

    s = parse_ok(L, "app=web,tier==front,x in (a),y,!z,w!=q");
    cr_assert_str_eq(wc_selector_exact(s, "app"), "web");
    cr_assert_str_eq(wc_selector_exact(s, "tier"), "front");
    cr_assert_null(wc_selector_exact(s, "x"), "the header pins = and == only");
    cr_assert_null(wc_selector_exact(s, "y"));
    cr_assert_null(wc_selector_exact(s, "z"));
    cr_assert_null(wc_selector_exact(s, "w"));
    wc_selector_free(s);
    cr_assert_null(wc_selector_exact(NULL, "x"));
}

Test(selector, count_and_keys_in_text_order)
{
    wc_selector *s = parse_ok(L, "b=1, !a, c in (x), example.com/d");
    cr_assert_eq(wc_selector_count(s), 4);
    cr_assert_not(wc_selector_empty(s));
    cr_assert_str_eq(wc_selector_key(s, 0), "b");
    cr_assert_str_eq(wc_selector_key(s, 1), "a");
    cr_assert_str_eq(wc_selector_key(s, 2), "c");
    cr_assert_str_eq(wc_selector_key(s, 3), "example.com/d");
    cr_assert_null(wc_selector_key(s, 4));
    wc_selector_free(s);
}

Test(selector, looked_up_values_need_not_be_nul_terminated)
{
    /* The lookup hands out the first 3 bytes of "webserver" and of "db,x". */
    static const pair l[] = {{"app", "webserver", 3}, {"role", "db,x", 2}, KV_END};
    static const pair f[] = {{"metadata.name", "abcdef", 3}, KV_END};
    const obj o = {.labels = l, .fields = f};
    cr_assert(matches(L, "app=web", &o));
    cr_assert_not(matches(L, "app=webserver", &o));
    cr_assert_not(matches(L, "app=we", &o));
    cr_assert(matches(L, "role in (db)", &o));
    cr_assert(matches(L, "role notin (db.x, d)", &o));
    cr_assert(matches(F, "metadata.name=abc", &o));
    cr_assert(matches(F, "metadata.name!=abcdef", &o));
}

Test(selector, many_requirements_are_anded)
{
    enum { N = 200 };
    static char names[N][16], values[N][16];
    static pair l[N + 1];
    char *sel = malloc(N * 40);
    cr_assert_not_null(sel);
    sel[0] = '\0';
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "k%d", i);
        snprintf(values[i], sizeof(values[i]), "v%d", i);
        l[i] = (pair){names[i], values[i], 0};
        off += (size_t)sprintf(sel + off, "%s%s%s", i ? "," : "", names[i],
                               i % 3 == 0 ? "=" : (i % 3 == 1 ? "!=x" : " in (a,"));
        if (i % 3 == 0)
            off += (size_t)sprintf(sel + off, "%s", values[i]);
        else if (i % 3 == 2)
            off += (size_t)sprintf(sel + off, "%s)", values[i]);
    }
    l[N] = (pair){NULL, NULL, 0};
    const obj o = {.labels = l};
    wc_selector *s = parse_ok(L, sel);
    cr_assert_eq(wc_selector_count(s), N);
    cr_assert(match_obj(s, &o));
    strcpy(values[99], "other"); /* k99=v99: one requirement of many fails */
    cr_assert_not(match_obj(s, &o));
    wc_selector_free(s);
    free(sel);
}

Test(selector, bad_arguments)
{
    wc_sel_error err = {0, NULL};
    cr_assert_eq(wc_selector_parse(L, "a", NULL, &err), WC_EINVAL);
    wc_selector *s = NULL;
    cr_assert_eq(wc_selector_parse((wc_sel_kind)7, "a", &s, &err), WC_EINVAL);
    cr_assert_null(s);
    cr_assert_eq(wc_selector_parse(L, "a=", &s, NULL), 0, "err may be NULL");
    wc_selector_free(s);
    cr_assert_eq(wc_selector_parse(L, "=", &s, NULL), WC_EINVAL, "err may be NULL on failure");
}

typedef struct shared {
    const wc_selector *labels, *fields;
    int hits;
} shared;

static void *match_many(void *arg)
{
    shared *sh = arg;
    static const pair f[] = {KV("spec.nodeName", "n1"), KV_END};
    const obj yes = {.labels = web_labels, .fields = f};
    for (int i = 0; i < 20000; i++) {
        bool a = match_obj(sh->labels, &yes);
        bool b = match_obj(sh->fields, &yes);
        bool c = match_obj(sh->labels, &bare);
        if (a && b && !c)
            sh->hits++;
    }
    return NULL;
}

Test(selector, one_selector_matches_from_many_threads)
{
    enum { T = 8 };
    wc_selector *ls = parse_ok(L, "app in (web,db),tier!=back,!gone,env");
    wc_selector *fs = parse_ok(F, "spec.nodeName=n1");
    pthread_t th[T];
    shared sh[T];
    for (int i = 0; i < T; i++) {
        sh[i] = (shared){.labels = ls, .fields = fs};
        cr_assert_eq(pthread_create(&th[i], NULL, match_many, &sh[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(sh[i].hits, 20000);
    }
    wc_selector_free(ls);
    wc_selector_free(fs);
}
