/* SPDX-License-Identifier: MIT */
/*
 * threads/pool.c - the thread backend: creating and stopping the pool, the worker loop,
 * running tasks and map chunks, waiting inside a worker, and the operations table. The
 * design of the whole backend is described in threads/threads.h.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads/threads.h"

static _Thread_local struct slot *tls_slot;

/* Iterations of the idle spin (each a pause instruction, ~10-40 ns). */
#define SPIN_BEFORE_PARK 64

static void *worker_main(void *p);
static int tp_shutdown(void *impl, unsigned flags);
static int wait_for_room(struct tp *tp, uint32_t flags);

/* Run @fr->f (already RUNNING) on this worker. At level 0 (not nested inside another task's
 * wait) the slot's scratch buffer is free. */
static void run(struct slot *s, struct tframe *fr)
{
    struct exec_future *f = fr->f;
    struct tp *tp = s->tp;
    struct exec__tlane *tl = s->tl;
    uint64_t t0 = 0;
    if (EXEC__UNLIKELY(tl != NULL))
        t0 = exec__ticks();
    struct exec_future *outer = exec__tls_task;
    exec__tls_task = f;
    if (f->timeout_ms)
        exec__tp_timer_add(tp, f);

    void *out = s->scratch;
    int level = s->depth;
    if (level > 0) {
        if (level <= NEST_KEEP) {
            if (!s->nest[level - 1])
                s->nest[level - 1] = malloc(tp->max_result);
            out = s->nest[level - 1];
        } else {
            out = fr->heap_out; /* allocated with the frame */
        }
        if (!out) {
            if (f->timeout_ms)
                exec__tp_timer_del(tp, f);
            exec__tls_task = outer;
            exec__tp_fail_running(f, EXEC_ENOMEM, EXEC_CAUSE_NONE, s->id);
            goto done;
        }
    }
    size_t n = 0;
    int st = f->fn(f->arg, f->arg_size, out, tp->max_result, &n);
    uint64_t t1 = tl ? exec__ticks() : 0;
    if (f->timeout_ms)
        exec__tp_timer_del(tp, f);
    exec__tls_task = outer;

    int code;
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        exec_state_t end = EXEC_STATE_DONE;
        f->fault.worker_id = s->id;
        if (st != 0) {
            f->fault.code = EXEC_ETASK;
            f->fault.task_status = st;
            end = EXEC_STATE_FAILED;
        } else if (n > tp->max_result) {
            f->fault.code = EXEC_ETOOBIG;
            end = EXEC_STATE_FAILED;
        } else if (exec__future_set_result(f, out, n) != 0) {
            f->fault.code = EXEC_ENOMEM;
            end = EXEC_STATE_FAILED;
        }
        code = f->fault.code;
        exec__future_drop_arg(f);
        exec__future_finish(f, end);
    } else {
        exec__future_drop_arg(f); /* timed out or cancelled while running */
        code = tl ? exec__future_end_code(f) : 0;
    }
    if (EXEC__UNLIKELY(tl != NULL))
        exec__trace_task(tl, f, s->ttid, t0, t1, 0, code, st);
done:
    fr->f = NULL; /* done with it: a thread that ends now owes it nothing */
    exec__tp_count_ran(s);
    exec_future_release(f); /* the backend's reference */
}

/* A chunk of a running map: [*lo, *hi) of *mp. Maps take turns; a map with nothing left to
 * claim leaves the list. tp->lock held (so map_end() cannot forget a map we look at). */
static bool map_pop(struct tp *tp, struct exec__map **mp, size_t *lo, size_t *hi)
{
    struct exec__list *l;
    while ((l = exec__list_first(&tp->maps))) {
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        exec__list_remove(l);
        if (exec__map_claim(m, lo, hi)) {
            exec__list_push_back(&tp->maps, l);
            *mp = m;
            return true;
        }
    }
    return false;
}

/* Run items [lo, hi) of @fr->m in place: arguments read from the caller's input, results
 * written straight into its output. Progress goes into @fr after each item, for a thread
 * that ends in the middle (chunk_lost()). */
static void run_chunk(struct slot *s, struct tframe *fr)
{
    struct exec__map *m = fr->m;
    size_t lo = fr->lo, hi = fr->hi;
    uint64_t t0 = s->tl ? exec__ticks() : 0;
    _Alignas(16) unsigned char dummy[16];
    const unsigned char *in = exec__map_in(m, lo);
    unsigned char *out = exec__map_out(m, lo);
    int *status = exec__map_status(m, lo);
    size_t ostep = out ? m->out_size : 0;
    if (!out)
        out = dummy; /* out_size is 0: nothing is written */
    for (size_t k = 0; k < hi - lo; k++, in += m->in_size, out += ostep) {
        size_t osz = m->out_size;
        int st = m->fn(in, m->in_size, out, m->out_size, &osz);
        if (status)
            status[k] = st;
        if (st && !fr->nfail++)
            fr->first = lo + k;
        fr->done = k + 1;
    }
    fr->m = NULL;
    if (s->tl) /* before exec__map_ran(): the map may be gone after it */
        exec__trace_chunk(s->tl, s->ttid, t0, exec__ticks(), 0, lo, hi, (int32_t)fr->nfail,
                          fr->nfail ? EXEC_ETASK : EXEC_OK, (int32_t)m->in_size);
    exec__map_ran(m, lo, hi, fr->nfail, fr->first);
}

/* One unit of queued work: a task (already RUNNING) or a map chunk. */
struct work {
    struct exec_future *f;
    struct exec__map *m;
    size_t lo, hi;
};

static inline bool take_work(struct tp *tp, struct slot *s, struct work *w)
{
    w->f = exec__tp_q_pop(tp, s->id);
    if (w->f)
        return true;
    return !exec__list_empty(&tp->maps) && map_pop(tp, &w->m, &w->lo, &w->hi);
}

/* A deep frame's block: the frame, then the result buffer, aligned for any type. */
#define DEEP_HDR ((sizeof(struct tframe) + 15) & ~(size_t)15)

static void do_work(struct slot *s, struct work *w, bool top)
{
    int outer = s->depth, level = top ? 0 : outer + 1;
    bool deep = level > NEST_KEEP;
    struct tframe *fr = &s->fr[deep ? 0 : level];
    if (EXEC__UNLIKELY(deep)) /* one block: the frame, then the task's result buffer */
        fr = malloc(DEEP_HDR + (w->f ? s->tp->max_result : 0));
    if (EXEC__UNLIKELY(!fr)) {
        if (w->f) {
            exec__tp_fail_running(w->f, EXEC_ENOMEM, EXEC_CAUSE_NONE, s->id);
            exec__tp_count_ran(s);
            exec_future_release(w->f);
        } else {
            exec__map_fail(w->m, w->lo, w->hi, EXEC_ENOMEM);
        }
        return;
    }
    *fr = (struct tframe){.up = s->frame, .f = w->f, .m = w->f ? NULL : w->m, .lo = w->lo,
                          .hi = w->hi, .first = w->hi, .deep = deep};
    if (deep && w->f)
        fr->heap_out = (unsigned char *)fr + DEEP_HDR;
    s->frame = fr;
    s->depth = level;
    if (w->f)
        run(s, fr);
    else
        run_chunk(s, fr);
    s->depth = outer;
    s->frame = fr->up;
    if (deep)
        free(fr);
}

/* Start a thread in @s. tp->lock held. */
int exec__tp_spawn(struct tp *tp, struct slot *s, bool join_prev)
{
    pthread_t old = s->thread;
    s->prev = old;
    s->join_prev = join_prev;
    int err = exec__thread_start(&s->thread, tp->stack_size, worker_main, s);
    if (err) {
        s->thread = old;
        s->join_prev = false;
        errno = err;
        return EXEC_ESYS;
    }
    s->has_thread = true;
    tp->alive++;
    return 0;
}

/* The thread of @s ran its quota of tasks: retire it (tp->lock held; released when it
 * retires). A replacement takes over the slot when there may be work for it: always before
 * a shutdown, and during one while tasks or chunks are still queued (recycling holds to the
 * end). The replacement joins us, unless tp_shutdown() already took our handle to join it
 * itself (has_thread cleared). If the replacement cannot start, keep serving and try again
 * after the next task. Returns whether the caller must return (the lock is released). */
static bool retire(struct tp *tp, struct slot *s)
{
    bool stopping = atomic_load_explicit(&tp->stopping, memory_order_relaxed);
    bool more = !stopping || exec__tp_q_nonempty(tp) || !exec__list_empty(&tp->maps);
    uint32_t ran = s->tasks, me = s->ttid;
    tp->alive--;
    if (more && exec__tp_spawn(tp, s, s->has_thread) != 0) {
        tp->alive++;
        return false;
    }
    tp->retired++;
    if (!more && tp->inside_waiters)
        pthread_cond_broadcast(&tp->gone);
    /* A replacement writes the lane only once it has the lock. */
    if (s->tl)
        exec__trace_instant(s->tl, EXEC__TEV_RECYCLE, me, ran, 0, EXEC__TRECYCLE_TASKS, 0);
    pthread_mutex_unlock(&tp->lock);
    return true;
}

static void worker_loop(struct slot *s)
{
    struct tp *tp = s->tp;
    pthread_mutex_lock(&tp->lock);
    /* Under the lock: a predecessor in this slot is done with the slot's lane. */
    s->ttid = (uint32_t)exec__gettid();
    if (s->tl) {
        exec__trace_instant(s->tl, EXEC__TEV_TRACK, s->ttid, (uint64_t)s->id, 0, 0, 0);
        exec__trace_instant(s->tl, EXEC__TEV_START, s->ttid, (uint64_t)s->id, 0, 0, 0);
    }
    if (s->join_prev) {
        pthread_t prev = s->prev;
        s->join_prev = false;
        pthread_mutex_unlock(&tp->lock);
        /* Not a cancellation point for us: the predecessor must be joined whatever comes. */
        int cs = exec__cancel_off();
        pthread_join(prev, NULL);
        exec__cancel_restore(cs);
        pthread_mutex_lock(&tp->lock);
    }
    if (tp->init) {
        pthread_mutex_unlock(&tp->lock);
        bool ok = exec__tp_run_init(s);
        pthread_mutex_lock(&tp->lock);
        if (!ok) {
            exec__tp_drop_resume(s, EXEC_EBROKEN);
            tp->alive--;
            if (tp->inside_waiters)
                pthread_cond_broadcast(&tp->gone);
            pthread_mutex_unlock(&tp->lock);
            return;
        }
    }
    if (EXEC__UNLIKELY(s->resume_m != NULL)) {
        /* The items our predecessor left when its thread ended inside their chunk. */
        struct work w = {.m = s->resume_m, .lo = s->resume_lo, .hi = s->resume_hi};
        s->resume_m = NULL;
        pthread_mutex_unlock(&tp->lock);
        do_work(s, &w, true);
        pthread_mutex_lock(&tp->lock);
    }
    for (;;) {
        struct work w;
        if (take_work(tp, s, &w)) {
            pthread_mutex_unlock(&tp->lock);
            do_work(s, &w, true);
            pthread_mutex_lock(&tp->lock);
            if (EXEC__UNLIKELY(tp->vacant))
                (void)exec__tp_fill_vacant(tp);
            if (tp->max_tasks && ++s->tasks >= tp->max_tasks && retire(tp, s))
                return;
            continue;
        }
        /* Closed and empty, no map left: no push can arrive any more (it would fail on
         * CLOSED), and map_start refuses once stopping is set. */
        if (atomic_load_explicit(&tp->stopping, memory_order_relaxed))
            break;
        /* Before sleeping, watch the queue for a few microseconds: a busy submitter is
         * then served without a futex wake-up per task. */
        pthread_mutex_unlock(&tp->lock);
        bool work = false;
        for (int i = 0; i < SPIN_BEFORE_PARK && !work; i++) {
            exec__cpu_relax();
            work = (atomic_load_explicit(&tp->incoming, memory_order_relaxed) & ~CLOSED) != 0;
        }
        pthread_mutex_lock(&tp->lock);
        if (work || !exec__tp_idle_push(tp, s))
            continue;
        pthread_mutex_unlock(&tp->lock);
        if (s->tl)
            exec__tlane_idle(s->tl);
        while (atomic_load_explicit(&s->park, memory_order_acquire) == 0)
            exec__futex_wait(&s->park, 0, 0);
        pthread_mutex_lock(&tp->lock);
    }
    tp->alive--;
    if (tp->inside_waiters)
        pthread_cond_broadcast(&tp->gone);
    pthread_mutex_unlock(&tp->lock);
}

static void *worker_main(void *p)
{
    struct slot *s = p;
    tls_slot = s;
    exec__tls_core = s->tp->core;
    exec__tls_counters = &s->cnt;
    s->tasks = 0;
    exec__sched_batch();
    /* Every way out of worker_loop() but its returns passes through exec__tp_on_thread_end(). */
    pthread_cleanup_push(exec__tp_on_thread_end, s);
    worker_loop(s);
    pthread_cleanup_pop(0);
    return NULL;
}

static void tp_free(struct tp *tp)
{
    if (tp->slots)
        for (int i = 0; i < tp->nslots; i++) {
            struct slot *s = &tp->slots[i];
            free(s->scratch);
            for (int k = 0; k < NEST_KEEP; k++)
                free(s->nest[k]);
        }
    free(tp->slots);
    free(tp->heap);
    free(tp);
}

static int tp_create(struct exec *core, void **impl)
{
    /* aligned_alloc: struct tp has cache-line aligned members. */
    size_t tpsize = (sizeof(struct tp) + EXEC__CACHELINE - 1) / EXEC__CACHELINE * EXEC__CACHELINE;
    struct tp *tp = aligned_alloc(EXEC__CACHELINE, tpsize);
    if (!tp)
        return EXEC_ENOMEM;
    memset(tp, 0, sizeof *tp);
    tp->core = core;
    tp->init = core->cfg.initializer;
    tp->max_result = core->cfg.max_result_size;
    tp->max_tasks = core->cfg.max_tasks_per_child;
    tp->queue_max = core->cfg.queue_max;
    tp->stack_size = core->cfg.stack_size;
    tp->nslots = core->cfg.workers;
    tp->slots = aligned_alloc(EXEC__CACHELINE, (size_t)tp->nslots * sizeof *tp->slots);
    if (!tp->slots) {
        free(tp);
        return EXEC_ENOMEM;
    }
    memset(tp->slots, 0, (size_t)tp->nslots * sizeof *tp->slots);
    tp->trace = core->trace;
    tp->timer_tl = exec__trace_lane(core->trace, tp->nslots, false);
    for (int i = 0; i < tp->nslots; i++) {
        tp->slots[i].tp = tp;
        tp->slots[i].id = i;
        tp->slots[i].tl = exec__trace_lane(core->trace, i, false);
        tp->slots[i].scratch = malloc(tp->max_result);
        if (!tp->slots[i].scratch) {
            tp_free(tp);
            return EXEC_ENOMEM;
        }
    }
    exec__mutex_init_hot(&tp->lock);
    exec__list_init(&tp->maps);
    pthread_cond_init(&tp->space, NULL);
    exec__cond_init_mono(&tp->gone);
    pthread_mutex_init(&tp->tlock, NULL);
    exec__cond_init_mono(&tp->tcond);

    int r = 0;
    pthread_mutex_lock(&tp->lock);
    for (int i = 0; i < tp->nslots && !r; i++)
        r = exec__tp_spawn(tp, &tp->slots[i], false);
    pthread_mutex_unlock(&tp->lock);
    if (!r && core->cfg.timeout_ms)
        r = exec__tp_timer_ensure(tp);
    if (r) {
        tp_shutdown(tp, EXEC_SHUTDOWN_CANCEL);
        pthread_mutex_destroy(&tp->lock);
        pthread_cond_destroy(&tp->space);
        pthread_cond_destroy(&tp->gone);
        pthread_mutex_destroy(&tp->tlock);
        pthread_cond_destroy(&tp->tcond);
        tp_free(tp);
        return r;
    }
    *impl = tp;
    return 0;
}

static bool is_my_worker(const struct tp *tp)
{
    return tls_slot && tls_slot->tp == tp;
}

/*
 * Submission takes no lock. Shutdown race: shutdown sets CLOSED in `incoming` before it sets
 * `stopping`; a push is a CAS on that same word, so it either lands before CLOSED (and is
 * seen by the workers, which leave only when stopping is set and the queue is empty) or
 * fails with EXEC_ESHUTDOWN.
 */
static int tp_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    struct tp *tp = impl;
    f->bk.threads.heap_idx = UINT32_MAX; /* in no timer heap */
    f->bk.threads.ttid = 0;
    if (EXEC__UNLIKELY(exec__future_set_arg(f, arg, f->arg_size) != 0))
        return EXEC_ENOMEM;
    if (EXEC__UNLIKELY(f->timeout_ms) && exec__tp_timer_ensure(tp) != 0)
        return EXEC_ESYS;
    if (EXEC__UNLIKELY(tp->queue_max) && !is_my_worker(tp)) {
        int r = wait_for_room(tp, flags);
        if (r)
            return r;
    }
    /* Counted before the push so that depth() never sees a pop before its push. The count
     * numbers the task for the trace. */
    if (EXEC__UNLIKELY(atomic_load_explicit(&tp->any_vacant, memory_order_relaxed))) {
        /* A worker thread ended and could not be replaced: try now, and say so if no
         * worker is left to run this task. */
        pthread_mutex_lock(&tp->lock);
        bool full = exec__tp_fill_vacant(tp), none = tp->alive == 0;
        pthread_mutex_unlock(&tp->lock);
        if (!full && none)
            return EXEC_ESYS;
    }
    f->tseq = atomic_fetch_add_explicit(&tp->pushed, 1, memory_order_relaxed) + 1;
    if (EXEC__UNLIKELY(!exec__tp_q_push(tp, f))) {
        atomic_fetch_sub_explicit(&tp->pushed, 1, memory_order_relaxed);
        return atomic_load(&tp->broken) ? EXEC_EBROKEN : EXEC_ESHUTDOWN;
    }
    if (atomic_load_explicit(&tp->nidle, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&tp->lock);
        struct slot *s = exec__tp_idle_pop(tp);
        pthread_mutex_unlock(&tp->lock);
        if (s)
            exec__tp_wake(s);
    }
    return 0;
}

static uint64_t depth(struct tp *tp)
{
    uint64_t pushed = atomic_load_explicit(&tp->pushed, memory_order_acquire);
    uint64_t popped = atomic_load_explicit(&tp->popped, memory_order_acquire);
    return pushed > popped ? pushed - popped : 0;
}

/* queue_max: block (or EAGAIN) while the queue is full. The bound is checked against a
 * racy depth, so concurrent submitters may overshoot it by their number; pops signal
 * `space` under the lock, so a blocked submitter never misses room. */
static int wait_for_room(struct tp *tp, uint32_t flags)
{
    if (depth(tp) < tp->queue_max)
        return 0;
    if (flags & EXEC_SUBMIT_TRY)
        return EXEC_EAGAIN;
    pthread_mutex_lock(&tp->lock);
    tp->space_waiters++;
    int cs = exec__cancel_off();
    while (depth(tp) >= tp->queue_max && !atomic_load(&tp->stopping))
        pthread_cond_wait(&tp->space, &tp->lock);
    exec__cancel_restore(cs);
    tp->space_waiters--;
    pthread_mutex_unlock(&tp->lock);
    return 0;
}

static int tp_cancel(void *impl, struct exec_future *f, unsigned flags)
{
    struct tp *tp = impl;
    /* Queued: win the state from QUEUED; the worker that pops it later drops it. */
    if (exec__future_cancel_queued(f)) {
        atomic_fetch_add_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        exec__trace_shared_instant(tp->trace, EXEC__TEV_CANCEL, 0, f->tseq, 0,
                                   EXEC__TCANCEL_QUEUED, 0);
        return EXEC_OK;
    }
    if ((flags & EXEC_CANCEL_RUNNING) && exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        /* The task keeps its thread until it returns; it sees the stop flag. */
        exec__trace_shared_instant(tp->trace, EXEC__TEV_CANCEL, f->bk.threads.ttid, f->tseq, 0,
                                   EXEC__TCANCEL_RUNNING, 0);
        f->fault.code = EXEC_ECANCELLED;
        exec__future_finish(f, EXEC_STATE_CANCELLED);
        return EXEC_OK;
    }
    return EXEC_EBUSY;
}

static int tp_shutdown(void *impl, unsigned flags)
{
    struct tp *tp = impl;
    struct exec_future *cancelled = NULL;
    pthread_mutex_lock(&tp->lock);
    atomic_fetch_or_explicit(&tp->incoming, CLOSED, memory_order_seq_cst);
    atomic_store_explicit(&tp->stopping, true, memory_order_seq_cst);
    if (flags & EXEC_SHUTDOWN_CANCEL)
        cancelled = exec__tp_take_queued(tp);
    exec__tp_wake_all(tp);
    pthread_mutex_unlock(&tp->lock);

    while (cancelled) {
        struct exec_future *next = cancelled->bk.threads.next;
        cancelled->bk.threads.next = NULL;
        if (exec__future_cancel_queued(cancelled))
            exec__trace_shared_instant(tp->trace, EXEC__TEV_CANCEL, 0, cancelled->tseq, 0,
                                       EXEC__TCANCEL_SHUTDOWN, 0);
        else
            atomic_fetch_sub_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        exec_future_release(cancelled);
        cancelled = next;
    }
    if (flags & EXEC_SHUTDOWN_NOWAIT)
        return EXEC_OK;

    /* Join each slot's thread until no slot has one: a thread that ends inside a task
     * starts a replacement even now (queued tasks still need workers); it joins its
     * predecessor only if we have not taken that one to join. */
    for (bool again = true; again;) {
        again = false;
        for (int i = 0; i < tp->nslots; i++) {
            struct slot *sl = &tp->slots[i];
            pthread_mutex_lock(&tp->lock);
            bool has = sl->has_thread;
            pthread_t t = sl->thread;
            sl->has_thread = false;
            pthread_mutex_unlock(&tp->lock);
            if (has)
                pthread_join(t, NULL);
            again |= has;
        }
    }
    pthread_mutex_lock(&tp->tlock);
    tp->timer_stop = true;
    bool join_timer = tp->timer_running;
    tp->timer_running = false;
    pthread_cond_signal(&tp->tcond);
    pthread_mutex_unlock(&tp->tlock);
    if (join_timer)
        pthread_join(tp->timer, NULL);
    return EXEC_OK;
}

/* exec_shutdown(ex, 0) from inside: a worker's task or callback, or a deadline callback on
 * the timer thread. Close the queue like any shutdown, then wait until every worker thread
 * has left but those waiting here (the caller's own task, and whatever else runs on its
 * stack, goes on). A worker runs queued tasks and chunks meanwhile (so one worker can drain
 * the queue alone); the timer thread fails the deadlines that pass (so a task that stops at
 * its deadline does), looking at least every 10 ms. exec_destroy() joins the threads. */
static int tp_shutdown_inside(void *impl, unsigned flags)
{
    struct tp *tp = impl;
    (void)tp_shutdown(tp, flags | EXEC_SHUTDOWN_NOWAIT);
    struct slot *s = is_my_worker(tp) ? tls_slot : NULL;
    pthread_mutex_lock(&tp->lock);
    tp->inside_waiters++;
    tp->inside_workers += s != NULL;
    for (;;) {
        struct work w;
        if (s && take_work(tp, s, &w)) {
            pthread_mutex_unlock(&tp->lock);
            do_work(s, &w, false);
            pthread_mutex_lock(&tp->lock);
            continue;
        }
        if (tp->alive <= tp->inside_workers)
            break;
        if (s) {
            pthread_cond_wait(&tp->gone, &tp->lock);
            continue;
        }
        pthread_mutex_unlock(&tp->lock);
        uint64_t now = exec__now_ns(), next = exec__tp_timer_run_due(tp);
        if (!next || next > now + 10000000u)
            next = now + 10000000u;
        pthread_mutex_lock(&tp->lock);
        if (tp->alive <= tp->inside_workers)
            break;
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        pthread_cond_timedwait(&tp->gone, &tp->lock, &ts);
    }
    tp->inside_waiters--;
    tp->inside_workers -= s != NULL;
    pthread_mutex_unlock(&tp->lock);
    return EXEC_OK;
}

static void tp_destroy(void *impl)
{
    struct tp *tp = impl;
    pthread_mutex_destroy(&tp->lock);
    pthread_cond_destroy(&tp->space);
    pthread_cond_destroy(&tp->gone);
    pthread_mutex_destroy(&tp->tlock);
    pthread_cond_destroy(&tp->tcond);
    tp_free(tp);
}

static void tp_forget(void *impl)
{
    /* fork() child: the worker and timer threads do not exist here, and the futures still
     * queued belong to the parent's copy of the world. Only free memory. */
    tp_free(impl);
}

static void tp_stats(void *impl, exec_stats_t *st)
{
    struct tp *tp = impl;
    uint64_t ran = 0;
    for (int i = 0; i < tp->nslots; i++) {
        const struct slot *s = &tp->slots[i];
        ran += atomic_load_explicit(&s->ran, memory_order_relaxed);
        st->completed += atomic_load_explicit(&s->cnt.completed, memory_order_relaxed);
    }
    uint64_t pushed = atomic_load(&tp->pushed), popped = atomic_load(&tp->popped);
    int64_t lazy = atomic_load(&tp->lazy_cancelled);
    uint64_t queued = pushed > popped ? pushed - popped : 0;
    pthread_mutex_lock(&tp->lock);
    st->submitted = pushed;
    st->queued = lazy > 0 && (uint64_t)lazy < queued ? queued - (uint64_t)lazy
                 : lazy > 0                          ? 0
                                                     : queued;
    st->running = tp->started > ran ? tp->started - ran : 0;
    st->workers_alive = (uint64_t)tp->alive;
    st->workers_retired = tp->retired;
    st->retired_tasks = tp->retired;
    pthread_mutex_unlock(&tp->lock);
}

static bool tp_in_task(void *impl)
{
    return is_my_worker(impl) || exec__tp_is_timer(impl);
}

/* Leave the idle stack after a wait. If a submitter popped us meanwhile, its wake-up was
 * meant for queued work we are not going to run now: pass it on. */
static void leave_idle(struct tp *tp, struct slot *s)
{
    struct slot *other = NULL;
    pthread_mutex_lock(&tp->lock);
    if (s->idle)
        exec__tp_idle_remove(tp, s);
    else if (exec__tp_q_nonempty(tp))
        other = exec__tp_idle_pop(tp);
    pthread_mutex_unlock(&tp->lock);
    if (other)
        exec__tp_wake(other);
}

/* A worker waits on @f: run queued tasks until @f is terminal (see the file comment). */
static int tp_wait(void *impl, struct exec_future *f, uint64_t deadline)
{
    struct tp *tp = impl;
    struct slot *s = tls_slot;
    struct exec__listener l = {.kind = EXEC__L_WAKE, .u.wake = &s->park};
    for (;;) {
        if (exec__st_terminal(atomic_load_explicit(&f->state, memory_order_acquire)))
            return EXEC_OK;
        if (deadline && exec__now_ns() >= deadline)
            return EXEC_ETIMEDOUT;
        pthread_mutex_lock(&tp->lock);
        struct work w;
        if (take_work(tp, s, &w)) {
            pthread_mutex_unlock(&tp->lock);
            do_work(s, &w, false);
            continue;
        }
        if (!exec__tp_idle_push(tp, s)) {
            pthread_mutex_unlock(&tp->lock);
            continue;
        }
        pthread_mutex_unlock(&tp->lock);
        if (s->tl)
            exec__tlane_idle(s->tl);
        if (exec__future_listen(f, &l)) {
            while (atomic_load_explicit(&s->park, memory_order_acquire) == 0) {
                if (exec__futex_wait(&s->park, 0, deadline) == EXEC_ETIMEDOUT)
                    break;
            }
            exec__future_unlisten(f, &l);
        }
        leave_idle(tp, s);
    }
}

static int tp_map_start(void *impl, struct exec__map *m)
{
    struct tp *tp = impl;
    struct slot *wake_list[64];
    int nwake = 0;
    pthread_mutex_lock(&tp->lock);
    if (atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
        pthread_mutex_unlock(&tp->lock);
        return atomic_load(&tp->broken) ? EXEC_EBROKEN : EXEC_ESHUTDOWN;
    }
    if (exec__list_unlinked(&m->link)) /* a stream offers its map again for new items */
        exec__list_push_back(&tp->maps, &m->link);
    struct slot *s;
    while ((size_t)nwake < m->nslots && nwake < 64 && (s = exec__tp_idle_pop(tp)))
        wake_list[nwake++] = s;
    pthread_mutex_unlock(&tp->lock);
    for (int i = 0; i < nwake; i++)
        exec__tp_wake(wake_list[i]);
    return EXEC_OK;
}

static void tp_map_end(void *impl, struct exec__map *m)
{
    struct tp *tp = impl;
    pthread_mutex_lock(&tp->lock);
    if (!exec__list_unlinked(&m->link))
        exec__list_remove(&m->link);
    pthread_mutex_unlock(&tp->lock);
}

/* A worker runs exec_map(): run one task or chunk here instead of sleeping. */
static bool tp_help(void *impl)
{
    struct tp *tp = impl;
    if (!is_my_worker(tp))
        return false; /* the timer thread (a deadline callback): nothing to run */
    struct slot *s = tls_slot;
    struct work w;
    pthread_mutex_lock(&tp->lock);
    bool got = take_work(tp, s, &w);
    pthread_mutex_unlock(&tp->lock);
    if (got)
        do_work(s, &w, false);
    return got;
}

/* Threads know none of the process backend's fields: setting one is a mistake worth
 * reporting, not ignoring. */
static int tp_check_config(exec_config_t *c)
{
    if (c->start_method || c->kill_grace_ms || c->max_rss_per_child || c->max_age_ms ||
        c->recycle_jitter_pct || c->crash_limit || c->crash_window_ms)
        return EXEC_EINVAL;
    return EXEC_OK;
}

const struct exec__backend_ops exec__thread_ops = {
    .version = EXEC__OPS_VERSION,
    .name = "threads",
    .check_config = tp_check_config,
    .create = tp_create,
    .submit = tp_submit,
    .cancel = tp_cancel,
    .shutdown = tp_shutdown,
    .stats = tp_stats,
    .destroy = tp_destroy,
    .forget = tp_forget,
    .in_task = tp_in_task,
    .wait = tp_wait,
    .map_start = tp_map_start,
    .map_end = tp_map_end,
    .help = tp_help,
    .shutdown_inside = tp_shutdown_inside,
};
