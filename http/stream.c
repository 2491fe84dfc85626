/*
 * Watch streams, sent by wcached's own pumps once libmicrohttpd has sent the headers.
 *
 * MHD parses the request and sends the response headers of a watch; the first time it asks
 * the stream's content reader for body bytes (the headers are on the wire by then), the
 * reader takes a duplicate of the socket and tells MHD the response is over. MHD frees its
 * connection and its memory pool, closes its descriptor (MHD_USE_TURBO: without a shutdown()
 * that would end our half too) and calls on_completed, which hands the stream to one of the
 * server's pumps. From then on a stream is its watcher, a socket and a few words of state:
 *
 *   producer thread                          pump thread (one per --http-threads)
 *   watcher has something: wake() marks  ->  epoll_wait wakes on the pump's eventfd, which
 *   the stream on its pump's list;           after_dispatch poked once per change; takes the
 *   after_dispatch pokes each pump with      marked list and, for each stream, reads the
 *   marks, once per published change         watcher into the pump's scratch buffer, frames
 *                                            it as one HTTP chunk and send()s it
 *
 * A pump of a few streams (SEND_HERE_MAX) that sleeps when a change is published is not woken:
 * the publishing thread runs its round itself (send_here), holding the pump's run lock, which
 * the pump holds for its own rounds; a replica's or a sidecar's readers get the change with no
 * thread wake in between.
 *
 * A stream sent events at a wake cools for coalesce_ms: a wake meanwhile leaves it marked but
 * held off the list (later wakes cost nothing), and when it is due it is sent everything its
 * watcher gathered, in one chunk. A sleeping pump whose own wait ends before the stream is due
 * is not woken for that mark at all: it takes every mark whenever it wakes (asleep_until). A busy
 * reader thus gets several events per send; a reader woken after a quiet spell is sent at once. The
 * cooling list is in due order, as rounds are. A body whose ops say `at_once` (an etcd API watch,
 * read by programs and tiers) never cools.
 *
 * An idle stream holds no buffer: bytes are only kept per stream when the socket took part of
 * a send (pending, until EPOLLOUT). A stream whose socket is full reads nothing more from its
 * watcher, so the cacher sees it lag and ends it after the slow-reader budget. Its watcher then
 * yields only the rest of the revision already begun on the wire (a transaction is never cut),
 * which the stream sends, with the body's end, if its reader takes them within TAIL_GRACE_MS;
 * else it is cut off (a reset). Either way its reader resumes from its last resourceVersion. The
 * same epoll set tells the pump of readers that hang up (EPOLLRDHUP, or a read of 0), so no stream
 * outlives its reader.
 *
 * Over HTTPS the stream takes, with the socket, the sending half of the connection's TLS session
 * (tls.c): the pump seals each chunk, and the body's end with a close_notify, as TLS records in a
 * buffer of its own, then sends them as it sends plain chunks, pending bytes included; the
 * reader's bytes are dropped unopened. An etcd watch whose body stays open takes the sending half
 * at the body's first piece, while MHD goes on opening the body's records with the receiving half
 * (a TLS 1.3 KeyUpdate that asks for an answer, which no client we know sends unprompted, would
 * have GnuTLS answer with the half it gave away: the reader would see a record it cannot open and
 * reconnect). So the path, the rounds and the memory of an idle stream are those of plain HTTP,
 * plus an AEAD key.
 *
 * Pump 0 also calls wc_cacher_tick() once a second (timeouts, bookmarks, slow readers), and
 * gives the heap back to the system after a crowd of readers left (wc_http_trim_due).
 * A stream is freed only by its pump, at the end of a round, after its descriptor left the
 * epoll set and its watcher was closed (no wake can name it after wc_watcher_free returns).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>
#include <utlist.h>

#include "http_internal.h"
#include "table.h"
#include "wcached/log.h"

#define TICK_MS 1000
#define SCRATCH (64 * 1024)      /* one chunk's payload at most */
#define CHUNK_HDR 8              /* room for "%zx\r\n" of a payload below 16 MiB */
#define ROUND_BYTES (256 * 1024) /* what one stream may send per round before others go */
#define MAX_EVENTS 256
/* How long a stream ended for lagging may take to accept the end of the revision it has begun
 * before it is cut off anyway. */
#define TAIL_GRACE_MS 5000
/* TLS streams started since the heap was last trimmed that make it worth trimming again. */
#define TRIM_AFTER 32
/* Connections that must have left since the peak before the heap is trimmed. */
#define TRIM_MIN_LEFT 64
/* Streams opened since the last trim that make a settled storm worth trimming after. */
#define TRIM_AFTER_OPENS 256
/* Ticks a due trim waits at most for one in which no stream sent. */
#define TRIM_WAIT_TICKS 30
/* Streams a pump takes before the next pump gets any (wc_http_pick_pump): an event for a few
 * readers then wakes one thread, not every pump (a wake, on the machines measured, costs about
 * what sending the event to a few dozen readers does). One pump sends to its streams one after
 * the other, so the last of n gets an event about n * 8 us after the first (W7's B, 25 readers
 * each on one pump: p99 +0.2 ms); 16 keeps that near 0.1 ms, and past it the pumps share the
 * streams. */
#define PUMP_PACK 16
/* A pump holding at most this many streams may have its round run by the thread that published
 * the change (after_dispatch), when the pump is idle: a replica's or a sidecar's few readers
 * then get an event without a thread wake in between (the wake, a context switch on each side,
 * was the larger part of a replica's cost per change). More streams than this wait for their
 * pump, so that the publishing thread (the upstream's) is never held up long. */
#define SEND_HERE_MAX PUMP_PACK

static const char CHUNK_END[] = "0\r\n\r\n";
static const char CLOSE_NOTIFY[] = {1, 0}; /* alert: warning, close_notify */
#define SEALED (wc_http_tls_sealed_max(SCRATCH + CHUNK_HDR + 2) + wc_http_tls_sealed_max(2))

struct wc_http_pump {
    wc_http *srv;
    unsigned id;
    pthread_t thread;
    bool started;
    int epfd;    /* stream sockets (EPOLLIN|EPOLLOUT|EPOLLRDHUP, edge triggered) and wake_fd */
    int wake_fd; /* eventfd: marks to take, stopping, or quit */
    /* Held by whichever thread runs a round of this pump: the pump's own, between two
     * epoll_waits, or one that publishes a change while the pump is idle (send_here). Guards
     * the (r) fields and every (p) field of its streams. */
    pthread_mutex_t run;
    bool run_init;
    char *scratch; /* (r) SCRATCH + CHUNK_HDR + 2 bytes */
    char *sealed;  /* (r) SEALED bytes: a chunk and a close_notify as TLS records */
    /* (h): guarded by hook->mu */
    wc_http_pump *hook_next; /* hook->pumps */
    wc_http_stream *marked;  /* streams woken since the last take, through mark_next */
    wc_http_stream *streams; /* every stream handed to this pump (utlist DL) */
    size_t n_streams;        /* how many */
    bool poked;              /* wake_fd written since the last take */
    /* While the pump sleeps in epoll_wait: when that wait ends at the latest (ms); 0 while it is
     * awake. A mark for a stream still cooling until then or later needs no wake: the pump takes
     * every mark whenever it wakes. `urgent`: a mark since the last take needs one. */
    int64_t asleep_until;
    bool urgent;
    bool quit; /* the pump thread is to end; attaches are refused */
    /* (r) */
    wc_http_stream *lingering; /* streams with a cut_at, through linger_next */
    wc_http_stream *cooling;   /* streams with a cool_until, oldest first (utlist DL) */
    wc_http_stream *again;     /* streams that used up a round's budget (through work_next) */
    /* Streams a round on another thread ended: freed by the pump's next round, after the
     * epoll_wait that may still name them (through work_next). */
    wc_http_stream *late;
};

/* ---------------------------------------------------------------------------------------
 * The hook: marks and pokes
 * ------------------------------------------------------------------------------------- */

wc_http_hook *wc_http_hook_new(void)
{
    wc_http_hook *hk = calloc(1, sizeof(*hk));
    if (!hk)
        return NULL;
    pthread_mutex_init(&hk->mu, NULL);
    return hk;
}

void wc_http_hook_free(wc_http_hook *hk)
{
    if (!hk)
        return;
    pthread_mutex_destroy(&hk->mu);
    free(hk);
}

/* Writes the pump's eventfd once until its next take. Holds hk->mu: an eventfd write never
 * blocks, and holding the lock keeps the fd open (pumps close it only after unregistering). */
static void poke_locked(wc_http_pump *p)
{
    if (p->poked)
        return;
    p->poked = true;
    uint64_t one = 1;
    ssize_t wr = write(p->wake_fd, &one, sizeof(one));
    (void)wr; /* EAGAIN: the counter is full, so the pump is to wake anyway */
}

static bool send_here(wc_http_pump *p);

void wc_http_after_dispatch(void *arg)
{
    wc_http_hook *hk = arg;
    wc_http_pump *here = NULL;
    pthread_mutex_lock(&hk->mu);
    for (wc_http_pump *p = hk->pumps; p; p = p->hook_next) {
        if (!p->urgent) /* no marks, or only for streams cooling past the pump's own wake */
            continue;
        /* One idle pump of a few streams is sent for here (its run lock taken while it is
         * registered, so it cannot be stopped and freed meanwhile); any other is woken, and
         * sends at the same time on its own thread. */
        if (!here && !p->poked && !p->quit && p->n_streams <= SEND_HERE_MAX &&
            pthread_mutex_trylock(&p->run) == 0)
            here = p;
        else
            poke_locked(p);
    }
    pthread_mutex_unlock(&hk->mu);
    if (here && !send_here(here)) {
        pthread_mutex_lock(&hk->mu);
        poke_locked(here);
        pthread_mutex_unlock(&hk->mu);
    }
}

/* A mark for s needs its pump woken before the pump wakes by itself. Holds hk->mu. */
static bool urgent_locked(const wc_http_pump *p, const wc_http_stream *s)
{
    int64_t due = atomic_load_explicit(&s->due, memory_order_relaxed);
    return !p->asleep_until || !due || due < p->asleep_until;
}

/* Puts s on its pump's marked list. Holds hk->mu. */
static void mark_locked(wc_http_stream *s)
{
    if (s->marked || !s->pump || s->finished)
        return;
    s->marked = true;
    s->mark_next = s->pump->marked;
    s->pump->marked = s;
    if (urgent_locked(s->pump, s))
        s->pump->urgent = true;
}

void wc_http_stream_wake(void *arg)
{
    wc_http_stream *s = arg;
    wc_http_hook *hk = s->srv->hook;
    /* Before the handoff nobody reads the watcher; the handoff marks the stream itself. */
    pthread_mutex_lock(&hk->mu);
    mark_locked(s);
    pthread_mutex_unlock(&hk->mu);
}

/* ---------------------------------------------------------------------------------------
 * The stream, on MHD's side
 * ------------------------------------------------------------------------------------- */

wc_http_stream *wc_http_stream_new(wc_http *h)
{
    wc_http_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->tag = WC_HTTP_TAG_STREAM;
    s->srv = h;
    s->fd = -1;
    return s;
}

/* A reader's open watches, for max_watches_per_user. */
typedef struct wc_http_watcher_count {
    char *user;
    unsigned n;
    UT_hash_handle hh;
} wc_http_watcher_count;

int wc_http_stream_admit(wc_http *h, wc_http_stream *s, const char *user)
{
    wc_http_hook *hk = h->hook;
    int rc = 0;
    pthread_mutex_lock(&hk->mu);
    wc_http_watcher_count *c = NULL;
    HASH_FIND_STR(h->watch_users, user, c);
    if ((h->o.max_watches && h->n_watches >= h->o.max_watches) ||
        (h->o.max_watches_per_user && c && c->n >= h->o.max_watches_per_user)) {
        rc = WC_ETOOBIG;
    } else if (!c) {
        c = calloc(1, sizeof(*c));
        if (c)
            c->user = strdup(user);
        if (!c || !c->user) {
            free(c);
            c = NULL;
            rc = WC_ENOMEM;
        } else {
            HASH_ADD_KEYPTR(hh, h->watch_users, c->user, strlen(c->user), c);
        }
    }
    if (rc == 0) {
        c->n++;
        h->n_watches++;
        s->counted = c;
    }
    pthread_mutex_unlock(&hk->mu);
    if (rc == WC_ETOOBIG)
        atomic_fetch_add_explicit(&h->watches_refused, 1, memory_order_relaxed);
    return rc;
}

/* The stream's watch leaves the bounds' counts. */
static void unadmit(wc_http_stream *s)
{
    wc_http *h = s->srv;
    pthread_mutex_lock(&h->hook->mu);
    wc_http_watcher_count *c = s->counted;
    s->counted = NULL;
    h->n_watches--;
    if (--c->n == 0) {
        HASH_DEL(h->watch_users, c);
        free(c->user);
        free(c);
    }
    pthread_mutex_unlock(&h->hook->mu);
}

/* Frees a stream nobody else can see any more; NULL is allowed. */
void wc_http_stream_free(wc_http_stream *s)
{
    if (!s)
        return;
    if (s->counted)
        unadmit(s);
    if (s->w)
        wc_watcher_free(s->w);
    if (s->body) {
        s->body_ops->close(s->body);
        s->body_ops->free(s->body);
    }
    if (s->fd >= 0)
        close(s->fd);
    wc_http_tls_tx_free(s->tls);
    free(s->head);
    free(s->pre);
    free(s->out);
    wc_http_table_watch_free(s->table);
    free(s);
}

void wc_http_stream_opened(wc_http_stream *s, struct MHD_Connection *conn, bool chunked)
{
    wc_http *h = s->srv;
    s->conn = conn;
    s->chunked = chunked;
    pthread_mutex_lock(&h->hook->mu);
    h->n_streams++;
    pthread_mutex_unlock(&h->hook->mu);
    atomic_fetch_add_explicit(&h->streams_opened, 1, memory_order_relaxed);
}

/* HTTPS: takes the sending half of conn's TLS session with the socket (none over plain HTTP).
 * False, with the socket closed, when it cannot. */
static bool take_tls(wc_http_stream *s, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ti =
        s->fd >= 0 ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    if (!ti || !ti->tls_session || s->tls)
        return true;
    int rc = wc_http_tls_tx_take(ti->tls_session, &s->tls);
    atomic_fetch_add_explicit(&s->srv->tls_streams, 1, memory_order_relaxed);
    if (rc == 0)
        return true;
    wc_log(WC_LOG_WARN, "http: a watch stream could not take its TLS session: %s", wc_strerror(rc));
    close(s->fd); /* ends with its connection */
    s->fd = -1;
    return false;
}

ssize_t wc_http_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    wc_http_stream *s = cls;
    (void)pos;
    (void)buf;
    (void)max;
    /* The headers are sent: take the socket. MHD ends its side without a byte more (no chunk
     * terminator on an error end) and calls on_completed, which hands s to a pump. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && s->fd < 0) {
        s->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
        if (s->fd < 0)
            wc_log(WC_LOG_WARN, "http: a watch stream could not take its socket: %s",
                   strerror(errno));
    }
    /* HTTPS: the session's sending half too. MHD, ending its side, sends nothing more on it:
     * with MHD_USE_TURBO, libmicrohttpd 0.9.75 closes a connection without gnutls_bye or
     * shutdown() (MHD_connection_mark_closed_), and its timeout sweep closes the same way. */
    take_tls(s, s->conn);
    /* MHD leaves a connection closed this way for its timeout sweep to collect, and until it
     * does, its descriptor keeps our socket from closing when the stream ends. A connection
     * with a timeout of its own is looked at on every turn of MHD's loop, and MHD's loop
     * wakes for the earliest such timeout: within a second, or at once when busy. */
    MHD_set_connection_option(s->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* One stream fewer; frees it. Called without hook->mu. */
static void stream_gone(wc_http_stream *s)
{
    wc_http *h = s->srv;
    pthread_mutex_lock(&h->hook->mu);
    h->n_streams--;
    pthread_mutex_unlock(&h->hook->mu);
    wc_http_stream_free(s);
}

/* Hands s (its socket taken) to a pump; false when no pump takes it. */
static bool attach(wc_http_stream *s);

void wc_http_stream_completed(wc_http_stream *s)
{
    if (s->fd < 0) { /* ended before any body byte (HEAD, a reader that left, an MHD error) */
        stream_gone(s);
        return;
    }
    s->conn = NULL;
    if (!attach(s))
        stream_gone(s);
}

int wc_http_stream_take(wc_http_stream *s, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return WC_EIO;
    s->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0)
        return WC_EIO;
    /* HTTPS: MHD goes on reading the body through the session's receiving half, and sends
     * nothing more on it (it has sent any 100 Continue; it ends its side as in
     * wc_http_stream_read): the sending half is the stream's. */
    if (!take_tls(s, conn))
        return WC_EIO;
    if (!attach(s)) {
        close(s->fd);
        s->fd = -1;
        return WC_EIO;
    }
    return 0;
}

void wc_http_stream_poke(wc_http_stream *s)
{
    wc_http_hook *hk = s->srv->hook;
    pthread_mutex_lock(&hk->mu);
    mark_locked(s);
    if (s->pump)
        poke_locked(s->pump);
    pthread_mutex_unlock(&hk->mu);
}

void wc_http_stream_mhd_done(wc_http_stream *s)
{
    wc_http_hook *hk = s->srv->hook;
    pthread_mutex_lock(&hk->mu);
    s->mhd_reads = false;
    bool attached = s->pump != NULL, last = s->pump_done;
    if (attached && !last) {
        mark_locked(s); /* the pump may read the socket now: let it look */
        poke_locked(s->pump);
    }
    pthread_mutex_unlock(&hk->mu);
    if (last)
        wc_http_stream_free(s); /* its pump finished it (and counted it out) already */
    else if (!attached)
        stream_gone(s);
}

static bool attach(wc_http_stream *s)
{
    wc_http *h = s->srv;
    int fl = fcntl(s->fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
    int one = 1, zero = 0;
    /* MHD may have corked the headers, waiting for a body it will never send. */
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));

    wc_http_hook *hk = h->hook;
    pthread_mutex_lock(&hk->mu);
    size_t counts[WC_HTTP_THREADS_MAX]; /* a pump per thread, at most */
    unsigned n = h->n_pumps;
    for (unsigned i = 0; i < n; i++)
        counts[i] = h->pumps[i]->n_streams;
    wc_http_pump *p = h->pumps[wc_http_pick_pump(counts, n, PUMP_PACK)];
    bool ok = !p->quit;
    if (ok) {
        /* Under the lock, so that the pump cannot take, end and free s before it is in the
         * epoll set; the first round then reads whatever the watcher already holds. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = s};
        ok = epoll_ctl(p->epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0;
    }
    if (ok) {
        s->pump = p;
        DL_APPEND2(p->streams, s, prev, next);
        p->n_streams++;
        mark_locked(s);
        poke_locked(p);
    }
    pthread_mutex_unlock(&hk->mu);
    return ok;
}

/* ---------------------------------------------------------------------------------------
 * The stream, on its pump
 * ------------------------------------------------------------------------------------- */

/* The server ended a stream: worth a line when the reader did not ask for it. */
static void log_end(wc_http_stream *s)
{
    wc_end_reason r = wc_watcher_end_reason(s->w);
    wc_log_level lvl =
        (r == WC_END_SLOW || r == WC_END_EXPIRED || r == WC_END_RESET) ? WC_LOG_INFO : WC_LOG_DEBUG;
    if (wc_log_enabled(lvl))
        wc_log(lvl, "http: watch stream ended at resourceVersion %" PRId64 ": %s%s",
               wc_watcher_rv(s->w), wc_end_reason_text(r),
               s->blocked ? " (cut off: its socket was full)" : "");
}

/* Ends s on its pump: out of the epoll set, watcher closed, off every list; freed by the
 * caller at the end of the round. */
static void finish(wc_http_pump *p, wc_http_stream *s, wc_http_stream **grave)
{
    wc_http *h = p->srv;
    wc_http_hook *hk = h->hook;
    if (s->closed)
        return;
    s->closed = true;
    if (s->cut_at) {
        wc_http_stream **pp = &p->lingering;
        while (*pp != s)
            pp = &(*pp)->linger_next;
        *pp = s->linger_next;
    }
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->w) {
        wc_watcher_free(s->w); /* no wake names s after this */
        s->w = NULL;
    }
    if (s->body)
        s->body_ops->close(s->body); /* the same for what it reads */
    pthread_mutex_lock(&hk->mu);
    bool mhd_reads = s->mhd_reads;
    pthread_mutex_unlock(&hk->mu);
    if (mhd_reads)
        shutdown(s->fd, SHUT_RDWR); /* MHD, reading the body, sees the end and lets go */
    close(s->fd);
    s->fd = -1;
    if (s->cool_until) {
        DL_DELETE2(p->cooling, s, cool_prev, cool_next);
        s->cool_until = 0;
    }
    pthread_mutex_lock(&hk->mu);
    atomic_store_explicit(&s->due, 0, memory_order_relaxed);
    if (s->marked && !s->held) { /* woken after this round's take */
        wc_http_stream **pp = &p->marked;
        while (*pp != s)
            pp = &(*pp)->mark_next;
        *pp = s->mark_next;
    }
    s->marked = s->held = false;
    s->finished = true;
    DL_DELETE2(p->streams, s, prev, next);
    p->n_streams--;
    h->n_streams--;
    pthread_mutex_unlock(&hk->mu);
    s->work_next = *grave;
    *grave = s;
}

/* Sends what is pending. 1: all sent; 0: the socket is full (EPOLLOUT resumes); -1: the
 * reader is gone. */
static int flush_out(wc_http *h, wc_http_stream *s, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(s->fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Keep the rest; it is the only per-stream copy, and only of a blocked stream. */
            char *rest = malloc(len - off);
            if (!rest)
                return -1;
            memcpy(rest, p + off, len - off);
            free(s->out);
            s->out = rest;
            s->out_len = len - off;
            s->blocked = true;
            return 0;
        }
        return -1;
    }
    atomic_fetch_add_explicit(&h->sends, 1, memory_order_relaxed);
    return 1;
}

/*
 * Fills the pump's scratch with the next chunk of s: payload at scratch + CHUNK_HDR, framed in
 * place. Returns the framed bytes (in *start), 0 when the watcher has nothing now, or -1 when
 * the stream's body is over (the terminator, if any, is in *start with its length in *len).
 */
static int next_chunk(wc_http_pump *p, wc_http_stream *s, const char **start, size_t *len)
{
    char *data = p->scratch + CHUNK_HDR;
    size_t n = 0;
    bool eof = false;
    if (s->head_off < s->head_len) { /* before the body: not a chunk */
        n = s->head_len - s->head_off;
        if (n > SCRATCH)
            n = SCRATCH;
        memcpy(data, s->head + s->head_off, n);
        s->head_off += n;
        *start = data;
        *len = n;
        return 1;
    }
    if (s->pre_off < s->pre_len) {
        n = s->pre_len - s->pre_off;
        if (n > SCRATCH)
            n = SCRATCH;
        memcpy(data, s->pre + s->pre_off, n);
        s->pre_off += n;
    } else if ((!s->w && !s->body) || atomic_load(&p->srv->stopping) ||
               (s->tls && wc_http_tls_tx_worn(s->tls, SCRATCH + CHUNK_HDR + 2))) {
        eof = true;
    } else {
        int rc = s->body    ? s->body_ops->read(s->body, data, SCRATCH, &n)
                 : s->table ? wc_http_table_watch_read(s->table, s->w, data, SCRATCH, &n)
                            : wc_watcher_read(s->w, data, SCRATCH, &n);
        if (rc == WC_EAGAIN)
            return 0;
        if (rc != 0) {
            if (rc == WC_EOF && s->w)
                log_end(s);
            eof = true; /* WC_ENOMEM too: end the stream rather than skip an event */
        }
    }
    if (eof) {
        *start = CHUNK_END;
        *len = s->chunked ? sizeof(CHUNK_END) - 1 : 0;
        return -1;
    }
    if (!s->chunked) {
        *start = data;
        *len = n;
        return 1;
    }
    char hdr[CHUNK_HDR + 1];
    int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
    memcpy(data - hl, hdr, (size_t)hl);
    memcpy(data + n, "\r\n", 2);
    *start = data - hl;
    *len = (size_t)hl + n + 2;
    return 1;
}

/* Over TLS: seals the framed bytes at *start (and, at the body's end, a close_notify) into the
 * pump's buffer as records, and points *start there. False when sealing failed. */
static bool seal(wc_http_pump *p, wc_http_stream *s, const char **start, size_t *len, bool end)
{
    ssize_t n = 0, k = 0;
    if (*len)
        n = wc_http_tls_seal(s->tls, WC_HTTP_TLS_DATA, *start, *len, p->sealed);
    if (n >= 0 && end)
        k = wc_http_tls_seal(s->tls, WC_HTTP_TLS_ALERT, CLOSE_NOTIFY, sizeof(CLOSE_NOTIFY),
                             p->sealed + n);
    if (n < 0 || k < 0)
        return false;
    *start = p->sealed;
    *len = (size_t)(n + k);
    return true;
}

/* Discards what the reader sends (nothing is expected after a watch request); notices EOF.
 * A reader that sends more than a little is not waiting for its stream: it is let go. */
static bool reader_left(wc_http_stream *s)
{
    wc_http_hook *hk = s->srv->hook;
    pthread_mutex_lock(&hk->mu);
    bool mhd_reads = s->mhd_reads;
    pthread_mutex_unlock(&hk->mu);
    if (mhd_reads)
        return false; /* the bytes are the request body MHD is reading */
    char sink[4096];
    size_t taken = 0;
    for (;;) {
        ssize_t k = recv(s->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (k > 0) {
            taken += (size_t)k;
            if (taken > 16 * sizeof(sink))
                return true;
            continue;
        }
        if (k == 0)
            return true;
        if (errno == EINTR)
            continue;
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

/* Moves s forward as far as its socket and the round's budget allow. True when it still has
 * bytes to send this round (the caller gives it another turn). */
static bool pump_stream(wc_http_pump *p, wc_http_stream *s, wc_http_stream **grave)
{
    wc_http *h = p->srv;
    if (s->closed)
        return false;
    if (s->gone) {
        atomic_fetch_add_explicit(&h->hangups, 1, memory_order_relaxed);
        finish(p, s, grave);
        return false;
    }
    if (s->blocked) {
        /* A full socket: wait for EPOLLOUT. A watcher ended for lagging (too slow, or out of
         * the ring) has only the end of the revision its reader has begun left to send (a
         * transaction is never cut), and the end of the body; a reader that does not take them
         * within the grace is cut off. Any other end (timeoutSeconds, a reset, shutdown) is
         * sent when the socket takes it. */
        if (!s->cut_at) {
            bool lagged = false;
            if (s->w && wc_watcher_ended(s->w)) {
                wc_end_reason r = wc_watcher_end_reason(s->w);
                lagged = r == WC_END_SLOW || r == WC_END_EXPIRED;
            } else if (s->body) {
                lagged = s->body_ops->lagged(s->body);
            }
            if (lagged) {
                s->cut_at = wc_mono_ms() + TAIL_GRACE_MS;
                s->linger_next = p->lingering;
                p->lingering = s;
            }
        } else if (wc_mono_ms() >= s->cut_at) {
            /* A reset: a FIN would wait behind the bytes the reader does not take, so the
             * kernel would keep them, and the reader would not learn that its stream is over,
             * for as long as it reads slowly. It resumes from its last resourceVersion. */
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            if (s->w)
                log_end(s);
            else
                wc_log(WC_LOG_INFO, "http: etcd watch stream cut off: its socket stayed full");
            finish(p, s, grave);
        }
        return false;
    }
    size_t sent = 0;
    for (;;) {
        /* What a full socket left over first; then, unless the body is over or the round's
         * share is used, the next chunk. */
        char *own = NULL;
        const char *start;
        size_t len;
        if (s->out) {
            start = own = s->out;
            len = s->out_len;
            s->out = NULL;
            s->out_len = 0;
        } else if (s->ending) {
            finish(p, s, grave);
            return false;
        } else if (sent >= ROUND_BYTES) {
            return true;
        } else {
            int c = next_chunk(p, s, &start, &len);
            if (c == 0)
                return false;
            if (c < 0)
                s->ending = true;
            else
                s->fed = true;
            if (s->tls && !seal(p, s, &start, &len, c < 0)) {
                finish(p, s, grave);
                return false;
            }
        }
        int r = len ? flush_out(h, s, start, len) : 1;
        free(own);
        if (r < 0) {
            finish(p, s, grave);
            return false;
        }
        if (r == 0)
            return false;
        sent += len;
    }
}

/* s was sent events: its next wake waits until `until`, so that what comes meanwhile goes out
 * in one send. Appended: the list stays in cool_until order, as rounds come in time order. */
static void cool(wc_http_pump *p, wc_http_stream *s, int64_t until)
{
    if (s->cool_until)
        DL_DELETE2(p->cooling, s, cool_prev, cool_next);
    s->cool_until = until;
    DL_APPEND2(p->cooling, s, cool_prev, cool_next);
    atomic_store_explicit(&s->due, until, memory_order_relaxed); /* see wc_http_stream.due */
}

/* Adds s to this round's work once. */
static void work_add(wc_http_stream **work, wc_http_stream *s)
{
    if (s->queued)
        return;
    s->queued = true;
    s->work_next = *work;
    *work = s;
}

bool wc_http_trim_due(size_t *peak, size_t now)
{
    if (now > *peak)
        *peak = now;
    if (*peak - now < TRIM_MIN_LEFT || now > *peak / 2)
        return false;
    *peak = now;
    return true;
}

bool wc_http_trim_after_storm(uint64_t *at_trim, uint64_t *last_tick, uint64_t opened)
{
    bool settled = opened == *last_tick;
    *last_tick = opened;
    if (!settled || opened - *at_trim < TRIM_AFTER_OPENS)
        return false;
    *at_trim = opened;
    return true;
}

unsigned wc_http_pick_pump(const size_t *streams, unsigned n, size_t pack)
{
    unsigned best = 0;
    for (unsigned i = 0; i < n; i++) {
        if (streams[i] < pack)
            return i;
        if (streams[i] < streams[best])
            best = i;
    }
    return best;
}

bool wc_http_trim_now(wc_http_trim_wait *w, bool due, uint64_t sends)
{
    bool quiet = sends == w->sends;
    w->sends = sends;
    if (due)
        w->pending = true;
    if (!w->pending || (!quiet && ++w->waited < TRIM_WAIT_TICKS))
        return false;
    w->pending = false;
    w->waited = 0;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Rounds
 * ------------------------------------------------------------------------------------- */

/* Moves each stream of `work` forward; one with more to send goes on *again, an ended one on
 * *grave. Holds p->run. */
static void run_work(wc_http_pump *p, wc_http_stream *work, bool quit, wc_http_stream **again,
                     wc_http_stream **grave)
{
    wc_http *h = p->srv;
    for (wc_http_stream *s = work, *next; s; s = next) {
        next = s->work_next;
        s->queued = false;
        if (quit) {
            finish(p, s, grave);
            continue;
        }
        s->fed = false;
        if (pump_stream(p, s, grave)) {
            s->work_next = *again;
            *again = s;
        }
        if (s->fed && !s->closed && h->o.coalesce_ms > 0 && !(s->body && s->body_ops->at_once))
            cool(p, s, wc_mono_ms() + h->o.coalesce_ms); /* from its send: a busy pump, whose
                                                             rounds are long, then gathers
                                                             more per send */
    }
}

/* Frees the ended streams: nothing names them any more (out of the epoll set, off the lists),
 * but an etcd watch whose body MHD still reads is freed by MHD's on_completed. */
static void bury(wc_http_hook *hk, wc_http_stream *grave)
{
    while (grave) {
        wc_http_stream *next = grave->work_next;
        pthread_mutex_lock(&hk->mu);
        bool mhd_holds = grave->mhd_reads;
        grave->pump_done = true;
        pthread_mutex_unlock(&hk->mu);
        if (!mhd_holds)
            wc_http_stream_free(grave);
        grave = next;
    }
}

/* A round of p on the thread that published a change, p->run held (and released here): the
 * marked streams are sent what their watchers hold. False when p is to be woken instead (it
 * was poked meanwhile, or is stopping). What this round cannot finish is left to the pump: a
 * stream with more to send is marked again, and a lingering one sets the pump's timeout, so
 * either wakes it; ended streams wait on p->late for the pump's next round. */
static bool send_here(wc_http_pump *p)
{
    wc_http *h = p->srv;
    wc_http_hook *hk = h->hook;
    wc_http_stream *work = NULL, *grave = NULL;
    pthread_mutex_lock(&hk->mu);
    bool go = !p->poked && !p->quit && !p->again && !atomic_load(&h->stopping);
    if (go) {
        /* A stream still cooling stays marked, for the pump to hold until it is due. */
        int64_t now = wc_mono_ms();
        wc_http_stream *m = p->marked, **keep = &p->marked;
        for (wc_http_stream *next; m; m = next) {
            next = m->mark_next;
            if (m->cool_until > now) {
                *keep = m;
                keep = &m->mark_next;
                continue;
            }
            if (m->cool_until) {
                DL_DELETE2(p->cooling, m, cool_prev, cool_next);
                m->cool_until = 0;
                atomic_store_explicit(&m->due, 0, memory_order_relaxed);
            }
            m->marked = false;
            work_add(&work, m);
        }
        *keep = NULL;
        p->urgent = false;
        for (m = p->marked; m; m = m->mark_next)
            if (urgent_locked(p, m))
                p->urgent = true;
    }
    pthread_mutex_unlock(&hk->mu);
    if (!go) { /* the pump is busy or stopping: its next round takes the marks */
        pthread_mutex_unlock(&p->run);
        return false;
    }
    atomic_fetch_add_explicit(&h->rounds_here, 1, memory_order_relaxed);
    wc_http_stream *lingering = p->lingering;
    run_work(p, work, false, &p->again, &grave);
    while (grave) {
        wc_http_stream *next = grave->work_next;
        grave->work_next = p->late;
        p->late = grave;
        grave = next;
    }
    bool wake = p->lingering != lingering || p->again;
    pthread_mutex_lock(&hk->mu);
    if (p->urgent || wake)
        poke_locked(p);
    pthread_mutex_unlock(&hk->mu);
    pthread_mutex_unlock(&p->run);
    return true;
}

/* glibc keeps freed heap for reuse, in every thread's arena: the connections and streams of a
 * thousand readers leave megabytes behind them when they go, which a sidecar should give back
 * (R3 in docs/RELIABILITY.md). Pump 0 checks once a tick; a steady churn of readers never halves
 * the count, so a trim (a walk of the free lists) stays rare. True when a trim is due. */
static bool crowd_left(wc_http *h, size_t *peak)
{
    pthread_mutex_lock(&h->hook->mu);
    size_t n = h->n_streams;
    pthread_mutex_unlock(&h->hook->mu);
    n += atomic_load(&h->mhd_conns);
    return wc_http_trim_due(peak, n);
}

static void *pump_main(void *arg)
{
    wc_http_pump *p = arg;
    wc_http *h = p->srv;
    wc_http_hook *hk = h->hook;
    int64_t next_tick = wc_mono_ms() + TICK_MS;
    uint_fast64_t trimmed_at = 0;                    /* h->tls_streams at the last trim */
    uint64_t opened_at_trim = 0, opened_at_tick = 0; /* h->streams_opened then */
    size_t trim_peak = 0;              /* pump 0: the most connections since the last trim */
    wc_http_trim_wait trim_wait = {0}; /* pump 0: a trim due, waiting for a quiet tick */
    bool swept = false;                /* every stream was visited once after `stopping` */
    struct epoll_event evs[MAX_EVENTS];
    pthread_mutex_lock(&p->run);
    for (;;) {
        int64_t now = wc_mono_ms();
        int timeout;
        if (p->again) {
            timeout = 0;
        } else {
            int64_t until = p->id == 0 ? next_tick : now + TICK_MS;
            if (p->cooling && p->cooling->cool_until < until)
                until = p->cooling->cool_until;
            for (wc_http_stream *s = p->lingering; s; s = s->linger_next)
                if (s->cut_at < until)
                    until = s->cut_at;
            timeout = until <= now ? 0 : (int)(until - now);
        }
        pthread_mutex_lock(&hk->mu);
        p->asleep_until = timeout > 0 ? now + timeout : 0;
        pthread_mutex_unlock(&hk->mu);
        pthread_mutex_unlock(&p->run); /* while it waits, a publisher may run its rounds */
        int n = epoll_wait(p->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0)
            n = 0;
        pthread_mutex_lock(&p->run);
        wc_http_stream *work = NULL, *grave = p->late;
        p->late = NULL;
        bool poked = false;
        for (wc_http_stream *s = p->again, *next; s; s = next) {
            next = s->work_next;
            s->queued = false;
            work_add(&work, s);
        }
        p->again = NULL;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == p) {
                uint64_t v;
                ssize_t rd = read(p->wake_fd, &v, sizeof(v));
                (void)rd;
                poked = true;
                continue;
            }
            wc_http_stream *s = evs[i].data.ptr;
            if (s->closed) /* ended by a round on another thread since the wait returned */
                continue;
            uint32_t e = evs[i].events;
            if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                s->gone = true;
            else if ((e & EPOLLIN) && reader_left(s))
                s->gone = true;
            if (e & EPOLLOUT)
                s->blocked = false;
            if (s->gone || (e & EPOLLOUT))
                work_add(&work, s);
        }
        bool stopping = atomic_load(&h->stopping);
        int64_t now_ms = wc_mono_ms();
        pthread_mutex_lock(&hk->mu);
        /* Cooled down: a stream woken meanwhile is sent now, with all it gathered. */
        while (p->cooling && (p->cooling->cool_until <= now_ms || stopping || p->quit)) {
            wc_http_stream *c = p->cooling;
            DL_DELETE2(p->cooling, c, cool_prev, cool_next);
            c->cool_until = 0;
            atomic_store_explicit(&c->due, 0, memory_order_relaxed);
            if (c->held) {
                c->held = c->marked = false;
                work_add(&work, c);
            }
        }
        /* Every wake takes the marks: one that needed no wake (its stream cools until this
         * wake or later) waits for it. */
        p->asleep_until = 0;
        p->urgent = false;
        if (poked)
            p->poked = false;
        wc_http_stream *m = p->marked;
        p->marked = NULL;
        for (wc_http_stream *next; m; m = next) {
            next = m->mark_next;
            if (m->cool_until) {
                m->held = true; /* stays marked: later wakes cost nothing */
                continue;
            }
            m->marked = false;
            work_add(&work, m);
        }
        if (stopping && !swept) {
            wc_http_stream *s;
            DL_FOREACH2(p->streams, s, next) work_add(&work, s);
            swept = true;
        }
        bool quit = p->quit;
        pthread_mutex_unlock(&hk->mu);
        for (wc_http_stream *s = p->lingering; s; s = s->linger_next)
            if (wc_mono_ms() >= s->cut_at)
                work_add(&work, s);

        run_work(p, work, quit, &p->again, &grave);
        if (quit) {
            /* Whatever is left: cut off (the drain before this had its chance). */
            pthread_mutex_lock(&hk->mu);
            wc_http_stream *rest = p->streams;
            pthread_mutex_unlock(&hk->mu);
            while (rest) {
                wc_http_stream *s = rest;
                rest = s->next;
                finish(p, s, &grave);
            }
        }
        bury(hk, grave);
        if (quit) {
            pthread_mutex_unlock(&p->run);
            return NULL;
        }
        if (p->id == 0 && wc_mono_ms() >= next_tick) {
            wc_cacher_tick(h->o.cacher); /* calls after_dispatch: the poke for its wakes */
            bool due = crowd_left(h, &trim_peak);
            next_tick = wc_mono_ms() + TICK_MS;
            /* A TLS handshake leaves its session and buffers freed between the small blocks
             * of the streams it started, and the allocator keeps such holes: after a burst
             * of them, give their pages back (measured: half an idle TLS stream's RSS). */
            uint_fast64_t tls_n = atomic_load_explicit(&h->tls_streams, memory_order_relaxed);
            due |= tls_n - trimmed_at >= TRIM_AFTER;
            /* A storm of arrivals: each connection's buffer came from the heap and was freed
             * after its headers, between the small blocks of the streams that live on; once
             * the storm settled, give back the pages of those holes (measured: 6.8 -> 2.6 KiB
             * per idle stream after 10,000 arrived at once). */
            uint64_t opened = atomic_load_explicit(&h->streams_opened, memory_order_relaxed);
            due |= wc_http_trim_after_storm(&opened_at_trim, &opened_at_tick, opened);
            /* The trim gives each hole back with a system call (a TLB shootdown on every core):
             * after a storm of 10,000, hundreds of ms of this pump's time. It waits for a
             * tick in which no stream sent, so that it holds up no delivery. */
            uint64_t sends = atomic_load_explicit(&h->sends, memory_order_relaxed);
            if (wc_http_trim_now(&trim_wait, due, sends)) {
                malloc_trim(0);
                trimmed_at = tls_n;
                opened_at_trim = opened;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------- */

static void pump_destroy(wc_http_pump *p)
{
    if (p->run_init)
        pthread_mutex_destroy(&p->run);
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    free(p->scratch);
    free(p->sealed);
    free(p);
}

int wc_http_pumps_start(wc_http *h)
{
    unsigned n = h->o.threads > 1 ? h->o.threads : 1;
    h->pumps = calloc(n, sizeof(*h->pumps));
    if (!h->pumps)
        return WC_ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        wc_http_pump *p = calloc(1, sizeof(*p));
        if (!p)
            return WC_ENOMEM;
        p->srv = h;
        p->id = i;
        p->run_init = pthread_mutex_init(&p->run, NULL) == 0;
        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        p->scratch = malloc(SCRATCH + CHUNK_HDR + 2);
        p->sealed = malloc(SEALED);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        if (!p->run_init || p->epfd < 0 || p->wake_fd < 0 || !p->scratch || !p->sealed ||
            epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &ev) != 0) {
            pump_destroy(p);
            return WC_EIO;
        }
        if (pthread_create(&p->thread, NULL, pump_main, p) != 0) {
            pump_destroy(p);
            return WC_ENOMEM;
        }
        p->started = true;
        h->pumps[i] = p;
        h->n_pumps = i + 1;
        pthread_mutex_lock(&h->hook->mu);
        p->hook_next = h->hook->pumps;
        h->hook->pumps = p;
        pthread_mutex_unlock(&h->hook->mu);
    }
    return 0;
}

void wc_http_streams_end(wc_http *h)
{
    wc_http_hook *hk = h->hook;
    pthread_mutex_lock(&hk->mu);
    atomic_store(&h->stopping, true);
    for (unsigned i = 0; i < h->n_pumps; i++) {
        h->pumps[i]->poked = false; /* this poke must reach it */
        poke_locked(h->pumps[i]);
    }
    pthread_mutex_unlock(&hk->mu);
}

void wc_http_pumps_stop(wc_http *h)
{
    wc_http_hook *hk = h->hook;
    for (unsigned i = 0; i < h->n_pumps; i++) {
        wc_http_pump *p = h->pumps[i];
        pthread_mutex_lock(&hk->mu);
        p->quit = true;
        p->poked = false;
        poke_locked(p);
        pthread_mutex_unlock(&hk->mu);
        pthread_join(p->thread, NULL);
        pthread_mutex_lock(&hk->mu);
        wc_http_pump **pp = &hk->pumps;
        while (*pp && *pp != p)
            pp = &(*pp)->hook_next;
        if (*pp)
            *pp = p->hook_next;
        pthread_mutex_unlock(&hk->mu);
        pump_destroy(p);
    }
    free(h->pumps);
    h->pumps = NULL;
    h->n_pumps = 0;
}
