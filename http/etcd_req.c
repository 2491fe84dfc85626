/*
 * Decoding etcd's gateway requests: a range body and a watch body's lines (etcd_req.h). The
 * field readers take a field by its proto name or its camelCase one, null as absent, and fail
 * with the message etcd's gateway (Go's jsonpb) gives for the same input where a client could
 * tell; etcd_api.c answers with it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_req.h"
#include "wcached/b64.h"
#include "wcached/err.h"
#include "wcached/parse.h"

static json_t *field(json_t *o, const char *name, const char *camel)
{
    json_t *v = json_object_get(o, name);
    if (!v && camel)
        v = json_object_get(o, camel);
    return v && !json_is_null(v) ? v : NULL;
}

/* 0, or WC_EINVAL with a message in err, or WC_ENOMEM. *out is malloc'd (NUL-terminated),
 * NULL if absent. */
static int get_bytes(json_t *o, const char *name, const char *camel, char **out, size_t *len,
                     char *err, size_t err_len)
{
    *out = NULL;
    *len = 0;
    json_t *v = field(o, name, camel);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, err_len, "json: cannot unmarshal %s into Go value of type []uint8",
                 json_is_number(v) ? "number" : "value");
        return WC_EINVAL;
    }
    size_t n = json_string_length(v);
    char *d = malloc(3 * (n / 4) + 3);
    if (!d)
        return WC_ENOMEM;
    if (wc_b64_decode_to(json_string_value(v), n, d, len, WC_B64_STD) != 0) {
        free(d);
        snprintf(err, err_len, "illegal base64 data at input byte 0");
        return WC_EINVAL;
    }
    d[*len] = '\0';
    *out = d;
    return 0;
}

static int get_i64(json_t *o, const char *name, const char *camel, int64_t *out, char *err,
                   size_t err_len)
{
    *out = 0;
    json_t *v = field(o, name, camel);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        wc_parse_i64(json_string_value(v), json_string_length(v), INT64_MIN, INT64_MAX, out) == 0)
        return 0;
    snprintf(err, err_len, "bad value for %s: not an int64", name);
    return WC_EINVAL;
}

static int get_bool(json_t *o, const char *name, const char *camel, bool *out, char *err,
                    size_t err_len)
{
    *out = false;
    json_t *v = field(o, name, camel);
    if (!v)
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    snprintf(err, err_len, "bad value for %s: not a bool", name);
    return WC_EINVAL;
}

/* An enum given by name (one of `names`, n of them) or number. */
static int get_enum(json_t *o, const char *name, const char *camel, const char *const *names, int n,
                    const char *type, int *out, char *err, size_t err_len)
{
    *out = 0;
    json_t *v = field(o, name, camel);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v))
        for (int i = 0; i < n; i++)
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return 0;
            }
    snprintf(err, err_len, "unknown value %s for enum %s",
             json_is_string(v) ? json_string_value(v) : "?", type);
    return WC_EINVAL;
}

/* ---------------------------------------------------------------------------------------
 * Key ranges
 * ------------------------------------------------------------------------------------- */

bool wc_http_etcd_in_prefix(const char *prefix, const char *key, size_t key_len, const char *end,
                            size_t end_len)
{
    const char *p = prefix ? prefix : "";
    size_t pl = strlen(p);
    if (pl == 0)
        return true;
    if (key_len < pl || memcmp(key, p, pl) != 0)
        return false;
    if (!end)
        return true;
    /* end must not pass the prefix's end: the prefix with its last byte below 0xff raised; a
     * prefix of 0xff bytes only has none (its keys go on to the key space's end). */
    size_t el = pl;
    while (el > 0 && (unsigned char)p[el - 1] == 0xff)
        el--;
    if (el == 0)
        return true;
    if (end_len == 0)
        return false; /* to the end of the key space */
    char pe[el];
    memcpy(pe, p, el);
    pe[el - 1] = (char)((unsigned char)pe[el - 1] + 1);
    size_t m = end_len < el ? end_len : el;
    int c = memcmp(end, pe, m);
    return c < 0 || (c == 0 && end_len <= el);
}

void wc_http_etcd_range_form(const char *end, size_t end_len, const char **out, size_t *out_len)
{
    if (!end || end_len == 0) {
        *out = NULL;
        *out_len = 0;
    } else if (end_len == 1 && end[0] == '\0') {
        *out = "";
        *out_len = 0;
    } else {
        *out = end;
        *out_len = end_len;
    }
}

/* ---------------------------------------------------------------------------------------
 * Range
 * ------------------------------------------------------------------------------------- */

void wc_http_etcd_range_free(wc_http_etcd_range *q)
{
    free(q->key);
    free(q->end);
    q->key = q->end = NULL;
}

static const char *const SORT_ORDERS[] = {"NONE", "ASCEND", "DESCEND"};
static const char *const SORT_TARGETS[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};

int wc_http_etcd_range_parse(const char *p, size_t n, wc_http_etcd_range *q, char *err,
                             size_t err_len)
{
    memset(q, 0, sizeof(*q));
    json_error_t je;
    json_t *o = json_loadb(p ? p : "", n, JSON_DECODE_ANY, &je);
    if (!o || !json_is_object(o)) {
        snprintf(err, err_len, "%s",
                 o ? "json: cannot unmarshal value into Go value of type "
                     "etcdserverpb.RangeRequest"
                   : je.text);
        json_decref(o);
        return WC_EINVAL;
    }
    int rc = get_bytes(o, "key", NULL, &q->key, &q->key_len, err, err_len);
    if (rc == 0)
        rc = get_bytes(o, "range_end", "rangeEnd", &q->end, &q->end_len, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "limit", NULL, &q->limit, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "revision", NULL, &q->revision, err, err_len);
    if (rc == 0)
        rc = get_enum(o, "sort_order", "sortOrder", SORT_ORDERS, 3,
                      "etcdserverpb.RangeRequest_SortOrder", &q->sort_order, err, err_len);
    if (rc == 0)
        rc = get_enum(o, "sort_target", "sortTarget", SORT_TARGETS, 5,
                      "etcdserverpb.RangeRequest_SortTarget", &q->sort_target, err, err_len);
    if (rc == 0)
        rc = get_bool(o, "serializable", NULL, &q->serializable, err, err_len);
    if (rc == 0)
        rc = get_bool(o, "keys_only", "keysOnly", &q->keys_only, err, err_len);
    if (rc == 0)
        rc = get_bool(o, "count_only", "countOnly", &q->count_only, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "min_mod_revision", "minModRevision", &q->min_mod, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "max_mod_revision", "maxModRevision", &q->max_mod, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "min_create_revision", "minCreateRevision", &q->min_create, err, err_len);
    if (rc == 0)
        rc = get_i64(o, "max_create_revision", "maxCreateRevision", &q->max_create, err, err_len);
    json_decref(o);
    if (rc == 0 &&
        (q->sort_order < 0 || q->sort_order > 2 || q->sort_target < 0 || q->sort_target > 4)) {
        snprintf(err, err_len, "unknown sort order or target");
        rc = WC_EINVAL;
    }
    if (rc == 0 && q->key_len == 0) {
        snprintf(err, err_len, "etcdserver: key is not provided");
        rc = WC_EINVAL;
    }
    if (rc != 0)
        wc_http_etcd_range_free(q);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Watch lines
 * ------------------------------------------------------------------------------------- */

void wc_http_etcd_watch_free(wc_http_etcd_watch_req *r)
{
    free(r->key);
    free(r->end);
    r->key = r->end = NULL;
}

/* A create_request's fields into r. 0, WC_EINVAL or WC_ENOMEM (r holding nothing then). */
static int parse_create(json_t *req, wc_http_etcd_watch_req *r)
{
    char err[256];
    char *end = NULL;
    size_t end_len = 0;
    int rc = get_bytes(req, "key", NULL, &r->key, &r->key_len, err, sizeof(err));
    if (rc == 0)
        rc = get_bytes(req, "range_end", "rangeEnd", &end, &end_len, err, sizeof(err));
    if (rc == 0)
        rc = get_i64(req, "start_revision", "startRevision", &r->start_revision, err, sizeof(err));
    if (rc == 0)
        rc = get_bool(req, "prev_kv", "prevKv", &r->prev_kv, err, sizeof(err));
    if (rc == 0)
        rc = get_bool(req, "progress_notify", "progressNotify", &r->progress_notify, err,
                      sizeof(err));
    r->watch_id = -1;
    if (rc == 0 && (json_object_get(req, "watch_id") || json_object_get(req, "watchId")))
        rc = get_i64(req, "watch_id", "watchId", &r->watch_id, err, sizeof(err));
    json_t *filters = json_object_get(req, "filters");
    size_t i;
    json_t *f;
    if (rc == 0 && json_is_array(filters))
        json_array_foreach(filters, i, f)
        {
            if ((json_is_string(f) && strcmp(json_string_value(f), "NOPUT") == 0) ||
                (json_is_integer(f) && json_integer_value(f) == 0))
                r->noput = true;
            else if ((json_is_string(f) && strcmp(json_string_value(f), "NODELETE") == 0) ||
                     (json_is_integer(f) && json_integer_value(f) == 1))
                r->nodelete = true;
        }
    /* The range as etcd reads it. */
    const char *form = NULL;
    size_t form_len = 0;
    if (rc == 0)
        wc_http_etcd_range_form(end, end_len, &form, &form_len);
    if (form && form_len) {
        r->end = end;
        end = NULL;
    } else if (form) {
        r->end = strdup("");
        rc = r->end ? 0 : WC_ENOMEM;
    }
    r->end_len = form_len;
    free(end);
    if (rc != 0)
        wc_http_etcd_watch_free(r);
    return rc;
}

wc_http_etcd_watch_kind wc_http_etcd_watch_parse(const char *p, size_t n, wc_http_etcd_watch_req *r,
                                                 bool *oom)
{
    memset(r, 0, sizeof(*r));
    *oom = false;
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    while (n && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++, n--;
    if (n == 0)
        return r->kind = WC_HTTP_ETCD_IGNORED;
    json_t *o = json_loadb(p, n, 0, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return r->kind = WC_HTTP_ETCD_BAD;
    }
    json_t *c = json_object_get(o, "create_request");
    json_t *x = json_object_get(o, "cancel_request");
    if (!c)
        c = json_object_get(o, "createRequest");
    if (!x)
        x = json_object_get(o, "cancelRequest");
    r->kind = WC_HTTP_ETCD_IGNORED;
    if (json_is_object(c)) {
        int rc = parse_create(c, r);
        *oom = rc == WC_ENOMEM;
        r->kind = rc == 0 ? WC_HTTP_ETCD_CREATE : WC_HTTP_ETCD_BAD;
    } else if (json_is_object(x)) {
        char err[128];
        r->kind = get_i64(x, "watch_id", "watchId", &r->watch_id, err, sizeof(err)) == 0
                      ? WC_HTTP_ETCD_CANCEL
                      : WC_HTTP_ETCD_BAD;
    } else if (json_object_get(o, "progress_request") || json_object_get(o, "progressRequest")) {
        r->kind = WC_HTTP_ETCD_PROGRESS;
    }
    json_decref(o);
    return r->kind;
}
