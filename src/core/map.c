/* SPDX-License-Identifier: MIT */
/*
 * core/map.c - the one map driver (exec_map, exec_map_unordered) for every backend.
 *
 * The driver owns the job (on its caller's stack): which items are claimed, how each item
 * ended, the summary. Workers of the backend claim ranges of items with one CAS on `next`
 * (so the schedule is dynamic and nothing is allocated per item or per chunk) and account
 * for each range once. A range a backend hands back (its worker retired or was killed before
 * starting it) goes on a small stack that claims look at first.
 *
 * Waking the caller. Every accounting bumps core->map_word and wakes the callers that sleep
 * on it, unless the map's caller asked to sleep until more items are done (wake_at: a
 * streaming map waits for half its window, so that it is woken once per half window rather
 * than once per chunk). The word and the sleeper count live in the core, not in the job:
 * the accounting of the last item is the last touch of the job, after which its caller may
 * return and the job vanish, while the core outlives every map running on it.
 *
 * The unordered variant publishes a chunk when its last item is accounted for (pub[], in
 * completion order) and the caller hands that chunk's items to on_item. A chunk's items may
 * be accounted for in pieces (a crash in the middle of a chunk on processes), so a count of
 * items left per chunk says when it is complete.
 */
#include "core/map.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"

/* How long a map's caller polls for news before it sleeps in the kernel. */
#define MAP_SPIN_NS 20000u

/* Which map-wide error wins when items failed in several ways. */
static int worse(int a, int b)
{
    static const int order[] = {EXEC_ECRASHED, EXEC_EBROKEN, EXEC_ESYS, EXEC_ENOMEM,
                                EXEC_ECANCELLED};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (a == order[i] || b == order[i])
            return order[i];
    return a ? a : b;
}

static void atomic_min_size(_Atomic size_t *p, size_t v)
{
    size_t cur = atomic_load_explicit(p, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(p, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

/* Items [lo, hi) are accounted for. The add to `accounted` is the last touch of @m. */
static void account(struct exec__map *m, size_t lo, size_t hi)
{
    struct exec *core = m->core;
    size_t k = hi - lo;
    if (m->left) {
        size_t c = lo / m->chunk;
        if (atomic_fetch_sub_explicit(&m->left[c % m->nslots], (uint32_t)k,
                                      memory_order_acq_rel) == k && m->pub) {
            size_t k2 = atomic_fetch_add_explicit(&m->npub, 1, memory_order_relaxed);
            atomic_store_explicit(&m->pub[k2 % m->nslots], c + 1, memory_order_release);
        }
    }
    size_t wake_at = atomic_load_explicit(&m->wake_at, memory_order_seq_cst);
    size_t now = atomic_fetch_add_explicit(&m->accounted, k, memory_order_seq_cst) + k;
    atomic_fetch_add_explicit(&core->map_word, 1, memory_order_seq_cst);
    if (now >= wake_at && atomic_load_explicit(&core->map_sleepers, memory_order_seq_cst))
        exec__futex_wake(&core->map_word, INT_MAX);
}

bool exec__map_claim(struct exec__map *m, size_t *lo, size_t *hi)
{
    if (atomic_load_explicit(&m->cancelled, memory_order_acquire))
        return false;
    if (atomic_load_explicit(&m->nredo, memory_order_acquire)) {
        bool got = false;
        pthread_mutex_lock(&m->redo_lock);
        size_t n = atomic_load_explicit(&m->nredo, memory_order_relaxed);
        if (n) {
            *lo = m->redo[n - 1].lo;
            *hi = m->redo[n - 1].hi;
            atomic_store_explicit(&m->nredo, n - 1, memory_order_release);
            got = true;
        }
        pthread_mutex_unlock(&m->redo_lock);
        if (got)
            return true;
    }
    size_t avail = atomic_load_explicit(&m->avail, memory_order_acquire);
    size_t cur = atomic_load_explicit(&m->next, memory_order_relaxed);
    for (;;) {
        if (cur >= avail)
            return false;
        /* Never past the end of the chunk: a stream's producer publishes whole chunks but
         * the last, and a chunk's slots are contiguous. */
        size_t cend = (cur / m->chunk + 1) * m->chunk;
        size_t end = cend < avail ? cend : avail;
        if (atomic_compare_exchange_weak_explicit(&m->next, &cur, end, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            *lo = cur;
            *hi = end;
            return true;
        }
    }
}

bool exec__map_has_work(struct exec__map *m)
{
    return !atomic_load_explicit(&m->cancelled, memory_order_acquire) &&
           (atomic_load_explicit(&m->nredo, memory_order_acquire) ||
            atomic_load_explicit(&m->next, memory_order_acquire) <
                atomic_load_explicit(&m->avail, memory_order_acquire));
}

void exec__map_ran(struct exec__map *m, size_t lo, size_t hi, size_t nfailed,
                   size_t first_failed)
{
    if (lo == hi)
        return;
    atomic_fetch_add_explicit(&m->ran, hi - lo, memory_order_relaxed);
    if (nfailed) {
        atomic_fetch_add_explicit(&m->failed, nfailed, memory_order_relaxed);
        atomic_min_size(&m->first_failed, first_failed);
    }
    account(m, lo, hi);
}

void exec__map_fail(struct exec__map *m, size_t lo, size_t hi, int code)
{
    if (lo == hi)
        return;
    int *st = exec__map_status(m, lo); /* [lo, hi) never crosses a chunk: contiguous */
    if (st)
        for (size_t i = 0; i < hi - lo; i++)
            st[i] = code;
    atomic_fetch_add_explicit(&m->failed, hi - lo, memory_order_relaxed);
    atomic_min_size(&m->first_failed, lo);
    int w = atomic_load_explicit(&m->worst, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->worst, &w, worse(w, code),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    account(m, lo, hi);
}

bool exec__map_unclaim(struct exec__map *m, size_t lo, size_t hi)
{
    if (lo == hi)
        return exec__map_has_work(m);
    pthread_mutex_lock(&m->redo_lock);
    /* Checked under the lock that exec__maps_cancel() takes to empty the stack: a range
     * pushed here is either failed by it or by us, never stranded. */
    bool cancelled = atomic_load_explicit(&m->cancelled, memory_order_acquire);
    if (!cancelled) {
        size_t n = atomic_load_explicit(&m->nredo, memory_order_relaxed);
        EXEC__ASSERT(n < m->redo_cap);
        m->redo[n].lo = lo;
        m->redo[n].hi = hi;
        atomic_store_explicit(&m->nredo, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->redo_lock);
    if (cancelled)
        exec__map_fail(m, lo, hi, EXEC_ECANCELLED);
    return !cancelled;
}

/* Take every range nobody holds (the stack and the unclaimed tail) and fail it. */
static void fail_free_ranges(struct exec__map *m, int code)
{
    pthread_mutex_lock(&m->redo_lock);
    size_t n = atomic_exchange_explicit(&m->nredo, 0, memory_order_acq_rel);
    size_t avail = atomic_load_explicit(&m->avail, memory_order_acquire);
    size_t start = atomic_exchange_explicit(&m->next, avail, memory_order_acq_rel);
    pthread_mutex_unlock(&m->redo_lock);
    /* The stack's ranges are ours now: nobody pushes or pops without the lock. */
    struct exec__map_range tail = {start < avail ? start : avail, avail};
    for (size_t i = 0; i < n; i++)
        exec__map_fail(m, m->redo[i].lo, m->redo[i].hi, code);
    /* Fail the tail chunk by chunk: a piece never crosses a chunk (unordered bookkeeping). */
    for (size_t lo = tail.lo; lo < tail.hi;) {
        size_t end = (lo / m->chunk + 1) * m->chunk;
        if (end > tail.hi)
            end = tail.hi;
        exec__map_fail(m, lo, end, code);
        lo = end;
    }
}

void exec__map_fail_unclaimed(struct exec__map *m, int code)
{
    fail_free_ranges(m, code);
}

void exec__map_stop(struct exec__map *m, int code)
{
    pthread_mutex_lock(&m->redo_lock);
    atomic_store_explicit(&m->cancelled, true, memory_order_release);
    pthread_mutex_unlock(&m->redo_lock);
    fail_free_ranges(m, code);
}

void exec__maps_cancel(struct exec *core)
{
    pthread_mutex_lock(&core->map_lock);
    /* A map cannot end and leave the list while we hold map_lock (its caller takes it to
     * unlist), so touching it after its last item is accounted for is still safe. */
    for (struct exec__list *l = exec__list_first(&core->maps); l;
         l = exec__list_next(&core->maps, l))
        exec__map_stop(EXEC__CONTAINER_OF(l, struct exec__map, active), EXEC_ECANCELLED);
    pthread_mutex_unlock(&core->map_lock);
}

/* ---------------------------------------------------------------------------------------- */
/* The driver                                                                                */
/* ---------------------------------------------------------------------------------------- */

static int check_call(struct exec *core, const struct exec__map_call *a, exec_map_opts_t *o)
{
    if (!a->fn || !a->in || a->n == 0 || a->in_size == 0 || (!a->out && a->out_size))
        return EXEC_EINVAL;
    if (!exec__all_zero(o->reserved, sizeof o->reserved))
        return EXEC_EINVAL;
    if (a->n > SIZE_MAX / a->in_size || (a->out_size && a->n > SIZE_MAX / a->out_size))
        return EXEC_EINVAL;
    if (a->in_size > core->cfg.max_arg_size || a->out_size > core->cfg.max_result_size)
        return EXEC_ETOOBIG;
    return EXEC_OK;
}

size_t exec__map_chunk_limit(struct exec *core, size_t chunk, size_t in_size,
                             size_t out_size)
{
    size_t (*limit)(void *, size_t, size_t) = EXEC__OP(core->ops, chunk_max, 1);
    if (limit) {
        size_t max = limit(core->impl, in_size, out_size);
        if (max && chunk > max)
            chunk = max;
    }
    return chunk ? chunk : 1;
}

/* Chunk size: the caller's, or eight chunks per worker (enough to balance uneven items, few
 * enough that the per-chunk cost vanishes), within what the backend can run at once. */
static size_t chunk_size(struct exec *core, const struct exec__map_call *a,
                         const exec_map_opts_t *o)
{
    size_t chunk = o->chunk_size;
    if (!chunk) {
        size_t target = (size_t)core->cfg.workers * 8;
        chunk = (a->n + target - 1) / target;
    }
    return exec__map_chunk_limit(core, chunk, a->in_size, a->out_size);
}

static void job_free(struct exec__map *m, const exec_map_opts_t *o)
{
    if (m->status != o->status)
        free(m->status);
    free(m->left);
    free((void *)m->pub);
    free(m->redo);
    pthread_mutex_destroy(&m->redo_lock);
}

static int job_init(struct exec__map *m, struct exec *core, const struct exec__map_call *a,
                    const exec_map_opts_t *o)
{
    memset(m, 0, sizeof *m);
    m->core = core;
    m->fn = a->fn;
    m->in = a->in;
    m->in_size = a->in_size;
    m->out = a->out_size ? a->out : NULL;
    m->out_size = a->out_size;
    m->n = a->n;
    m->status = o->status;
    m->span = a->n;
    atomic_init(&m->avail, a->n);
    m->chunk = chunk_size(core, a, o);
    m->nchunks = (a->n + m->chunk - 1) / m->chunk;
    m->nslots = m->nchunks;
    if (m->nchunks > UINT32_MAX - 1 || m->chunk > UINT32_MAX)
        return EXEC_EINVAL;
    atomic_init(&m->first_failed, a->n);
    pthread_mutex_init(&m->redo_lock, NULL);
    bool ok = true;
    if (core->ops->map_unclaims) {
        m->redo_cap = m->nchunks;
        ok &= (m->redo = malloc(m->nchunks * sizeof *m->redo)) != NULL;
    }
    if (a->on_item) {
        if (!m->status)
            ok &= (m->status = malloc(a->n * sizeof *m->status)) != NULL;
        ok &= (m->left = malloc(m->nchunks * sizeof *m->left)) != NULL;
        ok &= (m->pub = calloc(m->nchunks, sizeof *m->pub)) != NULL;
        for (size_t c = 0; ok && c < m->nchunks; c++) {
            size_t lo = c * m->chunk, hi = lo + m->chunk < a->n ? lo + m->chunk : a->n;
            atomic_init(&m->left[c], (uint32_t)(hi - lo));
        }
    }
    if (!ok) {
        job_free(m, o);
        return EXEC_ENOMEM;
    }
    return EXEC_OK;
}

/* Hand the newly completed chunks to on_item; returns how many chunks were consumed. */
static size_t deliver(const struct exec__map *m, const struct exec__map_call *a,
                      size_t consumed)
{
    while (consumed < m->nchunks) {
        size_t v = atomic_load_explicit(&m->pub[consumed], memory_order_acquire);
        if (!v)
            break;
        size_t lo = (size_t)(v - 1) * m->chunk, hi = lo + m->chunk < m->n ? lo + m->chunk : m->n;
        for (size_t i = lo; i < hi; i++)
            a->on_item(i, m->status[i], m->out ? m->out + i * m->out_size : NULL,
                       a->user_data);
        consumed++;
    }
    return consumed;
}

void exec__map_await(struct exec__map *m, size_t seen_accounted, bool helper, uint64_t until)
{
    struct exec *core = m->core;
    size_t need = atomic_load_explicit(&m->wake_at, memory_order_relaxed);
    if (need <= seen_accounted)
        need = seen_accounted + 1;
    if (helper) {
        bool (*help)(void *) = EXEC__OP(core->ops, help, 1);
        if (help(core->impl))
            return;
        uint64_t slice = exec__now_ns() + 1000000u;
        until = until && until < slice ? until : slice;
    } else {
        /* Look for a while before sleeping: a chunk that ends soon then costs no wake-up
         * (a streaming map waits once per chunk). Yield often: on a small machine the
         * workers need this CPU. */
        uint64_t spin_end = exec__now_ns() + MAP_SPIN_NS;
        for (unsigned i = 1;; i++) {
            if (atomic_load_explicit(&m->accounted, memory_order_acquire) >= need)
                return;
            if (i % 8 == 0) {
                if (exec__now_ns() >= spin_end)
                    break;
                exec__yield();
            } else {
                exec__cpu_relax();
            }
        }
    }
    /* The word is read here, not when the caller last looked: accountings short of `need`
     * bump it without waking anyone, and a stale word would fail every futex wait. */
    uint32_t word = atomic_load_explicit(&core->map_word, memory_order_seq_cst);
    atomic_fetch_add_explicit(&core->map_sleepers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->accounted, memory_order_seq_cst) < need)
        (void)exec__futex_wait(&core->map_word, word, until);
    atomic_fetch_sub_explicit(&core->map_sleepers, 1, memory_order_relaxed);
}

static void drive(struct exec__map *m, const struct exec__map_call *a, exec_map_opts_t *o,
                  bool helper)
{
    uint32_t interval = o->progress_interval_ms ? o->progress_interval_ms : 100;
    uint64_t next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
    size_t consumed = 0;
    for (;;) {
        size_t done = atomic_load_explicit(&m->accounted, memory_order_acquire);
        if (m->pub)
            consumed = deliver(m, a, consumed);
        if (done == m->n && (!m->pub || consumed == m->nchunks))
            return;
        if (o->progress && exec__now_ns() >= next_progress) {
            o->progress(atomic_load_explicit(&m->ran, memory_order_relaxed), m->n,
                        o->progress_data);
            next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
        }
        exec__map_await(m, done, helper, o->progress ? next_progress : 0);
    }
}

int exec__map_enter(struct exec *core, bool *helper)
{
    if (exec__core_forked(core) || atomic_load(&core->shut))
        return EXEC_ESHUTDOWN;
    if (!EXEC__OP(core->ops, map_start, 1))
        return EXEC_ENOTSUP;
    *helper = exec__core_in_task(core);
    if (*helper && !EXEC__OP(core->ops, help, 1))
        return EXEC_EDEADLK; /* the caller is the thread that would have to finish it */
    return EXEC_OK;
}

int exec__map_register(struct exec__map *m)
{
    struct exec *core = m->core;
    pthread_mutex_lock(&core->map_lock);
    bool shut = atomic_load(&core->shut); /* exec__maps_cancel() runs after shut is set */
    if (!shut)
        exec__list_push_back(&core->maps, &m->active);
    pthread_mutex_unlock(&core->map_lock);
    return shut ? EXEC_ESHUTDOWN : EXEC_OK;
}

void exec__map_unregister(struct exec__map *m)
{
    pthread_mutex_lock(&m->core->map_lock);
    exec__list_remove(&m->active);
    pthread_mutex_unlock(&m->core->map_lock);
}

int exec__map_run(struct exec *core, const struct exec__map_call *a)
{
    exec_map_opts_t zero = {0};
    exec_map_opts_t *o = a->opts ? a->opts : &zero;
    int r = check_call(core, a, o);
    if (r)
        return r;
    o->failed = 0;
    o->first_failed = a->n;
    bool helper;
    r = exec__map_enter(core, &helper);
    if (r)
        return r;
    struct exec__map m;
    r = job_init(&m, core, a, o);
    if (r)
        return r;
    r = exec__map_register(&m);
    if (r) {
        job_free(&m, o);
        return r;
    }
    r = core->ops->map_start(core->impl, &m);
    if (r) {
        exec__map_unregister(&m);
        job_free(&m, o);
        return r;
    }
    drive(&m, a, o, helper);
    core->ops->map_end(core->impl, &m);
    exec__map_unregister(&m);

    size_t ran = atomic_load(&m.ran);
    o->failed = atomic_load(&m.failed);
    o->first_failed = atomic_load(&m.first_failed);
    r = atomic_load(&m.worst);
    if (r == EXEC_OK && o->failed)
        r = EXEC_ETASK;
    if (o->progress && ran == a->n)
        o->progress(a->n, a->n, o->progress_data);
    atomic_fetch_add_explicit(&core->cnt.map_items, ran, memory_order_relaxed);
    job_free(&m, o);
    return r;
}
