/*
 * Server-side printing: the meta.k8s.io/v1 Table behind `kubectl get` (see table.h).
 *
 * Each printer names its columns (as the apiserver's printers do: the same names, types,
 * formats and priorities; priority 1 is what `-o wide` adds) and fills one row's cells from
 * the object's JSON, following the apiserver's rules for each cell (a pod's READY, STATUS and
 * RESTARTS, a service's EXTERNAL-IP, ...). A field the object lacks gives what the apiserver
 * gives for its zero value. A resource without a printer of its own (those added with
 * --resource, most of them custom resources) gets NAME and AGE, as the apiserver gives a custom
 * resource without additional printer columns. The raw key space (/keys) prints each key with
 * its revisions and value.
 *
 * AGE and the other durations count to the wall clock (the one place wcached reads it besides
 * its log lines): a creationTimestamp is a wall-clock time.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "table.h"

/* ---------------------------------------------------------------------------------------
 * Accept and includeObject
 * ------------------------------------------------------------------------------------- */

/* Trims spaces and tabs at both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool span_is(const char *s, const char *e, const char *word, bool fold)
{
    size_t n = strlen(word);
    if ((size_t)(e - s) != n)
        return false;
    return fold ? strncasecmp(s, word, n) == 0 : strncmp(s, word, n) == 0;
}

/* One media range: 1 for the v1 Table, 0 for plain JSON, -1 for one wcached cannot serve. */
static int media_range(const char *s, const char *e)
{
    const char *semi = memchr(s, ';', (size_t)(e - s));
    const char *te = semi ? semi : e, *ts = s;
    trim(&ts, &te);
    bool json = span_is(ts, te, "application/json", true);
    if (!json && !span_is(ts, te, "*/*", true) && !span_is(ts, te, "application/*", true))
        return -1;
    bool table = false, v1 = false, meta = false, other = false;
    while (semi) {
        const char *ps = semi + 1;
        semi = memchr(ps, ';', (size_t)(e - ps));
        const char *pe = semi ? semi : e;
        const char *eq = memchr(ps, '=', (size_t)(pe - ps));
        if (!eq)
            continue;
        const char *ks = ps, *ke = eq, *vs = eq + 1, *ve = pe;
        trim(&ks, &ke);
        trim(&vs, &ve);
        if (span_is(ks, ke, "q", true)) {
            if (vs < ve && strtod(vs, NULL) <= 0) /* q=0: not acceptable */
                return -1;
        } else if (span_is(ks, ke, "as", true)) {
            table = span_is(vs, ve, "Table", false);
            other = !table;
        } else if (span_is(ks, ke, "v", true)) {
            v1 = span_is(vs, ve, "v1", false);
        } else if (span_is(ks, ke, "g", true)) {
            meta = span_is(vs, ve, "meta.k8s.io", false);
        }
    }
    if (table)
        return json && v1 && meta ? 1 : -1;
    return other ? -1 : 0; /* as=PartialObjectMetadata and the like: not served */
}

bool wc_http_table_wanted(const char *accept)
{
    if (!accept)
        return false;
    const char *s = accept;
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *e = comma ? comma : s + strlen(s);
        int m = media_range(s, e);
        if (m >= 0)
            return m == 1;
        if (!comma)
            return false;
        s = comma + 1;
    }
}

static const wc_http_table_printer KEYVALUE_PRINTER;

int wc_http_table_negotiate(struct MHD_Connection *conn, const wc_http_route *rt,
                            wc_http_table_opts *o, wc_http_error *err)
{
    memset(o, 0, sizeof(*o));
    if (!wc_http_table_wanted(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept")))
        return 0;
    const char *inc = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "includeObject");
    if (!inc || !*inc || strcmp(inc, "Metadata") == 0) {
        o->include = WC_HTTP_TABLE_METADATA;
    } else if (strcmp(inc, "Object") == 0) {
        o->include = WC_HTTP_TABLE_OBJECT;
    } else if (strcmp(inc, "None") == 0) {
        o->include = WC_HTTP_TABLE_NONE;
    } else {
        char q[WC_HTTP_QUOTE_MAX];
        return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                            "Unable to convert to Table as requested: includeObject: Unsupported "
                            "value: \"%s\": supported values: \"None\", \"Metadata\", \"Object\"",
                            wc_http_quote(inc, strlen(inc), q));
    }
    o->printer =
        rt->family == WC_FAMILY_KEYS ? &KEYVALUE_PRINTER : wc_http_table_printer_for(rt->res);
    o->now = (int64_t)time(NULL);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Times
 * ------------------------------------------------------------------------------------- */

void wc_http_table_duration(int64_t s, char *out, size_t size)
{
    /* Up to a second in the future is "now": clocks differ a little. */
    if (s < -1) {
        snprintf(out, size, "<invalid>");
        return;
    }
    if (s < 0)
        s = 0;
    int64_t m = s / 60, h = s / 3600, d = h / 24;
    if (s < 120)
        snprintf(out, size, "%" PRId64 "s", s);
    else if (m < 10 && s % 60)
        snprintf(out, size, "%" PRId64 "m%" PRId64 "s", m, s % 60);
    else if (m < 180)
        snprintf(out, size, "%" PRId64 "m", m);
    else if (h < 8 && m % 60)
        snprintf(out, size, "%" PRId64 "h%" PRId64 "m", h, m % 60);
    else if (h < 48)
        snprintf(out, size, "%" PRId64 "h", h);
    else if (h < 24 * 8 && h % 24)
        snprintf(out, size, "%" PRId64 "d%" PRId64 "h", d, h % 24);
    else if (h < 24 * 365 * 2)
        snprintf(out, size, "%" PRId64 "d", d);
    else if (h < 24 * 365 * 8 && d % 365)
        snprintf(out, size, "%" PRId64 "y%" PRId64 "d", d / 365, d % 365);
    else
        snprintf(out, size, "%" PRId64 "y", d / 365);
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int wc_http_table_parse_time(const char *s, int64_t *out)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return WC_EINVAL;
    int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
    int hh = digits(s + 11, 2), mm = digits(s + 14, 2), ss = digits(s + 17, 2);
    if (Y < 0 || M < 1 || M > 12 || D < 1 || D > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
        ss < 0 || ss > 60)
        return WC_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return WC_EINVAL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = digits(p + 1, 2), om = p[3] == ':' ? digits(p + 4, 2) : -1;
        if (oh < 0 || om < 0)
            return WC_EINVAL;
        off = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        p += 6;
    } else {
        return WC_EINVAL;
    }
    if (*p)
        return WC_EINVAL;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = hh,
                    .tm_min = mm,
                    .tm_sec = ss};
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Reading the object
 * ------------------------------------------------------------------------------------- */

/* The value at a dotted path of plain keys ("status.podIP"), or NULL. */
static json_t *at(json_t *o, const char *path)
{
    char key[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(key) || !json_is_object(o))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        path = dot ? dot + 1 : path + n;
    }
    return o;
}

/* The string at path, or `dflt` when it is absent or not a string. */
static const char *str(json_t *o, const char *path, const char *dflt)
{
    json_t *v = at(o, path);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* The non-empty string at path, or `dflt`. */
static const char *str_or(json_t *o, const char *path, const char *dflt)
{
    const char *s = str(o, path, "");
    return *s ? s : dflt;
}

static json_int_t num(json_t *o, const char *path)
{
    json_t *v = at(o, path);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static bool truth(json_t *o, const char *path)
{
    return json_is_true(at(o, path));
}

/* Items of the array, or entries of the object, at path; 0 for anything else. */
static size_t count(json_t *o, const char *path)
{
    json_t *v = at(o, path);
    return json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
}

/* ---------------------------------------------------------------------------------------
 * Rows
 * ------------------------------------------------------------------------------------- */

typedef struct row {
    const wc_http_table_opts *o;
    json_t *cells;
    json_t *conditions; /* NULL: none */
    bool oom;
} row;

static void add(row *r, json_t *v)
{
    if (!v || json_array_append_new(r->cells, v) != 0)
        r->oom = true;
}

static void cell_str(row *r, const char *s)
{
    add(r, json_string(s));
}

static void cell_int(row *r, json_int_t v)
{
    add(r, json_integer(v));
}

static void cell_bool(row *r, bool v)
{
    add(r, json_boolean(v));
}

static void cell_buf(row *r, wc_buf *b)
{
    if (b->oom)
        r->oom = true;
    else
        cell_str(r, b->p ? b->p : "");
    wc_buf_free(b);
}

/* The time since the RFC 3339 time at path, "<unknown>" without one (the apiserver's
 * translateTimestampSince). */
static void since(row *r, json_t *o, const char *path)
{
    const char *s = str(o, path, "");
    int64_t t;
    char d[32];
    if (!*s || wc_http_table_parse_time(s, &t) != 0) {
        cell_str(r, "<unknown>");
        return;
    }
    wc_http_table_duration(r->o->now - t, d, sizeof(d));
    cell_str(r, d);
}

static void name(row *r, json_t *o)
{
    cell_str(r, str(o, "metadata.name", ""));
}

static void age(row *r, json_t *o)
{
    since(r, o, "metadata.creationTimestamp");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The object's keys in order: a new array of borrowed strings (NULL with *n 0 when empty). */
static const char **sorted_keys(json_t *map, size_t *n)
{
    *n = 0;
    if (!json_is_object(map) || json_object_size(map) == 0)
        return NULL;
    const char **keys = malloc(json_object_size(map) * sizeof(*keys));
    if (!keys)
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        keys[(*n)++] = k;
    }
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

/* key=value,... in key order, or "<none>" (labels.FormatLabels). */
static void labels_cell(row *r, json_t *map)
{
    size_t n;
    const char **keys = sorted_keys(map, &n);
    if (!n) {
        free(keys);
        cell_str(r, "<none>");
        return;
    }
    wc_buf b = {0};
    for (size_t i = 0; i < n; i++)
        wc_buf_printf(&b, "%s%s=%s", i ? "," : "", keys[i],
                      str(json_object_get(map, keys[i]), "", ""));
    free(keys);
    cell_buf(r, &b);
}

/* A label selector ({matchLabels, matchExpressions}) as a selector string, requirements in
 * key order ("" for an empty one; NULL-safe). */
static void selector_string(json_t *sel, wc_buf *b)
{
    size_t n;
    json_t *ml = at(sel, "matchLabels");
    const char **keys = sorted_keys(ml, &n);
    json_t *me = at(sel, "matchExpressions");
    size_t ne = json_is_array(me) ? json_array_size(me) : 0;
    /* Requirements from both, merged in key order. */
    typedef struct req {
        const char *key;
        json_t *expr; /* NULL: a matchLabels entry */
    } req;
    req *rs = malloc((n + ne + 1) * sizeof(*rs));
    if (!rs) {
        b->oom = true;
        free(keys);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        rs[k++] = (req){keys[i], NULL};
    for (size_t i = 0; i < ne; i++) {
        json_t *e = json_array_get(me, i);
        rs[k++] = (req){str(e, "key", ""), e};
    }
    /* insertion sort: stable and the lists are short */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(rs[j - 1].key, rs[j].key) > 0; j--) {
            req t = rs[j];
            rs[j] = rs[j - 1];
            rs[j - 1] = t;
        }
    for (size_t i = 0; i < k; i++) {
        if (i)
            wc_buf_puts(b, ",");
        if (!rs[i].expr) {
            wc_buf_printf(b, "%s=%s", rs[i].key, str(json_object_get(ml, rs[i].key), "", ""));
            continue;
        }
        const char *op = str(rs[i].expr, "operator", "");
        if (strcmp(op, "Exists") == 0) {
            wc_buf_puts(b, rs[i].key);
        } else if (strcmp(op, "DoesNotExist") == 0) {
            wc_buf_printf(b, "!%s", rs[i].key);
        } else {
            wc_buf_printf(b, "%s %s (", rs[i].key, strcmp(op, "NotIn") == 0 ? "notin" : "in");
            json_t *vals = at(rs[i].expr, "values");
            size_t nv;
            /* values print sorted, as the apiserver's selector does */
            const char **vs = malloc((json_array_size(vals) + 1) * sizeof(*vs));
            nv = 0;
            for (size_t j = 0; vs && j < json_array_size(vals); j++)
                if (json_is_string(json_array_get(vals, j)))
                    vs[nv++] = json_string_value(json_array_get(vals, j));
            if (vs)
                qsort(vs, nv, sizeof(*vs), cmp_str);
            for (size_t j = 0; vs && j < nv; j++)
                wc_buf_printf(b, "%s%s", j ? "," : "", vs[j]);
            if (!vs)
                b->oom = true;
            free(vs);
            wc_buf_puts(b, ")");
        }
    }
    free(rs);
    free(keys);
}

/* metav1.FormatLabelSelector: the selector string, "<none>" when empty. */
static void selector_cell(row *r, json_t *sel)
{
    wc_buf b = {0};
    selector_string(sel, &b);
    if (!b.oom && b.len == 0)
        wc_buf_puts(&b, "<none>");
    cell_buf(r, &b);
}

/* The template's container names and images, comma-separated (two cells). */
static void containers_cells(row *r, json_t *o, const char *path)
{
    json_t *cs = at(o, path);
    wc_buf names = {0}, images = {0};
    for (size_t i = 0; json_is_array(cs) && i < json_array_size(cs); i++) {
        json_t *c = json_array_get(cs, i);
        wc_buf_printf(&names, "%s%s", i ? "," : "", str(c, "name", ""));
        wc_buf_printf(&images, "%s%s", i ? "," : "", str(c, "image", ""));
    }
    cell_buf(r, &names);
    cell_buf(r, &images);
}

/* Joins the strings of the array at path with sep; `dflt` when there are none. */
static void joined_cell(row *r, json_t *o, const char *path, const char *sep, const char *dflt)
{
    json_t *a = at(o, path);
    wc_buf b = {0};
    size_t k = 0;
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
        if (json_is_string(json_array_get(a, i)))
            wc_buf_printf(&b, "%s%s", k++ ? sep : "", json_string_value(json_array_get(a, i)));
    if (!k && !b.oom)
        wc_buf_puts(&b, dflt);
    cell_buf(r, &b);
}

/* An int-or-string field (a PDB's minAvailable): its text, or `dflt` when absent. */
static void int_or_string(row *r, json_t *o, const char *path, const char *dflt)
{
    json_t *v = at(o, path);
    char tmp[32];
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        cell_str(r, tmp);
    } else {
        cell_str(r, json_is_string(v) ? json_string_value(v) : dflt);
    }
}

/* "True"/"False" for a set boolean, "<unset>" for an absent one (printBoolPtr). */
static void bool_ptr(row *r, json_t *o, const char *path)
{
    json_t *v = at(o, path);
    cell_str(r, !json_is_boolean(v) ? "<unset>" : json_is_true(v) ? "True" : "False");
}

/* The condition of `type` in the array at path, or NULL. */
static json_t *condition(json_t *o, const char *path, const char *type)
{
    json_t *cs = at(o, path);
    for (size_t i = 0; json_is_array(cs) && i < json_array_size(cs); i++)
        if (strcmp(str(json_array_get(cs, i), "type", ""), type) == 0)
            return json_array_get(cs, i);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Printers
 * ------------------------------------------------------------------------------------- */

typedef struct col {
    const char *name, *type, *format;
    int priority;
    const char *description;
} col;

struct wc_http_table_printer {
    const char *group, *plural;
    const col *cols;
    size_t n_cols;
    void (*cells)(row *r, json_t *o);
};

#define NAME_COL                                                                                   \
    {                                                                                              \
        "Name", "string", "name", 0, "The object's name, unique in its namespace."                 \
    }
#define AGE_COL                                                                                    \
    {                                                                                              \
        "Age", "string", "", 0, "Time since the object was created."                               \
    }
#define CONTAINERS_COL                                                                             \
    {                                                                                              \
        "Containers", "string", "", 1, "The template's container names."                           \
    }
#define IMAGES_COL                                                                                 \
    {                                                                                              \
        "Images", "string", "", 1, "The template's container images."                              \
    }
#define SELECTOR_COL                                                                               \
    {                                                                                              \
        "Selector", "string", "", 1, "The label selector of its pods."                             \
    }

/* Pods ---------------------------------------------------------------------------------- */

static const col POD_COLS[] = {
    NAME_COL,
    {"Ready", "string", "", 0, "Ready containers out of all."},
    {"Status", "string", "", 0, "The pod's aggregate status."},
    {"Restarts", "string", "", 0, "Container restarts, and how long ago the last one was."},
    AGE_COL,
    {"IP", "string", "", 1, "The pod's IP address."},
    {"Node", "string", "", 1, "The node the pod runs on."},
    {"Nominated Node", "string", "", 1, "The node the scheduler nominated for the pod."},
    {"Readiness Gates", "string", "", 1, "Readiness gates met out of all."},
};

/* A newer finishedAt of the container's last termination moves *last. */
static void last_restart(json_t *cs, int64_t *last)
{
    int64_t t;
    const char *f = str(cs, "lastState.terminated.finishedAt", "");
    if (*f && wc_http_table_parse_time(f, &t) == 0 && t > *last)
        *last = t;
}

/* The reason a terminated container gives: its reason, else Signal:N or ExitCode:N. */
static void terminated_reason(json_t *term, const char *prefix, char *out, size_t size)
{
    const char *reason = str(term, "reason", "");
    if (*reason)
        snprintf(out, size, "%s%s", prefix, reason);
    else if (num(term, "signal"))
        snprintf(out, size, "%sSignal:%" JSON_INTEGER_FORMAT, prefix, num(term, "signal"));
    else
        snprintf(out, size, "%sExitCode:%" JSON_INTEGER_FORMAT, prefix, num(term, "exitCode"));
}

static bool restartable_init(json_t *pod, const char *cname)
{
    json_t *ics = at(pod, "spec.initContainers");
    for (size_t i = 0; json_is_array(ics) && i < json_array_size(ics); i++) {
        json_t *c = json_array_get(ics, i);
        if (strcmp(str(c, "name", ""), cname) == 0)
            return strcmp(str(c, "restartPolicy", ""), "Always") == 0;
    }
    return false;
}

static void pod_cells(row *r, json_t *pod)
{
    char reason[320];
    const char *phase = str(pod, "status.phase", "");
    snprintf(reason, sizeof(reason), "%s", str_or(pod, "status.reason", phase));
    json_t *sched = condition(pod, "status.conditions", "PodScheduled");
    if (sched && strcmp(str(sched, "reason", ""), "SchedulingGated") == 0)
        snprintf(reason, sizeof(reason), "SchedulingGated");
    if (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) {
        bool ok = phase[0] == 'S';
        r->conditions =
            json_pack("[{s:s,s:s,s:s,s:s}]", "type", "Completed", "status", "True", "reason", phase,
                      "message", ok ? "The pod has completed successfully." : "The pod failed.");
    }

    json_int_t restarts = 0, sidecar_restarts = 0;
    int64_t last = 0, sidecar_last = 0;
    size_t total = count(pod, "spec.containers"), ready = 0;
    json_t *ics = at(pod, "spec.initContainers");
    for (size_t i = 0; json_is_array(ics) && i < json_array_size(ics); i++)
        if (strcmp(str(json_array_get(ics, i), "restartPolicy", ""), "Always") == 0)
            total++;

    bool initializing = false;
    json_t *iss = at(pod, "status.initContainerStatuses");
    size_t n_init = count(pod, "spec.initContainers");
    for (size_t i = 0; json_is_array(iss) && i < json_array_size(iss); i++) {
        json_t *cs = json_array_get(iss, i);
        bool sidecar = restartable_init(pod, str(cs, "name", ""));
        restarts += num(cs, "restartCount");
        last_restart(cs, &last);
        if (sidecar) {
            sidecar_restarts += num(cs, "restartCount");
            last_restart(cs, &sidecar_last);
        }
        json_t *term = at(cs, "state.terminated");
        const char *waiting = str(cs, "state.waiting.reason", "");
        if (term && num(term, "exitCode") == 0)
            continue;
        if (sidecar && truth(cs, "started")) {
            if (truth(cs, "ready"))
                ready++;
            continue;
        }
        if (term)
            terminated_reason(term, "Init:", reason, sizeof(reason));
        else if (*waiting && strcmp(waiting, "PodInitializing") != 0)
            snprintf(reason, sizeof(reason), "Init:%s", waiting);
        else
            snprintf(reason, sizeof(reason), "Init:%zu/%zu", i, n_init);
        initializing = true;
        break;
    }

    json_t *initialized = condition(pod, "status.conditions", "Initialized");
    if (!initializing || (initialized && strcmp(str(initialized, "status", ""), "True") == 0)) {
        restarts = sidecar_restarts;
        last = sidecar_last;
        bool running = false;
        json_t *css = at(pod, "status.containerStatuses");
        for (size_t i = json_is_array(css) ? json_array_size(css) : 0; i-- > 0;) {
            json_t *cs = json_array_get(css, i);
            restarts += num(cs, "restartCount");
            last_restart(cs, &last);
            json_t *term = at(cs, "state.terminated");
            const char *waiting = str(cs, "state.waiting.reason", "");
            if (*waiting)
                snprintf(reason, sizeof(reason), "%s", waiting);
            else if (term)
                terminated_reason(term, "", reason, sizeof(reason));
            else if (truth(cs, "ready") && at(cs, "state.running")) {
                running = true;
                ready++;
            }
        }
        if (strcmp(reason, "Completed") == 0 && running) {
            json_t *rc = condition(pod, "status.conditions", "Ready");
            bool pod_ready = rc && strcmp(str(rc, "status", ""), "True") == 0;
            snprintf(reason, sizeof(reason), "%s", pod_ready ? "Running" : "NotReady");
        }
    }

    bool terminal = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
    if (*str(pod, "metadata.deletionTimestamp", "")) {
        if (strcmp(str(pod, "status.reason", ""), "NodeLost") == 0)
            snprintf(reason, sizeof(reason), "Unknown");
        else if (!terminal)
            snprintf(reason, sizeof(reason), "Terminating");
    }

    char readys[48], restarts_s[64], ago[32];
    snprintf(readys, sizeof(readys), "%zu/%zu", ready, total);
    if (restarts && last) {
        wc_http_table_duration(r->o->now - last, ago, sizeof(ago));
        snprintf(restarts_s, sizeof(restarts_s), "%" JSON_INTEGER_FORMAT " (%s ago)", restarts,
                 ago);
    } else {
        snprintf(restarts_s, sizeof(restarts_s), "%" JSON_INTEGER_FORMAT, restarts);
    }
    name(r, pod);
    cell_str(r, readys);
    cell_str(r, reason);
    cell_str(r, restarts_s);
    age(r, pod);

    /* The stored object may carry only podIP: the apiserver reads it as podIPs[0]. */
    json_t *ips = at(pod, "status.podIPs");
    const char *ip = json_array_size(ips) ? str(json_array_get(ips, 0), "ip", "") : "";
    cell_str(r, *ip ? ip : str_or(pod, "status.podIP", "<none>"));
    cell_str(r, str_or(pod, "spec.nodeName", "<none>"));
    cell_str(r, str_or(pod, "status.nominatedNodeName", "<none>"));
    json_t *gates = at(pod, "spec.readinessGates");
    if (!json_array_size(gates)) {
        cell_str(r, "<none>");
        return;
    }
    size_t met = 0;
    for (size_t i = 0; i < json_array_size(gates); i++) {
        json_t *c =
            condition(pod, "status.conditions", str(json_array_get(gates, i), "conditionType", ""));
        met += c && strcmp(str(c, "status", ""), "True") == 0;
    }
    char g[48];
    snprintf(g, sizeof(g), "%zu/%zu", met, json_array_size(gates));
    cell_str(r, g);
}

/* Services ------------------------------------------------------------------------------ */

static const col SERVICE_COLS[] = {
    NAME_COL,
    {"Type", "string", "", 0, "How the service is exposed."},
    {"Cluster-IP", "string", "", 0, "The service's cluster IP address."},
    {"External-IP", "string", "", 0, "Addresses the service is reachable at from outside."},
    {"Port(s)", "string", "", 0, "The service's ports."},
    AGE_COL,
    {"Selector", "string", "", 1, "The labels of the pods behind the service."},
};

/* Appends the strings of the array at path to b, comma-separated; the count appended. */
static size_t append_strings(wc_buf *b, json_t *o, const char *path, size_t k)
{
    json_t *a = at(o, path);
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
        if (json_is_string(json_array_get(a, i)))
            wc_buf_printf(b, "%s%s", k++ ? "," : "", json_string_value(json_array_get(a, i)));
    return k;
}

static void service_cells(row *r, json_t *svc)
{
    const char *type = str(svc, "spec.type", "");
    json_t *ips = at(svc, "spec.clusterIPs");
    const char *cip = json_array_size(ips) ? json_string_value(json_array_get(ips, 0)) : NULL;
    name(r, svc);
    cell_str(r, type);
    cell_str(r, cip ? cip : str_or(svc, "spec.clusterIP", "<none>"));

    wc_buf ext = {0};
    if (strcmp(type, "ClusterIP") == 0 || strcmp(type, "NodePort") == 0) {
        if (!append_strings(&ext, svc, "spec.externalIPs", 0))
            wc_buf_puts(&ext, "<none>");
    } else if (strcmp(type, "LoadBalancer") == 0) {
        json_t *ing = at(svc, "status.loadBalancer.ingress");
        size_t k = 0;
        for (size_t i = 0; json_is_array(ing) && i < json_array_size(ing); i++) {
            const char *a =
                str_or(json_array_get(ing, i), "ip", str(json_array_get(ing, i), "hostname", ""));
            if (!*a)
                continue;
            bool dup = false; /* the apiserver keeps each address once */
            for (size_t j = 0; j < i && !dup; j++) {
                json_t *e = json_array_get(ing, j);
                dup = strcmp(str_or(e, "ip", str(e, "hostname", "")), a) == 0;
            }
            if (!dup)
                wc_buf_printf(&ext, "%s%s", k++ ? "," : "", a);
        }
        k = append_strings(&ext, svc, "spec.externalIPs", k);
        if (!k)
            wc_buf_puts(&ext, "<pending>");
    } else if (strcmp(type, "ExternalName") == 0) {
        wc_buf_puts(&ext, str(svc, "spec.externalName", ""));
    } else {
        wc_buf_puts(&ext, "<unknown>");
    }
    cell_buf(r, &ext);

    wc_buf ports = {0};
    json_t *ps = at(svc, "spec.ports");
    for (size_t i = 0; json_is_array(ps) && i < json_array_size(ps); i++) {
        json_t *p = json_array_get(ps, i);
        const char *proto = str(p, "protocol", "");
        if (num(p, "nodePort") > 0)
            wc_buf_printf(&ports, "%s%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT "/%s",
                          i ? "," : "", num(p, "port"), num(p, "nodePort"), proto);
        else
            wc_buf_printf(&ports, "%s%" JSON_INTEGER_FORMAT "/%s", i ? "," : "", num(p, "port"),
                          proto);
    }
    if (!ports.oom && ports.len == 0)
        wc_buf_puts(&ports, "<none>");
    cell_buf(r, &ports);
    age(r, svc);
    labels_cell(r, at(svc, "spec.selector"));
}

/* Endpoints ----------------------------------------------------------------------------- */

static const col ENDPOINTS_COLS[] = {
    NAME_COL,
    {"Endpoints", "string", "", 0, "The first addresses and ports behind the service."},
    AGE_COL,
};

/* A host:port, with brackets for IPv6. */
static void host_port(wc_buf *b, const char *ip, json_int_t port)
{
    if (strchr(ip, ':'))
        wc_buf_printf(b, "[%s]:%" JSON_INTEGER_FORMAT, ip, port);
    else
        wc_buf_printf(b, "%s:%" JSON_INTEGER_FORMAT, ip, port);
}

static void endpoints_cells(row *r, json_t *o)
{
    json_t *subsets = at(o, "subsets");
    name(r, o);
    if (!json_array_size(subsets)) {
        cell_str(r, "<none>");
        age(r, o);
        return;
    }
    wc_buf b = {0};
    size_t shown = 0, total = 0;
    const size_t max = 3;
    for (size_t i = 0; i < json_array_size(subsets); i++) {
        json_t *ss = json_array_get(subsets, i);
        json_t *addrs = at(ss, "addresses"), *ports = at(ss, "ports");
        size_t na = json_is_array(addrs) ? json_array_size(addrs) : 0;
        size_t np = json_is_array(ports) ? json_array_size(ports) : 0;
        for (size_t p = 0; p < (np ? np : 1); p++) {
            total += na;
            for (size_t a = 0; a < na && shown < max; a++, shown++) {
                const char *ip = str(json_array_get(addrs, a), "ip", "");
                if (shown)
                    wc_buf_puts(&b, ",");
                if (np)
                    host_port(&b, ip, num(json_array_get(ports, p), "port"));
                else
                    wc_buf_puts(&b, ip);
            }
        }
    }
    if (total > max)
        wc_buf_printf(&b, " + %zu more...", total - max);
    cell_buf(r, &b);
    age(r, o);
}

/* Nodes --------------------------------------------------------------------------------- */

static const col NODE_COLS[] = {
    NAME_COL,
    {"Status", "string", "", 0, "The node's readiness."},
    {"Roles", "string", "", 0, "The node's roles."},
    AGE_COL,
    {"Version", "string", "", 0, "The kubelet's version."},
    {"Internal-IP", "string", "", 1, "The node's first internal address."},
    {"External-IP", "string", "", 1, "The node's first external address."},
    {"OS-Image", "string", "", 1, "The node's operating system image."},
    {"Kernel-Version", "string", "", 1, "The node's kernel version."},
    {"Container-Runtime", "string", "", 1, "The node's container runtime and version."},
};

static void node_address(row *r, json_t *node, const char *type)
{
    json_t *as = at(node, "status.addresses");
    for (size_t i = 0; json_is_array(as) && i < json_array_size(as); i++)
        if (strcmp(str(json_array_get(as, i), "type", ""), type) == 0) {
            cell_str(r, str(json_array_get(as, i), "address", ""));
            return;
        }
    cell_str(r, "<none>");
}

static void node_cells(row *r, json_t *node)
{
    wc_buf st = {0};
    json_t *ready = condition(node, "status.conditions", "Ready");
    if (!ready)
        wc_buf_puts(&st, "Unknown");
    else
        wc_buf_puts(&st, strcmp(str(ready, "status", ""), "True") == 0 ? "Ready" : "NotReady");
    if (truth(node, "spec.unschedulable"))
        wc_buf_puts(&st, ",SchedulingDisabled");

    /* Roles: node-role.kubernetes.io/<role> labels and a kubernetes.io/role=<role> label. */
    json_t *labels = at(node, "metadata.labels");
    size_t n;
    const char **keys = sorted_keys(labels, &n);
    const char **roles = malloc((n + 1) * sizeof(*roles));
    size_t nr = 0;
    static const char PREFIX[] = "node-role.kubernetes.io/";
    for (size_t i = 0; roles && i < n; i++) {
        const char *v = str(json_object_get(labels, keys[i]), "", "");
        const char *role = NULL;
        if (strncmp(keys[i], PREFIX, sizeof(PREFIX) - 1) == 0 && keys[i][sizeof(PREFIX) - 1])
            role = keys[i] + sizeof(PREFIX) - 1;
        else if (strcmp(keys[i], "kubernetes.io/role") == 0 && *v)
            role = v;
        bool dup = false;
        for (size_t j = 0; role && j < nr && !dup; j++)
            dup = strcmp(roles[j], role) == 0;
        if (role && !dup)
            roles[nr++] = role;
    }
    if (roles)
        qsort(roles, nr, sizeof(*roles), cmp_str);
    wc_buf rb = {0};
    for (size_t i = 0; i < nr; i++)
        wc_buf_printf(&rb, "%s%s", i ? "," : "", roles[i]);
    if (!roles)
        rb.oom = true;
    else if (!nr)
        wc_buf_puts(&rb, "<none>");
    free(roles);
    free(keys);

    name(r, node);
    cell_buf(r, &st);
    cell_buf(r, &rb);
    age(r, node);
    cell_str(r, str(node, "status.nodeInfo.kubeletVersion", ""));
    node_address(r, node, "InternalIP");
    node_address(r, node, "ExternalIP");
    cell_str(r, str_or(node, "status.nodeInfo.osImage", "<unknown>"));
    cell_str(r, str_or(node, "status.nodeInfo.kernelVersion", "<unknown>"));
    cell_str(r, str_or(node, "status.nodeInfo.containerRuntimeVersion", "<unknown>"));
}

/* Events -------------------------------------------------------------------------------- */

static const col EVENT_COLS[] = {
    {"Last Seen", "string", "", 0, "Time since the event was last seen."},
    {"Type", "string", "", 0, "Normal or Warning."},
    {"Reason", "string", "", 0, "Why the event was made, in one word."},
    {"Object", "string", "", 0, "The object the event is about."},
    {"Subobject", "string", "", 1, "The part of the object the event is about."},
    {"Source", "string", "", 1, "The component that reported the event."},
    {"Message", "string", "", 0, "What happened."},
    {"First Seen", "string", "", 1, "Time since the event was first seen."},
    {"Count", "string", "", 1, "How many times the event was seen."},
    {"Name", "string", "name", 1, "The event's name."},
};

/* The time since the first timestamp of `paths` that is set, into out. */
static void since_first(row *r, json_t *o, const char *const *paths, char *out, size_t size)
{
    for (; *paths; paths++) {
        const char *s = str(o, *paths, "");
        int64_t t;
        if (*s && wc_http_table_parse_time(s, &t) == 0) {
            wc_http_table_duration(r->o->now - t, out, size);
            return;
        }
    }
    snprintf(out, size, "<unknown>");
}

static void event_cells(row *r, json_t *ev)
{
    char first[32], last[32];
    static const char *const FIRST[] = {"firstTimestamp", "eventTime", NULL};
    static const char *const LAST[] = {"lastTimestamp", NULL};
    static const char *const SERIES[] = {"series.lastObservedTime", NULL};
    since_first(r, ev, FIRST, first, sizeof(first));
    if (*str(ev, "lastTimestamp", ""))
        since_first(r, ev, LAST, last, sizeof(last));
    else
        snprintf(last, sizeof(last), "%s", first);
    json_int_t n = num(ev, "count");
    if (json_is_object(at(ev, "series"))) {
        since_first(r, ev, SERIES, last, sizeof(last));
        n = num(ev, "series.count");
    } else if (n == 0) {
        n = 1; /* a singleton event of the newer API has no count */
    }
    wc_buf target = {0};
    const char *kind = str(ev, "involvedObject.kind", "");
    for (const char *k = kind; *k; k++)
        wc_buf_printf(&target, "%c", tolower((unsigned char)*k));
    if (*str(ev, "involvedObject.name", ""))
        wc_buf_printf(&target, "/%s", str(ev, "involvedObject.name", ""));
    const char *comp = str_or(ev, "source.component", str(ev, "reportingComponent", ""));
    const char *host = str_or(ev, "source.host", str(ev, "reportingInstance", ""));
    wc_buf source = {0};
    wc_buf_printf(&source, "%s%s%s", comp, *host ? ", " : "", host);
    /* the message without leading or trailing white space */
    const char *msg = str(ev, "message", "");
    size_t ml = strlen(msg);
    while (ml && isspace((unsigned char)*msg))
        msg++, ml--;
    while (ml && isspace((unsigned char)msg[ml - 1]))
        ml--;
    wc_buf mb = {0};
    wc_buf_put(&mb, msg, ml);

    cell_str(r, last);
    cell_str(r, str(ev, "type", ""));
    cell_str(r, str(ev, "reason", ""));
    cell_buf(r, &target);
    cell_str(r, str(ev, "involvedObject.fieldPath", ""));
    cell_buf(r, &source);
    cell_buf(r, &mb);
    cell_str(r, first);
    cell_int(r, n);
    name(r, ev);
}

/* Core, small --------------------------------------------------------------------------- */

static const col CONFIGMAP_COLS[] = {
    NAME_COL,
    {"Data", "string", "", 0, "Entries in data and binaryData."},
    AGE_COL,
};

static void configmap_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, (json_int_t)(count(o, "data") + count(o, "binaryData")));
    age(r, o);
}

static const col SECRET_COLS[] = {
    NAME_COL,
    {"Type", "string", "", 0, "The secret's type."},
    {"Data", "string", "", 0, "Entries in data."},
    AGE_COL,
};

static void secret_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "type", ""));
    cell_int(r, (json_int_t)count(o, "data"));
    age(r, o);
}

static const col NAMESPACE_COLS[] = {
    NAME_COL,
    {"Status", "string", "", 0, "The namespace's phase."},
    AGE_COL,
};

static void namespace_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "status.phase", ""));
    age(r, o);
}

static const col SERVICEACCOUNT_COLS[] = {
    NAME_COL,
    {"Secrets", "string", "", 0, "Secrets the service account names."},
    AGE_COL,
};

static void serviceaccount_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, (json_int_t)count(o, "secrets"));
    age(r, o);
}

static const col PV_COLS[] = {
    NAME_COL,
    {"Capacity", "string", "", 0, "The volume's storage capacity."},
    {"Access Modes", "string", "", 0, "How the volume can be mounted."},
    {"Reclaim Policy", "string", "", 0, "What happens to the volume when released."},
    {"Status", "string", "", 0, "The volume's phase."},
    {"Claim", "string", "", 0, "The claim bound to the volume."},
    {"StorageClass", "string", "", 0, "The volume's storage class."},
    {"VolumeAttributesClass", "string", "", 0, "The volume's attributes class."},
    {"Reason", "string", "", 0, "Why the volume is in its phase."},
    AGE_COL,
    {"VolumeMode", "string", "", 1, "Filesystem or Block."},
};

/* RWO,ROX,RWX,RWOP in that order, each once (GetAccessModesAsString). */
static void access_modes(row *r, json_t *o, const char *path)
{
    static const char *const MODES[][2] = {{"ReadWriteOnce", "RWO"},
                                           {"ReadOnlyMany", "ROX"},
                                           {"ReadWriteMany", "RWX"},
                                           {"ReadWriteOncePod", "RWOP"}};
    json_t *a = at(o, path);
    wc_buf b = {0};
    size_t k = 0;
    for (size_t m = 0; m < sizeof(MODES) / sizeof(MODES[0]); m++)
        for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
            if (strcmp(str(json_array_get(a, i), "", ""), MODES[m][0]) == 0) {
                wc_buf_printf(&b, "%s%s", k++ ? "," : "", MODES[m][1]);
                break;
            }
    cell_buf(r, &b);
}

/* The storage class: spec.storageClassName, else the beta annotation. */
static const char *storage_class(json_t *o)
{
    return str_or(o, "spec.storageClassName",
                  str(json_object_get(at(o, "metadata.annotations"),
                                      "volume.beta.kubernetes.io/storage-class"),
                      "", ""));
}

static void pv_cells(row *r, json_t *o)
{
    wc_buf claim = {0};
    if (json_is_object(at(o, "spec.claimRef")))
        wc_buf_printf(&claim, "%s/%s", str(o, "spec.claimRef.namespace", ""),
                      str(o, "spec.claimRef.name", ""));
    name(r, o);
    cell_str(r, str(o, "spec.capacity.storage", "0"));
    access_modes(r, o, "spec.accessModes");
    cell_str(r, str(o, "spec.persistentVolumeReclaimPolicy", ""));
    cell_str(r, *str(o, "metadata.deletionTimestamp", "") ? "Terminating"
                                                          : str(o, "status.phase", ""));
    cell_buf(r, &claim);
    cell_str(r, storage_class(o));
    cell_str(r, str_or(o, "spec.volumeAttributesClassName", "<unset>"));
    cell_str(r, str(o, "status.reason", ""));
    age(r, o);
    cell_str(r, str_or(o, "spec.volumeMode", "<unset>"));
}

static const col PVC_COLS[] = {
    NAME_COL,
    {"Status", "string", "", 0, "The claim's phase."},
    {"Volume", "string", "", 0, "The volume bound to the claim."},
    {"Capacity", "string", "", 0, "The bound volume's capacity."},
    {"Access Modes", "string", "", 0, "How the bound volume can be mounted."},
    {"StorageClass", "string", "", 0, "The claim's storage class."},
    {"VolumeAttributesClass", "string", "", 0, "The claim's attributes class."},
    AGE_COL,
    {"VolumeMode", "string", "", 1, "Filesystem or Block."},
};

static void pvc_cells(row *r, json_t *o)
{
    bool bound = *str(o, "spec.volumeName", "");
    name(r, o);
    cell_str(r, *str(o, "metadata.deletionTimestamp", "") ? "Terminating"
                                                          : str(o, "status.phase", ""));
    cell_str(r, str(o, "spec.volumeName", ""));
    cell_str(r, bound ? str(o, "status.capacity.storage", "0") : "");
    if (bound)
        access_modes(r, o, "status.accessModes");
    else
        cell_str(r, "");
    cell_str(r, storage_class(o));
    cell_str(r, str_or(o, "spec.volumeAttributesClassName", "<unset>"));
    age(r, o);
    cell_str(r, str_or(o, "spec.volumeMode", "<unset>"));
}

static const col RC_COLS[] = {
    NAME_COL,
    {"Desired", "integer", "", 0, "Replicas asked for."},
    {"Current", "integer", "", 0, "Replicas there are."},
    {"Ready", "integer", "", 0, "Replicas ready."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static void rc_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, num(o, "spec.replicas"));
    cell_int(r, num(o, "status.replicas"));
    cell_int(r, num(o, "status.readyReplicas"));
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
    labels_cell(r, at(o, "spec.selector"));
}

static const col PODTEMPLATE_COLS[] = {
    NAME_COL,
    {"Containers", "string", "", 0, "The template's container names."},
    {"Images", "string", "", 0, "The template's container images."},
    {"Pod Labels", "string", "", 0, "The template's pod labels."},
};

static void podtemplate_cells(row *r, json_t *o)
{
    name(r, o);
    containers_cells(r, o, "template.spec.containers");
    labels_cell(r, at(o, "template.metadata.labels"));
}

/* apps, batch, policy ------------------------------------------------------------------- */

static const col DEPLOYMENT_COLS[] = {
    NAME_COL,
    {"Ready", "string", "", 0, "Ready replicas out of those asked for."},
    {"Up-to-date", "string", "", 0, "Replicas of the current template."},
    {"Available", "string", "", 0, "Replicas available."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static void ready_of(row *r, json_t *o, const char *ready, const char *want)
{
    char s[64];
    snprintf(s, sizeof(s), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, num(o, ready),
             num(o, want));
    cell_str(r, s);
}

static void deployment_cells(row *r, json_t *o)
{
    name(r, o);
    ready_of(r, o, "status.readyReplicas", "spec.replicas");
    cell_int(r, num(o, "status.updatedReplicas"));
    cell_int(r, num(o, "status.availableReplicas"));
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
    wc_buf b = {0};
    selector_string(at(o, "spec.selector"), &b);
    cell_buf(r, &b);
}

static const col REPLICASET_COLS[] = {
    NAME_COL,
    {"Desired", "integer", "", 0, "Replicas asked for."},
    {"Current", "integer", "", 0, "Replicas there are."},
    {"Ready", "integer", "", 0, "Replicas ready."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static void replicaset_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, num(o, "spec.replicas"));
    cell_int(r, num(o, "status.replicas"));
    cell_int(r, num(o, "status.readyReplicas"));
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
    selector_cell(r, at(o, "spec.selector"));
}

static const col STATEFULSET_COLS[] = {
    NAME_COL,   {"Ready", "string", "", 0, "Ready replicas out of those asked for."},
    AGE_COL,    CONTAINERS_COL,
    IMAGES_COL,
};

static void statefulset_cells(row *r, json_t *o)
{
    name(r, o);
    ready_of(r, o, "status.readyReplicas", "spec.replicas");
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
}

static const col DAEMONSET_COLS[] = {
    NAME_COL,
    {"Desired", "integer", "", 0, "Nodes that should run the daemon pod."},
    {"Current", "integer", "", 0, "Nodes that run it."},
    {"Ready", "integer", "", 0, "Nodes where it is ready."},
    {"Up-to-date", "integer", "", 0, "Nodes that run the current template."},
    {"Available", "integer", "", 0, "Nodes where it is available."},
    {"Node Selector", "string", "", 0, "The labels of the nodes it runs on."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static void daemonset_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, num(o, "status.desiredNumberScheduled"));
    cell_int(r, num(o, "status.currentNumberScheduled"));
    cell_int(r, num(o, "status.numberReady"));
    cell_int(r, num(o, "status.updatedNumberScheduled"));
    cell_int(r, num(o, "status.numberAvailable"));
    labels_cell(r, at(o, "spec.template.spec.nodeSelector"));
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
    selector_cell(r, at(o, "spec.selector"));
}

static const col JOB_COLS[] = {
    NAME_COL,
    {"Status", "string", "", 0, "The job's status."},
    {"Completions", "string", "", 0, "Pods succeeded out of those needed."},
    {"Duration", "string", "", 0, "How long the job ran."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static bool condition_true(json_t *o, const char *path, const char *type)
{
    json_t *c = condition(o, path, type);
    return c && strcmp(str(c, "status", ""), "True") == 0;
}

static void job_cells(row *r, json_t *o)
{
    char comp[96], dur[32] = "";
    json_int_t ok = num(o, "status.succeeded");
    if (json_is_integer(at(o, "spec.completions")))
        snprintf(comp, sizeof(comp), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, ok,
                 num(o, "spec.completions"));
    else if (num(o, "spec.parallelism") > 1)
        snprintf(comp, sizeof(comp), "%" JSON_INTEGER_FORMAT "/1 of %" JSON_INTEGER_FORMAT, ok,
                 num(o, "spec.parallelism"));
    else
        snprintf(comp, sizeof(comp), "%" JSON_INTEGER_FORMAT "/1", ok);
    int64_t start, end;
    if (wc_http_table_parse_time(str(o, "status.startTime", ""), &start) == 0) {
        if (wc_http_table_parse_time(str(o, "status.completionTime", ""), &end) != 0)
            end = r->o->now;
        wc_http_table_duration(end - start, dur, sizeof(dur));
    }
    const char *st = "Running";
    if (condition_true(o, "status.conditions", "Complete"))
        st = "Complete";
    else if (condition_true(o, "status.conditions", "Failed"))
        st = "Failed";
    else if (*str(o, "metadata.deletionTimestamp", ""))
        st = "Terminating";
    else if (condition_true(o, "status.conditions", "Suspended"))
        st = "Suspended";
    else if (condition_true(o, "status.conditions", "FailureTarget"))
        st = "FailureTarget";
    name(r, o);
    cell_str(r, st);
    cell_str(r, comp);
    cell_str(r, dur);
    age(r, o);
    containers_cells(r, o, "spec.template.spec.containers");
    selector_cell(r, at(o, "spec.selector"));
}

static const col CRONJOB_COLS[] = {
    NAME_COL,
    {"Schedule", "string", "", 0, "The schedule, in cron format."},
    {"Timezone", "string", "", 0, "The time zone of the schedule."},
    {"Suspend", "boolean", "", 0, "Whether new runs are suspended."},
    {"Active", "integer", "", 0, "Jobs running."},
    {"Last Schedule", "string", "", 0, "Time since a job was last scheduled."},
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    SELECTOR_COL,
};

static void cronjob_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "spec.schedule", ""));
    cell_str(r, str(o, "spec.timeZone", "<none>"));
    bool_ptr(r, o, "spec.suspend");
    cell_int(r, (json_int_t)count(o, "status.active"));
    if (*str(o, "status.lastScheduleTime", ""))
        since(r, o, "status.lastScheduleTime");
    else
        cell_str(r, "<none>");
    age(r, o);
    containers_cells(r, o, "spec.jobTemplate.spec.template.spec.containers");
    selector_cell(r, at(o, "spec.jobTemplate.spec.selector"));
}

static const col PDB_COLS[] = {
    NAME_COL,
    {"Min Available", "string", "", 0, "Pods that must stay available."},
    {"Max Unavailable", "string", "", 0, "Pods that may be unavailable."},
    {"Allowed Disruptions", "integer", "", 0, "Pods that may be disrupted now."},
    AGE_COL,
};

static void pdb_cells(row *r, json_t *o)
{
    name(r, o);
    int_or_string(r, o, "spec.minAvailable", "N/A");
    int_or_string(r, o, "spec.maxUnavailable", "N/A");
    cell_int(r, num(o, "status.disruptionsAllowed"));
    age(r, o);
}

static const col CONTROLLERREVISION_COLS[] = {
    NAME_COL,
    {"Controller", "string", "", 0, "The revision's controller."},
    {"Revision", "string", "", 0, "The revision's number."},
    AGE_COL,
};

static void controllerrevision_cells(row *r, json_t *o)
{
    wc_buf c = {0};
    json_t *refs = at(o, "metadata.ownerReferences");
    for (size_t i = 0; json_is_array(refs) && i < json_array_size(refs); i++) {
        json_t *ref = json_array_get(refs, i);
        if (!truth(ref, "controller"))
            continue;
        /* kind.group/name in lower case; the group is the apiVersion's part before '/' */
        const char *av = str(ref, "apiVersion", "");
        const char *slash = strchr(av, '/');
        for (const char *k = str(ref, "kind", ""); *k; k++)
            wc_buf_printf(&c, "%c", tolower((unsigned char)*k));
        if (slash) {
            wc_buf_puts(&c, ".");
            for (const char *g = av; g < slash; g++)
                wc_buf_printf(&c, "%c", tolower((unsigned char)*g));
        }
        wc_buf_printf(&c, "/%s", str(ref, "name", ""));
        break;
    }
    if (!c.p && !c.oom)
        wc_buf_puts(&c, "<none>");
    name(r, o);
    cell_buf(r, &c);
    cell_int(r, num(o, "revision"));
    age(r, o);
}

/* networking, discovery, coordination ---------------------------------------------------- */

static const col INGRESS_COLS[] = {
    NAME_COL,
    {"Class", "string", "", 0, "The ingress class."},
    {"Hosts", "string", "", 0, "The hosts the rules match."},
    {"Address", "string", "", 0, "The load balancer's addresses."},
    {"Ports", "string", "", 0, "80, and 443 with TLS."},
    AGE_COL,
};

static void ingress_cells(row *r, json_t *o)
{
    json_t *rules = at(o, "spec.rules");
    size_t nr = json_is_array(rules) ? json_array_size(rules) : 0, k = 0;
    bool more = false;
    wc_buf hosts = {0};
    for (size_t i = 0; i < nr; i++) {
        const char *h = str(json_array_get(rules, i), "host", "");
        more = more || k == 3;
        if (!more && *h)
            wc_buf_printf(&hosts, "%s%s", k++ ? "," : "", h);
    }
    if (!k)
        wc_buf_puts(&hosts, "*");
    else if (more)
        wc_buf_printf(&hosts, " + %zu more...", nr - 3);
    wc_buf addr = {0};
    json_t *ing = at(o, "status.loadBalancer.ingress");
    size_t ka = 0;
    for (size_t i = 0; json_is_array(ing) && i < json_array_size(ing); i++) {
        const char *a =
            str_or(json_array_get(ing, i), "ip", str(json_array_get(ing, i), "hostname", ""));
        if (*a)
            wc_buf_printf(&addr, "%s%s", ka++ ? "," : "", a);
    }
    name(r, o);
    cell_str(r, str(o, "spec.ingressClassName", "<none>"));
    cell_buf(r, &hosts);
    cell_buf(r, &addr);
    cell_str(r, count(o, "spec.tls") ? "80, 443" : "80");
    age(r, o);
}

static const col INGRESSCLASS_COLS[] = {
    NAME_COL,
    {"Controller", "string", "", 0, "The controller that handles the class."},
    {"Parameters", "string", "", 0, "The resource with the class's parameters."},
    AGE_COL,
};

static void ingressclass_cells(row *r, json_t *o)
{
    wc_buf p = {0};
    if (json_is_object(at(o, "spec.parameters"))) {
        wc_buf_puts(&p, str(o, "spec.parameters.kind", ""));
        if (json_is_string(at(o, "spec.parameters.apiGroup")))
            wc_buf_printf(&p, ".%s", str(o, "spec.parameters.apiGroup", ""));
        wc_buf_printf(&p, "/%s", str(o, "spec.parameters.name", ""));
    } else {
        wc_buf_puts(&p, "<none>");
    }
    name(r, o);
    cell_str(r, str(o, "spec.controller", ""));
    cell_buf(r, &p);
    age(r, o);
}

static const col NETWORKPOLICY_COLS[] = {
    NAME_COL,
    {"Pod-Selector", "string", "", 0, "The pods the policy applies to."},
    AGE_COL,
};

static void networkpolicy_cells(row *r, json_t *o)
{
    name(r, o);
    selector_cell(r, at(o, "spec.podSelector"));
    age(r, o);
}

static const col ENDPOINTSLICE_COLS[] = {
    NAME_COL,
    {"AddressType", "string", "", 0, "IPv4, IPv6 or FQDN."},
    {"Ports", "string", "", 0, "The slice's first ports."},
    {"Endpoints", "string", "", 0, "The slice's first addresses."},
    AGE_COL,
};

/* Up to three entries, then " + N more...", "<unset>" for none (listWithMoreString). */
static void more_list(row *r, wc_buf *b, size_t shown, size_t total)
{
    if (total > 3)
        wc_buf_printf(b, " + %zu more...", total - 3);
    else if (!shown)
        wc_buf_puts(b, "<unset>");
    cell_buf(r, b);
}

static void endpointslice_cells(row *r, json_t *o)
{
    wc_buf ports = {0}, eps = {0};
    json_t *ps = at(o, "ports");
    size_t np = json_is_array(ps) ? json_array_size(ps) : 0, shown = 0, total = 0;
    for (size_t i = 0; i < np && i < 3; i++, shown++) {
        json_t *p = json_array_get(ps, i);
        if (json_is_integer(at(p, "port")))
            wc_buf_printf(&ports, "%s%" JSON_INTEGER_FORMAT, i ? "," : "", num(p, "port"));
        else
            wc_buf_printf(&ports, "%s%s", i ? "," : "", str(p, "name", "*"));
    }
    name(r, o);
    cell_str(r, str(o, "addressType", ""));
    more_list(r, &ports, shown, np);
    json_t *es = at(o, "endpoints");
    shown = 0;
    for (size_t i = 0; json_is_array(es) && i < json_array_size(es); i++) {
        json_t *as = at(json_array_get(es, i), "addresses");
        for (size_t j = 0; json_is_array(as) && j < json_array_size(as); j++, total++)
            if (shown < 3 && json_is_string(json_array_get(as, j)))
                wc_buf_printf(&eps, "%s%s", shown++ ? "," : "",
                              json_string_value(json_array_get(as, j)));
    }
    more_list(r, &eps, shown, total);
    age(r, o);
}

static const col LEASE_COLS[] = {
    NAME_COL,
    {"Holder", "string", "", 0, "Who holds the lease."},
    AGE_COL,
};

static void lease_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "spec.holderIdentity", ""));
    age(r, o);
}

/* rbac ---------------------------------------------------------------------------------- */

/* What the apiserver's default printer gives (roles, limit ranges, custom resource
 * definitions): the name and the creation time itself. */
static const col ROLE_COLS[] = {
    NAME_COL,
    {"Created At", "date", "", 0, "When the object was created."},
};

static void role_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "metadata.creationTimestamp", ""));
}

static const col BINDING_COLS[] = {
    NAME_COL,
    {"Role", "string", "", 0, "The role bound."},
    AGE_COL,
    {"Users", "string", "", 1, "Users bound."},
    {"Groups", "string", "", 1, "Groups bound."},
    {"ServiceAccounts", "string", "", 1, "Service accounts bound, as namespace:name."},
};

static void binding_cells(row *r, json_t *o)
{
    char role[320];
    snprintf(role, sizeof(role), "%s/%s", str(o, "roleRef.kind", ""), str(o, "roleRef.name", ""));
    name(r, o);
    cell_str(r, role);
    age(r, o);
    wc_buf users = {0}, groups = {0}, sas = {0};
    size_t nu = 0, ng = 0, ns = 0;
    json_t *subjects = at(o, "subjects");
    for (size_t i = 0; json_is_array(subjects) && i < json_array_size(subjects); i++) {
        json_t *s = json_array_get(subjects, i);
        const char *kind = str(s, "kind", ""), *n = str(s, "name", "");
        if (strcmp(kind, "ServiceAccount") == 0)
            wc_buf_printf(&sas, "%s%s:%s", ns++ ? ", " : "", str(s, "namespace", ""), n);
        else if (strcmp(kind, "User") == 0)
            wc_buf_printf(&users, "%s%s", nu++ ? ", " : "", n);
        else if (strcmp(kind, "Group") == 0)
            wc_buf_printf(&groups, "%s%s", ng++ ? ", " : "", n);
    }
    wc_buf *bs[] = {&users, &groups, &sas};
    for (size_t i = 0; i < 3; i++) {
        cell_buf(r, bs[i]);
    }
}

/* storage, scheduling, node, certificates, admission ------------------------------------- */

static const col STORAGECLASS_COLS[] = {
    NAME_COL,
    {"Provisioner", "string", "", 0, "The volume plugin that provisions volumes."},
    {"ReclaimPolicy", "string", "", 0, "What happens to a released volume."},
    {"VolumeBindingMode", "string", "", 0, "When volumes are bound."},
    {"AllowVolumeExpansion", "string", "", 0, "Whether volumes may grow."},
    AGE_COL,
};

static void storageclass_cells(row *r, json_t *o)
{
    json_t *ann = at(o, "metadata.annotations");
    bool dflt =
        strcmp(str(json_object_get(ann, "storageclass.kubernetes.io/is-default-class"), "", ""),
               "true") == 0 ||
        strcmp(
            str(json_object_get(ann, "storageclass.beta.kubernetes.io/is-default-class"), "", ""),
            "true") == 0;
    char n[300];
    snprintf(n, sizeof(n), "%s%s", str(o, "metadata.name", ""), dflt ? " (default)" : "");
    cell_str(r, n);
    cell_str(r, str(o, "provisioner", ""));
    cell_str(r, str(o, "reclaimPolicy", "Delete"));
    cell_str(r, str(o, "volumeBindingMode", "Immediate"));
    cell_bool(r, truth(o, "allowVolumeExpansion"));
    age(r, o);
}

static const col CSIDRIVER_COLS[] = {
    NAME_COL,
    {"AttachRequired", "boolean", "", 0, "Whether volumes need an attach step."},
    {"PodInfoOnMount", "boolean", "", 0, "Whether mounts get the pod's information."},
    {"StorageCapacity", "boolean", "", 0, "Whether the scheduler checks capacity."},
    {"TokenRequests", "string", "", 0, "Audiences of the tokens the driver gets."},
    {"RequiresRepublish", "boolean", "", 0, "Whether volumes are mounted again periodically."},
    {"Modes", "string", "", 0, "Volume lifecycle modes."},
    AGE_COL,
};

static void csidriver_cells(row *r, json_t *o)
{
    name(r, o);
    json_t *att = at(o, "spec.attachRequired");
    cell_bool(r, json_is_boolean(att) ? json_is_true(att) : true);
    cell_bool(r, truth(o, "spec.podInfoOnMount"));
    cell_bool(r, truth(o, "spec.storageCapacity"));
    json_t *tr = at(o, "spec.tokenRequests");
    if (!json_is_array(tr)) {
        cell_str(r, "<unset>");
    } else {
        wc_buf b = {0};
        for (size_t i = 0; i < json_array_size(tr); i++)
            wc_buf_printf(&b, "%s%s", i ? "," : "", str(json_array_get(tr, i), "audience", ""));
        cell_buf(r, &b);
    }
    cell_bool(r, truth(o, "spec.requiresRepublish"));
    joined_cell(r, o, "spec.volumeLifecycleModes", ",", "<none>");
    age(r, o);
}

static const col CSINODE_COLS[] = {
    NAME_COL,
    {"Drivers", "integer", "", 0, "CSI drivers registered on the node."},
    AGE_COL,
};

static void csinode_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, (json_int_t)count(o, "spec.drivers"));
    age(r, o);
}

static const col VOLUMEATTACHMENT_COLS[] = {
    NAME_COL,
    {"Attacher", "string", "name", 0, "The driver that attaches the volume."},
    {"PV", "string", "", 0, "The volume attached."},
    {"Node", "string", "", 0, "The node it is attached to."},
    {"Attached", "boolean", "", 0, "Whether it is attached."},
    AGE_COL,
};

static void volumeattachment_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "spec.attacher", ""));
    cell_str(r, str(o, "spec.source.persistentVolumeName", ""));
    cell_str(r, str(o, "spec.nodeName", ""));
    cell_bool(r, truth(o, "status.attached"));
    age(r, o);
}

static const col PRIORITYCLASS_COLS[] = {
    NAME_COL,
    {"Value", "integer", "", 0, "The priority."},
    {"Global-Default", "boolean", "", 0, "Whether pods without a class get this one."},
    AGE_COL,
    {"PreemptionPolicy", "string", "", 0, "Whether its pods may preempt others."},
};

static void priorityclass_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, num(o, "value"));
    cell_bool(r, truth(o, "globalDefault"));
    age(r, o);
    cell_str(r, str(o, "preemptionPolicy", ""));
}

static const col RUNTIMECLASS_COLS[] = {
    NAME_COL,
    {"Handler", "string", "", 0, "The container runtime's handler."},
    AGE_COL,
};

static void runtimeclass_cells(row *r, json_t *o)
{
    name(r, o);
    cell_str(r, str(o, "handler", ""));
    age(r, o);
}

static const col CSR_COLS[] = {
    NAME_COL,
    AGE_COL,
    {"SignerName", "string", "", 0, "Who is asked to sign."},
    {"Requestor", "string", "", 0, "Who asked."},
    {"RequestedDuration", "string", "", 0, "How long the certificate should be valid."},
    {"Condition", "string", "", 0, "Approved, Denied or Pending; Failed; Issued."},
};

static void csr_cells(row *r, json_t *o)
{
    bool approved = false, denied = false, failed = false;
    json_t *cs = at(o, "status.conditions");
    for (size_t i = 0; json_is_array(cs) && i < json_array_size(cs); i++) {
        const char *t = str(json_array_get(cs, i), "type", "");
        approved |= strcmp(t, "Approved") == 0;
        denied |= strcmp(t, "Denied") == 0;
        failed |= strcmp(t, "Failed") == 0;
    }
    char st[64], dur[32] = "<none>";
    snprintf(st, sizeof(st), "%s%s%s",
             denied     ? "Denied"
             : approved ? "Approved"
                        : "Pending",
             failed ? ",Failed" : "", *str(o, "status.certificate", "") ? ",Issued" : "");
    if (json_is_integer(at(o, "spec.expirationSeconds")))
        wc_http_table_duration(num(o, "spec.expirationSeconds"), dur, sizeof(dur));
    name(r, o);
    age(r, o);
    cell_str(r, str_or(o, "spec.signerName", "<none>"));
    cell_str(r, str(o, "spec.username", ""));
    cell_str(r, dur);
    cell_str(r, st);
}

static const col WEBHOOK_COLS[] = {
    NAME_COL,
    {"Webhooks", "integer", "", 0, "Webhooks in the configuration."},
    AGE_COL,
};

static void webhook_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, (json_int_t)count(o, "webhooks"));
    age(r, o);
}

/* autoscaling, quotas, aggregation ------------------------------------------------------ */

static const col HPA_COLS[] = {
    NAME_COL,
    {"Reference", "string", "", 0, "The object scaled."},
    {"Targets", "string", "", 0, "The metrics, current against target."},
    {"MinPods", "string", "", 0, "The fewest replicas."},
    {"MaxPods", "string", "", 0, "The most replicas."},
    {"Replicas", "string", "", 0, "Replicas now."},
    AGE_COL,
};

/* A quantity's text (it is a string, or a plain number), or NULL. */
static const char *qty_of(json_t *v, char *tmp, size_t size)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(tmp, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return tmp;
    }
    return NULL;
}

static const char *quantity(json_t *o, const char *path, char *tmp, size_t size)
{
    return qty_of(at(o, path), tmp, size);
}

/* One metric of an autoscaler: `kind` is "resource" or "containerResource" (a named resource,
 * with a utilization), or "pods", "object", "external" (values). */
static void hpa_metric(wc_buf *b, json_t *spec, json_t *st, const char *kind)
{
    char path[96], t1[32], t2[32];
    const char *cur;
    bool named = strcmp(kind, "resource") == 0 || strcmp(kind, "containerResource") == 0;
    const char *rname = "";
    if (named) {
        snprintf(path, sizeof(path), "%s.name", kind);
        rname = str(spec, path, "");
    }
    snprintf(path, sizeof(path), "%s.target.averageValue", kind);
    const char *avg = quantity(spec, path, t1, sizeof(t1));
    if (strcmp(kind, "pods") == 0 || avg) {
        snprintf(path, sizeof(path), "%s.current.averageValue", kind);
        cur = quantity(st, path, t2, sizeof(t2));
        if (named)
            wc_buf_printf(b, "%s: ", rname);
        wc_buf_printf(b, "%s/%s%s", cur ? cur : "<unknown>", avg ? avg : "",
                      !named && strcmp(kind, "pods") != 0 ? " (avg)" : "");
        return;
    }
    if (named) {
        snprintf(path, sizeof(path), "%s.current.averageUtilization", kind);
        json_t *cu = at(st, path);
        snprintf(path, sizeof(path), "%s.target.averageUtilization", kind);
        json_t *tu = at(spec, path);
        wc_buf_printf(b, "%s: ", rname);
        if (json_is_integer(cu))
            wc_buf_printf(b, "%" JSON_INTEGER_FORMAT "%%/", json_integer_value(cu));
        else
            wc_buf_puts(b, "<unknown>/");
        if (json_is_integer(tu))
            wc_buf_printf(b, "%" JSON_INTEGER_FORMAT "%%", json_integer_value(tu));
        else
            wc_buf_puts(b, "<auto>");
        return;
    }
    snprintf(path, sizeof(path), "%s.current.value", kind);
    cur = quantity(st, path, t2, sizeof(t2));
    snprintf(path, sizeof(path), "%s.target.value", kind);
    const char *val = quantity(spec, path, t1, sizeof(t1));
    wc_buf_printf(b, "%s/%s", cur ? cur : "<unknown>", val ? val : "");
}

static void hpa_cells(row *r, json_t *o)
{
    static const char *const KINDS[][2] = {{"Resource", "resource"},
                                           {"ContainerResource", "containerResource"},
                                           {"Pods", "pods"},
                                           {"Object", "object"},
                                           {"External", "external"}};
    json_t *specs = at(o, "spec.metrics"), *sts = at(o, "status.currentMetrics");
    size_t n = json_is_array(specs) ? json_array_size(specs) : 0;
    wc_buf t = {0};
    for (size_t i = 0; i < n && i < 2; i++) {
        json_t *spec = json_array_get(specs, i);
        json_t *st = json_is_array(sts) ? json_array_get(sts, i) : NULL;
        const char *type = str(spec, "type", "");
        const char *kind = NULL;
        for (size_t k = 0; k < sizeof(KINDS) / sizeof(KINDS[0]) && !kind; k++)
            if (strcmp(type, KINDS[k][0]) == 0)
                kind = KINDS[k][1];
        if (i)
            wc_buf_puts(&t, ", ");
        if (kind)
            hpa_metric(&t, spec, st, kind);
        else
            wc_buf_puts(&t, "<unknown type>");
    }
    if (!n)
        wc_buf_puts(&t, "<none>");
    else if (n > 2)
        wc_buf_printf(&t, " + %zu more...", n - 2);
    char ref[320], minp[32] = "<unset>";
    snprintf(ref, sizeof(ref), "%s/%s", str(o, "spec.scaleTargetRef.kind", ""),
             str(o, "spec.scaleTargetRef.name", ""));
    if (json_is_integer(at(o, "spec.minReplicas")))
        snprintf(minp, sizeof(minp), "%" JSON_INTEGER_FORMAT, num(o, "spec.minReplicas"));
    name(r, o);
    cell_str(r, ref);
    cell_buf(r, &t);
    cell_str(r, minp);
    cell_int(r, num(o, "spec.maxReplicas"));
    cell_int(r, num(o, "status.currentReplicas"));
    age(r, o);
}

static const col RESOURCEQUOTA_COLS[] = {
    NAME_COL,
    AGE_COL,
    {"Request", "string", "", 0, "Requests used out of the quota, by resource."},
    {"Limit", "string", "", 0, "Limits used out of the quota, by resource."},
};

static void resourcequota_cells(row *r, json_t *o)
{
    json_t *hard = at(o, "status.hard"), *used = at(o, "status.used");
    size_t n;
    const char **keys = sorted_keys(hard, &n);
    wc_buf req = {0}, lim = {0};
    size_t nreq = 0, nlim = 0;
    for (size_t i = 0; i < n; i++) {
        char t1[32], t2[32];
        /* the names hold dots (requests.cpu): looked up whole */
        const char *u = qty_of(json_object_get(used, keys[i]), t1, sizeof(t1));
        const char *h = qty_of(json_object_get(hard, keys[i]), t2, sizeof(t2));
        /* a resource named limits.<x> goes to Limit, the others to Request */
        bool is_limit = strncmp(keys[i], "limits.", 7) == 0;
        wc_buf_printf(is_limit ? &lim : &req, "%s%s: %s/%s",
                      (is_limit ? nlim++ : nreq++) ? ", " : "", keys[i], u ? u : "0", h ? h : "0");
    }
    if (n && !keys)
        req.oom = true;
    free(keys);
    name(r, o);
    age(r, o);
    cell_buf(r, &req);
    cell_buf(r, &lim);
}

static const col APISERVICE_COLS[] = {
    NAME_COL,
    {"Service", "string", "", 0, "The service that serves the API, or Local."},
    {"Available", "string", "", 0, "Whether the API is available, and why not."},
    AGE_COL,
};

static void apiservice_cells(row *r, json_t *o)
{
    char svc[320], avail[320] = "Unknown";
    if (json_is_object(at(o, "spec.service")))
        snprintf(svc, sizeof(svc), "%s/%s", str(o, "spec.service.namespace", ""),
                 str(o, "spec.service.name", ""));
    else
        snprintf(svc, sizeof(svc), "Local");
    json_t *c = condition(o, "status.conditions", "Available");
    if (c) {
        const char *st = str(c, "status", ""), *why = str(c, "reason", "");
        if (strcmp(st, "True") != 0 && *why)
            snprintf(avail, sizeof(avail), "%s (%s)", st, why);
        else
            snprintf(avail, sizeof(avail), "%s", st);
    }
    name(r, o);
    cell_str(r, svc);
    cell_str(r, avail);
    age(r, o);
}

/* The raw key space (/keys): each KeyValue's key, revisions and value. */
static const col KEYVALUE_COLS[] = {
    {"Name", "string", "name", 0, "The etcd key."},
    {"Revision", "integer", "", 0, "The revision of the key's last change."},
    {"Created", "integer", "", 1, "The revision that created the key."},
    {"Version", "integer", "", 1, "Changes of the key since it was created."},
    {"Value", "string", "", 0, "The value, or <binary> for one that is not UTF-8."},
};

static void keyvalue_cells(row *r, json_t *o)
{
    name(r, o);
    cell_int(r, num(o, "modRevision"));
    cell_int(r, num(o, "createRevision"));
    cell_int(r, num(o, "version"));
    cell_str(r, str(o, "value", at(o, "valueBase64") ? "<binary>" : ""));
}

/* Anything else: NAME and AGE, the columns of a custom resource without printer columns. */
static const col DEFAULT_COLS[] = {
    NAME_COL,
    {"Age", "date", "", 0, "Time since the object was created."},
};

static void default_cells(row *r, json_t *o)
{
    name(r, o);
    age(r, o);
}

#define P(g, plural, cols, fn)                                                                     \
    {                                                                                              \
        g, plural, cols, sizeof(cols) / sizeof(cols[0]), fn                                        \
    }
static const wc_http_table_printer PRINTERS[] = {
    P("", "pods", POD_COLS, pod_cells),
    P("", "services", SERVICE_COLS, service_cells),
    P("", "endpoints", ENDPOINTS_COLS, endpoints_cells),
    P("", "configmaps", CONFIGMAP_COLS, configmap_cells),
    P("", "secrets", SECRET_COLS, secret_cells),
    P("", "serviceaccounts", SERVICEACCOUNT_COLS, serviceaccount_cells),
    P("", "namespaces", NAMESPACE_COLS, namespace_cells),
    P("", "nodes", NODE_COLS, node_cells),
    P("", "persistentvolumes", PV_COLS, pv_cells),
    P("", "persistentvolumeclaims", PVC_COLS, pvc_cells),
    P("", "events", EVENT_COLS, event_cells),
    P("", "limitranges", ROLE_COLS, role_cells),
    P("", "replicationcontrollers", RC_COLS, rc_cells),
    P("", "podtemplates", PODTEMPLATE_COLS, podtemplate_cells),
    P("apps", "deployments", DEPLOYMENT_COLS, deployment_cells),
    P("apps", "statefulsets", STATEFULSET_COLS, statefulset_cells),
    P("apps", "daemonsets", DAEMONSET_COLS, daemonset_cells),
    P("apps", "replicasets", REPLICASET_COLS, replicaset_cells),
    P("apps", "controllerrevisions", CONTROLLERREVISION_COLS, controllerrevision_cells),
    P("batch", "jobs", JOB_COLS, job_cells),
    P("batch", "cronjobs", CRONJOB_COLS, cronjob_cells),
    P("policy", "poddisruptionbudgets", PDB_COLS, pdb_cells),
    P("networking.k8s.io", "ingresses", INGRESS_COLS, ingress_cells),
    P("networking.k8s.io", "ingressclasses", INGRESSCLASS_COLS, ingressclass_cells),
    P("networking.k8s.io", "networkpolicies", NETWORKPOLICY_COLS, networkpolicy_cells),
    P("discovery.k8s.io", "endpointslices", ENDPOINTSLICE_COLS, endpointslice_cells),
    P("coordination.k8s.io", "leases", LEASE_COLS, lease_cells),
    P("rbac.authorization.k8s.io", "roles", ROLE_COLS, role_cells),
    P("rbac.authorization.k8s.io", "clusterroles", ROLE_COLS, role_cells),
    P("rbac.authorization.k8s.io", "rolebindings", BINDING_COLS, binding_cells),
    P("rbac.authorization.k8s.io", "clusterrolebindings", BINDING_COLS, binding_cells),
    P("storage.k8s.io", "storageclasses", STORAGECLASS_COLS, storageclass_cells),
    P("storage.k8s.io", "csidrivers", CSIDRIVER_COLS, csidriver_cells),
    P("storage.k8s.io", "csinodes", CSINODE_COLS, csinode_cells),
    P("storage.k8s.io", "volumeattachments", VOLUMEATTACHMENT_COLS, volumeattachment_cells),
    P("scheduling.k8s.io", "priorityclasses", PRIORITYCLASS_COLS, priorityclass_cells),
    P("node.k8s.io", "runtimeclasses", RUNTIMECLASS_COLS, runtimeclass_cells),
    P("certificates.k8s.io", "certificatesigningrequests", CSR_COLS, csr_cells),
    P("admissionregistration.k8s.io", "mutatingwebhookconfigurations", WEBHOOK_COLS, webhook_cells),
    P("admissionregistration.k8s.io", "validatingwebhookconfigurations", WEBHOOK_COLS,
      webhook_cells),
    P("autoscaling", "horizontalpodautoscalers", HPA_COLS, hpa_cells),
    P("", "resourcequotas", RESOURCEQUOTA_COLS, resourcequota_cells),
    P("apiextensions.k8s.io", "customresourcedefinitions", ROLE_COLS, role_cells),
    P("apiregistration.k8s.io", "apiservices", APISERVICE_COLS, apiservice_cells),
};
static const wc_http_table_printer DEFAULT_PRINTER = P(NULL, NULL, DEFAULT_COLS, default_cells);
static const wc_http_table_printer KEYVALUE_PRINTER = P(NULL, NULL, KEYVALUE_COLS, keyvalue_cells);
#undef P

const wc_http_table_printer *wc_http_table_printer_for(const wc_http_resource *r)
{
    for (size_t i = 0; r && i < sizeof(PRINTERS) / sizeof(PRINTERS[0]); i++)
        if (strcmp(PRINTERS[i].group, r->group) == 0 && strcmp(PRINTERS[i].plural, r->plural) == 0)
            return &PRINTERS[i];
    return &DEFAULT_PRINTER;
}

/* ---------------------------------------------------------------------------------------
 * Tables
 * ------------------------------------------------------------------------------------- */

json_t *wc_http_table_columns(const wc_http_table_printer *p)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n_cols; i++) {
        const col *c = &p->cols[i];
        if (json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type",
                                               c->type, "format", c->format, "description",
                                               c->description, "priority", c->priority)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* What a row carries as `object`: a new reference (json null for None), or NULL. */
static json_t *row_object(const wc_http_table_opts *o, json_t *obj)
{
    switch (o->include) {
    case WC_HTTP_TABLE_OBJECT:
        return json_incref(obj);
    case WC_HTTP_TABLE_NONE:
        return json_null();
    case WC_HTTP_TABLE_METADATA:
        break;
    }
    json_t *meta = json_object_get(obj, "metadata");
    return json_pack("{s:s,s:s,s:o}", "kind", "PartialObjectMetadata", "apiVersion",
                     "meta.k8s.io/v1", "metadata", meta ? json_incref(meta) : json_object());
}

json_t *wc_http_table_row(const wc_http_table_opts *o, json_t *obj)
{
    row r = {.o = o, .cells = json_array()};
    if (!r.cells)
        return NULL;
    o->printer->cells(&r, obj);
    json_t *out = NULL;
    json_t *object = r.oom ? NULL : row_object(o, obj);
    if (object) {
        out = r.conditions ? json_pack("{s:O,s:O,s:O}", "cells", r.cells, "conditions",
                                       r.conditions, "object", object)
                           : json_pack("{s:O,s:O}", "cells", r.cells, "object", object);
    }
    json_decref(object);
    json_decref(r.cells);
    json_decref(r.conditions);
    return out;
}

/* Appends the row of one object's JSON; false on allocation failure. An object that does not
 * parse (the cache serves only objects, so not expected) is left out. */
static bool put_row(const wc_http_table_opts *o, wc_buf *b, const char *json, size_t len,
                    bool *first)
{
    json_t *obj = json_loadb(json, len, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return true;
    }
    json_t *rj = wc_http_table_row(o, obj);
    json_decref(obj);
    char *s = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
    json_decref(rj);
    if (!s)
        return false;
    if (!*first)
        wc_buf_puts(b, ",");
    *first = false;
    wc_buf_puts(b, s);
    free(s);
    return true;
}

/* {"kind":"Table","apiVersion":...,"metadata":{...},"columnDefinitions":..., up to the rows */
static void table_head(const wc_http_table_opts *o, wc_buf *b, const char *rv, const char *cont,
                       bool headers)
{
    wc_buf_puts(b, "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{");
    if (rv && *rv) {
        wc_buf_puts(b, "\"resourceVersion\":");
        wc_buf_json(b, rv, strlen(rv));
    }
    if (cont && *cont) {
        wc_buf_puts(b, rv && *rv ? ",\"continue\":" : "\"continue\":");
        wc_buf_json(b, cont, strlen(cont));
    }
    wc_buf_puts(b, "},\"columnDefinitions\":");
    json_t *cols = headers ? wc_http_table_columns(o->printer) : json_array();
    char *s = cols ? json_dumps(cols, JSON_COMPACT) : NULL;
    json_decref(cols);
    if (!s)
        b->oom = true;
    else
        wc_buf_puts(b, s);
    free(s);
    wc_buf_puts(b, ",\"rows\":[");
}

char *wc_http_table_list(const wc_http_table_opts *o, wc_kv *const *items, size_t n,
                         wc_family family, int64_t rev, const char *cont, size_t *len)
{
    wc_buf b = {0};
    char rv[32];
    snprintf(rv, sizeof(rv), "%" PRId64, rev);
    table_head(o, &b, rv, cont, true);
    bool first = true;
    for (size_t i = 0; i < n && !b.oom; i++) {
        size_t jl;
        char *j = wc_kv_encode_new(items[i], family, &jl); /* nothing kept on the state */
        if (j && !put_row(o, &b, j, jl, &first))
            b.oom = true;
        free(j);
    }
    wc_buf_puts(&b, "]}");
    if (b.oom) {
        wc_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* The Table of one object; headers: with the column definitions. */
static char *one_row(const wc_http_table_opts *o, const char *json, size_t json_len, bool headers,
                     size_t *len)
{
    json_t *obj = json_loadb(json, json_len, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    wc_buf b = {0};
    table_head(o, &b, str(obj, "metadata.resourceVersion", ""), NULL, headers);
    json_decref(obj);
    bool first = true;
    if (!put_row(o, &b, json, json_len, &first))
        b.oom = true;
    wc_buf_puts(&b, "]}");
    if (b.oom) {
        wc_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

char *wc_http_table_get(const wc_http_table_opts *o, const char *json, size_t json_len, size_t *len)
{
    return one_row(o, json, json_len, true, len);
}

/* ---------------------------------------------------------------------------------------
 * Watch streams
 * ------------------------------------------------------------------------------------- */

struct wc_http_table_watch {
    wc_http_table_opts o;
    bool headers_sent; /* the first event's Table carried the column definitions */
    wc_buf in;         /* bytes from the watcher that are not a whole frame yet */
    char *out;         /* the transformed frame being copied out */
    size_t out_len, out_off;
};

wc_http_table_watch *wc_http_table_watch_new(const wc_http_table_opts *o)
{
    wc_http_table_watch *tw = calloc(1, sizeof(*tw));
    if (tw)
        tw->o = *o;
    return tw;
}

void wc_http_table_watch_free(wc_http_table_watch *tw)
{
    if (!tw)
        return;
    wc_buf_free(&tw->in);
    free(tw->out);
    free(tw);
}

/* The frame `line` (one event, without its newline) with its object as a Table, into tw->out.
 * 0 or WC_ENOMEM. */
static int transform(wc_http_table_watch *tw, const char *line, size_t len)
{
    json_t *ev = json_loadb(line, len, 0, NULL);
    json_t *obj = json_object_get(ev, "object");
    const char *type = str(ev, "type", "");
    wc_buf b = {0};
    if (!json_is_object(obj) || strcmp(str(obj, "kind", ""), "Status") == 0) {
        wc_buf_put(&b, line, len); /* a Status (or what is not an event) passes as it is */
    } else {
        wc_buf_puts(&b, "{\"type\":");
        wc_buf_json(&b, type, strlen(type));
        wc_buf_puts(&b, ",\"object\":");
        size_t tl = 0;
        char *t = NULL;
        if (strcmp(type, "BOOKMARK") == 0) {
            /* Not an object to print: a Table with no row that carries the revision. */
            wc_buf bm = {0};
            table_head(&tw->o, &bm, str(obj, "metadata.resourceVersion", ""), NULL, false);
            wc_buf_puts(&bm, "]}");
            t = bm.oom ? NULL : bm.p;
            tl = bm.len;
            if (bm.oom)
                wc_buf_free(&bm);
        } else {
            char *s = json_dumps(obj, JSON_COMPACT);
            tw->o.now = (int64_t)time(NULL);
            t = s ? one_row(&tw->o, s, strlen(s), !tw->headers_sent, &tl) : NULL;
            free(s);
            if (t)
                tw->headers_sent = true;
        }
        if (!t)
            b.oom = true;
        else
            wc_buf_put(&b, t, tl);
        free(t);
        wc_buf_puts(&b, "}");
    }
    wc_buf_puts(&b, "\n");
    json_decref(ev);
    if (b.oom) {
        wc_buf_free(&b);
        return WC_ENOMEM;
    }
    free(tw->out);
    tw->out = b.p;
    tw->out_len = b.len;
    tw->out_off = 0;
    return 0;
}

int wc_http_table_watch_read(wc_http_table_watch *tw, wc_watcher *w, char *buf, size_t max,
                             size_t *n)
{
    *n = 0;
    char chunk[16384];
    for (;;) {
        if (tw->out_off < tw->out_len) {
            size_t k = tw->out_len - tw->out_off;
            if (k > max)
                k = max;
            memcpy(buf, tw->out + tw->out_off, k);
            tw->out_off += k;
            *n = k;
            return 0;
        }
        char *nl = tw->in.len ? memchr(tw->in.p, '\n', tw->in.len) : NULL;
        if (nl) {
            size_t line = (size_t)(nl - tw->in.p);
            int rc = transform(tw, tw->in.p, line);
            if (rc != 0)
                return rc;
            memmove(tw->in.p, nl + 1, tw->in.len - line - 1);
            tw->in.len -= line + 1;
            tw->in.p[tw->in.len] = '\0';
            continue;
        }
        size_t k = 0;
        int rc = wc_watcher_read(w, chunk, sizeof(chunk), &k);
        if (rc != 0)
            return rc; /* WC_EAGAIN: the watcher wakes the stream when there is more */
        wc_buf_put(&tw->in, chunk, k);
        if (tw->in.oom)
            return WC_ENOMEM;
    }
}
