/* States, events and their shared encodings. */
#include "helpers.h"
#include "internal.h"

Test(kv, copies_key_and_value_and_parses_objects)
{
    char key[] = "/a", val[] = "{\"x\":1}";
    wc_kv_spec s = spec_of(key, val, 7);
    wc_kv *kv = wc_kv_new(&s, NULL);
    key[1] = 'z';
    val[2] = 'y';
    size_t len;
    cr_assert_str_eq(wc_kv_key(kv, &len), "/a");
    cr_assert_eq(len, 2);
    cr_assert_str_eq(wc_kv_value(kv, NULL), "{\"x\":1}");
    cr_assert(wc_kv_is_object(kv));
    cr_assert_eq(wc_kv_mod_rev(kv), 7);
    wc_kv_unref(kv);
}

Test(kv, non_object_values_are_not_objects)
{
    const char *vals[] = {"plain", "[1,2]", "\"s\"", "{broken", "", "42"};
    for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++) {
        wc_kv_spec s = spec_of("/k", vals[i], 1);
        wc_kv *kv = wc_kv_new(&s, NULL);
        cr_assert_not(wc_kv_is_object(kv), "%s", vals[i]);
        size_t len = 99;
        cr_assert_null(wc_kv_render(kv, WC_FAMILY_K8S, &len));
        cr_assert_eq(len, 0);
        cr_assert_not_null(wc_kv_render(kv, WC_FAMILY_KEYS, &len));
        wc_kv_unref(kv);
    }
}

Test(kv, index_value_from_string_and_number_fields)
{
    wc_kv_spec s = spec_of("/p", "{\"spec\":{\"nodeName\":\"n1\",\"port\":80}}", 1);
    wc_kv *kv = wc_kv_new(&s, "spec.nodeName");
    cr_assert_str_eq(kv->index_value, "n1");
    wc_kv_unref(kv);
    kv = wc_kv_new(&s, "spec.port");
    cr_assert_str_eq(kv->index_value, "80");
    wc_kv_unref(kv);
    kv = wc_kv_new(&s, "spec.missing");
    cr_assert_null(kv->index_value);
    wc_kv_unref(kv);
}

Test(kv, keys_family_encoding_has_contract_fields)
{
    wc_kv_spec s = {.key = "/k",
                    .key_len = 2,
                    .value = "hello",
                    .value_len = 5,
                    .create_rev = 3,
                    .mod_rev = 9,
                    .version = 4,
                    .lease = 77};
    wc_kv *kv = wc_kv_new(&s, NULL);
    size_t len;
    const char *enc = wc_kv_render(kv, WC_FAMILY_KEYS, &len);
    json_t *j = json_loadb(enc, len, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "KeyValue");
    cr_assert_str_eq(json_string_value(json_object_get(j, "apiVersion")), "wcached/v1");
    json_t *md = json_object_get(j, "metadata");
    cr_assert_str_eq(json_string_value(json_object_get(md, "name")), "/k");
    cr_assert_str_eq(json_string_value(json_object_get(md, "resourceVersion")), "9");
    cr_assert_str_eq(json_string_value(json_object_get(j, "value")), "hello");
    cr_assert_eq(json_integer_value(json_object_get(j, "createRevision")), 3);
    cr_assert_eq(json_integer_value(json_object_get(j, "modRevision")), 9);
    cr_assert_eq(json_integer_value(json_object_get(j, "version")), 4);
    cr_assert_eq(json_integer_value(json_object_get(j, "lease")), 77);
    json_decref(j);
    wc_kv_unref(kv);
}

Test(kv, invalid_utf8_value_comes_as_base64)
{
    const char raw[] = {'a', (char)0xff, 0, 'b'};
    wc_kv_spec s = {.key = "/bin", .key_len = 4, .value = raw, .value_len = 4, .mod_rev = 2};
    wc_kv *kv = wc_kv_new(&s, NULL);
    size_t len;
    const char *enc = wc_kv_render(kv, WC_FAMILY_KEYS, &len);
    json_t *j = json_loadb(enc, len, 0, NULL);
    cr_assert_null(json_object_get(j, "value"));
    cr_assert_str_eq(json_string_value(json_object_get(j, "valueBase64")), "Yf8AYg==");
    json_decref(j);
    wc_kv_unref(kv);
}

Test(kv, overlong_utf8_and_surrogates_are_not_valid)
{
    const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
    for (size_t i = 0; i < 4; i++) {
        wc_kv_spec s = {.key = "/u", .key_len = 2, .value = bad[i], .value_len = strlen(bad[i])};
        wc_kv *kv = wc_kv_new(&s, NULL);
        size_t len;
        const char *enc = wc_kv_render(kv, WC_FAMILY_KEYS, &len);
        cr_assert_not_null(strstr(enc, "valueBase64"), "case %zu: %s", i, enc);
        wc_kv_unref(kv);
    }
    wc_kv_spec ok = {.key = "/u", .key_len = 2, .value = "h\xc3\xa9\xe2\x82\xac", .value_len = 6};
    wc_kv *kv = wc_kv_new(&ok, NULL);
    size_t len;
    cr_assert_null(strstr(wc_kv_render(kv, WC_FAMILY_KEYS, &len), "valueBase64"));
    wc_kv_unref(kv);
}

Test(kv, k8s_encoding_sets_resource_version_and_leaves_object_alone)
{
    wc_kv_spec s = spec_of("/p",
                           "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\","
                           "\"resourceVersion\":\"1\"}}",
                           12);
    wc_kv *kv = wc_kv_new(&s, NULL);
    size_t len;
    const char *a = wc_kv_render(kv, WC_FAMILY_K8S, &len);
    cr_assert_str_eq(a,
                     "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"12\"}}");
    /* The raw value is not modified. */
    cr_assert_not_null(strstr(wc_kv_value(kv, NULL), "\"resourceVersion\":\"1\""));
    /* Kept by wc_kv_render: the same bytes come back. */
    cr_assert_eq(wc_kv_render(kv, WC_FAMILY_K8S, &len), a);
    wc_kv_unref(kv);
}

Test(kv, deleted_encoding_carries_the_deletion_revision)
{
    wc_kv_spec s = spec_of("/p", "{\"metadata\":{\"name\":\"a\"}}", 5);
    wc_kv *kv = wc_kv_new(&s, NULL);
    wc_event *ev = wc_event_new(WC_EV_DELETED, 8, NULL, kv);
    wc_kv_unref(kv);
    size_t len;
    char d[128];
    len = wc_kv_encode_at(ev->prev, WC_FAMILY_K8S, ev->rev, d);
    d[len] = '\0';
    cr_assert_str_eq(d, "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"8\"}}");
    const char *k = wc_event_keys(ev, true, &len);
    cr_assert_not_null(strstr(k, "\"modRevision\":8"), "%s", k);
    cr_assert_eq(wc_event_keys(ev, true, &len), k); /* made once, shared */
    cr_assert_eq(wc_event_type(ev), WC_EV_DELETED);
    cr_assert_eq(wc_event_rev(ev), 8);
    cr_assert_null(wc_event_kv(ev));
    cr_assert_not_null(wc_event_prev(ev));
    wc_event_unref(ev);
}

Test(kv, references_keep_states_alive_until_the_last_release)
{
    wc_kv_spec s = spec_of("/p", "{}", 1);
    wc_kv *kv = wc_kv_new(&s, NULL);
    wc_event *ev = wc_event_new(WC_EV_ADDED, 1, kv, NULL);
    wc_kv_unref(kv); /* the event still holds it */
    size_t len;
    cr_assert_not_null(wc_kv_render(ev->kv, WC_FAMILY_KEYS, &len));
    wc_event *again = wc_event_ref(ev);
    wc_event_unref(ev);
    cr_assert_str_eq(wc_kv_key(wc_event_kv(again), NULL), "/p");
    wc_event_unref(again); /* ASan reports a leak or a use-after-free if refcounts are wrong */
}

/* ---- the scan that makes the Kubernetes encoding without a tree ------------------------- */

/* The state the scan makes is, field for field and byte for byte, the one jansson's tree
 * makes; and the scan took the value (`scanned`) or declined it to jansson. */
static void assert_scan(const char *value, bool scanned, const char *index_field)
{
    for (int64_t rev = 1; rev <= 1000000000000; rev *= 1000) {
        wc_kv_spec s = spec_of("/k", value, rev);
        wc_kv *fast = wc_kv_new(&s, index_field);
        wc_kv *tree = wc_kv_new_tree(&s, index_field);
        cr_assert(wc_kv_same(fast, tree), "%s at %lld", value, (long long)rev);
        char rv[24], out[4096];
        size_t rvn = (size_t)snprintf(rv, sizeof(rv), "%lld", (long long)rev), out_len, at;
        cr_assert_lt(strlen(value) + rvn + WC_JSON_K8S_EXTRA, sizeof(out));
        bool took = wc_json_k8s_encode(value, strlen(value), rv, rvn, out, &out_len, &at);
        cr_assert_eq(took, scanned, "%s", value);
        if (took) {
            char want[4096];
            size_t n = wc_kv_encode_at(tree, WC_FAMILY_K8S, rev, want);
            cr_assert_eq(out_len, n, "%s", value);
            cr_assert_arr_eq(out, want, n, "%.*s against %.*s", (int)out_len, out, (int)n, want);
            cr_assert_arr_eq(out + at, rv, rvn);
        }
        wc_kv_unref(fast);
        wc_kv_unref(tree);
    }
}

Test(kv, the_scan_puts_the_revision_where_jansson_does)
{
    assert_scan("{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"17\"},\"x\":1}", true, NULL);
    assert_scan("{\"metadata\":{\"name\":\"a\"},\"x\":[1,2]}", true, NULL);
    assert_scan("{\"metadata\":{}}", true, NULL);
    assert_scan("{}", true, NULL);
    assert_scan("{\"seq\":5,\"pad\":\"xxxx\"}\n", true, NULL);
    assert_scan("{\"x\":{\"metadata\":{\"a\":1}}}", true, NULL); /* only the top's metadata */
    assert_scan("{\"metadata\":\"str\",\"b\":true}", true, NULL);
    assert_scan("{\"metadata\":null}", true, NULL);
    assert_scan("{\"metadata\":[1,{\"resourceVersion\":\"3\"}],\"z\":false}", true, NULL);
    assert_scan("{\"metadata\":{\"resourceVersion\":12,\"b\":null}}", true, NULL);
    assert_scan("{\"metadata\":{\"resourceVersion\":{\"deep\":[\"x\"]}}}", true, NULL);
    assert_scan("{\"metadata\":{\"labels\":{\"metadata\":\"1\",\"resourceVersion\":\"2\"}}}", true,
                NULL);
    assert_scan("{\"a\":-5,\"b\":0,\"c\":-123456789012345678,\"d\":[],\"e\":{}}", true, NULL);
}

Test(kv, the_scan_drops_blanks_and_keeps_jansson_escapes)
{
    assert_scan(" \t{ \"a\" : [ 1 , 2 ] ,\r\n \"metadata\" : { \"name\" : \"n\" } }\n ", true,
                NULL);
    assert_scan("{\"s\":\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001F\\u007F? \"}", false, NULL);
    assert_scan("{\"s\":\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001F\"}", true, NULL);
    assert_scan("{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \x7f\"}", true, NULL);
    assert_scan("{\"a\\u001Fb\":1,\"a\\u001fb\":2}", false, NULL); /* lower-case hex */
}

Test(kv, the_scan_leaves_to_jansson_what_it_does_not_write_as_jansson)
{
    const char *declined[] = {
        "{\"r\":1.5}",                               /* reals */
        "{\"r\":1e3}",                               /* ... */
        "{\"r\":-0}",                                /* jansson writes 0 */
        "{\"r\":1234567890123456789}",               /* 19 digits */
        "{\"r\":12345678901234567890123}",           /* too big for jansson as well */
        "{\"s\":\"a\\/b\"}",                         /* jansson writes '/' */
        "{\"s\":\"\\u00e9\"}",                       /* jansson writes UTF-8 */
        "{\"s\":\"\\u0000\"}",                       /* jansson refuses it */
        "{\"s\":\"\\u000a\"}",                       /* jansson writes \n */
        "{\"a\":1,\"a\":2}",                         /* duplicates: jansson refuses them */
        "{\"metadata\":{},\"metadata\":{}}",         /* ... */
        "{\"m\":{\"x\":1,\"y\":{\"x\":2},\"x\":3}}", /* ... nested */
        "{\"a\":1,}",                                /* malformed */
        "{\"a\":01}",                                /* ... */
        "{\"a\":tru}",                               /* ... */
        "{\"a\":1} x",                               /* ... */
        "{\"a\":\"\x01\"}",                          /* a raw control character */
        "{\"a\":[1,2}",                              /* ... */
        "{\"a\" 1}",                                 /* ... */
        "{\"a\":1",                                  /* ... */
        "{",                                         /* ... */
        "{\"a\":-}",                                 /* ... */
        "{\"a\":\"x}",                               /* ... */
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(*declined); i++)
        assert_scan(declined[i], false, NULL);
    /* Invalid UTF-8 is jansson's to refuse; the scan is not asked. */
    wc_kv_spec s = spec_of("/k", "{\"a\":\"\xc3\"}", 1);
    wc_kv *kv = wc_kv_new(&s, NULL);
    cr_assert_not(wc_kv_is_object(kv));
    wc_kv_unref(kv);
}

/* {"a":[[...]]} with `levels` arrays. */
static void nested(char *out, int levels)
{
    char *p = out + sprintf(out, "{\"a\":");
    memset(p, '[', (size_t)levels);
    memset(p + levels, ']', (size_t)levels);
    strcpy(p + 2 * levels, "}");
}

Test(kv, the_scan_bounds_depth_and_keys_and_jansson_takes_the_rest)
{
    char deep[400];
    nested(deep, 70);
    assert_scan(deep, false, NULL); /* 71 levels: past the scan's 64, within jansson's */
    nested(deep, 63);
    assert_scan(deep, true, NULL);
    char many[2000] = "{";
    for (int i = 0; i < 129; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"k%d\":%d", i ? "," : "", i,
                 i);
    strcat(many, "}");
    assert_scan(many, false, NULL); /* 129 keys open at once: past the duplicate check's 128 */
    strcpy(strstr(many, ",\"k128\""), "}");
    assert_scan(many, true, NULL);
}

Test(kv, the_scan_finds_the_index_value_as_the_tree_does)
{
    assert_scan("{\"spec\":{\"nodeName\":\"n1\"}}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":\"a\\\"\\n\\u0001b\"}}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":-42}}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":true}}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":null}}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":{}}}", true, "spec.nodeName");
    assert_scan("{\"spec\":\"x\"}", true, "spec.nodeName");
    assert_scan("{\"spec\":{\"nodeName\":2.5}}", false, "spec.nodeName");
    assert_scan("{\"metadata\":{\"resourceVersion\":\"9\"}}", true, "metadata.resourceVersion");
    char long_name[300] = "{\"spec\":{\"nodeName\":\"";
    for (int i = 0; i < 200; i++)
        strcat(long_name, i % 50 ? "x" : "\\n");
    strcat(long_name, "\"}}");
    assert_scan(long_name, true, "spec.nodeName"); /* unescaped into a buffer of its own */
}
