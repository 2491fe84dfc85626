/*
 * The test client (see client.h).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    buf_add(arg, p, size * n);
    return size * n;
}

int http_do(const char *method, const char *url, http_resp *r)
{
    memset(r, 0, sizeof(*r));
    buf body = {0}, hdr = {0};
    buf_add(&body, "", 0);
    buf_add(&hdr, "", 0);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdr);
    int rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_cleanup(c);
    r->body = body.p;
    r->len = body.len;
    r->headers = hdr.p;
    return rc;
}

int http_get(const char *url, http_resp *r)
{
    return http_do("GET", url, r);
}

void http_resp_free(http_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

struct watch {
    pthread_t t;
    char *url;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    buf data;
    size_t lines;
    bool ended, stop;
    long code;
    int result;
};

static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
    watch *w = arg;
    pthread_mutex_lock(&w->mu);
    buf_add(&w->data, p, size * n);
    for (size_t i = 0; i < size * n; i++)
        if (p[i] == '\n')
            w->lines++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    watch *w = arg;
    size_t len = size * n;
    if (len > 9 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        if (sp) {
            pthread_mutex_lock(&w->mu);
            w->code = strtol(sp + 1, NULL, 10);
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
        }
    }
    return len;
}

static void *watch_main(void *arg)
{
    watch *w = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, c);
    int running = 1, result = -1;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE)
                result = msg->data.result;
        if (!running)
            break;
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c); /* closes the socket: the reader hangs up */
    curl_multi_cleanup(m);
    pthread_mutex_lock(&w->mu);
    w->result = result;
    w->ended = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

watch *watch_open(const char *url)
{
    watch *w = calloc(1, sizeof(*w));
    w->url = strdup(url);
    w->result = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    buf_add(&w->data, "", 0);
    pthread_create(&w->t, NULL, watch_main, w);
    return w;
}

static void deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

bool watch_wait_lines(watch *w, size_t n, int timeout_ms)
{
    struct timespec ts;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (w->lines < n && !w->ended)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    bool ok = w->lines >= n;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

bool watch_wait_end(watch *w, int timeout_ms)
{
    struct timespec ts;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (!w->ended)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    bool ok = w->ended;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

size_t watch_nlines(watch *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->lines;
    pthread_mutex_unlock(&w->mu);
    return n;
}

char *watch_line(watch *w, size_t i)
{
    char *out = NULL;
    pthread_mutex_lock(&w->mu);
    const char *p = w->data.p;
    for (size_t k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    const char *e = p ? strchr(p, '\n') : NULL;
    if (e)
        out = strndup(p, (size_t)(e - p));
    pthread_mutex_unlock(&w->mu);
    return out;
}

char *watch_body(watch *w)
{
    pthread_mutex_lock(&w->mu);
    char *out = strndup(w->data.p, w->data.len);
    pthread_mutex_unlock(&w->mu);
    return out;
}

long watch_code(watch *w)
{
    pthread_mutex_lock(&w->mu);
    long c = w->code;
    pthread_mutex_unlock(&w->mu);
    return c;
}

int watch_result(watch *w)
{
    pthread_mutex_lock(&w->mu);
    int r = w->ended ? w->result : -1;
    pthread_mutex_unlock(&w->mu);
    return r;
}

bool watch_complete_chunked(watch *w)
{
    return watch_result(w) == CURLE_OK;
}

void watch_close(watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->t, NULL);
    free(w->data.p);
    free(w->url);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

int raw_open(unsigned port, int rcvbuf, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    size_t off = 0, len = strlen(request);
    while (off < len) {
        ssize_t k = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (k <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)k;
    }
    return fd;
}

int raw_read_to_end(int fd, int timeout_ms, char **out, size_t *len)
{
    buf b = {0};
    buf_add(&b, "", 0);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = -1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        char chunk[65536];
        ssize_t k = recv(fd, chunk, sizeof(chunk), 0);
        if (k <= 0) { /* closed, or reset: either way the server ended it */
            rc = 0;
            break;
        }
        buf_add(&b, chunk, (size_t)k);
    }
    close(fd);
    *out = b.p;
    *len = b.len;
    return rc;
}
