/*
 * libFuzzer target: arbitrary bytes as an ABAC policy file, then decisions and refusal
 * messages. The parser's promises checked: only 0, WC_EINVAL (with a message and a line inside
 * the text) or WC_ENOMEM; no more policies than lines; a newline appended changes nothing;
 * decisions are deterministic, the same for both parses, and never allow anyone with no
 * policy; the 403 message built from fuzzed names is NUL-terminated valid UTF-8.
 * Build: see tests/fuzz/run.sh
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http_internal.h"

static unsigned lines(const uint8_t *data, size_t size)
{
    unsigned n = 1;
    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

static const wc_http_auth_attrs attrs[] = {
    {.verb = "get", .resource = true, .group = "", .plural = "pods", .ns = "default"},
    {.verb = "list", .resource = true, .group = "", .plural = "pods", .ns = ""},
    {.verb = "watch", .resource = true, .group = "apps", .plural = "deployments", .ns = "a"},
    {.verb = "delete", .resource = true, .group = "", .plural = "secrets", .ns = "kube-system"},
    {.verb = "get", .path = "/metrics"},
    {.verb = "get", .path = "/keys/registry/pods/default/x"},
    {.verb = "get", .path = ""},
};
enum { NATTRS = sizeof(attrs) / sizeof(attrs[0]) };

static void decide(const wc_http_auth_policy *p, const wc_http_auth_policy *p2,
                   const wc_http_user *u)
{
    for (size_t i = 0; i < NATTRS; i++) {
        bool a = wc_http_auth_policy_allows(p, u, &attrs[i]);
        if (a != wc_http_auth_policy_allows(p, u, &attrs[i]))
            abort();
        if (p2 && a != wc_http_auth_policy_allows(p2, u, &attrs[i]))
            abort();
        if (!p && a)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wc_http_auth_policy *p = NULL;
    wc_http_auth_diag d;
    int rc = wc_http_auth_policy_parse((const char *)data, size, &p, &d);
    if (rc == WC_ENOMEM)
        return 0;
    if (rc == WC_EINVAL) {
        if (p || !d.message[0] || d.line < 1 || d.line > lines(data, size))
            abort();
    } else if (rc != 0 || !p || wc_http_auth_policy_count(p) > lines(data, size)) {
        abort();
    }

    char *more = malloc(size + 1);
    if (!more)
        abort();
    memcpy(more, data, size);
    more[size] = '\n';
    wc_http_auth_policy *p2 = NULL;
    wc_http_auth_diag d2;
    int rc2 = wc_http_auth_policy_parse(more, size + 1, &p2, &d2);
    free(more);
    if (rc2 != rc || (rc == 0 && wc_http_auth_policy_count(p) != wc_http_auth_policy_count(p2)))
        abort();

    wc_http_user u;
    wc_http_auth_anonymous(&u);
    decide(p, p2, &u);
    const char *groups[] = {"dev", "system:masters"};
    if (wc_http_auth_user_set(&u, "alice", groups, 2) != 0)
        abort();
    decide(p, p2, &u);

    /* a user and a path made of the input: the refusal must stay well formed */
    char name[WC_HTTP_AUTH_NAME_MAX];
    size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    if (wc_http_auth_user_set(&u, name, NULL, 0) != 0)
        abort();
    decide(p, p2, &u);
    char *path = malloc(size + 1);
    if (!path)
        abort();
    memcpy(path, data, size);
    path[size] = '\0';
    wc_http_auth_attrs a = {.verb = "get", .path = path};
    wc_http_error e;
    wc_http_auth_forbidden(&e, &u, &a, WC_HTTP_AUTH_NO_POLICY);
    size_t len = strnlen(e.message, sizeof(e.message));
    if (len == sizeof(e.message) || e.code != 403 || !wc_utf8_valid(e.message, len))
        abort();
    a = (wc_http_auth_attrs){.verb = "list",
                             .resource = true,
                             .group = "apps",
                             .plural = "pods",
                             .ns = path,
                             .name = name};
    wc_http_auth_forbidden(&e, &u, &a, NULL);
    len = strnlen(e.message, sizeof(e.message));
    if (len == sizeof(e.message) || !wc_utf8_valid(e.message, len))
        abort();
    free(path);

    wc_http_auth_policy_free(p);
    wc_http_auth_policy_free(p2);
    return 0;
}
