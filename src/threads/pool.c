/* SPDX-License-Identifier: MIT */
/*
 * thread_pool.c - the thread backend.
 *
 * One FIFO queue of futures (intrusive, doubly linked so a cancel unlinks in O(1)) under one
 * mutex, and N worker slots. An idle worker parks on a futex word of its own; a submitter
 * that finds an idle worker pops it from the idle stack and wakes exactly that one (no
 * thundering herd, no lost wake-up: the pop happens under the queue lock). LIFO idle order
 * keeps the most recently active, cache-warm worker busy.
 *
 * Waiting inside a worker. A task that waits on a future of its own pool does not sleep
 * while the queue has work: it runs queued tasks (nested, on its own stack) until its
 * future is done, and parks only when the queue is empty, listening both to the future and
 * to new submissions. So a tree of tasks that wait on their children completes on any
 * number of workers, including one.
 *
 * Deadlines. A timer thread, started when the first task with a timeout is submitted,
 * keeps a min-heap of running tasks by deadline. At the deadline it wins the race to end the
 * future (ETIMEDOUT); the task sees exec_task_should_stop() become true, and its eventual
 * result is discarded. A thread cannot be killed safely; the process backend can.
 *
 * Recycling. With max_tasks_per_child a worker that has run N top-level tasks starts its
 * replacement in the same slot and exits; the replacement joins it, so no thread is ever
 * left unjoined, and shutdown joins whatever thread each slot has once no more can start.
 *
 * Lock order: tp->lock, then a future's lock (via listen/finish), then a cq's lock.
 * tp->tlock (timer) is never held with tp->lock.
 */
#include "core/backend.h"

#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tp;

#define NEST_KEEP 8

struct slot {
    struct tp *tp;
    int id;
    /* Under tp->lock: */
    pthread_t thread;
    bool has_thread;    /* a thread runs in this slot and has not been joined */
    bool idle;          /* on the idle stack */
    struct slot *idle_next;
    pthread_t prev;     /* retired predecessor the current thread must join */
    bool join_prev;
    /* Futex word: 0 parked, 1 woken. Written by wakers, pairs with the parked load. */
    _Atomic uint32_t park;
    /* Owned by the slot's thread: */
    uint32_t tasks;     /* top-level tasks run by the current thread */
    void *scratch;      /* result buffer of top-level tasks, max_result_size bytes */
    /* Result buffers of tasks run nested inside a waiting task, by nesting depth: kept for
     * reuse up to NEST_KEEP levels, allocated per run deeper than that. */
    int depth;
    void *nest[NEST_KEEP];
    /* Read by exec_stats, written by the slot's thread only. */
    _Atomic uint64_t ran;
    struct exec__counters cnt;
} __attribute__((aligned(EXEC__CACHELINE)));

struct tp {
    struct exec *core;
    size_t max_result;
    uint32_t max_tasks;
    size_t stack_size;
    size_t queue_max;

    /* Submission side, apart from the workers' lock. Submitters push onto `incoming`, a
     * Treiber stack linked through f->next, with one CAS and no lock; a worker takes the
     * whole stack with one CAS (so no ABA), reverses it and appends it to the ready FIFO:
     * order is preserved. Bit 0 of `incoming` is CLOSED: shutdown sets it, and a push
     * fails on it, so no push can land after shutdown has looked (see tp_submit). */
    _Atomic uintptr_t incoming __attribute__((aligned(EXEC__CACHELINE)));
    _Atomic int nidle;                /* workers on the idle stack; pairs with incoming */
    /* Written by submitters only; on its own line so workers' CASes on `incoming` do not
     * steal it on every push. */
    _Atomic uint64_t pushed __attribute__((aligned(EXEC__CACHELINE))); /* all kinds */
    _Atomic uint64_t pushed_internal; /* ... of which map runners */
    _Atomic bool stopping;            /* written under lock, read anywhere */
    _Atomic bool cancel_all;          /* read by map runners without the lock */

    /* Worker side. lock protects the ready FIFO, the idle stack, slots' thread fields,
     * alive and retired. */
    pthread_mutex_t lock __attribute__((aligned(EXEC__CACHELINE)));
    pthread_cond_t space; /* queue_max: room freed up, or shutdown */
    struct exec_future *head, *tail;
    size_t space_waiters;
    _Atomic uint64_t popped;       /* written under lock; read by submitters for queue_max */
    _Atomic int64_t lazy_cancelled; /* cancelled while queued, not yet popped */
    uint64_t started;               /* futures that went RUNNING */
    struct slot *idle;
    int alive;
    uint64_t retired;

    /* Timer: its own lock; heap of running futures ordered by deadline_ns. */
    pthread_mutex_t tlock;
    pthread_cond_t tcond; /* CLOCK_MONOTONIC */
    struct exec_future **heap;
    size_t hn, hcap;
    bool timer_running, timer_stop;
    pthread_t timer;

    int nslots;
    struct slot *slots;
};

static _Thread_local struct slot *tls_slot;
/* Set in the timer thread: a done-callback it runs (at a deadline) must not shut down or
 * destroy its own executor, which would join or free the thread running it. */
static _Thread_local struct tp *tls_timer;

/* Iterations of the idle spin (each a pause instruction, ~10-40 ns). */
#define SPIN_BEFORE_PARK 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *p);

/* ---------------------------------------------------------------------------------------- */
/* Queue (tp->lock held)                                                                     */
/* ---------------------------------------------------------------------------------------- */

#define CLOSED ((uintptr_t)1) /* futures are 16-byte aligned: bit 0 is free */

/* Lock-free push of a submitted future (any thread). False once the queue is closed. */
static bool q_push(struct tp *tp, struct exec_future *f)
{
    uintptr_t top = atomic_load_explicit(&tp->incoming, memory_order_relaxed);
    do {
        if (EXEC__UNLIKELY(top & CLOSED))
            return false;
        f->next = (struct exec_future *)top;
    } while (!atomic_compare_exchange_weak_explicit(&tp->incoming, &top, (uintptr_t)f,
                                                    memory_order_seq_cst, memory_order_relaxed));
    return true;
}

/* Move everything pushed so far to the ready FIFO, oldest first. tp->lock held. */
static bool q_collect(struct tp *tp)
{
    uintptr_t old = atomic_load_explicit(&tp->incoming, memory_order_relaxed);
    do {
        if (!(old & ~CLOSED))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&tp->incoming, &old, old & CLOSED,
                                                    memory_order_acquire, memory_order_relaxed));
    struct exec_future *f = (struct exec_future *)(old & ~CLOSED);
    struct exec_future *rev = NULL, *last = f;
    while (f) {
        struct exec_future *next = f->next;
        f->next = rev;
        rev = f;
        f = next;
    }
    if (tp->tail)
        tp->tail->next = rev;
    else
        tp->head = rev;
    tp->tail = last;
    return true;
}

static bool q_nonempty(struct tp *tp)
{
    return tp->head || (atomic_load_explicit(&tp->incoming, memory_order_seq_cst) & ~CLOSED);
}

/* Take the oldest queued future and mark it RUNNING. tp->lock held. A future cancelled while
 * queued lost its QUEUED state to the canceller's CAS: drop the queue's reference and skip
 * it. The CAS below can race only with such a cancel and with waiters setting flag bits. */
static struct exec_future *q_pop(struct tp *tp, int worker_id)
{
    for (;;) {
        struct exec_future *f = tp->head;
        if (!f) {
            if (!q_collect(tp))
                return NULL;
            continue;
        }
        tp->head = f->next;
        if (!tp->head)
            tp->tail = NULL;
        f->next = NULL;
        atomic_store_explicit(&tp->popped,
                              atomic_load_explicit(&tp->popped, memory_order_relaxed) + 1,
                              memory_order_release);
        if (tp->space_waiters)
            pthread_cond_signal(&tp->space);
        uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
        bool run = false;
        /* Written before the release CAS: whoever ends the future later (the worker, the
         * timer, a cancel) publishes it with the outcome. */
        f->fault.worker_id = worker_id;
        while ((s & EXEC__ST_MASK) == EXEC_STATE_QUEUED) {
            if (atomic_compare_exchange_weak_explicit(
                    &f->state, &s, (s & ~EXEC__ST_MASK) | EXEC_STATE_RUNNING,
                    memory_order_acq_rel, memory_order_relaxed)) {
                run = true;
                break;
            }
        }
        if (run) {
            tp->started++;
            return f;
        }
        atomic_fetch_sub_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        exec_future_release(f);
    }
}

static struct slot *idle_pop(struct tp *tp)
{
    struct slot *s = tp->idle;
    if (s) {
        tp->idle = s->idle_next;
        s->idle = false;
        atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
    }
    return s;
}

/* Go on the idle stack. Dekker pairing with tp_submit: we raise nidle, then look at the
 * queue; a submitter pushes, then looks at nidle (all seq_cst). One of the two sees the
 * other, so a push never goes unnoticed by a parking worker. Returns false (and stays off
 * the stack) when work arrived meanwhile. tp->lock held. */
static bool idle_push(struct tp *tp, struct slot *s)
{
    atomic_store_explicit(&s->park, 0, memory_order_relaxed);
    s->idle = true;
    s->idle_next = tp->idle;
    tp->idle = s;
    atomic_fetch_add_explicit(&tp->nidle, 1, memory_order_seq_cst);
    if (q_nonempty(tp) || atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
        tp->idle = s->idle_next;
        s->idle = false;
        atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

static void idle_remove(struct tp *tp, struct slot *s)
{
    for (struct slot **pp = &tp->idle; *pp; pp = &(*pp)->idle_next)
        if (*pp == s) {
            *pp = s->idle_next;
            s->idle = false;
            atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
            return;
        }
}

static void wake(struct slot *s)
{
    atomic_store_explicit(&s->park, 1, memory_order_release);
    exec__futex_wake(&s->park, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Timer                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void heap_swap(struct tp *tp, size_t a, size_t b)
{
    struct exec_future *t = tp->heap[a];
    tp->heap[a] = tp->heap[b];
    tp->heap[b] = t;
    tp->heap[a]->heap_idx = a;
    tp->heap[b]->heap_idx = b;
}

static void heap_up(struct tp *tp, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (tp->heap[p]->deadline_ns <= tp->heap[i]->deadline_ns)
            break;
        heap_swap(tp, i, p);
        i = p;
    }
}

static void heap_down(struct tp *tp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tp->hn && tp->heap[l]->deadline_ns < tp->heap[m]->deadline_ns)
            m = l;
        if (r < tp->hn && tp->heap[r]->deadline_ns < tp->heap[m]->deadline_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(tp, i, m);
        i = m;
    }
}

static void heap_remove(struct tp *tp, size_t i)
{
    tp->heap[i]->heap_idx = SIZE_MAX;
    tp->hn--;
    if (i == tp->hn)
        return;
    tp->heap[i] = tp->heap[tp->hn];
    tp->heap[i]->heap_idx = i;
    heap_down(tp, i);
    heap_up(tp, i);
}

static void timeout_expired(struct exec_future *f)
{
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        f->fault.code = EXEC_ETIMEDOUT;
        exec__future_finish(f, EXEC_STATE_FAILED);
    }
}

static void *timer_main(void *p)
{
    struct tp *tp = p;
    tls_timer = tp;
    pthread_mutex_lock(&tp->tlock);
    while (!tp->timer_stop) {
        if (tp->hn == 0) {
            pthread_cond_wait(&tp->tcond, &tp->tlock);
            continue;
        }
        struct exec_future *f = tp->heap[0];
        uint64_t now = exec__now_ns();
        if (f->deadline_ns <= now) {
            heap_remove(tp, 0);
            /* The worker may finish and drop its reference as soon as we unlock. */
            exec_future_retain(f);
            pthread_mutex_unlock(&tp->tlock);
            timeout_expired(f);
            exec_future_release(f);
            pthread_mutex_lock(&tp->tlock);
            continue;
        }
        struct timespec ts = {(time_t)(f->deadline_ns / 1000000000u),
                              (long)(f->deadline_ns % 1000000000u)};
        pthread_cond_timedwait(&tp->tcond, &tp->tlock, &ts);
    }
    pthread_mutex_unlock(&tp->tlock);
    return NULL;
}

static int timer_ensure(struct tp *tp)
{
    int r = 0;
    pthread_mutex_lock(&tp->tlock);
    if (!tp->timer_running && !tp->timer_stop) {
        if (exec__thread_start(&tp->timer, 0, timer_main, tp) == 0)
            tp->timer_running = true;
        else
            r = EXEC_ESYS;
    }
    pthread_mutex_unlock(&tp->tlock);
    return r;
}

static void timer_add(struct tp *tp, struct exec_future *f)
{
    pthread_mutex_lock(&tp->tlock);
    if (tp->hn == tp->hcap) {
        size_t cap = tp->hcap ? tp->hcap * 2 : 16;
        struct exec_future **h = realloc(tp->heap, cap * sizeof *h);
        if (!h) {
            /* Out of memory: the deadline cannot be watched, and running past it silently
             * would break its promise. Fail the future now (the task sees its stop flag and
             * its result is discarded). */
            pthread_mutex_unlock(&tp->tlock);
            if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
                f->fault.code = EXEC_ENOMEM;
                exec__future_finish(f, EXEC_STATE_FAILED);
            }
            return;
        }
        tp->heap = h;
        tp->hcap = cap;
    }
    f->deadline_ns = exec__now_ns() + (uint64_t)f->timeout_ms * 1000000u;
    f->heap_idx = tp->hn;
    tp->heap[tp->hn++] = f;
    heap_up(tp, f->heap_idx);
    if (f->heap_idx == 0)
        pthread_cond_signal(&tp->tcond);
    pthread_mutex_unlock(&tp->tlock);
}

static void timer_del(struct tp *tp, struct exec_future *f)
{
    pthread_mutex_lock(&tp->tlock);
    if (f->heap_idx != SIZE_MAX)
        heap_remove(tp, f->heap_idx);
    pthread_mutex_unlock(&tp->tlock);
}

/* ---------------------------------------------------------------------------------------- */
/* Running tasks                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Run @f (already RUNNING) on this worker. @top: not nested inside another task's wait, so
 * the slot's scratch buffer is free. */
static void run(struct slot *s, struct exec_future *f, bool top)
{
    struct tp *tp = s->tp;
    struct exec_future *outer = exec__tls_task;
    exec__tls_task = f;
    if (f->timeout_ms)
        timer_add(tp, f);

    void *out = s->scratch;
    int level = top ? 0 : ++s->depth;
    if (level > 0) {
        if (level <= NEST_KEEP) {
            if (!s->nest[level - 1])
                s->nest[level - 1] = malloc(tp->max_result);
            out = s->nest[level - 1];
        } else {
            out = malloc(tp->max_result);
        }
        if (!out) {
            if (f->timeout_ms)
                timer_del(tp, f);
            exec__tls_task = outer;
            if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
                f->fault.code = EXEC_ENOMEM;
                f->fault.worker_id = s->id;
                exec__future_drop_arg(f);
                exec__future_finish(f, EXEC_STATE_FAILED);
            }
            goto done;
        }
    }
    size_t n = 0;
    int st = f->fn(f->arg, f->arg_size, out, tp->max_result, &n);
    if (f->timeout_ms)
        timer_del(tp, f);
    exec__tls_task = outer;

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
        exec__future_drop_arg(f);
        exec__future_finish(f, end);
    } else {
        exec__future_drop_arg(f); /* timed out or cancelled while running */
    }
    if (level > NEST_KEEP)
        free(out);
done:
    if (level > 0)
        s->depth--;
    atomic_store_explicit(&s->ran, atomic_load_explicit(&s->ran, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    exec_future_release(f); /* the backend's reference */
}

/* Start a thread in @s. tp->lock held. */
static int spawn(struct tp *tp, struct slot *s, bool join_prev)
{
    pthread_t old = s->thread;
    s->prev = old;
    s->join_prev = join_prev;
    int err = exec__thread_start(&s->thread, tp->stack_size, worker_main, s);
    if (err) {
        s->thread = old;
        s->join_prev = false;
        return EXEC_ESYS;
    }
    s->has_thread = true;
    tp->alive++;
    return 0;
}

static void *worker_main(void *p)
{
    struct slot *s = p;
    struct tp *tp = s->tp;
    tls_slot = s;
    exec__tls_core = tp->core;
    exec__tls_counters = &s->cnt;
    s->tasks = 0;

    pthread_mutex_lock(&tp->lock);
    if (s->join_prev) {
        pthread_t prev = s->prev;
        s->join_prev = false;
        pthread_mutex_unlock(&tp->lock);
        pthread_join(prev, NULL);
        pthread_mutex_lock(&tp->lock);
    }
    for (;;) {
        struct exec_future *f = q_pop(tp, s->id);
        if (f) {
            pthread_mutex_unlock(&tp->lock);
            run(s, f, true);
            pthread_mutex_lock(&tp->lock);
            if (tp->max_tasks && ++s->tasks >= tp->max_tasks &&
                !atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
                /* Retire: the replacement takes over the slot and joins us. If it cannot
                 * start, keep serving and try again after the next task. */
                tp->alive--;
                if (spawn(tp, s, true) == 0) {
                    tp->retired++;
                    pthread_mutex_unlock(&tp->lock);
                    return NULL;
                }
                tp->alive++;
            }
            continue;
        }
        /* Closed and empty: no push can arrive any more (it would fail on CLOSED). */
        if (atomic_load_explicit(&tp->stopping, memory_order_relaxed))
            break;
        /* Before sleeping, watch the queue for a few microseconds: a busy submitter is
         * then served without a futex wake-up per task. */
        pthread_mutex_unlock(&tp->lock);
        bool work = false;
        for (int i = 0; i < SPIN_BEFORE_PARK && !work; i++) {
            cpu_relax();
            work = (atomic_load_explicit(&tp->incoming, memory_order_relaxed) & ~CLOSED) != 0;
        }
        pthread_mutex_lock(&tp->lock);
        if (work || !idle_push(tp, s))
            continue;
        pthread_mutex_unlock(&tp->lock);
        while (atomic_load_explicit(&s->park, memory_order_acquire) == 0)
            exec__futex_wait(&s->park, 0, 0);
        pthread_mutex_lock(&tp->lock);
    }
    tp->alive--;
    pthread_mutex_unlock(&tp->lock);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Operations                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void tp_free(struct tp *tp)
{
    if (tp->slots)
        for (int i = 0; i < tp->nslots; i++) {
            free(tp->slots[i].scratch);
            for (int k = 0; k < NEST_KEEP; k++)
                free(tp->slots[i].nest[k]);
        }
    free(tp->slots);
    free(tp->heap);
    free(tp);
}

static int tp_shutdown(void *impl, unsigned flags);
static int wait_for_room(struct tp *tp, uint32_t flags);

static int tp_create(struct exec *core, void **impl)
{
    /* aligned_alloc: struct tp has cache-line aligned members. */
    size_t tpsize = (sizeof(struct tp) + EXEC__CACHELINE - 1) / EXEC__CACHELINE * EXEC__CACHELINE;
    struct tp *tp = aligned_alloc(EXEC__CACHELINE, tpsize);
    if (!tp)
        return EXEC_ENOMEM;
    memset(tp, 0, sizeof *tp);
    tp->core = core;
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
    for (int i = 0; i < tp->nslots; i++) {
        tp->slots[i].tp = tp;
        tp->slots[i].id = i;
        tp->slots[i].scratch = malloc(tp->max_result);
        if (!tp->slots[i].scratch) {
            tp_free(tp);
            return EXEC_ENOMEM;
        }
    }
    exec__mutex_init_hot(&tp->lock);
    pthread_cond_init(&tp->space, NULL);
    pthread_mutex_init(&tp->tlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->tcond, &ca);
    pthread_condattr_destroy(&ca);

    int r = 0;
    pthread_mutex_lock(&tp->lock);
    for (int i = 0; i < tp->nslots && !r; i++)
        r = spawn(tp, &tp->slots[i], false);
    pthread_mutex_unlock(&tp->lock);
    if (!r && core->cfg.timeout_ms)
        r = timer_ensure(tp);
    if (r) {
        tp_shutdown(tp, EXEC_SHUTDOWN_CANCEL);
        pthread_mutex_destroy(&tp->lock);
        pthread_cond_destroy(&tp->space);
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
static int tp_submit(void *impl, struct exec_future *f, uint32_t flags)
{
    struct tp *tp = impl;
    if (EXEC__UNLIKELY(f->timeout_ms) && timer_ensure(tp) != 0)
        return EXEC_ESYS;
    if (EXEC__UNLIKELY(tp->queue_max) && !is_my_worker(tp)) {
        int r = wait_for_room(tp, flags);
        if (r)
            return r;
    }
    /* Counted before the push so that depth() never sees a pop before its push. */
    atomic_fetch_add_explicit(&tp->pushed, 1, memory_order_relaxed);
    if (EXEC__UNLIKELY(!q_push(tp, f))) {
        atomic_fetch_sub_explicit(&tp->pushed, 1, memory_order_relaxed);
        return EXEC_ESHUTDOWN;
    }
    if (EXEC__UNLIKELY(f->flags & EXEC__F_INTERNAL))
        atomic_fetch_add_explicit(&tp->pushed_internal, 1, memory_order_relaxed);
    if (atomic_load_explicit(&tp->nidle, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&tp->lock);
        struct slot *s = idle_pop(tp);
        pthread_mutex_unlock(&tp->lock);
        if (s)
            wake(s);
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
    while (depth(tp) >= tp->queue_max && !atomic_load(&tp->stopping))
        pthread_cond_wait(&tp->space, &tp->lock);
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
        return EXEC_OK;
    }
    if ((flags & EXEC_CANCEL_RUNNING) && exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        /* The task keeps its thread until it returns; it sees the stop flag. */
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
    if (flags & EXEC_SHUTDOWN_CANCEL) {
        atomic_store(&tp->cancel_all, true);
        q_collect(tp);
        cancelled = tp->head;
        tp->head = tp->tail = NULL;
        uint64_t n = 0;
        for (struct exec_future *c = cancelled; c; c = c->next)
            n++;
        atomic_store_explicit(&tp->popped, atomic_load(&tp->popped) + n, memory_order_release);
    }
    pthread_cond_broadcast(&tp->space);
    struct slot *s;
    while ((s = idle_pop(tp)))
        wake(s);
    pthread_mutex_unlock(&tp->lock);

    while (cancelled) {
        struct exec_future *next = cancelled->next;
        cancelled->next = NULL;
        if (!exec__future_cancel_queued(cancelled))
            atomic_fetch_sub_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        exec_future_release(cancelled);
        cancelled = next;
    }
    if (flags & EXEC_SHUTDOWN_NOWAIT)
        return EXEC_OK;

    /* No thread can start any more (stopping is set), so each slot's thread is final. */
    for (int i = 0; i < tp->nslots; i++) {
        struct slot *sl = &tp->slots[i];
        pthread_mutex_lock(&tp->lock);
        bool has = sl->has_thread;
        pthread_t t = sl->thread;
        sl->has_thread = false;
        pthread_mutex_unlock(&tp->lock);
        if (has)
            pthread_join(t, NULL);
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

static void tp_destroy(void *impl)
{
    struct tp *tp = impl;
    pthread_mutex_destroy(&tp->lock);
    pthread_cond_destroy(&tp->space);
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
    st->submitted = pushed - atomic_load(&tp->pushed_internal);
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
    return is_my_worker(impl) || tls_timer == impl;
}

/* Leave the idle stack after a wait. If a submitter popped us meanwhile, its wake-up was
 * meant for queued work we are not going to run now: pass it on. */
static void leave_idle(struct tp *tp, struct slot *s)
{
    struct slot *other = NULL;
    pthread_mutex_lock(&tp->lock);
    if (s->idle)
        idle_remove(tp, s);
    else if (q_nonempty(tp))
        other = idle_pop(tp);
    pthread_mutex_unlock(&tp->lock);
    if (other)
        wake(other);
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
        struct exec_future *g = q_pop(tp, s->id);
        if (g) {
            pthread_mutex_unlock(&tp->lock);
            run(s, g, false);
            continue;
        }
        if (!idle_push(tp, s)) {
            pthread_mutex_unlock(&tp->lock);
            continue;
        }
        pthread_mutex_unlock(&tp->lock);
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

/* ---------------------------------------------------------------------------------------- */
/* exec_map                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/*
 * A map is split into chunks; W = min(workers, chunks) runner tasks claim chunks with one
 * fetch_add each, so the schedule is dynamic and nothing is allocated per item (the job
 * lives on the caller's stack; the runners are W ordinary futures). For the unordered
 * variant each finished chunk is published into a slot array (one allocation per map) that
 * the caller consumes in completion order.
 */
struct mapjob {
    const struct exec__map_args *a;
    struct tp *tp;
    size_t chunk, nchunks;
    int *status; /* per-item statuses: the caller's, or ours for the unordered variant */
    _Atomic size_t next;  /* next chunk to claim */
    _Atomic size_t done;  /* items finished */
    _Atomic size_t failed;
    _Atomic size_t first_failed;
    /* unordered */
    _Atomic uint32_t *pub; /* pub[k] = chunk index + 1 of the k-th finished chunk */
    _Atomic size_t npub_claim;
    _Atomic uint32_t published; /* futex word: chunks published */
    _Atomic uint32_t sleeping;  /* the caller sleeps on `published` */
};

static int map_runner(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    struct mapjob *j;
    memcpy(&j, arg, sizeof j);
    const struct exec__map_args *a = j->a;
    const unsigned char *in = a->in;
    unsigned char *outb = a->out;
    unsigned char dummy[16];
    for (;;) {
        if (atomic_load_explicit(&j->tp->cancel_all, memory_order_relaxed))
            break;
        size_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->nchunks)
            break;
        size_t lo = c * j->chunk, hi = lo + j->chunk < a->n ? lo + j->chunk : a->n;
        size_t nfail = 0, first = a->n;
        for (size_t i = lo; i < hi; i++) {
            size_t osz = a->out_size;
            void *o = outb ? outb + i * a->out_size : dummy;
            int st = a->fn(in + i * a->in_size, a->in_size, o, a->out_size, &osz);
            if (j->status)
                j->status[i] = st;
            if (st) {
                if (!nfail)
                    first = i;
                nfail++;
            }
        }
        if (nfail) {
            atomic_fetch_add_explicit(&j->failed, nfail, memory_order_relaxed);
            size_t cur = atomic_load_explicit(&j->first_failed, memory_order_relaxed);
            while (first < cur && !atomic_compare_exchange_weak_explicit(
                                      &j->first_failed, &cur, first, memory_order_relaxed,
                                      memory_order_relaxed))
                ;
        }
        atomic_fetch_add_explicit(&j->done, hi - lo, memory_order_release);
        if (j->pub) {
            size_t k = atomic_fetch_add_explicit(&j->npub_claim, 1, memory_order_relaxed);
            atomic_store_explicit(&j->pub[k], (uint32_t)(c + 1), memory_order_release);
            atomic_fetch_add_explicit(&j->published, 1, memory_order_seq_cst);
            if (atomic_load_explicit(&j->sleeping, memory_order_seq_cst))
                exec__futex_wake(&j->published, 1);
        }
    }
    return 0;
}

static bool all_terminal(struct exec_future *const *fs, int n)
{
    for (int i = 0; i < n; i++)
        if (!exec__st_terminal(atomic_load_explicit(&fs[i]->state, memory_order_acquire)))
            return false;
    return true;
}

/* Deliver one finished chunk to the unordered callback. */
static void deliver(const struct mapjob *j, size_t c)
{
    const struct exec__map_args *a = j->a;
    size_t lo = c * j->chunk, hi = lo + j->chunk < a->n ? lo + j->chunk : a->n;
    unsigned char *outb = a->out;
    for (size_t i = lo; i < hi; i++)
        a->on_item(i, j->status[i], outb ? outb + i * a->out_size : NULL, a->user_data);
}

static int tp_map(void *impl, const struct exec__map_args *a)
{
    struct tp *tp = impl;
    exec_map_opts_t *o = a->opts;
    struct mapjob j;
    memset(&j, 0, sizeof j);
    j.a = a;
    j.tp = tp;
    size_t W = (size_t)tp->nslots;
    j.chunk = o->chunk_size;
    if (!j.chunk) {
        /* Eight chunks per worker: enough to balance uneven items, few enough that the
         * per-chunk cost vanishes. */
        size_t target = W * 8;
        j.chunk = (a->n + target - 1) / target;
    }
    j.nchunks = (a->n + j.chunk - 1) / j.chunk;
    if (j.nchunks > UINT32_MAX - 1)
        return EXEC_EINVAL;
    atomic_init(&j.first_failed, a->n);
    j.status = o->status;
    if (a->on_item) {
        if (!j.status) {
            j.status = malloc(a->n * sizeof *j.status);
            if (!j.status)
                return EXEC_ENOMEM;
        }
        j.pub = calloc(j.nchunks, sizeof *j.pub);
        if (!j.pub) {
            if (j.status != o->status)
                free(j.status);
            return EXEC_ENOMEM;
        }
    }

    size_t nrun = W < j.nchunks ? W : j.nchunks;
    exec_future_t *stack_runners[64];
    exec_future_t **runners = stack_runners;
    if (nrun > 64) {
        runners = malloc(nrun * sizeof *runners);
        if (!runners) {
            nrun = 64;
            runners = stack_runners;
        }
    }
    struct mapjob *jp = &j;
    int r = EXEC_OK;
    size_t started = 0;
    for (; started < nrun; started++) {
        r = exec__submit(tp->core, map_runner, &jp, sizeof jp, 0, 0, EXEC__F_INTERNAL,
                         &runners[started]);
        if (r)
            break;
    }
    if (started == 0)
        goto out;
    r = EXEC_OK;

    uint32_t interval = o->progress_interval_ms ? o->progress_interval_ms : 100;
    uint64_t next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
    size_t consumed = 0;
    bool worker = is_my_worker(tp);
    for (;;) {
        bool finished = all_terminal(runners, (int)started);
        if (j.pub) {
            while (consumed < j.nchunks) {
                uint32_t v = atomic_load_explicit(&j.pub[consumed], memory_order_acquire);
                if (!v)
                    break;
                deliver(&j, v - 1);
                consumed++;
            }
        }
        if (finished)
            break;
        if (o->progress && exec__now_ns() >= next_progress) {
            o->progress(atomic_load_explicit(&j.done, memory_order_acquire), a->n,
                        o->progress_data);
            next_progress = exec__now_ns() + (uint64_t)interval * 1000000u;
        }
        uint64_t slice = o->progress ? next_progress : 0;
        if (worker) {
            /* Run queued work (our runners among it) instead of sleeping. */
            uint64_t d = exec__now_ns() + 1000000u;
            if (slice && slice < d)
                d = slice;
            for (size_t i = 0; i < started; i++)
                if (!exec__st_terminal(atomic_load(&runners[i]->state))) {
                    (void)tp_wait(tp, runners[i], j.pub ? d : slice);
                    break;
                }
        } else if (j.pub) {
            uint32_t seen = atomic_load_explicit(&j.published, memory_order_seq_cst);
            atomic_store_explicit(&j.sleeping, 1, memory_order_seq_cst);
            if (seen == atomic_load_explicit(&j.published, memory_order_seq_cst) &&
                !all_terminal(runners, (int)started)) {
                /* Runners publish before they return, so a finished runner has woken us
                 * or left `published` changed; bound the sleep anyway for the final
                 * terminal transition, which does not touch `published`. */
                uint64_t d = exec__now_ns() + 2000000u;
                if (slice && slice < d)
                    d = slice;
                exec__futex_wait(&j.published, seen, d);
            }
            atomic_store_explicit(&j.sleeping, 0, memory_order_relaxed);
        } else {
            int left = -1;
            if (slice) {
                uint64_t now = exec__now_ns();
                left = slice > now ? (int)((slice - now) / 1000000u) + 1 : 1;
            }
            (void)exec_future_wait_all(runners, started, left);
        }
    }

    /* Chunks never claimed (shutdown cancelled runners or stopped them): their items did
     * not run. */
    size_t claimed = atomic_load(&j.next);
    if (claimed > j.nchunks)
        claimed = j.nchunks;
    size_t not_run = 0;
    if (claimed < j.nchunks) {
        size_t lo = claimed * j.chunk;
        not_run = a->n - lo;
        unsigned char *outb = a->out;
        for (size_t i = lo; i < a->n; i++) {
            if (j.status)
                j.status[i] = EXEC_ECANCELLED;
            if (a->on_item)
                a->on_item(i, EXEC_ECANCELLED, outb ? outb + i * a->out_size : NULL,
                           a->user_data);
        }
        r = EXEC_ECANCELLED;
    }
    o->failed = atomic_load(&j.failed) + not_run;
    o->first_failed = atomic_load(&j.first_failed);
    if (not_run && o->first_failed == a->n)
        o->first_failed = claimed * j.chunk;
    if (r == EXEC_OK && o->failed)
        r = EXEC_ETASK;
    if (o->progress && !not_run)
        o->progress(a->n, a->n, o->progress_data);
    atomic_fetch_add_explicit(&tp->core->cnt.map_items, a->n - not_run, memory_order_relaxed);
    for (size_t i = 0; i < started; i++)
        exec_future_release(runners[i]);
out:
    if (runners != stack_runners)
        free(runners);
    if (j.status && j.status != o->status)
        free(j.status);
    free(j.pub);
    return r;
}

const struct exec__backend_ops exec__thread_ops = {
    .version = 1,
    .name = "threads",
    .create = tp_create,
    .submit = tp_submit,
    .map = tp_map,
    .cancel = tp_cancel,
    .shutdown = tp_shutdown,
    .stats = tp_stats,
    .destroy = tp_destroy,
    .forget = tp_forget,
    .in_task = tp_in_task,
    .wait = tp_wait,
};
