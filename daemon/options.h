/*
 * The daemon's options: flags, or WCACHED_* environment variables (a flag wins), checked and
 * turned into typed values with their defaults (the modules' own WC_*_ defaults, so --help,
 * the library and the README agree). Nothing here starts anything.
 */
#ifndef WCACHED_DAEMON_OPTIONS_H
#define WCACHED_DAEMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/log.h"

#define WC_CONFIG_MAX_RESOURCES 64
#define WC_CONFIG_MAX_ENDPOINTS 16

typedef struct wc_config {
    const char *endpoints[WC_CONFIG_MAX_ENDPOINTS]; /* point into endpoints_text */
    size_t n_endpoints;
    const char *prefix; /* "" for the whole keyspace */
    const char *listen;
    const char *k8s_prefix;
    const char *index_field; /* NULL for none */
    size_t ring_events, ring_bytes;
    int64_t refill_revisions; /* 0: a start lists at the current revision */
    int64_t slow_budget_ms;
    unsigned http_threads;
    int64_t coalesce_ms;
    unsigned max_connections;                   /* 0: from the open files limit */
    unsigned max_watches, max_watches_per_user; /* 0: no bound of their own */
    unsigned max_requests_inflight;             /* 0: no bound */
    size_t max_header_bytes;
    unsigned max_query_params;
    size_t max_uri_bytes;
    int64_t max_page_size, max_timeout_s;
    int64_t header_timeout_ms;
    wc_log_level log_level;
    wc_log_format log_format;
    const char *cacert, *cert, *key, *user;                    /* NULL when not given */
    const char *etcd_token_file;                               /* NULL when not given */
    const char *token_auth_file, *authorization_policy_file;   /* NULL when not given */
    const char *tls_cert_file, *tls_key_file, *client_ca_file; /* NULL when not given */
    char password[512];                                 /* "" without etcd auth; wipe after use */
    const char *resources[WC_CONFIG_MAX_RESOURCES + 1]; /* NULL-terminated */
    size_t n_resources;
    char endpoints_text[4096];
    char env_resources[8192]; /* WCACHED_RESOURCE, split in place */
} wc_config;

/*
 * Reads the environment, then argv, into `cfg` and checks every value. Returns 0 (with *done
 * set when --help or --version was answered and the process should exit 0), or 2 after one
 * line about the first bad option on stderr. Strings in cfg point into argv, the environment
 * or cfg itself.
 */
int wc_config_parse(wc_config *cfg, int argc, char **argv, bool *done);

/*
 * Reads the first line of `file` (a bearer token, --etcd-token-file) into out, without its line
 * end. 0, or -1 when the file cannot be read or its first line is empty (out is then wiped).
 */
int wc_config_read_token(const char *file, char *out, size_t cap);

#endif
