/* The daemon harness; see harness.h. */
#include "harness.h"
#include "etcd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t wc_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int wc_test_daemon_start(wc_test_daemon *d, const char *endpoints, const char *const *args,
                         bool wait_ready)
{
    memset(d, 0, sizeof(*d));
    const char *bin = getenv("WCACHED_BIN");
    if (!bin)
        bin = "daemon/wcached";
    const char *dir = getenv("WCACHED_TEST_LOGDIR");
    snprintf(d->log_path, sizeof(d->log_path), "%s/wcached-test-%d-%ld.log", dir ? dir : "/tmp",
             (int)getpid(), (long)wc_test_now_ms());
    /* WCACHED_WRAP: a program the daemon runs under, given its path and arguments
     * (tests/valgrind-wcached.sh: valgrind, whose errors end the daemon with status 99). */
    const char *wrap = getenv("WCACHED_WRAP");
    if (wrap && !*wrap)
        wrap = NULL;
    const char *argv[64];
    int n = 0;
    if (wrap)
        argv[n++] = wrap;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--etcd-endpoints";
    argv[n++] = endpoints;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        /* execv takes char *const[] for history's sake; it never writes the strings. */
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    d->pid = pid;
    /* Wait for "listening on http://HOST:PORT" in the log. */
    int64_t until = wc_test_now_ms() + (wrap ? 60000 : 10000);
    while (wc_test_now_ms() < until) {
        FILE *f = fopen(d->log_path, "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            char *p = strstr(line, "listening on http://");
            if (p) {
                p += strlen("listening on ");
                size_t len = strcspn(p, " \n");
                if (len >= sizeof(d->base))
                    len = sizeof(d->base) - 1;
                memcpy(d->base, p, len);
                d->base[len] = '\0';
            }
        }
        if (f)
            fclose(f);
        if (d->base[0])
            break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            return -1;
        }
        sleep_ms(20);
    }
    if (!d->base[0])
        return -1;
    while (wait_ready && wc_test_now_ms() < until) {
        wc_test_resp r;
        if (wc_test_get(d->base, "/readyz", &r) == 0 && r.code == 200) {
            wc_test_resp_free(&r);
            return 0;
        }
        wc_test_resp_free(&r);
        sleep_ms(20);
    }
    return wait_ready ? -1 : 0;
}

int wc_test_daemon_stop(wc_test_daemon *d, int sig)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int st = 0;
    const char *wrap = getenv("WCACHED_WRAP");
    int64_t until = wc_test_now_ms() + (wrap && *wrap ? 60000 : 15000);
    while (waitpid(d->pid, &st, WNOHANG) == 0) {
        if (wc_test_now_ms() > until) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            break;
        }
        sleep_ms(10);
    }
    d->pid = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

void wc_test_stop_all(wc_test_daemon *d, struct wc_test_etcd *e)
{
    if (d->pid > 0) {
        kill(d->pid, SIGCONT);
        wc_test_daemon_stop(d, SIGTERM);
    }
    wc_test_etcd_stop(e);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    wc_test_resp *r = arg;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, ptr, n);
    r->body = b;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    wc_test_resp *r = arg;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0)
        sscanf(ptr + 12, " %15s", r->retry_after);
    if (n > 13 && strncasecmp(ptr, "Content-Type:", 13) == 0)
        sscanf(ptr + 13, " %63[^\r\n]", r->content_type);
    return n;
}

int wc_test_get(const char *base, const char *path, wc_test_resp *r)
{
    memset(r, 0, sizeof(*r));
    char url[8192];
    snprintf(url, sizeof(url), "%s%s", base, path);
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_cleanup(h);
    if (!r->body) {
        r->body = calloc(1, 1);
    }
    return rc == CURLE_OK ? 0 : -1;
}

void wc_test_resp_free(wc_test_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

json_t *wc_test_resp_json(const wc_test_resp *r)
{
    return json_loadb(r->body, r->len, 0, NULL);
}

struct wc_test_watch {
    CURLM *m;
    CURL *h;
    char *buf;
    size_t len, cap;
    bool done;
    long code;
    int rcvbuf;
};

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    wc_test_watch *w = arg;
    size_t n = size * nmemb;
    if (w->len + n + 1 > w->cap) {
        size_t cap = (w->len + n + 1) * 2;
        char *b = realloc(w->buf, cap);
        if (!b)
            return 0;
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, ptr, n);
    w->len += n;
    return n;
}

/* Drives the transfer for up to timeout_ms. */
static void pump(wc_test_watch *w, int timeout_ms)
{
    int running = 0;
    curl_multi_perform(w->m, &running);
    if (running && timeout_ms > 0) {
        curl_multi_poll(w->m, NULL, 0, timeout_ms, NULL);
        curl_multi_perform(w->m, &running);
    }
    if (!running)
        w->done = true;
    if (!w->code)
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->code);
}

static int set_rcvbuf(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    (void)purpose;
    int size = *(int *)arg;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return CURL_SOCKOPT_OK;
}

wc_test_watch *wc_test_watch_open(const char *base, const char *path)
{
    return wc_test_watch_open_rcvbuf(base, path, 0);
}

wc_test_watch *wc_test_watch_open_rcvbuf(const char *base, const char *path, int rcvbuf)
{
    wc_test_watch *w = calloc(1, sizeof(*w));
    char url[8192];
    snprintf(url, sizeof(url), "%s%s", base, path);
    w->m = curl_multi_init();
    w->h = curl_easy_init();
    curl_easy_setopt(w->h, CURLOPT_URL, url);
    curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->h, CURLOPT_PATH_AS_IS, 1L);
    if (rcvbuf > 0) {
        w->rcvbuf = rcvbuf;
        curl_easy_setopt(w->h, CURLOPT_SOCKOPTFUNCTION, set_rcvbuf);
        curl_easy_setopt(w->h, CURLOPT_SOCKOPTDATA, &w->rcvbuf);
    }
    curl_multi_add_handle(w->m, w->h);
    int64_t until = wc_test_now_ms() + 5000;
    while (!w->code && !w->done && wc_test_now_ms() < until)
        pump(w, 50);
    if (!w->code) {
        wc_test_watch_close(w);
        return NULL;
    }
    return w;
}

long wc_test_watch_code(wc_test_watch *w)
{
    return w->code;
}

json_t *wc_test_watch_next(wc_test_watch *w, int timeout_ms)
{
    int64_t until = wc_test_now_ms() + timeout_ms;
    for (;;) {
        char *nl = w->buf ? memchr(w->buf, '\n', w->len) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - w->buf);
            json_t *j = json_loadb(w->buf, len, 0, NULL);
            memmove(w->buf, nl + 1, w->len - len - 1);
            w->len -= len + 1;
            return j ? j : json_string("<unparsable line>");
        }
        if (w->done)
            return NULL;
        int64_t left = until - wc_test_now_ms();
        if (left <= 0)
            return NULL;
        pump(w, left > 100 ? 100 : (int)left);
    }
}

bool wc_test_watch_ended(wc_test_watch *w)
{
    return w->done && !(w->buf && memchr(w->buf, '\n', w->len));
}

void wc_test_watch_close(wc_test_watch *w)
{
    if (!w)
        return;
    curl_multi_remove_handle(w->m, w->h);
    curl_easy_cleanup(w->h);
    curl_multi_cleanup(w->m);
    free(w->buf);
    free(w);
}

const char *wc_test_ev_type(json_t *ev)
{
    return json_string_value(json_object_get(ev, "type"));
}

int64_t wc_test_ev_rv(json_t *ev)
{
    json_t *md = json_object_get(json_object_get(ev, "object"), "metadata");
    const char *s = json_string_value(json_object_get(md, "resourceVersion"));
    return s ? atoll(s) : -1;
}

const char *wc_test_ev_key(json_t *ev)
{
    json_t *o = json_object_get(ev, "object");
    json_t *k = json_object_get(o, "key");
    if (!k)
        k = json_object_get(json_object_get(o, "metadata"), "name");
    return json_string_value(k);
}

static char *unb64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(tab, s[i]);
        if (!p)
            continue;
        v = (v << 6) | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return out;
}

/* A gateway's base64 field, decoded; the gateway leaves an empty value out. */
static char *unb64_or_empty(json_t *field)
{
    const char *s = json_string_value(field);
    return unb64(s ? s : "");
}

/* The key range of `prefix` for a gateway request: key and range_end, in base64. */
static void prefix_range(const char *prefix, char **key, char **range_end)
{
    char *end = strdup(prefix);
    end[strlen(end) - 1]++;
    *key = wc_test_b64(prefix);
    *range_end = wc_test_b64(end);
    free(end);
}

/* POSTs body to client_url+path and returns what came back (ends by timeout_ms at most). */
static int gateway_post(const char *client_url, const char *path, const char *body, int timeout_ms,
                        wc_test_resp *r)
{
    memset(r, 0, sizeof(*r));
    char url[256];
    snprintf(url, sizeof(url), "%s%s", client_url, path);
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_cleanup(h);
    return rc;
}

int wc_test_etcd_history(const char *client_url, const char *prefix, int64_t from, int ms,
                         wc_test_hist **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char *k, *e;
    prefix_range(prefix, &k, &e);
    char body[512];
    snprintf(
        body, sizeof(body),
        "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%lld\"}}", k,
        e, (long long)from);
    free(k);
    free(e);
    wc_test_resp r;
    gateway_post(client_url, "/v3/watch", body, ms, &r); /* a watch never ends by itself */
    if (!r.body)
        return -1;
    size_t cap = 64;
    wc_test_hist *hist = malloc(cap * sizeof(*hist));
    for (char *save = NULL, *line = strtok_r(r.body, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *evs = json_object_get(json_object_get(j, "result"), "events");
        for (size_t i = 0; i < json_array_size(evs); i++) {
            json_t *ev = json_array_get(evs, i);
            json_t *kv = json_object_get(ev, "kv");
            if (*n == cap) {
                cap *= 2;
                hist = realloc(hist, cap * sizeof(*hist));
            }
            hist[*n].key = unb64(json_string_value(json_object_get(kv, "key")));
            hist[*n].mod_rev = atoll(json_string_value(json_object_get(kv, "mod_revision")));
            const char *type = json_string_value(json_object_get(ev, "type"));
            hist[*n].deleted = type && strcmp(type, "DELETE") == 0;
            hist[*n].value = hist[*n].deleted ? NULL : unb64_or_empty(json_object_get(kv, "value"));
            (*n)++;
        }
        json_decref(j);
    }
    wc_test_resp_free(&r);
    *out = hist;
    return 0;
}

void wc_test_hist_free(wc_test_hist *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].key);
        free(h[i].value);
    }
    free(h);
}

int wc_test_etcd_range(const char *client_url, const char *prefix, wc_test_hist **out, size_t *n,
                       int64_t *rev)
{
    *out = NULL;
    *n = 0;
    char *k, *e;
    prefix_range(prefix, &k, &e);
    char body[512];
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"}", k, e);
    free(k);
    free(e);
    wc_test_resp r;
    int rc = gateway_post(client_url, "/v3/kv/range", body, 10000, &r);
    json_t *j = rc == 0 && r.code == 200 ? wc_test_resp_json(&r) : NULL;
    wc_test_resp_free(&r);
    const char *hrev = json_string_value(json_object_get(json_object_get(j, "header"), "revision"));
    if (!hrev) {
        json_decref(j);
        return -1;
    }
    if (rev)
        *rev = atoll(hrev);
    json_t *kvs = json_object_get(j, "kvs"); /* left out when the range is empty */
    *out = calloc(json_array_size(kvs) + 1, sizeof(**out));
    for (size_t i = 0; i < json_array_size(kvs); i++) {
        json_t *kv = json_array_get(kvs, i);
        (*out)[i].key = unb64(json_string_value(json_object_get(kv, "key")));
        (*out)[i].value = unb64_or_empty(json_object_get(kv, "value"));
        (*out)[i].mod_rev = atoll(json_string_value(json_object_get(kv, "mod_revision")));
    }
    *n = json_array_size(kvs);
    json_decref(j);
    return 0;
}

double wc_test_metric(const char *base, const char *name)
{
    wc_test_resp r;
    if (wc_test_get(base, "/metrics", &r) != 0)
        return -1;
    double v = -1;
    size_t n = strlen(name);
    for (char *p = r.body; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = atof(p + n + 1);
            break;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    wc_test_resp_free(&r);
    return v;
}

/* ---- readers ------------------------------------------------------------------------- */

/* Records one event's change; counts an object whose resourceVersion is not its modRevision. */
static void reader_record(wc_test_reader *r, json_t *ev, bool deleted)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
    }
    json_t *o = json_object_get(ev, "object");
    const char *key = wc_test_ev_key(ev), *value = json_string_value(json_object_get(o, "value"));
    wc_test_hist *h = &r->ev[r->n++];
    h->key = strdup(key ? key : "");
    h->value = deleted || !value ? NULL : strdup(value);
    h->mod_rev = wc_test_ev_rv(ev);
    h->deleted = deleted;
    json_t *mod = json_object_get(o, "modRevision");
    if (!json_is_integer(mod) || json_integer_value(mod) != h->mod_rev)
        atomic_fetch_add(&r->rv_lies, 1);
}

/* One stream, from r->rv until it ends, r cuts it, or r is stopped. */
static void reader_stream(wc_test_reader *r)
{
    char path[512];
    snprintf(path, sizeof(path), "/keys%s?watch=1&allowWatchBookmarks=true&resourceVersion=%lld%s",
             r->o.prefix, (long long)atomic_load(&r->rv), r->o.query ? r->o.query : "");
    wc_test_watch *w = wc_test_watch_open_rcvbuf(r->base, path, r->o.rcvbuf);
    if (!w || wc_test_watch_code(w) != 200) {
        wc_test_watch_close(w);
        sleep_ms(100);
        return;
    }
    int events = 0;
    int64_t last = 0; /* the newest revision of this stream's events */
    while (!atomic_load(&r->stop)) {
        if (atomic_load(&r->paused)) {
            sleep_ms(10);
            continue;
        }
        json_t *ev = wc_test_watch_next(w, 200);
        if (!ev) {
            if (wc_test_watch_ended(w)) {
                int k = atomic_fetch_add(&r->server_ends, 1);
                if (k < WC_TEST_READER_ENDS)
                    r->ends_at[k] = last;
                break;
            }
            continue;
        }
        const char *type = wc_test_ev_type(ev);
        int64_t rv = wc_test_ev_rv(ev);
        bool cutting = r->o.cut_after > 0 && events >= r->o.cut_after;
        if (type && strcmp(type, "ERROR") == 0) {
            atomic_fetch_add(&r->expired, 1);
            rv = 0;
        } else if (type && strcmp(type, "BOOKMARK") == 0) {
            if (cutting && rv > last) {
                if (rv > atomic_load(&r->rv))
                    atomic_store(&r->rv, rv);
                json_decref(ev);
                break;
            }
        } else {
            if (cutting && rv != last) {
                json_decref(ev); /* the next stream starts with it */
                break;
            }
            if (rv < last)
                atomic_fetch_add(&r->backwards, 1);
            last = rv;
            reader_record(r, ev, type && strcmp(type, "DELETED") == 0);
            events++;
        }
        if (rv > atomic_load(&r->rv))
            atomic_store(&r->rv, rv);
        json_decref(ev);
    }
    wc_test_watch_close(w);
}

static void *reader_main(void *arg)
{
    wc_test_reader *r = arg;
    for (int streams = 0; !atomic_load(&r->stop); streams++) {
        if (streams > 0)
            atomic_fetch_add(&r->rewatches, 1);
        reader_stream(r);
    }
    return NULL;
}

void wc_test_readers_start(wc_test_reader *rs, int n, const char *base,
                           const wc_test_reader_opts *o, int64_t rv)
{
    for (int i = 0; i < n; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].base = base;
        rs[i].o = *o;
        rs[i].start_rv = rv;
        atomic_store(&rs[i].rv, rv);
        pthread_create(&rs[i].th, NULL, reader_main, &rs[i]);
    }
}

bool wc_test_reader_wait(wc_test_reader *r, int64_t rev, int timeout_ms)
{
    int64_t until = wc_test_now_ms() + timeout_ms;
    while (atomic_load(&r->rv) < rev && wc_test_now_ms() < until)
        sleep_ms(20);
    return atomic_load(&r->rv) >= rev;
}

void wc_test_readers_stop(wc_test_reader *rs, int n)
{
    for (int i = 0; i < n; i++)
        atomic_store(&rs[i].stop, true);
    for (int i = 0; i < n; i++)
        pthread_join(rs[i].th, NULL);
}

void wc_test_readers_free(wc_test_reader *rs, int n)
{
    for (int i = 0; i < n; i++) {
        wc_test_hist_free(rs[i].ev, rs[i].n);
        rs[i].ev = NULL;
        rs[i].n = rs[i].cap = 0;
    }
}
