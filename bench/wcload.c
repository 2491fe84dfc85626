/*
 * wcload: the benchmark's load tool. One thread, one epoll loop: N streaming readers against
 * one peer (wcached's watch routes, etcd's JSON gateway POST /v3/watch, or nchan's chunked or
 * EventSource subscribers) and one writer that puts ~1 KiB JSON values at a set rate (to etcd
 * for the peers wcached and etcd, to nchan's publisher for nchan), each value carrying its
 * sequence number.
 *
 * Every reader checks its own stream: the sequence numbers it must see (all of them, or those of
 * its node), each once, in order. Latency is from the writer's put being acknowledged to the
 * reader parsing the line (0 when the line came first: nchan's subscribers usually hear of a
 * message before its publisher's answer), and, as slat_*, from the put's sending. Server CPU and
 * RSS come from /proc/PID/stat and /proc/PID/status of the processes named with --pid.
 *
 * The restart workload (W10) runs a command that restarts wcached while the writer writes: its
 * readers behave like Kubernetes reflectors (retry a refused or 429 request after 100 ms,
 * re-watch from their last resourceVersion, relist on 410), and it measures how long after
 * wcached's /readyz answers 200 again every reader has every change written until then, and
 * where that time goes: the changes readers lacked at ready (backlog), when their streams
 * opened again (open_last_ms) and when each had them all (caught_first/p50/p99_ms; the first
 * is about when wcached itself had them).
 *
 * With --tls-ca the readers (and the list before them) speak HTTPS to wcached through GnuTLS
 * client sessions in the same loop, checking its certificate against that CA; --token adds
 * "Authorization: Bearer TOKEN" to their requests.
 *
 * The soak workload (bench/soak.sh) runs for a time instead of a count: the writer puts at its
 * rate for --duration seconds while readers drop their streams after a random lifetime
 * (--churn-ms) and watch again from their last resourceVersion, and slow readers come back after
 * the server ends them; a PROGRESS line every --progress seconds tells how far it got.
 *
 * It prints one line, "RESULT key=value ...", which bench/bench.sh collects. A figure that the
 * workload does not measure prints as "-".
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wcached/b64.h"

enum peer { PEER_WCACHED, PEER_ETCD, PEER_NCHAN };
enum workload { WL_FANOUT, WL_IDLE, WL_STORM, WL_SELECTIVE, WL_SLOW, WL_LOAD, WL_RESTART, WL_SOAK };
#define WL_COUNT 8
static const char *const wl_names[WL_COUNT] = {"fanout", "idle", "storm",   "selective",
                                               "slow",   "load", "restart", "soak"};

#define MAX_PIDS 16
#define MAX_SERVERS 16 /* --server A,B,...: the readers spread over them (W7's lower tier) */
/* --probe A,B,...: readers of etcd's watch API (which wcached sends at once, never gathered),
 * one on each, not counted with the others: A is W7's upper tier, the rest its lower tier. Each
 * change's delivery to the probe on B after its delivery to the probe on A is the time the tier
 * B added (tier_p50_us, tier_p99_us), whatever the readers' own gathering (--coalesce-ms),
 * which one tier has too. The addresses are servers[nservers...]. */
#define READ_CHUNK (256 * 1024)
#define LAT_FINE 100000 /* histogram: 1 µs buckets below 100 ms, then 1 ms buckets */
#define LAT_BUCKETS (LAT_FINE + 100000)
#define WRITER_DEPTH 4 /* puts in flight on the writer's one connection (answered in order) */

typedef struct opts {
    enum peer peer;
    enum workload wl;
    struct sockaddr_in server, etcd; /* server: the first of servers[] */
    char server_host[64], etcd_host[64];
    int nservers; /* reader i connects to servers[i % nservers] */
    struct sockaddr_in servers[2 * MAX_SERVERS];
    char server_hosts[2 * MAX_SERVERS][64];
    int nprobes; /* --probe: servers[nservers + i] */
    const char *run;
    long readers, events, rate, size, nodes, slow, keys;
    long busy_nodes; /* selective: the writer updates pods on nodes below this only */
    bool pods;       /* load: Pod objects under /w8/RUN/registry/pods/RUN/ (W8) */
    bool by_node;    /* selective, or restart --by-node: Pods on nodes, each reader its node's */
    long round;      /* load: which version of the values (an update changes every key) */
    double hold_s, timeout_s;
    const char *restart_cmd; /* restart: the shell command that restarts wcached */
    long duration_s;         /* soak: how long the writer writes (events = rate * duration) */
    long churn_ms;           /* soak: a fast reader's mean stream lifetime; 0: its stream stays */
    long progress_s;         /* soak: a PROGRESS line this often */
    int npids;
    char pid_name[MAX_PIDS][32];
    int pid[MAX_PIDS];
    const char *tls_ca; /* HTTPS to wcached, its certificate checked against this CA */
    const char *token;  /* a bearer token for wcached, or NULL */
} opts;

static opts O;
static gnutls_certificate_credentials_t tls_cred; /* NULL: plain HTTP */
static char tls_host[64];                         /* the server's address, as its certificate's */
static int ep;
static char rbuf[READ_CHUNK];

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wcload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------
 * An HTTP/1.1 response, fed in arbitrary slices: status, then a chunked, sized or until-close
 * body whose bytes go to a callback.
 * ------------------------------------------------------------------------------------- */

enum hstate {
    H_STATUS,
    H_HEADERS,
    H_CHUNK_SIZE,
    H_CHUNK_DATA,
    H_CHUNK_END,
    H_BODY_LEN,
    H_BODY_EOF,
    H_DONE
};

typedef struct hresp {
    enum hstate st;
    int status;
    bool chunked;
    long long len; /* Content-Length, -1 when absent */
    long long left;
    size_t line_len;
    char line[256]; /* the header or chunk-size line being read (longer lines are cut) */
} hresp;

typedef void body_fn(void *arg, const char *p, size_t n);

static void hresp_reset(hresp *h)
{
    h->st = H_STATUS;
    h->status = 0;
    h->chunked = false;
    h->len = -1;
    h->left = 0;
    h->line_len = 0;
}

/* Takes one line into h->line; true when it is complete (NUL-terminated, CR/LF removed). */
static bool take_line(hresp *h, const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    size_t room = sizeof(h->line) - 1 - h->line_len;
    memcpy(h->line + h->line_len, *p, n < room ? n : room);
    h->line_len += n < room ? n : room;
    *p = nl ? nl + 1 : end;
    if (!nl)
        return false;
    while (h->line_len > 0 && (h->line[h->line_len - 1] == '\r'))
        h->line_len--;
    h->line[h->line_len] = '\0';
    h->line_len = 0;
    return true;
}

/* Feeds n bytes; returns how many were used (fewer only when the response ended: H_DONE). */
static size_t hresp_feed(hresp *h, const char *p, size_t n, body_fn *body, void *arg)
{
    const char *s = p, *end = p + n;
    while (s < end && h->st != H_DONE) {
        switch (h->st) {
        case H_STATUS:
            if (take_line(h, &s, end)) {
                if (sscanf(h->line, "HTTP/1.%*d %d", &h->status) != 1)
                    h->status = -1;
                h->st = H_HEADERS;
            }
            break;
        case H_HEADERS:
            if (!take_line(h, &s, end))
                break;
            if (h->line[0] == '\0') {
                if (h->chunked)
                    h->st = H_CHUNK_SIZE;
                else if (h->len >= 0) {
                    h->left = h->len;
                    h->st = h->len ? H_BODY_LEN : H_DONE;
                } else
                    h->st = H_BODY_EOF;
            } else if (!strncasecmp(h->line, "transfer-encoding:", 18) &&
                       strcasestr(h->line + 18, "chunked"))
                h->chunked = true;
            else if (!strncasecmp(h->line, "content-length:", 15))
                h->len = atoll(h->line + 15);
            break;
        case H_CHUNK_SIZE:
            if (take_line(h, &s, end)) {
                h->left = strtoll(h->line, NULL, 16);
                h->st = h->left ? H_CHUNK_DATA : H_DONE; /* trailers are not used here */
            }
            break;
        case H_CHUNK_DATA:
        case H_BODY_LEN: {
            size_t k = (size_t)(end - s) < (size_t)h->left ? (size_t)(end - s) : (size_t)h->left;
            body(arg, s, k);
            s += k;
            h->left -= (long long)k;
            if (h->left == 0)
                h->st = h->st == H_CHUNK_DATA ? H_CHUNK_END : H_DONE;
            break;
        }
        case H_CHUNK_END:
            if (take_line(h, &s, end))
                h->st = H_CHUNK_SIZE;
            break;
        case H_BODY_EOF:
            body(arg, s, (size_t)(end - s));
            s = end;
            break;
        case H_DONE:
            break;
        }
    }
    return (size_t)(s - p);
}

/* ---------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------- */

typedef struct hist {
    uint64_t b[LAT_BUCKETS];
    uint64_t count;
    int64_t max_ns;
} hist;

static hist lat_ack, lat_sent; /* from the put's answer (the TARGETS' figure); from its sending */
static hist lat_tier;          /* --probe: a lower probe's delivery after the upper one's */
static int64_t *probe_ns;      /* --probe: when the upper probe got each change; 0: not yet */
static uint64_t early_count;   /* early: the line was parsed before the put's ack */
static uint64_t bytes_in;
static int64_t in_order; /* deliveries that were the next one their reader expected */
static int64_t gaps, dups, errors;

static void lat_add(hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    if (ns > h->max_ns)
        h->max_ns = ns;
    int64_t us = ns / 1000;
    size_t b = us < LAT_FINE ? (size_t)us : LAT_FINE + (size_t)((us - LAT_FINE) / 1000);
    if (b >= LAT_BUCKETS)
        b = LAT_BUCKETS - 1;
    h->b[b]++;
    h->count++;
}

static int64_t lat_quantile_us(const hist *h, double q)
{
    if (!h->count)
        return -1;
    uint64_t want = (uint64_t)(q * (double)h->count);
    if (want >= h->count)
        want = h->count - 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < LAT_BUCKETS; b++) {
        seen += h->b[b];
        if (seen > want)
            return b < LAT_FINE ? (int64_t)b : LAT_FINE + (int64_t)(b - LAT_FINE) * 1000;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------
 * The writer: one keep-alive connection, up to WRITER_DEPTH requests in flight, answered in
 * order, so the order of the puts is the order of the sequence numbers.
 * ------------------------------------------------------------------------------------- */

enum tag { TAG_READER, TAG_WRITER };

typedef struct writer {
    enum tag tag;
    int fd;
    hresp h;
    char *out;
    size_t out_len, out_off, out_cap;
    int inflight;
    int64_t target;   /* write sequence numbers below this */
    int64_t sent;     /* next sequence number to send */
    int64_t acked;    /* answers received */
    int64_t start_ns; /* pacing origin of this batch */
    int64_t batch0;   /* first sequence number of this batch */
    int64_t *ack_ns;  /* when each sequence number was acknowledged; 0: not yet */
    int64_t *sent_ns; /* when its put was sent */
    int64_t last_ack_ns;
    long reconnects;
    char *value, *b64;
} writer;

static writer W;

static int tcp_connect(const struct sockaddr_in *sa, bool block)
{
    int fd = socket(AF_INET, SOCK_STREAM | (block ? 0 : SOCK_NONBLOCK) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void close_reset(int fd)
{
    struct linger l = {1, 0}; /* RST: no TIME_WAIT left behind by thousands of readers */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

/* Appends n bytes to a growable buffer (*buf, *len, *cap), keeping a NUL after them. */
static void grow_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (!*buf)
            die("out of memory");
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void out_append(writer *w, const char *p, size_t n)
{
    grow_append(&w->out, &w->out_len, &w->out_cap, p, n);
}

static void out_printf(writer *w, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    out_append(w, tmp, (size_t)n);
}

/* The node (selective) and key of sequence number seq. */
static long node_of(int64_t seq)
{
    return O.by_node ? (long)(seq % O.busy_nodes) : 0;
}

/* The value of sequence number seq: a JSON object of O.size bytes ending in a newline (nchan's
 * chunked subscribers see one message per line). Selective values are Pods on a node. */
static size_t make_value(int64_t seq, char *v)
{
    int n;
    if (O.by_node)
        n = snprintf(v, 512,
                     "{\"seq\":%" PRId64 ",\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{"
                     "\"name\":\"pod-%ld\",\"namespace\":\"%s\",\"labels\":{\"app\":\"bench\"}},"
                     "\"spec\":{\"nodeName\":\"node-%ld\"},\"pad\":\"",
                     seq, node_of(seq), O.run, node_of(seq));
    else
        n = snprintf(v, 512, "{\"seq\":%" PRId64 ",\"pad\":\"", seq);
    size_t len = (size_t)n;
    size_t want = (size_t)O.size > len + 3 ? (size_t)O.size - 3 : len;
    memset(v + len, 'x', want - len);
    memcpy(v + want, "\"}\n", 3);
    return want + 3;
}

static void etcd_key(int64_t seq, char *k, size_t cap)
{
    if (O.peer == PEER_WCACHED && O.by_node)
        snprintf(k, cap, "/registry/pods/%s/pod-%ld", O.run, node_of(seq));
    else if (O.by_node)
        snprintf(k, cap, "/bench/%s/node-%ld/pod-%ld", O.run, node_of(seq), node_of(seq));
    else
        snprintf(k, cap, "/bench/%s/k%07ld", O.run, (long)(seq % 1000)); /* load's first 1000 */
}

static void writer_queue(writer *w, int64_t seq)
{
    size_t vlen = make_value(seq, w->value);
    if (O.peer == PEER_NCHAN) {
        char ch[160];
        if (O.by_node)
            snprintf(ch, sizeof(ch), "%s-node-%ld", O.run, node_of(seq));
        else
            snprintf(ch, sizeof(ch), "%s", O.run);
        out_printf(w,
                   "POST /pub/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n",
                   ch, O.server_host, vlen);
        out_append(w, w->value, vlen);
        return;
    }
    char key[256], kb[400];
    etcd_key(seq, key, sizeof(key));
    wc_b64_encode_to(key, strlen(key), kb, WC_B64_STD);
    size_t bl = wc_b64_encode_to(w->value, vlen, w->b64, WC_B64_STD);
    size_t body = strlen("{\"key\":\"\",\"value\":\"\"}") + strlen(kb) + bl;
    out_printf(w,
               "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\n\r\n{\"key\":\"%s\",\"value\":\"",
               O.etcd_host, body, kb);
    out_append(w, w->b64, bl);
    out_append(w, "\"}", 2);
}

static void writer_flush(writer *w)
{
    while (w->out_off < w->out_len) {
        ssize_t k = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN)
                break;
            die("writer: send: %s", strerror(errno));
        }
        w->out_off += (size_t)k;
    }
    if (w->out_off == w->out_len)
        w->out_off = w->out_len = 0;
    struct epoll_event ev = {.events = EPOLLIN | (w->out_len ? EPOLLOUT : 0), .data.ptr = w};
    epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
}

/* Sends what is due; returns ms until the next put is due (-1: nothing left to send). */
static int writer_pump(writer *w, int64_t now)
{
    bool queued = false;
    while (w->sent < w->target && w->inflight < WRITER_DEPTH) {
        int64_t due = O.rate > 0 ? w->start_ns + (w->sent - w->batch0) * 1000000000 / O.rate : 0;
        if (due > now) {
            if (queued)
                writer_flush(w);
            return (int)((due - now) / 1000000) + 1;
        }
        w->sent_ns[w->sent] = now;
        writer_queue(w, w->sent++);
        w->inflight++;
        queued = true;
    }
    if (queued)
        writer_flush(w);
    return -1;
}

static void writer_body(void *arg, const char *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
}

static void writer_connect(writer *w)
{
    const struct sockaddr_in *sa = O.peer == PEER_NCHAN ? &O.server : &O.etcd;
    w->fd = tcp_connect(sa, true);
    if (w->fd < 0)
        die("writer: connect: %s", strerror(errno));
    fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
    hresp_reset(&w->h);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    epoll_ctl(ep, EPOLL_CTL_ADD, w->fd, &ev);
}

static void writer_reconnect(writer *w)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
    close(w->fd);
    w->reconnects++;
    w->sent = w->acked;
    w->inflight = 0;
    w->out_len = w->out_off = 0;
    writer_connect(w);
}

static void writer_readable(writer *w, int64_t now)
{
    ssize_t k = recv(w->fd, rbuf, sizeof(rbuf), 0);
    if (k <= 0) {
        if (k < 0 && errno == EAGAIN)
            return;
        /* A server may end a keep-alive connection after so many requests (nginx's
         * keepalive_requests): the unanswered ones were not taken, so send them again. */
        if (w->h.st != H_STATUS || w->h.line_len)
            die("writer: the server closed the connection mid-answer");
        writer_reconnect(w);
        return;
    }
    size_t off = 0;
    while (off < (size_t)k) {
        off += hresp_feed(&w->h, rbuf + off, (size_t)k - off, writer_body, w);
        if (w->h.st == H_DONE) {
            if (w->h.status < 200 || w->h.status > 299)
                die("writer: put %" PRId64 " answered %d", w->acked, w->h.status);
            w->ack_ns[w->acked++] = now;
            w->last_ack_ns = now;
            w->inflight--;
            hresp_reset(&w->h);
        }
    }
}

static void writer_open(writer *w)
{
    w->tag = TAG_WRITER;
    writer_connect(w);
    w->ack_ns = calloc((size_t)O.events + 1, sizeof(int64_t));
    w->sent_ns = calloc((size_t)O.events + 1, sizeof(int64_t));
    w->value = malloc((size_t)O.size + 1024);
    w->b64 = malloc(wc_b64_encoded_size((size_t)O.size + 1024));
    if (!w->ack_ns || !w->sent_ns || !w->value || !w->b64)
        die("out of memory");
}

/* Writes sequence numbers up to `upto` (exclusive), paced from now. */
static void writer_start(writer *w, int64_t upto)
{
    w->target = upto;
    w->batch0 = w->sent;
    w->start_ns = now_ns();
}

/* ---------------------------------------------------------------------------------------
 * Readers
 * ------------------------------------------------------------------------------------- */

enum rstate { R_CLOSED, R_CONNECTING, R_HANDSHAKE, R_OPEN };

typedef struct reader {
    enum tag tag;
    int fd;
    gnutls_session_t tls; /* HTTPS: the reader's session, from its connect to its close */
    enum rstate st;
    bool ready, slow, ended;
    bool idle; /* selective: its node gets no updates (--busy-nodes) */
    int probe; /* --probe: 1 on the upper tier, 2... on the lower; the last of R */
    long node;
    hresp h;
    char *line; /* a line split across reads */
    size_t line_len, line_cap;
    int64_t next;   /* the sequence number expected next */
    int64_t stride; /* 1, or the busy node count (selective) */
    int64_t got;
    long rewatches;
    int64_t rv;        /* last resourceVersion / mod_revision seen */
    int64_t due_ns;    /* soak: when this reader drops its stream (open) or comes back (closed) */
    char evid[48];     /* nchan: last EventSource id */
    bool relist;       /* restart: told 410, it lists before it watches again */
    bool listing;      /* restart: its request under way is that list */
    int srv;           /* its server: O.servers[srv] */
    int64_t open_ns;   /* restart: when its stream last answered 200 */
    int64_t caught_ns; /* restart: when it first had every change below caught_seq (0: not) */
} reader;

/* restart: what the readers went through */
static long expired, relists, retries;
static int64_t skipped; /* changes a relist stepped over (the list held their result) */

static reader *R;
static long nreaders; /* fast ones first, then the slow ones */
static long nready, nended;
static int64_t start_rv;

/* "Authorization: Bearer TOKEN\r\n" with --token, else "". */
static const char *auth_header(void)
{
    static char h[600];
    if (!O.token)
        return "";
    if (!h[0])
        snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", O.token);
    return h;
}

/* A session's socket, read ahead. GnuTLS reads a record's header and its body in two recv()s
 * of their own sizes, and once more to learn that nothing is left: three system calls per
 * record, which made the load tool, not the server, the busiest process of an HTTPS run. Read
 * as a client library reads (Go's crypto/tls through a buffer), a socket gives everything it
 * holds in one recv(), and what GnuTLS has not asked for yet waits in `ahead`. */
typedef struct {
    int fd;
    char *ahead; /* bytes read and not yet handed to GnuTLS (malloc'd), or NULL */
    size_t off, len;
} tls_in;

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    tls_in *in = ptr;
    if (in->off == in->len) {
        static char chunk[256 * 1024];
        ssize_t k = recv(in->fd, chunk, sizeof(chunk), 0);
        if (k <= 0)
            return k;
        if ((size_t)k <= len) {
            memcpy(data, chunk, (size_t)k);
            return k;
        }
        free(in->ahead);
        if (!(in->ahead = malloc((size_t)k)))
            die("out of memory");
        memcpy(in->ahead, chunk, (size_t)k);
        in->off = 0;
        in->len = (size_t)k;
    }
    size_t n = in->len - in->off < len ? in->len - in->off : len;
    memcpy(data, in->ahead + in->off, n);
    in->off += n;
    if (in->off == in->len) {
        free(in->ahead);
        in->ahead = NULL;
        in->off = in->len = 0;
    }
    return (ssize_t)n;
}

/* Whether there is something to read within ms. GnuTLS asks only when a timeout is set (none
 * is here), but refuses a pull function without this one beside it. */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    tls_in *in = ptr;
    if (in->off < in->len)
        return 1;
    struct pollfd pf = {.fd = in->fd, .events = POLLIN};
    return poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* A new client session on fd, its server's certificate checked against --tls-ca. */
static gnutls_session_t tls_session(int fd, bool block)
{
    gnutls_session_t t;
    tls_in *in = calloc(1, sizeof(*in));
    if (!in)
        die("out of memory");
    in->fd = fd;
    if (gnutls_init(&t, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL | (block ? 0 : GNUTLS_NONBLOCK)) < 0 ||
        gnutls_set_default_priority(t) < 0 ||
        gnutls_credentials_set(t, GNUTLS_CRD_CERTIFICATE, tls_cred) < 0)
        die("gnutls: cannot make a session");
    gnutls_session_set_verify_cert(t, tls_host, 0);
    gnutls_transport_set_pull_function(t, tls_pull);
    gnutls_transport_set_pull_timeout_function(t, tls_pull_timeout);
    /* receiving: tls_pull's state; sending: the descriptor, for GnuTLS's own send() */
    gnutls_transport_set_ptr2(t, in, (gnutls_transport_ptr_t)(intptr_t)fd);
    return t;
}

/* Whether the session's socket was read ahead of what GnuTLS has taken. */
static bool tls_ahead(gnutls_session_t t)
{
    gnutls_transport_ptr_t recv_ptr, send_ptr;
    gnutls_transport_get_ptr2(t, &recv_ptr, &send_ptr);
    const tls_in *in = recv_ptr;
    return in->off < in->len;
}

static void tls_session_free(gnutls_session_t t)
{
    gnutls_transport_ptr_t recv_ptr, send_ptr;
    gnutls_transport_get_ptr2(t, &recv_ptr, &send_ptr);
    tls_in *in = recv_ptr;
    free(in->ahead);
    free(in);
    gnutls_deinit(t);
}

/* recv() on the reader's socket or session: bytes, 0 at the end, or -1 with errno (EAGAIN). */
static ssize_t reader_recv(reader *r, char *buf, size_t n)
{
    if (!r->tls)
        return recv(r->fd, buf, n, 0);
    for (;;) {
        ssize_t k = gnutls_record_recv(r->tls, buf, n);
        if (k >= 0)
            return k;
        if (k == GNUTLS_E_INTERRUPTED || (k == GNUTLS_E_AGAIN && tls_ahead(r->tls)))
            continue; /* (AGAIN after a TLS 1.3 ticket or key update: the data may follow) */
        errno = k == GNUTLS_E_AGAIN ? EAGAIN : EIO;
        return -1;
    }
}

/* The reader speaks etcd's watch API: against etcd, and the probe (it reads the upper tier as
 * a tier below does, POST /v3/watch, which wcached sends at once, never gathered). */
static bool reads_etcd(const reader *r)
{
    return O.peer == PEER_ETCD || r->probe;
}

static void reader_request(reader *r, char *req, size_t cap)
{
    int n = 0;
    const char *host = O.server_hosts[r->srv];
    if (reads_etcd(r)) {
        char from[160], to[160], kb[256], eb[256], body[700];
        if (O.by_node)
            snprintf(from, sizeof(from), "/bench/%s/node-%ld/", O.run, r->node);
        else
            snprintf(from, sizeof(from), "/bench/%s/", O.run);
        snprintf(to, sizeof(to), "%s", from);
        to[strlen(to) - 1]++; /* the prefix's range end: '/' + 1 */
        wc_b64_encode_to(from, strlen(from), kb, WC_B64_STD);
        wc_b64_encode_to(to, strlen(to), eb, WC_B64_STD);
        int bl;
        if (r->rv)
            bl = snprintf(body, sizeof(body),
                          "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                          "\"start_revision\":\"%" PRId64 "\"}}",
                          kb, eb, r->rv + 1);
        else
            bl = snprintf(body, sizeof(body),
                          "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\"}}", kb, eb);
        n = snprintf(req, cap,
                     "POST /v3/watch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     host, bl, body);
    } else if (O.peer == PEER_WCACHED) {
        /* A soak's slow reader starts over each time, as an informer relists: the state, then
         * the changes (it parses nothing, so it has no resourceVersion of its own). */
        int64_t rv = r->slow && O.wl == WL_SOAK ? 0 : r->rv ? r->rv : start_rv;
        if (r->listing && O.by_node) /* a reflector's relist: a consistent list */
            n = snprintf(req, cap,
                         "GET /api/v1/namespaces/%s/pods?fieldSelector=spec.nodeName%%3Dnode-%ld "
                         "HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                         O.run, r->node, host, auth_header());
        else if (r->listing)
            n = snprintf(req, cap, "GET /keys/bench/%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", O.run, host);
        else if (O.by_node)
            n = snprintf(req, cap,
                         "GET /api/v1/namespaces/%s/pods?watch=true&resourceVersion=%" PRId64
                         "&fieldSelector=spec.nodeName%%3Dnode-%ld HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                         O.run, rv, r->node, host, auth_header());
        else
            n = snprintf(req, cap,
                         "GET /keys/bench/%s/?watch=true&resourceVersion=%" PRId64
                         " HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                         O.run, rv, host, auth_header());
    } else {
        char ch[160];
        if (O.by_node)
            snprintf(ch, sizeof(ch), "%s-node-%ld", O.run, r->node);
        else
            snprintf(ch, sizeof(ch), "%s", O.run);
        if (O.wl == WL_STORM) /* EventSource: the one nchan subscriber that can resume */
            n = snprintf(
                req, cap,
                "GET /sub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n", ch,
                host, r->evid[0] ? "Last-Event-ID: " : "", r->evid, r->evid[0] ? "\r\n" : "");
        else
            n = snprintf(req, cap, "GET /sub/%s HTTP/1.1\r\nHost: %s\r\nTE: chunked\r\n\r\n", ch,
                         host);
    }
    if (n < 0 || (size_t)n >= cap)
        die("request too long");
}

static void churn_schedule(reader *r, int64_t now);

static void reader_connect(reader *r)
{
    r->listing = r->relist;
    if (O.wl == WL_SOAK)
        churn_schedule(r, now_ns());
    r->fd = tcp_connect(&O.servers[r->srv], false);
    if (r->fd < 0) {
        errors++;
        r->st = R_CLOSED;
        if (O.wl == WL_SOAK) /* try again in a second */
            r->due_ns = now_ns() + 1000000000;
        return;
    }
    if (r->slow) {
        int small = 4096; /* a small window, so the server's send buffer fills soon */
        setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    r->st = R_CONNECTING;
    r->ready = false;
    r->ended = false;
    r->line_len = 0;
    hresp_reset(&r->h);
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = r};
    epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &ev);
}

/* Closes r's connection with a reset, or with a FIN when `fin` (what a client that exits
 * cleanly sends; it leaves a TIME_WAIT behind, so the many drops of a soak mostly reset). */
static void reader_close_how(reader *r, bool fin)
{
    if (r->st == R_CLOSED)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, r->fd, NULL);
    if (fin)
        close(r->fd);
    else
        close_reset(r->fd);
    if (r->tls)
        tls_session_free(r->tls);
    r->tls = NULL;
    r->st = R_CLOSED;
    if (r->ready)
        nready--;
    r->ready = false;
}

static void reader_close(reader *r)
{
    reader_close_how(r, false);
}

static int64_t parse_i64(const char *p, const char *end)
{
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

/* The number after `name` and any quotes, backslashes and one colon: "seq":17, \"seq\":17,
 * "resourceVersion":"17". -1 when absent. */
static int64_t field_num(const char *p, const char *end, const char *name, size_t nlen)
{
    const char *f = memmem(p, (size_t)(end - p), name, nlen);
    if (!f)
        return -1;
    f += nlen;
    while (f < end && (*f == '"' || *f == '\\'))
        f++;
    if (f >= end || *f != ':')
        return -1;
    f++;
    while (f < end && (*f == '"' || *f == '\\' || *f == ' '))
        f++;
    if (f >= end || *f < '0' || *f > '9')
        return -1;
    return parse_i64(f, end);
}

/* restart: every reader has every change below caught_seq (a relist's counts) */
static int64_t caught_seq;

static void note_caught(reader *r, int64_t now)
{
    if (caught_seq && !r->caught_ns && r->next >= caught_seq)
        r->caught_ns = now;
}

static void deliver(reader *r, int64_t seq, int64_t now)
{
    if (seq < 0 || seq >= O.events || r->idle) {
        errors++;
        return;
    }
    if (r->probe == 1) {
        if (!probe_ns[seq])
            probe_ns[seq] = now;
        return;
    }
    if (r->probe) { /* read before the upper probe (one epoll batch): the tier added nothing */
        lat_add(&lat_tier, probe_ns[seq] ? now - probe_ns[seq] : 0);
        return;
    }
    if (seq == r->next) {
        in_order++;
        r->next += r->stride;
    } else if (seq > r->next) {
        gaps += (seq - r->next) / r->stride;
        r->next = seq + r->stride;
    } else
        dups++;
    note_caught(r, now);
    r->got++;
    int64_t ack = W.ack_ns[seq];
    if (!ack)
        early_count++;
    lat_add(&lat_ack, ack ? now - ack : 0);
    lat_add(&lat_sent, now - W.sent_ns[seq]);
}

static int64_t line_now; /* the time of the read being parsed */

static void reader_line(reader *r, const char *p, size_t n)
{
    const char *end = p + n;
    if (reads_etcd(r)) {
        /* One watch response may carry several events; no prev_kv was asked for, so every
         * "value" is an event's. The value's first bytes, decoded, hold {"seq":N. */
        static const char vk[] = "\"value\":\"";
        const char *s = p;
        while ((s = memmem(s, (size_t)(end - s), vk, sizeof(vk) - 1))) {
            s += sizeof(vk) - 1;
            if (end - s < 32) {
                errors++;
                break;
            }
            char dec[32];
            size_t dl;
            if (wc_b64_decode_to(s, 32, dec, &dl, WC_B64_STD) != 0) {
                errors++;
                break;
            }
            deliver(r, field_num(dec, dec + dl, "seq", 3), line_now);
        }
        static const char mr[] = "\"mod_revision\":\"";
        for (s = p; (s = memmem(s, (size_t)(end - s), mr, sizeof(mr) - 1));) {
            s += sizeof(mr) - 1;
            int64_t rev = parse_i64(s, end);
            if (rev > r->rv)
                r->rv = rev;
        }
        if (memmem(p, n, "\"canceled\":true", 15) || memmem(p, n, "\"error\"", 7))
            errors++;
        return;
    }
    if (O.peer == PEER_NCHAN && O.wl == WL_STORM) {
        if (n > 4 && !memcmp(p, "id: ", 4)) {
            size_t k = n - 4 < sizeof(r->evid) - 1 ? n - 4 : sizeof(r->evid) - 1;
            memcpy(r->evid, p + 4, k);
            r->evid[k] = '\0';
            return;
        }
        /* a value's trailing newline makes an empty second data line: not an event */
        if (n < 6 || memcmp(p, "data: ", 6) || !memmem(p, n, "seq", 3))
            return;
    }
    if (O.peer == PEER_WCACHED && r->listing) {
        /* The list: its resourceVersion first, then the keys, each value with its seq. */
        int64_t rv = field_num(p, end, "\"resourceVersion\"", 17), top = -1;
        for (const char *s = p; (s = memmem(s, (size_t)(end - s), "seq", 3)); s += 3) {
            int64_t seq = field_num(s, end, "seq", 3);
            if (seq > top)
                top = seq;
        }
        if (rv > 0)
            r->rv = rv;
        if (top >= r->next) { /* what the list holds stands for the changes up to it */
            skipped += (top - r->next) / r->stride + 1;
            r->next = top + r->stride;
            note_caught(r, line_now);
        }
        r->relist = false;
        relists++;
        return;
    }
    if (O.peer == PEER_WCACHED) {
        if (memmem(p, n < 40 ? n : 40, "\"ERROR\"", 7)) {
            if (O.wl == WL_RESTART && memmem(p, n, "\"code\":410", 10)) {
                expired++;
                r->relist = true;
                return;
            }
            errors++;
            return;
        }
        if (memmem(p, n < 40 ? n : 40, "\"BOOKMARK\"", 10))
            return;
        int64_t rv = field_num(p, end, "\"resourceVersion\"", 17);
        if (rv > r->rv)
            r->rv = rv;
    }
    int64_t seq = field_num(p, end, "seq", 3);
    if (seq < 0) {
        if (n > 0 && !(n == 1 && p[0] == '\r'))
            errors++;
        return;
    }
    deliver(r, seq, line_now);
}

static void reader_body(void *arg, const char *p, size_t n)
{
    reader *r = arg;
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            grow_append(&r->line, &r->line_len, &r->line_cap, p, (size_t)(end - p));
            return;
        }
        if (r->line_len) {
            reader_body(r, p, (size_t)(nl - p)); /* no newline in it: appends */
            reader_line(r, r->line, r->line_len);
            r->line_len = 0;
        } else
            reader_line(r, p, (size_t)(nl - p));
        p = nl + 1;
    }
}

/* While events are measured, a fast reader whose stream ends behaves like a Kubernetes
 * reflector: it watches again from the last resourceVersion it saw (a slow-reader cut-off, for
 * instance), and its stream must still be exact across the two. */
static bool rewatch;
static long rewatches;
static bool churning; /* soak: readers drop and come back while the writer writes */

/* restart: readers waiting to retry, in the order they failed (every wait is RETRY_NS). */
#define RETRY_NS 100000000
static reader **retry_q;
static int64_t *retry_at;
static size_t retry_head, retry_n, retry_cap;

static void retry_later(reader *r)
{
    reader_close(r);
    retries++;
    if (retry_n == retry_cap) {
        size_t cap = retry_cap ? retry_cap * 2 : 1024;
        reader **q = malloc(cap * sizeof(*q));
        int64_t *at = malloc(cap * sizeof(*at));
        if (!q || !at)
            die("out of memory");
        for (size_t i = 0; i < retry_n; i++) {
            q[i] = retry_q[(retry_head + i) % retry_cap];
            at[i] = retry_at[(retry_head + i) % retry_cap];
        }
        free(retry_q);
        free(retry_at);
        retry_q = q;
        retry_at = at;
        retry_head = 0;
        retry_cap = cap;
    }
    size_t k = (retry_head + retry_n++) % retry_cap;
    retry_q[k] = r;
    retry_at[k] = now_ns() + RETRY_NS;
}

/* Reconnects the readers whose wait is over; returns ms until the next one, or -1. */
static int retry_due(int64_t now)
{
    while (retry_n && retry_at[retry_head] <= now) {
        reader *r = retry_q[retry_head];
        retry_head = (retry_head + 1) % retry_cap;
        retry_n--;
        reader_connect(r);
    }
    return retry_n ? (int)((retry_at[retry_head] - now) / 1000000 + 1) : -1;
}

/* A request that failed (refused, 429, 503): a restart's reader tries again later. */
static bool failed_request(reader *r)
{
    if (O.wl != WL_RESTART)
        return false;
    retry_later(r);
    return true;
}

static void reader_ended(reader *r)
{
    if (rewatch && !r->slow && (r->rewatches < 1000 || O.wl == WL_RESTART)) {
        reader_close(r);
        r->rewatches++;
        rewatches++;
        reader_connect(r);
        return;
    }
    if (!r->ended) {
        r->ended = true;
        nended++;
    }
    reader_close(r);
    if (r->slow && churning) /* a soak's slow reader comes back a second later */
        r->due_ns = now_ns() + 1000000000;
}

/* ---------------------------------------------------------------------------------------
 * The soak's comings and goings
 * ------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) /* xorshift64*: enough to spread lifetimes */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* Sets when the stream r is opening now drops: none for a slow reader or while not churning;
 * one in eight at once (a client that gives up before or just after its request), the others
 * after a lifetime uniform in [0, 2 * churn_ms). */
static void churn_schedule(reader *r, int64_t now)
{
    r->due_ns = 0;
    if (!churning || r->slow || O.churn_ms <= 0)
        return;
    uint64_t x = rng();
    r->due_ns =
        now + ((x & 7) == 0 ? 0 : (int64_t)((x >> 3) % (uint64_t)(2 * O.churn_ms)) * 1000000);
}

static long drops, drops_fin;

/* Due readers drop their stream and watch again from their last resourceVersion (one in eight
 * closing with a FIN, the others with a reset); closed ones that are due come back. */
static void soak_tick(int64_t now)
{
    for (long i = 0; i < nreaders; i++) {
        reader *r = &R[i];
        if (!r->due_ns || r->due_ns > now)
            continue;
        r->due_ns = 0;
        if (r->st == R_CLOSED) {
            if (churning || !r->slow)
                reader_connect(r);
            continue;
        }
        if (!churning)
            continue;
        drops++;
        bool fin = (rng() & 7) == 0;
        drops_fin += fin;
        reader_close_how(r, fin);
        reader_connect(r);
    }
}

static bool reader_read(reader *r, int64_t now);

static void reader_event(reader *r, uint32_t events, int64_t now)
{
    if (r->st == R_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err && failed_request(r))
            return;
        if (err) {
            errors++;
            reader_ended(r);
            return;
        }
        if (tls_cred) {
            r->tls = tls_session(r->fd, false);
            r->st = R_HANDSHAKE;
        }
    }
    if (r->st == R_HANDSHAKE) {
        int rc = gnutls_handshake(r->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            struct epoll_event ev = {
                .events = gnutls_record_get_direction(r->tls) ? EPOLLOUT : EPOLLIN, .data.ptr = r};
            epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev);
            return;
        }
        if (rc < 0) {
            errors++;
            reader_ended(r);
            return;
        }
    }
    if (r->st == R_CONNECTING || r->st == R_HANDSHAKE) {
        char req[1200];
        reader_request(r, req, sizeof(req));
        size_t n = strlen(req);
        /* A request this small goes whole into an empty socket (or one TLS record). */
        ssize_t k = r->tls ? gnutls_record_send(r->tls, req, n) : send(r->fd, req, n, MSG_NOSIGNAL);
        if (k != (ssize_t)n) {
            if (failed_request(r))
                return;
            errors++;
            reader_ended(r);
            return;
        }
        r->st = R_OPEN;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = r};
        epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev);
        return;
    }
    if (r->slow && r->ready) {
        /* The slow reader takes one byte a second (in main's loop); here it only learns that
         * the server ended its stream. */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            reader_ended(r);
        return;
    }
    /* A session takes one record per read and may hold bytes the socket no longer signals:
     * over TLS, read until it would block. */
    while (reader_read(r, now) && r->tls && r->st == R_OPEN)
        ;
}

/* One read of r's stream, parsed; false when there was nothing to read or the stream ended. */
static bool reader_read(reader *r, int64_t now)
{
    ssize_t k = reader_recv(r, rbuf, r->slow ? 1024 : sizeof(rbuf));
    if (k <= 0) {
        if (k < 0 && errno == EAGAIN)
            return false;
        reader_ended(r);
        return false;
    }
    bytes_in += (uint64_t)k;
    line_now = now;
    size_t off = 0;
    while (off < (size_t)k && r->st == R_OPEN) {
        bool had_status = r->h.st > H_HEADERS;
        off += hresp_feed(&r->h, rbuf + off, (size_t)k - off, reader_body, r);
        if (!had_status && r->h.st > H_HEADERS) {
            if (r->h.status != 200 && failed_request(r))
                return false;
            if (r->h.status != 200) {
                errors++;
                reader_ended(r);
                return false;
            }
            /* etcd's watch is live once it answered "created": its first line */
            if (!reads_etcd(r)) {
                r->ready = true;
                r->open_ns = now;
                nready++;
                if (r->slow) {
                    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = r};
                    epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev);
                    return false;
                }
            }
        }
        if (r->h.st == H_DONE) {
            if (r->listing && r->line_len) { /* the list's last line has no newline */
                reader_line(r, r->line, r->line_len);
                r->line_len = 0;
            }
            reader_ended(r);
            return false;
        }
    }
    if (reads_etcd(r) && !r->ready && r->h.st > H_HEADERS && r->line_len == 0 && r->st == R_OPEN) {
        r->ready = true; /* a whole line arrived: the "created" answer */
        nready++;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------------------- */

typedef bool until_fn(void);

static int64_t soak_t0, next_progress;

/* One PROGRESS line: how far the soak is (the figures so far, over all readers). */
static void progress(int64_t now)
{
    printf("PROGRESS t_s=%.0f events=%" PRId64 " deliveries=%" PRId64 " gaps=%" PRId64
           " dups=%" PRId64 " errors=%" PRId64 " drops=%ld rewatches=%ld slow_ended=%ld open=%ld"
           " writer_reconnects=%ld\n",
           (double)(now - soak_t0) / 1e9, W.acked, in_order, gaps, dups, errors, drops, rewatches,
           nended, nready, W.reconnects);
}

/* Runs the loop until done() or the deadline; returns whether done() became true. */
static bool run_until(until_fn *done, int64_t deadline)
{
    struct epoll_event evs[512];
    int64_t next_slow = 0;
    for (;;) {
        int64_t now = now_ns();
        if (done && done())
            return true;
        if (now >= deadline)
            return false;
        int wait = writer_pump(&W, now);
        int rwait = retry_due(now);
        if (rwait >= 0 && (wait < 0 || rwait < wait))
            wait = rwait;
        int64_t left_ms = (deadline - now) / 1000000 + 1;
        if (wait < 0 || wait > left_ms)
            wait = (int)left_ms;
        if (O.slow > 0 && wait > 100)
            wait = 100;
        if (O.wl == WL_SOAK) {
            soak_tick(now);
            if (O.progress_s > 0 && soak_t0 && now >= next_progress) {
                progress(now);
                next_progress = now + O.progress_s * (int64_t)1000000000;
            }
            if (wait > 10) /* drops are due at any time */
                wait = 10;
        }
        if (now >= next_slow && O.slow > 0) {
            for (long i = O.readers; i < O.readers + O.slow; i++) { /* one byte a second each */
                reader *r = &R[i];
                if (r->st == R_OPEN && r->ready) {
                    char b;
                    ssize_t k = recv(r->fd, &b, 1, MSG_DONTWAIT);
                    if (k == 0)
                        reader_ended(r);
                    else if (k == 1)
                        bytes_in++;
                }
            }
            next_slow = now + 1000000000;
        }
        int n = epoll_wait(ep, evs, 512, wait);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            enum tag *t = evs[i].data.ptr;
            if (*t == TAG_WRITER)
                writer_readable(&W, now);
            else
                reader_event((reader *)t, evs[i].events, now);
        }
        if (W.fd > 0 && W.out_len)
            writer_flush(&W);
    }
}

static int64_t expected_total; /* in-order deliveries that make every fast reader complete */

static bool all_ready(void)
{
    return nready + nended >= nreaders;
}
static bool all_complete(void)
{
    return in_order >= expected_total;
}
static bool all_acked(void)
{
    return W.acked >= W.target;
}

/* How many of the sequence numbers below `upto` reader r must see. */
static int64_t expected_of(const reader *r, int64_t upto)
{
    if (r->idle)
        return 0;
    int64_t first = r->stride > 1 ? r->node : 0;
    return upto > first ? (upto - 1 - first) / r->stride + 1 : 0;
}

static bool all_caught_up(void)
{
    for (long i = 0; i < O.readers; i++)
        if (R[i].next < caught_seq)
            return false;
    return true;
}
static bool third_acked(void)
{
    return W.acked >= O.events / 3;
}

static void expect_upto(int64_t upto)
{
    expected_total = 0;
    for (long i = 0; i < O.readers; i++)
        expected_total += expected_of(&R[i], upto);
}

/* ---------------------------------------------------------------------------------------
 * One blocking request (set-up: the list's resourceVersion; the bulk load)
 * ------------------------------------------------------------------------------------- */

typedef struct sink {
    char *p;
    size_t len, cap;
} sink;

static void sink_body(void *arg, const char *p, size_t n)
{
    sink *s = arg;
    grow_append(&s->p, &s->len, &s->cap, p, n);
}

/* Sends one request on a new connection and returns the whole body (NUL-terminated). */
static char *blocking_request(const struct sockaddr_in *sa, const char *req, size_t len,
                              int *status)
{
    int fd = tcp_connect(sa, true);
    if (fd < 0)
        die("connect: %s", strerror(errno));
    gnutls_session_t t = tls_cred && sa == &O.server ? tls_session(fd, true) : NULL;
    int rc;
    if (t && (rc = gnutls_handshake(t)) < 0)
        die("TLS handshake with %s: %s", O.server_host, gnutls_strerror(rc));
    for (size_t off = 0; off < len;) {
        ssize_t k = t ? gnutls_record_send(t, req + off, len - off)
                      : send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (k <= 0)
            die("send: %s", t ? gnutls_strerror((int)k) : strerror(errno));
        off += (size_t)k;
    }
    hresp h;
    hresp_reset(&h);
    sink s = {calloc(1, 1), 0, 1};
    while (h.st != H_DONE) {
        ssize_t k = t ? gnutls_record_recv(t, rbuf, sizeof(rbuf)) : recv(fd, rbuf, sizeof(rbuf), 0);
        if (k < 0)
            die("recv: %s", t ? gnutls_strerror((int)k) : strerror(errno));
        if (k == 0)
            break;
        hresp_feed(&h, rbuf, (size_t)k, sink_body, &s);
    }
    if (t)
        tls_session_free(t);
    close(fd);
    *status = h.status;
    return s.p;
}

/* The resourceVersion of the readers' (empty) range, from a one-item list at RV=0 (no
 * consistent read, so no request reaches etcd for it): they watch from it, so that wcached
 * sends no initial state and makes no consistent read per watch. */
static int64_t wcached_list_rv(void)
{
    char req[512];
    int n;
    if (O.by_node)
        n = snprintf(
            req, sizeof(req),
            "GET /api/v1/namespaces/%s/pods?limit=1&resourceVersion=0 HTTP/1.1\r\nHost: %s\r\n"
            "%sConnection: close\r\n\r\n",
            O.run, O.server_host, auth_header());
    else
        n = snprintf(req, sizeof(req),
                     "GET /keys/bench/%s/?limit=1&resourceVersion=0 HTTP/1.1\r\nHost: "
                     "%s\r\n%sConnection: close\r\n\r\n",
                     O.run, O.server_host, auth_header());
    int status;
    char *body = blocking_request(&O.server, req, (size_t)n, &status);
    if (status != 200)
        die("wcached list answered %d: %.200s", status, body);
    int64_t rv = field_num(body, body + strlen(body), "\"resourceVersion\"", 17);
    free(body);
    if (rv <= 0)
        die("wcached list carried no resourceVersion");
    return rv;
}

/* The status of GET /readyz on the server, or 0 when it does not answer. Blocking, and short:
 * a server that listens answers it at once. */
static int readyz(void)
{
    int fd = tcp_connect(&O.server, true);
    if (fd < 0)
        return 0;
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 O.server_host);
    int status = 0;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        char b[64];
        ssize_t k = recv(fd, b, sizeof(b) - 1, 0);
        if (k > 12) {
            b[k] = '\0';
            status = atoi(b + 9); /* "HTTP/1.1 200" */
        }
    }
    close(fd);
    return status;
}

/* Starts `sh -c cmd` and leaves it running. */
static void spawn(const char *cmd)
{
    extern char **environ;
    pid_t pid;
    char *const argv[] = {"sh", "-c", (char *)(uintptr_t)cmd, NULL};
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc)
        die("cannot run '%s': %s", cmd, strerror(rc));
}

/*
 * W8's data: a Pod of about O.size bytes as the apiserver stores it (no resourceVersion), with
 * labels, a namespace, spec.nodeName on one of 1,000 nodes and a status; `round` changes its
 * labels and status so that a second load updates every key.
 */
static size_t make_pod(long i, char *v)
{
    int n =
        snprintf(v, 1024,
                 "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"pod-%07ld\","
                 "\"namespace\":\"%s\",\"uid\":\"6f1c2a4e-%04ld-4b7e-9a1d-%012ld\","
                 "\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"labels\":{\"app\":\"web-%ld\","
                 "\"tier\":\"frontend\",\"round\":\"r%ld\",\"pod-template-hash\":\"7d4b9c%04ld\"}},"
                 "\"spec\":{\"nodeName\":\"node-%ld\",\"restartPolicy\":\"Always\","
                 "\"schedulerName\":\"default-scheduler\",\"serviceAccountName\":\"default\","
                 "\"containers\":[{\"name\":\"web\",\"image\":\"registry.example/web:1.%ld\","
                 "\"ports\":[{\"containerPort\":8080,\"protocol\":\"TCP\"}],"
                 "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}}]},"
                 "\"status\":{\"phase\":\"%s\",\"podIP\":\"10.%ld.%ld.%ld\",\"pad\":\"",
                 i, O.run, i % 10000, i, i % 50, O.round, i % 10000, i % 1000, O.round,
                 O.round % 2 ? "Running" : "Pending", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    size_t len = (size_t)n;
    size_t want = (size_t)O.size > len + 3 ? (size_t)O.size - 3 : len;
    memset(v + len, 'x', want - len);
    memcpy(v + want, "\"}}", 3);
    return want + 3;
}

/* W5's data, and a soak's first state: `keys` keys of O.size bytes under /bench/RUN/ (the
 * soak's writer then updates the first 1,000; W8's: Pods, see make_pod), 100 puts per
 * transaction. Returns the bytes of the keys and values written. */
static long bulk_load(void)
{
    long raw = 0;
    size_t cap = 100 * (wc_b64_encoded_size((size_t)O.size + 64) + 200) + 1024;
    char *body = malloc(cap), *value = malloc((size_t)O.size + 1024),
         *vb = malloc(wc_b64_encoded_size((size_t)O.size + 1024));
    char *req = malloc(cap + 512);
    if (!body || !value || !vb || !req)
        die("out of memory");
    for (long base = 0; base < O.keys; base += 100) {
        size_t bl = (size_t)snprintf(body, cap, "{\"success\":[");
        for (long i = base; i < base + 100 && i < O.keys; i++) {
            char key[256], kb[400];
            if (O.pods)
                snprintf(key, sizeof(key), "/w8/%s/registry/pods/%s/pod-%07ld", O.run, O.run, i);
            else
                snprintf(key, sizeof(key), "/bench/%s/k%07ld", O.run, i);
            wc_b64_encode_to(key, strlen(key), kb, WC_B64_STD);
            size_t vl = O.pods ? make_pod(i, value) : make_value(i, value);
            raw += (long)(strlen(key) + vl);
            wc_b64_encode_to(value, vl, vb, WC_B64_STD);
            bl += (size_t)snprintf(body + bl, cap - bl,
                                   "%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
                                   i > base ? "," : "", kb, vb);
        }
        bl += (size_t)snprintf(body + bl, cap - bl, "]}");
        int hl =
            snprintf(req, 512,
                     "POST /v3/kv/txn HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     O.etcd_host, bl);
        memcpy(req + hl, body, bl);
        int status;
        char *ans = blocking_request(&O.etcd, req, (size_t)hl + bl, &status);
        if (status != 200)
            die("etcd txn answered %d: %.200s", status, ans);
        free(ans);
    }
    free(body);
    free(value);
    free(vb);
    free(req);
    return raw;
}

/* ---------------------------------------------------------------------------------------
 * Server processes: CPU seconds and RSS
 * ------------------------------------------------------------------------------------- */

static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    unsigned long long ut, st;
    /* after ")": state ppid pgrp session tty tpgid flags 4 fault counts, utime, stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = atol(line + 6);
    fclose(f);
    return kib;
}

static double cpu0[MAX_PIDS], cpu1[MAX_PIDS];
static long rss0[MAX_PIDS], rss1[MAX_PIDS];
static double client0, client1;

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sample_cpu(double *cpu, double *client)
{
    for (int i = 0; i < O.npids; i++)
        cpu[i] = proc_cpu_s(O.pid[i]);
    *client = self_cpu_s();
}

static void sample_rss(long *rss)
{
    for (int i = 0; i < O.npids; i++)
        rss[i] = proc_rss_kib(O.pid[i]);
}

/* ---------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------- */

static void usage(void)
{
    fputs("usage: wcload --peer wcached|etcd|nchan --workload "
          "fanout|idle|storm|selective|slow|load|restart|soak\n"
          "  --server HOST:PORT[,HOST:PORT...]  --etcd HOST:PORT  --run ID\n"
          "    (several servers: reader i reads from the (i mod n)th; lists from the first)\n"
          "  [--probe UPPER,LOWER[,LOWER...]]  (fanout: a reader of etcd's watch API on each;\n"
          "    tier_p99_us: each change's delivery on a lower one after the upper one's)\n"
          "  [--readers N] [--events M] [--rate R] [--size B] [--nodes K] [--busy-nodes J]\n"
          "  [--slow S] [--keys N] [--pods 0|1] [--round R] [--by-node 0|1]\n"
          "    (--by-node 1: restart's readers each watch one node's Pods, as kubelets do)\n"
          "  [--hold S] [--timeout S] [--pid NAME=PID ...] [--restart-cmd CMD]\n"
          "  [--tls-ca FILE] [--token TOKEN]   (wcached over HTTPS; a bearer token)\n"
          "  soak (wcached only): [--duration S] [--churn-ms MS] [--progress S]\n",
          stderr);
    exit(2);
}

static void parse_addr(const char *s, struct sockaddr_in *sa, char *host, size_t cap,
                       const char *flag)
{
    unsigned a, b, c, d, port;
    char tail;
    if (sscanf(s, "%u.%u.%u.%u:%u%c", &a, &b, &c, &d, &port, &tail) != 5 || a > 255 || b > 255 ||
        c > 255 || d > 255 || port == 0 || port > 65535) {
        fprintf(stderr, "wcload: %s: '%s' is not IPv4:PORT\n", flag, s);
        exit(2);
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(a << 24 | b << 16 | c << 8 | d);
    snprintf(host, cap, "%s", s);
}

static long num(const char *s, const char *flag, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "wcload: %s: '%s' is not a number from %ld to %ld\n", flag, s, lo, hi);
        exit(2);
    }
    return v;
}

/* A comma-separated list of HOST:PORT, at most MAX_SERVERS: how many were parsed. */
static int parse_addrs(const char *v, struct sockaddr_in *sa, char (*hosts)[64], const char *flag)
{
    int n = 0;
    for (const char *p = v; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[64];
        if (n == MAX_SERVERS || len >= sizeof(one)) {
            fprintf(stderr, "wcload: %s: at most %d addresses\n", flag, MAX_SERVERS);
            exit(2);
        }
        memcpy(one, p, len);
        one[len] = '\0';
        parse_addr(one, &sa[n], hosts[n], sizeof(hosts[0]), flag);
        n++;
        p = comma ? comma + 1 : p + len;
    }
    return n;
}

static void parse_args(int argc, char **argv)
{
    O.readers = 100;
    O.events = 1000;
    O.rate = 1000;
    O.size = 1024;
    O.nodes = 1000;
    O.hold_s = 2;
    O.timeout_s = 10;
    O.duration_s = 60;
    O.progress_s = 10;
    int have = 0;
    struct sockaddr_in probes[MAX_SERVERS];
    char probe_hosts[MAX_SERVERS][64];
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(f, "--peer")) {
            have |= 1;
            if (!strcmp(v, "wcached"))
                O.peer = PEER_WCACHED;
            else if (!strcmp(v, "etcd"))
                O.peer = PEER_ETCD;
            else if (!strcmp(v, "nchan"))
                O.peer = PEER_NCHAN;
            else
                usage();
        } else if (!strcmp(f, "--workload")) {
            have |= 2;
            int k = 0;
            while (k < WL_COUNT && strcmp(v, wl_names[k]))
                k++;
            if (k == WL_COUNT)
                usage();
            O.wl = (enum workload)k;
        } else if (!strcmp(f, "--server")) {
            have |= 4;
            O.nservers = parse_addrs(v, O.servers, O.server_hosts, f);
            O.server = O.servers[0];
            snprintf(O.server_host, sizeof(O.server_host), "%s", O.server_hosts[0]);
        } else if (!strcmp(f, "--probe")) {
            O.nprobes = parse_addrs(v, probes, probe_hosts, f);
        } else if (!strcmp(f, "--etcd")) {
            have |= 8;
            parse_addr(v, &O.etcd, O.etcd_host, sizeof(O.etcd_host), f);
        } else if (!strcmp(f, "--run")) {
            have |= 16;
            for (const char *c = v; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-') ||
                    c - v > 60) {
                    fprintf(stderr,
                            "wcload: --run: '%s' is not lower-case letters, digits and dashes\n",
                            v);
                    exit(2);
                }
            O.run = v;
        } else if (!strcmp(f, "--tls-ca"))
            O.tls_ca = v;
        else if (!strcmp(f, "--token"))
            O.token = v;
        else if (!strcmp(f, "--readers"))
            O.readers = num(v, f, 0, 1000000);
        else if (!strcmp(f, "--events"))
            O.events = num(v, f, 0, 100000000);
        else if (!strcmp(f, "--rate"))
            O.rate = num(v, f, 0, 10000000);
        else if (!strcmp(f, "--size"))
            O.size = num(v, f, 64, 1 << 20);
        else if (!strcmp(f, "--nodes"))
            O.nodes = num(v, f, 1, 1000000);
        else if (!strcmp(f, "--busy-nodes"))
            O.busy_nodes = num(v, f, 1, 1000000);
        else if (!strcmp(f, "--slow"))
            O.slow = num(v, f, 0, 100000);
        else if (!strcmp(f, "--keys"))
            O.keys = num(v, f, 0, 100000000);
        else if (!strcmp(f, "--pods"))
            O.pods = num(v, f, 0, 1) == 1;
        else if (!strcmp(f, "--by-node"))
            O.by_node = num(v, f, 0, 1) == 1;
        else if (!strcmp(f, "--round"))
            O.round = num(v, f, 0, 1000000);
        else if (!strcmp(f, "--hold"))
            O.hold_s = (double)num(v, f, 0, 3600);
        else if (!strcmp(f, "--duration"))
            O.duration_s = num(v, f, 1, 7 * 86400);
        else if (!strcmp(f, "--churn-ms"))
            O.churn_ms = num(v, f, 0, 3600000);
        else if (!strcmp(f, "--progress"))
            O.progress_s = num(v, f, 0, 3600);
        else if (!strcmp(f, "--timeout"))
            O.timeout_s = (double)num(v, f, 1, 3600);
        else if (!strcmp(f, "--restart-cmd"))
            O.restart_cmd = v;
        else if (!strcmp(f, "--pid")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof(O.pid_name[0]) ||
                O.npids == MAX_PIDS) {
                fprintf(stderr, "wcload: --pid: '%s' is not NAME=PID\n", v);
                exit(2);
            }
            memcpy(O.pid_name[O.npids], v, (size_t)(eq - v));
            O.pid[O.npids++] = (int)num(eq + 1, f, 1, 1 << 30);
        } else
            usage();
    }
    if ((have & 19) != 19 || !(have & 4 || O.wl == WL_LOAD))
        usage();
    if (O.peer != PEER_NCHAN && !(have & 8))
        usage();
    if (O.wl == WL_RESTART && (O.peer != PEER_WCACHED || !O.restart_cmd))
        usage();
    if (O.by_node && O.wl != WL_RESTART && O.wl != WL_SELECTIVE) {
        fputs("wcload: --by-node: the restart workload's readers only\n", stderr);
        exit(2);
    }
    O.by_node = O.by_node || O.wl == WL_SELECTIVE;
    if (O.nprobes) {
        if (O.nprobes < 2 || O.peer != PEER_WCACHED || O.wl != WL_FANOUT || O.tls_ca) {
            fputs("wcload: --probe: an upper and a lower wcached, fanout over plain HTTP only\n",
                  stderr);
            exit(2);
        }
        for (int i = 0; i < O.nprobes; i++) {
            O.servers[O.nservers + i] = probes[i];
            memcpy(O.server_hosts[O.nservers + i], probe_hosts[i], sizeof(probe_hosts[i]));
        }
    }
    if (O.wl == WL_SLOW && O.slow == 0)
        O.slow = 1;
    if (O.wl != WL_SLOW && O.wl != WL_SOAK)
        O.slow = 0;
    if (O.wl == WL_SOAK) {
        if (O.peer != PEER_WCACHED || O.rate <= 0) {
            fputs("wcload: the soak workload runs against wcached, with a --rate above 0\n",
                  stderr);
            exit(2);
        }
        O.events = O.rate * O.duration_s;
    }
    if (O.busy_nodes == 0 || O.busy_nodes > O.nodes)
        O.busy_nodes = O.nodes;
    if (O.tls_ca && (O.peer != PEER_WCACHED || O.wl == WL_SLOW)) {
        fprintf(stderr, "wcload: --tls-ca: wcached's fast readers only\n");
        exit(2);
    }
    if (O.tls_ca && O.nservers > 1) {
        fprintf(stderr, "wcload: --tls-ca: one server only\n");
        exit(2);
    }
    if (O.tls_ca) {
        int rc = gnutls_certificate_allocate_credentials(&tls_cred);
        if (rc == 0)
            rc = gnutls_certificate_set_x509_trust_file(tls_cred, O.tls_ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            fprintf(stderr, "wcload: --tls-ca %s: no CA certificate in it\n", O.tls_ca);
            exit(2);
        }
        inet_ntop(AF_INET, &O.server.sin_addr, tls_host, sizeof(tls_host));
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < O.readers + O.slow + 64)
        die("%ld readers need more open files than the limit %ld (ulimit -n)", O.readers + O.slow,
            (long)rl.rlim_cur);
}

/* ---------------------------------------------------------------------------------------
 * Output: one RESULT line
 * ------------------------------------------------------------------------------------- */

static void put_num(const char *k, double v, int prec)
{
    if (v < 0)
        printf(" %s=-", k);
    else
        printf(" %s=%.*f", k, prec, v);
}

static double restart_ready_ms = -1; /* restart: from the restart command to /readyz 200 */

/* restart: where the time after ready goes. At ready: the changes written while wcached was
 * away and the readers' backlog; after: when the readers' streams opened again, and when each
 * had every change written until ready (the first one: about when wcached had them all). */
static struct {
    int64_t seq_kill, seq_ready; /* changes acknowledged at the restart and at ready */
    int64_t backlog;             /* changes below seq_ready that readers still lacked at ready */
    long open_late;              /* readers whose stream opened after ready */
    double open_last_ms;         /* the last of those, after ready */
    double caught_first_ms, caught_p50_ms, caught_p99_ms;
} rs = {.open_last_ms = -1, .caught_first_ms = -1, .caught_p50_ms = -1, .caught_p99_ms = -1};

static void restart_at_ready(int64_t t_kill, int64_t t_ready)
{
    (void)t_kill;
    rs.seq_ready = caught_seq;
    for (long i = 0; i < O.readers; i++) {
        if (R[i].next < caught_seq)
            rs.backlog += expected_of(&R[i], caught_seq) - expected_of(&R[i], R[i].next);
        else
            R[i].caught_ns = t_ready;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void restart_after(int64_t t_ready)
{
    int64_t *c = malloc((size_t)(O.readers ? O.readers : 1) * sizeof(*c));
    long n = 0;
    if (!c)
        die("out of memory");
    for (long i = 0; i < O.readers; i++) {
        if (R[i].open_ns > t_ready) {
            rs.open_late++;
            double ms = (double)(R[i].open_ns - t_ready) / 1e6;
            if (ms > rs.open_last_ms)
                rs.open_last_ms = ms;
        }
        if (R[i].caught_ns)
            c[n++] = R[i].caught_ns - t_ready;
    }
    if (n) {
        qsort(c, (size_t)n, sizeof(*c), cmp_i64);
        rs.caught_first_ms = (double)c[0] / 1e6;
        rs.caught_p50_ms = (double)c[n / 2] / 1e6;
        rs.caught_p99_ms = (double)c[n * 99 / 100] / 1e6;
    }
    free(c);
}

static void report(const char *peer, const char *wl, double wall_s, double connect_ms,
                   double catchup_ms, bool measured_cpu, int64_t expected)
{
    long complete = 0;
    for (long i = 0; i < O.readers; i++)
        if (R[i].got == expected_of(&R[i], W.target) &&
            R[i].next == R[i].node + R[i].stride * expected_of(&R[i], W.target))
            complete++;
    double rate_done = -1;
    if (W.acked > 1 && W.last_ack_ns > W.start_ns)
        rate_done = (double)(W.acked - W.batch0) * 1e9 / (double)(W.last_ack_ns - W.start_ns);
    printf("RESULT peer=%s workload=%s readers=%ld events=%" PRId64 " rate_asked=%ld", peer, wl,
           O.readers, W.acked, O.rate);
    put_num("rate_done", rate_done, 0);
    printf(" deliveries_expected=%" PRId64 " deliveries=%" PRId64 " complete=%ld gaps=%" PRId64
           " dups=%" PRId64 " errors=%" PRId64,
           expected, in_order, complete, gaps, dups, errors);
    put_num("connect_ms", connect_ms, 1);
    put_num("catchup_ms", catchup_ms, 1);
    put_num("lat_p50_us", (double)lat_quantile_us(&lat_ack, 0.50), 0);
    put_num("lat_p99_us", (double)lat_quantile_us(&lat_ack, 0.99), 0);
    put_num("lat_max_us", lat_ack.count ? (double)lat_ack.max_ns / 1000 : -1, 0);
    put_num("slat_p50_us", (double)lat_quantile_us(&lat_sent, 0.50), 0);
    put_num("slat_p99_us", (double)lat_quantile_us(&lat_sent, 0.99), 0);
    put_num("slat_max_us", lat_sent.count ? (double)lat_sent.max_ns / 1000 : -1, 0);
    if (O.nprobes) {
        put_num("tier_p50_us", (double)lat_quantile_us(&lat_tier, 0.50), 0);
        put_num("tier_p99_us", (double)lat_quantile_us(&lat_tier, 0.99), 0);
        put_num("tier_max_us", lat_tier.count ? (double)lat_tier.max_ns / 1000 : -1, 0);
    }
    printf(" early=%" PRIu64 " bytes=%" PRIu64, early_count, bytes_in);
    put_num("wall_s", wall_s, 3);
    for (int i = 0; i < O.npids; i++) {
        char k[64];
        snprintf(k, sizeof(k), "cpu_%s_s", O.pid_name[i]);
        put_num(k, measured_cpu && cpu0[i] >= 0 && cpu1[i] >= 0 ? cpu1[i] - cpu0[i] : -1, 3);
        snprintf(k, sizeof(k), "rss_%s_kib", O.pid_name[i]);
        put_num(k, (double)rss1[i], 0);
        snprintf(k, sizeof(k), "rss0_%s_kib", O.pid_name[i]);
        put_num(k, (double)rss0[i], 0);
    }
    put_num("client_cpu_s", measured_cpu ? client1 - client0 : -1, 3);
    printf(" rewatches=%ld", rewatches);
    if (O.wl == WL_RESTART) {
        printf(" ready_ms=%.1f expired=%ld relists=%ld retries=%ld skipped=%" PRId64,
               restart_ready_ms, expired, relists, retries, skipped);
        printf(" seq_kill=%" PRId64 " seq_ready=%" PRId64 " backlog=%" PRId64 " open_late=%ld",
               rs.seq_kill, rs.seq_ready, rs.backlog, rs.open_late);
        put_num("open_last_ms", rs.open_last_ms, 1);
        put_num("caught_first_ms", rs.caught_first_ms, 1);
        put_num("caught_p50_ms", rs.caught_p50_ms, 1);
        put_num("caught_p99_ms", rs.caught_p99_ms, 1);
    }
    if (O.slow)
        printf(" slow_ended=%ld", nended);
    else
        printf(" slow_ended=-");
    if (O.wl == WL_SOAK)
        printf(" drops=%ld drops_fin=%ld writer_reconnects=%ld", drops, drops_fin, W.reconnects);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const char *peer_names[] = {"wcached", "etcd", "nchan"};
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *peer = peer_names[O.peer], *wl = wl_names[O.wl];

    if (O.wl == WL_LOAD) {
        int64_t t0 = now_ns();
        long raw = bulk_load();
        printf("RESULT peer=%s workload=load keys=%ld size=%ld raw_bytes=%ld wall_s=%.3f\n", peer,
               O.keys, O.size, raw, (double)(now_ns() - t0) / 1e9);
        return 0;
    }
    raise_nofile();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    if (O.wl == WL_IDLE)
        O.events = 0;
    writer_open(&W);

    nreaders = O.readers + O.slow + O.nprobes;
    R = calloc((size_t)nreaders + 1, sizeof(reader));
    probe_ns = calloc((size_t)O.events + 1, sizeof(int64_t));
    if (!R || !probe_ns)
        die("out of memory");
    for (long i = 0; i < nreaders; i++) {
        R[i].tag = TAG_READER;
        R[i].slow = i >= O.readers && i < O.readers + O.slow;
        R[i].probe = i >= O.readers + O.slow ? (int)(i - O.readers - O.slow) + 1 : 0;
        R[i].node = O.by_node ? i % O.nodes : 0;
        R[i].stride = O.by_node ? O.busy_nodes : 1;
        R[i].idle = O.by_node && R[i].node >= O.busy_nodes;
        R[i].next = R[i].node;
        R[i].srv = R[i].probe       ? O.nservers + R[i].probe - 1
                   : O.nservers > 1 ? (int)(i % O.nservers)
                                    : 0;
    }
    if (O.peer == PEER_WCACHED)
        start_rv = wcached_list_rv();

    sample_rss(rss0);
    int64_t t_connect = now_ns();
    for (long i = 0; i < nreaders; i++)
        reader_connect(&R[i]);
    if (!run_until(all_ready, t_connect + 60 * (int64_t)1000000000))
        die("only %ld of %ld readers were ready after 60 s (%ld ended)", nready, nreaders, nended);
    double connect_ms = (double)(now_ns() - t_connect) / 1e6;
    if (nended)
        die("%ld readers could not open their stream", nended);

    int64_t t0 = now_ns();
    double catchup_ms = -1;
    int64_t timeout_ns = (int64_t)(O.timeout_s * 1e9);
    if (O.wl == WL_IDLE) {
        run_until(NULL, now_ns() + (int64_t)(O.hold_s * 1e9));
        sample_rss(rss1);
        report(peer, wl, (double)(now_ns() - t0) / 1e9, connect_ms, -1, false, 0);
        return 0;
    }
    if (O.wl == WL_STORM) {
        /* The first half live; then every reader drops, the second half is written while they
         * are away, and all of them come back at once from their last position. */
        int64_t half = O.events / 2;
        expect_upto(half);
        rewatch = true;
        writer_start(&W, half);
        run_until(all_acked, INT64_MAX);
        run_until(all_complete, W.last_ack_ns + timeout_ns);
        rewatch = false;
        for (long i = 0; i < nreaders; i++)
            reader_close(&R[i]);
        rewatch = true;
        writer_start(&W, O.events);
        run_until(all_acked, INT64_MAX);
        run_until(NULL, now_ns() + 200000000); /* let the server take the last of them */
        expect_upto(O.events);
        sample_cpu(cpu0, &client0);
        int64_t t_storm = now_ns();
        for (long i = 0; i < nreaders; i++)
            reader_connect(&R[i]);
        bool ok = run_until(all_complete, t_storm + timeout_ns);
        catchup_ms = ok ? (double)(now_ns() - t_storm) / 1e6 : -1;
        sample_cpu(cpu1, &client1);
        sample_rss(rss1);
        report(peer, wl, (double)(now_ns() - t0) / 1e9, connect_ms, catchup_ms, true,
               expected_total);
        return 0;
    }
    if (O.wl == WL_RESTART) {
        /* A third of the events live; then wcached is restarted while the writer goes on. */
        expect_upto(O.events);
        rewatch = true;
        sample_cpu(cpu0, &client0);
        writer_start(&W, O.events);
        run_until(third_acked, INT64_MAX);
        int64_t t_kill = now_ns();
        rs.seq_kill = W.acked;
        spawn(O.restart_cmd);
        while (readyz() == 200 && now_ns() - t_kill < 10 * (int64_t)1000000000)
            run_until(NULL, now_ns() + 2000000);
        while (readyz() != 200 && now_ns() - t_kill < 60 * (int64_t)1000000000)
            run_until(NULL, now_ns() + 5000000);
        int64_t t_ready = now_ns();
        restart_ready_ms = (double)(t_ready - t_kill) / 1e6;
        /* Caught up: every change written until it was ready again is with every reader. */
        caught_seq = W.acked;
        restart_at_ready(t_kill, t_ready);
        bool ok = run_until(all_caught_up, t_ready + timeout_ns);
        catchup_ms = ok ? (double)(now_ns() - t_ready) / 1e6 : -1;
        restart_after(t_ready);
        run_until(all_acked, INT64_MAX);
        caught_seq = O.events;
        run_until(all_caught_up, W.last_ack_ns + timeout_ns);
        sample_cpu(cpu1, &client1);
        sample_rss(rss1);
        report(peer, wl, (double)(now_ns() - t0) / 1e9, connect_ms, catchup_ms, true,
               expected_total);
        return 0;
    }
    if (O.wl == WL_SOAK) {
        /* The writer writes for the duration while readers come and go; then they all stay
         * until they have every change (or the timeout), and leave. */
        expect_upto(O.events);
        rewatch = true;
        churning = true;
        soak_t0 = now_ns();
        for (long i = 0; i < O.readers; i++)
            churn_schedule(&R[i], soak_t0);
        sample_cpu(cpu0, &client0);
        writer_start(&W, O.events);
        run_until(all_acked, INT64_MAX);
        churning = false;
        run_until(all_complete, W.last_ack_ns + timeout_ns);
        sample_cpu(cpu1, &client1);
        sample_rss(rss1);
        progress(now_ns());
        for (long i = 0; i < nreaders; i++)
            reader_close(&R[i]);
        report(peer, wl, (double)(now_ns() - t0) / 1e9, connect_ms, -1, true, expected_total);
        return 0;
    }
    expect_upto(O.events);
    rewatch = true;
    sample_cpu(cpu0, &client0);
    writer_start(&W, O.events);
    run_until(all_acked, INT64_MAX);
    run_until(all_complete, W.last_ack_ns + timeout_ns);
    sample_cpu(cpu1, &client1);
    sample_rss(rss1);
    if (O.slow) /* give the server its budget to end the slow stream, if it has not yet */
        run_until(NULL, now_ns() + 3 * (int64_t)1000000000);
    report(peer, wl, (double)(now_ns() - t0) / 1e9, connect_ms, catchup_ms, true, expected_total);
    return 0;
}
