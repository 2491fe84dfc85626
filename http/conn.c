/*
 * MHD's connections, before any of them becomes a stream: the descriptor budget they share
 * with the streams (on_accept closes a connection past it and past the room kept for probes)
 * and the header deadline (a thread shuts down a connection that takes too long to bring in a
 * request). A connection's slot is its socket context; the server, its answers and TLS reach
 * the connection's state through the functions here.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "http_internal.h"

/* MHD's connections, counted for the budget below until they close or become streams, and
 * waiting on the header deadline while a request's header block is not in. The slot is the
 * connection's socket context: `counted` is touched by MHD's thread of the connection only,
 * the rest under hdr_mu. */
struct wc_http_conn_slot {
    wc_http *srv;
    bool counted;
    bool probe_only; /* opened past the budget, in the room kept for /healthz and /readyz */
    int fd;
    unsigned code; /* of the answer to the request in course (0: none yet), for its latency */
    bool waiting;  /* on the header deadline list */
    int64_t since; /* CLOCK_MONOTONIC ms: when the wait for headers began */
    struct wc_http_conn_slot *prev, *next;
};
typedef struct wc_http_conn_slot conn_slot;

/* The deadline list c waits on, and how long its connections may wait. */
static struct wc_http_hdr_list *hdr_list(wc_http *h, const conn_slot *c)
{
    return &h->hdr_lists[c->probe_only ? 1 : 0];
}

static int64_t hdr_timeout(const wc_http *h, int list)
{
    int64_t t = h->o.header_timeout_ms;
    return list == 1 && t > WC_HTTP_PROBE_HEADER_MS ? WC_HTTP_PROBE_HEADER_MS : t;
}

static void hdr_unlink(wc_http *h, conn_slot *c)
{
    if (!c->waiting)
        return;
    struct wc_http_hdr_list *l = hdr_list(h, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->waiting = false;
}

/* Starts (again) the wait for a request's headers on c: appended, so its list stays sorted. */
static void hdr_wait(wc_http *h, conn_slot *c)
{
    if (h->o.header_timeout_ms <= 0)
        return;
    pthread_mutex_lock(&h->hdr_mu);
    hdr_unlink(h, c);
    struct wc_http_hdr_list *l = hdr_list(h, c);
    c->since = wc_mono_ms();
    c->waiting = true;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    if (c == l->head)
        pthread_cond_signal(&h->hdr_cond);
    pthread_mutex_unlock(&h->hdr_mu);
}

/* MHD's connections and the open streams: what the descriptor budget counts. */
static size_t conns_open(wc_http *h)
{
    pthread_mutex_lock(&h->hook->mu);
    size_t streams = h->n_streams;
    pthread_mutex_unlock(&h->hook->mu);
    return atomic_load(&h->mhd_conns) + streams;
}

static conn_slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

bool wc_http_conn_probe_only(struct MHD_Connection *conn)
{
    conn_slot *c = slot_of(conn);
    return c && c->probe_only;
}

/* The answer's code, kept on the connection until its request is counted by observe(). */
void wc_http_conn_answered(struct MHD_Connection *conn, unsigned code)
{
    conn_slot *c = slot_of(conn);
    if (c)
        c->code = code;
}

wc_http *wc_http_conn_server(struct MHD_Connection *conn)
{
    conn_slot *c = conn ? slot_of(conn) : NULL;
    return c ? c->srv : NULL;
}

/* A request is in whole (its headers and any body), or answered before its body: it is
 * started, and its connection leaves the deadline list. A body that never comes is bounded by
 * the same deadline as headers that never come. */
void wc_http_conn_request_in(wc_http *h, wc_http_req *r)
{
    r->started = true;
    conn_slot *c = slot_of(r->conn);
    if (!c)
        return;
    pthread_mutex_lock(&h->hdr_mu);
    hdr_unlink(h, c);
    pthread_mutex_unlock(&h->hdr_mu);
}

/*
 * The header deadline's thread. MHD's own timeout counts from the last byte received, so a
 * client that trickles a byte now and then, or a request MHD cannot make sense of and waits on,
 * would hold its connection for ever; here a connection has header_timeout_ms from its start
 * (or its previous answer) to bring a request in whole (its headers, and a body if any). Its
 * socket is then shut down, and MHD, seeing the end of it, closes the connection. The fd cannot
 * be another's yet: MHD tells of the close (on_connection, which unlinks the slot under hdr_mu)
 * before it closes the socket.
 */
void *wc_http_conn_deadline_main(void *arg)
{
    wc_http *h = arg;
    pthread_mutex_lock(&h->hdr_mu);
    while (!h->hdr_stop) {
        int64_t now = wc_mono_ms(), until = INT64_MAX;
        for (int i = 0; i < 2; i++) {
            struct wc_http_hdr_list *l = &h->hdr_lists[i];
            int64_t timeout = hdr_timeout(h, i);
            while (l->head && l->head->since + timeout <= now) {
                conn_slot *c = l->head;
                hdr_unlink(h, c);
                shutdown(c->fd, SHUT_RDWR);
                atomic_fetch_add_explicit(&h->header_timeouts, 1, memory_order_relaxed);
            }
            if (l->head && l->head->since + timeout < until)
                until = l->head->since + timeout;
        }
        if (until == INT64_MAX) {
            pthread_cond_wait(&h->hdr_cond, &h->hdr_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = until - now + 1;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&h->hdr_cond, &h->hdr_mu, &ts);
    }
    pthread_mutex_unlock(&h->hdr_mu);
    return NULL;
}

void wc_http_conn_notify(wc_http *h, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_slot *c = calloc(1, sizeof(*c));
        if (c) {
            c->srv = h;
            c->counted = true;
            atomic_fetch_add(&h->mhd_conns, 1);
            c->probe_only = conns_open(h) > h->max_conns;
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            c->fd = ci ? ci->connect_fd : -1;
            if (c->fd >= 0)
                hdr_wait(h, c);
        }
        *socket_context = c;
        return;
    }
    conn_slot *c = *socket_context;
    if (c) {
        pthread_mutex_lock(&h->hdr_mu);
        hdr_unlink(h, c);
        pthread_mutex_unlock(&h->hdr_mu);
        if (c->counted)
            atomic_fetch_sub(&h->mhd_conns, 1);
    }
    free(c);
    *socket_context = NULL;
}

/* A connection answered its request in whole: it waits for its next one (keep-alive). */
void wc_http_conn_next_request(wc_http *h, struct MHD_Connection *conn)
{
    conn_slot *c = slot_of(conn);
    if (c && c->fd >= 0)
        hdr_wait(h, c);
}

/* The code of the answer to the request in course, once (0: none, or taken already). */
unsigned wc_http_conn_take_code(struct MHD_Connection *conn)
{
    conn_slot *c = slot_of(conn);
    if (!c)
        return 0;
    unsigned code = c->code;
    c->code = 0;
    return code;
}

/* A connection whose socket became a stream's leaves MHD's count. */
void wc_http_conn_uncount(wc_http *h, struct MHD_Connection *conn)
{
    conn_slot *c = slot_of(conn);
    if (c && c->counted) {
        c->counted = false;
        atomic_fetch_sub(&h->mhd_conns, 1);
    }
}

/* One budget of descriptors for MHD's connections and the streams it handed to the pumps
 * (MHD's own limit no longer sees those): a connection past it and past the room kept for
 * probes is closed at once, and the client retries, rather than the process running out of
 * descriptors. One in the room is only answered if it asks /healthz or /readyz (server.c). */
enum MHD_Result wc_http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    wc_http *h = cls;
    (void)addr;
    (void)addrlen;
    if (conns_open(h) < h->max_conns + WC_HTTP_PROBE_ROOM)
        return MHD_YES;
    atomic_fetch_add_explicit(&h->refused, 1, memory_order_relaxed);
    return MHD_NO;
}
