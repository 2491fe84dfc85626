/*
 * Who a reader is and what it may read: the Kubernetes apiserver's static bearer tokens
 * (--token-auth-file) and its ABAC policy file (--authorization-policy-file), private to http/.
 *
 * A request's way through this module, at the server's one gate:
 *   Authorization header -> wc_http_auth_bearer -> wc_http_auth_token_lookup -> wc_http_user
 *   (or a client certificate fills the same wc_http_user with wc_http_auth_user_set; or none:
 *   wc_http_auth_anonymous) -> wc_http_auth_policy_allows -> on refusal, the Status message
 *   from wc_http_auth_unauthorized / wc_http_auth_forbidden.
 *
 * Both tables are built once by a parser and never change afterwards: any number of threads may
 * read one at a time with no lock. Reloading (SIGHUP) means parsing a new table and swapping the
 * pointer at the edge; the old one may be freed only once no request still reads it.
 *
 * Nothing here prints or logs, and no function ever copies a token into a message.
 * Functions return 0 or a negative wc_err; parsers also explain a failure in a wc_http_auth_diag
 * for the daemon to print.
 */
#ifndef WC_HTTP_AUTH_H
#define WC_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define WC_HTTP_AUTH_NAME_MAX 256  /* bytes of a user or group name, its NUL included */
#define WC_HTTP_AUTH_GROUPS_MAX 16 /* groups of one reader, the system group included */
#define WC_HTTP_AUTH_FILE_MAX (64u * 1024 * 1024) /* bytes of a token or policy file */
#define WC_HTTP_AUTH_LINE_MAX (64u * 1024)        /* bytes of a policy line (Go's bufio.Scanner) */

#define WC_HTTP_AUTH_ANONYMOUS "system:anonymous"
#define WC_HTTP_AUTH_AUTHENTICATED "system:authenticated"
#define WC_HTTP_AUTH_UNAUTHENTICATED "system:unauthenticated"
/* The reason the apiserver's ABAC authorizer gives when no policy line allows a request. */
#define WC_HTTP_AUTH_NO_POLICY "No policy matched."

/*
 * A reader's identity, as the apiserver's user.Info: a name and groups. Plain storage the caller
 * owns (typically on the request's stack); nothing in it points elsewhere.
 */
typedef struct wc_http_user {
    bool authenticated; /* false: system:anonymous in group system:unauthenticated */
    char name[WC_HTTP_AUTH_NAME_MAX];
    size_t ngroups;
    char groups[WC_HTTP_AUTH_GROUPS_MAX][WC_HTTP_AUTH_NAME_MAX];
} wc_http_user;

/* Why a parser refused a file, or what it tolerated (the apiserver warns about both counts). */
typedef struct wc_http_auth_diag {
    unsigned line;           /* line of the first error (1-based), 0 when the error has no line */
    char message[256];       /* the error for a person, naming the line; never holds a token */
    unsigned empty;          /* token file: records with an empty token, skipped */
    unsigned empty_line;     /* ... the line of the first of them, 0 for none */
    unsigned duplicates;     /* token file: tokens given again; the last record wins */
    unsigned duplicate_line; /* ... the line of the first repetition, 0 for none */
} wc_http_auth_diag;

/* ---------------------------------------------------------------------------------------
 * Identities
 * ------------------------------------------------------------------------------------- */

/* Makes `u` the anonymous reader: system:anonymous in the one group system:unauthenticated. */
void wc_http_auth_anonymous(wc_http_user *u);

/*
 * Makes `u` an authenticated reader named `name` in `groups` (n of them, in order), then adds
 * system:authenticated as the apiserver does: unless the name is system:anonymous or a group is
 * already system:authenticated or system:unauthenticated. For every source of identity: tokens,
 * and client certificates (CN the name, each O a group).
 * 0, or WC_ETOOBIG (a name of WC_HTTP_AUTH_NAME_MAX bytes or more, or too many groups) with `u`
 * made anonymous, so a failure never leaves an identity half set.
 */
int wc_http_auth_user_set(wc_http_user *u, const char *name, const char *const *groups, size_t n);

/* True when `u` is in `group`. */
bool wc_http_auth_user_in(const wc_http_user *u, const char *group);

/* ---------------------------------------------------------------------------------------
 * Bearer tokens: the apiserver's static token file
 * ------------------------------------------------------------------------------------- */

/* Token -> identity, immutable once parsed. */
typedef struct wc_http_auth_tokens wc_http_auth_tokens;

/*
 * Parses the token CSV in text[0..len) as the apiserver does (Go's encoding/csv, any number of
 * fields): each record is `token,user,uid[,"group1,group2"]`; a quoted field may hold commas,
 * doubled quotes and newlines; empty lines are skipped, '#' is not a comment. A record with fewer
 * than 3 fields is an error; one with an empty token is skipped and counted in diag->empty; a
 * token given twice is counted in diag->duplicates and the later record wins. The uid must be
 * there but is not kept: nothing in wcached reads it. wcached refuses also what it cannot hold:
 * NUL bytes, a name or group of WC_HTTP_AUTH_NAME_MAX bytes or more, more than
 * WC_HTTP_AUTH_GROUPS_MAX - 1 groups.
 * On success *out is a new table (the caller frees it with wc_http_auth_tokens_free) and 0 is
 * returned; otherwise *out is NULL and WC_EINVAL (diag explains, with the line), WC_ETOOBIG (over
 * WC_HTTP_AUTH_FILE_MAX) or WC_ENOMEM. `diag` may be NULL.
 */
int wc_http_auth_tokens_parse(const char *text, size_t len, wc_http_auth_tokens **out,
                              wc_http_auth_diag *diag);

/* Reads the file at `path` and parses it as wc_http_auth_tokens_parse does; a file that cannot
 * be read gives WC_EIO, diag naming the system's reason. */
int wc_http_auth_tokens_load(const char *path, wc_http_auth_tokens **out, wc_http_auth_diag *diag);

void wc_http_auth_tokens_free(wc_http_auth_tokens *t);

/* The number of distinct tokens in `t`. */
size_t wc_http_auth_tokens_count(const wc_http_auth_tokens *t);

/*
 * Looks up the token token[0..len) and on a hit fills `u` (wc_http_auth_user_set). Every stored
 * token is compared, each over all its bytes, with no early exit: the time taken depends on the
 * table only, not on the bytes presented nor on which entry (if any) matches.
 * 0, or WC_ENOENT (no such token; `u` untouched).
 */
int wc_http_auth_token_lookup(const wc_http_auth_tokens *t, const char *token, size_t len,
                              wc_http_user *u);

/*
 * The token of an Authorization header value, read as the apiserver does: surrounding white
 * space trimmed, split at the first two spaces, the first part "bearer" in any case, the second
 * non-empty. *token points into `header`. 0, or WC_ENOENT when the header carries no bearer
 * token (the request then has no token credentials at all).
 */
int wc_http_auth_bearer(const char *header, const char **token, size_t *len);

/* ---------------------------------------------------------------------------------------
 * Authorization: the apiserver's ABAC policy file
 * ------------------------------------------------------------------------------------- */

/* Policy lines, immutable once parsed. */
typedef struct wc_http_auth_policy wc_http_auth_policy;

/*
 * Parses text[0..len): one JSON object per line,
 *   {"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{...}}
 * with spec fields user, group, readonly, apiGroup, resource, namespace, nonResourcePath (unknown
 * fields ignored, as the apiserver's decoder does). Lines blank or starting with '#' (after white
 * space) are skipped. As in v1beta1's conversion, a user or group "*" means the group
 * system:authenticated. Unversioned (v0) lines are refused.
 * 0 with *out a new list (free with wc_http_auth_policy_free); otherwise *out is NULL and
 * WC_EINVAL (diag names the line and why), WC_ETOOBIG or WC_ENOMEM. `diag` may be NULL.
 */
int wc_http_auth_policy_parse(const char *text, size_t len, wc_http_auth_policy **out,
                              wc_http_auth_diag *diag);

/* Reads the file at `path` and parses it as wc_http_auth_policy_parse does; WC_EIO when it
 * cannot be read. */
int wc_http_auth_policy_load(const char *path, wc_http_auth_policy **out, wc_http_auth_diag *diag);

void wc_http_auth_policy_free(wc_http_auth_policy *p);

/* The number of policy lines in `p`. */
size_t wc_http_auth_policy_count(const wc_http_auth_policy *p);

/* What a request asks for, as the apiserver's authorizer.Attributes. Borrowed strings. */
typedef struct wc_http_auth_attrs {
    const char *verb;   /* "get", "list" or "watch" (any other verb is a write) */
    bool resource;      /* a Kubernetes route; false: a non-resource path */
    const char *group;  /* resource: the API group, "" for the core group */
    const char *plural; /* resource: "pods" */
    const char *ns;     /* resource: the namespace; "" at the cluster scope or across all */
    const char *name;   /* resource: the object's name for a get, else "" or NULL */
    const char *path;   /* non-resource: the request's path, e.g. "/metrics" */
} wc_http_auth_attrs;

/*
 * True when some line of `p` allows `u` to do `a`, with the apiserver's ABAC rules: the line's
 * user (if set) is the user's name and its group (if set) one of the user's groups, at least one
 * of the two set; a readonly line allows only get, list and watch; a resource request needs
 * namespace, resource and apiGroup each "*" or equal (so a line for one namespace never allows a
 * list or watch across all namespaces, whose namespace is ""); a non-resource request needs
 * nonResourcePath "*", equal to the path, or a prefix of it followed by '*'.
 * When false, the apiserver's reason is WC_HTTP_AUTH_NO_POLICY.
 */
bool wc_http_auth_policy_allows(const wc_http_auth_policy *p, const wc_http_user *u,
                                const wc_http_auth_attrs *a);

/* ---------------------------------------------------------------------------------------
 * The Status of a refusal (struct wc_http_error: http_internal.h)
 * ------------------------------------------------------------------------------------- */

struct wc_http_error;

/* 401 Unauthorized, message "Unauthorized", as the apiserver answers a request without valid
 * credentials. */
void wc_http_auth_unauthorized(struct wc_http_error *e);

/*
 * 403 Forbidden with the apiserver's message for `u` doing `a`, e.g.
 *   pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace
 * "default" deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" in
 * API group "apps" at the cluster scope forbidden: User "alice" cannot get path "/metrics" followed
 * by ": " and `reason` when it is neither NULL nor "" (the apiserver in ABAC mode gives
 * WC_HTTP_AUTH_NO_POLICY). Names are quoted as Go's %q does; a message too long for the Status
 * is cut at a character boundary.
 */
void wc_http_auth_forbidden(struct wc_http_error *e, const wc_http_user *u,
                            const wc_http_auth_attrs *a, const char *reason);

#endif
