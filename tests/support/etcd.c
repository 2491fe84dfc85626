/* Real etcd members for tests; see etcd.h. */
#include "etcd.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port the kernel just handed out on loopback (closed again: good enough for tests). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn(struct wc_test_etcd *e, int i, bool fresh)
{
    char name[16], data[192], client[64], peer[64], log[192];
    snprintf(name, sizeof(name), "m%d", i);
    snprintf(data, sizeof(data), "%s/%s", e->dir, name);
    snprintf(client, sizeof(client), "%s://127.0.0.1:%d", e->tls ? "https" : "http",
             e->client_port[i]);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port[i]);
    snprintf(log, sizeof(log), "%s/%s.log", e->dir, name);
    char token[192];
    snprintf(token, sizeof(token), "%s-%d", e->dir, e->generation);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    dup2(2, 1);
    if (e->tls) {
        char cert[256], key[256], ca[256];
        snprintf(cert, sizeof(cert), "%s/certs/server.crt", e->dir);
        snprintf(key, sizeof(key), "%s/certs/server.key", e->dir);
        snprintf(ca, sizeof(ca), "%s/certs/ca.crt", e->dir);
        execlp("etcd", "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", client,
               "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", e->cluster,
               "--initial-cluster-state", fresh ? "new" : "existing", "--initial-cluster-token",
               token, "--log-level", "warn", "--cert-file", cert, "--key-file", key,
               "--trusted-ca-file", ca, "--client-cert-auth", (char *)NULL);
        _exit(127);
    }
    execlp("etcd", "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", client,
           "--advertise-client-urls", client, "--listen-peer-urls", peer,
           "--initial-advertise-peer-urls", peer, "--initial-cluster", e->cluster,
           "--initial-cluster-state", fresh ? "new" : "existing", "--initial-cluster-token", token,
           "--log-level", "warn", (char *)NULL);
    _exit(127);
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *arg)
{
    char **out = arg;
    size_t n = size * nmemb, have = *out ? strlen(*out) : 0;
    char *p = realloc(*out, have + n + 1);
    if (!p)
        return 0;
    memcpy(p + have, ptr, n);
    p[have + n] = '\0';
    *out = p;
    return n;
}

/* POSTs to one member; returns the parsed body, or NULL. */
static void secure(struct wc_test_etcd *e, CURL *h, struct curl_slist **hdr)
{
    if (e->tls) {
        curl_easy_setopt(h, CURLOPT_CAINFO, wc_test_etcd_cert(e, "ca.crt"));
        curl_easy_setopt(h, CURLOPT_SSLCERT, wc_test_etcd_cert(e, "client.crt"));
        curl_easy_setopt(h, CURLOPT_SSLKEY, wc_test_etcd_cert(e, "client.key"));
    }
    if (e->token[0]) {
        char line[300];
        snprintf(line, sizeof(line), "Authorization: %s", e->token);
        *hdr = curl_slist_append(*hdr, line);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdr);
    }
}

static json_t *call(struct wc_test_etcd *e, const char *url_base, const char *path,
                    const char *body, long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", url_base, path);
    char *out = NULL;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    struct curl_slist *hdr = NULL;
    secure(e, h, &hdr);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    json_t *j = rc == CURLE_OK && out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

static bool healthy(struct wc_test_etcd *e, const char *url_base)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/health", url_base);
    char *out = NULL;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    struct curl_slist *hdr = NULL;
    secure(e, h, &hdr);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    bool ok = rc == CURLE_OK && out && strstr(out, "\"true\"");
    free(out);
    return ok;
}

static int start(struct wc_test_etcd *e, int members, bool tls);

int wc_test_etcd_start(struct wc_test_etcd *e, int members)
{
    return start(e, members, false);
}

int wc_test_etcd_start_tls(struct wc_test_etcd *e, int members)
{
    return start(e, members, true);
}

const char *wc_test_etcd_cert(struct wc_test_etcd *e, const char *name)
{
    static __thread char paths[6][256];
    static __thread int next;
    char *p = paths[next++ % 6];
    snprintf(p, 256, "%s/certs/%s", e->dir, name);
    return p;
}

int wc_test_etcd_enable_auth(struct wc_test_etcd *e, const char *user, const char *password)
{
    json_t *b = json_pack("{s:s,s:s}", "name", user, "password", password);
    char *ub = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    b = json_pack("{s:s,s:s}", "user", user, "role", "root");
    char *gb = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    const char *steps[][2] = {{"/v3/auth/role/add", "{\"name\":\"root\"}"},
                              {"/v3/auth/user/add", ub},
                              {"/v3/auth/user/grant", gb},
                              {"/v3/auth/enable", "{}"}};
    int rc = 0;
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        json_t *j = call(e, e->client_url[0], steps[i][0], steps[i][1], 10000);
        rc = j && json_object_get(j, "header") ? 0 : -1;
        json_decref(j);
    }
    free(ub);
    free(gb);
    return rc ? rc : wc_test_etcd_login(e, user, password);
}

int wc_test_etcd_login(struct wc_test_etcd *e, const char *user, const char *password)
{
    json_t *b = json_pack("{s:s,s:s}", "name", user, "password", password);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    e->token[0] = '\0';
    json_t *j = NULL;
    for (int i = 0; i < 50 && !json_string_value(json_object_get(j, "token")); i++) {
        json_decref(j);
        j = call(e, e->client_url[0], "/v3/auth/authenticate", body, 10000);
        if (!json_string_value(json_object_get(j, "token")))
            sleep_ms(100);
    }
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (tok)
        snprintf(e->token, sizeof(e->token), "%s", tok);
    json_decref(j);
    free(body);
    return tok ? 0 : -1;
}

static int start(struct wc_test_etcd *e, int members, bool tls)
{
    memset(e, 0, sizeof(*e));
    e->tls = tls;
    if (members < 1 || members > WC_TEST_ETCD_MAX)
        return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(e->dir, sizeof(e->dir), "/tmp/wcached-etcd-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    if (tls) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s/certs' && '%s' '%s/certs'", e->dir,
                 WC_TEST_MAKE_CERTS, e->dir);
        if (system(cmd) != 0)
            return -1;
    }
    e->members = members;
    size_t off = 0, eoff = 0;
    for (int i = 0; i < members; i++) {
        e->client_port[i] = free_port();
        e->peer_port[i] = free_port();
        if (e->client_port[i] < 0 || e->peer_port[i] < 0)
            return -1;
        snprintf(e->client_url[i], sizeof(e->client_url[i]), "%s://127.0.0.1:%d",
                 tls ? "https" : "http", e->client_port[i]);
        off += (size_t)snprintf(e->cluster + off, sizeof(e->cluster) - off,
                                "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, e->peer_port[i]);
        eoff += (size_t)snprintf(e->endpoints + eoff, sizeof(e->endpoints) - eoff, "%s%s",
                                 i ? "," : "", e->client_url[i]);
    }
    for (int i = 0; i < members; i++)
        e->pid[i] = spawn(e, i, true);
    int64_t until = mono_ms() + 20000;
    for (int i = 0; i < members; i++) {
        while (!healthy(e, e->client_url[i])) {
            if (mono_ms() > until) {
                wc_test_etcd_stop(e);
                return -1;
            }
            sleep_ms(50);
        }
    }
    return 0;
}

void wc_test_etcd_kill_member(struct wc_test_etcd *e, int i)
{
    if (e->pid[i] > 0) {
        kill(-e->pid[i], SIGKILL);
        kill(e->pid[i], SIGKILL);
        waitpid(e->pid[i], NULL, 0);
        e->pid[i] = 0;
    }
}

/* Waits up to 20 s for member i to answer. 0 or -1. */
static int wait_healthy(struct wc_test_etcd *e, int i)
{
    int64_t until = mono_ms() + 20000;
    while (!healthy(e, e->client_url[i])) {
        if (mono_ms() > until)
            return -1;
        sleep_ms(50);
    }
    return 0;
}

int wc_test_etcd_restart_member(struct wc_test_etcd *e, int i)
{
    wc_test_etcd_kill_member(e, i);
    e->pid[i] = spawn(e, i, false);
    return wait_healthy(e, i);
}

int wc_test_etcd_replace_cluster(struct wc_test_etcd *e)
{
    if (e->members != 1)
        return -1;
    wc_test_etcd_kill_member(e, 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/m0'", e->dir);
    if (system(cmd) != 0)
        return -1;
    /* A new token makes a new cluster ID. */
    e->generation++;
    e->pid[0] = spawn(e, 0, true);
    return wait_healthy(e, 0);
}

int wc_test_etcd_snapshot(struct wc_test_etcd *e, const char *name)
{
    if (e->members != 1 || e->tls)
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ETCDCTL_API=3 etcdctl --endpoints '%s' snapshot save '%s/%s' >>'%s/ctl.log' 2>&1",
             e->client_url[0], e->dir, name, e->dir);
    return system(cmd) == 0 ? 0 : -1;
}

int wc_test_etcd_restore(struct wc_test_etcd *e, const char *name)
{
    if (e->members != 1 || e->tls)
        return -1;
    wc_test_etcd_kill_member(e, 0);
    char cmd[2048];
    /* The same token as the running cluster's (see spawn): the same cluster ID. */
    snprintf(cmd, sizeof(cmd),
             "rm -rf '%s/m0' && ETCDCTL_API=3 etcdctl snapshot restore '%s/%s' --name m0 "
             "--data-dir '%s/m0' --initial-cluster '%s' --initial-cluster-token '%s-%d' "
             "--initial-advertise-peer-urls 'http://127.0.0.1:%d' >>'%s/ctl.log' 2>&1",
             e->dir, e->dir, name, e->dir, e->cluster, e->dir, e->generation, e->peer_port[0],
             e->dir);
    if (system(cmd) != 0)
        return -1;
    e->pid[0] = spawn(e, 0, false);
    return wait_healthy(e, 0);
}

void wc_test_etcd_stop(struct wc_test_etcd *e)
{
    for (int i = 0; i < e->members; i++)
        wc_test_etcd_kill_member(e, i);
    if (e->dir[0]) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", e->dir);
        e->dir[0] = '\0';
    }
    e->members = 0;
}

const char *wc_test_etcd_client_url(struct wc_test_etcd *e, int i)
{
    return e->client_url[i];
}

char *wc_test_b64(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;
    char *out = malloc((n + 2) / 3 * 4 + 1);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Sends a write to the first member that answers; returns header.revision, or -1. */
static int64_t write_any(struct wc_test_etcd *e, const char *path, const char *body)
{
    for (int i = 0; i < e->members; i++) {
        if (e->pid[i] <= 0)
            continue;
        json_t *j = call(e, e->client_url[i], path, body, 10000);
        const char *rev =
            json_string_value(json_object_get(json_object_get(j, "header"), "revision"));
        int64_t r = rev ? atoll(rev) : -1;
        json_decref(j);
        if (r > 0)
            return r;
    }
    return -1;
}

int wc_test_etcd_put(struct wc_test_etcd *e, const char *key, const char *value, int64_t *rev)
{
    char *k = wc_test_b64(key), *v = wc_test_b64(value);
    char *body = malloc(strlen(k) + strlen(v) + 64);
    sprintf(body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    int64_t r = write_any(e, "/v3/kv/put", body);
    free(k);
    free(v);
    free(body);
    if (rev)
        *rev = r;
    return r > 0 ? 0 : -1;
}

int wc_test_etcd_delete(struct wc_test_etcd *e, const char *key, int64_t *rev)
{
    char *k = wc_test_b64(key);
    char *body = malloc(strlen(k) + 32);
    sprintf(body, "{\"key\":\"%s\"}", k);
    int64_t r = write_any(e, "/v3/kv/deleterange", body);
    free(k);
    free(body);
    if (rev)
        *rev = r;
    return r > 0 ? 0 : -1;
}

int wc_test_etcd_txn_put(struct wc_test_etcd *e, const char *const *keys, const char *const *values,
                         int n, int64_t *rev)
{
    json_t *ops = json_array();
    for (int i = 0; i < n; i++) {
        char *k = wc_test_b64(keys[i]), *v = wc_test_b64(values[i]);
        json_array_append_new(ops, json_pack("{s:{s:s,s:s}}", "request_put", "key", k, "value", v));
        free(k);
        free(v);
    }
    json_t *txn = json_pack("{s:o}", "success", ops);
    char *body = json_dumps(txn, JSON_COMPACT);
    json_decref(txn);
    int64_t r = body ? write_any(e, "/v3/kv/txn", body) : -1;
    free(body);
    if (rev)
        *rev = r;
    return r > 0 ? 0 : -1;
}

int wc_test_etcd_compact(struct wc_test_etcd *e, int64_t rev)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}", (long long)rev);
    return write_any(e, "/v3/kv/compaction", body) > 0 ? 0 : -1;
}
