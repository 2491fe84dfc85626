/*
 * etcd's JSON gateway wire, as pure functions: line splitting, base64, key ranges, and the
 * parsing of range and watch responses into plain structs. No I/O here, so every case is
 * unit-tested and fuzzed. Parsers return 0 or a negative wc_err (WC_EPROTO for anything that
 * breaks the gateway's protocol) and never print.
 *
 * The gateway's quirks, all handled here: one {"result":...} object per line; int64s as
 * strings; keys and values base64; fields at their default omitted (a PUT event has no
 * "type", an empty response no "events"); errors as {"error":{...}}.
 */
#ifndef WCACHED_UPSTREAM_WIRE_H
#define WCACHED_UPSTREAM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/buf.h"
#include "wcached/err.h"
#include "wcached/change.h"

/* ---- lines ---------------------------------------------------------------------------- */

/* Collects a byte stream and hands out whole lines (without the '\n'). Its buffer, once grown
 * past WC_LINEBUF_KEEP bytes, is given back when every byte of it was handed out. */
#define WC_LINEBUF_KEEP (256 * 1024)
typedef struct wc_linebuf {
    wc_buf b; /* bytes [off, b.len) are not yet handed out */
    size_t off;
    size_t tail; /* bytes after the last '\n' fed */
    size_t max_line;
} wc_linebuf;

void wc_linebuf_init(wc_linebuf *lb, size_t max_line);
void wc_linebuf_free(wc_linebuf *lb);
/* Appends bytes. 0, WC_ENOMEM, or WC_ETOOBIG when a line grows past max_line. */
int wc_linebuf_feed(wc_linebuf *lb, const char *data, size_t n);
/* The next whole line, valid until the next feed or call: true with line and len set, or
 * false. */
bool wc_linebuf_next(wc_linebuf *lb, const char **line, size_t *len);

/* ---- encodings ------------------------------------------------------------------------ */

/* Decodes etcd's base64 (wcached/b64.h, standard kind) into a new buffer with a NUL after it.
 * 0, WC_EPROTO for a bad character or length, or WC_ENOMEM. */
int wc_b64_decode(const char *s, size_t n, char **out, size_t *out_len);

/* The range_end of a prefix as etcd computes it (the prefix with its last byte below 0xff
 * incremented, trailing 0xff dropped; "\0", meaning "to the end", when nothing is left).
 * Writes into out (room for n bytes) and returns its length (1 for "\0"). */
size_t wc_etcd_range_end(const char *prefix, size_t n, char *out);

/* ---- responses ------------------------------------------------------------------------ */

/* A decoded key-value; the spec points into `key_buf`/`value_buf`, which it owns. */
typedef struct wc_wire_kv {
    wc_kv_spec spec;
    char *key_buf, *value_buf;
} wc_wire_kv;

void wc_wire_kv_free(wc_wire_kv *kv);

typedef struct wc_wire_header {
    uint64_t cluster_id, member_id;
    int64_t revision, raft_term;
} wc_wire_header;

typedef struct wc_range_resp {
    wc_wire_header header;
    wc_wire_kv *kvs;
    size_t n;
    bool more;
    int64_t count;
} wc_range_resp;

/* Parses a /v3/kv/range response body: 0; WC_EEXPIRED when the revision asked for was
 * compacted; WC_EIO for another error etcd reported; WC_EPROTO; WC_ENOMEM. */
int wc_etcd_parse_range(const char *body, size_t len, wc_range_resp *out);
/* The two ways wc_etcd_parse_range takes: a scanner for the gateway's usual shape, which
 * answers 0 or declines with WC_EAGAIN (and *out empty), and jansson for everything. On what
 * the fast path takes, both give the same result (wc_range_resp_equal). */
int wc_etcd_parse_range_fast(const char *body, size_t len, wc_range_resp *out);
int wc_etcd_parse_range_json(const char *body, size_t len, wc_range_resp *out);
bool wc_range_resp_equal(const wc_range_resp *a, const wc_range_resp *b);
void wc_range_resp_free(wc_range_resp *r);

typedef enum wc_watch_kind {
    WC_WATCH_CREATED,  /* the watch was created */
    WC_WATCH_EVENTS,   /* one or more changes */
    WC_WATCH_PROGRESS, /* no change: every change up to header.revision was sent */
    WC_WATCH_CANCELED, /* canceled; compact_revision > 0 when history was compacted */
    WC_WATCH_ERROR,    /* {"error":...} from the gateway */
} wc_watch_kind;

/* One change, and the key's state before it when the watch asked for prev_kv and etcd had it
 * (has_prev). */
typedef struct wc_wire_event {
    bool deleted;
    bool has_prev;
    wc_wire_kv kv;
    wc_wire_kv prev;
} wc_wire_event;

typedef struct wc_watch_resp {
    wc_watch_kind kind;
    wc_wire_header header;
    wc_wire_event *events;
    size_t n;
    int64_t compact_revision;
    int64_t watch_id;  /* the watch it is for (0 when absent); -1: the stream's (progress) */
    char message[160]; /* cancel_reason or the error's message */
} wc_watch_resp;

/* Parses one line of the /v3/watch stream: 0, WC_EPROTO or WC_ENOMEM. */
int wc_etcd_parse_watch(const char *line, size_t len, wc_watch_resp *out);
/* Its two ways, as for the range: a scanner for a line of changes in the gateway's usual shape
 * (0, or WC_EAGAIN with *out empty) and jansson for everything; where the scanner answers,
 * both give the same result (wc_watch_resp_equal). */
int wc_etcd_parse_watch_fast(const char *line, size_t len, wc_watch_resp *out);
int wc_etcd_parse_watch_json(const char *line, size_t len, wc_watch_resp *out);
bool wc_watch_resp_equal(const wc_watch_resp *a, const wc_watch_resp *b);
void wc_watch_resp_free(wc_watch_resp *r);

#endif
