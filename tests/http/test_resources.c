/*
 * The resource table without sockets: built-in lookups, extension specs good and bad,
 * replacement, and the discovery documents made from it.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
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

TestSuite(resources, .init = setup, .fini = teardown);

static void expect(const char *g, const char *v, const char *plural, const char *kind,
                   const char *path, bool namespaced)
{
    const wc_http_resource *r = wc_http_resources_find(tab, g, v, plural);
    cr_assert_not_null(r, "%s/%s/%s missing", g, v, plural);
    cr_assert_str_eq(r->kind, kind);
    cr_assert_str_eq(r->path, path);
    cr_assert_eq(r->namespaced, namespaced, "%s", plural);
}

Test(resources, builtins)
{
    expect("", "v1", "pods", "Pod", "pods", true);
    expect("", "v1", "services", "Service", "services/specs", true);
    expect("", "v1", "endpoints", "Endpoints", "services/endpoints", true);
    expect("", "v1", "nodes", "Node", "minions", false);
    expect("", "v1", "namespaces", "Namespace", "namespaces", false);
    expect("", "v1", "configmaps", "ConfigMap", "configmaps", true);
    expect("apps", "v1", "deployments", "Deployment", "deployments", true);
    expect("apps", "v1", "statefulsets", "StatefulSet", "statefulsets", true);
    expect("batch", "v1", "jobs", "Job", "jobs", true);
    expect("networking.k8s.io", "v1", "ingresses", "Ingress", "ingress", true);
    expect("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", "clusterroles", false);
    expect("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
           "apiextensions.k8s.io/customresourcedefinitions", false);
    cr_assert_null(wc_http_resources_find(tab, "apps", "v1", "pods"));
    cr_assert_null(wc_http_resources_find(tab, "", "v2", "pods"));
    cr_assert_str_eq(wc_http_resources_find(tab, "apps", "v1", "deployments")->api_version,
                     "apps/v1");
    cr_assert_str_eq(wc_http_resources_find(tab, "", "v1", "pods")->api_version, "v1");
}

Test(resources, extension_specs)
{
    struct {
        const char *spec, *group, *version, *plural, *kind, *path;
        bool namespaced;
    } t[] = {
        {"example.com/v1/widgets=Widget", "example.com", "v1", "widgets", "Widget",
         "example.com/widgets", true},
        {"example.com/v1alpha1/gizmos=Gizmo:custom/gizmos", "example.com", "v1alpha1", "gizmos",
         "Gizmo", "custom/gizmos", true},
        {"example.com/v1/things=Thing:cluster", "example.com", "v1", "things", "Thing",
         "example.com/things", false},
        {"example.com/v1/items=Item:it:cluster", "example.com", "v1", "items", "Item", "it", false},
        {"example.com/v1/parts=Part::namespaced", "example.com", "v1", "parts", "Part",
         "example.com/parts", true},
        {"v1/bindings=Binding", "", "v1", "bindings", "Binding", "bindings", true},
        {"/v1/extras=Extra:ex", "", "v1", "extras", "Extra", "ex", true},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cr_assert_eq(wc_http_resource_check(t[i].spec), 0, "%s", t[i].spec);
        cr_assert_eq(wc_http_resources_add(tab, t[i].spec), 0, "%s", t[i].spec);
        expect(t[i].group, t[i].version, t[i].plural, t[i].kind, t[i].path, t[i].namespaced);
    }
}

Test(resources, bad_specs)
{
    const char *badv[] = {
        NULL,
        "",
        "pods",
        "pods=Pod",
        "v1/pods",
        "v1/pods=",
        "v1/pods=pod", /* Kind starts uppercase */
        "v1/Pods=Pod", /* plural is a DNS label */
        "v1/po ds=Pod",
        "V1/pods=Pod", /* version */
        "1v/pods=Pod",
        "a/b/c/d=Pod",        /* too many parts */
        "Example.com/v1/w=W", /* group is lowercase */
        "-bad.com/v1/w=W",
        "ex..com/v1/w=W",
        "ex.com/v1/w=W:../etc", /* path */
        "ex.com/v1/w=W:a//b",
        "ex.com/v1/w=W:/abs",
        "ex.com/v1/w=W:a/./b",
        "ex.com/v1/w=W:a b",
        "ex.com/v1/w=W:p:global", /* scope */
        "ex.com/v1/w=W:p:cluster:x",
        "ex.com/v1/w=W-x",
        "ex.com/v1/w=W=X",
        "ex.com/v1/=W",
        "ex.com//w=W",
    };
    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
        cr_assert_eq(wc_http_resource_check(badv[i]), WC_EINVAL, "accepted %s",
                     badv[i] ? badv[i] : "(null)");
        if (badv[i])
            cr_assert_eq(wc_http_resources_add(tab, badv[i]), WC_EINVAL);
    }
    char longspec[2048];
    memset(longspec, 'a', sizeof(longspec) - 1);
    longspec[sizeof(longspec) - 1] = '\0';
    memcpy(longspec, "v1/x=X:", 7);
    cr_assert_eq(wc_http_resource_check(longspec), WC_EINVAL);
}

Test(resources, replace_keeps_old_pointer_valid)
{
    const wc_http_resource *old = wc_http_resources_find(tab, "", "v1", "pods");
    cr_assert_eq(wc_http_resources_add(tab, "v1/pods=Pod:otherpods"), 0);
    const wc_http_resource *now = wc_http_resources_find(tab, "", "v1", "pods");
    cr_assert_str_eq(now->path, "otherpods");
    cr_assert_str_eq(old->path, "pods"); /* retired, not freed */
}

static json_t *discover(const char *path)
{
    wc_http_route r;
    wc_http_error e;
    cr_assert_eq(wc_http_route_parse(tab, "/registry", path, &r, &e), 0, "%s", path);
    size_t len;
    char *s = wc_http_discovery(tab, &r, "127.0.0.1:1", &len);
    cr_assert_not_null(s);
    json_error_t je;
    json_t *j = json_loadb(s, len, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, s);
    free(s);
    wc_http_route_free(&r);
    return j;
}

Test(resources, discovery)
{
    json_t *j = discover("/api");
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "APIVersions");
    json_decref(j);

    j = discover("/api/v1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "groupVersion")), "v1");
    json_t *res = json_object_get(j, "resources");
    bool pods = false;
    size_t i;
    json_t *it;
    json_array_foreach(res, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "name")), "pods") == 0) {
            pods = true;
            cr_assert(json_is_true(json_object_get(it, "namespaced")));
            cr_assert_str_eq(json_string_value(json_object_get(it, "kind")), "Pod");
        }
        cr_assert_str_neq(json_string_value(json_object_get(it, "name")), "deployments");
    }
    cr_assert(pods);
    json_decref(j);

    j = discover("/apis");
    json_t *groups = json_object_get(j, "groups");
    bool apps = false;
    json_array_foreach(groups, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        cr_assert_str_neq(name, "");
        if (strcmp(name, "apps") == 0) {
            apps = true;
            cr_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(it, "preferredVersion"), "groupVersion")),
                             "apps/v1");
        }
    }
    cr_assert(apps);
    json_decref(j);

    j = discover("/apis/apps/v1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "groupVersion")), "apps/v1");
    cr_assert_geq(json_array_size(json_object_get(j, "resources")), 5);
    json_decref(j);

    j = discover("/apis/batch");
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "APIGroup");
    cr_assert_eq(json_array_size(json_object_get(j, "versions")), 1);
    json_decref(j);
}

/* The discovery entry of `plural` in a group-version's resource list, or NULL. */
static json_t *entry(json_t *list, const char *plural)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(list, "resources"), i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "name")), plural) == 0)
            return it;
    }
    return NULL;
}

/* The array `field` of an entry as one comma-separated string ("" when absent). */
static void joined(json_t *e, const char *field, char *out, size_t len)
{
    out[0] = '\0';
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(e, field), i, it)
    {
        strncat(out, i ? "," : "", len - strlen(out) - 1);
        strncat(out, json_string_value(it), len - strlen(out) - 1);
    }
}

Test(resources, discovery_has_singular_and_short_names_and_categories)
{
    static const struct {
        const char *path, *plural, *singular, *shorts, *categories;
    } want[] = {
        {"/api/v1", "pods", "pod", "po", "all"},
        {"/api/v1", "configmaps", "configmap", "cm", ""},
        {"/api/v1", "namespaces", "namespace", "ns", ""},
        {"/api/v1", "services", "service", "svc", "all"},
        {"/apis/apps/v1", "deployments", "deployment", "deploy", "all"},
        {"/apis/batch/v1", "jobs", "job", "", "all"},
        {"/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", "customresourcedefinition",
         "crd,crds", ""},
        {"/apis/coordination.k8s.io/v1", "leases", "lease", "", ""},
    };
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        json_t *j = discover(want[k].path);
        json_t *e = entry(j, want[k].plural);
        cr_assert_not_null(e, "%s in %s", want[k].plural, want[k].path);
        cr_assert_str_eq(json_string_value(json_object_get(e, "singularName")), want[k].singular);
        char got[128];
        joined(e, "shortNames", got, sizeof(got));
        cr_assert_str_eq(got, want[k].shorts, "%s", want[k].plural);
        joined(e, "categories", got, sizeof(got));
        cr_assert_str_eq(got, want[k].categories, "%s", want[k].plural);
        json_decref(j);
    }
}
