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
