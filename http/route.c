/*
 * Routes: a raw request path becomes one wc_http_route, the only thing the handlers look at.
 *
 * Both data families end up as the same triple (family, key or prefix, kind names), so get,
 * list and watch are written once for /keys and for every Kubernetes resource:
 *   /keys/<key>                          exact key          /keys/<prefix>/   every key under it
 *   /api/v1/<plural>                     all namespaces     /api/v1/<plural>/<name>  cluster get
 *   /api/v1/namespaces/<ns>/<plural>[/<name>]               /apis/<group>/<version>/... the same
 *   /api/v1/watch/...                    the legacy watch form of any of the above
 * Kubernetes keys are <k8s-prefix>/<path>/<ns>/<name> (cluster-scoped: <k8s-prefix>/<path>/<name>)
 * with <path> from the resource table.
 *
 * The path arrives percent-encoded (the server turns off MHD's own unescaping) and every
 * segment is decoded strictly here, so "%2F" inside a name cannot forge a separator and "%00"
 * cannot cut a key short.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define MAX_SEGS 8

typedef struct seg {
    const char *raw;
    size_t raw_len;
} seg;

/* Splits "/a/b/c" into segments. Returns the count, or -1 for an empty segment (a doubled or
 * trailing '/') or too many segments. An empty string gives 0. */
static int split(const char *s, seg *out, int max)
{
    int n = 0;
    if (*s == '\0')
        return 0;
    if (*s != '/')
        return -1;
    while (*s == '/') {
        const char *start = s + 1;
        const char *end = strchr(start, '/');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len == 0 || n == max)
            return -1;
        out[n].raw = start;
        out[n].raw_len = len;
        n++;
        s = start + len;
    }
    return n;
}

/* Decodes a segment into a new string. */
static int decode(const seg *sg, char **out, size_t *len, wc_http_error *err)
{
    char *d = malloc(sg->raw_len + 1);
    if (!d)
        return WC_ENOMEM;
    if (wc_http_unescape(sg->raw, sg->raw_len, d, len) != 0) {
        char q[WC_HTTP_QUOTE_MAX];
        free(d);
        return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                            "malformed percent-encoding in path segment \"%s\"",
                            wc_http_quote(sg->raw, sg->raw_len, q));
    }
    *out = d;
    return 0;
}

static int not_found(wc_http_error *err)
{
    return wc_http_fail(err, WC_ENOENT, 404, "NotFound",
                        "the server could not find the requested resource");
}

/* Kubernetes' IsValidPathSegmentName, plus a length bound. */
static int check_name(const char *what, const char *s, size_t n, wc_http_error *err)
{
    char q[WC_HTTP_QUOTE_MAX];
    if (n == 0 || n > WC_HTTP_MAX_NAME || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.') || memchr(s, '/', n) || memchr(s, '%', n))
        return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                            "invalid %s \"%s\": may not be '.' or '..', contain '/' or '%%', "
                            "or be longer than %d",
                            what, wc_http_quote(s, n, q), WC_HTTP_MAX_NAME);
    return 0;
}

/* A decoded /keys key, checked segment by segment: no '.' or '..' (a client or a proxy on the
 * way would resolve them, so a key that holds one is not what it seems) and no empty segment
 * but the last (a trailing '/' asks for a prefix). */
static int check_key(const char *key, size_t n, wc_http_error *err)
{
    for (size_t i = 1; i <= n; i++) {
        const char *s = key + i;
        const char *e = memchr(s, '/', n - i);
        size_t len = e ? (size_t)(e - s) : n - i;
        bool dots = (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
        if (dots || (len == 0 && e)) {
            char q[WC_HTTP_QUOTE_MAX];
            return wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                                "invalid key \"%s\": may not hold '.' or '..' segments or "
                                "an empty one",
                                wc_http_quote(key, n, q));
        }
        i += len;
    }
    return 0;
}

static int data_keys(const char *rest, wc_http_route *r, wc_http_error *err)
{
    size_t n = strlen(rest);
    r->kind = WC_HTTP_R_DATA;
    r->family = WC_FAMILY_KEYS;
    r->kind_name = "KeyValue";
    r->api_version = "wcached/v1";
    if (n == 0) {
        r->key = strdup("");
        r->prefix = true;
        return r->key ? 0 : WC_ENOMEM;
    }
    if (rest[0] != '/')
        return not_found(err);
    seg all = {rest, n};
    int rc = decode(&all, &r->key, &r->key_len, err);
    if (rc == 0)
        rc = check_key(r->key, r->key_len, err);
    if (rc != 0)
        return rc;
    r->prefix = rest[n - 1] == '/';
    if (!r->prefix) {
        r->name = strdup(r->key);
        if (!r->name)
            return WC_ENOMEM;
    }
    return 0;
}

/* The part after /api/v1 or /apis/<group>/<version>. */
static int data_k8s(wc_http_resources *t, const char *k8s_prefix, const char *group,
                    const char *version, const char *rest, wc_http_route *r, wc_http_error *err)
{
    seg s[MAX_SEGS];
    int n = split(rest, s, MAX_SEGS);
    if (n <= 0)
        return not_found(err);
    int i = 0;
    if (s[0].raw_len == 5 && memcmp(s[0].raw, "watch", 5) == 0) {
        r->watch_path = true;
        i = 1;
    }
    char *ns = NULL, *plural = NULL, *name = NULL;
    size_t ns_len = 0, plural_len = 0, name_len = 0;
    int left = n - i, rc = 0;
    bool namespaced_route =
        left >= 3 && s[i].raw_len == 10 && memcmp(s[i].raw, "namespaces", 10) == 0;
    if (namespaced_route) {
        if (left > 4)
            return not_found(err); /* subresources are not served */
        if ((rc = decode(&s[i + 1], &ns, &ns_len, err)) != 0 ||
            (rc = decode(&s[i + 2], &plural, &plural_len, err)) != 0 ||
            (left == 4 && (rc = decode(&s[i + 3], &name, &name_len, err)) != 0))
            goto out;
        if (!wc_dns_label_valid(ns, ns_len)) {
            char q[WC_HTTP_QUOTE_MAX];
            rc = wc_http_fail(err, WC_EINVAL, 400, "BadRequest",
                              "invalid namespace \"%s\": must be a DNS-1123 label",
                              wc_http_quote(ns, ns_len, q));
            goto out;
        }
    } else {
        if (left < 1 || left > 2) {
            rc = not_found(err);
            goto out;
        }
        if ((rc = decode(&s[i], &plural, &plural_len, err)) != 0 ||
            (left == 2 && (rc = decode(&s[i + 1], &name, &name_len, err)) != 0))
            goto out;
    }
    if (name && (rc = check_name("name", name, name_len, err)) != 0)
        goto out;

    const wc_http_resource *res = wc_http_resources_find(t, group, version, plural);
    /* A namespaced resource read without a namespace is listed across all of them, but a
     * name needs its namespace; a cluster-scoped one has no namespaces at all. */
    if (!res || (res->namespaced && !ns && name) || (!res->namespaced && ns)) {
        rc = not_found(err);
        goto out;
    }
    wc_buf b = {0};
    wc_buf_puts(&b, k8s_prefix);
    wc_buf_puts(&b, "/");
    wc_buf_puts(&b, res->path);
    wc_buf_puts(&b, "/");
    if (ns) {
        wc_buf_put(&b, ns, ns_len);
        wc_buf_puts(&b, "/");
    }
    if (name)
        wc_buf_put(&b, name, name_len);
    if (b.oom) {
        wc_buf_free(&b);
        rc = WC_ENOMEM;
        goto out;
    }
    r->kind = WC_HTTP_R_DATA;
    r->family = WC_FAMILY_K8S;
    r->key = b.p;
    r->key_len = b.len;
    r->prefix = name == NULL;
    r->res = res;
    r->name = name;
    name = NULL;
    r->ns = ns;
    ns = NULL;
    r->kind_name = res->kind;
    r->api_version = res->api_version;
out:
    free(ns);
    free(plural);
    free(name);
    return rc;
}

/*
 * /api/<version>[/...] (group NULL: the core group) or /apis/<group>[/<version>[/...]], with
 * `group` pointing at the raw group segment and `v` at the '/' before the version (or at the
 * end of the path).
 */
static int api_route(wc_http_resources *t, const char *k8s_prefix, const char *group, const char *v,
                     wc_http_route *r, wc_http_error *err)
{
    int rc;
    size_t len;
    if (group) {
        seg g = {group, (size_t)(v - group)};
        if (g.raw_len == 0)
            return not_found(err);
        if ((rc = decode(&g, &r->group, &len, err)) != 0)
            return rc;
        if (*v == '\0') {
            r->kind = WC_HTTP_R_API_GROUP;
            return wc_http_resources_has(t, r->group, NULL) ? 0 : not_found(err);
        }
        v++;
    } else if (!(r->group = strdup(""))) {
        return WC_ENOMEM;
    }
    const char *vend = strchrnul(v, '/');
    seg vs = {v, (size_t)(vend - v)};
    if (vs.raw_len == 0)
        return not_found(err);
    if ((rc = decode(&vs, &r->version, &len, err)) != 0)
        return rc;
    if (*vend == '\0') {
        r->kind = WC_HTTP_R_API_RESOURCES;
        return wc_http_resources_has(t, r->group, r->version) ? 0 : not_found(err);
    }
    char *gs = r->group, *vsn = r->version;
    r->group = r->version = NULL;
    rc = data_k8s(t, k8s_prefix, gs, vsn, vend, r, err);
    free(gs);
    free(vsn);
    return rc;
}

int wc_http_route_parse(wc_http_resources *t, const char *k8s_prefix, const char *path,
                        wc_http_route *out, wc_http_error *err)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(path);
    if (len > WC_HTTP_MAX_PATH)
        return wc_http_fail(err, WC_EINVAL, 400, "BadRequest", "path longer than %d bytes",
                            WC_HTTP_MAX_PATH);
    static const struct {
        const char *path;
        wc_http_route_kind kind;
    } fixed[] = {
        {"/healthz", WC_HTTP_R_HEALTHZ},  {"/livez", WC_HTTP_R_HEALTHZ},
        {"/readyz", WC_HTTP_R_READYZ},    {"/metrics", WC_HTTP_R_METRICS},
        {"/api", WC_HTTP_R_API_VERSIONS}, {"/apis", WC_HTTP_R_API_GROUPS},
        {"/version", WC_HTTP_R_VERSION},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) == 0) {
            out->kind = fixed[i].kind;
            return 0;
        }
    }
    if (strncmp(path, "/v3/", 4) == 0) { /* etcd's JSON gateway: etcd_api.c reads the rest */
        out->kind = WC_HTTP_R_ETCD;
        return 0;
    }
    int rc;
    if (strncmp(path, "/keys", 5) == 0)
        rc = data_keys(path + 5, out, err);
    else if (strncmp(path, "/api/", 5) == 0)
        rc = api_route(t, k8s_prefix, NULL, path + 5, out, err);
    else if (strncmp(path, "/apis/", 6) == 0)
        rc = api_route(t, k8s_prefix, path + 6, strchrnul(path + 6, '/'), out, err);
    else
        rc = not_found(err);
    if (rc != 0)
        wc_http_route_free(out);
    return rc;
}

void wc_http_route_free(wc_http_route *r)
{
    free(r->ns);
    free(r->group);
    free(r->version);
    free(r->key);
    free(r->name);
    memset(r, 0, sizeof(*r));
}
