/* SPDX-License-Identifier: MIT */
/*
 * core/future.h - the future object: its layout, its state machine and the listeners that
 * hear of its end. What a backend may call to run a future to its end is here too. Nothing
 * here is API.
 */
#ifndef EXEC_CORE_FUTURE_H
#define EXEC_CORE_FUTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/list.h"
#include "executor.h"

struct exec;

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

/* A listener: someone to tell when a future ends. Callers own the node's memory. A
 * CALLBACK listener's function runs outside the future's lock, after the end is published
 * (done-callbacks, and completion queues: cq.c routes futures with one of these). A WAKE
 * listener's word is set and futex-woken under the lock (wait-any's stack nodes). */
enum { EXEC__L_CALLBACK = 1, EXEC__L_WAKE = 2 };
struct exec__listener {
    struct exec__list node; /* in the future's list (its lock) */
    int kind;
    union {
        struct {
            exec_done_fn *fn;
            void *user_data;
            bool heap; /* free the node after the call */
        } cb;
        _Atomic uint32_t *wake; /* set to 1 and futex-woken */
    } u;
};

/* The thread backend's part of a future (src/threads/). */
struct exec__fpart_threads {
    struct exec_future *next; /* queue link: the submission stack, then the ready FIFO */
    uint64_t deadline_ns;     /* running with a timeout: when it times out */
    size_t heap_idx;          /* its place in the timer heap, SIZE_MAX if none */
};

/* The process backend's part of a future (src/process/). */
struct exec__fpart_process {
    struct exec__list link; /* in the FIFO of futures waiting for a ring */
    void *inst;             /* where == in a ring: the worker instance that has it */
    uint64_t seq;           /* ... and its request number there */
    int where;              /* nowhere, in the FIFO, in a ring (process/pool.h) */
};

/* The MPI backend's part of a future (src/mpi/). */
struct exec__fpart_mpi {
    struct exec__list link;  /* in the FIFO of futures waiting for a rank */
    uint64_t module, offset; /* the task's function as it travels */
    int rank;                /* sent: the rank that has it, and its slot there */
    uint32_t slot;
    bool queued;             /* in the FIFO (the backend's lock) */
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

    uint32_t timeout_ms;  /* effective run-time limit, 0 = none */

    /* Trace (core/trace.h): the task's number (from 1, in the order the backend accepted
     * them; set by the backend's submit, traced or not), exec__ticks() at submit and the
     * argument bytes (set by the front only when the executor traces). */
    uint64_t tseq, tsub;
    uint32_t targ;
    uint32_t ttid; /* threads: the OS thread id of the worker that took it (its track) */

    /* The part that belongs to the backend holding the future, named per backend; nothing
     * else reads it. A new backend adds its own struct here (docs/internals.md). */
    union {
        struct exec__fpart_threads threads;
        struct exec__fpart_process process;
        struct exec__fpart_mpi mpi;
    } bk;

    /* Listeners (callbacks, waiters of wait_any, a cq), protected by lock. */
    pthread_mutex_t lock;
    struct exec__list listeners;
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
/* The outcome code of @f once it is terminal: for one who lost the race to end it (the
 * winner is about to publish). Spins, yielding; never call it holding what the winner needs. */
int exec__future_end_code(struct exec_future *f);
/* Convenience: claim from QUEUED and finish as cancelled. Returns true if it won. */
bool exec__future_cancel_queued(struct exec_future *f);

static inline uint32_t exec__future_state(const struct exec_future *f)
{
    return atomic_load_explicit(&((struct exec_future *)f)->state, memory_order_acquire) &
           EXEC__ST_MASK;
}

/* Listener registration. add returns false (and does not add) if @f is already terminal. */
bool exec__future_listen(struct exec_future *f, struct exec__listener *l);
void exec__future_unlisten(struct exec_future *f, struct exec__listener *l);


#endif /* EXEC_CORE_FUTURE_H */
