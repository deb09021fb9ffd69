/* SPDX-License-Identifier: MIT */
/*
 * core/stream.c - exec_map_stream(): the map driver over input that does not fit in memory.
 *
 * The same job (struct exec__map) as exec_map(), over a window: the driver owns `window`
 * item slots (arguments, results, statuses), cut into chunks. It fills free chunk slots by
 * calling the producer on the calling thread, publishes them (`avail`), and the backend's
 * workers claim and run them exactly as they do for exec_map(); item i lives in slot
 * i % window. A chunk slot is free again once its results went to the consumer, so memory is
 * bounded by the window, whatever the input's length.
 *
 * Order. In order: the consumer gets chunk c once every item of c is accounted for and
 * every earlier chunk was delivered. Unordered: chunks are delivered as they complete
 * (pub[], as for exec_map_unordered); a slot is reused only when its own chunk was
 * delivered, so a slow chunk holds back production of its slot only.
 *
 * Stopping. A producer that returns a negative value stops production: what is in flight
 * completes and is delivered, then its value is returned. A consumer that returns non-zero
 * stops the map: items nobody claimed fail as cancelled, running chunks finish, nothing more
 * is delivered; EXEC_ECANCELLED. A cancelling exec_shutdown() fails the unclaimed items
 * (delivered as EXEC_ECANCELLED); a plain one lets the items produced so far finish and stops
 * production (the backend refuses new chunks): EXEC_ESHUTDOWN.
 */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"

#define DEFAULT_WINDOW 16384

/* The driver's state beside the job. */
struct stream {
    struct exec__map m;
    const struct exec__stream_call *a;
    exec_stream_opts_t *o;
    bool helper;
    bool *busy;       /* per chunk slot: produced and not yet delivered */
    size_t produced;  /* items handed to the workers (avail) */
    size_t pc, cc;    /* chunks produced, chunks delivered */
    size_t kc;        /* unordered: completions consumed from pub[] */
    bool eof;         /* no more input (end, producer error, refusal, stop) */
    bool stopped;     /* the consumer asked to stop: deliver nothing more */
    bool shut;        /* a cancelling shutdown stopped production */
    int perr;         /* the producer's negative value, or the backend's refusal */
};

static int check_call(struct exec *core, const struct exec__stream_call *a,
                      const exec_stream_opts_t *o)
{
    if (!a->fn || !a->produce || !a->consume || a->in_size == 0)
        return EXEC_EINVAL;
    if (!exec__all_zero(o->reserved, sizeof o->reserved) || (o->flags & ~EXEC_STREAM_UNORDERED))
        return EXEC_EINVAL;
    if (a->in_size > core->cfg.max_arg_size || a->out_size > core->cfg.max_result_size)
        return EXEC_ETOOBIG;
    return EXEC_OK;
}

static void stream_free(struct stream *s)
{
    free((void *)s->m.in);
    free(s->m.out);
    free(s->m.status);
    free(s->m.left);
    free((void *)s->m.pub);
    free(s->m.redo);
    free(s->busy);
    pthread_mutex_destroy(&s->m.redo_lock);
}

/* Sizes: the chunk (the caller's, or an eighth of the window per worker), then the window
 * rounded up to whole chunks. */
static int stream_init(struct stream *s, struct exec *core, const struct exec__stream_call *a,
                       exec_stream_opts_t *o)
{
    struct exec__map *m = &s->m;
    memset(s, 0, sizeof *s);
    s->a = a;
    s->o = o;
    size_t window = o->window ? o->window : DEFAULT_WINDOW;
    size_t chunk = o->chunk_size;
    if (!chunk)
        chunk = window / ((size_t)core->cfg.workers * 8);
    chunk = exec__map_chunk_limit(core, chunk, a->in_size, a->out_size);
    if (chunk > UINT32_MAX || window > SIZE_MAX - chunk)
        return EXEC_EINVAL;
    size_t nslots = (window + chunk - 1) / chunk;
    window = nslots * chunk;
    if (window > SIZE_MAX / a->in_size || (a->out_size && window > SIZE_MAX / a->out_size) ||
        window > SIZE_MAX / sizeof(int))
        return EXEC_EINVAL;
    m->core = core;
    m->fn = a->fn;
    m->in_size = a->in_size;
    m->out_size = a->out_size;
    m->chunk = chunk;
    m->span = window;
    m->n = SIZE_MAX;
    m->nslots = nslots;
    atomic_init(&m->first_failed, SIZE_MAX);
    pthread_mutex_init(&m->redo_lock, NULL);
    bool ok = (m->in = malloc(window * a->in_size)) != NULL;
    if (a->out_size)
        ok &= (m->out = malloc(window * a->out_size)) != NULL;
    ok &= (m->status = malloc(window * sizeof *m->status)) != NULL;
    ok &= (m->left = calloc(nslots, sizeof *m->left)) != NULL;
    ok &= (s->busy = calloc(nslots, sizeof *s->busy)) != NULL;
    if (o->flags & EXEC_STREAM_UNORDERED)
        ok &= (m->pub = calloc(nslots, sizeof *m->pub)) != NULL;
    if (core->ops->map_unclaims) {
        m->redo_cap = nslots;
        ok &= (m->redo = malloc(nslots * sizeof *m->redo)) != NULL;
    }
    if (!ok) {
        stream_free(s);
        return EXEC_ENOMEM;
    }
    return EXEC_OK;
}

/* Fill free chunk slots from the producer. Returns whether it published new items. */
static bool produce(struct stream *s)
{
    struct exec__map *m = &s->m;
    bool fresh = false;
    while (!s->eof && !s->busy[s->pc % m->nslots]) {
        size_t slot = s->pc % m->nslots, count = 0;
        unsigned char *base = (unsigned char *)m->in + slot * m->chunk * m->in_size;
        /* Fill the chunk; a producer may return fewer items than asked (a line at a time). */
        while (count < m->chunk) {
            size_t got = 0;
            int r = s->a->produce(base + count * m->in_size, m->chunk - count, m->in_size, &got,
                                  s->a->user_data);
            if (got > m->chunk - count)
                got = m->chunk - count; /* never believe more than asked for */
            count += got;
            if (r < 0 || got == 0) {
                s->eof = true;
                s->perr = r < 0 ? r : 0;
                break;
            }
        }
        if (!count)
            break;
        atomic_store_explicit(&m->left[slot], (uint32_t)count, memory_order_relaxed);
        s->busy[slot] = true;
        s->pc++;
        s->produced += count;
        /* Release: the items and left[] before any claim that sees them. */
        atomic_store_explicit(&m->avail, s->produced, memory_order_release);
        fresh = true;
        if (count < m->chunk)
            s->eof = true; /* a short chunk is the last one */
    }
    if (s->eof)
        m->n = s->produced;
    return fresh;
}

/* Hand chunk @c to the consumer (unless it asked to stop) and free its slot. */
static void deliver(struct stream *s, size_t c)
{
    struct exec__map *m = &s->m;
    size_t lo = c * m->chunk, hi = lo + m->chunk < s->produced ? lo + m->chunk : s->produced;
    if (!s->stopped &&
        s->a->consume(lo, hi - lo, exec__map_status(m, lo), exec__map_out(m, lo),
                      s->a->user_data) != 0) {
        s->stopped = true;
        s->eof = true;
        exec__map_stop(m, EXEC_ECANCELLED); /* what nobody claimed never runs */
    }
    s->busy[c % m->nslots] = false;
    s->cc++;
}

/* Deliver what is complete: in order, or in completion order. */
static void consume(struct stream *s)
{
    struct exec__map *m = &s->m;
    if (!m->pub) {
        while (s->cc < s->pc &&
               atomic_load_explicit(&m->left[s->cc % m->nslots], memory_order_acquire) == 0)
            deliver(s, s->cc);
        return;
    }
    for (;;) {
        _Atomic size_t *p = &m->pub[s->kc % m->nslots];
        size_t v = atomic_load_explicit(p, memory_order_acquire);
        if (!v)
            return;
        atomic_store_explicit(p, 0, memory_order_relaxed);
        s->kc++;
        deliver(s, v - 1);
    }
}

/* While production runs, sleep until half the window is done rather than until the next
 * chunk: the workers still hold half a window of work when the caller wakes, and the caller
 * wakes once per half window instead of once per chunk. Never above what was produced (all
 * of it will be accounted for), never lowered (see exec__map.wake_at). */
static void raise_wake_at(struct stream *s, size_t done)
{
    struct exec__map *m = &s->m;
    size_t want = done + 1;
    if (!s->eof && s->produced - done > m->span / 2)
        want = s->produced - m->span / 2;
    if (want > s->produced)
        want = s->produced;
    if (want > atomic_load_explicit(&m->wake_at, memory_order_relaxed))
        atomic_store_explicit(&m->wake_at, want, memory_order_seq_cst);
}

static void drive(struct stream *s)
{
    struct exec__map *m = &s->m;
    struct exec *core = m->core;
    exec_stream_opts_t *o = s->o;
    uint32_t interval = o->progress_interval_ms ? o->progress_interval_ms : 100;
    uint64_t next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
    for (;;) {
        size_t done = atomic_load_explicit(&m->accounted, memory_order_acquire);
        if (atomic_load_explicit(&m->cancelled, memory_order_acquire) && !s->stopped) {
            s->eof = true; /* a cancelling shutdown: produce nothing more */
            s->shut = true;
        }
        if (produce(s)) {
            int r = core->ops->map_start(core->impl, m);
            if (r) { /* refused (a shutdown): the items just produced never run */
                if (!s->perr)
                    s->perr = r;
                s->eof = true;
                exec__map_stop(m, r);
            }
        }
        consume(s);
        if (s->eof && done == s->produced && s->cc == s->pc)
            return;
        if (o->progress && exec__now_ns() >= next_progress) {
            o->progress(atomic_load_explicit(&m->ran, memory_order_relaxed),
                        s->eof ? s->produced : 0, o->progress_data);
            next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
        }
        /* Something new may come from the workers only, unless slots are free to fill. */
        if (done == atomic_load_explicit(&m->accounted, memory_order_acquire) &&
            (s->eof || s->busy[s->pc % m->nslots])) {
            raise_wake_at(s, done);
            exec__map_await(m, done, s->helper, o->progress ? next_progress : 0);
        }
    }
}

int exec__map_stream(struct exec *core, const struct exec__stream_call *a)
{
    exec_stream_opts_t zero = {0};
    exec_stream_opts_t *o = a->opts ? a->opts : &zero;
    int r = check_call(core, a, o);
    if (r)
        return r;
    o->items = o->failed = 0;
    o->first_failed = 0;
    struct stream s;
    bool helper;
    r = exec__map_enter(core, &helper);
    if (r)
        return r;
    r = stream_init(&s, core, a, o);
    if (r)
        return r;
    s.helper = helper;
    r = exec__map_register(&s.m);
    if (r) {
        stream_free(&s);
        return r;
    }
    r = core->ops->map_start(core->impl, &s.m);
    if (r) {
        exec__map_unregister(&s.m);
        stream_free(&s);
        return r;
    }
    drive(&s);
    core->ops->map_end(core->impl, &s.m);
    exec__map_unregister(&s.m);

    size_t ran = atomic_load(&s.m.ran), first = atomic_load(&s.m.first_failed);
    o->items = s.produced;
    o->failed = atomic_load(&s.m.failed);
    o->first_failed = first < s.produced ? first : s.produced;
    if (s.perr)
        r = s.perr;
    else if (s.stopped || s.shut)
        r = EXEC_ECANCELLED;
    else if ((r = atomic_load(&s.m.worst)) == EXEC_OK && o->failed)
        r = EXEC_ETASK;
    if (o->progress && ran == s.produced && !s.stopped && !s.perr)
        o->progress(ran, s.produced, o->progress_data);
    atomic_fetch_add_explicit(&core->cnt.map_items, ran, memory_order_relaxed);
    stream_free(&s);
    return r;
}
