/*
 * One producer thread and many consumer threads: every consumer's stream is checked exactly
 * against the producer's history (its initial state too), across the replay/live boundary,
 * queue overflows and catch-ups, and reconnections after a slow reader is ended.
 *
 * Reconnections are made to happen, not hoped for: a "staller" consumer, once live, stops
 * reading until the cacher ends its watcher for lagging, then resumes from its last RV. The
 * producer waits until every staller has stalled, so the stall always has events to miss, and
 * the ticks go on until every consumer is done, so a stall always ends.
 *
 * Shared by the Criterion suite and by a plain runner for ThreadSanitizer, which Criterion's
 * forking runner does not survive (Snaipe/Criterion#274): so no cr_* calls in here.
 */
#ifndef WCACHED_TEST_CONCURRENCY_SCENARIO_H
#define WCACHED_TEST_CONCURRENCY_SCENARIO_H

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wcached/cacher.h"

static int put(wc_cacher *c, const char *key, const char *value, int64_t rev)
{
    wc_kv_spec s = {.key = key,
                    .key_len = strlen(key),
                    .value = value,
                    .value_len = strlen(value),
                    .create_rev = rev,
                    .mod_rev = rev,
                    .version = 1};
    return wc_cacher_put(c, &s);
}

static int del(wc_cacher *c, const char *key, int64_t rev)
{
    return wc_cacher_delete(c, key, strlen(key), rev);
}

static wc_watch_opts watch_opts(const char *prefix, int64_t rv)
{
    wc_watch_opts o;
    memset(&o, 0, sizeof(o));
    o.filter.family = WC_FAMILY_KEYS;
    o.filter.key = prefix;
    o.filter.key_len = strlen(prefix);
    o.filter.prefix = true;
    o.rv = rv;
    return o;
}

#define NEVENTS 3000
#define NKEYS 40
#define FIRST_REV 10

typedef struct change {
    int64_t rev;
    bool del;
    char key[16];
    char value[16];
} change;

static change hist[NEVENTS];
static _Atomic int published;      /* how many of hist are out */
static _Atomic int stallers_ready; /* stallers that have stalled once: the producer waits */
static int nstallers;
static _Atomic int consumers_done;

/* A deterministic history: puts over NKEYS keys, every 7th change a delete of a live key. */
static void make_history(void)
{
    bool live[NKEYS] = {0};
    for (int i = 0; i < NEVENTS; i++) {
        int k = (i * 13) % NKEYS;
        hist[i].rev = FIRST_REV + 1 + i;
        snprintf(hist[i].key, sizeof(hist[i].key), "/k/%02d", k);
        snprintf(hist[i].value, sizeof(hist[i].value), "v%d", i);
        hist[i].del = (i % 7 == 6) && live[k];
        live[k] = !hist[i].del;
    }
}

static void *producer(void *arg)
{
    wc_cacher *c = arg;
    while (atomic_load(&stallers_ready) < nstallers)
        sched_yield();
    for (int i = 0; i < NEVENTS; i++) {
        int rc = hist[i].del ? del(c, hist[i].key, hist[i].rev)
                             : put(c, hist[i].key, hist[i].value, hist[i].rev);
        if (rc != 0)
            abort();
        wc_cacher_progress(c, hist[i].rev);
        atomic_store(&published, i + 1);
        if (i % 64 == 0)
            sched_yield();
    }
    return NULL;
}

typedef struct consumer {
    wc_cacher *c;
    int id;
    size_t chunk;    /* bytes per read */
    bool sleepy;     /* pauses between reads: overflows its queue */
    bool from_state; /* starts with RV unset */
    bool staller;    /* once live, reads nothing until it is ended as slow (see above) */
    int stalls;      /* stalls so far */
    bool ready_told; /* counted in stallers_ready */
    sem_t sem;
    int failures;
    int reconnects;           /* streams ended as slow and resumed from their last RV */
    int checked;              /* events checked against the history */
    int checked_resumed;      /* ... on a resumed stream */
    long long init_rv[NKEYS]; /* initial state: the RV each key came with; 0 for none */
    char msg[256];
} consumer;

/* A staller that leaves early must not hold the producer back. */
static void staller_ready(consumer *cs)
{
    if (cs->staller && !cs->ready_told) {
        cs->ready_told = true;
        atomic_fetch_add(&stallers_ready, 1);
    }
}

static void post(void *arg)
{
    sem_post(&((consumer *)arg)->sem);
}

static int index_of_rev(int64_t rev)
{
    return (int)(rev - FIRST_REV - 1);
}

/* Checks one event line against the history; `next` is the index expected next. */
static bool check_event(consumer *cs, json_t *ev, int *next)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    long long rv = atoll(
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion")));
    int i = index_of_rev(rv);
    if (i != *next || i < 0 || i >= NEVENTS) {
        snprintf(cs->msg, sizeof(cs->msg), "consumer %d: got rv %lld, want index %d", cs->id, rv,
                 *next);
        return false;
    }
    const char *key = json_string_value(json_object_get(obj, "key"));
    bool want_del = hist[i].del;
    if (strcmp(key, hist[i].key) != 0 || (strcmp(type, "DELETED") == 0) != want_del) {
        snprintf(cs->msg, sizeof(cs->msg), "consumer %d: rv %lld: %s %s, want %s %s", cs->id, rv,
                 type, key, want_del ? "DELETED" : "PUT", hist[i].key);
        return false;
    }
    const char *value = json_string_value(json_object_get(obj, "value"));
    if (!want_del && (!value || strcmp(value, hist[i].value) != 0)) {
        snprintf(cs->msg, sizeof(cs->msg), "consumer %d: rv %lld: value %s, want %s", cs->id, rv,
                 value ? value : "(none)", hist[i].value);
        return false;
    }
    (*next)++;
    cs->checked++;
    if (cs->reconnects)
        cs->checked_resumed++;
    return true;
}

/* One ADDED line of the initial state: a live key at its own revision, with its value. */
static bool check_initial(consumer *cs, json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    const char *key = json_string_value(json_object_get(obj, "key"));
    const char *value = json_string_value(json_object_get(obj, "value"));
    const char *rvs =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    long long rv = rvs ? atoll(rvs) : -1;
    int i = index_of_rev(rv), k = -1;
    if (key && strncmp(key, "/k/", 3) == 0)
        k = atoi(key + 3);
    if (strcmp(type, "ADDED") != 0 || k < 0 || k >= NKEYS || i < 0 || i >= NEVENTS || hist[i].del ||
        strcmp(hist[i].key, key) != 0 || !value || strcmp(value, hist[i].value) != 0 ||
        cs->init_rv[k]) {
        snprintf(cs->msg, sizeof(cs->msg), "consumer %d: initial state: %s %s at %lld = %s", cs->id,
                 type, key ? key : "?", rv, value ? value : "?");
        return false;
    }
    cs->init_rv[k] = rv;
    return true;
}

/* The initial state ended at `rv`: it held exactly the keys live then, each at its last put. */
static bool check_initial_end(consumer *cs, long long rv)
{
    long long want[NKEYS] = {0};
    for (int i = 0; i <= index_of_rev(rv) && i < NEVENTS; i++)
        want[atoi(hist[i].key + 3)] = hist[i].del ? 0 : hist[i].rev;
    for (int k = 0; k < NKEYS; k++) {
        if (cs->init_rv[k] != want[k]) {
            snprintf(cs->msg, sizeof(cs->msg),
                     "consumer %d: initial state at %lld: /k/%02d at %lld, want %lld", cs->id, rv,
                     k, cs->init_rv[k], want[k]);
            return false;
        }
    }
    return true;
}

/* A staller's wait: reads nothing until the cacher has ended its watcher. */
static bool wait_ended(consumer *cs, wc_watcher *w)
{
    while (!wc_watcher_ended(w)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (sem_timedwait(&cs->sem, &until) != 0 && errno == ETIMEDOUT)
            return wc_watcher_ended(w);
    }
    return true;
}

static void *consume(void *arg)
{
    consumer *cs = arg;
    /* Start somewhere in the middle of the producer's run. */
    struct timespec d = {0, (cs->id % 7) * 300000L};
    nanosleep(&d, NULL);
    int next; /* index into hist of the next change expected */
    wc_watch_opts o = watch_opts("/k/", cs->from_state ? WC_RV_UNSET : 0);
    o.send_initial = false;
    if (!cs->from_state) {
        int64_t rv = wc_cacher_rev(cs->c);
        o.rv = rv;
        next = index_of_rev(rv) + 1;
    } else {
        o.send_initial = true;
        next = -1; /* learnt from the initial state's end */
    }
    o.wake = post;
    o.wake_arg = cs;
    o.initial_end_bookmark = cs->from_state;
    wc_watcher *w = NULL;
    if (wc_cacher_watch(cs->c, &o, &w, NULL) != 0) {
        snprintf(cs->msg, sizeof(cs->msg), "consumer %d: watch failed", cs->id);
        cs->failures++;
        staller_ready(cs);
        atomic_fetch_add(&consumers_done, 1);
        return NULL;
    }
    char buf[8192], line[4096];
    size_t llen = 0;
    while (next < NEVENTS) {
        size_t n = 0;
        int rc = wc_watcher_read(w, buf, cs->chunk, &n);
        /* Nothing to read: the watcher is live. A staller stops here until it is ended: the
         * first time before the producer starts, later only while enough events remain to fill
         * its queue (10 slots) behind it. */
        if (rc == WC_EAGAIN && cs->staller && next >= 0 && cs->stalls < 3 &&
            (cs->stalls == 0 || atomic_load(&published) < NEVENTS - 100)) {
            cs->stalls++;
            staller_ready(cs);
            if (!wait_ended(cs, w)) {
                snprintf(cs->msg, sizeof(cs->msg),
                         "consumer %d: stopped reading at index %d but was never ended", cs->id,
                         next);
                cs->failures++;
                break;
            }
            continue; /* what was queued, then the end */
        }
        if (rc == WC_EAGAIN) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 5;
            if (sem_timedwait(&cs->sem, &until) != 0) {
                snprintf(cs->msg, sizeof(cs->msg), "consumer %d: no wake at index %d", cs->id,
                         next);
                cs->failures++;
                break;
            }
            continue;
        }
        if (rc == WC_EOF) {
            /* Ended as slow (the ring holds the whole history: nothing can expire, and nothing
             * else ends a watcher here): resume from the last RV, as a reflector does. */
            wc_end_reason why = wc_watcher_end_reason(w);
            if (why != WC_END_SLOW || next < 0) {
                snprintf(cs->msg, sizeof(cs->msg), "consumer %d: ended (reason %d) at index %d",
                         cs->id, (int)why, next);
                cs->failures++;
                break;
            }
            int64_t rv = wc_watcher_rv(w);
            wc_watcher_free(w);
            cs->reconnects++;
            o = watch_opts("/k/", rv);
            o.wake = post;
            o.wake_arg = cs;
            if (wc_cacher_watch(cs->c, &o, &w, NULL) != 0) {
                snprintf(cs->msg, sizeof(cs->msg), "consumer %d: resume failed", cs->id);
                cs->failures++;
                w = NULL;
                break;
            }
            llen = 0;
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            if (buf[k] != '\n') {
                if (llen < sizeof(line))
                    line[llen++] = buf[k];
                continue;
            }
            size_t len = llen;
            json_t *ev = json_loadb(line, len, 0, NULL);
            llen = 0;
            const char *type = ev ? json_string_value(json_object_get(ev, "type")) : NULL;
            if (!type) {
                snprintf(cs->msg, sizeof(cs->msg), "consumer %d: not an event: %.*s", cs->id,
                         (int)(len < 100 ? len : 100), line);
                cs->failures++;
                json_decref(ev);
                goto out;
            }
            if (next < 0) {
                /* Initial state: ADDED lines, then the end bookmark tells the start. */
                bool ok;
                if (strcmp(type, "BOOKMARK") == 0) {
                    long long rv = atoll(json_string_value(
                        json_object_get(json_object_get(json_object_get(ev, "object"), "metadata"),
                                        "resourceVersion")));
                    next = index_of_rev(rv) + 1;
                    ok = check_initial_end(cs, rv);
                } else {
                    ok = check_initial(cs, ev);
                }
                if (!ok) {
                    cs->failures++;
                    json_decref(ev);
                    goto out;
                }
            } else if (strcmp(type, "BOOKMARK") != 0 && !check_event(cs, ev, &next)) {
                cs->failures++;
                json_decref(ev);
                goto out;
            }
            json_decref(ev);
        }
        if (cs->sleepy) {
            struct timespec s = {0, 200000};
            nanosleep(&s, NULL);
        }
    }
out:
    if (w)
        wc_watcher_free(w);
    staller_ready(cs);
    atomic_fetch_add(&consumers_done, 1);
    return NULL;
}

/* What a run did, beyond the streams' contents. */
typedef struct run_stats {
    int reconnects;       /* streams ended as slow and resumed, over all consumers */
    int stallers_resumed; /* stallers that were ended, resumed and checked events after */
    int checked;          /* events checked against the history, over all consumers */
    uint64_t ended_slow;  /* the cacher's own count of watchers ended as slow */
} run_stats;

/* Runs one scenario with `stallers` of the consumers stalling (see above); returns the number
 * of consumers that saw a wrong stream (or, for a staller, no resumed stream), with the first
 * complaint in msg. */
static int run(int nconsumers, size_t ring, int64_t budget_ms, int stallers, run_stats *st,
               char *msg, size_t msg_len)
{
    make_history();
    atomic_store(&published, 0);
    atomic_store(&stallers_ready, 0);
    atomic_store(&consumers_done, 0);
    nstallers = stallers;
    memset(st, 0, sizeof(*st));
    wc_cacher_opts opts;
    wc_cacher_opts_default(&opts);
    opts.ring_events = ring;
    opts.slow_budget_ms = budget_ms;
    wc_cacher *c = wc_cacher_new(&opts);
    if (!c || wc_cacher_replace(c, NULL, 0, FIRST_REV, false) != 0)
        abort();
    consumer *cs = calloc((size_t)nconsumers, sizeof(*cs));
    pthread_t *th = calloc((size_t)nconsumers, sizeof(*th));
    for (int i = 0; i < nconsumers; i++) {
        cs[i].c = c;
        cs[i].id = i;
        cs[i].chunk = (size_t[]){8192, 97, 1, 4096}[i % 4];
        if (cs[i].chunk == 1)
            cs[i].chunk = 13;
        cs[i].sleepy = i % 5 == 4;
        cs[i].from_state = i % 3 == 1;
        cs[i].staller = i < stallers;
        sem_init(&cs[i].sem, 0, 0);
        pthread_create(&th[i], NULL, consume, &cs[i]);
    }
    pthread_t prod;
    pthread_create(&prod, NULL, producer, c);
    /* Tick like the HTTP layer does, so slow readers are ended, until every reader is done. */
    while (atomic_load(&published) < NEVENTS || atomic_load(&consumers_done) < nconsumers) {
        struct timespec s = {0, 5000000};
        nanosleep(&s, NULL);
        wc_cacher_tick(c);
    }
    pthread_join(prod, NULL);
    int bad = 0;
    msg[0] = '\0';
    for (int i = 0; i < nconsumers; i++) {
        pthread_join(th[i], NULL);
        if (!cs[i].failures && cs[i].staller && !(cs[i].reconnects && cs[i].checked_resumed)) {
            snprintf(cs[i].msg, sizeof(cs[i].msg),
                     "consumer %d: stalled %d times, resumed %d times, %d events after", i,
                     cs[i].stalls, cs[i].reconnects, cs[i].checked_resumed);
            cs[i].failures++;
        }
        if (cs[i].failures) {
            if (!bad++)
                snprintf(msg, msg_len, "%s", cs[i].msg);
        } else if (cs[i].staller) {
            st->stallers_resumed++;
        }
        st->reconnects += cs[i].reconnects;
        st->checked += cs[i].checked;
        sem_destroy(&cs[i].sem);
    }
    wc_cacher_stats cst;
    wc_cacher_stats_get(c, &cst);
    st->ended_slow = cst.ended[WC_END_SLOW];
    free(cs);
    free(th);
    wc_cacher_free(c);
    return bad;
}

/* The scenarios, for both runners. */
static const struct scenario {
    const char *name;
    int consumers;
    size_t ring;
    int64_t budget_ms;
    int stallers; /* consumers that stall until ended: each must be ended and resume */
} scenarios[] = {
    {"every_consumer_sees_exactly_the_history_after_its_start", 16, 100000, 2000, 0},
    {"tiny_budget_forces_reconnects_that_lose_nothing", 8, 100000, 1, 2},
    {"many_watchers_registering_concurrently", 24, 5000, 2000, 0},
};

#endif
