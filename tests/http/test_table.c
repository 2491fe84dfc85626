/*
 * Server-side printing without sockets: Accept negotiation, the apiserver's human durations,
 * RFC 3339 times, each printer's cells for realistic objects and for objects missing their
 * fields, and the Table documents of a list and a get.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "table.h"

/* 2024-05-01T12:00:00Z: "now" for every row here. */
#define NOW 1714564800

static wc_http_table_opts opts_for(const char *group, const char *plural, wc_http_table_include inc)
{
    wc_http_resource r = {.group = group, .plural = plural};
    wc_http_table_opts o = {
        .printer = wc_http_table_printer_for(plural ? &r : NULL), .include = inc, .now = NOW};
    return o;
}

/* The row of `obj` (JSON text) printed as group/plural. */
static json_t *row_for(const char *group, const char *plural, const char *obj)
{
    json_error_t e;
    json_t *o = json_loads(obj, 0, &e);
    cr_assert_not_null(o, "bad test JSON: %s", e.text);
    wc_http_table_opts opts = opts_for(group, plural, WC_HTTP_TABLE_METADATA);
    json_t *row = wc_http_table_row(&opts, o);
    json_decref(o);
    cr_assert_not_null(row);
    return row;
}

/* The cells of obj equal `want` (a JSON array). */
static void expect_cells(const char *group, const char *plural, const char *obj, const char *want)
{
    json_t *row = row_for(group, plural, obj);
    json_t *w = json_loads(want, 0, NULL);
    cr_assert_not_null(w, "bad expectation %s", want);
    char *got = json_dumps(json_object_get(row, "cells"), JSON_COMPACT);
    cr_assert(json_equal(json_object_get(row, "cells"), w), "cells of %s:\n got %s\nwant %s",
              plural, got, want);
    free(got);
    json_decref(w);
    json_decref(row);
}

/* ---- Accept ---- */

Test(table, accept_negotiation)
{
    cr_assert(wc_http_table_wanted("application/json;as=Table;v=v1;g=meta.k8s.io,"
                                   "application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                                   "application/json"));
    cr_assert(wc_http_table_wanted("application/json; as=Table; g=meta.k8s.io; v=v1"));
    cr_assert(wc_http_table_wanted("application/yaml, application/json;as=Table;v=v1;"
                                   "g=meta.k8s.io"));
    cr_assert_not(wc_http_table_wanted(NULL));
    cr_assert_not(wc_http_table_wanted(""));
    cr_assert_not(wc_http_table_wanted("application/json"));
    cr_assert_not(wc_http_table_wanted("*/*"));
    cr_assert_not(wc_http_table_wanted("application/json, application/json;as=Table;v=v1;"
                                       "g=meta.k8s.io"));
    /* only the v1beta1 Table: not served, and nothing else is asked */
    cr_assert_not(wc_http_table_wanted("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
    cr_assert_not(wc_http_table_wanted("application/json;as=Table;v=v1;g=meta.k8s.io;q=0,"
                                       "application/json"));
    cr_assert_not(wc_http_table_wanted("application/json;as=Table;v=v1;g=example.com"));
}

/* ---- Times ---- */

Test(table, human_durations)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-5, "<invalid>"},
        {-1, "0s"},
        {0, "0s"},
        {59, "59s"},
        {119, "119s"},
        {120, "2m"},
        {150, "2m30s"},
        {599, "9m59s"},
        {600, "10m"},
        {7200, "120m"},
        {10799, "179m"},
        {10800, "3h"},
        {3 * 3600 + 1800, "3h30m"},
        {8 * 3600 + 1800, "8h"},
        {47 * 3600, "47h"},
        {48 * 3600, "2d"},
        {50 * 3600, "2d2h"},
        {8 * 86400, "8d"},
        {729 * 86400, "729d"},
        {730 * 86400, "2y"},
        {800 * 86400, "2y70d"},
        {8 * 365 * 86400 + 86400, "8y"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        wc_http_table_duration(cases[i].s, out, sizeof(out));
        cr_assert_str_eq(out, cases[i].want, "%lld s", (long long)cases[i].s);
    }
}

Test(table, rfc3339_times)
{
    int64_t t;
    cr_assert_eq(wc_http_table_parse_time("2024-05-01T12:00:00Z", &t), 0);
    cr_assert_eq(t, NOW);
    cr_assert_eq(wc_http_table_parse_time("2024-05-01T11:59:30.123456Z", &t), 0);
    cr_assert_eq(t, NOW - 30);
    cr_assert_eq(wc_http_table_parse_time("2024-05-01T14:00:00+02:00", &t), 0);
    cr_assert_eq(t, NOW);
    cr_assert_eq(wc_http_table_parse_time("2024-05-01T07:00:00-05:00", &t), 0);
    cr_assert_eq(t, NOW);
    const char *bad[] = {"",
                         "2024-05-01",
                         "2024-05-01T12:00:00",
                         "2024-13-01T12:00:00Z",
                         "2024-05-01T12:00:00Zjunk",
                         "2024-05-01T12:00:00.Z",
                         "yesterday"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(wc_http_table_parse_time(bad[i], &t), WC_EINVAL, "%s", bad[i]);
}

/* ---- Pods ---- */

Test(table, pod_running_with_restarts)
{
    expect_cells(
        "", "pods",
        "{\"metadata\":{\"name\":\"web-1\",\"creationTimestamp\":\"2024-05-01T09:00:00Z\"},"
        "\"spec\":{\"nodeName\":\"node-1\",\"containers\":[{\"name\":\"a\"},{\"name\":"
        "\"b\"}]},"
        "\"status\":{\"phase\":\"Running\",\"podIPs\":[{\"ip\":\"10.0.0.11\"},{\"ip\":"
        "\"fd00::11\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
        "\"containerStatuses\":["
        "{\"name\":\"a\",\"ready\":true,\"restartCount\":3,\"state\":{\"running\":{}},"
        "\"lastState\":{\"terminated\":{\"exitCode\":1,\"finishedAt\":"
        "\"2024-05-01T11:55:00Z\"}}},"
        "{\"name\":\"b\",\"ready\":true,\"restartCount\":1,\"state\":{\"running\":{}},"
        "\"lastState\":{\"terminated\":{\"exitCode\":1,\"finishedAt\":"
        "\"2024-05-01T10:00:00Z\"}}}]}}",
        "[\"web-1\",\"2/2\",\"Running\",\"4 (5m ago)\",\"3h\",\"10.0.0.11\",\"node-1\","
        "\"<none>\",\"<none>\"]");
}

Test(table, pod_waiting_and_terminated_reasons)
{
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"a\"}]},"
                 "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.1.1\",\"containerStatuses\":"
                 "[{\"name\":\"a\",\"restartCount\":5,\"state\":{\"waiting\":{\"reason\":"
                 "\"CrashLoopBackOff\"}}}]}}",
                 "[\"p\",\"0/1\",\"CrashLoopBackOff\",\"5\",\"<unknown>\",\"10.1.1.1\","
                 "\"<none>\",\"<none>\",\"<none>\"]");
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"a\"}]},"
                 "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\","
                 "\"state\":{\"terminated\":{\"exitCode\":137,\"signal\":9}}}]}}",
                 "[\"p\",\"0/1\",\"Signal:9\",\"0\",\"<unknown>\",\"<none>\",\"<none>\","
                 "\"<none>\",\"<none>\"]");
}

Test(table, pod_initializing)
{
    /* the first init container done, the second waiting to start */
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"initContainers\":[{\"name\":"
                 "\"i1\"},{\"name\":\"i2\"}],\"containers\":[{\"name\":\"a\"}]},"
                 "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
                 "{\"name\":\"i1\",\"state\":{\"terminated\":{\"exitCode\":0}}},"
                 "{\"name\":\"i2\",\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]}}",
                 "[\"p\",\"0/1\",\"Init:1/2\",\"0\",\"<unknown>\",\"<none>\",\"<none>\","
                 "\"<none>\",\"<none>\"]");
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"initContainers\":[{\"name\":"
                 "\"i1\"}],\"containers\":[{\"name\":\"a\"}]},"
                 "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
                 "{\"name\":\"i1\",\"restartCount\":2,\"state\":{\"waiting\":{\"reason\":"
                 "\"CrashLoopBackOff\"}}}]}}",
                 "[\"p\",\"0/1\",\"Init:CrashLoopBackOff\",\"2\",\"<unknown>\",\"<none>\","
                 "\"<none>\",\"<none>\",\"<none>\"]");
}

Test(table, pod_sidecar_counts_as_a_container)
{
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"initContainers\":[{\"name\":\"s\","
                 "\"restartPolicy\":\"Always\"}],\"containers\":[{\"name\":\"a\"}],"
                 "\"readinessGates\":[{\"conditionType\":\"x/ok\"},{\"conditionType\":\"x/no\"}]},"
                 "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Initialized\","
                 "\"status\":\"True\"},{\"type\":\"x/ok\",\"status\":\"True\"}],"
                 "\"initContainerStatuses\":[{\"name\":\"s\",\"started\":true,\"ready\":true,"
                 "\"state\":{\"running\":{}}}],"
                 "\"containerStatuses\":[{\"name\":\"a\",\"ready\":true,\"state\":{\"running\":"
                 "{}}}]}}",
                 "[\"p\",\"2/2\",\"Running\",\"0\",\"<unknown>\",\"<none>\",\"<none>\","
                 "\"<none>\",\"1/2\"]");
}

Test(table, pod_completed_and_terminating)
{
    json_t *row = row_for("", "pods",
                          "{\"metadata\":{\"name\":\"job-x\"},\"spec\":{\"containers\":[{\"name\":"
                          "\"a\"}]},\"status\":{\"phase\":\"Succeeded\",\"containerStatuses\":[{"
                          "\"name\":\"a\",\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":"
                          "\"Completed\"}}}]}}");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(row, "cells"), 2)),
                     "Completed");
    json_t *cond = json_array_get(json_object_get(row, "conditions"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(cond, "type")), "Completed");
    cr_assert_str_eq(json_string_value(json_object_get(cond, "reason")), "Succeeded");
    json_decref(row);
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":\"p\",\"deletionTimestamp\":\"2024-05-01T11:59:00Z\"},"
                 "\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":"
                 "\"Running\"}}",
                 "[\"p\",\"0/1\",\"Terminating\",\"0\",\"<unknown>\",\"<none>\",\"<none>\","
                 "\"<none>\",\"<none>\"]");
}

Test(table, pod_missing_everything)
{
    expect_cells("", "pods", "{}",
                 "[\"\",\"0/0\",\"\",\"0\",\"<unknown>\",\"<none>\",\"<none>\",\"<none>\","
                 "\"<none>\"]");
    /* wrong types are read as absent */
    expect_cells("", "pods",
                 "{\"metadata\":{\"name\":7,\"creationTimestamp\":\"soon\"},\"spec\":[],"
                 "\"status\":{\"containerStatuses\":{\"a\":1}}}",
                 "[\"\",\"0/0\",\"\",\"0\",\"<unknown>\",\"<none>\",\"<none>\",\"<none>\","
                 "\"<none>\"]");
}

/* ---- Services ---- */

Test(table, services)
{
    expect_cells("", "services",
                 "{\"metadata\":{\"name\":\"web\",\"creationTimestamp\":\"2024-05-01T11:55:00Z\"},"
                 "\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.0.10\",\"clusterIPs\":["
                 "\"10.96.0.10\"],\"selector\":{\"tier\":\"f\",\"app\":\"web\"},\"ports\":[{"
                 "\"port\":80,\"protocol\":\"TCP\"},{\"port\":53,\"protocol\":\"UDP\"}]}}",
                 "[\"web\",\"ClusterIP\",\"10.96.0.10\",\"<none>\",\"80/TCP,53/UDP\",\"5m\","
                 "\"app=web,tier=f\"]");
    expect_cells("", "services",
                 "{\"metadata\":{\"name\":\"np\"},\"spec\":{\"type\":\"NodePort\",\"clusterIPs\":"
                 "[\"10.96.0.11\"],\"externalIPs\":[\"1.2.3.4\",\"1.2.3.5\"],\"ports\":[{\"port\":"
                 "80,\"nodePort\":30080,\"protocol\":\"TCP\"}]}}",
                 "[\"np\",\"NodePort\",\"10.96.0.11\",\"1.2.3.4,1.2.3.5\",\"80:30080/TCP\","
                 "\"<unknown>\",\"<none>\"]");
    expect_cells("", "services",
                 "{\"metadata\":{\"name\":\"lb\"},\"spec\":{\"type\":\"LoadBalancer\","
                 "\"clusterIPs\":[\"10.96.0.12\"],\"ports\":[]}}",
                 "[\"lb\",\"LoadBalancer\",\"10.96.0.12\",\"<pending>\",\"<none>\","
                 "\"<unknown>\",\"<none>\"]");
    expect_cells("", "services",
                 "{\"metadata\":{\"name\":\"lb\"},\"spec\":{\"type\":\"LoadBalancer\","
                 "\"clusterIPs\":[\"10.96.0.12\"]},\"status\":{\"loadBalancer\":{\"ingress\":["
                 "{\"ip\":\"5.6.7.8\"},{\"hostname\":\"lb.example.com\"},{\"ip\":\"5.6.7.8\"}]}}}",
                 "[\"lb\",\"LoadBalancer\",\"10.96.0.12\",\"5.6.7.8,lb.example.com\",\"<none>\","
                 "\"<unknown>\",\"<none>\"]");
    expect_cells("", "services",
                 "{\"metadata\":{\"name\":\"ext\"},\"spec\":{\"type\":\"ExternalName\","
                 "\"externalName\":\"db.example.com\"}}",
                 "[\"ext\",\"ExternalName\",\"<none>\",\"db.example.com\",\"<none>\","
                 "\"<unknown>\",\"<none>\"]");
    expect_cells("", "services", "{}",
                 "[\"\",\"\",\"<none>\",\"<unknown>\",\"<none>\",\"<unknown>\",\"<none>\"]");
}

/* ---- Events, nodes, workloads, the small ones ---- */

Test(table, events)
{
    expect_cells("", "events",
                 "{\"metadata\":{\"name\":\"web-1.17\"},\"type\":\"Warning\",\"reason\":"
                 "\"BackOff\",\"message\":\"  Back-off restarting\\n\",\"involvedObject\":{"
                 "\"kind\":\"Pod\",\"name\":\"web-1\",\"fieldPath\":\"spec.containers{a}\"},"
                 "\"source\":{\"component\":\"kubelet\",\"host\":\"node-1\"},\"count\":12,"
                 "\"firstTimestamp\":\"2024-05-01T10:00:00Z\",\"lastTimestamp\":"
                 "\"2024-05-01T11:59:00Z\"}",
                 "[\"60s\",\"Warning\",\"BackOff\",\"pod/web-1\",\"spec.containers{a}\","
                 "\"kubelet, node-1\",\"Back-off restarting\",\"120m\",12,\"web-1.17\"]");
    /* the newer API: eventTime, a series, reportingController */
    expect_cells("", "events",
                 "{\"metadata\":{\"name\":\"e\"},\"type\":\"Normal\",\"reason\":\"Scheduled\","
                 "\"involvedObject\":{\"kind\":\"Node\"},\"reportingComponent\":\"sched\","
                 "\"eventTime\":\"2024-05-01T11:00:00.000000Z\",\"series\":{\"count\":4,"
                 "\"lastObservedTime\":\"2024-05-01T11:58:00.000000Z\"}}",
                 "[\"2m\",\"Normal\",\"Scheduled\",\"node\",\"\",\"sched\",\"\",\"60m\",4,"
                 "\"e\"]");
    expect_cells("", "events", "{}",
                 "[\"<unknown>\",\"\",\"\",\"\",\"\",\"\",\"\",\"<unknown>\",1,\"\"]");
}

Test(table, nodes)
{
    expect_cells("", "nodes",
                 "{\"metadata\":{\"name\":\"n1\",\"creationTimestamp\":\"2024-04-01T12:00:00Z\","
                 "\"labels\":{\"node-role.kubernetes.io/worker\":\"\","
                 "\"node-role.kubernetes.io/control-plane\":\"\",\"kubernetes.io/role\":"
                 "\"worker\"}},\"spec\":{\"unschedulable\":true},\"status\":{\"conditions\":[{"
                 "\"type\":\"Ready\",\"status\":\"True\"}],\"addresses\":[{\"type\":"
                 "\"InternalIP\",\"address\":\"192.168.0.1\"}],\"nodeInfo\":{\"kubeletVersion\":"
                 "\"v1.31.0\",\"osImage\":\"Debian\"}}}",
                 "[\"n1\",\"Ready,SchedulingDisabled\",\"control-plane,worker\",\"30d\","
                 "\"v1.31.0\",\"192.168.0.1\",\"<none>\",\"Debian\",\"<unknown>\","
                 "\"<unknown>\"]");
    expect_cells("", "nodes",
                 "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":"
                 "\"Unknown\"}]}}",
                 "[\"\",\"NotReady\",\"<none>\",\"<unknown>\",\"\",\"<none>\",\"<none>\","
                 "\"<unknown>\",\"<unknown>\",\"<unknown>\"]");
}

Test(table, workloads)
{
    expect_cells("apps", "deployments",
                 "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"replicas\":3,\"selector\":{"
                 "\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"tier\","
                 "\"operator\":\"In\",\"values\":[\"fe\",\"be\"]}]},\"template\":{\"spec\":{"
                 "\"containers\":[{\"name\":\"a\",\"image\":\"i/a:1\"},{\"name\":\"b\","
                 "\"image\":\"i/b:2\"}]}}},\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3,"
                 "\"availableReplicas\":2}}",
                 "[\"web\",\"2/3\",3,2,\"<unknown>\",\"a,b\",\"i/a:1,i/b:2\","
                 "\"app=web,tier in (be,fe)\"]");
    expect_cells("apps", "deployments", "{}", "[\"\",\"0/0\",0,0,\"<unknown>\",\"\",\"\",\"\"]");
    expect_cells("batch", "jobs",
                 "{\"metadata\":{\"name\":\"j\"},\"spec\":{\"completions\":3},\"status\":{"
                 "\"succeeded\":3,\"startTime\":\"2024-05-01T11:00:00Z\",\"completionTime\":"
                 "\"2024-05-01T11:02:30Z\",\"conditions\":[{\"type\":\"Complete\",\"status\":"
                 "\"True\"}]}}",
                 "[\"j\",\"Complete\",\"3/3\",\"2m30s\",\"<unknown>\",\"\",\"\",\"<none>\"]");
    expect_cells("apps", "statefulsets",
                 "{\"metadata\":{\"name\":\"s\"},\"spec\":{\"replicas\":2}}",
                 "[\"s\",\"0/2\",\"<unknown>\",\"\",\"\"]");
    expect_cells("policy", "poddisruptionbudgets",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"minAvailable\":\"50%\"},\"status\":"
                 "{\"disruptionsAllowed\":1}}",
                 "[\"p\",\"50%\",\"N/A\",1,\"<unknown>\"]");
}

Test(table, autoscalers_quotas_apiservices)
{
    expect_cells("autoscaling", "horizontalpodautoscalers",
                 "{\"metadata\":{\"name\":\"h\"},\"spec\":{\"scaleTargetRef\":{\"kind\":"
                 "\"Deployment\",\"name\":\"web\"},\"minReplicas\":2,\"maxReplicas\":10,"
                 "\"metrics\":[{\"type\":\"Resource\",\"resource\":{\"name\":\"cpu\","
                 "\"target\":{\"type\":\"Utilization\",\"averageUtilization\":80}}},"
                 "{\"type\":\"Pods\",\"pods\":{\"target\":{\"averageValue\":\"1k\"}}},"
                 "{\"type\":\"External\",\"external\":{\"target\":{\"value\":\"5\"}}}]},"
                 "\"status\":{\"currentReplicas\":3,\"currentMetrics\":[{\"type\":"
                 "\"Resource\",\"resource\":{\"name\":\"cpu\",\"current\":{"
                 "\"averageUtilization\":42}}}]}}",
                 "[\"h\",\"Deployment/web\",\"cpu: 42%/80%, <unknown>/1k + 1 more...\","
                 "\"2\",10,3,\"<unknown>\"]");
    expect_cells("autoscaling", "horizontalpodautoscalers", "{}",
                 "[\"\",\"/\",\"<none>\",\"<unset>\",0,0,\"<unknown>\"]");
    expect_cells("", "resourcequotas",
                 "{\"metadata\":{\"name\":\"q\"},\"status\":{\"hard\":{\"requests.cpu\":"
                 "\"2\",\"limits.memory\":\"4Gi\",\"pods\":\"10\"},\"used\":{"
                 "\"requests.cpu\":\"500m\",\"pods\":\"3\"}}}",
                 "[\"q\",\"<unknown>\",\"pods: 3/10, requests.cpu: 500m/2\","
                 "\"limits.memory: 0/4Gi\"]");
    expect_cells("apiregistration.k8s.io", "apiservices",
                 "{\"metadata\":{\"name\":\"v1beta1.metrics.k8s.io\"},\"spec\":{"
                 "\"service\":{\"namespace\":\"kube-system\",\"name\":\"metrics\"}},"
                 "\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":"
                 "\"False\",\"reason\":\"MissingEndpoints\"}]}}",
                 "[\"v1beta1.metrics.k8s.io\",\"kube-system/metrics\","
                 "\"False (MissingEndpoints)\",\"<unknown>\"]");
    expect_cells("apiregistration.k8s.io", "apiservices", "{\"metadata\":{\"name\":\"v1.\"}}",
                 "[\"v1.\",\"Local\",\"Unknown\",\"<unknown>\"]");
}

Test(table, configmaps_secrets_namespaces)
{
    expect_cells("", "configmaps",
                 "{\"metadata\":{\"name\":\"c\",\"creationTimestamp\":\"2024-05-01T11:59:15Z\"},"
                 "\"data\":{\"a\":\"1\",\"b\":\"2\"},\"binaryData\":{\"c\":\"AA==\"}}",
                 "[\"c\",3,\"45s\"]");
    expect_cells("", "configmaps", "{\"metadata\":{\"name\":\"e\"}}", "[\"e\",0,\"<unknown>\"]");
    expect_cells("", "secrets",
                 "{\"metadata\":{\"name\":\"s\"},\"type\":\"Opaque\",\"data\":{\"k\":\"dg==\"}}",
                 "[\"s\",\"Opaque\",1,\"<unknown>\"]");
    expect_cells("", "namespaces",
                 "{\"metadata\":{\"name\":\"d\"},\"status\":{\"phase\":"
                 "\"Active\"}}",
                 "[\"d\",\"Active\",\"<unknown>\"]");
}

Test(table, other_resources_get_name_and_age)
{
    /* a custom resource added with --resource, and no resource at all */
    expect_cells("example.com", "widgets",
                 "{\"metadata\":{\"name\":\"w\",\"creationTimestamp\":\"2024-05-01T11:00:00Z\"}}",
                 "[\"w\",\"60m\"]");
    wc_http_table_opts o = opts_for("example.com", "widgets", WC_HTTP_TABLE_METADATA);
    json_t *cols = wc_http_table_columns(o.printer);
    cr_assert_eq(json_array_size(cols), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cols, 0), "name")), "Name");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cols, 0), "format")), "name");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cols, 1), "name")), "Age");
    json_decref(cols);
}

/* ---- Whole Tables ---- */

static wc_kv *kv(const char *key, const char *value, int64_t rev)
{
    wc_kv_spec s = {.key = key,
                    .key_len = strlen(key),
                    .value = value,
                    .value_len = strlen(value),
                    .create_rev = rev,
                    .mod_rev = rev,
                    .version = 1};
    wc_kv *k = wc_kv_new(&s, NULL);
    cr_assert_not_null(k);
    return k;
}

Test(table, list_document_and_include_object)
{
    wc_kv *items[2] = {
        kv("/registry/pods/d/a",
           "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\",\"labels\":{"
           "\"x\":\"1\"}},\"spec\":{\"nodeName\":\"n\"}}",
           5),
        kv("/registry/pods/d/b",
           "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":"
           "\"b\"}}",
           6),
    };
    static const wc_http_table_include modes[] = {WC_HTTP_TABLE_METADATA, WC_HTTP_TABLE_OBJECT,
                                                  WC_HTTP_TABLE_NONE};
    for (size_t m = 0; m < 3; m++) {
        wc_http_table_opts o = opts_for("", "pods", modes[m]);
        size_t len = 0;
        char *s = wc_http_table_list(&o, items, 2, WC_FAMILY_K8S, 9, m ? NULL : "tok", &len);
        cr_assert_not_null(s);
        cr_assert_eq(strlen(s), len);
        json_t *t = json_loads(s, 0, NULL);
        cr_assert_not_null(t, "%s", s);
        cr_assert_str_eq(json_string_value(json_object_get(t, "kind")), "Table");
        cr_assert_str_eq(json_string_value(json_object_get(t, "apiVersion")), "meta.k8s.io/v1");
        json_t *meta = json_object_get(t, "metadata");
        cr_assert_str_eq(json_string_value(json_object_get(meta, "resourceVersion")), "9");
        cr_assert_eq(json_object_get(meta, "continue") != NULL, m == 0, "%s", s);
        json_t *c0 = json_array_get(json_object_get(t, "columnDefinitions"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(c0, "name")), "Name");
        cr_assert_str_eq(json_string_value(json_object_get(c0, "type")), "string");
        cr_assert_str_eq(json_string_value(json_object_get(c0, "format")), "name");
        cr_assert_not_null(json_object_get(c0, "description"));
        cr_assert_eq(json_integer_value(json_object_get(c0, "priority")), 0);
        json_t *rows = json_object_get(t, "rows");
        cr_assert_eq(json_array_size(rows), 2);
        json_t *obj = json_object_get(json_array_get(rows, 0), "object");
        if (modes[m] == WC_HTTP_TABLE_METADATA) {
            cr_assert_str_eq(json_string_value(json_object_get(obj, "kind")),
                             "PartialObjectMetadata");
            cr_assert_str_eq(json_string_value(json_object_get(obj, "apiVersion")),
                             "meta.k8s.io/v1");
            json_t *md = json_object_get(obj, "metadata");
            cr_assert_str_eq(json_string_value(json_object_get(md, "name")), "a");
            cr_assert_str_eq(json_string_value(json_object_get(md, "resourceVersion")), "5");
            cr_assert_not_null(json_object_get(md, "labels"));
            cr_assert_null(json_object_get(obj, "spec"));
        } else if (modes[m] == WC_HTTP_TABLE_OBJECT) {
            cr_assert_str_eq(json_string_value(json_object_get(obj, "kind")), "Pod");
            cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName")), "n");
        } else {
            cr_assert(json_is_null(obj), "%s", s);
        }
        json_decref(t);
        free(s);
    }
    wc_kv_unref(items[0]);
    wc_kv_unref(items[1]);
}

Test(table, get_document)
{
    wc_http_table_opts o = opts_for("", "configmaps", WC_HTTP_TABLE_METADATA);
    const char *cm = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"c\","
                     "\"resourceVersion\":\"42\"},\"data\":{\"a\":\"b\"}}";
    size_t len;
    char *s = wc_http_table_get(&o, cm, strlen(cm), &len);
    cr_assert_not_null(s);
    json_t *t = json_loads(s, 0, NULL);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(t, "metadata"), "resourceVersion")),
        "42");
    cr_assert_eq(json_array_size(json_object_get(t, "columnDefinitions")), 3);
    json_t *cells = json_object_get(json_array_get(json_object_get(t, "rows"), 0), "cells");
    cr_assert_str_eq(json_string_value(json_array_get(cells, 0)), "c");
    cr_assert_eq(json_integer_value(json_array_get(cells, 1)), 1);
    json_decref(t);
    free(s);
    cr_assert_null(wc_http_table_get(&o, "[1]", 3, &len));
}
