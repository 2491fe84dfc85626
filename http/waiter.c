/*
 * The consistency waiter: one thread that holds every read which must wait for the cache, so
 * that no event-loop thread ever blocks (a blocked loop would stall every stream it carries).
 *
 * A request that needs a newer cache than it has (a consistent read, RV unset; or RV=N above
 * the cache's revision) is suspended by the server and submitted here. The waiter takes all
 * requests queued since its last look as one batch: the consistent ones among them share ONE
 * call for etcd's current revision (every write acknowledged before any of them arrived is at
 * or below it) and one progress request, so a storm of consistent reads costs etcd one range
 * request per round, not one per reader. It then waits on the cache's revision in short slices
 * and resumes each request once the cache has caught up or its deadline (~3 s) passed; the
 * request's handler runs again on its event-loop thread and reads the result.
 */
#include <stdlib.h>

#include "http_internal.h"

/* The longest the waiter sleeps on the cache before it looks at its queue again. */
#define SLICE_MS 20
/* How often a waiting batch re-asks the upstream for a progress notification. */
#define PROGRESS_EVERY_MS 250

/* Publishes r's result and resumes its connection. r may be freed once resumed. */
static void finish(wc_http *h, wc_http_req *r, int rc)
{
    pthread_mutex_lock(&h->wait_mu);
    struct MHD_Connection *conn = r->conn;
    r->wait_rc = rc;
    r->wait_state = 2;
    pthread_mutex_unlock(&h->wait_mu);
    MHD_resume_connection(conn);
}

static void *waiter_main(void *arg)
{
    wc_http *h = arg;
    wc_http_req *pending = NULL; /* owned by this thread */
    int64_t last_progress = 0;
    for (;;) {
        pthread_mutex_lock(&h->wait_mu);
        while (!h->wait_stop && !h->wait_queue && !pending)
            pthread_cond_wait(&h->wait_cond, &h->wait_mu);
        wc_http_req *fresh = h->wait_queue;
        h->wait_queue = NULL;
        bool stop = h->wait_stop;
        pthread_mutex_unlock(&h->wait_mu);

        if (stop) {
            wc_http_req *lists[2] = {fresh, pending};
            for (int l = 0; l < 2; l++) {
                for (wc_http_req *r = lists[l], *next; r; r = next) {
                    next = r->wait_next;
                    finish(h, r, WC_EOF);
                }
            }
            return NULL;
        }

        /* One etcd round trip for every consistent read of this batch. */
        bool need = false;
        for (wc_http_req *r = fresh; r; r = r->wait_next)
            need |= r->need_current;
        int64_t current = 0;
        int crc = 0;
        if (need) {
            crc = h->o.current_rev(h->o.cb_arg, &current);
            atomic_fetch_add(&h->consistent_reads, 1);
            if (crc == 0 && current > wc_cacher_rev(h->o.cacher) && h->o.request_progress) {
                h->o.request_progress(h->o.cb_arg);
                last_progress = wc_mono_ms();
            }
        }
        for (wc_http_req *r = fresh, *next; r; r = next) {
            next = r->wait_next;
            if (r->need_current) {
                if (crc != 0) {
                    finish(h, r, WC_EIO);
                    continue;
                }
                if (current > r->target)
                    r->target = current;
            }
            r->wait_next = pending;
            pending = r;
        }

        /* Resume what is due; wait a slice for the rest. */
        int64_t now = wc_mono_ms();
        int64_t rev = wc_cacher_rev(h->o.cacher);
        int64_t min_target = INT64_MAX, min_deadline = INT64_MAX;
        wc_http_req **pp = &pending;
        while (*pp) {
            wc_http_req *r = *pp;
            if (rev >= r->target || now >= r->deadline) {
                *pp = r->wait_next;
                finish(h, r, rev >= r->target ? 0 : WC_ETIMEDOUT);
                continue;
            }
            if (r->target < min_target)
                min_target = r->target;
            if (r->deadline < min_deadline)
                min_deadline = r->deadline;
            pp = &r->wait_next;
        }
        if (!pending)
            continue;
        if (h->o.request_progress && now - last_progress >= PROGRESS_EVERY_MS) {
            h->o.request_progress(h->o.cb_arg);
            last_progress = now;
        }
        int64_t slice = min_deadline - now;
        if (slice > SLICE_MS)
            slice = SLICE_MS;
        if (slice < 1)
            slice = 1;
        wc_cacher_wait_rev(h->o.cacher, min_target, slice);
    }
}

int wc_http_waiter_start(wc_http *h)
{
    if (pthread_create(&h->waiter, NULL, waiter_main, h) != 0)
        return WC_ENOMEM;
    h->waiter_started = true;
    return 0;
}

void wc_http_waiter_stop(wc_http *h)
{
    if (!h->waiter_started)
        return;
    pthread_mutex_lock(&h->wait_mu);
    h->wait_stop = true;
    pthread_cond_signal(&h->wait_cond);
    pthread_mutex_unlock(&h->wait_mu);
    pthread_join(h->waiter, NULL);
    h->waiter_started = false;
}

bool wc_http_waiter_submit(wc_http *h, wc_http_req *r)
{
    pthread_mutex_lock(&h->wait_mu);
    if (h->wait_stop) {
        /* Too late: answered at once, and nobody will resume the connection. */
        r->wait_rc = WC_EOF;
        r->wait_state = 2;
        pthread_mutex_unlock(&h->wait_mu);
        return false;
    }
    r->wait_state = 1;
    r->wait_next = h->wait_queue;
    h->wait_queue = r;
    pthread_cond_signal(&h->wait_cond);
    pthread_mutex_unlock(&h->wait_mu);
    return true;
}

bool wc_http_waiter_done(wc_http *h, wc_http_req *r, int *rc)
{
    pthread_mutex_lock(&h->wait_mu);
    bool done = r->wait_state == 2;
    *rc = r->wait_rc;
    pthread_mutex_unlock(&h->wait_mu);
    return done;
}
