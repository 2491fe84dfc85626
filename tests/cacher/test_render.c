/*
 * The encodings and lookups of states made without a kept tree, held byte for byte to the
 * tree-based reference (oracle.h) over varied values: resourceVersion present, absent or in odd
 * places, metadata missing or not an object, unicode and escapes, numbers in every form,
 * blanks, non-object values, keys and values that are not UTF-8; and random objects.
 */
#include "helpers.h"
#include "internal.h"
#include "oracle.h"
#include "wcached/buf.h"

static const char *const VALUES[] = {
    "{}",
    "{\"a\":1}",
    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}",
    "{\"metadata\":{\"resourceVersion\":\"123456\",\"name\":\"first\"},\"spec\":{}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"99\"}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"\"}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":5}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":{\"x\":\"1\"}}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":null}}",
    "{\"metadata\":{\"name\":\"a\"}}",
    "{\"metadata\":{}}",
    "{\"metadata\":null}",
    "{\"metadata\":\"text\"}",
    "{\"metadata\":[1,2]}",
    "{\"metadata\":7,\"spec\":{\"x\":1}}",
    "{\"spec\":{\"x\":1},\"metadata\":{\"name\":\"last\"}}",
    "{\"resourceVersion\":\"top\",\"metadata\":{\"name\":\"a\"}}",
    "{\"metadata\":{\"x\":{\"resourceVersion\":\"nested\"},\"name\":\"a\"}}",
    "{\"spec\":{\"metadata\":{\"resourceVersion\":\"deep\"}}}",
    "{\"metad\\u0061ta\":{\"name\":\"escaped key\"}}",
    "{\"metadata\":{\"resourceV\\u0065rsion\":\"7\",\"name\":\"n\"}}",
    "{\"metadata\":{\"name\":\"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\"}}",
    "{\"metadata\":{\"name\":\"\\u00e9\\u2603\\ud83d\\ude00\"}}",
    "{\"metadata\":{\"name\":\"a\\/b\\\"c\\\\d\\n\\t\\r\\b\\f\\u0001\\u001f\"}}",
    "{\"metadata\":{\"name\":\"<tag>&amp;\\u003c\\u003e\\u0026\"}}",
    "{\"n\":[1.0,1e5,-0,1E-7,0.1,-12.5e+3,9223372036854775807,-9223372036854775808,3.14]}",
    "{\"b\":[true,false,null],\"e\":[],\"o\":{}}",
    "{ \"metadata\" : { \"name\" : \"spaced\" } , \"x\" : [ 1 , 2 ] }",
    "{\n  \"metadata\": {\n    \"name\": \"pretty\",\n    \"resourceVersion\": \"4\"\n  }\n}\n",
    "   {\"metadata\":{\"name\":\"leading blanks\"}}",
    "{\"metadata\":{\"name\":\"trailing newline\"}}\n",
    "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"web\",\"n\":5,\"e\":\"\",\"u\":"
    "\"\\u00e9\"}}}",
    "{\"metadata\":{\"name\":\"a\",\"labels\":[\"not\",\"an\",\"object\"]}}",
    "{\"a\":{\"b\":{\"c\":{\"d\":[{\"metadata\":{\"resourceVersion\":\"x\"}}]}}},\"metadata\":{}}",
    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\",\"resourceVersion2\":\"2\"}}",
    "{\"z\":\"}\",\"metadata\":{\"name\":\"{[\\\"]}\"},\"y\":\"]\"}",
    /* not objects */
    "",
    "plain",
    "[1,2]",
    "\"s\"",
    "42",
    "{broken",
    "{\"a\":1,\"a\":2}",
    "{\"a\":1} trailing",
    "null",
};

static const char *const PATHS[] = {
    "metadata.name",
    "metadata.namespace",
    "metadata.resourceVersion",
    "spec.x",
    "spec",
    "n",
    "a",
    "a.b",
    "a.b.c",
    "metadata",
    "metadata.labels.app",
    "",
    ".",
    "metadata.",
    ".metadata",
    "metadata..name",
    "z",
    "y",
    "b",
    "e",
    "o",
    "resourceVersion",
    "spec.metadata.resourceVersion",
    "x",
    "name",
    "k1",
    "status",
    "spec.x.x",
    "x.spec",
    "status.name",
    "spec.status.x",
};

static void check_value(const char *key, size_t key_len, const char *value, size_t value_len,
                        int64_t mod_rev)
{
    wc_kv_spec s = {.key = key,
                    .key_len = key_len,
                    .value = value,
                    .value_len = value_len,
                    .create_rev = 2,
                    .mod_rev = mod_rev,
                    .version = 3,
                    .lease = 0};
    wc_kv *kv = wc_kv_new(&s, "spec.x");
    cr_assert_not_null(kv);
    json_t *tree = oracle_parse(value, value_len);
    cr_assert_eq(wc_kv_is_object(kv), tree != NULL, "%.*s", (int)value_len, value);
    const int64_t revs[] = {mod_rev, 1, 9, 10, 99999999999LL, mod_rev + 1};
    for (size_t r = 0; r < sizeof(revs) / sizeof(*revs); r++) {
        char *want = oracle_k8s(value, value_len, revs[r]);
        size_t n = wc_kv_encode_at(kv, WC_FAMILY_K8S, revs[r], NULL);
        if (!want) {
            cr_assert_eq(n, 0, "%.*s", (int)value_len, value);
        } else {
            char *got = malloc(n + 1);
            cr_assert_eq(wc_kv_encode_at(kv, WC_FAMILY_K8S, revs[r], got), n);
            got[n] = '\0';
            cr_assert_eq(n, strlen(want), "len %zu want %s got %s", n, want, got);
            cr_assert_str_eq(got, want, "rev %lld", (long long)revs[r]);
            free(got);
        }
        free(want);
        want = oracle_keys(key, key_len, value, value_len, 2, 3, 0, revs[r], revs[r]);
        n = wc_kv_encode_at(kv, WC_FAMILY_KEYS, revs[r], NULL);
        char *got = malloc(n + 1);
        cr_assert_eq(wc_kv_encode_at(kv, WC_FAMILY_KEYS, revs[r], got), n);
        got[n] = '\0';
        cr_assert_eq(n, strlen(want), "want %s got %s", want, got);
        cr_assert_eq(memcmp(got, want, n), 0, "want %s got %s", want, got);
        free(got);
        free(want);
    }
    /* The public ones: the state's own revision. */
    size_t len = 0;
    char *mine = wc_kv_encode_new(kv, WC_FAMILY_K8S, &len);
    char *want = oracle_k8s(value, value_len, mod_rev);
    cr_assert((mine == NULL) == (want == NULL));
    if (want)
        cr_assert_str_eq(mine, want);
    const char *kept = wc_kv_render(kv, WC_FAMILY_K8S, &len);
    if (want)
        cr_assert_str_eq(kept, want);
    else
        cr_assert_null(kept);
    free(mine);
    free(want);
    for (size_t p = 0; p < sizeof(PATHS) / sizeof(*PATHS); p++) {
        size_t wl = 0, gl = 0;
        char *w = oracle_field(value, value_len, PATHS[p], &wl);
        char tmp[64];
        char *heap = NULL;
        const char *g = wc_kv_field(kv, PATHS[p], tmp, sizeof(tmp), &heap, &gl);
        cr_assert((w == NULL) == (g == NULL), "%s in %.*s: %s", PATHS[p], (int)value_len, value,
                  w ? w : "(absent)");
        if (w) {
            cr_assert_eq(gl, wl, "%s", PATHS[p]);
            cr_assert_eq(memcmp(g, w, wl), 0, "%s: %s", PATHS[p], w);
        }
        free(w);
        free(heap);
    }
    size_t il = 0;
    char *iw = oracle_field(value, value_len, "spec.x", &il);
    if (iw)
        cr_assert_str_eq(kv->index_value, iw);
    else
        cr_assert_null(kv->index_value);
    free(iw);
    if (tree) {
        json_t *labels = json_object_get(json_object_get(tree, "metadata"), "labels");
        const char *names[] = {"app", "n", "e", "u", "missing", "app.kubernetes.io/name"};
        for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
            json_t *v = json_object_get(labels, names[i]);
            size_t gl = 0;
            char tmp[64];
            char *heap = NULL;
            const char *g = wc_kv_label(kv, names[i], tmp, sizeof(tmp), &heap, &gl);
            cr_assert_eq(g != NULL, json_is_string(v), "label %s", names[i]);
            if (g) {
                cr_assert_eq(gl, json_string_length(v));
                cr_assert_eq(memcmp(g, json_string_value(v), gl), 0);
            }
            free(heap);
        }
    }
    json_decref(tree);
    wc_kv_unref(kv);
}

Test(render, every_encoding_matches_the_tree_based_one)
{
    for (size_t i = 0; i < sizeof(VALUES) / sizeof(*VALUES); i++) {
        check_value("/registry/pods/ns/a", 18, VALUES[i], strlen(VALUES[i]), 12345);
        check_value("/k", 2, VALUES[i], strlen(VALUES[i]), 7);
    }
}

Test(render, keys_and_values_that_are_not_utf8_or_hold_control_bytes)
{
    const char key1[] = "/bin\xff\xfe/k\x01";
    const char val1[] = "v\x00\x01\x1f\"\\\x7f\xc3";
    check_value(key1, sizeof(key1) - 1, val1, sizeof(val1) - 1, 3);
    const char val2[] = "ok \x00 nul \x1b\x1f\x7f \xc3\xa9";
    check_value("/k\n\t", 4, val2, sizeof(val2) - 1, 3);
    check_value("", 0, "", 0, 1);
}

/* Random objects: nested objects and arrays of strings (with escapes and unicode), numbers and
 * literals, with metadata and resourceVersion placed anywhere or not at all. */
static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void gen_string(wc_buf *b)
{
    static const char *const parts[] = {"a",
                                        "b",
                                        "name",
                                        "\\\"",
                                        "\\\\",
                                        "\\/",
                                        "\\n",
                                        "\\u00e9",
                                        "\\ud83d\\ude00",
                                        "\xc3\xa9",
                                        "<",
                                        "\\u003c",
                                        " ",
                                        "resourceVersion",
                                        "metadata",
                                        "0",
                                        "\\u0041",
                                        "}",
                                        "]"};
    wc_buf_puts(b, "\"");
    for (unsigned i = rnd(5); i > 0; i--)
        wc_buf_puts(b, parts[rnd(sizeof(parts) / sizeof(*parts))]);
    wc_buf_puts(b, "\"");
}

static void gen_value(wc_buf *b, int depth);

static void gen_object(wc_buf *b, int depth, bool top)
{
    static const char *const keys[] = {"metadata", "resourceVersion", "name",     "spec",
                                       "x",        "labels",          "k\\u0031", "status"};
    wc_buf_puts(b, rnd(4) == 0 ? "{ " : "{");
    unsigned n = rnd(5);
    bool used[8] = {false};
    bool first = true;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = rnd(8);
        if (used[k])
            continue;
        used[k] = true;
        if (!first)
            wc_buf_puts(b, rnd(6) == 0 ? " , " : ",");
        first = false;
        wc_buf_printf(b, "\"%s\":", keys[k]);
        if (top && k == 0 && rnd(3)) {
            /* a metadata object, maybe with a resourceVersion */
            wc_buf_puts(b, "{");
            bool f2 = true;
            if (rnd(2)) {
                wc_buf_puts(b, "\"name\":");
                gen_string(b);
                f2 = false;
            }
            if (rnd(2)) {
                wc_buf_printf(b, "%s\"resourceVersion\":", f2 ? "" : ",");
                if (rnd(4))
                    wc_buf_printf(b, "\"%u\"", rnd(100000));
                else
                    gen_value(b, depth + 1);
                f2 = false;
            }
            if (rnd(2)) {
                wc_buf_printf(b, "%s\"labels\":{\"app\":", f2 ? "" : ",");
                gen_string(b);
                wc_buf_puts(b, "}");
            }
            wc_buf_puts(b, "}");
        } else {
            gen_value(b, depth + 1);
        }
    }
    wc_buf_puts(b, "}");
}

static void gen_value(wc_buf *b, int depth)
{
    static const char *const nums[] = {"0",   "-1",  "1.5",  "1e3",   "2E-2", "-0.0",
                                       "100", "1.0", "true", "false", "null"};
    unsigned k = depth > 3 ? rnd(2) : rnd(4);
    if (k == 0) {
        gen_string(b);
    } else if (k == 1) {
        wc_buf_puts(b, nums[rnd(sizeof(nums) / sizeof(*nums))]);
    } else if (k == 2) {
        gen_object(b, depth, false);
    } else {
        wc_buf_puts(b, "[");
        for (unsigned i = rnd(3); i > 0; i--) {
            gen_value(b, depth + 1);
            if (i > 1)
                wc_buf_puts(b, ",");
        }
        wc_buf_puts(b, "]");
    }
}

Test(render, random_objects_match_the_tree_based_encoding)
{
    for (int i = 0; i < 3000; i++) {
        wc_buf b = {0};
        gen_object(&b, 0, true);
        if (rnd(5) == 0)
            wc_buf_puts(&b, "\n");
        cr_assert_not(b.oom);
        int64_t rev = 1 + rnd(1000000);
        check_value("/r", 2, b.p, b.len, rev);
        /* the scan's state is the tree's, field for field (index value included) */
        wc_kv_spec s = {.key = "/r",
                        .key_len = 2,
                        .value = b.p,
                        .value_len = b.len,
                        .create_rev = 1,
                        .mod_rev = rev,
                        .version = 1};
        wc_kv *scanned = wc_kv_new(&s, "metadata.name"),
              *tree = wc_kv_new_tree(&s, "metadata.name");
        cr_assert(wc_kv_same(scanned, tree), "%.*s", (int)b.len, b.p);
        wc_kv_unref(scanned);
        wc_kv_unref(tree);
        wc_buf_free(&b);
    }
}

Test(render, plain_objects_splice_the_raw_value)
{
    /* Written as jansson writes it: no copy of the encoding is kept, only a few bytes. */
    const char *v = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"y\"}},"
                    "\"spec\":{\"nodeName\":\"n1\"}}";
    wc_kv_spec s = spec_of("/p", v, 42);
    wc_kv *kv = wc_kv_new(&s, NULL);
    cr_assert_eq(kv->data + kv->base, kv->value);
    cr_assert_leq(kv->mid_len, 24);
    wc_kv_unref(kv);
    /* Written otherwise: the encoding less its digits is kept instead. */
    s = spec_of("/p",
                "{ \"metadata\" : { \"name\" : \"a\" } , \"pad\" : "
                "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxx\" , \"z\" : 1 }",
                42);
    kv = wc_kv_new(&s, NULL);
    cr_assert_neq(kv->data + kv->base, kv->value);
    wc_kv_unref(kv);
}

Test(render, a_string_escaped_is_as_long_as_it_was_measured_and_jansson_writes_it)
{
    /* Every byte value, alone and in each place of a run longer than a word, escaped and
     * measured: the same length, and jansson's bytes. */
    char s[20], out[20 * 6 + 1];
    for (unsigned c = 0; c < 128; c++) { /* jansson takes UTF-8 only */
        for (size_t at = 0; at < sizeof(s); at++) {
            memset(s, 'a', sizeof(s));
            s[at] = (char)c;
            size_t n = wc_json_escape_raw(s, sizeof(s), out);
            cr_assert_eq(wc_json_escape_raw(s, sizeof(s), NULL), n, "byte %02x at %zu", c, at);
            json_t *str = json_stringn(s, sizeof(s));
            cr_assert_not_null(str);
            char *want = json_dumps(str, JSON_ENCODE_ANY);
            cr_assert_eq(strlen(want), n + 2, "byte %02x at %zu", c, at);
            cr_assert_eq(memcmp(want + 1, out, n), 0, "byte %02x at %zu", c, at);
            free(want);
            json_decref(str);
        }
    }
}
