/*
 * The Kubernetes resource table: which (group, version, plural) a route may name, what Kind
 * its objects are, whether they live in namespaces, and where under the k8s prefix etcd keeps
 * them (Kubernetes' storage paths are not always the plural: nodes live under "minions",
 * services under "services/specs"). The built-ins are written in the same spec syntax the
 * daemon extends the table with, and parsed by the same code.
 *
 * The table also answers discovery (/api, /apis, /api/v1, /apis/<group>[/<version>]), so the
 * resources a client can find are exactly the ones it can read.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

static const char *const BUILTIN[] = {
    /* core */
    "v1/pods=Pod",
    "v1/services=Service:services/specs",
    "v1/endpoints=Endpoints:services/endpoints",
    "v1/configmaps=ConfigMap",
    "v1/secrets=Secret",
    "v1/serviceaccounts=ServiceAccount",
    "v1/namespaces=Namespace::cluster",
    "v1/nodes=Node:minions:cluster",
    "v1/persistentvolumes=PersistentVolume::cluster",
    "v1/persistentvolumeclaims=PersistentVolumeClaim",
    "v1/events=Event",
    "v1/limitranges=LimitRange",
    "v1/resourcequotas=ResourceQuota",
    "v1/replicationcontrollers=ReplicationController:controllers",
    "v1/podtemplates=PodTemplate",
    /* apps, batch, autoscaling, policy */
    "apps/v1/deployments=Deployment:deployments",
    "apps/v1/statefulsets=StatefulSet:statefulsets",
    "apps/v1/daemonsets=DaemonSet:daemonsets",
    "apps/v1/replicasets=ReplicaSet:replicasets",
    "apps/v1/controllerrevisions=ControllerRevision:controllerrevisions",
    "batch/v1/jobs=Job:jobs",
    "batch/v1/cronjobs=CronJob:cronjobs",
    "autoscaling/v2/horizontalpodautoscalers=HorizontalPodAutoscaler:horizontalpodautoscalers",
    "policy/v1/poddisruptionbudgets=PodDisruptionBudget:poddisruptionbudgets",
    /* networking, discovery, coordination */
    "networking.k8s.io/v1/ingresses=Ingress:ingress",
    "networking.k8s.io/v1/networkpolicies=NetworkPolicy:networkpolicies",
    "networking.k8s.io/v1/ingressclasses=IngressClass:ingressclasses:cluster",
    "discovery.k8s.io/v1/endpointslices=EndpointSlice:endpointslices",
    "coordination.k8s.io/v1/leases=Lease:leases",
    /* rbac */
    "rbac.authorization.k8s.io/v1/roles=Role:roles",
    "rbac.authorization.k8s.io/v1/rolebindings=RoleBinding:rolebindings",
    "rbac.authorization.k8s.io/v1/clusterroles=ClusterRole:clusterroles:cluster",
    "rbac.authorization.k8s.io/v1/clusterrolebindings=ClusterRoleBinding:clusterrolebindings:"
    "cluster",
    /* storage, scheduling, node, certificates */
    "storage.k8s.io/v1/storageclasses=StorageClass:storageclasses:cluster",
    "storage.k8s.io/v1/csidrivers=CSIDriver:csidrivers:cluster",
    "storage.k8s.io/v1/csinodes=CSINode:csinodes:cluster",
    "storage.k8s.io/v1/volumeattachments=VolumeAttachment:volumeattachments:cluster",
    "scheduling.k8s.io/v1/priorityclasses=PriorityClass:priorityclasses:cluster",
    "node.k8s.io/v1/runtimeclasses=RuntimeClass:runtimeclasses:cluster",
    "certificates.k8s.io/v1/certificatesigningrequests=CertificateSigningRequest:"
    "certificatesigningrequests:cluster",
    /* API machinery (stored like custom resources: under their group) */
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations="
    "MutatingWebhookConfiguration:mutatingwebhookconfigurations:cluster",
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations="
    "ValidatingWebhookConfiguration:validatingwebhookconfigurations:cluster",
    "apiextensions.k8s.io/v1/customresourcedefinitions=CustomResourceDefinition::cluster",
    "apiregistration.k8s.io/v1/apiservices=APIService::cluster",
};

/* What kubectl finds a built-in resource by besides its plural (the apiserver's short names),
 * and the categories it belongs to ("all": what `kubectl get all` lists). */
static const struct {
    const char *group, *plural, *short_names, *categories; /* JSON array bodies */
} ALIASES[] = {
    {"", "pods", "\"po\"", "\"all\""},
    {"", "services", "\"svc\"", "\"all\""},
    {"", "endpoints", "\"ep\"", ""},
    {"", "configmaps", "\"cm\"", ""},
    {"", "serviceaccounts", "\"sa\"", ""},
    {"", "namespaces", "\"ns\"", ""},
    {"", "nodes", "\"no\"", ""},
    {"", "persistentvolumes", "\"pv\"", ""},
    {"", "persistentvolumeclaims", "\"pvc\"", ""},
    {"", "events", "\"ev\"", ""},
    {"", "limitranges", "\"limits\"", ""},
    {"", "resourcequotas", "\"quota\"", ""},
    {"", "replicationcontrollers", "\"rc\"", "\"all\""},
    {"apps", "deployments", "\"deploy\"", "\"all\""},
    {"apps", "statefulsets", "\"sts\"", "\"all\""},
    {"apps", "daemonsets", "\"ds\"", "\"all\""},
    {"apps", "replicasets", "\"rs\"", "\"all\""},
    {"batch", "jobs", "", "\"all\""},
    {"batch", "cronjobs", "\"cj\"", "\"all\""},
    {"autoscaling", "horizontalpodautoscalers", "\"hpa\"", "\"all\""},
    {"policy", "poddisruptionbudgets", "\"pdb\"", ""},
    {"networking.k8s.io", "ingresses", "\"ing\"", ""},
    {"networking.k8s.io", "networkpolicies", "\"netpol\"", ""},
    {"storage.k8s.io", "storageclasses", "\"sc\"", ""},
    {"scheduling.k8s.io", "priorityclasses", "\"pc\"", ""},
    {"certificates.k8s.io", "certificatesigningrequests", "\"csr\"", ""},
    {"apiextensions.k8s.io", "customresourcedefinitions", "\"crd\",\"crds\"", ""},
};

/* The apiserver's field labels for built-in resources (its AddFieldLabelConversionFunc calls),
 * those a JSON path of the object answers. */
static const char *const POD_FIELDS[] = {"spec.nodeName",
                                         "spec.restartPolicy",
                                         "spec.schedulerName",
                                         "spec.serviceAccountName",
                                         "spec.hostNetwork",
                                         "status.phase",
                                         "status.podIP",
                                         "status.nominatedNodeName",
                                         NULL};
static const char *const EVENT_FIELDS[] = {"involvedObject.kind",
                                           "involvedObject.namespace",
                                           "involvedObject.name",
                                           "involvedObject.uid",
                                           "involvedObject.apiVersion",
                                           "involvedObject.resourceVersion",
                                           "involvedObject.fieldPath",
                                           "reason",
                                           "reportingComponent",
                                           "type",
                                           NULL};
static const char *const SECRET_FIELDS[] = {"type", NULL};
static const char *const PHASE_FIELDS[] = {"status.phase", NULL};
static const char *const NODE_FIELDS[] = {"spec.unschedulable", NULL};
static const char *const RC_FIELDS[] = {"status.replicas", NULL};
static const char *const JOB_FIELDS[] = {"status.successful", NULL};
static const char *const CSR_FIELDS[] = {"spec.signerName", NULL};

static const struct {
    const char *group, *plural;
    const char *const *fields;
} FIELDS[] = {
    {"", "pods", POD_FIELDS},
    {"", "events", EVENT_FIELDS},
    {"events.k8s.io", "events", EVENT_FIELDS},
    {"", "secrets", SECRET_FIELDS},
    {"", "namespaces", PHASE_FIELDS},
    {"", "nodes", NODE_FIELDS},
    {"", "replicationcontrollers", RC_FIELDS},
    {"batch", "jobs", JOB_FIELDS},
    {"certificates.k8s.io", "certificatesigningrequests", CSR_FIELDS},
};

const char *const *wc_http_resource_fields(const wc_http_resource *r)
{
    for (size_t i = 0; r && i < sizeof(FIELDS) / sizeof(FIELDS[0]); i++)
        if (strcmp(FIELDS[i].group, r->group) == 0 && strcmp(FIELDS[i].plural, r->plural) == 0)
            return FIELDS[i].fields;
    return NULL;
}

/* Appends r's discovery entry: name, singularName (the kind in lower case, as the apiserver
 * derives it), scope, kind, verbs, and short names and categories when it has them. */
static void resource_json(const wc_http_resource *r, wc_buf *b)
{
    char singular[128];
    size_t k = 0;
    for (; r->kind[k] && k + 1 < sizeof(singular); k++)
        singular[k] = (char)(r->kind[k] >= 'A' && r->kind[k] <= 'Z' ? r->kind[k] + 32 : r->kind[k]);
    singular[k] = '\0';
    wc_buf_printf(b,
                  "{\"name\":\"%s\",\"singularName\":\"%s\",\"namespaced\":%s,\"kind\":\"%s\","
                  "\"verbs\":[\"get\",\"list\",\"watch\"]",
                  r->plural, singular, r->namespaced ? "true" : "false", r->kind);
    for (size_t i = 0; i < sizeof(ALIASES) / sizeof(ALIASES[0]); i++) {
        if (strcmp(ALIASES[i].group, r->group) != 0 || strcmp(ALIASES[i].plural, r->plural) != 0)
            continue;
        if (*ALIASES[i].short_names)
            wc_buf_printf(b, ",\"shortNames\":[%s]", ALIASES[i].short_names);
        if (*ALIASES[i].categories)
            wc_buf_printf(b, ",\"categories\":[%s]", ALIASES[i].categories);
        break;
    }
    wc_buf_puts(b, "}");
}

struct wc_http_resources {
    pthread_rwlock_t mu;        /* guards entries and n */
    wc_http_resource **entries; /* in the order added; replaced in place */
    size_t n, cap;
    wc_http_resource **retired; /* replaced entries, freed with the table (readers may
                                   still hold them); guarded by mu */
    size_t n_retired;
};

/* ---------------------------------------------------------------------------------------
 * Spec parsing
 * ------------------------------------------------------------------------------------- */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Kubernetes API versions: a lowercase letter, then lowercase letters and digits. */
static bool valid_version(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]))
            return false;
    return true;
}

static bool valid_kind(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !(s[0] >= 'A' && s[0] <= 'Z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* Segments of [A-Za-z0-9._-] joined by '/', none empty, "." or "..". */
static bool valid_path(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t len = i - start;
            if (len == 0 || (len == 1 && s[start] == '.') ||
                (len == 2 && s[start] == '.' && s[start + 1] == '.'))
                return false;
            start = i + 1;
            continue;
        }
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || is_lower_alnum(c) || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int wc_http_resource_parse(const char *spec, wc_http_resource **out)
{
    if (!spec)
        return WC_EINVAL;
    size_t spec_len = strlen(spec);
    const char *eq = strchr(spec, '=');
    if (!eq || spec_len > 1024)
        return WC_EINVAL;

    /* Left of '=': [GROUP/]VERSION/PLURAL */
    const char *s1 = memchr(spec, '/', (size_t)(eq - spec));
    if (!s1)
        return WC_EINVAL;
    const char *s2 = memchr(s1 + 1, '/', (size_t)(eq - s1 - 1));
    const char *group = "", *version, *plural;
    size_t group_len = 0, version_len, plural_len;
    if (s2) {
        if (memchr(s2 + 1, '/', (size_t)(eq - s2 - 1)))
            return WC_EINVAL;
        group = spec;
        group_len = (size_t)(s1 - spec);
        version = s1 + 1;
        version_len = (size_t)(s2 - s1 - 1);
        plural = s2 + 1;
        plural_len = (size_t)(eq - s2 - 1);
    } else {
        version = spec;
        version_len = (size_t)(s1 - spec);
        plural = s1 + 1;
        plural_len = (size_t)(eq - s1 - 1);
    }
    if ((group_len && !wc_dns_subdomain_valid(group, group_len)) ||
        !valid_version(version, version_len) || !wc_dns_label_valid(plural, plural_len))
        return WC_EINVAL;

    /* Right of '=': Kind[:PATH][:cluster|:namespaced] */
    const char *f[3];
    size_t fl[3];
    size_t nf = 0;
    const char *p = eq + 1;
    for (;;) {
        const char *c = strchr(p, ':');
        if (nf == 3)
            return WC_EINVAL;
        f[nf] = p;
        fl[nf] = c ? (size_t)(c - p) : strlen(p);
        nf++;
        if (!c)
            break;
        p = c + 1;
    }
    bool namespaced = true;
    const char *path = NULL;
    size_t path_len = 0;
    if (!valid_kind(f[0], fl[0]))
        return WC_EINVAL;
    size_t last = nf - 1;
    if (nf >= 2) {
        if (fl[last] == 7 && memcmp(f[last], "cluster", 7) == 0) {
            namespaced = false;
        } else if (fl[last] == 10 && memcmp(f[last], "namespaced", 10) == 0) {
            namespaced = true;
        } else if (nf == 3) {
            return WC_EINVAL; /* the third field can only be a scope */
        } else {
            last = nf; /* the second field is the path */
        }
        if (last >= 2) {
            path = f[1];
            path_len = fl[1];
            if (path_len && !valid_path(path, path_len))
                return WC_EINVAL;
        }
    }

    /* Default path: the plural, under the group for non-core groups (as CRDs are stored). */
    char defpath[256 + 64 + 2];
    if (path_len == 0) {
        if (group_len)
            snprintf(defpath, sizeof(defpath), "%.*s/%.*s", (int)group_len, group, (int)plural_len,
                     plural);
        else
            snprintf(defpath, sizeof(defpath), "%.*s", (int)plural_len, plural);
        path = defpath;
        path_len = strlen(defpath);
    }

    size_t need = sizeof(wc_http_resource) + group_len + 1 + version_len + 1 + plural_len + 1 +
                  fl[0] + 1 + path_len + 1 + group_len + 1 + version_len + 1;
    wc_http_resource *r = calloc(1, need);
    if (!r)
        return WC_ENOMEM;
    char *w = (char *)(r + 1);
#define PUT(field, s, n)                                                                           \
    do {                                                                                           \
        memcpy(w, (s), (n));                                                                       \
        w[(n)] = '\0';                                                                             \
        r->field = w;                                                                              \
        w += (n) + 1;                                                                              \
    } while (0)
    PUT(group, group, group_len);
    PUT(version, version, version_len);
    PUT(plural, plural, plural_len);
    PUT(kind, f[0], fl[0]);
    PUT(path, path, path_len);
#undef PUT
    if (group_len)
        sprintf(w, "%s/%s", r->group, r->version);
    else
        strcpy(w, r->version);
    r->api_version = w;
    r->namespaced = namespaced;
    *out = r;
    return 0;
}

int wc_http_resource_check(const char *spec)
{
    wc_http_resource *r = NULL;
    int rc = wc_http_resource_parse(spec, &r);
    free(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------- */

static bool same(const wc_http_resource *a, const char *group, const char *version,
                 const char *plural)
{
    return strcmp(a->plural, plural) == 0 && strcmp(a->version, version) == 0 &&
           strcmp(a->group, group) == 0;
}

/* Takes over r. Holds the write lock. */
static int add_locked(wc_http_resources *t, wc_http_resource *r)
{
    for (size_t i = 0; i < t->n; i++) {
        if (same(t->entries[i], r->group, r->version, r->plural)) {
            wc_http_resource **ret = realloc(t->retired, (t->n_retired + 1) * sizeof(*t->retired));
            if (!ret) {
                free(r);
                return WC_ENOMEM;
            }
            t->retired = ret;
            t->retired[t->n_retired++] = t->entries[i];
            t->entries[i] = r;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        wc_http_resource **e = realloc(t->entries, cap * sizeof(*e));
        if (!e) {
            free(r);
            return WC_ENOMEM;
        }
        t->entries = e;
        t->cap = cap;
    }
    t->entries[t->n++] = r;
    return 0;
}

int wc_http_resources_add(wc_http_resources *t, const char *spec)
{
    wc_http_resource *r = NULL;
    int rc = wc_http_resource_parse(spec, &r);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&t->mu);
    rc = add_locked(t, r);
    pthread_rwlock_unlock(&t->mu);
    return rc;
}

wc_http_resources *wc_http_resources_new(void)
{
    wc_http_resources *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_rwlock_init(&t->mu, NULL);
    for (size_t i = 0; i < sizeof(BUILTIN) / sizeof(BUILTIN[0]); i++) {
        if (wc_http_resources_add(t, BUILTIN[i]) != 0) {
            wc_http_resources_free(t);
            return NULL;
        }
    }
    return t;
}

void wc_http_resources_free(wc_http_resources *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i]);
    for (size_t i = 0; i < t->n_retired; i++)
        free(t->retired[i]);
    free(t->entries);
    free(t->retired);
    pthread_rwlock_destroy(&t->mu);
    free(t);
}

const wc_http_resource *wc_http_resources_find(wc_http_resources *t, const char *group,
                                               const char *version, const char *plural)
{
    const wc_http_resource *found = NULL;
    pthread_rwlock_rdlock(&t->mu);
    for (size_t i = 0; i < t->n && !found; i++)
        if (same(t->entries[i], group, version, plural))
            found = t->entries[i];
    pthread_rwlock_unlock(&t->mu);
    return found;
}

bool wc_http_resources_has(wc_http_resources *t, const char *group, const char *version)
{
    bool found = false;
    pthread_rwlock_rdlock(&t->mu);
    for (size_t i = 0; i < t->n && !found; i++)
        found = strcmp(t->entries[i]->group, group) == 0 &&
                (!version || strcmp(t->entries[i]->version, version) == 0);
    pthread_rwlock_unlock(&t->mu);
    return found;
}

/* ---------------------------------------------------------------------------------------
 * Discovery
 * ------------------------------------------------------------------------------------- */

/* Appends the versions of `group` in table order as discovery's GroupVersionForDiscovery
 * list, and the preferred (first) one. Holds the read lock. */
static void group_json(wc_http_resources *t, const char *group, wc_buf *b)
{
    wc_buf_puts(b, "\"name\":");
    wc_buf_json(b, group, strlen(group));
    wc_buf_puts(b, ",\"versions\":[");
    const char *first = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const wc_http_resource *r = t->entries[i];
        if (strcmp(r->group, group) != 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(t->entries[j]->group, group) == 0 &&
                   strcmp(t->entries[j]->version, r->version) == 0;
        if (seen)
            continue;
        if (first)
            wc_buf_puts(b, ",");
        else
            first = r->api_version;
        wc_buf_printf(b, "{\"groupVersion\":\"%s\",\"version\":\"%s\"}", r->api_version,
                      r->version);
    }
    wc_buf_puts(b, "],\"preferredVersion\":");
    for (size_t i = 0; i < t->n; i++) {
        const wc_http_resource *r = t->entries[i];
        if (strcmp(r->group, group) == 0) {
            wc_buf_printf(b, "{\"groupVersion\":\"%s\",\"version\":\"%s\"}", r->api_version,
                          r->version);
            break;
        }
    }
}

char *wc_http_discovery(wc_http_resources *t, const wc_http_route *route, const char *addr,
                        size_t *len)
{
    wc_buf b = {0};
    pthread_rwlock_rdlock(&t->mu);
    switch (route->kind) {
    case WC_HTTP_R_API_VERSIONS:
        wc_buf_puts(&b, "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],"
                        "\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\","
                        "\"serverAddress\":");
        wc_buf_json(&b, addr, strlen(addr));
        wc_buf_puts(&b, "}]}");
        break;
    case WC_HTTP_R_API_GROUPS:
        wc_buf_puts(&b, "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[");
        for (size_t i = 0, n = 0; i < t->n; i++) {
            const char *g = t->entries[i]->group;
            bool seen = g[0] == '\0';
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(t->entries[j]->group, g) == 0;
            if (seen)
                continue;
            wc_buf_puts(&b, n++ ? ",{" : "{");
            group_json(t, g, &b);
            wc_buf_puts(&b, "}");
        }
        wc_buf_puts(&b, "]}");
        break;
    case WC_HTTP_R_API_GROUP:
        wc_buf_puts(&b, "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",");
        group_json(t, route->group, &b);
        wc_buf_puts(&b, "}");
        break;
    case WC_HTTP_R_API_RESOURCES: {
        const char *gv = NULL;
        wc_buf_puts(&b, "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\","
                        "\"groupVersion\":");
        for (size_t i = 0; i < t->n && !gv; i++)
            if (strcmp(t->entries[i]->group, route->group) == 0 &&
                strcmp(t->entries[i]->version, route->version) == 0)
                gv = t->entries[i]->api_version;
        wc_buf_json(&b, gv ? gv : "", gv ? strlen(gv) : 0);
        wc_buf_puts(&b, ",\"resources\":[");
        for (size_t i = 0, n = 0; i < t->n; i++) {
            const wc_http_resource *r = t->entries[i];
            if (strcmp(r->group, route->group) != 0 || strcmp(r->version, route->version) != 0)
                continue;
            if (n++)
                wc_buf_puts(&b, ",");
            resource_json(r, &b);
        }
        wc_buf_puts(&b, "]}");
        break;
    }
    default:
        break;
    }
    pthread_rwlock_unlock(&t->mu);
    if (b.oom || !b.p) {
        wc_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
