/*
 * Routes without sockets: every path shape the server serves, and hostile ones.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http_internal.h"

static wc_http_resources *tab;

static void setup(void)
{
    tab = wc_http_resources_new();
    cr_assert_not_null(tab);
}

static void teardown(void)
{
    wc_http_resources_free(tab);
}

TestSuite(route, .init = setup, .fini = teardown);

/* Parses `path`, expecting success; the caller frees the route. */
static wc_http_route ok(const char *path)
{
    wc_http_route r;
    wc_http_error e = {0};
    int rc = wc_http_route_parse(tab, "/registry", path, &r, &e);
    cr_assert_eq(rc, 0, "%s: rc %d (%d %s)", path, rc, e.code, e.message);
    return r;
}

/* Parses `path`, expecting failure with HTTP status `code`. */
static void bad(const char *path, int code)
{
    wc_http_route r;
    wc_http_error e = {0};
    int rc = wc_http_route_parse(tab, "/registry", path, &r, &e);
    cr_assert_neq(rc, 0, "%s: expected an error", path);
    cr_assert_eq(e.code, code, "%s: code %d, want %d (%s)", path, e.code, code, e.message);
    cr_assert_not_null(e.reason);
}

static void expect_data(const char *path, wc_family fam, const char *key, bool prefix,
                        const char *kind, const char *api, bool watch_path)
{
    wc_http_route r = ok(path);
    cr_assert_eq(r.kind, WC_HTTP_R_DATA, "%s", path);
    cr_assert_eq(r.family, fam, "%s", path);
    cr_assert_eq(r.key_len, strlen(key), "%s: key %s", path, r.key);
    cr_assert_str_eq(r.key, key, "%s", path);
    cr_assert_eq(r.prefix, prefix, "%s", path);
    cr_assert_str_eq(r.kind_name, kind, "%s", path);
    cr_assert_str_eq(r.api_version, api, "%s", path);
    cr_assert_eq(r.watch_path, watch_path, "%s", path);
    wc_http_route_free(&r);
}

Test(route, fixed)
{
    struct {
        const char *p;
        wc_http_route_kind k;
    } t[] = {{"/healthz", WC_HTTP_R_HEALTHZ},     {"/readyz", WC_HTTP_R_READYZ},
             {"/metrics", WC_HTTP_R_METRICS},     {"/api", WC_HTTP_R_API_VERSIONS},
             {"/apis", WC_HTTP_R_API_GROUPS},     {"/api/v1", WC_HTTP_R_API_RESOURCES},
             {"/apis/apps", WC_HTTP_R_API_GROUP}, {"/apis/apps/v1", WC_HTTP_R_API_RESOURCES}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        wc_http_route r = ok(t[i].p);
        cr_assert_eq(r.kind, t[i].k, "%s", t[i].p);
        wc_http_route_free(&r);
    }
}

Test(route, keys)
{
    expect_data("/keys/a/b", WC_FAMILY_KEYS, "/a/b", false, "KeyValue", "wcached/v1", false);
    expect_data("/keys/a/", WC_FAMILY_KEYS, "/a/", true, "KeyValue", "wcached/v1", false);
    expect_data("/keys/", WC_FAMILY_KEYS, "/", true, "KeyValue", "wcached/v1", false);
    expect_data("/keys", WC_FAMILY_KEYS, "", true, "KeyValue", "wcached/v1", false);
    /* percent-decoded; an encoded trailing slash is part of an exact key */
    expect_data("/keys/a%20b/c%2Fd", WC_FAMILY_KEYS, "/a b/c/d", false, "KeyValue", "wcached/v1",
                false);
    expect_data("/keys/a%2F", WC_FAMILY_KEYS, "/a/", false, "KeyValue", "wcached/v1", false);
    /* dot segments and empty ones, raw or encoded, are refused rather than resolved */
    bad("/keys/a/../b", 400);
    bad("/keys/a/%2e%2E/b", 400);
    bad("/keys/a%2F.", 400);
    bad("/keys//a", 400);
    expect_data("/keys/a/.../.b", WC_FAMILY_KEYS, "/a/.../.b", false, "KeyValue", "wcached/v1",
                false);
    wc_http_route r = ok("/keys/x/y");
    cr_assert_str_eq(r.name, "/x/y");
    wc_http_route_free(&r);
}

Test(route, core_namespaced)
{
    expect_data("/api/v1/pods", WC_FAMILY_K8S, "/registry/pods/", true, "Pod", "v1", false);
    expect_data("/api/v1/namespaces/default/pods", WC_FAMILY_K8S, "/registry/pods/default/", true,
                "Pod", "v1", false);
    expect_data("/api/v1/namespaces/default/pods/web-1", WC_FAMILY_K8S,
                "/registry/pods/default/web-1", false, "Pod", "v1", false);
    wc_http_route r = ok("/api/v1/namespaces/default/pods/web-1");
    cr_assert_str_eq(r.name, "web-1");
    cr_assert_str_eq(r.res->plural, "pods");
    wc_http_route_free(&r);
}

Test(route, storage_paths)
{
    expect_data("/api/v1/namespaces/ns1/services", WC_FAMILY_K8S, "/registry/services/specs/ns1/",
                true, "Service", "v1", false);
    expect_data("/api/v1/namespaces/ns1/endpoints/svc", WC_FAMILY_K8S,
                "/registry/services/endpoints/ns1/svc", false, "Endpoints", "v1", false);
    expect_data("/api/v1/replicationcontrollers", WC_FAMILY_K8S, "/registry/controllers/", true,
                "ReplicationController", "v1", false);
    expect_data("/apis/networking.k8s.io/v1/namespaces/a/ingresses", WC_FAMILY_K8S,
                "/registry/ingress/a/", true, "Ingress", "networking.k8s.io/v1", false);
    expect_data("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WC_FAMILY_K8S,
                "/registry/apiextensions.k8s.io/customresourcedefinitions/", true,
                "CustomResourceDefinition", "apiextensions.k8s.io/v1", false);
}

Test(route, cluster_scoped)
{
    expect_data("/api/v1/nodes", WC_FAMILY_K8S, "/registry/minions/", true, "Node", "v1", false);
    expect_data("/api/v1/nodes/node-1", WC_FAMILY_K8S, "/registry/minions/node-1", false, "Node",
                "v1", false);
    expect_data("/api/v1/namespaces", WC_FAMILY_K8S, "/registry/namespaces/", true, "Namespace",
                "v1", false);
    expect_data("/api/v1/namespaces/kube-system", WC_FAMILY_K8S, "/registry/namespaces/kube-system",
                false, "Namespace", "v1", false);
    expect_data("/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", WC_FAMILY_K8S,
                "/registry/clusterroles/admin", false, "ClusterRole",
                "rbac.authorization.k8s.io/v1", false);
}

Test(route, groups)
{
    expect_data("/apis/apps/v1/deployments", WC_FAMILY_K8S, "/registry/deployments/", true,
                "Deployment", "apps/v1", false);
    expect_data("/apis/apps/v1/namespaces/prod/deployments/api", WC_FAMILY_K8S,
                "/registry/deployments/prod/api", false, "Deployment", "apps/v1", false);
    expect_data("/apis/batch/v1/namespaces/x/cronjobs", WC_FAMILY_K8S, "/registry/cronjobs/x/",
                true, "CronJob", "batch/v1", false);
}

Test(route, legacy_watch)
{
    expect_data("/api/v1/watch/pods", WC_FAMILY_K8S, "/registry/pods/", true, "Pod", "v1", true);
    expect_data("/api/v1/watch/namespaces/default/pods/p", WC_FAMILY_K8S,
                "/registry/pods/default/p", false, "Pod", "v1", true);
    expect_data("/apis/apps/v1/watch/namespaces/d/deployments", WC_FAMILY_K8S,
                "/registry/deployments/d/", true, "Deployment", "apps/v1", true);
}

Test(route, unknown)
{
    const char *paths[] = {"/",
                           "",
                           "/nope",
                           "/healthz/",
                           "/keysx",
                           "/api/",
                           "/api/v2",
                           "/api/v2/pods",
                           "/api/v1/",
                           "/api/v1/widgets",
                           "/api/v1/pods/",
                           "/api/v1//pods",
                           "/api/v1/pods/name",                  /* namespaced: a name needs a ns */
                           "/api/v1/namespaces/a/nodes",         /* cluster-scoped in a namespace */
                           "/api/v1/namespaces/a/pods/p/status", /* subresource */
                           "/api/v1/namespaces/a/pods/p/log/x",
                           "/apis/",
                           "/apis/nope",
                           "/apis/apps/v9",
                           "/apis/apps/v1/",
                           "/apis/apps/v1/pods",
                           "/apis//v1/pods",
                           "http://host/keys/a",
                           "/api/v1/watch"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        bad(paths[i], 404);
}

Test(route, hostile)
{
    bad("/keys/a%00b", 400);
    bad("/keys/a%zz", 400);
    bad("/keys/a%2", 400);
    bad("/keys/%", 400);
    bad("/api/v1/namespaces/default/pods/..", 400);
    bad("/api/v1/namespaces/default/pods/.", 400);
    bad("/api/v1/namespaces/default/pods/a%2Fb", 400);
    bad("/api/v1/namespaces/default/pods/a%2525", 400);
    bad("/api/v1/namespaces/default/pods/%00", 400);
    bad("/api/v1/namespaces/../pods", 400);
    bad("/api/v1/namespaces/UPPER/pods", 400);
    bad("/api/v1/namespaces/a%2Fb/pods", 400);
    bad("/api/v1/nodes/..", 400);
    bad("/apis/app%zz/v1/deployments", 400);

    /* overlong path and overlong name */
    static char p[WC_HTTP_MAX_PATH + 100];
    strcpy(p, "/keys/");
    memset(p + 6, 'a', WC_HTTP_MAX_PATH + 50);
    p[WC_HTTP_MAX_PATH + 56] = '\0';
    bad(p, 400);
    strcpy(p, "/api/v1/namespaces/default/pods/");
    size_t l = strlen(p);
    memset(p + l, 'a', WC_HTTP_MAX_NAME + 1);
    p[l + WC_HTTP_MAX_NAME + 1] = '\0';
    bad(p, 400);
    p[l + WC_HTTP_MAX_NAME] = '\0';
    wc_http_route r = ok(p);
    wc_http_route_free(&r);
}

Test(route, prefix_normalized)
{
    /* the server strips trailing slashes of the k8s prefix before routing */
    wc_http_route r;
    wc_http_error e;
    cr_assert_eq(wc_http_route_parse(tab, "/other", "/api/v1/namespaces/a/pods", &r, &e), 0);
    cr_assert_str_eq(r.key, "/other/pods/a/");
    wc_http_route_free(&r);
}

Test(route, extended_resource)
{
    cr_assert_eq(wc_http_resources_add(tab, "example.com/v1/widgets=Widget"), 0);
    expect_data("/apis/example.com/v1/namespaces/n/widgets/w", WC_FAMILY_K8S,
                "/registry/example.com/widgets/n/w", false, "Widget", "example.com/v1", false);
    cr_assert_eq(wc_http_resources_add(tab, "example.com/v1/gadgets=Gadget:gad:cluster"), 0);
    expect_data("/apis/example.com/v1/gadgets/g", WC_FAMILY_K8S, "/registry/gad/g", false, "Gadget",
                "example.com/v1", false);
    wc_http_route r = ok("/apis/example.com");
    cr_assert_eq(r.kind, WC_HTTP_R_API_GROUP);
    wc_http_route_free(&r);
}
