/*
 * Authentication and authorization without sockets: the token CSV as the apiserver reads it,
 * token lookup, identities, every ABAC field, and the exact Status messages of a refusal.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "http_internal.h"

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static wc_http_auth_tokens *tokens_ok(const char *text, wc_http_auth_diag *d)
{
    wc_http_auth_tokens *t = NULL;
    int rc = wc_http_auth_tokens_parse(text, strlen(text), &t, d);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, d->message);
    cr_assert_not_null(t);
    return t;
}

/* Parses text expecting WC_EINVAL at `line`, with `part` in the message. */
static void tokens_bad(const char *text, unsigned line, const char *part)
{
    wc_http_auth_tokens *t = (wc_http_auth_tokens *)1;
    wc_http_auth_diag d;
    cr_assert_eq(wc_http_auth_tokens_parse(text, strlen(text), &t, &d), WC_EINVAL, "%s", text);
    cr_assert_null(t);
    cr_assert_eq(d.line, line, "line %u for %s (%s)", d.line, text, d.message);
    cr_assert(strstr(d.message, part), "'%s' lacks '%s'", d.message, part);
}

/* Looks `tok` up, expecting a hit for user `name` with exactly the groups in `groups`
 * (NULL-terminated; system:authenticated is checked here, not listed). */
static void expect_user(wc_http_auth_tokens *t, const char *tok, const char *name,
                        const char *const *groups)
{
    wc_http_user u;
    int rc = wc_http_auth_token_lookup(t, tok, strlen(tok), &u);
    cr_assert_eq(rc, 0, "token %s: rc %d", tok, rc);
    cr_assert(u.authenticated);
    cr_assert_str_eq(u.name, name);
    size_t n = 0;
    while (groups[n]) {
        cr_assert_str_eq(u.groups[n], groups[n], "group %zu", n);
        n++;
    }
    cr_assert_eq(u.ngroups, n + 1, "%zu groups, want %zu", u.ngroups, n + 1);
    cr_assert_str_eq(u.groups[n], "system:authenticated");
}

static void expect_miss(wc_http_auth_tokens *t, const char *tok, size_t len)
{
    wc_http_user u;
    memset(&u, 0x5a, sizeof(u));
    cr_assert_eq(wc_http_auth_token_lookup(t, tok, len, &u), WC_ENOENT);
    cr_assert_eq(u.name[0], 0x5a, "a miss must leave the user untouched");
}

static const char *const none[] = {NULL};

/* ---------------------------------------------------------------------------------------
 * The token CSV
 * ------------------------------------------------------------------------------------- */

Test(tokens, three_columns_and_groups)
{
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok("abc123,alice,1001\n"
                                       "def456,bob,1002,\"dev,ops\"\n"
                                       "ghi789,carol,1003,viewers\n",
                                       &d);
    cr_assert_eq(wc_http_auth_tokens_count(t), 3);
    cr_assert_eq(d.empty, 0);
    cr_assert_eq(d.duplicates, 0);
    expect_user(t, "abc123", "alice", none);
    expect_user(t, "def456", "bob", (const char *const[]){"dev", "ops", NULL});
    expect_user(t, "ghi789", "carol", (const char *const[]){"viewers", NULL});
    wc_http_auth_tokens_free(t);
}

Test(tokens, go_csv_quoting)
{
    wc_http_auth_diag d;
    /* doubled quotes, a quoted token, a quoted field across lines, CRLF, no final newline,
     * blank lines skipped, '#' not a comment, fields past the fourth ignored */
    wc_http_auth_tokens *t = tokens_ok("\n\"q,t\",\"da\"\"ve\",7,\"a\nb\"\r\n"
                                       "\r\n"
                                       "#hash,erin,8\n"
                                       "last,frank,9,\"\",extra,more",
                                       &d);
    cr_assert_eq(wc_http_auth_tokens_count(t), 3);
    expect_user(t, "q,t", "da\"ve", (const char *const[]){"a\nb", NULL});
    expect_user(t, "#hash", "erin", none);
    /* strings.Split("", ",") is one empty group, as the apiserver keeps it */
    expect_user(t, "last", "frank", (const char *const[]){"", NULL});
    wc_http_auth_tokens_free(t);
}

Test(tokens, groups_split_at_every_comma)
{
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok("t1,u,1,\"a,,b,\"\n", &d);
    expect_user(t, "t1", "u", (const char *const[]){"a", "", "b", "", NULL});
    wc_http_auth_tokens_free(t);
}

Test(tokens, too_few_columns_with_line)
{
    tokens_bad("a,b,c\nd,e\n", 2,
               "must have at least 3 columns (token, user name, user uid), "
               "found 2");
    tokens_bad("\n\n\nonly\n", 4, "found 1");
    /* a record spanning lines is named by its first line */
    tokens_bad("a,b,c\n\"x\ny\",z\n", 2, "found 2");
}

Test(tokens, quote_errors_with_line_and_column)
{
    tokens_bad("a,b,c\nto\"k,u,1\n", 2,
               "parse error on line 2, column 3: bare \" in "
               "non-quoted-field");
    tokens_bad("\"tok\"x,u,1\n", 1,
               "parse error on line 1, column 5: extraneous or missing \" "
               "in quoted-field");
    /* an unterminated quote runs to the end of the text */
    tokens_bad("a,b,c\n\"open,u,1\nmore\n", 2, "record on line 2; parse error on line 3");
    tokens_bad("a, \"b\",c\n", 1, "column 4: bare \"");
}

Test(tokens, empty_token_skipped_and_counted)
{
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok("tok,alice,1\n,bob,2\n\"\",carol,3\n", &d);
    cr_assert_eq(wc_http_auth_tokens_count(t), 1);
    cr_assert_eq(d.empty, 2);
    cr_assert_eq(d.empty_line, 2);
    expect_miss(t, "", 0);
    wc_http_auth_tokens_free(t);
}

Test(tokens, duplicate_last_wins_and_counted)
{
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok("tok,alice,1\nother,bob,2\ntok,mallory,3,admins\n", &d);
    cr_assert_eq(wc_http_auth_tokens_count(t), 2);
    cr_assert_eq(d.duplicates, 1);
    cr_assert_eq(d.duplicate_line, 3);
    expect_user(t, "tok", "mallory", (const char *const[]){"admins", NULL});
    expect_user(t, "other", "bob", none);
    wc_http_auth_tokens_free(t);
}

Test(tokens, what_wcached_cannot_hold)
{
    char name[400];
    memset(name, 'n', sizeof(name));
    name[sizeof(name) - 1] = '\0';
    char text[512];
    snprintf(text, sizeof(text), "ok,u,1\ntok,%s,1\n", name);
    tokens_bad(text, 2, "user name longer than 255 bytes");
    tokens_bad("tok,u,1,\"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\"\n", 1, "more than 15 groups");
    wc_http_auth_tokens *t = NULL;
    wc_http_auth_diag d;
    cr_assert_eq(wc_http_auth_tokens_parse("a,b,c\nt\0k,u,1\n", 14, &t, &d), WC_EINVAL);
    cr_assert_eq(d.line, 2);
    cr_assert_null(t);
}

Test(tokens, errors_never_show_the_token)
{
    wc_http_auth_tokens *t = NULL;
    wc_http_auth_diag d;
    const char *text = "s3cr3tvalue,u\n";
    cr_assert_eq(wc_http_auth_tokens_parse(text, strlen(text), &t, &d), WC_EINVAL);
    cr_assert_null(strstr(d.message, "s3cr3t"), "%s", d.message);
}

Test(tokens, lookup_misses)
{
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok("abc123,alice,1\nabc1234,bob,2\n", &d);
    expect_miss(t, "abc12", 5);
    expect_miss(t, "abc124", 6);
    expect_miss(t, "ABC123", 6);
    expect_miss(t, "abc12345", 8);
    expect_miss(t, "abc123", 0);
    /* the presented length decides, not a NUL */
    expect_miss(t, "abc123\0", 7);
    expect_user(t, "abc1234", "bob", none);
    expect_user(t, "abc123", "alice", none);
    wc_http_auth_tokens_free(t);
    wc_http_user u;
    cr_assert_eq(wc_http_auth_token_lookup(NULL, "abc123", 6, &u), WC_ENOENT);
}

Test(tokens, many_tokens_every_one_found)
{
    char text[64 * 40] = "";
    for (int i = 0; i < 64; i++) {
        char line[40];
        snprintf(line, sizeof(line), "token-%d,user%d,%d\n", i, i, i);
        strcat(text, line);
    }
    wc_http_auth_diag d;
    wc_http_auth_tokens *t = tokens_ok(text, &d);
    cr_assert_eq(wc_http_auth_tokens_count(t), 64);
    for (int i = 0; i < 64; i++) {
        char tok[16], name[16];
        snprintf(tok, sizeof(tok), "token-%d", i);
        snprintf(name, sizeof(name), "user%d", i);
        expect_user(t, tok, name, none);
    }
    expect_miss(t, "token-64", 8);
    wc_http_auth_tokens_free(t);
}

Test(tokens, load_from_file)
{
    char path[] = "/tmp/wc-tokens-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "filetok,alice,1,readers\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    wc_http_auth_tokens *t = NULL;
    wc_http_auth_diag d;
    cr_assert_eq(wc_http_auth_tokens_load(path, &t, &d), 0, "%s", d.message);
    expect_user(t, "filetok", "alice", (const char *const[]){"readers", NULL});
    wc_http_auth_tokens_free(t);
    unlink(path);
    cr_assert_eq(wc_http_auth_tokens_load(path, &t, &d), WC_EIO);
    cr_assert_null(t);
    cr_assert(strstr(d.message, path));
}

Test(bearer, header_forms)
{
    const char *tok;
    size_t len;
    cr_assert_eq(wc_http_auth_bearer("Bearer abc", &tok, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(strncmp(tok, "abc", 3), 0);
    cr_assert_eq(wc_http_auth_bearer("  bEaReR xyz extra\t", &tok, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(strncmp(tok, "xyz", 3), 0);
    cr_assert_eq(wc_http_auth_bearer("Bearer  abc", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer("Bearer", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer("Bearer ", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer("Basic YWxpY2U6cHc=", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer("Bearer\tabc", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer("", &tok, &len), WC_ENOENT);
    cr_assert_eq(wc_http_auth_bearer(NULL, &tok, &len), WC_ENOENT);
}

/* ---------------------------------------------------------------------------------------
 * Identities
 * ------------------------------------------------------------------------------------- */

Test(user, anonymous_and_system_groups)
{
    wc_http_user u;
    wc_http_auth_anonymous(&u);
    cr_assert_not(u.authenticated);
    cr_assert_str_eq(u.name, "system:anonymous");
    cr_assert_eq(u.ngroups, 1);
    cr_assert(wc_http_auth_user_in(&u, "system:unauthenticated"));
    cr_assert_not(wc_http_auth_user_in(&u, "system:authenticated"));

    /* a certificate's CN and O's: system:authenticated added once */
    const char *g[] = {"dev", "ops"};
    cr_assert_eq(wc_http_auth_user_set(&u, "carol", g, 2), 0);
    cr_assert(u.authenticated);
    cr_assert_eq(u.ngroups, 3);
    cr_assert_str_eq(u.groups[2], "system:authenticated");

    const char *already[] = {"system:authenticated"};
    cr_assert_eq(wc_http_auth_user_set(&u, "dave", already, 1), 0);
    cr_assert_eq(u.ngroups, 1);

    char longname[WC_HTTP_AUTH_NAME_MAX + 1];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(wc_http_auth_user_set(&u, longname, NULL, 0), WC_ETOOBIG);
    cr_assert_str_eq(u.name, "system:anonymous", "a failure leaves the reader anonymous");
    const char *many[WC_HTTP_AUTH_GROUPS_MAX];
    for (size_t i = 0; i < WC_HTTP_AUTH_GROUPS_MAX; i++)
        many[i] = "g";
    cr_assert_eq(wc_http_auth_user_set(&u, "eve", many, WC_HTTP_AUTH_GROUPS_MAX), WC_ETOOBIG);
    cr_assert_eq(wc_http_auth_user_set(&u, "eve", many, WC_HTTP_AUTH_GROUPS_MAX - 1), 0);
}

/* ---------------------------------------------------------------------------------------
 * ABAC
 * ------------------------------------------------------------------------------------- */

/* The head of a policy line, up to its spec. */
#define V1BETA1 "{\"apiVersion\":\"abac.authorization.kubernetes.io/v1beta1\",\"kind\":\"Policy\","

#define POLICY(spec) V1BETA1 "\"spec\":" spec "}\n"

static wc_http_auth_policy *policy_ok(const char *text)
{
    wc_http_auth_policy *p = NULL;
    wc_http_auth_diag d;
    int rc = wc_http_auth_policy_parse(text, strlen(text), &p, &d);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, d.message);
    return p;
}

static void policy_bad(const char *text, unsigned line, const char *part)
{
    wc_http_auth_policy *p = (wc_http_auth_policy *)1;
    wc_http_auth_diag d;
    cr_assert_eq(wc_http_auth_policy_parse(text, strlen(text), &p, &d), WC_EINVAL, "%s", text);
    cr_assert_null(p);
    cr_assert_eq(d.line, line, "line %u (%s)", d.line, d.message);
    cr_assert(strstr(d.message, part), "'%s' lacks '%s'", d.message, part);
}

static wc_http_user user(const char *name, const char *group)
{
    wc_http_user u;
    const char *g[] = {group};
    cr_assert_eq(wc_http_auth_user_set(&u, name, g, group ? 1 : 0), 0);
    return u;
}

static wc_http_user anonymous(void)
{
    wc_http_user u;
    wc_http_auth_anonymous(&u);
    return u;
}

static bool res(const wc_http_auth_policy *p, const wc_http_user *u, const char *verb,
                const char *group, const char *plural, const char *ns)
{
    wc_http_auth_attrs a = {
        .verb = verb, .resource = true, .group = group, .plural = plural, .ns = ns};
    return wc_http_auth_policy_allows(p, u, &a);
}

static bool path(const wc_http_auth_policy *p, const wc_http_user *u, const char *verb,
                 const char *path_)
{
    wc_http_auth_attrs a = {.verb = verb, .path = path_};
    return wc_http_auth_policy_allows(p, u, &a);
}

Test(abac, user_field)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"alice\",\"namespace\":\"*\","
                                              "\"resource\":\"*\",\"apiGroup\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), bob = user("bob", "alice"), anon = anonymous();
    cr_assert(res(p, &alice, "get", "", "pods", "default"));
    cr_assert_not(res(p, &bob, "get", "", "pods", "default"), "a group named alice is not alice");
    cr_assert_not(res(p, &anon, "get", "", "pods", "default"));
    wc_http_auth_policy_free(p);
}

Test(abac, group_field)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"group\":\"dev\",\"namespace\":\"*\","
                                              "\"resource\":\"*\",\"apiGroup\":\"*\"}"));
    wc_http_user dev = user("carol", "dev"), ops = user("dan", "ops");
    cr_assert(res(p, &dev, "list", "", "pods", "default"));
    cr_assert_not(res(p, &ops, "list", "", "pods", "default"));
    wc_http_auth_policy_free(p);
}

Test(abac, user_and_group_both_must_match)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"alice\",\"group\":\"dev\","
                                              "\"namespace\":\"*\",\"resource\":\"*\","
                                              "\"apiGroup\":\"*\"}"));
    wc_http_user both = user("alice", "dev"), name_only = user("alice", "ops"),
                 group_only = user("bob", "dev");
    cr_assert(res(p, &both, "get", "", "pods", "a"));
    cr_assert_not(res(p, &name_only, "get", "", "pods", "a"));
    cr_assert_not(res(p, &group_only, "get", "", "pods", "a"));
    wc_http_auth_policy_free(p);
}

Test(abac, no_subject_matches_nobody)
{
    wc_http_auth_policy *p =
        policy_ok(POLICY("{\"namespace\":\"*\",\"resource\":\"*\",\"apiGroup\":\"*\","
                         "\"nonResourcePath\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), anon = anonymous();
    cr_assert_not(res(p, &alice, "get", "", "pods", "a"));
    cr_assert_not(path(p, &anon, "get", "/metrics"));
    wc_http_auth_policy_free(p);
}

Test(abac, system_groups)
{
    wc_http_auth_policy *authn = policy_ok(POLICY("{\"group\":\"system:authenticated\","
                                                  "\"nonResourcePath\":\"*\"}"));
    wc_http_auth_policy *unauthn = policy_ok(POLICY("{\"group\":\"system:unauthenticated\","
                                                    "\"nonResourcePath\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), anon = anonymous();
    cr_assert(path(authn, &alice, "get", "/version"));
    cr_assert_not(path(authn, &anon, "get", "/version"));
    cr_assert(path(unauthn, &anon, "get", "/version"));
    cr_assert_not(path(unauthn, &alice, "get", "/version"));
    wc_http_auth_policy_free(authn);
    wc_http_auth_policy_free(unauthn);
}

Test(abac, star_subject_means_authenticated_only)
{
    /* v1beta1's conversion: user or group "*" become group system:authenticated */
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"*\",\"nonResourcePath\":\"*\"}")
                                           POLICY("{\"group\":\"*\",\"namespace\":\"*\","
                                                  "\"resource\":\"*\",\"apiGroup\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), anon = anonymous();
    cr_assert(path(p, &alice, "get", "/metrics"));
    cr_assert(res(p, &alice, "watch", "apps", "deployments", "x"));
    cr_assert_not(path(p, &anon, "get", "/metrics"));
    cr_assert_not(res(p, &anon, "watch", "apps", "deployments", "x"));
    wc_http_auth_policy_free(p);
}

Test(abac, readonly)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"alice\",\"readonly\":true,"
                                              "\"namespace\":\"*\",\"resource\":\"*\","
                                              "\"apiGroup\":\"*\",\"nonResourcePath\":\"*\"}"));
    wc_http_user alice = user("alice", NULL);
    cr_assert(res(p, &alice, "get", "", "pods", "a"));
    cr_assert(res(p, &alice, "list", "", "pods", "a"));
    cr_assert(res(p, &alice, "watch", "", "pods", "a"));
    cr_assert(path(p, &alice, "get", "/keys/a"));
    cr_assert_not(res(p, &alice, "delete", "", "pods", "a"));
    cr_assert_not(path(p, &alice, "post", "/v3/kv/range"));
    wc_http_auth_policy_free(p);
    /* without readonly, every verb */
    p = policy_ok(POLICY("{\"user\":\"alice\",\"readonly\":false,\"namespace\":\"*\","
                         "\"resource\":\"*\",\"apiGroup\":\"*\"}"));
    cr_assert(res(p, &alice, "delete", "", "pods", "a"));
    wc_http_auth_policy_free(p);
}

Test(abac, api_group)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"alice\",\"namespace\":\"*\","
                                              "\"resource\":\"*\",\"apiGroup\":\"apps\"}")
                                           POLICY("{\"user\":\"bob\",\"namespace\":\"*\","
                                                  "\"resource\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), bob = user("bob", NULL);
    cr_assert(res(p, &alice, "get", "apps", "deployments", "a"));
    cr_assert_not(res(p, &alice, "get", "", "pods", "a"));
    cr_assert_not(res(p, &alice, "get", "batch", "jobs", "a"));
    /* an absent apiGroup is "": the core group only */
    cr_assert(res(p, &bob, "get", "", "pods", "a"));
    cr_assert_not(res(p, &bob, "get", "apps", "deployments", "a"));
    wc_http_auth_policy_free(p);
}

Test(abac, resource)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"alice\",\"namespace\":\"*\","
                                              "\"resource\":\"pods\",\"apiGroup\":\"*\"}")
                                           POLICY("{\"user\":\"bob\",\"namespace\":\"*\","
                                                  "\"apiGroup\":\"*\"}"));
    wc_http_user alice = user("alice", NULL), bob = user("bob", NULL);
    cr_assert(res(p, &alice, "list", "", "pods", "a"));
    cr_assert_not(res(p, &alice, "list", "", "secrets", "a"));
    /* an absent resource matches no resource */
    cr_assert_not(res(p, &bob, "list", "", "pods", "a"));
    wc_http_auth_policy_free(p);
}

Test(abac, namespace_and_cross_namespace_denial)
{
    wc_http_auth_policy *p =
        policy_ok(POLICY("{\"user\":\"alice\",\"namespace\":\"team-a\",\"resource\":\"*\","
                         "\"apiGroup\":\"*\"}")
                      POLICY("{\"user\":\"bob\",\"namespace\":\"*\",\"resource\":\"*\","
                             "\"apiGroup\":\"*\"}")
                          POLICY("{\"user\":\"carol\",\"resource\":\"nodes\",\"apiGroup\":\"\"}"));
    wc_http_user alice = user("alice", NULL), bob = user("bob", NULL), carol = user("carol", NULL);
    cr_assert(res(p, &alice, "list", "", "pods", "team-a"));
    cr_assert(res(p, &alice, "watch", "", "pods", "team-a"));
    cr_assert_not(res(p, &alice, "list", "", "pods", "team-b"));
    /* across all namespaces: denied for one allowed a single namespace */
    cr_assert_not(res(p, &alice, "list", "", "pods", ""));
    cr_assert_not(res(p, &alice, "watch", "", "pods", ""));
    cr_assert_not(res(p, &alice, "list", "", "pods", NULL));
    cr_assert(res(p, &bob, "watch", "", "pods", ""));
    cr_assert(res(p, &bob, "list", "", "pods", "team-b"));
    /* namespace "" (absent): cluster scope only */
    cr_assert(res(p, &carol, "list", "", "nodes", ""));
    cr_assert_not(res(p, &carol, "list", "", "nodes", "team-a"));
    wc_http_auth_policy_free(p);
}

Test(abac, non_resource_paths)
{
    wc_http_auth_policy *p =
        policy_ok(POLICY("{\"user\":\"alice\",\"nonResourcePath\":\"/metrics\"}")
                      POLICY("{\"user\":\"alice\",\"nonResourcePath\":\"/keys/registry/*\"}")
                          POLICY("{\"user\":\"bob\",\"nonResourcePath\":\"*\"}")
                              POLICY("{\"user\":\"carol\",\"nonResourcePath\":\"/apis**\"}"));
    wc_http_user alice = user("alice", NULL), bob = user("bob", NULL), carol = user("carol", NULL);
    cr_assert(path(p, &alice, "get", "/metrics"));
    cr_assert_not(path(p, &alice, "get", "/metrics/x"), "exact means exact");
    cr_assert_not(path(p, &alice, "get", "/metric"));
    cr_assert(path(p, &alice, "get", "/keys/registry/pods/a"));
    cr_assert(path(p, &alice, "get", "/keys/registry/"));
    cr_assert_not(path(p, &alice, "get", "/keys/registry"));
    cr_assert_not(path(p, &alice, "get", "/keys/other"));
    cr_assert(path(p, &bob, "get", "/v3/kv/range"));
    cr_assert(path(p, &carol, "get", "/apis/apps/v1"));
    cr_assert(path(p, &carol, "get", "/apis"));
    /* a non-resource line never allows a resource request, nor the reverse */
    cr_assert_not(res(p, &bob, "get", "", "pods", "a"));
    wc_http_auth_policy_free(p);
    p = policy_ok(POLICY("{\"user\":\"bob\",\"namespace\":\"*\",\"resource\":\"*\","
                         "\"apiGroup\":\"*\"}"));
    cr_assert_not(path(p, &bob, "get", "/metrics"));
    wc_http_auth_policy_free(p);
}

Test(abac, first_allowing_line_wins_in_any_order)
{
    wc_http_auth_policy *p = policy_ok(POLICY("{\"user\":\"x\",\"nonResourcePath\":\"*\"}") POLICY(
        "{\"group\":\"dev\",\"namespace\":\"a\",\"resource\":\"pods\"}"));
    wc_http_user dev = user("y", "dev");
    cr_assert(res(p, &dev, "get", "", "pods", "a"));
    cr_assert_eq(wc_http_auth_policy_count(p), 2);
    wc_http_auth_policy_free(p);
    cr_assert_not(res(NULL, &dev, "get", "", "pods", "a"), "no policy allows nothing");
}

Test(abac, file_format)
{
    /* blank lines, comments after white space, CRLF, unknown fields, nulls, no spec */
    static const char text[] = "\n# a comment\n   \t\n  # indented comment\r\n" POLICY(
        "{\"user\":\"alice\",\"nonResourcePath\":\"*\",\"extra\":1,\"namespace\":null}") V1BETA1
        "\"spec\":{\"user\":\"bob\",\"nonResourcePath\":\"*\"},\"metadata\":{}}\r\n" V1BETA1
        "\"kind2\":0}";
    wc_http_auth_policy *p = policy_ok(text);
    cr_assert_eq(wc_http_auth_policy_count(p), 3);
    wc_http_user alice = user("alice", NULL), bob = user("bob", NULL);
    cr_assert(path(p, &alice, "get", "/x"));
    cr_assert(path(p, &bob, "get", "/x"));
    wc_http_auth_policy_free(p);
}

Test(abac, bad_lines_with_line_numbers)
{
    policy_bad("# c\n\n{\"apiVersion\":", 3, "line 3:");
    policy_bad(POLICY("{}") "{\"user\":\"alice\"}\n", 2, "no apiVersion");
    policy_bad("{\"apiVersion\":\"abac.authorization.kubernetes.io/v0\",\"kind\":\"Policy\"}", 1,
               "only abac.authorization.kubernetes.io/v1beta1");
    policy_bad("{\"apiVersion\":\"abac.authorization.kubernetes.io/v1beta1\",\"kind\":\"Pol\"}", 1,
               "kind");
    policy_bad(POLICY("{\"user\":7}"), 1, "spec.user must be a string");
    policy_bad(POLICY("{\"readonly\":\"true\"}"), 1, "spec.readonly must be a boolean");
    policy_bad(POLICY("[]"), 1, "spec must be an object");
    policy_bad("[1]\n", 1, "not a JSON object");
    policy_bad(POLICY("{}") POLICY("{}") "{} trailing\n", 3, "line 3:");
}

/* ---------------------------------------------------------------------------------------
 * Status messages
 * ------------------------------------------------------------------------------------- */

Test(status, unauthorized)
{
    wc_http_error e;
    wc_http_auth_unauthorized(&e);
    cr_assert_eq(e.code, 401);
    cr_assert_str_eq(e.reason, "Unauthorized");
    cr_assert_str_eq(e.message, "Unauthorized");
    size_t len;
    char *s = wc_http_status_json(&e, &len);
    cr_assert_str_eq(s, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                        "\"status\":\"Failure\",\"message\":\"Unauthorized\","
                        "\"reason\":\"Unauthorized\",\"code\":401}");
    free(s);
}

static const char *forbidden(const wc_http_user *u, wc_http_auth_attrs a, const char *reason)
{
    static wc_http_error e;
    wc_http_auth_forbidden(&e, u, &a, reason);
    cr_assert_eq(e.code, 403);
    cr_assert_str_eq(e.reason, "Forbidden");
    return e.message;
}

Test(status, forbidden_texts)
{
    wc_http_user alice = user("alice", NULL);
    cr_assert_str_eq(
        forbidden(
            &alice,
            (wc_http_auth_attrs){
                .verb = "list", .resource = true, .group = "", .plural = "pods", .ns = "default"},
            NULL),
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API "
        "group \"\" in the namespace \"default\"");
    cr_assert_str_eq(
        forbidden(&alice,
                  (wc_http_auth_attrs){
                      .verb = "watch", .resource = true, .group = "", .plural = "pods", .ns = ""},
                  ""),
        "pods is forbidden: User \"alice\" cannot watch resource \"pods\" in API "
        "group \"\" at the cluster scope");
    cr_assert_str_eq(forbidden(&alice,
                               (wc_http_auth_attrs){.verb = "get",
                                                    .resource = true,
                                                    .group = "apps",
                                                    .plural = "deployments",
                                                    .ns = "prod",
                                                    .name = "web"},
                               WC_HTTP_AUTH_NO_POLICY),
                     "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource "
                     "\"deployments\" in API group \"apps\" in the namespace \"prod\": No policy "
                     "matched.");
    cr_assert_str_eq(
        forbidden(&alice, (wc_http_auth_attrs){.verb = "get", .path = "/metrics"}, NULL),
        "forbidden: User \"alice\" cannot get path \"/metrics\"");
    wc_http_user anon = anonymous();
    cr_assert_str_eq(forbidden(&anon, (wc_http_auth_attrs){.verb = "get", .path = "/keys/a"},
                               WC_HTTP_AUTH_NO_POLICY),
                     "forbidden: User \"system:anonymous\" cannot get path \"/keys/a\": No "
                     "policy matched.");
}

Test(status, forbidden_quotes_and_sanitizes)
{
    wc_http_user u = user("a\"b\\c\n", NULL);
    cr_assert_str_eq(
        forbidden(&u, (wc_http_auth_attrs){.verb = "get", .path = "/<x>&\x01\xff"}, NULL),
        "forbidden: User \"a\\\"b\\\\c\\n\" cannot get path "
        "\"/&lt;x&gt;&amp;\\x01\\xff\"");
    wc_http_user v = user("h\xc3\xa9", NULL);
    cr_assert_str_eq(forbidden(&v, (wc_http_auth_attrs){.verb = "get", .path = "/"}, NULL),
                     "forbidden: User \"h\xc3\xa9\" cannot get path \"/\"");
}

Test(status, forbidden_long_message_cut_at_a_character)
{
    char p[2000];
    strcpy(p, "/");
    while (strlen(p) < sizeof(p) - 3)
        strcat(p, "\xc3\xa9");
    wc_http_user u = user("alice", NULL);
    const char *m = forbidden(&u, (wc_http_auth_attrs){.verb = "get", .path = p}, NULL);
    size_t n = strlen(m);
    cr_assert(n > 400 && n < sizeof(((wc_http_error *)0)->message));
    cr_assert(wc_utf8_valid(m, n), "the cut left a broken character");
}
