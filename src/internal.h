/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what the sources of libexecutor share: the executor core, the future object,
 * and the backend operations table. Nothing here is API.
 *
 * Ownership model. The user's exec_t handle is a `struct exec` (the "core"). The core owns
 * the future allocator and the counters, and outlives exec_destroy() for as long as any
 * future is still referenced: futures point at their core, never at a backend. A backend
 * owns its workers and sits behind `ops` + `impl`; the front never looks inside it.
 */
#ifndef EXEC_INTERNAL_H
#define EXEC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor.h"

#if defined(EXEC_DEBUG)
#include <stdio.h>
#include <stdlib.h>
#define EXEC__ASSERT(c)                                                                  \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                     \
        }                                                                                \
    } while (0)
#else
#define EXEC__ASSERT(c) ((void)0)
#endif

#define EXEC__LIKELY(x) __builtin_expect(!!(x), 1)
#define EXEC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EXEC__CACHELINE 64

/* Bytes of argument/result kept inside the future itself (no allocation below this). */
#define EXEC__INLINE_BYTES 64

/* ---------------------------------------------------------------------------------------- */
/* Futures                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/*
 * The state word. Low 4 bits: the exec_state_t value, or COMPLETING while the winner of the
 * race to end the future is filling in its result. High bits: who must be told.
 * Transitions: QUEUED -> RUNNING -> COMPLETING -> DONE|FAILED|CANCELLED
 *              QUEUED -> COMPLETING -> CANCELLED (cancel, shutdown)
 * Exactly one thread wins the CAS into COMPLETING; only it writes the outcome fields, and
 * it publishes them with a release exchange of the final state. Readers that see a
 * terminal state with an acquire load may read the outcome without a lock.
 */
#define EXEC__ST_MASK 0xfu
#define EXEC__ST_COMPLETING 0xfu
#define EXEC__ST_WAITERS 0x10u   /* a thread sleeps in futex_wait on the state word */
#define EXEC__ST_LISTENERS 0x20u /* the listener list is not empty */

static inline bool exec__st_terminal(uint32_t s)
{
    uint32_t v = s & EXEC__ST_MASK;
    return v == EXEC_STATE_DONE || v == EXEC_STATE_FAILED || v == EXEC_STATE_CANCELLED;
}

/* A listener: someone to tell when a future ends. Callers own the node's memory. */
enum { EXEC__L_CALLBACK = 1, EXEC__L_WAKE = 2, EXEC__L_CQ = 3 };
struct exec__counters;
struct exec__listener {
    struct exec__listener *next, *prev;
    int kind;
    union {
        struct {
            exec_done_fn *fn;
            void *user_data;
            bool heap; /* free the node after the call */
        } cb;
        _Atomic uint32_t *wake; /* set to 1 and futex-woken */
        struct exec_cq *cq;
    } u;
};

struct exec_future {
    /* Hot, written by whoever ends the future. */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    struct exec *core;    /* owner; its future allocator gets us back */
    exec_task_fn *fn;
    void *arg;            /* argument bytes: inl or heap; freed once the task ended */
    size_t arg_size;
    void *res;            /* result bytes: inl or heap; NULL when size 0 */
    size_t res_size;
    exec_fault_t fault;   /* outcome; fault.code is the result code */

    /* Queue links; owned by the backend that queued the future. */
    struct exec_future *next, *prev;
    uint32_t timeout_ms;  /* effective run-time limit, 0 = none */
    uint32_t flags;       /* EXEC__F_* */
    uint64_t deadline_ns; /* backend use: when the running task times out */
    size_t heap_idx;      /* backend use: position in a timer heap, SIZE_MAX if none */
    void *backend;        /* backend use */

    /* Listeners (callbacks, waiters of wait_any, a cq), protected by lock. */
    pthread_mutex_t lock;
    struct exec__listener *lhead, *ltail;
    pthread_t firing; /* the thread that ended the future (runs its listeners); written by
                         the claimer before the terminal CAS, read after an acquire load */
    struct exec__listener cb0; /* first callback without allocation */
    bool cb0_used;
    struct exec__listener cqnode;
    bool cq_routed;
    struct exec_future *cq_next; /* link inside a completion queue, under its lock */

    struct exec_future *free_next; /* allocator free list */
    _Alignas(16) unsigned char inl[EXEC__INLINE_BYTES];
};

#define EXEC__F_INTERNAL 1u /* a backend's helper task (map runner): not in user counters */

/* Allocation of futures from the core's free list. Returns NULL on ENOMEM. The new
 * future has state QUEUED, refs 1, no argument. */
struct exec_future *exec__future_alloc(struct exec *core);
/* Copy the argument into the future (inline or one heap block). EXEC_OK or EXEC_ENOMEM. */
int exec__future_set_arg(struct exec_future *f, const void *arg, size_t size);
/* Drop the argument copy (after the task ran). */
void exec__future_drop_arg(struct exec_future *f);

/* Try to take the right to end @f. From QUEUED or RUNNING (@from_mask: bit 1<<state).
 * Returns true if this caller won; it must then call exec__future_finish(). */
bool exec__future_claim(struct exec_future *f, uint32_t from_mask);
/* Store the result bytes of a claimed future. EXEC_OK or EXEC_ENOMEM. */
int exec__future_set_result(struct exec_future *f, const void *data, size_t size);
/* Publish the final state of a claimed future (code in f->fault.code must be set), wake
 * waiters, run listeners, update the core counters. */
void exec__future_finish(struct exec_future *f, exec_state_t st);
/* Convenience: claim from QUEUED and finish as cancelled. Returns true if it won. */
bool exec__future_cancel_queued(struct exec_future *f);

static inline uint32_t exec__future_state(const struct exec_future *f)
{
    return atomic_load_explicit(&((struct exec_future *)f)->state, memory_order_acquire) &
           EXEC__ST_MASK;
}

/* The task running on this thread and the executor core it belongs to (thread backend);
 * tls_counters: that worker's private counters. Set by a backend around each task. */
extern _Thread_local struct exec_future *exec__tls_task;
extern _Thread_local struct exec *exec__tls_core;
extern _Thread_local struct exec__counters *exec__tls_counters;
/* Set in a worker process when its running task must stop (exec_task_should_stop()). */
extern _Atomic int exec__worker_stop;

/* Listener registration. add returns false (and does not add) if @f is already terminal. */
bool exec__future_listen(struct exec_future *f, struct exec__listener *l);
void exec__future_unlisten(struct exec_future *f, struct exec__listener *l);

/* Deliver a finished future to a completion queue (cq.c). Takes over one reference. */
void exec__cq_push(struct exec_cq *cq, struct exec_future *f);
void exec__cq_unref(struct exec_cq *cq);

/* ---------------------------------------------------------------------------------------- */
/* Backends                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct exec__map_args {
    exec_task_fn *fn;
    const void *in;
    size_t in_size;
    void *out;
    size_t out_size;
    size_t n;
    exec_item_fn *on_item; /* NULL for the ordered exec_map() */
    void *user_data;
    exec_map_opts_t *opts; /* never NULL here (the front passes a zeroed one) */
};

/*
 * The backend operations table (SQLite's iVersion idea: a backend says which version of
 * the table it fills, so fields can be appended without breaking older backends).
 */
struct exec__backend_ops {
    int version; /* 1 */
    const char *name;
    /* Make the backend for @core (core->cfg is final). Sets *impl. */
    int (*create)(struct exec *core, void **impl);
    /* Queue @f (state QUEUED, argument set, one reference for the backend already taken).
     * On failure the backend has not kept @f. */
    int (*submit)(void *impl, struct exec_future *f, uint32_t flags);
    int (*map)(void *impl, const struct exec__map_args *a);
    /* Cancel running @f (EXEC_CANCEL_RUNNING); queued futures are cancelled by cancel too. */
    int (*cancel)(void *impl, struct exec_future *f, unsigned flags);
    int (*shutdown)(void *impl, unsigned flags);
    void (*stats)(void *impl, exec_stats_t *st);
    /* Stop and free everything (shutdown already waited). */
    void (*destroy)(void *impl);
    /* In a child of fork(): free the memory of this copy without joining, signalling or
     * locking anything (the workers belong to the parent). */
    void (*forget)(void *impl);
    /* Whether the calling thread is running a task of this backend (EDEADLK checks). */
    bool (*in_task)(void *impl);
    /* Help while waiting: called by exec_future_wait when in_task; may run queued work.
     * Returns EXEC_OK when @f is terminal or EXEC_ETIMEDOUT at @deadline_ns (0 = never). */
    int (*wait)(void *impl, struct exec_future *f, uint64_t deadline_ns);
};

extern const struct exec__backend_ops exec__thread_ops;
extern const struct exec__backend_ops exec__process_ops;

/* ---------------------------------------------------------------------------------------- */
/* The core                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct exec__counters {
    _Atomic uint64_t submitted, completed, failed, cancelled, timed_out, crashed, map_items;
};

struct exec {
    exec_config_t cfg; /* final: defaults filled in */
    const struct exec__backend_ops *ops;
    void *impl;
    unsigned fork_gen; /* exec__fork_gen() at creation: a mismatch means "we are a child" */
    _Atomic bool shut; /* no more submissions */
    _Atomic bool destroyed;

    /* Future allocator: free list and slabs, protected by alloc_lock. `live` counts futures
     * handed out and not yet freed; the core is freed when destroyed && live == 0. */
    pthread_mutex_t alloc_lock;
    struct exec_future *free_list;
    void **slabs;
    size_t nslabs, slabs_cap;
    _Atomic size_t live;

    struct exec__counters cnt;
};

/* Submit a task: allocate the future, copy the argument, hand it to the backend. @fflags are
 * EXEC__F_* future flags; @out NULL means fire and forget. */
int exec__submit(struct exec *core, exec_task_fn *fn, const void *arg, size_t arg_size,
                 uint32_t timeout_ms, uint32_t flags, uint32_t fflags, exec_future_t **out);

/* The core may be freed once the user destroyed it and no future is left. */
void exec__core_maybe_free(struct exec *core);
void exec__future_free(struct exec_future *f);

/* ---------------------------------------------------------------------------------------- */
/* sys.c: clocks, futex, fds, fork generation                                                */
/* ---------------------------------------------------------------------------------------- */

uint64_t exec__now_ns(void); /* CLOCK_MONOTONIC */
/* Deadline from a timeout in ms: 0 for "forever" (EXEC_WAIT_FOREVER). */
uint64_t exec__deadline_ns(int timeout_ms);
/* Wait while *word == expected, until woken or @deadline_ns (0 = none). Returns 0 when woken
 * or the value differs, EXEC_ETIMEDOUT at the deadline. Spurious returns are allowed. */
int exec__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
void exec__futex_wake(_Atomic uint32_t *word, int n);
/* The same on a word in memory shared between processes (not FUTEX_PRIVATE). */
int exec__sfutex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
void exec__sfutex_wake(_Atomic uint32_t *word, int n);
/* Event fd (eventfd or a pipe), close-on-exec, non-blocking. */
int exec__event_open(int fds[2]);
void exec__event_set(const int fds[2]);
void exec__event_clear(const int fds[2]);
void exec__event_close(int fds[2]);
/* Incremented in every child of fork(); see exec_destroy(). exec__fork_init() registers
 * the fork handler (once per process; exec_create() calls it). */
void exec__fork_init(void);
unsigned exec__fork_gen(void);
/* Block every asynchronous signal in the calling thread; old mask into *old (sigset_t). */
void exec__block_signals(void *old);
void exec__restore_signals(const void *old);
/* pthread_create with signals blocked and an optional stack size. 0 or an errno. */
int exec__thread_start(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg);

/* A mutex for short, contended critical sections (adaptive where available). */
void exec__mutex_init_hot(pthread_mutex_t *m);

/* shm.c: in a worker process, drop cached mappings of buffers that are gone (at most every
 * 100 ms unless @force). Returns how many were dropped. */
int exec__shmbuf_trim(bool force);

/* CPU budget (budget.c). */
int exec__online_cpus(void);

#endif /* EXEC_INTERNAL_H */
