/*
 * The cacher: the current state of one etcd key range, a bounded ring of its recent events,
 * and the cacheWatchers that serve readers out of them.
 *
 * Data moves one way. One producer thread (the upstream) publishes changes in revision order
 * with wc_cacher_apply/progress/replace. Each change becomes one immutable, refcounted
 * wc_event: the store's entry for the key is swapped, the event is appended to the ring, and a
 * reference to it is pushed onto the input queue of every watcher that may want it (the index
 * trigger narrows that set). Readers, on any number of consumer threads, pull bytes from their
 * watcher with wc_watcher_read(): the watcher filters its input through its selectors, turns
 * each event into a frame whose bytes are encoded once per event and shared by all watchers,
 * and copies frames out.
 *
 * Nothing here does I/O or knows HTTP or etcd: the cacher is tested without sockets.
 */
#ifndef WCACHED_CACHER_H
#define WCACHED_CACHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcached/err.h"
#include "wcached/change.h"

typedef struct wc_selector wc_selector; /* wcached/selector.h */
typedef struct wc_kv wc_kv;
typedef struct wc_event wc_event;
typedef struct wc_cacher wc_cacher;
typedef struct wc_watcher wc_watcher;

/* ---------------------------------------------------------------------------------------
 * Key-value states
 *
 * A wc_kv is one key's state as etcd reported it. It is immutable once made and refcounted;
 * the store holds one reference, each event that names it as its current or previous state
 * holds one, and each list snapshot holds one per item. It keeps its raw key and value and
 * what selectors and the index need, not a parsed tree nor its encodings: those are written
 * when a list, a get or an event needs them (wc_kv_encode).
 * ------------------------------------------------------------------------------------- */

/* The two ways objects are served: the raw /keys family and the Kubernetes routes. */
typedef enum wc_family {
    WC_FAMILY_KEYS = 0, /* {"kind":"KeyValue",...} wrapper around any value */
    WC_FAMILY_K8S = 1,  /* the value itself, which must be a JSON object */
} wc_family;
#define WC_FAMILY_COUNT 2

/*
 * Makes a state from `spec`, copying key and value and parsing the value once when it is a JSON
 * object (its labels, a few fields and index_field's value, when not NULL, are kept). Returns
 * NULL on allocation failure. The caller owns the one reference returned.
 */
wc_kv *wc_kv_new(const wc_kv_spec *spec, const char *index_field);
wc_kv *wc_kv_ref(wc_kv *kv);
void wc_kv_unref(wc_kv *kv); /* NULL is allowed */

const char *wc_kv_key(const wc_kv *kv, size_t *len);
const char *wc_kv_value(const wc_kv *kv, size_t *len);
int64_t wc_kv_mod_rev(const wc_kv *kv);
int64_t wc_kv_create_rev(const wc_kv *kv);
int64_t wc_kv_version(const wc_kv *kv);
int64_t wc_kv_lease(const wc_kv *kv);
bool wc_kv_is_object(const wc_kv *kv); /* the value parsed as a JSON object */

/*
 * The object as served by `family`, with metadata.resourceVersion = the kv's mod_rev: compact
 * JSON without a newline, written into `out` (NULL: only measured; else room for the length
 * measured). Returns its length, or 0 when the value cannot be served in that family: a
 * non-object value on the Kubernetes routes. Nothing is kept.
 */
size_t wc_kv_encode(const wc_kv *kv, wc_family family, char *out);

/* The same in a new malloc'd, NUL-terminated string the caller frees; NULL (and *len 0) when
 * the family cannot serve the value or on allocation failure. */
char *wc_kv_encode_new(const wc_kv *kv, wc_family family, size_t *len);

/*
 * The same encoding, made once per kv and family and kept, owned by the kv, for the kv's life:
 * for a caller that needs a pointer without owning it. It costs the encoding's size per state
 * it is called on, so lists and anything that walks many states use wc_kv_encode. Returns NULL
 * (and sets *len to 0) when the value cannot be served in that family.
 */
const char *wc_kv_render(wc_kv *kv, wc_family family, size_t *len);

/* ---------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------- */

typedef enum wc_ev_type {
    WC_EV_ADDED = 0,
    WC_EV_MODIFIED = 1,
    WC_EV_DELETED = 2,
} wc_ev_type;

/* An event shares its states; a reference keeps both alive. */
wc_event *wc_event_ref(wc_event *ev);
void wc_event_unref(wc_event *ev); /* NULL is allowed */
wc_ev_type wc_event_type(const wc_event *ev);
int64_t wc_event_rev(const wc_event *ev);
const wc_kv *wc_event_kv(const wc_event *ev);   /* new state; NULL for DELETED */
const wc_kv *wc_event_prev(const wc_event *ev); /* old state; NULL for ADDED */

/* ---------------------------------------------------------------------------------------
 * Filters: which keys and objects a list or a watch wants
 * ------------------------------------------------------------------------------------- */

typedef struct wc_filter {
    wc_family family;
    const char *key; /* exact key, or prefix when `prefix` */
    size_t key_len;
    bool prefix;
    const wc_selector *labels; /* borrowed; NULL = everything */
    const wc_selector *fields; /* borrowed; NULL = everything */
} wc_filter;

/* True when `kv` is in the filter's key range and matches its selectors and family. */
bool wc_filter_match(const wc_filter *f, const wc_kv *kv);

/* ---------------------------------------------------------------------------------------
 * The cacher
 * ------------------------------------------------------------------------------------- */

/* The defaults, in one place: the library, the daemon's flags, --help and the README use these
 * (a test holds the README's table to --help). */
#define WC_CACHER_RING_EVENTS 300000 /* 5 minutes at 1,000 changes/s */
#define WC_CACHER_RING_BYTES ((size_t)512 << 20)
#define WC_CACHER_INPUT_CAP 10
#define WC_CACHER_INPUT_CAP_WIDE 1000
#define WC_CACHER_SLOW_BUDGET_MS 2000
#define WC_CACHER_BOOKMARK_MS 30000

typedef struct wc_cacher_opts {
    size_t ring_events;           /* ring capacity in events; 0: WC_CACHER_RING_EVENTS */
    size_t ring_bytes;            /* ring bound in bytes its events hold; 0: WC_CACHER_RING_BYTES */
    const char *index_field;      /* index trigger path such as "spec.nodeName"; NULL for none */
    size_t input_cap;             /* watcher input queue; 0: WC_CACHER_INPUT_CAP */
    size_t input_cap_wide;        /* ... when an index exists and does not narrow it */
    int64_t slow_budget_ms;       /* how long a watcher may lag before it is ended */
    int64_t bookmark_ms;          /* BOOKMARK period for watchers that allow them */
    int64_t (*now_ms)(void *arg); /* monotonic clock in ms; NULL for CLOCK_MONOTONIC */
    void *clock_arg;
    /*
     * Called once after each published change, on the producer thread, with no cacher lock
     * held, so that the readers' side can wake the watchers marked by their `wake` callbacks
     * in one batch. May be NULL.
     */
    void (*after_dispatch)(void *arg);
    void *hook_arg;
} wc_cacher_opts;

/* Fills `o` with the defaults above. */
void wc_cacher_opts_default(wc_cacher_opts *o);

/* Returns a new, empty, not-ready cacher, or NULL on allocation failure. */
wc_cacher *wc_cacher_new(const wc_cacher_opts *o);

/* Ends every watcher (readers see the end of their streams) and frees the cacher once the
 * last watcher is closed. No producer call may run at the same time or follow. */
void wc_cacher_free(wc_cacher *c);

/* --- producer side: one thread, in revision order ------------------------------------ */

/*
 * Replaces the whole state with `kvs` (n states in any order, references borrowed), as listed
 * at revision `rev`. The first call loads the cache and makes it ready without any event. A
 * later call (a relist after compaction or a reconnect) turns the difference between the cache
 * and the list into events that tell the truth, published in revision order as one change:
 * ADDED / MODIFIED at the key's own mod_revision, DELETED at a revision of the gap (after the
 * cache's revision, at or before `rev`) that no other event of the relist uses; only when the
 * gap has no free revision left do several deletions share `rev`. When the list cannot follow
 * the cache's history (a key changed at a revision the cache already holds), or with `force`
 * (an upstream proven to have gone back), the history is dropped instead: every watcher is
 * ended (WC_END_RESET) and the state replaced. Returns 0; WC_ESTALE, changing nothing, when
 * `rev` is older than the cache and not `force`; or WC_ENOMEM.
 */
int wc_cacher_replace(wc_cacher *c, wc_kv *const *kvs, size_t n, int64_t rev, bool force);

/* wc_cacher_replace of states made from `specs` (borrowed). A big list's values are parsed on
 * every core, a few short-lived threads that end before it returns: most of a cold start's
 * work. Returns as wc_cacher_replace. */
int wc_cacher_replace_specs(wc_cacher *c, const wc_kv_spec *specs, size_t n, int64_t rev,
                            bool force);

/*
 * wc_cacher_replace_specs of a list at `rev` whose history of (from, rev] follows through
 * wc_cacher_backfill (from < rev; from == rev: none). When the list loads the cache from scratch
 * (the first list, or one that drops the history), readers are served at once, from `rev`; a
 * watch from a revision in [from, rev) waits for the history instead of being refused, and a
 * list or range at one answers WC_ENOTREADY, until it is in (or given up). Otherwise `from` is
 * not used. Returns as wc_cacher_replace.
 */
int wc_cacher_refill_specs(wc_cacher *c, const wc_kv_spec *specs, size_t n, int64_t rev,
                           int64_t from, bool force);

/*
 * A list loaded as its pages arrive: the states of each page are made (values parsed) while
 * etcd sends the next, and the whole is handed over at the end as one
 * wc_cacher_refill_specs would (`from` as there; `rev` for a plain list). The progress (keys
 * and bytes so far, and `expected`, the count etcd reported; 0 when unknown) shows in
 * wc_cacher_stats while it lasts. One loader at a time, on the producer thread.
 * wc_cacher_load_begin returns NULL on allocation failure. wc_cacher_load_add returns 0 or
 * WC_ENOMEM (the loader stays usable for abort). wc_cacher_load_end replaces the state with
 * everything added (and returns as wc_cacher_replace does), and frees the loader;
 * wc_cacher_load_abort drops it.
 */
typedef struct wc_cacher_loader wc_cacher_loader;
wc_cacher_loader *wc_cacher_load_begin(wc_cacher *c, int64_t expected);
int wc_cacher_load_add(wc_cacher_loader *l, const wc_kv_spec *specs, size_t n);
int wc_cacher_load_end(wc_cacher_loader *l, int64_t rev, int64_t from, bool force);
void wc_cacher_load_abort(wc_cacher_loader *l);

/*
 * The history a load announced (wc_cacher_refill_specs): every change of the range in
 * (from, to], in revision order, each with the key's state before it (`prev`, needed for the
 * first change of a key that existed before `from`, a deletion above all). The changes become
 * events as a live watch would have published them, put before the ring's oldest: as many of
 * the newest whole revisions as the ring's bounds leave room for, the floor going down to what
 * it holds. The watchers that waited catch up from their revision, or, older than the floor
 * now, end (WC_END_EXPIRED: the reader's resume is refused with 410). Returns 0; WC_ESTALE,
 * changing nothing, when (from, to] is not the history awaited (another list came), or when the
 * ring already let go of its oldest event (the waiters end); WC_EINVAL for changes outside
 * (from, to] or out of order, WC_EPROTO for a deletion, or a change of a key made before it,
 * without the state it replaced, or WC_ENOMEM, each ending the waiters.
 */
int wc_cacher_backfill(wc_cacher *c, int64_t from, int64_t to, const wc_change *changes, size_t n);

/* The history a load announced will not come (the upstream lost it): the watchers that waited
 * for it end (WC_END_EXPIRED), and reads at its revisions are refused (410) again. */
void wc_cacher_backfill_abandon(wc_cacher *c);

/*
 * Publishes the changes of one upstream response (n >= 1), in revision order, as one change:
 * watchers see all of it or none, and its last revision is complete afterwards. A put is ADDED
 * if the key is new, else MODIFIED, at the put's mod_rev; a delete is at its kv.mod_rev. A change
 * at or below a revision the cache holds is a duplicate, and a delete of a key the cache does
 * not hold is ignored: both are counted and skipped. Returns 0 (for one change: WC_ESTALE or
 * WC_ENOENT when it was skipped), WC_ENOTREADY before the first replace, or WC_ENOMEM (the batch
 * may be half-applied, its revision not complete: relist).
 */
int wc_cacher_apply(wc_cacher *c, const wc_change *changes, size_t n);

/* One put or one delete as a batch of its own (a revision with one change). */
int wc_cacher_put(wc_cacher *c, const wc_kv_spec *spec);
int wc_cacher_delete(wc_cacher *c, const char *key, size_t key_len, int64_t rev);

/* Advances the cache's revision to `rev` without a change (an upstream progress notification).
 * Returns WC_ESTALE for an older revision. */
int wc_cacher_progress(wc_cacher *c, int64_t rev);

/* Ends watchers that lagged past the budget and queues due BOOKMARKs. Call about once a
 * second from any thread. */
void wc_cacher_tick(wc_cacher *c);

/* --- readers' side: any thread ------------------------------------------------------- */

/* True once a list is loaded: readers are served. */
bool wc_cacher_ready(wc_cacher *c);
int64_t wc_cacher_rev(wc_cacher *c);

/* Waits until the cache's revision is at least `rev` or `timeout_ms` passes.
 * Returns 0, WC_ETIMEDOUT, or WC_ENOTREADY if the cache never got ready. */
int wc_cacher_wait_rev(wc_cacher *c, int64_t rev, int64_t timeout_ms);

/* Range of revisions watchable now: a watch from RV N is served iff floor <= N; events with
 * revisions in (floor, rev] are all in the ring. */
int64_t wc_cacher_floor(wc_cacher *c);

/* A consistent snapshot of states in key order, as of revision `rev`. */
typedef struct wc_list {
    wc_kv **items; /* n references, released by wc_list_release */
    size_t n;
    int64_t rev;
    bool more;      /* a page was cut by `limit` */
    char *next_key; /* when more: the first key of the next page (NUL-terminated) */
    size_t next_key_len;
} wc_list;

/*
 * Lists the states that match `f` as of revision `at_rev` (0: the current state), starting at
 * key `start` (inclusive; NULL for the range's beginning), at most `limit` of them (0 for no
 * limit). A past revision is rebuilt from the store and the ring's previous states, so it is
 * exact for any at_rev >= the floor. Returns 0; WC_EEXPIRED when at_rev is older than the floor
 * (HTTP 410); WC_ETIMEDOUT when at_rev is newer than the cache (the caller waits first);
 * WC_ENOTREADY; or WC_ENOMEM.
 */
int wc_cacher_list(wc_cacher *c, const wc_filter *f, int64_t at_rev, const char *start,
                   size_t start_len, size_t limit, wc_list *out);
void wc_list_release(wc_list *l);

/*
 * The states of the keys in [key, end) as of revision `at_rev` (0: the current state), in key
 * order, all of them (etcd's range: the caller counts, sorts and cuts): `end` NULL for the one
 * key `key`, or end_len 0 with a non-NULL `end` for every key from `key` on. Returns as
 * wc_cacher_list (out->rev is the revision the states are at).
 */
int wc_cacher_range(wc_cacher *c, const char *key, size_t key_len, const char *end, size_t end_len,
                    int64_t at_rev, wc_list *out);
/* (For wc_cacher_range, out->rev is the cache's revision, as etcd's header says.) */

/* One key's state: 0 with a reference in *out (and the cache's revision in *rev), WC_ENOENT,
 * or WC_ENOTREADY. */
int wc_cacher_get(wc_cacher *c, const char *key, size_t key_len, wc_kv **out, int64_t *rev);

/* Counters for /metrics; a consistent-enough copy taken under the lock. */
typedef enum wc_end_reason {
    WC_END_CLOSED = 0, /* the reader left */
    WC_END_TIMEOUT,    /* timeoutSeconds ran out */
    WC_END_SLOW,       /* its queues stayed full past the budget */
    WC_END_EXPIRED,    /* it lagged so far that its position left the ring */
    WC_END_RESET,      /* the upstream went back and history was dropped */
    WC_END_SHUTDOWN,   /* the cacher is being freed */
    WC_END_COUNT
} wc_end_reason;

/* The reason's name for a metric label ("closed", "timeout", "slow", ...), and a few words for a
 * person ("timeoutSeconds reached", "too slow", ...); "?" outside the enum. */
const char *wc_end_reason_name(wc_end_reason r);
const char *wc_end_reason_text(wc_end_reason r);

typedef struct wc_cacher_stats {
    int64_t rev, floor;
    uint64_t keys;
    uint64_t ring_events;
    uint64_t ring_bytes;      /* what the ring's events hold in memory: each event, the state it
                                 keeps alive and its encodings, malloc's overhead included */
    uint64_t events_in;       /* changes published */
    uint64_t events_stale;    /* duplicates or older revisions ignored */
    uint64_t deletes_unknown; /* deletes of keys the cache did not hold */
    uint64_t non_object;      /* values left out of the Kubernetes routes */
    uint64_t watchers;        /* registered now */
    uint64_t watchers_lagging;
    uint64_t frames_out; /* frames handed to readers */
    uint64_t ended[WC_END_COUNT];
    uint64_t relists;
    uint64_t resets;     /* relists that dropped the history and ended every watcher */
    bool backfilling;    /* a start's history is awaited (wc_cacher_backfill) */
    uint64_t backfilled; /* events a backfill put into the ring */
    /* A list being loaded page by page (wc_cacher_load_begin): keys and value bytes so far,
     * and the count etcd reported (0: unknown). */
    bool loading;
    uint64_t load_keys, load_bytes;
    int64_t load_expected;
} wc_cacher_stats;

void wc_cacher_stats_get(wc_cacher *c, wc_cacher_stats *out);

/* ---------------------------------------------------------------------------------------
 * Watchers
 * ------------------------------------------------------------------------------------- */

#define WC_RV_UNSET (-1)

typedef struct wc_watch_opts {
    wc_filter filter;          /* key range and family; its labels/fields are ignored (see below) */
    wc_selector *labels_owned; /* moved into the watcher on success (freed with it); still */
    wc_selector *fields_owned; /* the caller's when wc_cacher_watch fails. NULL: match all */
    int64_t rv;                /* WC_RV_UNSET, 0, or N: events after N */
    bool send_initial;         /* with rv unset/0: stream the state as ADDED events first */
    bool initial_end_bookmark; /* after the initial state, a BOOKMARK marked
                                  k8s.io/initial-events-end (sendInitialEvents=true) */
    bool allow_bookmarks;
    /* The reader takes events, not encoded frames (wc_watcher_read_events): nothing is
     * rendered; the filter's family and selectors are not used. */
    bool raw_events;
    int64_t deadline_ms;     /* on the cacher's clock; 0 for none */
    const char *kind;        /* for BOOKMARK objects, e.g. "Pod"; copied */
    const char *api_version; /* e.g. "v1"; copied */
    /*
     * Called when the watcher goes from nothing-to-read to something-to-read (once per wait of
     * its reader), and when it ends (whether its reader waits or not), from
     * the producer or tick thread, with cacher locks held: it must only mark the reader for a
     * later batched wake (see after_dispatch) and must not call into the cacher.
     */
    void (*wake)(void *arg);
    void *wake_arg;
} wc_watch_opts;

/*
 * Registers a watcher. Replay and registration happen under one lock, so the first live event
 * follows the last replayed one with no gap and no duplicate. Returns 0 and *out (owned by the
 * caller until wc_watcher_free), WC_EEXPIRED when opts->rv is older than the ring's floor
 * (*floor_out tells the floor, for the 410 message), WC_ENOTREADY, or WC_ENOMEM.
 */
int wc_cacher_watch(wc_cacher *c, const wc_watch_opts *opts, wc_watcher **out, int64_t *floor_out);

/*
 * Copies up to `max` bytes of whole or partial frames into `buf`. Returns 0 with *n > 0; or
 * WC_EAGAIN with *n == 0 when nothing is ready (the watcher's wake callback fires when there
 * is); or WC_EOF when the stream has ended (*n == 0), after its last frame was read.
 */
int wc_watcher_read(wc_watcher *w, char *buf, size_t max, size_t *n);

/*
 * For a watcher made with raw_events, instead of wc_watcher_read: up to `max` events in order
 * into `out` (references the caller releases), and in *progress a revision up to which the
 * reader has everything, when a bookmark fell due (0: none). Returns 0 with *n events or a
 * progress; WC_EAGAIN when nothing is ready (the wake callback fires when there is); WC_EOF
 * once the watcher has ended and everything queued was read; or WC_ENOMEM.
 */
int wc_watcher_read_events(wc_watcher *w, wc_event **out, size_t max, size_t *n, int64_t *progress);

/* True once the watcher has ended (its reader will see WC_EOF after what is still queued):
 * lets a reader that cannot send right now tell an end it must act on from plain new events. */
bool wc_watcher_ended(wc_watcher *w);

/* Why the stream ended, once wc_watcher_read returned WC_EOF. */
wc_end_reason wc_watcher_end_reason(wc_watcher *w);

/* The revision the reader can resume from after what it has read so far. */
int64_t wc_watcher_rv(wc_watcher *w);

/* The reader leaves: unregisters the watcher and frees it. Call exactly once. */
void wc_watcher_free(wc_watcher *w);

#endif
