/*
 * The upstream's test seam: makes a chosen step of the upstream path fail as if libcurl or the
 * allocator had failed there, so tests against a real etcd can prove that every such failure is
 * retried with the backoff, counted (cause "local"), named in the state reason, and that the
 * upstream recovers by itself once the failure goes away.
 *
 * For tests only: the daemon never includes this header, so nothing else can set it. The check
 * is compiled in always (a relaxed atomic load where a step is taken: per request, per wake-up
 * of the watch's loop, per watch response) so that the code tested is the code shipped.
 */
#ifndef WCACHED_UPSTREAM_SEAM_H
#define WCACHED_UPSTREAM_SEAM_H

#include <stdbool.h>
#include <stdint.h>

#include "wcached/upstream.h"

/* The steps that can be made to fail. "A plain request" is any POST that is not the watch:
 * the list's pages, authentication, and wc_upstream_current_rev. */
typedef enum wc_upstream_step {
    WC_UPSTEP_POST_EASY_INIT = 0, /* curl_easy_init of a plain request */
    WC_UPSTEP_POST_SLIST,         /* curl_slist_append of a plain request's headers */
    WC_UPSTEP_POST_SETOPT,        /* curl_easy_setopt of a plain request */
    WC_UPSTEP_LIST_REQUEST,       /* allocation of a range request's body */
    WC_UPSTEP_LIST_ALLOC,         /* allocation of the listed snapshot */
    WC_UPSTEP_AUTH_REQUEST,       /* allocation of the authentication request's body */
    WC_UPSTEP_WATCH_REQUEST,      /* allocation of the watch's create_request */
    WC_UPSTEP_WATCH_EASY_INIT,    /* curl_easy_init of the watch */
    WC_UPSTEP_WATCH_SLIST,        /* curl_slist_append of the watch's headers */
    WC_UPSTEP_WATCH_SETOPT,       /* curl_easy_setopt of the watch */
    WC_UPSTEP_WATCH_MULTI_ADD,    /* curl_multi_add_handle of the watch */
    WC_UPSTEP_WATCH_PERFORM,      /* curl_multi_perform while the watch runs */
    WC_UPSTEP_WATCH_ALLOC,        /* allocation of a watch response's changes */
    WC_UPSTEP_COUNT
} wc_upstream_step;

/* The mask of one step, for wc_upstream_fail_at. */
#define WC_UPSTEP(s) ((uint32_t)1 << (s))

/*
 * From now on every step in `mask` (WC_UPSTEP(a) | WC_UPSTEP(b) ...) fails each time it is
 * reached, until the mask is changed; 0 clears it. Any thread.
 */
void wc_upstream_fail_at(wc_upstream *u, uint32_t mask);

/*
 * A refill's window is taken through one watch per `revs` revisions of it (at most
 * REFILL_WATCHES; 0: back to the default, etcd's most revisions a pass). Lower, so that a
 * test's small window takes several. Before wc_upstream_start.
 */
void wc_upstream_refill_span(wc_upstream *u, int64_t revs);

/*
 * A refill's quiet spell (REFILL_QUIET_MS; 0: back to it) lowered, so that a test's refill is
 * checked sooner. Before wc_upstream_start.
 */
void wc_upstream_refill_quiet(wc_upstream *u, int64_t ms);

/*
 * While held, the watch reads nothing more from etcd once it is created (what etcd sends waits
 * in the socket, in order), as a stream etcd is slow to serve looks: its refill goes quiet with
 * history still to come. Any thread.
 */
void wc_upstream_hold_watch(wc_upstream *u, bool hold);

#endif
