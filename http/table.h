/*
 * Server-side printing (table.c): the meta.k8s.io/v1 Table kubectl asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the columns and cells the
 * apiserver's printers give each built-in resource, and NAME and AGE for any other. Private to
 * http/ and its tests.
 *
 * A request's way through it: wc_http_table_negotiate reads the Accept header and
 * includeObject; a get or a list then answers wc_http_table_get / wc_http_table_list instead
 * of its usual body, and a watch stream reads its frames through a wc_http_table_watch, which
 * turns each event's object into a Table of one row (the first carrying the column
 * definitions). Requests that do not ask for a Table never come here: their bytes are the
 * cache's own, unchanged.
 */
#ifndef WC_HTTP_TABLE_H
#define WC_HTTP_TABLE_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_internal.h"

/* The Content-Type of a Table answer (the media type it was asked with). */
#define WC_HTTP_TABLE_CTYPE "application/json;as=Table;v=v1;g=meta.k8s.io"

/* True when the first media range of `accept` that wcached can serve is the meta.k8s.io/v1
 * Table (NULL or empty: false). Ranges it cannot serve (a v1beta1 Table, YAML, protobuf) are
 * passed over, as the apiserver passes over the ones it cannot serve. */
bool wc_http_table_wanted(const char *accept);

/* The printer of a resource: its own for the built-ins that have one, else NAME and AGE. */
const wc_http_table_printer *wc_http_table_printer_for(const wc_http_resource *r);

/*
 * The one entry from the request handlers: fills *o from the request's Accept header and
 * includeObject parameter (o->printer stays NULL when no Table is asked; under /keys the
 * rows are the keys, their revisions and values). 0, or WC_EINVAL with a 400 Status in *err
 * for an includeObject the apiserver refuses too.
 */
int wc_http_table_negotiate(struct MHD_Connection *conn, const wc_http_route *rt,
                            wc_http_table_opts *o, wc_http_error *err);

/* A list's Table: one row per item (rendered in `family`), the list's revision and continue
 * token (NULL: none). A new string, or NULL on allocation failure. */
char *wc_http_table_list(const wc_http_table_opts *o, wc_kv *const *items, size_t n,
                         wc_family family, int64_t rev, const char *cont, size_t *len);

/* A get's Table: one row for the object `json` (its metadata.resourceVersion becomes the
 * Table's). A new string, or NULL on allocation failure or when json is not an object. */
char *wc_http_table_get(const wc_http_table_opts *o, const char *json, size_t json_len,
                        size_t *len);

/* A watch stream's transformer. Owned by its stream, used by its pump's thread only. */
typedef struct wc_http_table_watch wc_http_table_watch;
wc_http_table_watch *wc_http_table_watch_new(const wc_http_table_opts *o); /* NULL: ENOMEM */
void wc_http_table_watch_free(wc_http_table_watch *tw);                    /* NULL ok */
/* Same contract as wc_watcher_read, with each event's object a Table (a Status, the object of
 * an ERROR event, passes unchanged). */
int wc_http_table_watch_read(wc_http_table_watch *tw, wc_watcher *w, char *buf, size_t max,
                             size_t *n);

/* ---- Exposed for the unit tests ---- */

/* The apiserver's human duration (duration.HumanDuration) of `seconds`: "45s", "3m20s",
 * "5h12m", "3d4h", "2y30d", "<invalid>" for the future beyond its tolerance. */
void wc_http_table_duration(int64_t seconds, char *out, size_t size);
/* An RFC 3339 time ("2024-05-01T10:00:00Z", with a fraction or an offset) in seconds since
 * the epoch: 0, or WC_EINVAL. */
int wc_http_table_parse_time(const char *s, int64_t *out);
/* The column definitions (an array) and one row ({"cells":...,"object":...}) for obj: new
 * references, NULL on allocation failure. */
json_t *wc_http_table_columns(const wc_http_table_printer *p);
json_t *wc_http_table_row(const wc_http_table_opts *o, json_t *obj);

#endif
