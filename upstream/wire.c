/* etcd's JSON gateway wire; see wire.h. */
#include "wire.h"
#include "wcached/b64.h"
#include "wcached/buf.h"
#include "wcached/parse.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines ---------------------------------------------------------------------------- */

void wc_linebuf_init(wc_linebuf *lb, size_t max_line)
{
    memset(lb, 0, sizeof(*lb));
    lb->max_line = max_line;
}

void wc_linebuf_free(wc_linebuf *lb)
{
    wc_buf_free(&lb->b);
    memset(lb, 0, sizeof(*lb));
}

int wc_linebuf_feed(wc_linebuf *lb, const char *data, size_t n)
{
    if (n == 0)
        return 0;
    wc_buf *b = &lb->b;
    /* A buffer grown big (see wc_linebuf_next) whose bytes not yet handed out, with the new
     * ones, fit in a small one: moved to a small one, so that a flow of short lines that
     * never ends at a line's end does not keep it. */
    if (b->cap > WC_LINEBUF_KEEP && b->len - lb->off + n <= WC_LINEBUF_KEEP / 2) {
        wc_buf small = {0};
        wc_buf_put(&small, b->p + lb->off, b->len - lb->off);
        if (!small.oom) {
            wc_buf_free(b);
            *b = small;
            lb->off = 0;
        }
    }
    /* Drop what was handed out before growing. */
    if (lb->off > 0) {
        memmove(b->p, b->p + lb->off, b->len - lb->off);
        b->len -= lb->off;
        lb->off = 0;
    }
    wc_buf_put(b, data, n);
    if (b->oom)
        return WC_ENOMEM;
    /* A partial line longer than the bound can never become a valid message. Only the new
     * bytes are looked at: a line of megabytes comes in thousands of feeds. */
    const char *nl = memrchr(data, '\n', n);
    lb->tail = nl ? n - (size_t)(nl - data) - 1 : lb->tail + n;
    if (lb->tail > lb->max_line)
        return WC_ETOOBIG;
    return 0;
}

bool wc_linebuf_next(wc_linebuf *lb, const char **line, size_t *len)
{
    wc_buf *b = &lb->b;
    if (!b->p)
        return false;
    char *start = b->p + lb->off;
    /* No '\n' in the last `tail` bytes: a line of megabytes, fed in thousands of pieces, is
     * not searched again from its start after each. */
    size_t upto = b->len - lb->tail;
    char *nl = upto > lb->off ? memchr(start, '\n', upto - lb->off) : NULL;
    if (!nl) {
        /* A buffer that a long line made big (a watch response of thousands of events: 16
         * MiB after a start's refill) is not kept once all of it was handed out. */
        if (lb->off == b->len && b->cap > WC_LINEBUF_KEEP) {
            wc_buf_free(b);
            lb->off = 0;
        }
        return false;
    }
    *line = start;
    *len = (size_t)(nl - start);
    if (*len > 0 && start[*len - 1] == '\r')
        (*len)--;
    lb->off += (size_t)(nl - start) + 1;
    return true;
}

/* ---- encodings ------------------------------------------------------------------------ */

int wc_b64_decode(const char *s, size_t n, char **out, size_t *out_len)
{
    char *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return WC_ENOMEM;
    if (wc_b64_decode_to(s, n, buf, out_len, WC_B64_STD) != 0) {
        free(buf);
        return WC_EPROTO;
    }
    buf[*out_len] = '\0';
    *out = buf;
    return 0;
}

size_t wc_etcd_range_end(const char *prefix, size_t n, char *out)
{
    memcpy(out, prefix, n);
    while (n > 0) {
        unsigned char last = (unsigned char)out[n - 1];
        if (last < 0xff) {
            out[n - 1] = (char)(last + 1);
            return n;
        }
        n--;
    }
    out[0] = '\0';
    return 1;
}

/* ---- responses ------------------------------------------------------------------------ */

/*
 * A 64-bit number as the gateway sends it: a decimal string, or (tolerated) a JSON integer.
 * Absent means 0. Signed fields (revisions) and unsigned ones (cluster and member IDs, which
 * use all 64 bits) share the parsing; the unsigned kind refuses a sign.
 */
/* A decimal string as a signed or unsigned 64-bit number. */
static bool parse_number(const char *s, size_t n, bool is_signed, uint64_t *out)
{
    int64_t v;
    if (!is_signed)
        return wc_parse_u64(s, n, out) == 0;
    if (wc_parse_i64(s, n, INT64_MIN, INT64_MAX, &v) != 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

static int get_number(json_t *obj, const char *name, bool is_signed, uint64_t *out)
{
    json_t *v = json_object_get(obj, name);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return WC_EPROTO;
    return parse_number(json_string_value(v), json_string_length(v), is_signed, out) ? 0
                                                                                     : WC_EPROTO;
}

static int get_int64(json_t *obj, const char *name, int64_t *out)
{
    uint64_t u;
    int rc = get_number(obj, name, true, &u);
    *out = (int64_t)u;
    return rc;
}

static int get_uint64(json_t *obj, const char *name, uint64_t *out)
{
    return get_number(obj, name, false, out);
}

static int parse_header(json_t *h, wc_wire_header *out)
{
    memset(out, 0, sizeof(*out));
    if (!h)
        return 0;
    if (!json_is_object(h))
        return WC_EPROTO;
    int rc = get_uint64(h, "cluster_id", &out->cluster_id);
    if (!rc)
        rc = get_uint64(h, "member_id", &out->member_id);
    if (!rc)
        rc = get_int64(h, "revision", &out->revision);
    if (!rc)
        rc = get_int64(h, "raft_term", &out->raft_term);
    return rc;
}

static int get_b64(json_t *obj, const char *name, char **buf, size_t *len)
{
    json_t *v = json_object_get(obj, name);
    if (!v) {
        *buf = calloc(1, 1);
        *len = 0;
        return *buf ? 0 : WC_ENOMEM;
    }
    if (!json_is_string(v))
        return WC_EPROTO;
    return wc_b64_decode(json_string_value(v), json_string_length(v), buf, len);
}

void wc_wire_kv_free(wc_wire_kv *kv)
{
    free(kv->key_buf);
    free(kv->value_buf);
    memset(kv, 0, sizeof(*kv));
}

static int parse_kv(json_t *j, wc_wire_kv *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return WC_EPROTO;
    size_t klen = 0, vlen = 0;
    int rc = get_b64(j, "key", &out->key_buf, &klen);
    if (!rc)
        rc = get_b64(j, "value", &out->value_buf, &vlen);
    wc_kv_spec *s = &out->spec;
    if (!rc)
        rc = get_int64(j, "create_revision", &s->create_rev);
    if (!rc)
        rc = get_int64(j, "mod_revision", &s->mod_rev);
    if (!rc)
        rc = get_int64(j, "version", &s->version);
    if (!rc)
        rc = get_int64(j, "lease", &s->lease);
    if (!rc && (klen == 0 || s->mod_rev < 0 || s->create_rev < 0))
        rc = WC_EPROTO;
    if (rc) {
        wc_wire_kv_free(out);
        return rc;
    }
    s->key = out->key_buf;
    s->key_len = klen;
    s->value = out->value_buf;
    s->value_len = vlen;
    return 0;
}

/* The gateway's error object: {"error":{"grpc_code":N,"http_code":N,"message":"..."}} (the
 * key is "error" on streams; plain responses use "error"/"message"/"code" at the top). */
static bool gateway_error(json_t *root, char *msg, size_t msg_len)
{
    json_t *e = json_object_get(root, "error");
    if (!e && !json_object_get(root, "code"))
        return false;
    json_t *m =
        json_is_object(e) ? json_object_get(e, "message") : json_object_get(root, "message");
    if (!m && json_is_string(e))
        m = e;
    snprintf(msg, msg_len, "%s", json_is_string(m) ? json_string_value(m) : "error");
    return true;
}

void wc_range_resp_free(wc_range_resp *r)
{
    for (size_t i = 0; i < r->n; i++)
        wc_wire_kv_free(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof(*r));
}

/* ---- the range response's fast path ---------------------------------------------------
 *
 * A cold start parses a few hundred MB of range responses; jansson builds a tree of them,
 * byte by byte. The gateway's answer always has one shape (an object of "header", "kvs",
 * "more", "count"; 64-bit numbers as decimal strings; keys and values as base64, which needs
 * no escapes), so a scanner for exactly that shape takes each kv straight from the text. It
 * declines (WC_EAGAIN) anything else: escapes, JSON numbers, error objects, repeated fields,
 * trailing bytes. Then the jansson parser below answers, so the fast path changes no result,
 * only the time; the tests and the fuzz target hold both to that.
 */

typedef struct scan {
    const char *p, *end;
} scan;

static void ws(scan *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static bool eat(scan *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes: its bytes in [*s, *s + *n). */
static bool str(scan *c, const char **s, size_t *n)
{
    if (!eat(c, '"'))
        return false;
    const char *b = c->p;
    for (; c->end - c->p >= 8; c->p += 8) {
        uint64_t w = wc_word8(c->p);
        if (wc_word8_below(w, 0x20) | wc_word8_from_7f(w) | wc_word8_has(w, '"') |
            wc_word8_has(w, '\\'))
            break;
    }
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\\' || ch < 0x20 || ch >= 0x7f)
            return false;
        c->p++;
    }
    if (c->p == c->end)
        return false;
    *s = b;
    *n = (size_t)(c->p - b);
    c->p++;
    return true;
}

/* A base64 string: its bytes up to the next quote, which the decoder then checks (it takes no
 * escape, control or non-ASCII byte, so one it declines leaves the line to jansson). */
static bool b64_str(scan *c, const char **s, size_t *n)
{
    if (!eat(c, '"'))
        return false;
    const char *q = memchr(c->p, '"', (size_t)(c->end - c->p));
    if (!q)
        return false;
    *s = c->p;
    *n = (size_t)(q - c->p);
    c->p = q + 1;
    return true;
}

/* A 64-bit number as a decimal string, with get_number's rules. */
static bool num(scan *c, bool is_signed, uint64_t *out)
{
    const char *s;
    size_t n;
    return str(c, &s, &n) && parse_number(s, n, is_signed, out);
}

/* The fields of one object, `name: value` pairs handed to `field` one by one. */
static bool object(scan *c, bool (*field)(scan *c, const char *k, size_t kn, void *arg), void *arg)
{
    if (!eat(c, '{'))
        return false;
    if (eat(c, '}'))
        return true;
    do {
        const char *k;
        size_t kn;
        if (!str(c, &k, &kn) || !eat(c, ':') || !field(c, k, kn, arg))
            return false;
    } while (eat(c, ','));
    return eat(c, '}');
}

#define IS(k, kn, lit) ((kn) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* Each field at most once: jansson would keep the last of two, so two go to jansson. */
static bool once(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

typedef struct header_scan {
    wc_wire_header *h;
    unsigned seen;
} header_scan;

static bool header_field(scan *c, const char *k, size_t kn, void *arg)
{
    header_scan *hs = arg;
    uint64_t v;
    if (IS(k, kn, "cluster_id"))
        return once(&hs->seen, 1) && num(c, false, &hs->h->cluster_id);
    if (IS(k, kn, "member_id"))
        return once(&hs->seen, 2) && num(c, false, &hs->h->member_id);
    if (IS(k, kn, "revision") && once(&hs->seen, 4) && num(c, true, &v)) {
        hs->h->revision = (int64_t)v;
        return true;
    }
    if (IS(k, kn, "raft_term") && once(&hs->seen, 8) && num(c, true, &v)) {
        hs->h->raft_term = (int64_t)v;
        return true;
    }
    return false;
}

typedef struct kv_scan {
    const char *key, *value;
    size_t key_n, value_n;
    int64_t create_rev, mod_rev, version, lease;
    unsigned seen;
} kv_scan;

static bool kv_field(scan *c, const char *k, size_t kn, void *arg)
{
    kv_scan *ks = arg;
    uint64_t v;
    int64_t *dst = NULL;
    if (IS(k, kn, "key"))
        return once(&ks->seen, 1) && b64_str(c, &ks->key, &ks->key_n);
    if (IS(k, kn, "value"))
        return once(&ks->seen, 2) && b64_str(c, &ks->value, &ks->value_n);
    if (IS(k, kn, "create_revision") && once(&ks->seen, 4))
        dst = &ks->create_rev;
    else if (IS(k, kn, "mod_revision") && once(&ks->seen, 8))
        dst = &ks->mod_rev;
    else if (IS(k, kn, "version") && once(&ks->seen, 16))
        dst = &ks->version;
    else if (IS(k, kn, "lease") && once(&ks->seen, 32))
        dst = &ks->lease;
    if (!dst || !num(c, true, &v))
        return false;
    *dst = (int64_t)v;
    return true;
}

/* Decodes a base64 span into a new buffer (an empty one for an absent field). */
static bool b64_field(const char *s, size_t n, char **buf, size_t *len)
{
    if (!s) {
        *buf = calloc(1, 1);
        *len = 0;
        return *buf != NULL;
    }
    return wc_b64_decode(s, n, buf, len) == 0;
}

/* A scanned kv decoded into *kv, with parse_kv's checks. */
static bool kv_take(const kv_scan *ks, wc_wire_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    size_t klen = 0, vlen = 0;
    bool ok = b64_field(ks->key, ks->key_n, &kv->key_buf, &klen) &&
              b64_field(ks->value, ks->value_n, &kv->value_buf, &vlen) && klen > 0 &&
              ks->mod_rev >= 0 && ks->create_rev >= 0;
    if (!ok) {
        wc_wire_kv_free(kv);
        return false;
    }
    kv->spec = (wc_kv_spec){.key = kv->key_buf,
                            .key_len = klen,
                            .value = kv->value_buf,
                            .value_len = vlen,
                            .create_rev = ks->create_rev,
                            .mod_rev = ks->mod_rev,
                            .version = ks->version,
                            .lease = ks->lease};
    return true;
}

/* arr (*cap items of `size` bytes, n of them used) with room for one more: itself, or moved
 * to twice the room (`first` items at first). NULL when that fails; arr is then untouched. */
static void *room_for(void *arr, size_t n, size_t *cap, size_t first, size_t size)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : first;
    void *p = realloc(arr, c * size);
    if (p)
        *cap = c;
    return p;
}

typedef struct range_scan {
    wc_range_resp *r;
    size_t cap;
    unsigned seen;
} range_scan;

static bool kvs_array(scan *c, range_scan *rs)
{
    wc_range_resp *r = rs->r;
    if (!eat(c, '['))
        return false;
    if (eat(c, ']'))
        return true;
    do {
        kv_scan ks = {0};
        if (!object(c, kv_field, &ks))
            return false;
        wc_wire_kv *kvs = room_for(r->kvs, r->n, &rs->cap, 1024, sizeof(*kvs));
        if (!kvs)
            return false;
        r->kvs = kvs;
        if (!kv_take(&ks, &r->kvs[r->n]))
            return false;
        r->n++;
    } while (eat(c, ','));
    return eat(c, ']');
}

static bool range_field(scan *c, const char *k, size_t kn, void *arg)
{
    range_scan *rs = arg;
    uint64_t v;
    if (IS(k, kn, "header")) {
        header_scan hs = {.h = &rs->r->header};
        return once(&rs->seen, 1) && object(c, header_field, &hs);
    }
    if (IS(k, kn, "kvs"))
        return once(&rs->seen, 2) && kvs_array(c, rs);
    if (IS(k, kn, "count") && once(&rs->seen, 4) && num(c, true, &v)) {
        rs->r->count = (int64_t)v;
        return true;
    }
    if (IS(k, kn, "more") && once(&rs->seen, 8)) {
        ws(c);
        if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
            c->p += 4;
            rs->r->more = true;
            return true;
        }
        if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
            c->p += 5;
            return true;
        }
    }
    return false; /* anything else ("error", "code", ...) is for jansson */
}

int wc_etcd_parse_range_fast(const char *body, size_t len, wc_range_resp *out)
{
    memset(out, 0, sizeof(*out));
    scan c = {.p = body, .end = body + len};
    range_scan rs = {.r = out};
    bool ok = object(&c, range_field, &rs) && (ws(&c), c.p == c.end) && out->header.revision > 0;
    if (ok)
        return 0;
    wc_range_resp_free(out);
    return WC_EAGAIN;
}

int wc_etcd_parse_range(const char *body, size_t len, wc_range_resp *out)
{
    if (wc_etcd_parse_range_fast(body, len, out) == 0)
        return 0;
    return wc_etcd_parse_range_json(body, len, out);
}

static bool spec_equal(const wc_kv_spec *x, const wc_kv_spec *y)
{
    return x->key_len == y->key_len && x->value_len == y->value_len &&
           memcmp(x->key, y->key, x->key_len) == 0 &&
           memcmp(x->value, y->value, x->value_len) == 0 && x->create_rev == y->create_rev &&
           x->mod_rev == y->mod_rev && x->version == y->version && x->lease == y->lease;
}

bool wc_range_resp_equal(const wc_range_resp *a, const wc_range_resp *b)
{
    if (memcmp(&a->header, &b->header, sizeof(a->header)) != 0 || a->count != b->count ||
        a->more != b->more || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!spec_equal(&a->kvs[i].spec, &b->kvs[i].spec))
            return false;
    return true;
}

int wc_etcd_parse_range_json(const char *body, size_t len, wc_range_resp *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return WC_EPROTO;
    }
    char msg[160];
    int rc = 0;
    if (gateway_error(root, msg, sizeof(msg))) {
        rc = strstr(msg, "compacted") ? WC_EEXPIRED : WC_EIO;
        goto out;
    }
    rc = parse_header(json_object_get(root, "header"), &out->header);
    if (!rc)
        rc = get_int64(root, "count", &out->count);
    json_t *more = json_object_get(root, "more");
    if (!rc && more && !json_is_boolean(more))
        rc = WC_EPROTO;
    out->more = json_is_true(more);
    json_t *kvs = json_object_get(root, "kvs");
    if (!rc && kvs && !json_is_array(kvs))
        rc = WC_EPROTO;
    if (!rc && json_array_size(kvs) > 0) {
        out->kvs = calloc(json_array_size(kvs), sizeof(*out->kvs));
        if (!out->kvs)
            rc = WC_ENOMEM;
        for (size_t i = 0; !rc && i < json_array_size(kvs); i++) {
            rc = parse_kv(json_array_get(kvs, i), &out->kvs[i]);
            if (!rc)
                out->n++;
        }
    }
    if (!rc && out->header.revision <= 0)
        rc = WC_EPROTO;
out:
    json_decref(root);
    if (rc)
        wc_range_resp_free(out);
    return rc;
}

void wc_watch_resp_free(wc_watch_resp *r)
{
    for (size_t i = 0; i < r->n; i++) {
        wc_wire_kv_free(&r->events[i].kv);
        wc_wire_kv_free(&r->events[i].prev);
    }
    free(r->events);
    memset(r, 0, sizeof(*r));
}

int wc_etcd_parse_watch_json(const char *line, size_t len, wc_watch_resp *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(line, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return WC_EPROTO;
    }
    int rc = 0;
    json_t *res = json_object_get(root, "result");
    if (!res) {
        if (gateway_error(root, out->message, sizeof(out->message)))
            out->kind = WC_WATCH_ERROR;
        else
            rc = WC_EPROTO;
        goto out;
    }
    if (!json_is_object(res)) {
        rc = WC_EPROTO;
        goto out;
    }
    rc = parse_header(json_object_get(res, "header"), &out->header);
    if (!rc)
        rc = get_int64(res, "compact_revision", &out->compact_revision);
    if (!rc)
        rc = get_int64(res, "watch_id", &out->watch_id);
    if (rc)
        goto out;
    json_t *evs = json_object_get(res, "events");
    if (evs && !json_is_array(evs)) {
        rc = WC_EPROTO;
        goto out;
    }
    if (json_is_true(json_object_get(res, "canceled"))) {
        out->kind = WC_WATCH_CANCELED;
        json_t *reason = json_object_get(res, "cancel_reason");
        snprintf(out->message, sizeof(out->message), "%s",
                 json_is_string(reason) ? json_string_value(reason) : "");
        goto out;
    }
    if (out->compact_revision > 0) {
        /* etcd 3.4 also reports compaction this way without "canceled". */
        out->kind = WC_WATCH_CANCELED;
        goto out;
    }
    if (json_is_true(json_object_get(res, "created"))) {
        out->kind = WC_WATCH_CREATED;
        goto out;
    }
    size_t n = json_array_size(evs);
    if (n == 0) {
        out->kind = WC_WATCH_PROGRESS;
        if (out->header.revision <= 0)
            rc = WC_EPROTO;
        goto out;
    }
    out->kind = WC_WATCH_EVENTS;
    out->events = calloc(n, sizeof(*out->events));
    if (!out->events) {
        rc = WC_ENOMEM;
        goto out;
    }
    int64_t last = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *ev = json_array_get(evs, i);
        wc_wire_event *e = &out->events[i];
        json_t *type = json_object_get(ev, "type");
        if (!json_is_object(ev) || (type && !json_is_string(type))) {
            rc = WC_EPROTO;
            break;
        }
        const char *t = type ? json_string_value(type) : "PUT";
        if (strcmp(t, "DELETE") == 0)
            e->deleted = true;
        else if (strcmp(t, "PUT") != 0) {
            rc = WC_EPROTO;
            break;
        }
        rc = parse_kv(json_object_get(ev, "kv"), &e->kv);
        if (rc)
            break;
        out->n++;
        json_t *prev = json_object_get(ev, "prev_kv");
        if (prev) {
            rc = parse_kv(prev, &e->prev);
            if (rc)
                break;
            e->has_prev = true;
        }
        /* Events come in revision order; a delete's kv carries the deletion's revision. */
        if (e->kv.spec.mod_rev < last)
            rc = WC_EPROTO;
        last = e->kv.spec.mod_rev;
    }
out:
    json_decref(root);
    if (rc)
        wc_watch_resp_free(out);
    return rc;
}

/* ---- the watch response's fast path ---------------------------------------------------
 *
 * A start's refill takes thousands of changes through the watch, each line parsed once.
 * The same scanner as the range's takes the usual shape of a line with changes,
 * {"result":{"header":{...},"watch_id":"1","events":[{"type":"DELETE","kv":{...}},...]}};
 * anything else (created, canceled,
 * compaction, progress, errors, a field it does not know) it declines to jansson.
 */

typedef struct event_scan {
    kv_scan ks, prev;
    bool deleted;
    unsigned seen;
} event_scan;

static bool event_field(scan *c, const char *k, size_t kn, void *arg)
{
    event_scan *es = arg;
    if (IS(k, kn, "type")) {
        const char *t;
        size_t tn;
        if (!once(&es->seen, 1) || !str(c, &t, &tn))
            return false;
        es->deleted = IS(t, tn, "DELETE");
        return es->deleted || IS(t, tn, "PUT");
    }
    if (IS(k, kn, "kv"))
        return once(&es->seen, 2) && object(c, kv_field, &es->ks);
    if (IS(k, kn, "prev_kv"))
        return once(&es->seen, 4) && object(c, kv_field, &es->prev);
    return false;
}

typedef struct watch_scan {
    wc_watch_resp *r;
    size_t cap;
    unsigned seen;
} watch_scan;

static bool events_array(scan *c, watch_scan *ws_)
{
    wc_watch_resp *r = ws_->r;
    if (!eat(c, '['))
        return false;
    if (eat(c, ']'))
        return true;
    int64_t last = 0;
    do {
        event_scan es = {0};
        if (!object(c, event_field, &es) || !(es.seen & 2))
            return false;
        wc_wire_event *evs = room_for(r->events, r->n, &ws_->cap, 64, sizeof(*evs));
        if (!evs)
            return false;
        r->events = evs;
        wc_wire_event *e = &r->events[r->n];
        memset(&e->prev, 0, sizeof(e->prev));
        if (!kv_take(&es.ks, &e->kv))
            return false;
        e->deleted = es.deleted;
        e->has_prev = false;
        r->n++;
        if ((es.seen & 4) && !kv_take(&es.prev, &e->prev))
            return false;
        e->has_prev = (es.seen & 4) != 0;
        /* Events come in revision order: one out of it is jansson's to refuse. */
        if (e->kv.spec.mod_rev < last)
            return false;
        last = e->kv.spec.mod_rev;
    } while (eat(c, ','));
    return eat(c, ']');
}

static bool result_field(scan *c, const char *k, size_t kn, void *arg)
{
    watch_scan *wsc = arg;
    uint64_t v;
    if (IS(k, kn, "header")) {
        header_scan hs = {.h = &wsc->r->header};
        return once(&wsc->seen, 1) && object(c, header_field, &hs);
    }
    if (IS(k, kn, "events"))
        return once(&wsc->seen, 2) && events_array(c, wsc);
    if (IS(k, kn, "watch_id") && once(&wsc->seen, 4) && num(c, true, &v)) {
        wsc->r->watch_id = (int64_t)v;
        return true;
    }
    return false;
}

static bool watch_root_field(scan *c, const char *k, size_t kn, void *arg)
{
    return IS(k, kn, "result") && object(c, result_field, arg);
}

int wc_etcd_parse_watch_fast(const char *line, size_t len, wc_watch_resp *out)
{
    memset(out, 0, sizeof(*out));
    scan c = {.p = line, .end = line + len};
    watch_scan wsc = {.r = out};
    bool ok = object(&c, watch_root_field, &wsc) && (ws(&c), c.p == c.end) && out->n > 0;
    if (ok) {
        out->kind = WC_WATCH_EVENTS;
        return 0;
    }
    wc_watch_resp_free(out);
    return WC_EAGAIN;
}

int wc_etcd_parse_watch(const char *line, size_t len, wc_watch_resp *out)
{
    if (wc_etcd_parse_watch_fast(line, len, out) == 0)
        return 0;
    return wc_etcd_parse_watch_json(line, len, out);
}

bool wc_watch_resp_equal(const wc_watch_resp *a, const wc_watch_resp *b)
{
    if (a->kind != b->kind || memcmp(&a->header, &b->header, sizeof(a->header)) != 0 ||
        a->compact_revision != b->compact_revision || a->watch_id != b->watch_id || a->n != b->n ||
        strcmp(a->message, b->message) != 0)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const wc_wire_event *x = &a->events[i], *y = &b->events[i];
        if (x->deleted != y->deleted || x->has_prev != y->has_prev ||
            !spec_equal(&x->kv.spec, &y->kv.spec) ||
            (x->has_prev && !spec_equal(&x->prev.spec, &y->prev.spec)))
            return false;
    }
    return true;
}
