/*
 * Real etcd members for tests: started on free loopback ports with a temporary data dir, in
 * their own process group, killed with the test process (PR_SET_PDEATHSIG) if it dies first.
 * No fake stands in for etcd outside unit tests.
 */
#ifndef WCACHED_TEST_ETCD_H
#define WCACHED_TEST_ETCD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define WC_TEST_ETCD_MAX 3

struct wc_test_etcd {
    int members;
    pid_t pid[WC_TEST_ETCD_MAX];
    int client_port[WC_TEST_ETCD_MAX], peer_port[WC_TEST_ETCD_MAX];
    char client_url[WC_TEST_ETCD_MAX][64];
    char dir[128];       /* data dirs live below it */
    char endpoints[256]; /* every client URL, comma-separated */
    char cluster[512];   /* --initial-cluster */
    int generation;      /* bumped by wc_test_etcd_replace_cluster: a new cluster token */
    bool tls;            /* https client URLs; certificates in dir/certs (make-certs.sh) */
    char token[256];     /* set by wc_test_etcd_enable_auth: writes authenticate with it */
};

/* Starts `members` (1..3) members as one cluster and waits until it answers. 0 or -1. */
int wc_test_etcd_start(struct wc_test_etcd *e, int members);
/* The same, with client TLS (etcd --client-cert-auth): certificates are made with openssl in
 * dir/certs as ca.crt, server.{crt,key} and client.{crt,key}. */
int wc_test_etcd_start_tls(struct wc_test_etcd *e, int members);
/* A path under the cluster's certificate dir, e.g. "ca.crt" (static buffer per name). */
const char *wc_test_etcd_cert(struct wc_test_etcd *e, const char *name);
/* Adds user `user` with `password` and the root role, enables auth, and keeps a token for the
 * helpers' own writes. 0 or -1. */
int wc_test_etcd_enable_auth(struct wc_test_etcd *e, const char *user, const char *password);
/* Obtains a fresh token for the helpers' writes (after a restart made etcd forget it). */
int wc_test_etcd_login(struct wc_test_etcd *e, const char *user, const char *password);

/* Kills every member and removes the data. Safe to call twice or after a failed start. */
void wc_test_etcd_stop(struct wc_test_etcd *e);
/* kill -9 one member; restart it on the same ports and data, waiting until it answers. */
void wc_test_etcd_kill_member(struct wc_test_etcd *e, int i);
int wc_test_etcd_restart_member(struct wc_test_etcd *e, int i);

/* Replaces a one-member cluster with a brand-new cluster (new data, new cluster ID) on the
 * same ports, as when another cluster comes up at the same address. 0 or -1. */
int wc_test_etcd_replace_cluster(struct wc_test_etcd *e);

/* Saves a snapshot of a one-member cluster to dir/name (etcdctl snapshot save). 0 or -1. */
int wc_test_etcd_snapshot(struct wc_test_etcd *e, const char *name);
/* Replaces a one-member cluster's data with the snapshot dir/name restored as the SAME cluster
 * (same name, peer URL and token, so the same cluster ID) and restarts it: the cluster's
 * revision goes back to the snapshot's, as after a restore from an older backup. 0 or -1. */
int wc_test_etcd_restore(struct wc_test_etcd *e, const char *name);

const char *wc_test_etcd_client_url(struct wc_test_etcd *e, int i);

/* Standard base64 of a NUL-terminated string, in a new string (the tests' own copy: this
 * library is built without sanitizers to drive a TSan daemon). */
char *wc_test_b64(const char *s);

/* Writes through the JSON gateway of the first live member; *rev gets the write's revision.
 * 0 or -1. */
int wc_test_etcd_put(struct wc_test_etcd *e, const char *key, const char *value, int64_t *rev);
int wc_test_etcd_delete(struct wc_test_etcd *e, const char *key, int64_t *rev);
/* Puts the n keys[i] = values[i] in one transaction: one revision, which *rev gets. 0 or -1. */
int wc_test_etcd_txn_put(struct wc_test_etcd *e, const char *const *keys, const char *const *values,
                         int n, int64_t *rev);
int wc_test_etcd_compact(struct wc_test_etcd *e, int64_t rev);

#endif
