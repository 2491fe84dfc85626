/*
 * The reference the encoding tests hold the cacher to: how states were encoded and looked up
 * before the cacher stopped keeping a parsed tree per state (a jansson tree, dumped compact).
 * Every encoding the cacher makes must be byte for byte what these make.
 */
#ifndef WCACHED_TEST_CACHER_ORACLE_H
#define WCACHED_TEST_CACHER_ORACLE_H

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcached/b64.h"
#include "wcached/parse.h"

static inline json_t *oracle_parse(const char *value, size_t len)
{
    size_t i = 0;
    while (i < len && (value[i] == ' ' || value[i] == '\n' || value[i] == '\t' || value[i] == '\r'))
        i++;
    if (i == len || value[i] != '{')
        return NULL;
    json_t *obj = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static inline json_t *oracle_lossy(const char *s, size_t n)
{
    if (wc_utf8_valid(s, n))
        return json_stringn(s, n);
    char *buf = malloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            buf[o++] = (char)c;
        } else {
            buf[o++] = (char)0xEF;
            buf[o++] = (char)0xBF;
            buf[o++] = (char)0xBD;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* The /keys encoding of a state. */
static inline char *oracle_keys(const char *key, size_t key_len, const char *value,
                                size_t value_len, int64_t create_rev, int64_t version,
                                int64_t lease, int64_t rev, int64_t mod_rev)
{
    char rv[24];
    snprintf(rv, sizeof(rv), "%" PRId64, rev);
    json_t *o = json_object();
    json_t *md = json_object();
    json_t *name = oracle_lossy(key, key_len);
    json_object_set_new(o, "kind", json_string("KeyValue"));
    json_object_set_new(o, "apiVersion", json_string("wcached/v1"));
    json_object_set(md, "name", name);
    json_object_set_new(md, "resourceVersion", json_string(rv));
    json_object_set_new(o, "metadata", md);
    json_object_set_new(o, "key", name);
    if (!wc_utf8_valid(key, key_len)) {
        char *b = wc_b64_encode(key, key_len, WC_B64_STD);
        json_object_set_new(o, "keyBase64", json_string(b));
        free(b);
    }
    if (wc_utf8_valid(value, value_len)) {
        json_object_set_new(o, "value", json_stringn(value, value_len));
    } else {
        char *b = wc_b64_encode(value, value_len, WC_B64_STD);
        json_object_set_new(o, "valueBase64", json_string(b));
        free(b);
    }
    json_object_set_new(o, "createRevision", json_integer(create_rev));
    json_object_set_new(o, "modRevision", json_integer(mod_rev));
    json_object_set_new(o, "version", json_integer(version));
    json_object_set_new(o, "lease", json_integer(lease));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* The Kubernetes encoding of a value (NULL when it is not a JSON object). */
static inline char *oracle_k8s(const char *value, size_t value_len, int64_t rev)
{
    json_t *obj = oracle_parse(value, value_len);
    if (!obj)
        return NULL;
    char rv[24];
    snprintf(rv, sizeof(rv), "%" PRId64, rev);
    json_t *o = json_copy(obj);
    json_t *md = json_object_get(o, "metadata");
    md = json_is_object(md) ? json_copy(md) : json_object();
    json_object_set_new(md, "resourceVersion", json_string(rv));
    json_object_set_new(o, "metadata", md);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    json_decref(obj);
    return s;
}

/* A field path's value as a string, as selectors saw it: strings as they are, numbers and
 * booleans in their JSON text; NULL when absent (the result is malloc'd). */
static inline char *oracle_field(const char *value, size_t value_len, const char *path, size_t *len)
{
    json_t *obj = oracle_parse(value, value_len);
    json_t *cur = obj;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t seg = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(cur)) {
            cur = NULL;
            break;
        }
        cur = json_object_getn(cur, p, seg);
        p += seg;
        if (*p == '.')
            p++;
    }
    char *out = NULL;
    if (cur && cur != obj) {
        char tmp[64];
        int n = -1;
        if (json_is_string(cur)) {
            *len = json_string_length(cur);
            out = malloc(*len + 1);
            memcpy(out, json_string_value(cur), *len + 1);
        } else if (json_is_integer(cur)) {
            n = snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
        } else if (json_is_real(cur)) {
            n = snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(cur));
        } else if (json_is_boolean(cur)) {
            n = snprintf(tmp, sizeof(tmp), "%s", json_is_true(cur) ? "true" : "false");
        }
        if (n >= 0) {
            *len = (size_t)n;
            out = strdup(tmp);
        }
    }
    json_decref(obj);
    return out;
}

#endif
