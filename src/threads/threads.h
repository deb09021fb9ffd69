/* SPDX-License-Identifier: MIT */
/*
 * threads/threads.h - the thread backend: what its files share. The parts:
 *   pool.c   create, destroy, the operations table, the workers and the map chunks
 *   lost.c   the initializer, a broken pool, and threads that end inside a task
 *   queue.c  the submission stack, the ready FIFO and the idle stack
 *   timer.c  deadlines: a heap of running tasks and the thread that watches it
 * Nothing here is API; nothing outside src/threads/ includes it.
 *
 *
 * Submitters push futures onto a lock-free stack; workers move it, in order, to a FIFO under
 * one mutex, and N worker slots serve it. An idle worker parks on a futex word of its own; a
 * submitter that finds an idle worker pops it from the idle stack and wakes exactly that one (no
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
 * left unjoined, and shutdown joins whatever thread each slot has until none is left.
 *
 * Initializer. Each new worker thread runs it before its first task. A failure (non-zero,
 * or the thread ends inside it) breaks the pool: the queue closes, what waits fails with
 * EXEC_EBROKEN, running tasks finish, the workers leave and none is started again.
 *
 * Threads that end inside a task (pthread_exit(), pthread_cancel()). A worker keeps, in its
 * slot, a frame per level of work it runs (the top-level task or chunk, and each one run
 * nested inside a wait); a cleanup handler around the worker's whole life reads them when
 * the thread unwinds: each task fails EXEC_ECRASHED (EXEC_CAUSE_THREAD_EXIT), a chunk keeps
 * the items it finished, fails the one it was in and leaves the rest to its replacement,
 * which the thread starts in its slot, as recycling does, and which runs them first. The
 * frames are in the slot (or the heap), not on the stack: the handler runs after the stack
 * above worker_main() is gone.
 *
 * Lock order: tp->lock, then a future's lock (via listen/finish), then a cq's lock.
 * tp->tlock (timer) is never held with tp->lock.
 */
#ifndef EXEC_THREADS_THREADS_H
#define EXEC_THREADS_THREADS_H

#include "core/backend.h"
#include "core/trace.h"

struct tp;

#define NEST_KEEP 8

/* One level of work a worker runs (see "Threads that end inside a task" above): a task, or
 * items [lo, hi) of a map of which `done` ran (`nfail` failed, the first at `first`). */
struct tframe {
    struct tframe *up; /* the level this one runs nested in, NULL at the top */
    struct exec_future *f;
    struct exec__map *m;
    size_t lo, hi, done, nfail, first;
    void *heap_out; /* deep: the task's result buffer, in the frame's block */
    bool deep;      /* a level past NEST_KEEP: the frame is a block of its own (malloc) */
};

struct slot {
    struct tp *tp;
    int id;
    /* Under tp->lock: */
    pthread_t thread;
    bool has_thread;    /* a thread runs in this slot and has not been joined */
    bool vacant;        /* its thread ended inside a task and no replacement started yet */
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
    /* The levels of work now running, innermost first (NULL: none); the frames of levels
     * 0..NEST_KEEP (deeper ones are allocated per run, with the result buffer). */
    struct tframe *frame;
    struct tframe fr[NEST_KEEP + 1];
    bool in_init; /* the initializer runs */
    /* Items [resume_lo, resume_hi) of resume_m, claimed by a thread that ended inside the
     * chunk and not run: the replacement runs them first (under tp->lock to hand over). */
    struct exec__map *resume_m;
    size_t resume_lo, resume_hi;
    /* Trace: the slot's lane (NULL when not tracing), written by the slot's current thread,
     * and that thread's OS id (its track), set under tp->lock when it starts. */
    struct exec__tlane *tl;
    uint32_t ttid;
    /* Read by exec_stats, written by the slot's thread only. */
    _Atomic uint64_t ran;
    struct exec__counters cnt;
} __attribute__((aligned(EXEC__CACHELINE)));

struct tp {
    struct exec *core;
    exec_task_fn *init; /* the initializer, NULL for none; its argument is in core->cfg */
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
    /* The pool is broken (its initializer failed): set under lock, read by submitters. */
    _Atomic bool broken;
    int broken_status, broken_cause;
    int vacant; /* slots whose thread ended and could not be replaced yet */
    _Atomic bool any_vacant;
    /* A waiting exec_shutdown() from inside (tp_shutdown_inside): the threads waiting there
     * (workers among them, which count as done), woken on `gone` when a worker exits. */
    pthread_cond_t gone; /* CLOCK_MONOTONIC */
    int inside_waiters, inside_workers;

    /* Timer: its own lock; heap of running futures ordered by deadline_ns. */
    pthread_mutex_t tlock;
    pthread_cond_t tcond; /* CLOCK_MONOTONIC */
    struct exec_future **heap;
    size_t hn, hcap;
    bool timer_running, timer_stop;
    pthread_t timer;

    int nslots;
    struct slot *slots;

    /* Trace (NULL when not tracing): the timer thread's lane, the shared lane's owner. */
    struct exec__trace *trace;
    struct exec__tlane *timer_tl;
};

#define CLOSED ((uintptr_t)1) /* futures are 16-byte aligned: bit 0 of `incoming` is free */

/* queue.c (tp->lock held unless said) */
bool exec__tp_q_push(struct tp *tp, struct exec_future *f);
bool exec__tp_q_collect(struct tp *tp);
bool exec__tp_q_nonempty(struct tp *tp);
struct exec_future *exec__tp_q_pop(struct tp *tp, int worker_id);
struct slot *exec__tp_idle_pop(struct tp *tp);
bool exec__tp_idle_push(struct tp *tp, struct slot *s);
void exec__tp_idle_remove(struct tp *tp, struct slot *s);
void exec__tp_wake(struct slot *s);
void exec__tp_wake_all(struct tp *tp);

/* pool.c: start a thread in @s (tp->lock held); the new one joins the old if @join_prev. */
int exec__tp_spawn(struct tp *tp, struct slot *s, bool join_prev);

/* lost.c: the initializer, a broken pool, threads that end inside a task */
/* End @f (RUNNING, ours) as failed with @code and @cause, unless a deadline or a cancel
 * ended it; drops its argument either way. */
void exec__tp_fail_running(struct exec_future *f, int code, int cause, int worker);
/* The cleanup handler around each worker thread's life (its argument: the slot). */
void exec__tp_on_thread_end(void *slot);
/* Fail with @code the items a thread left to its replacement (see slot.resume_m). */
void exec__tp_drop_resume(struct slot *s, int code);
/* Run the initializer in this new worker thread; false if the pool is (now) broken. */
bool exec__tp_run_init(struct slot *s);
/* Start threads in vacant slots (tp->lock held); whether none is vacant any more. */
bool exec__tp_fill_vacant(struct tp *tp);
/* Take every queued future out of the queue, as a list (tp->lock held). */
struct exec_future *exec__tp_take_queued(struct tp *tp);
/* The pool breaks (exec_cause_t @cause, the initializer's @status); idempotent. */
void exec__tp_break(struct tp *tp, int cause, int status);

/* One more task ended on this slot (exec_stats: running = started - ran). Its thread only. */
static inline void exec__tp_count_ran(struct slot *s)
{
    atomic_store_explicit(&s->ran, atomic_load_explicit(&s->ran, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* timer.c */
int exec__tp_timer_ensure(struct tp *tp);
void exec__tp_timer_add(struct tp *tp, struct exec_future *f);
void exec__tp_timer_del(struct tp *tp, struct exec_future *f);
/* Whether the calling thread is @tp's timer thread (running a deadline callback). */
bool exec__tp_is_timer(const struct tp *tp);
/* On the timer thread (a deadline callback that waits): fail the tasks whose deadline has
 * passed, as the timer would; returns the next deadline (0 = none). */
uint64_t exec__tp_timer_run_due(struct tp *tp);

#endif /* EXEC_THREADS_THREADS_H */
