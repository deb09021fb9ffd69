/* SPDX-License-Identifier: MIT */
/*
 * core/future.c - the future object: allocation from the executor core, the state machine, waits
 * (one, any, all), done-callbacks and reference counting.
 *
 * The hot path (submit, run, finish, wait, release of a future nobody listens to) takes no
 * lock of the future: ending a future is one CAS into COMPLETING by the winner, the outcome
 * fields written by that winner alone, then one release exchange of the terminal state. A
 * waiter sleeps on the state word itself (futex), announcing itself with the WAITERS bit.
 * Only listeners (callbacks, completion queues, wait-any) use the per-future mutex.
 */
#include "core/backend.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The task running on this thread (thread backend) and the core it belongs to. */
_Thread_local struct exec_future *exec__tls_task;
_Thread_local struct exec *exec__tls_core;
_Thread_local struct exec__counters *exec__tls_counters;
/* Set in a worker process when its running task must stop (SIGTERM at a deadline). */
_Atomic int exec__worker_stop;

/* The packed outcome (struct exec__fault) holds every error code in a byte. */
#define CODE_FITS(name, value, msg) _Static_assert((value) >= INT8_MIN && (value) <= 0, #name);
EXEC_ERRNO_MAP(CODE_FITS)
#undef CODE_FITS

/* ---------------------------------------------------------------------------------------- */
/* Argument and result bytes                                                                 */
/* ---------------------------------------------------------------------------------------- */

int exec__future_set_arg(struct exec_future *f, const void *arg, size_t size)
{
    if (size == 0) {
        f->arg = NULL;
        f->arg_size = 0;
        return 0;
    }
    if (size <= sizeof f->inl) {
        f->arg = f->inl;
    } else {
        f->arg = exec__arg_buf_get(exec__future_core(f), size);
        if (!f->arg)
            return EXEC_ENOMEM;
    }
    memcpy(f->arg, arg, size);
    f->arg_size = (uint32_t)size;
    return 0;
}

void exec__future_drop_arg(struct exec_future *f)
{
    /* arg_size 0: no argument held, and the pointer may hold the result by now. */
    if (!f->arg_size)
        return;
    if (f->arg && f->arg != (void *)f->inl)
        exec__arg_buf_put(exec__future_core(f), f->arg, f->arg_size);
    f->arg = NULL;
    f->arg_size = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The state machine                                                                         */
/* ---------------------------------------------------------------------------------------- */

bool exec__future_claim(struct exec_future *f, uint32_t from_mask)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    for (;;) {
        uint32_t v = s & EXEC__ST_MASK;
        if (v == EXEC__ST_COMPLETING || !(from_mask & (1u << v)))
            return false;
        /* Keep the WAITERS/LISTENERS bits: finish() reads them from the final exchange. */
        uint32_t want = (s & ~EXEC__ST_MASK) | EXEC__ST_COMPLETING;
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, want, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
}

int exec__future_set_result(struct exec_future *f, const void *data, size_t size)
{
    /* The argument is dead once the task has returned; its pointer and bytes are reused. */
    exec__future_drop_arg(f);
    f->res = NULL;
    f->res_size = 0;
    if (size == 0)
        return 0;
    void *dst;
    if (size <= sizeof f->inl) {
        dst = f->inl;
    } else {
        dst = malloc(size);
        if (!dst)
            return EXEC_ENOMEM;
    }
    memcpy(dst, data, size);
    f->res = dst;
    f->res_size = size;
    return 0;
}

static void count(struct exec_future *f, exec_state_t st)
{
    struct exec *core = exec__future_core(f);
    struct exec__counters *c = &core->cnt;
    bool mine = exec__tls_counters && exec__tls_core == core;
    if (st == EXEC_STATE_DONE && mine) {
        /* Per-worker counter, written by this thread only: no contended RMW. */
        c = exec__tls_counters;
        atomic_store_explicit(&c->completed,
                              atomic_load_explicit(&c->completed, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return;
    }
    _Atomic uint64_t *p = st == EXEC_STATE_DONE     ? &c->completed
                          : st == EXEC_STATE_FAILED ? &c->failed
                                                    : &c->cancelled;
    atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
    if (f->fault.code == EXEC_ETIMEDOUT)
        atomic_fetch_add_explicit(&c->timed_out, 1, memory_order_relaxed);
    if (f->fault.code == EXEC_ECRASHED)
        atomic_fetch_add_explicit(&c->crashed, 1, memory_order_relaxed);
}

static void fire(struct exec_future *f, struct exec__listener *l)
{
    exec_done_fn *fn = l->u.cb.fn;
    void *ud = l->u.cb.user_data;
    if (l->u.cb.heap)
        free(l);
    fn(f, ud);
}

/* The futures whose listeners this thread is running now, innermost first (a callback may
 * end another future). exec_future_on_done() from inside one of them joins the line instead
 * of waiting for the line to end. */
struct firing {
    const struct exec_future *f;
    struct firing *outer;
};
static _Thread_local struct firing *firing_now;

static bool firing_here(const struct exec_future *f)
{
    for (struct firing *x = firing_now; x; x = x->outer)
        if (x->f == f)
            return true;
    return false;
}

/*
 * Publish the terminal state. The LISTENERS bit survives into the terminal state while the
 * listeners are being run: a callback added meanwhile sees it, is appended, and is run by
 * this loop after the earlier ones (so callbacks run in the order added even when one is
 * added during completion). The bit is cleared, under the lock, once the list is empty.
 */
void exec__future_finish(struct exec_future *f, exec_state_t st)
{
    count(f, st);
    uint32_t old = atomic_load_explicit(&f->state, memory_order_relaxed);
    /* Release: the outcome written by the claimer is visible to whoever sees the state. */
    while (!atomic_compare_exchange_weak_explicit(&f->state, &old,
                                                  (uint32_t)st | (old & EXEC__ST_LISTENERS),
                                                  memory_order_acq_rel, memory_order_relaxed))
        ;
    if (old & EXEC__ST_WAITERS)
        exec__futex_wake(&f->state, INT_MAX);
    if (!(old & EXEC__ST_LISTENERS))
        return;

    /* A listener was added, so the cold part exists (exec__future_listen() made sure). Waiters
     * of wait-any live on their callers' stacks: wake them under the lock, so that
     * exec__future_unlisten() (which takes the lock) cannot return while we still touch the
     * node. Callbacks and the cq node belong to the future: run them outside the lock. */
    struct exec__fcold *c = exec__future_cold_get(f);
    struct firing me = {f, firing_now};
    firing_now = &me;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        if (exec__list_empty(&c->listeners)) {
            atomic_fetch_and_explicit(&f->state, ~EXEC__ST_LISTENERS, memory_order_release);
            pthread_mutex_unlock(&c->lock);
            break;
        }
        struct exec__list later;
        exec__list_init(&later);
        struct exec__list *n;
        while ((n = exec__list_first(&c->listeners))) {
            struct exec__listener *l = EXEC__CONTAINER_OF(n, struct exec__listener, node);
            exec__list_remove(n);
            if (l->kind == EXEC__L_WAKE) {
                atomic_store_explicit(l->u.wake, 1, memory_order_release);
                exec__futex_wake(l->u.wake, 1);
            } else {
                exec__list_push_back(&later, n);
            }
        }
        pthread_mutex_unlock(&c->lock);
        /* The callback nodes are ours now (out of the future's list): no lock needed. */
        while ((n = exec__list_first(&later))) {
            exec__list_remove(n);
            fire(f, EXEC__CONTAINER_OF(n, struct exec__listener, node));
        }
    }
    firing_now = me.outer;
}

int exec__future_end_code(struct exec_future *f)
{
    while (!exec__st_terminal(atomic_load_explicit(&f->state, memory_order_acquire)))
        exec__yield();
    return f->fault.code;
}

bool exec__future_cancel_queued(struct exec_future *f)
{
    if (!exec__future_claim(f, 1u << EXEC_STATE_QUEUED))
        return false;
    f->fault.code = EXEC_ECANCELLED;
    exec__future_drop_arg(f);
    exec__future_finish(f, EXEC_STATE_CANCELLED);
    return true;
}

bool exec__future_listen(struct exec_future *f, struct exec__listener *l)
{
    struct exec__fcold *c = exec__future_cold(f);
    if (EXEC__UNLIKELY(!c))
        return false; /* out of memory: see future.h */
    pthread_mutex_lock(&c->lock);
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        if (exec__st_terminal(s)) {
            /* Terminal with listeners still being run: join the end of the line. */
            if (s & EXEC__ST_LISTENERS)
                break;
            pthread_mutex_unlock(&c->lock);
            return false;
        }
        if (s & EXEC__ST_LISTENERS)
            break;
        /* Fails if the state went terminal: then finish() saw no LISTENERS bit and we must
         * not add (nobody would fire us). */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, s | EXEC__ST_LISTENERS,
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    exec__list_push_back(&c->listeners, &l->node);
    pthread_mutex_unlock(&c->lock);
    return true;
}

void exec__future_unlisten(struct exec_future *f, struct exec__listener *l)
{
    struct exec__fcold *c = exec__future_cold_get(f);
    pthread_mutex_lock(&c->lock);
    /* Still linked only if finish() has not taken the list yet. */
    if (!exec__list_unlinked(&l->node))
        exec__list_remove(&l->node);
    pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Public API                                                                                */
/* ---------------------------------------------------------------------------------------- */

static bool terminal(const struct exec_future *f)
{
    return exec__st_terminal(
        atomic_load_explicit(&((struct exec_future *)f)->state, memory_order_acquire));
}

/* How long a waiter keeps looking before it sleeps in the kernel. A wake-up costs a few
 * microseconds on each side; a result that arrives within this window is picked up without
 * one. exec__yield() every few probes hands the CPU to the worker when both share one (on
 * 2 CPUs the caller, the worker and the supervisor often do). */
#define WAIT_SPIN_NS 20000u

/* Sleep on the state word until terminal or the deadline. */
static int sleep_on(struct exec_future *f, uint64_t deadline)
{
    uint64_t spin_end = 0;
    for (unsigned i = 1;; i++) {
        if (terminal(f))
            return EXEC_OK;
        if (i % 16 == 0) {
            uint64_t now = exec__now_ns();
            if (!spin_end)
                spin_end = now + WAIT_SPIN_NS;
            else if (now >= spin_end || (deadline && now >= deadline))
                break;
            exec__yield();
        } else {
            exec__cpu_relax();
        }
    }
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        if (exec__st_terminal(s))
            return EXEC_OK;
        if (!(s & EXEC__ST_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(&f->state, &s, s | EXEC__ST_WAITERS,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire))
                continue;
            s |= EXEC__ST_WAITERS;
        }
        if (exec__futex_wait(&f->state, s, deadline) == EXEC_ETIMEDOUT)
            return terminal(f) ? EXEC_OK : EXEC_ETIMEDOUT;
        s = atomic_load_explicit(&f->state, memory_order_acquire);
    }
}

static int wait_one(struct exec_future *f, uint64_t deadline)
{
    if (terminal(f))
        return EXEC_OK;
    struct exec *core = exec__future_core(f);
    if (EXEC__UNLIKELY(exec__core_forked(core)))
        return EXEC_ESHUTDOWN; /* its worker does not exist in this process */
    /* A worker of f's own executor must help instead of sleeping (no pool deadlock). The
     * thread-local test never touches core->impl unless we are its worker, in which case
     * the executor cannot be destroyed under us (destroy waits for our task). */
    int (*help)(void *, struct exec_future *, uint64_t) = EXEC__OP(core->ops, wait, 1);
    if (exec__tls_core == core && help)
        return help(core->impl, f, deadline);
    return sleep_on(f, deadline);
}

EXEC_API int exec_future_wait(exec_future_t *f, int timeout_ms)
{
    if (!f || timeout_ms < EXEC_WAIT_FOREVER)
        return EXEC_EINVAL;
    if (terminal(f))
        return EXEC_OK;
    if (timeout_ms == 0)
        return EXEC_ETIMEDOUT;
    return wait_one(f, exec__deadline_ns(timeout_ms));
}

EXEC_API int exec_future_wait_all(exec_future_t *const *fs, size_t n, int timeout_ms)
{
    if (!fs || n == 0 || timeout_ms < EXEC_WAIT_FOREVER)
        return EXEC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return EXEC_EINVAL;
    uint64_t deadline = timeout_ms > 0 ? exec__deadline_ns(timeout_ms) : 0;
    for (size_t i = 0; i < n; i++) {
        if (terminal(fs[i]))
            continue;
        if (timeout_ms == 0)
            return EXEC_ETIMEDOUT;
        int r = wait_one(fs[i], deadline);
        if (r != EXEC_OK)
            return r;
    }
    return EXEC_OK;
}

static int first_terminal(exec_future_t *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (terminal(fs[i]))
            return (int)(i > INT_MAX ? INT_MAX : i);
    return -1;
}

EXEC_API int exec_future_wait_any(exec_future_t *const *fs, size_t n, int timeout_ms)
{
    if (!fs || n == 0 || n > INT_MAX || timeout_ms < EXEC_WAIT_FOREVER)
        return EXEC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return EXEC_EINVAL;
    int idx = first_terminal(fs, n);
    if (idx >= 0)
        return idx;
    if (timeout_ms == 0)
        return EXEC_ETIMEDOUT;
    uint64_t deadline = exec__deadline_ns(timeout_ms);
    for (size_t i = 0; i < n; i++)
        if (exec__core_forked(exec__future_core(fs[i])))
            return EXEC_ESHUTDOWN;

    /* A worker thread of an executor must not sleep while its queue has work (the futures
     * may depend on it): poll while helping. */
    struct exec *core = exec__tls_core;
    int (*help)(void *, struct exec_future *, uint64_t) =
        core ? EXEC__OP(core->ops, wait, 1) : NULL;
    if (help) {
        for (;;) {
            idx = first_terminal(fs, n);
            if (idx >= 0)
                return idx;
            if (deadline && exec__now_ns() >= deadline)
                return EXEC_ETIMEDOUT;
            /* Helping on one of them runs queued work; a short slice keeps us responsive to
             * the others. */
            uint64_t slice = exec__now_ns() + 1000000u;
            if (deadline && deadline < slice)
                slice = deadline;
            for (size_t i = 0; i < n; i++)
                if (exec__future_core(fs[i]) == core) {
                    (void)help(core->impl, fs[i], slice);
                    break;
                }
            if (exec__now_ns() < slice) {
                _Atomic uint32_t w = 0;
                (void)exec__futex_wait(&w, 0, slice);
            }
        }
    }

    for (size_t i = 0; i < n; i++)
        if (!exec__future_cold(fs[i]))
            return EXEC_ENOMEM; /* the listeners' lock and list are out of line */
    struct exec__listener stack_nodes[16];
    struct exec__listener *nodes = stack_nodes;
    if (n > 16) {
        nodes = calloc(n, sizeof *nodes);
        if (!nodes)
            return EXEC_ENOMEM;
    }
    _Atomic uint32_t word = 0;
    size_t added = 0;
    for (; added < n; added++) {
        nodes[added].kind = EXEC__L_WAKE;
        nodes[added].u.wake = &word;
        if (!exec__future_listen(fs[added], &nodes[added]))
            break; /* already terminal */
    }
    int r = EXEC_OK;
    if (added == n) {
        while (atomic_load_explicit(&word, memory_order_acquire) == 0) {
            if (exec__futex_wait(&word, 0, deadline) == EXEC_ETIMEDOUT)
                break;
        }
    }
    for (size_t i = 0; i < added; i++)
        exec__future_unlisten(fs[i], &nodes[i]);
    if (nodes != stack_nodes)
        free(nodes);
    idx = first_terminal(fs, n);
    if (idx >= 0)
        return idx;
    return r == EXEC_OK ? EXEC_ETIMEDOUT : r;
}

EXEC_API int exec_future_state(const exec_future_t *f)
{
    if (!f)
        return EXEC_EINVAL;
    uint32_t v = exec__future_state(f);
    /* COMPLETING is internal: to the outside the task is still running. */
    return v == EXEC__ST_COMPLETING ? EXEC_STATE_RUNNING : (int)v;
}

EXEC_API int exec_future_result(const exec_future_t *f, const void **data, size_t *size)
{
    if (!f)
        return EXEC_EINVAL;
    if (!terminal(f))
        return EXEC_EAGAIN;
    int code = f->fault.code;
    if (data)
        *data = code == EXEC_OK ? f->res : NULL;
    if (size)
        *size = code == EXEC_OK ? f->res_size : 0;
    return code;
}

EXEC_API int exec_future_fault(const exec_future_t *f, exec_fault_t *fault)
{
    if (!f || !fault)
        return EXEC_EINVAL;
    if (!terminal(f))
        return EXEC_EAGAIN;
    memset(fault, 0, sizeof *fault);
    fault->code = f->fault.code;
    fault->task_status = f->fault.task_status;
    fault->sys_errno = f->fault.sys_errno;
    fault->signal = f->fault.signal;
    fault->exit_status = f->fault.exit_status;
    fault->worker_pid = f->fault.worker_pid;
    fault->worker_id = f->fault.worker_id;
    fault->cause = f->fault.cause;
    fault->rank = f->fault.rank;
    return EXEC_OK;
}

EXEC_API int exec_future_cancel(exec_future_t *f, unsigned flags)
{
    if (!f || (flags & ~EXEC_CANCEL_RUNNING))
        return EXEC_EINVAL;
    if (terminal(f))
        return EXEC_EBUSY;
    struct exec *core = exec__future_core(f);
    if (exec__core_forked(core))
        return EXEC_EBUSY;
    return core->ops->cancel(core->impl, f, flags);
}

/* Wait until the finisher has run every listener (the LISTENERS bit leaves the terminal
 * state). Callbacks are short by contract, so a polite spin with growing sleeps is enough. */
static void wait_listeners_done(struct exec_future *f)
{
    long ns = 1000;
    while (atomic_load_explicit(&f->state, memory_order_acquire) & EXEC__ST_LISTENERS) {
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 1000000)
            ns *= 2;
    }
}

EXEC_API int exec_future_on_done(exec_future_t *f, exec_done_fn *cb, void *user_data)
{
    if (!f || !cb)
        return EXEC_EINVAL;
    for (;;) {
        uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
        if (!exec__st_terminal(s))
            break;
        if (s & EXEC__ST_LISTENERS) {
            /* Finished, but earlier callbacks are still running. From inside one of them
             * (the finishing thread) join the queue; from elsewhere wait for them to end,
             * then run ours here, so "in the order added" and "before this returns" both
             * hold. */
            if (firing_here(f))
                break;
            wait_listeners_done(f);
            continue;
        }
        cb(f, user_data);
        return EXEC_OK;
    }
    /* The first callback uses the node inside the future; later ones are allocated. */
    struct exec__fcold *c = exec__future_cold(f);
    if (!c)
        return EXEC_ENOMEM;
    struct exec__listener *l = NULL;
    pthread_mutex_lock(&c->lock);
    if (!c->cb0_used) {
        c->cb0_used = true;
        l = &c->cb0;
        l->u.cb.heap = false;
    }
    pthread_mutex_unlock(&c->lock);
    if (!l) {
        l = malloc(sizeof *l);
        if (!l)
            return EXEC_ENOMEM;
        l->u.cb.heap = true;
    }
    l->kind = EXEC__L_CALLBACK;
    l->u.cb.fn = cb;
    l->u.cb.user_data = user_data;
    if (!exec__future_listen(f, l)) {
        /* Finished meanwhile: run it here. */
        if (l->u.cb.heap)
            free(l);
        cb(f, user_data);
    }
    return EXEC_OK;
}

EXEC_API exec_future_t *exec_future_retain(exec_future_t *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

EXEC_API void exec_future_release(exec_future_t *f)
{
    if (!f)
        return;
    /* acq_rel: the last releaser must see every write made through other references. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        exec__future_free(f);
}

EXEC_API bool exec_task_should_stop(void)
{
    if (atomic_load_explicit(&exec__worker_stop, memory_order_relaxed))
        return true;
    struct exec_future *f = exec__tls_task;
    if (!f)
        return false;
    return exec__future_state(f) != EXEC_STATE_RUNNING;
}
