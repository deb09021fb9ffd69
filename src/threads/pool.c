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
    _Atomic bool stopping;            /* written under lock, read anywhere */

    /* Worker side. lock protects the ready FIFO, the running maps, the idle stack, slots'
     * thread fields, alive and retired. */
    pthread_mutex_t lock __attribute__((aligned(EXEC__CACHELINE)));
    pthread_cond_t space; /* queue_max: room freed up, or shutdown */
    struct exec_future *head, *tail;
    struct exec__list maps; /* exec_map() jobs with chunks to claim (core/map.h) */
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
        f->bk.threads.next = (struct exec_future *)top;
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
        struct exec_future *next = f->bk.threads.next;
        f->bk.threads.next = rev;
        rev = f;
        f = next;
    }
    if (tp->tail)
        tp->tail->bk.threads.next = rev;
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
        tp->head = f->bk.threads.next;
        if (!tp->head)
            tp->tail = NULL;
        f->bk.threads.next = NULL;
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
    if (q_nonempty(tp) || !exec__list_empty(&tp->maps) ||
        atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
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
    tp->heap[a]->bk.threads.heap_idx = a;
    tp->heap[b]->bk.threads.heap_idx = b;
}

static void heap_up(struct tp *tp, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (tp->heap[p]->bk.threads.deadline_ns <= tp->heap[i]->bk.threads.deadline_ns)
            break;
        heap_swap(tp, i, p);
        i = p;
    }
}

static void heap_down(struct tp *tp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tp->hn && tp->heap[l]->bk.threads.deadline_ns < tp->heap[m]->bk.threads.deadline_ns)
            m = l;
        if (r < tp->hn && tp->heap[r]->bk.threads.deadline_ns < tp->heap[m]->bk.threads.deadline_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(tp, i, m);
        i = m;
    }
}

static void heap_remove(struct tp *tp, size_t i)
{
    tp->heap[i]->bk.threads.heap_idx = SIZE_MAX;
    tp->hn--;
    if (i == tp->hn)
        return;
    tp->heap[i] = tp->heap[tp->hn];
    tp->heap[i]->bk.threads.heap_idx = i;
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
        if (f->bk.threads.deadline_ns <= now) {
            heap_remove(tp, 0);
            /* The worker may finish and drop its reference as soon as we unlock. */
            exec_future_retain(f);
            pthread_mutex_unlock(&tp->tlock);
            timeout_expired(f);
            exec_future_release(f);
            pthread_mutex_lock(&tp->tlock);
            continue;
        }
        struct timespec ts = {(time_t)(f->bk.threads.deadline_ns / 1000000000u),
                              (long)(f->bk.threads.deadline_ns % 1000000000u)};
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
    f->bk.threads.deadline_ns = exec__now_ns() + (uint64_t)f->timeout_ms * 1000000u;
    f->bk.threads.heap_idx = tp->hn;
    tp->heap[tp->hn++] = f;
    heap_up(tp, f->bk.threads.heap_idx);
    if (f->bk.threads.heap_idx == 0)
        pthread_cond_signal(&tp->tcond);
    pthread_mutex_unlock(&tp->tlock);
}

static void timer_del(struct tp *tp, struct exec_future *f)
{
    pthread_mutex_lock(&tp->tlock);
    if (f->bk.threads.heap_idx != SIZE_MAX)
        heap_remove(tp, f->bk.threads.heap_idx);
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

/* ---------------------------------------------------------------------------------------- */
/* Map chunks (core/map.h)                                                                   */
/* ---------------------------------------------------------------------------------------- */

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

/* Run items [lo, hi) of @m in place: arguments read from the caller's input, results written
 * straight into its output. */
static void run_chunk(struct exec__map *m, size_t lo, size_t hi)
{
    _Alignas(16) unsigned char dummy[16];
    size_t nfail = 0, first = hi;
    for (size_t i = lo; i < hi; i++) {
        size_t osz = m->out_size;
        void *o = m->out ? m->out + i * m->out_size : dummy;
        int st = m->fn(m->in + i * m->in_size, m->in_size, o, m->out_size, &osz);
        if (m->status)
            m->status[i] = st;
        if (st && !nfail++)
            first = i;
    }
    exec__map_ran(m, lo, hi, nfail, first);
}

/* One unit of queued work: a task (already RUNNING) or a map chunk. */
struct work {
    struct exec_future *f;
    struct exec__map *m;
    size_t lo, hi;
};

static bool take_work(struct tp *tp, struct slot *s, struct work *w)
{
    w->f = q_pop(tp, s->id);
    return w->f || map_pop(tp, &w->m, &w->lo, &w->hi);
}

static void do_work(struct slot *s, struct work *w, bool top)
{
    if (w->f)
        run(s, w->f, top);
    else
        run_chunk(w->m, w->lo, w->hi);
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
        struct work w;
        if (take_work(tp, s, &w)) {
            pthread_mutex_unlock(&tp->lock);
            do_work(s, &w, true);
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
    exec__list_init(&tp->maps);
    pthread_cond_init(&tp->space, NULL);
    pthread_mutex_init(&tp->tlock, NULL);
    exec__cond_init_mono(&tp->tcond);

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
static int tp_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    struct tp *tp = impl;
    f->bk.threads.heap_idx = SIZE_MAX; /* in no timer heap */
    if (EXEC__UNLIKELY(exec__future_set_arg(f, arg, f->arg_size) != 0))
        return EXEC_ENOMEM;
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
        q_collect(tp);
        cancelled = tp->head;
        tp->head = tp->tail = NULL;
        uint64_t n = 0;
        for (struct exec_future *c = cancelled; c; c = c->bk.threads.next)
            n++;
        atomic_store_explicit(&tp->popped, atomic_load(&tp->popped) + n, memory_order_release);
    }
    pthread_cond_broadcast(&tp->space);
    struct slot *s;
    while ((s = idle_pop(tp)))
        wake(s);
    pthread_mutex_unlock(&tp->lock);

    while (cancelled) {
        struct exec_future *next = cancelled->bk.threads.next;
        cancelled->bk.threads.next = NULL;
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
        struct work w;
        if (take_work(tp, s, &w)) {
            pthread_mutex_unlock(&tp->lock);
            do_work(s, &w, false);
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

static int tp_map_start(void *impl, struct exec__map *m)
{
    struct tp *tp = impl;
    struct slot *wake_list[64];
    int nwake = 0;
    pthread_mutex_lock(&tp->lock);
    if (atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
        pthread_mutex_unlock(&tp->lock);
        return EXEC_ESHUTDOWN;
    }
    exec__list_push_back(&tp->maps, &m->link);
    struct slot *s;
    while ((size_t)nwake < m->nchunks && nwake < 64 && (s = idle_pop(tp)))
        wake_list[nwake++] = s;
    pthread_mutex_unlock(&tp->lock);
    for (int i = 0; i < nwake; i++)
        wake(wake_list[i]);
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
        c->recycle_jitter_pct || c->crash_limit || c->crash_window_ms || c->initializer ||
        c->init_arg || c->init_arg_size)
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
};
