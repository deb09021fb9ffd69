/* SPDX-License-Identifier: MIT */
/*
 * core/map.h - the one map driver's side that backends see. exec_map() and
 * exec_map_unordered() are written once, in core/map.c: it checks the input, sizes chunks,
 * keeps per-item statuses, delivers results in order or as they come, reports progress,
 * cancels what has not started at a cancelling shutdown and writes the summary. A backend
 * only runs chunks: its workers claim item ranges and say how each range ended.
 *
 * The contract, for a backend (every function may be called from any thread of it):
 *   - map_start(impl, m) makes @m findable by its workers; map_end(impl, m) forgets it. The
 *     driver calls map_end only after every item was accounted for, and the backend must not
 *     touch @m after map_end returns (so: look @m up and claim under one lock that map_end
 *     takes too).
 *   - exec__map_claim() hands out a range [lo, hi) of at most m->chunk items, never crossing
 *     a chunk boundary. Each claimed range must then be accounted for exactly once, possibly
 *     in pieces, by exec__map_ran(), exec__map_fail() or exec__map_unclaim(). The call that
 *     accounts for the last item of the map is the last touch of @m allowed.
 *   - A claimed range is contiguous in memory: its arguments start at exec__map_in(m, lo),
 *     its results go to exec__map_out(m, lo) (NULL when out_size is 0) and its statuses to
 *     exec__map_status(m, lo) (NULL when nobody asked for them), one element per item,
 *     written before the range is accounted for. (A streaming map keeps only a window of
 *     items in memory: item i lives at slot i % span; a claim never wraps.)
 * One failure semantics on every backend: an item that ran keeps its status and result; an
 * item a shutdown cancelled before it ran is EXEC_ECANCELLED; an item whose worker died
 * under it is EXEC_ECRASHED; items a backend could not run (a broken pool) get its code.
 */
#ifndef EXEC_CORE_MAP_H
#define EXEC_CORE_MAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/list.h"
#include "executor.h"

struct exec;

/* A range of items handed back by a backend, waiting to be claimed again. */
struct exec__map_range {
    size_t lo, hi;
};

struct exec__map {
    /* The work; read-only for backends (use the accessors below for item memory). */
    exec_task_fn *fn;
    size_t in_size;
    size_t out_size;
    size_t chunk;       /* items per chunk; a claim never crosses a multiple of it */

    /* The driver's: item memory (span slots), the item count (SIZE_MAX while a stream's
     * producer has not said it ended) and how many items may be claimed so far. */
    const unsigned char *in;
    unsigned char *out; /* NULL when out_size is 0 */
    int *status;        /* per slot, or NULL */
    size_t span;
    size_t n;
    _Atomic size_t avail;

    /* The backend's: a node it may use to list the map (under its own lock), and one word. */
    struct exec__list link;
    void *backend;

    /* The driver's own (core/map.c). */
    struct exec *core;
    struct exec__list active;     /* in core->maps while running (core->map_lock) */
    size_t nchunks;               /* arrays: chunks in all */
    size_t nslots;                /* chunk slots of left[] and pub[] (chunk c: c % nslots) */
    _Atomic size_t next;          /* first item never claimed */
    _Atomic bool cancelled;       /* a cancelling shutdown came: claim nothing more */
    pthread_mutex_t redo_lock;    /* protects redo[] and nredo's writes */
    struct exec__map_range *redo; /* ranges handed back (unclaim), a stack */
    _Atomic size_t nredo;
    size_t redo_cap;
    _Atomic size_t ran, failed, first_failed;
    _Atomic int worst;            /* the map-wide error code, see worse() */
    /* exec_map_unordered: items left per chunk, and chunks in completion order. */
    _Atomic uint32_t *left;
    _Atomic size_t *pub;          /* chunk index + 1, in the order chunks completed (a ring
                                   * of nslots: at most nslots chunks are out at once) */
    _Atomic size_t npub;
    _Atomic size_t accounted;     /* items accounted for; the map ends at n (last touch) */
    /* The caller sleeps until `accounted` reaches this (0: until any accounting). Only ever
     * raised, and read by workers before their add to `accounted`, so a stale value they
     * read is never above the caller's current one: no wake-up is lost. */
    _Atomic size_t wake_at;
};

/* Where item @i's argument, result and status live (the start of a claimed range). */
static inline const unsigned char *exec__map_in(const struct exec__map *m, size_t i)
{
    return m->in + (i % m->span) * m->in_size;
}

static inline unsigned char *exec__map_out(const struct exec__map *m, size_t i)
{
    return m->out ? m->out + (i % m->span) * m->out_size : NULL;
}

static inline int *exec__map_status(const struct exec__map *m, size_t i)
{
    return m->status ? m->status + i % m->span : NULL;
}

/* Claim the next range of items to run: [*lo, *hi). False when nothing is left to claim. */
bool exec__map_claim(struct exec__map *m, size_t *lo, size_t *hi);
/* Items [lo, hi) of a claimed range ran (results and statuses written); @nfailed of them
 * returned non-zero, the first of those at @first_failed (anything >= hi if none). */
void exec__map_ran(struct exec__map *m, size_t lo, size_t hi, size_t nfailed,
                   size_t first_failed);
/* Items [lo, hi) of a claimed range did not run and never will: each fails with @code. */
void exec__map_fail(struct exec__map *m, size_t lo, size_t hi, int code);
/* Items [lo, hi) of a claimed range never started: they may be claimed again (true; keep the
 * map where the workers look), or a cancelling shutdown ended them as cancelled (false). */
bool exec__map_unclaim(struct exec__map *m, size_t lo, size_t hi);
/* Fail every item nobody claimed yet with @code (a backend that can run nothing more). */
void exec__map_fail_unclaimed(struct exec__map *m, int code);
/* Whether a claim may find work now. */
bool exec__map_has_work(struct exec__map *m);

/* For the front: the exec_map() entry points share this. */
struct exec__map_call {
    exec_task_fn *fn;
    const void *in;
    size_t in_size;
    void *out;
    size_t out_size;
    size_t n;
    exec_item_fn *on_item; /* NULL for the ordered exec_map() */
    void *user_data;
    exec_map_opts_t *opts; /* may be NULL */
};
int exec__map_run(struct exec *core, const struct exec__map_call *call);

/* For the front: exec_map_stream() (core/stream.c). */
struct exec__stream_call {
    exec_task_fn *fn;
    size_t in_size, out_size;
    exec_producer_fn *produce;
    exec_consumer_fn *consume;
    void *user_data;
    exec_stream_opts_t *opts; /* may be NULL */
};
int exec__map_stream(struct exec *core, const struct exec__stream_call *call);

/* The driver's own pieces, shared by exec_map (map.c) and exec_map_stream (stream.c). */
/* May @core run a map now? *helper: the caller is one of its workers (it must help). */
int exec__map_enter(struct exec *core, bool *helper);
/* Make @m reachable by exec__maps_cancel() (EXEC_ESHUTDOWN once shut), and unreachable. */
int exec__map_register(struct exec__map *m);
void exec__map_unregister(struct exec__map *m);
/* @chunk, within what the backend can run at once (at least 1). */
size_t exec__map_chunk_limit(struct exec *core, size_t chunk, size_t in_size,
                             size_t out_size);
/* Sleep until items are accounted for beyond @seen_accounted (and up to m->wake_at, when
 * the driver raised it), or @until (0 = none); a helper runs queued work instead. */
void exec__map_await(struct exec__map *m, size_t seen_accounted, bool helper, uint64_t until);
/* Claim nothing more of @m; what nobody claimed yet fails with @code. */
void exec__map_stop(struct exec__map *m, int code);
/* A cancelling shutdown: every running map claims nothing more, and what it had not
 * claimed ends as EXEC_ECANCELLED. */
void exec__maps_cancel(struct exec *core);

#endif /* EXEC_CORE_MAP_H */
