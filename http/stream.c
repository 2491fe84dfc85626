/*
 * Watch streams without a thread each.
 *
 * A stream is one chunked response whose body MHD pulls through wc_http_stream_read(), which
 * copies bytes out of the stream's watcher. When the watcher has nothing (WC_EAGAIN) the
 * reader suspends its connection, so an idle stream costs no CPU and no thread. The watcher's
 * wake callback runs on the producer (or tick) thread with cacher locks held, so it only
 * MARKS the stream in the shared hook; the cacher's after_dispatch hook, called once per
 * published change with no lock held, then resumes every marked stream in one batch (each
 * MHD_resume_connection makes MHD walk its suspended list once, so one batch per change keeps
 * that walk per change, not per watcher).
 *
 * The lost wake-up and the resume of a vanished connection are ruled out by a little state
 * machine under hook->mu (fields marked (h) in http_internal.h):
 *   reader:  woken = false; read -> EAGAIN; lock; if woken: read again; else suspended = true;
 *            unlock; MHD_suspend_connection()
 *   wake:    lock; woken = true; if suspended and not marked: mark; unlock
 *   batch:   lock; take the marked list, suspended = false for each; unlock; resume each
 * A wake that lands between the EAGAIN and `suspended = true` is seen through `woken`. A
 * resume that lands between `suspended = true` and MHD_suspend_connection() is not lost
 * either: MHD then skips the suspension (its `resuming` flag) and calls the reader again.
 * Exactly one party flips `suspended` back, and only it calls MHD_resume_connection, while
 * the connection is still suspended (or its reader still running): never on a completed one.
 *
 * A suspended connection does not notice its reader hanging up (MHD does not poll it), so the
 * ticker thread keeps every stream's socket in an epoll set of its own (EPOLLRDHUP only, edge
 * triggered) and resumes a stream whose reader left, which then ends with an error. The same
 * thread calls wc_cacher_tick() once a second (timeouts, bookmarks, slow readers) and frees
 * completed streams: only after its next epoll_wait, so an event still naming one is harmless.
 * With wc_http_opts.coalesce_ms it also runs the batch itself, that long after the first wake,
 * so that under a high event rate each reader gets several events per send.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <utlist.h>

#include "http_internal.h"
#include "wcached/log.h"

#define TICK_MS 1000

/* ---------------------------------------------------------------------------------------
 * The hook: marks and batched resumes
 * ------------------------------------------------------------------------------------- */

wc_http_hook *wc_http_hook_new(void)
{
    wc_http_hook *hk = calloc(1, sizeof(*hk));
    if (!hk)
        return NULL;
    pthread_mutex_init(&hk->mu, NULL);
    pthread_cond_init(&hk->idle, NULL);
    hk->flush_fd = -1;
    return hk;
}

void wc_http_hook_free(wc_http_hook *hk)
{
    if (!hk)
        return;
    pthread_mutex_destroy(&hk->mu);
    pthread_cond_destroy(&hk->idle);
    free(hk);
}

/* Unmarks s and clears `suspended`; the caller resumes it. Holds hk->mu. */
static void take_locked(wc_http_stream *s)
{
    s->marked = false;
    s->suspended = false;
    s->srv->n_suspended--;
}

/* Resumes a list linked through mark_next, taken under hk->mu with inflight counted. Reads
 * each link before resuming, since a resumed stream may complete and be freed at once. */
static void resume_list(wc_http_hook *hk, wc_http_stream *s)
{
    while (s) {
        wc_http_stream *next = s->mark_next;
        wc_http *h = s->srv;
        struct MHD_Connection *conn = s->conn;
        atomic_fetch_add_explicit(&h->resumes, 1, memory_order_relaxed);
        MHD_resume_connection(conn);
        s = next;
    }
    pthread_mutex_lock(&hk->mu);
    if (--hk->inflight == 0)
        pthread_cond_broadcast(&hk->idle);
    pthread_mutex_unlock(&hk->mu);
}

/* Takes every marked stream for one batch. Holds hk->mu. */
static wc_http_stream *take_marked_locked(wc_http_hook *hk)
{
    wc_http_stream *list = hk->marked;
    hk->marked = NULL;
    hk->flush_pending = false;
    if (!list)
        return NULL;
    for (wc_http_stream *s = list; s; s = s->mark_next)
        take_locked(s);
    hk->inflight++;
    atomic_fetch_add_explicit(&list->srv->resume_batches, 1, memory_order_relaxed);
    return list;
}

void wc_http_after_dispatch(void *arg)
{
    wc_http_hook *hk = arg;
    pthread_mutex_lock(&hk->mu);
    if (hk->marked && hk->flush_fd >= 0) {
        /* Coalescing: poke the flusher once per window; inflight keeps the fd open for us. */
        int fd = hk->flush_pending ? -1 : hk->flush_fd;
        hk->flush_pending = true;
        if (fd >= 0)
            hk->inflight++;
        pthread_mutex_unlock(&hk->mu);
        if (fd >= 0) {
            uint64_t one = 1;
            ssize_t wr = write(fd, &one, sizeof(one));
            (void)wr;
            pthread_mutex_lock(&hk->mu);
            if (--hk->inflight == 0)
                pthread_cond_broadcast(&hk->idle);
            pthread_mutex_unlock(&hk->mu);
        }
        return;
    }
    wc_http_stream *list = take_marked_locked(hk);
    pthread_mutex_unlock(&hk->mu);
    if (list)
        resume_list(hk, list);
}

void wc_http_stream_wake(void *arg)
{
    wc_http_stream *s = arg;
    wc_http_hook *hk = s->srv->hook;
    pthread_mutex_lock(&hk->mu);
    s->woken = true;
    if (s->suspended && !s->marked) {
        s->marked = true;
        s->mark_next = hk->marked;
        hk->marked = s;
    }
    pthread_mutex_unlock(&hk->mu);
}

/* ---------------------------------------------------------------------------------------
 * The stream
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

void wc_http_stream_free(wc_http_stream *s)
{
    if (!s)
        return;
    if (s->w)
        wc_watcher_close(s->w);
    free(s->pre);
    free(s);
}

/* The server ended a stream: worth a line when the reader did not ask for it. */
static void log_end(wc_http_stream *s)
{
    static const char *const why[WC_END_COUNT] = {
        [WC_END_CLOSED] = "closed",
        [WC_END_TIMEOUT] = "timeoutSeconds reached",
        [WC_END_SLOW] = "too slow",
        [WC_END_EXPIRED] = "fell out of the event ring",
        [WC_END_RESET] = "upstream history reset",
        [WC_END_SHUTDOWN] = "shutting down",
    };
    wc_end_reason r = wc_watcher_end_reason(s->w);
    wc_log_level lvl =
        (r == WC_END_SLOW || r == WC_END_EXPIRED || r == WC_END_RESET) ? WC_LOG_INFO : WC_LOG_DEBUG;
    if (wc_log_enabled(lvl))
        wc_log(lvl, "http: watch stream ended at resourceVersion %" PRId64 ": %s",
               wc_watcher_rv(s->w), (unsigned)r < WC_END_COUNT ? why[r] : "?");
}

ssize_t wc_http_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    wc_http_stream *s = cls;
    wc_http *h = s->srv;
    wc_http_hook *hk = h->hook;
    (void)pos;
    if (s->pre_off < s->pre_len) {
        size_t n = s->pre_len - s->pre_off;
        if (n > max)
            n = max;
        memcpy(buf, s->pre + s->pre_off, n);
        s->pre_off += n;
        return (ssize_t)n;
    }
    if (!s->w)
        return MHD_CONTENT_READER_END_OF_STREAM;
    for (;;) {
        /* Lock-free on the way in: a wake from here on sets `woken` again, which the locked
         * check below sees. */
        atomic_store(&s->woken, false);
        if (atomic_load(&s->gone))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (atomic_load(&h->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;

        size_t n = 0;
        int rc = wc_watcher_read(s->w, buf, max, &n);
        if (rc == 0)
            return (ssize_t)n;
        if (rc == WC_EOF) {
            log_end(s);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (rc != WC_EAGAIN)
            return MHD_CONTENT_READER_END_WITH_ERROR;

        pthread_mutex_lock(&hk->mu);
        if (s->woken || s->gone || h->stopping) {
            pthread_mutex_unlock(&hk->mu);
            continue;
        }
        s->suspended = true;
        h->n_suspended++;
        pthread_mutex_unlock(&hk->mu);
        MHD_suspend_connection(s->conn);
        return 0;
    }
}

void wc_http_stream_attach(wc_http_stream *s, struct MHD_Connection *conn)
{
    wc_http *h = s->srv;
    s->conn = conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&h->hook->mu);
    DL_APPEND(h->streams, s);
    h->n_streams++;
    pthread_mutex_unlock(&h->hook->mu);
    if (s->fd >= 0) {
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = s};
        s->in_epoll = epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0;
    }
}

void wc_http_stream_completed(wc_http_stream *s)
{
    wc_http *h = s->srv;
    /* After close returns no wake can name s any more (wakes run under the cacher's lock). */
    if (s->w) {
        wc_watcher_close(s->w);
        s->w = NULL;
    }
    /* MHD closes the socket after this callback, so the fd is still ours to remove. */
    if (s->in_epoll)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    pthread_mutex_lock(&h->hook->mu);
    if (s->suspended && !s->marked) /* not expected: MHD completes no suspended connection */
        take_locked(s);
    s->done = true;
    DL_DELETE(h->streams, s);
    h->n_streams--;
    if (!s->marked) {
        s->mark_next = h->graveyard;
        h->graveyard = s;
    }
    pthread_mutex_unlock(&h->hook->mu);
}

/* ---------------------------------------------------------------------------------------
 * The ticker
 * ------------------------------------------------------------------------------------- */

void wc_http_graveyard_free(wc_http *h)
{
    pthread_mutex_lock(&h->hook->mu);
    wc_http_stream *g = h->graveyard;
    h->graveyard = NULL;
    pthread_mutex_unlock(&h->hook->mu);
    while (g) {
        wc_http_stream *next = g->mark_next;
        wc_http_stream_free(g);
        g = next;
    }
}

static void *ticker_main(void *arg)
{
    wc_http *h = arg;
    wc_http_hook *hk = h->hook;
    int64_t next_tick = wc_http_mono_ms() + TICK_MS;
    int64_t flush_at = 0; /* when the coalesced batch is due; 0: none */
    struct epoll_event evs[64];
    for (;;) {
        int64_t now = wc_http_mono_ms();
        int64_t until = flush_at && flush_at < next_tick ? flush_at : next_tick;
        int n = epoll_wait(h->epfd, evs, 64, until <= now ? 0 : (int)(until - now));
        if (n < 0 && errno != EINTR)
            n = 0;
        bool stop = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &h->flush_fd) {
                uint64_t v;
                ssize_t rd = read(h->flush_fd, &v, sizeof(v));
                (void)rd;
                if (!flush_at)
                    flush_at = wc_http_mono_ms() + h->o.coalesce_ms;
            }
        }
        wc_http_stream *resume = NULL, *grave, *batch = NULL;
        pthread_mutex_lock(&hk->mu);
        if (flush_at && wc_http_mono_ms() >= flush_at) {
            batch = take_marked_locked(hk);
            flush_at = 0;
        }
        for (int i = 0; i < n; i++) {
            wc_http_stream *s = evs[i].data.ptr;
            if ((void *)s == (void *)&h->flush_fd)
                continue;
            if (!s) {
                stop = true;
                continue;
            }
            if (s->done || s->gone)
                continue;
            s->gone = true;
            atomic_fetch_add_explicit(&h->hangups, 1, memory_order_relaxed);
            /* A marked stream is resumed by the batch already under way. */
            if (s->suspended && !s->marked) {
                take_locked(s);
                s->mark_next = resume;
                resume = s;
            }
        }
        if (resume)
            hk->inflight++;
        /* Every completed stream was removed from the epoll set before it was put here, and
         * this wait's events are handled: none can name them any more. */
        grave = h->graveyard;
        h->graveyard = NULL;
        pthread_mutex_unlock(&hk->mu);
        if (batch)
            resume_list(hk, batch);
        if (resume)
            resume_list(hk, resume);
        while (grave) {
            wc_http_stream *next = grave->mark_next;
            wc_http_stream_free(grave);
            grave = next;
        }
        if (stop)
            return NULL;
        if (wc_http_mono_ms() >= next_tick) {
            wc_cacher_tick(h->o.cacher); /* calls after_dispatch: the batch of its wakes */
            next_tick = wc_http_mono_ms() + TICK_MS;
        }
    }
}

int wc_http_ticker_start(wc_http *h)
{
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->epfd < 0 || h->stop_fd < 0)
        return WC_EIO;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->stop_fd, &ev) != 0)
        return WC_EIO;
    if (h->o.coalesce_ms > 0) {
        h->flush_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event fev = {.events = EPOLLIN, .data.ptr = &h->flush_fd};
        if (h->flush_fd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->flush_fd, &fev) != 0)
            return WC_EIO;
        pthread_mutex_lock(&h->hook->mu);
        if (h->hook->flush_fd < 0) /* the first server on a shared hook flushes for all */
            h->hook->flush_fd = h->flush_fd;
        pthread_mutex_unlock(&h->hook->mu);
    }
    if (pthread_create(&h->ticker, NULL, ticker_main, h) != 0)
        return WC_ENOMEM;
    h->ticker_started = true;
    return 0;
}

void wc_http_ticker_stop(wc_http *h)
{
    if (!h->ticker_started)
        return;
    uint64_t one = 1;
    ssize_t wr = write(h->stop_fd, &one, sizeof(one));
    (void)wr;
    pthread_join(h->ticker, NULL);
    h->ticker_started = false;
}

void wc_http_streams_end(wc_http *h)
{
    wc_http_hook *hk = h->hook;
    wc_http_stream *resume = NULL;
    pthread_mutex_lock(&hk->mu);
    h->stopping = true;
    if (h->flush_fd >= 0 && hk->flush_fd == h->flush_fd) {
        hk->flush_fd = -1; /* back to resuming in after_dispatch */
        hk->flush_pending = false;
    }
    /* Take this server's streams off the shared marked list, then resume every suspended one:
     * with `stopping` set, none suspends again and each ends its body cleanly. */
    wc_http_stream **pp = &hk->marked;
    while (*pp) {
        if ((*pp)->srv == h)
            *pp = (*pp)->mark_next;
        else
            pp = &(*pp)->mark_next;
    }
    wc_http_stream *s;
    DL_FOREACH(h->streams, s)
    {
        if (s->suspended) {
            take_locked(s);
            s->mark_next = resume;
            resume = s;
        }
    }
    if (resume)
        hk->inflight++;
    pthread_mutex_unlock(&hk->mu);
    if (resume)
        resume_list(hk, resume);
    /* Batches taken before `stopping` may still be resuming: MHD must see them all resumed
     * before it stops. */
    pthread_mutex_lock(&hk->mu);
    while (hk->inflight)
        pthread_cond_wait(&hk->idle, &hk->mu);
    pthread_mutex_unlock(&hk->mu);
}
