/*
 * /metrics: Prometheus text exposition format 0.0.4. The cache's counters come from one
 * wc_cacher_stats_get() copy, the server's own from atomics, and the daemon appends the
 * upstream's through its callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "http_internal.h"

void wc_http_metric_family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels} or name, then a space. */
static void sample_name(FILE *out, const char *name, const char *labels)
{
    if (labels)
        fprintf(out, "%s{%s} ", name, labels);
    else
        fprintf(out, "%s ", name);
}

void wc_http_metric_u64(FILE *out, const char *name, const char *labels, uint64_t v)
{
    sample_name(out, name, labels);
    fprintf(out, "%" PRIu64 "\n", v);
}

void wc_http_metric_i64(FILE *out, const char *name, const char *labels, int64_t v)
{
    sample_name(out, name, labels);
    fprintf(out, "%" PRId64 "\n", v);
}

void wc_http_metric_f64(FILE *out, const char *name, const char *labels, double v)
{
    sample_name(out, name, labels);
    fprintf(out, "%.3f\n", v);
}

/* A family of one sample. */
static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    wc_http_metric_family(f, name, type, help);
    wc_http_metric_u64(f, name, NULL, v);
}

static void one_signed(FILE *f, const char *name, const char *help, int64_t v)
{
    wc_http_metric_family(f, name, "gauge", help);
    wc_http_metric_i64(f, name, NULL, v);
}

/* ---------------------------------------------------------------------------------------
 * Request latency
 * ------------------------------------------------------------------------------------- */

static const char *const VERBS[WC_HTTP_VERB_COUNT] = {
    "other", "get", "list", "watch", "discovery", "health", "metrics",
};

/* Upper bounds in microseconds: a cached read takes from well under a millisecond (a get) to
 * seconds (a large list to a slow reader, or a read that waits for the cache). */
static const int64_t BOUNDS_US[WC_HTTP_LAT_BUCKETS] = {
    250,   500,    1000,   2500,   5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
};

int64_t wc_http_lat_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void wc_http_lat_observe(wc_http *h, wc_http_verb verb, unsigned code, int64_t us)
{
    if (code < 100 || code > 599 || verb >= WC_HTTP_VERB_COUNT)
        return;
    if (us < 0)
        us = 0;
    unsigned key = (unsigned)verb << 16 | code;
    for (size_t i = 0; i < WC_HTTP_LAT_SLOTS; i++) {
        wc_http_lat_slot *s = &h->lat[i];
        unsigned k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == 0) {
            unsigned zero = 0;
            if (atomic_compare_exchange_strong(&s->key, &zero, key))
                k = key;
            else
                k = zero; /* another request took it first: maybe for this series */
        }
        if (k != key)
            continue;
        size_t b = 0;
        while (b < WC_HTTP_LAT_BUCKETS && us > BOUNDS_US[b])
            b++;
        atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sum_us, (uint64_t)us, memory_order_relaxed);
        return;
    }
}

/* The histogram: cumulative buckets from one read of each slot's counts, so +Inf and _count
 * agree with the buckets whatever requests land meanwhile. */
static void latency(wc_http *h, FILE *f)
{
    static const char NAME[] = "wcached_http_request_duration_seconds";
    wc_http_metric_family(f, NAME, "histogram",
                          "Time from a request's arrival to its answer, by verb and code: for a "
                          "get or a list until its body is sent, for a watch until its headers "
                          "are (the stream that follows is not counted).");
    for (size_t i = 0; i < WC_HTTP_LAT_SLOTS; i++) {
        wc_http_lat_slot *s = &h->lat[i];
        unsigned key = atomic_load_explicit(&s->key, memory_order_acquire);
        if (!key)
            break; /* slots are claimed in order */
        char labels[96];
        uint64_t cum = 0;
        for (size_t b = 0; b <= WC_HTTP_LAT_BUCKETS; b++) {
            cum += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
            if (b < WC_HTTP_LAT_BUCKETS)
                snprintf(labels, sizeof(labels), "verb=\"%s\",code=\"%u\",le=\"%g\"",
                         VERBS[key >> 16], key & 0xffff, (double)BOUNDS_US[b] / 1e6);
            else
                snprintf(labels, sizeof(labels), "verb=\"%s\",code=\"%u\",le=\"+Inf\"",
                         VERBS[key >> 16], key & 0xffff);
            fprintf(f, "%s_bucket{%s} %" PRIu64 "\n", NAME, labels, cum);
        }
        snprintf(labels, sizeof(labels), "verb=\"%s\",code=\"%u\"", VERBS[key >> 16], key & 0xffff);
        fprintf(f, "%s_sum{%s} %.6f\n", NAME, labels,
                (double)atomic_load_explicit(&s->sum_us, memory_order_relaxed) / 1e6);
        fprintf(f, "%s_count{%s} %" PRIu64 "\n", NAME, labels, cum);
    }
}

char *wc_http_metrics(wc_http *h, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    wc_cacher_stats st;
    wc_cacher_stats_get(h->o.cacher, &st);

    one(f, "wcached_cache_ready", "gauge", "1 once the cache holds its first list.",
        wc_cacher_ready(h->o.cacher) ? 1 : 0);
    one_signed(f, "wcached_cache_revision", "Revision the cache is complete at.", st.rev);
    one(f, "wcached_keys", "gauge", "Keys held in the cache.", st.keys);
    one(f, "wcached_ring_events", "gauge", "Events held in the ring.", st.ring_events);
    one(f, "wcached_ring_bytes", "gauge",
        "Bytes the ring's events hold in memory: events, the states they keep, their encodings.",
        st.ring_bytes);
    one_signed(f, "wcached_ring_oldest_revision",
               "Oldest revision a watch can start from (the ring's floor).", st.floor);
    one(f, "wcached_events_received_total", "counter", "Changes published into the cache.",
        st.events_in);
    one(f, "wcached_events_stale_total", "counter",
        "Duplicate or older revisions from upstream, ignored.", st.events_stale);
    one(f, "wcached_deletes_unknown_total", "counter",
        "Deletes of keys the cache did not hold, ignored.", st.deletes_unknown);
    one(f, "wcached_non_object_values_skipped_total", "counter",
        "Values that are not JSON objects, left out of the Kubernetes routes.", st.non_object);
    one(f, "wcached_relists_total", "counter", "Relists after the first list.", st.relists);
    one(f, "wcached_cache_resets_total", "counter",
        "Relists that dropped the history and ended every watch (the list could not follow it).",
        st.resets);
    one(f, "wcached_watchers", "gauge", "Watchers registered in the cache.", st.watchers);
    one(f, "wcached_watchers_lagging", "gauge", "Watchers whose input queue overflowed.",
        st.watchers_lagging);
    one(f, "wcached_events_sent_total", "counter",
        "Frames (events and bookmarks) handed to watch streams.", st.frames_out);
    wc_http_metric_family(f, "wcached_watchers_terminated_total", "counter",
                          "Watchers ended, by reason.");
    for (int i = 0; i < WC_END_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", wc_end_reason_name((wc_end_reason)i));
        wc_http_metric_u64(f, "wcached_watchers_terminated_total", labels, st.ended[i]);
    }

    pthread_mutex_lock(&h->hook->mu);
    uint64_t streams = h->n_streams;
    pthread_mutex_unlock(&h->hook->mu);
    one(f, "wcached_http_streams", "gauge", "Watch streams open.", streams);
    one(f, "wcached_http_stream_sends_total", "counter",
        "Chunks of watch-stream bytes written to sockets.", atomic_load(&h->sends));
    one(f, "wcached_http_stream_rounds_inline_total", "counter",
        "Rounds of sends run by the thread that published a change, its pump being idle.",
        atomic_load(&h->rounds_here));
    one(f, "wcached_http_watches_refused_total", "counter",
        "Watches answered 429: --max-watches or --max-watches-per-user were open.",
        atomic_load(&h->watches_refused));
    one(f, "wcached_http_requests_inflight", "gauge",
        "Requests other than watches and probes being served.", atomic_load(&h->inflight));
    one(f, "wcached_http_requests_dropped_total", "counter",
        "Requests answered 429: --max-requests-inflight were in flight.",
        atomic_load(&h->inflight_dropped));
    one(f, "wcached_http_connections_refused_total", "counter",
        "Connections refused: --max-connections were open (closed at once, or answered 503 "
        "in the room kept for probes).",
        atomic_load(&h->refused));
    one(f, "wcached_http_header_timeouts_total", "counter",
        "Connections closed because a request's headers did not come in whole in time.",
        atomic_load(&h->header_timeouts));
    one(f, "wcached_http_hangups_total", "counter",
        "Readers that hung up while their stream was open.", atomic_load(&h->hangups));
    one(f, "wcached_http_consistent_reads_total", "counter",
        "Lookups of etcd's current revision for consistent reads.",
        atomic_load(&h->consistent_reads));
    wc_http_metric_family(f, "wcached_http_requests_total", "counter",
                          "HTTP requests answered, by code.");
    for (int code = 100; code < 600; code++) {
        uint64_t v = atomic_load_explicit(&h->codes[code], memory_order_relaxed);
        if (v) {
            char labels[16];
            snprintf(labels, sizeof(labels), "code=\"%d\"", code);
            wc_http_metric_u64(f, "wcached_http_requests_total", labels, v);
        }
    }
    latency(h, f);
    if (h->o.metrics) {
        fflush(f);
        h->o.metrics(h->o.cb_arg, f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
