/*
 * libFuzzer target: arbitrary request paths through the router, with the built-in resource
 * table plus one extension group. Beyond "no crash, no leak", every answer must be well-formed:
 * an error is WC_ENOENT with a 404 or WC_EINVAL with a 400 and leaves the route empty; a data
 * route's key is a whole C string of key_len bytes; a Kubernetes key lies under
 * <prefix>/<resource path>/, names a valid namespace only for a namespaced resource, and ends
 * in the decoded name (which is never ".", ".." or holds '/') unless it is a prefix ending in
 * '/'; a /keys route is "" or starts with '/', lists a prefix exactly when the raw path ends
 * in '/' (an escaped "%2F" at the end names a key ending in '/'), and a get's name is its key.
 * Discovery routes name a group (and version) the table has. See tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "wcached/err.h"
#include "wcached/parse.h"

#define PREFIX "/registry"

static wc_http_resources *table;

static bool starts_with(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    return n >= pn && memcmp(s, p, pn) == 0;
}

static void check_k8s(const wc_http_route *r)
{
    const wc_http_resource *res = r->res;
    if (!res || r->family != WC_FAMILY_K8S || strcmp(r->kind_name, res->kind) != 0 ||
        strcmp(r->api_version, res->api_version) != 0)
        abort();
    /* <prefix>/<path>/ first */
    size_t pl = strlen(PREFIX), rl = strlen(res->path);
    if (!starts_with(r->key, r->key_len, PREFIX "/") || r->key_len < pl + 1 + rl + 1 ||
        memcmp(r->key + pl + 1, res->path, rl) != 0 || r->key[pl + 1 + rl] != '/')
        abort();
    const char *rest = r->key + pl + 1 + rl + 1;
    size_t rest_len = r->key_len - (size_t)(rest - r->key);
    /* then <ns>/ for a namespaced resource read in one namespace */
    const char *slash = memchr(rest, '/', rest_len);
    if (slash) {
        if (!res->namespaced || !wc_dns_label_valid(rest, (size_t)(slash - rest)))
            abort();
        rest_len -= (size_t)(slash + 1 - rest);
        rest = slash + 1;
    }
    /* then the name, or nothing for a list or watch */
    if (r->prefix) {
        if (r->name || rest_len != 0)
            abort();
        return;
    }
    size_t nl = r->name ? strlen(r->name) : 0;
    if (!r->name || nl != rest_len || memcmp(rest, r->name, nl) != 0 || nl == 0 ||
        nl > WC_HTTP_MAX_NAME || strcmp(r->name, ".") == 0 || strcmp(r->name, "..") == 0 ||
        memchr(r->name, '/', nl) || memchr(r->name, '%', nl))
        abort();
    if (res->namespaced && !slash)
        abort(); /* a namespaced object is got only in its namespace */
}

static void check(const char *path, int rc, const wc_http_route *r, const wc_http_error *e)
{
    if (rc != 0) {
        static const wc_http_route empty;
        if (!((rc == WC_ENOENT && e->code == 404) || (rc == WC_EINVAL && e->code == 400)))
            abort();
        if (!e->reason || memcmp(r, &empty, sizeof(empty)) != 0)
            abort();
        return;
    }
    switch (r->kind) {
    case WC_HTTP_R_HEALTHZ:
    case WC_HTTP_R_READYZ:
    case WC_HTTP_R_METRICS:
    case WC_HTTP_R_API_VERSIONS:
    case WC_HTTP_R_API_GROUPS:
    case WC_HTTP_R_VERSION:
        if (r->key || r->group || r->version || path[0] != '/')
            abort();
        return;
    case WC_HTTP_R_ETCD: /* etcd_api.c reads the rest of the path, and the body */
        if (r->key || r->group || strncmp(path, "/v3/", 4) != 0)
            abort();
        return;
    case WC_HTTP_R_API_GROUP:
        if (!r->group || r->version || !wc_http_resources_has(table, r->group, NULL))
            abort();
        return;
    case WC_HTTP_R_API_RESOURCES:
        if (!r->group || !r->version || !wc_http_resources_has(table, r->group, r->version))
            abort();
        return;
    case WC_HTTP_R_DATA:
        break;
    default:
        abort();
    }
    if (!r->key || strlen(r->key) != r->key_len || !r->kind_name || !r->api_version)
        abort();
    if (r->family == WC_FAMILY_K8S) {
        check_k8s(r);
        return;
    }
    if (r->family != WC_FAMILY_KEYS || r->res || r->watch_path || strncmp(path, "/keys", 5) != 0)
        abort();
    if (r->key_len == 0) {
        if (!r->prefix || r->name)
            abort();
    } else if (r->key[0] != '/' || r->prefix != (path[strlen(path) - 1] == '/') ||
               (r->prefix && r->key[r->key_len - 1] != '/') ||
               (!r->prefix && (!r->name || strcmp(r->name, r->key) != 0)) ||
               (r->prefix && r->name)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table) {
        table = wc_http_resources_new();
        if (!table || wc_http_resources_add(table, "example.com/v1/widgets=Widget") != 0 ||
            wc_http_resources_add(table, "example.com/v1beta1/gadgets=Gadget::cluster") != 0)
            abort();
    }
    char *path = malloc(size + 1);
    if (!path)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    wc_http_route r;
    wc_http_error e = {0};
    int rc = wc_http_route_parse(table, PREFIX, path, &r, &e);
    check(path, rc, &r, &e);
    if (rc == 0)
        wc_http_route_free(&r);
    free(path);
    return 0;
}
