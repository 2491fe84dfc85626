/*
 * Micro-benchmark of the cacher's dispatch: the cost per published change with 1,000 and
 * 10,000 watchers, with an index (each watcher pinned to one of 1,000 nodes) and without (every
 * watcher sees every change). One thread alternates publishing and draining the woken watchers,
 * so the figures are the cacher's own work, without scheduler noise:
 *   publish  = ns in wc_cacher_put per change (store, ring, index routing, queue pushes)
 *   deliver  = ns in wc_watcher_read per frame handed out (filters, shared encoding, copy)
 * Usage: bench_dispatch [events]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wcached/cacher.h"
#include "wcached/selector.h"

typedef struct reader {
    wc_watcher *w;
    int queued; /* on the woken list */
    struct reader *next;
} reader;

static reader *woken;

static void on_wake(void *arg)
{
    reader *r = arg;
    if (!r->queued) {
        r->queued = 1;
        r->next = woken;
        woken = r;
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void drain(reader *r, char *buf, size_t len, uint64_t *bytes)
{
    for (;;) {
        size_t n = 0;
        int rc = wc_watcher_read(r->w, buf, len, &n);
        if (rc != 0)
            break;
        *bytes += n;
    }
}

static void run(int nwatchers, int indexed, int events)
{
    wc_cacher_opts o;
    wc_cacher_opts_default(&o);
    o.index_field = "spec.nodeName";
    o.ring_events = 100000;
    wc_cacher *c = wc_cacher_new(&o);
    wc_cacher_replace(c, NULL, 0, 1, false);
    reader *rs = calloc((size_t)nwatchers, sizeof(*rs));
    char sel[64], buf[65536];
    for (int i = 0; i < nwatchers; i++) {
        wc_watch_opts wo;
        memset(&wo, 0, sizeof(wo));
        wo.filter.family = WC_FAMILY_K8S;
        wo.filter.key = "/registry/pods/";
        wo.filter.key_len = strlen(wo.filter.key);
        wo.filter.prefix = true;
        wo.rv = 1;
        if (indexed) {
            snprintf(sel, sizeof(sel), "spec.nodeName=node-%d", i % 1000);
            wc_selector_parse(WC_SEL_FIELD, sel, &wo.fields_owned, NULL);
        }
        wo.wake = on_wake;
        wo.wake_arg = &rs[i];
        if (wc_cacher_watch(c, &wo, &rs[i].w, NULL) != 0)
            abort();
        uint64_t b = 0;
        drain(&rs[i], buf, sizeof(buf), &b); /* go live */
    }
    /* ~1 KiB pod objects spread over 1,000 nodes. */
    char pad[900];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    int64_t t_pub = 0, t_del = 0;
    uint64_t frames0, bytes = 0;
    wc_cacher_stats st;
    wc_cacher_stats_get(c, &st);
    frames0 = st.frames_out;
    char key[64], *val = malloc(2048);
    for (int e = 0; e < events; e++) {
        int node = e % 1000;
        snprintf(key, sizeof(key), "/registry/pods/ns/pod-%d", e % 5000);
        int n =
            snprintf(val, 2048,
                     "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"pod-%d\",\"namespace\":\"ns\"},"
                     "\"spec\":{\"nodeName\":\"node-%d\"},\"pad\":\"%s\"}",
                     e % 5000, node, pad);
        wc_kv_spec s = {.key = key,
                        .key_len = strlen(key),
                        .value = val,
                        .value_len = (size_t)n,
                        .create_rev = 2 + e,
                        .mod_rev = 2 + e,
                        .version = 1};
        int64_t t0 = now_ns();
        wc_cacher_put(c, &s);
        wc_cacher_progress(c, 2 + e);
        int64_t t1 = now_ns();
        while (woken) {
            reader *r = woken;
            woken = r->next;
            r->queued = 0;
            drain(r, buf, sizeof(buf), &bytes);
        }
        int64_t t2 = now_ns();
        t_pub += t1 - t0;
        t_del += t2 - t1;
    }
    wc_cacher_stats_get(c, &st);
    uint64_t frames = st.frames_out - frames0;
    printf("%6d watchers  %-9s  %8.0f ns/publish  %8.0f ns/delivery  %9" PRIu64
           " deliveries  %6.1f MB out\n",
           nwatchers, indexed ? "indexed" : "unindexed", (double)t_pub / events,
           frames ? (double)t_del / (double)frames : 0.0, frames, (double)bytes / 1e6);
    for (int i = 0; i < nwatchers; i++)
        wc_watcher_free(rs[i].w);
    free(rs);
    free(val);
    wc_cacher_free(c);
}

int main(int argc, char **argv)
{
    int events = argc > 1 ? atoi(argv[1]) : 2000;
    if (events <= 0) {
        fprintf(stderr, "usage: bench_dispatch [events]\n");
        return 2;
    }
    printf("cacher dispatch, %d changes of ~1 KiB pods over 1,000 nodes\n", events);
    int sizes[] = {1000, 10000};
    for (int s = 0; s < 2; s++)
        for (int idx = 1; idx >= 0; idx--)
            run(sizes[s], idx, events);
    return 0;
}
