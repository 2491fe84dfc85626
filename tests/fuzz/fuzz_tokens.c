/*
 * libFuzzer target: arbitrary bytes as a static token file (the apiserver's CSV), then lookups.
 * The parser's promises checked: only 0, WC_EINVAL (with a message and a line inside the text)
 * or WC_ENOMEM; the same text with a newline appended parses alike (Go's encoding/csv treats a
 * last line with and without its newline the same); every hit is a well-formed authenticated
 * reader, and a lookup gives the same answer twice.
 * Build: see tests/fuzz/run.sh
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "wcached/err.h"

static unsigned lines(const uint8_t *data, size_t size)
{
    unsigned n = 1;
    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

/* A reader the file names system:anonymous gets no system:authenticated group added, as the
 * apiserver's group adder does: it may have no group at all. Any other has at least that one. */
static void check_user(const wc_http_user *u)
{
    if (!memchr(u->name, '\0', sizeof(u->name)))
        abort();
    bool anonymous = strcmp(u->name, WC_HTTP_AUTH_ANONYMOUS) == 0;
    if (!u->authenticated || (u->ngroups < 1 && !anonymous) || u->ngroups > WC_HTTP_AUTH_GROUPS_MAX)
        abort();
    for (size_t i = 0; i < u->ngroups; i++) {
        if (!memchr(u->groups[i], '\0', sizeof(u->groups[i])))
            abort();
    }
    if (!wc_http_auth_user_in(u, WC_HTTP_AUTH_AUTHENTICATED) &&
        !wc_http_auth_user_in(u, WC_HTTP_AUTH_UNAUTHENTICATED) &&
        strcmp(u->name, WC_HTTP_AUTH_ANONYMOUS) != 0)
        abort();
}

/* Looks up data[from..to) twice; the answers must agree. */
static void probe(const wc_http_auth_tokens *t, const uint8_t *data, size_t from, size_t to)
{
    wc_http_user a, b;
    int ra = wc_http_auth_token_lookup(t, (const char *)data + from, to - from, &a);
    int rb = wc_http_auth_token_lookup(t, (const char *)data + from, to - from, &b);
    if (ra != rb || (ra != 0 && ra != WC_ENOENT))
        abort();
    if (ra == 0) {
        check_user(&a);
        if (strcmp(a.name, b.name) != 0 || a.ngroups != b.ngroups)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wc_http_auth_tokens *t = NULL;
    wc_http_auth_diag d;
    int rc = wc_http_auth_tokens_parse((const char *)data, size, &t, &d);
    if (rc == WC_ENOMEM)
        return 0;
    if (rc == WC_EINVAL) {
        if (t || !d.message[0] || d.line < 1 || d.line > lines(data, size))
            abort();
    } else if (rc != 0 || !t || wc_http_auth_tokens_count(t) > lines(data, size)) {
        abort();
    }

    char *more = malloc(size + 1);
    if (!more)
        abort();
    memcpy(more, data, size);
    more[size] = '\n';
    wc_http_auth_tokens *t2 = NULL;
    wc_http_auth_diag d2;
    int rc2 = wc_http_auth_tokens_parse(more, size + 1, &t2, &d2);
    free(more);
    if (rc2 != rc && rc2 != WC_ENOMEM && rc != WC_ENOMEM)
        abort();
    if (rc == 0 && rc2 == 0 &&
        (wc_http_auth_tokens_count(t) != wc_http_auth_tokens_count(t2) || d.empty != d2.empty ||
         d.duplicates != d2.duplicates))
        abort();
    wc_http_auth_tokens_free(t2);

    if (t) {
        /* every field-sized piece of the input, as a token: hits and misses alike */
        size_t from = 0;
        for (size_t i = 0; i <= size; i++) {
            if (i == size || data[i] == ',' || data[i] == '\n' || data[i] == '"') {
                probe(t, data, from, i);
                from = i + 1;
            }
        }
        probe(t, data, 0, size);
        probe(NULL, data, 0, size);
    }
    wc_http_auth_tokens_free(t);

    /* the header reader: whatever it finds lies inside the header */
    char *h = malloc(size + 1);
    if (!h)
        abort();
    memcpy(h, data, size);
    h[size] = '\0';
    const char *tok;
    size_t len;
    if (wc_http_auth_bearer(h, &tok, &len) == 0 &&
        (len == 0 || tok < h || tok + len > h + strlen(h) || memchr(tok, ' ', len)))
        abort();
    free(h);
    return 0;
}
