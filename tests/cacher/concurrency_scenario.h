/*
 * One producer thread and many consumer threads: every consumer's stream is checked exactly
 * against the producer's history, across the replay/live boundary, queue overflows and
 * catch-ups, and reconnections after a slow reader is ended.
 *
 * Shared by the Criterion suite and by a plain runner for ThreadSanitizer, which Criterion's
 * forking runner does not survive (Snaipe/Criterion#274): so no cr_* calls in here.
 */
#ifndef WCACHED_TEST_CONCURRENCY_SCENARIO_H
#define WCACHED_TEST_CONCURRENCY_SCENARIO_H

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
static _Atomic int published; /* how many of hist are out */

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
    sem_t sem;
    int failures;
    int reconnects;
    char msg[256];
} consumer;

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
    (*next)++;
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
        cs->failures++;
        return NULL;
    }
    char buf[8192], line[4096];
    size_t llen = 0;
    while (next < NEVENTS) {
        size_t n = 0;
        int rc = wc_watcher_read(w, buf, cs->chunk, &n);
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
            /* Ended (slow): resume from the last RV, as a reflector does. */
            int64_t rv = wc_watcher_rv(w);
            wc_watcher_close(w);
            cs->reconnects++;
            o = watch_opts("/k/", rv);
            o.wake = post;
            o.wake_arg = cs;
            if (wc_cacher_watch(cs->c, &o, &w, NULL) != 0) {
                snprintf(cs->msg, sizeof(cs->msg), "consumer %d: resume failed", cs->id);
                cs->failures++;
                return NULL;
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
            json_t *ev = json_loadb(line, llen, 0, NULL);
            llen = 0;
            const char *type = ev ? json_string_value(json_object_get(ev, "type")) : NULL;
            if (!type) {
                cs->failures++;
                json_decref(ev);
                goto out;
            }
            if (next < 0) {
                /* Initial state: ADDED lines, then the end bookmark tells the start. */
                if (strcmp(type, "BOOKMARK") == 0) {
                    long long rv = atoll(json_string_value(
                        json_object_get(json_object_get(json_object_get(ev, "object"), "metadata"),
                                        "resourceVersion")));
                    next = index_of_rev(rv) + 1;
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
    wc_watcher_close(w);
    return NULL;
}

/* Runs one scenario; returns the number of consumers that saw a wrong stream, with the first
 * complaint in msg. */
static int run(int nconsumers, size_t ring, int64_t budget_ms, char *msg, size_t msg_len)
{
    make_history();
    atomic_store(&published, 0);
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
        sem_init(&cs[i].sem, 0, 0);
        pthread_create(&th[i], NULL, consume, &cs[i]);
    }
    pthread_t prod;
    pthread_create(&prod, NULL, producer, c);
    /* Tick like the HTTP layer does, so slow readers are ended. */
    while (atomic_load(&published) < NEVENTS) {
        struct timespec s = {0, 5000000};
        nanosleep(&s, NULL);
        wc_cacher_tick(c);
    }
    pthread_join(prod, NULL);
    int bad = 0;
    msg[0] = '\0';
    for (int i = 0; i < nconsumers; i++) {
        pthread_join(th[i], NULL);
        if (cs[i].failures) {
            if (!bad++)
                snprintf(msg, msg_len, "%s", cs[i].msg);
        }
        sem_destroy(&cs[i].sem);
    }
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
} scenarios[] = {
    {"every_consumer_sees_exactly_the_history_after_its_start", 16, 100000, 2000},
    {"tiny_budget_forces_reconnects_that_lose_nothing", 8, 100000, 1},
    {"many_watchers_registering_concurrently", 24, 5000, 2000},
};

#endif
