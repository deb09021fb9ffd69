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
#define EXEC__INLINE_BYTES 16

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
    uint32_t heap_idx;        /* its place in the timer heap, UINT32_MAX if none */
    uint32_t ttid;            /* the OS thread id of the worker that took it (its track) */
};

/* The process backend's part of a future (src/process/). A future waits in the FIFO (link)
 * or sits in a ring (inst, seq), never both: `where` says which, and only that part is
 * read. */
struct exec__fpart_process {
    union {
        struct exec__list link; /* where == in the FIFO of futures waiting for a ring */
        struct {
            void *inst;   /* where == in a ring: the worker instance that has it */
            uint64_t seq; /* ... and its request number there */
        };
    };
    int where; /* nowhere, in the FIFO, in a ring (process/pool.h) */
};

/* The outcome, packed: the same member names as exec_fault_t, whose values all fit (error
 * codes are small negatives, checked in future.c; errno < 4096; exit status -1..255;
 * signals < 128; worker ids < EXEC_WORKERS_MAX). exec_future_fault() widens it. */
struct exec__fault {
    int32_t task_status;
    int32_t worker_pid;
    int16_t worker_id;
    int16_t exit_status;
    int16_t sys_errno;
    int8_t code; /* the result code */
    int8_t signal;
    int8_t cause; /* an exec_cause_t */
    int16_t rank; /* MPI: the rank that ran it */
};

/* The rarely used part of a future, out of line: made on first need (a listener, a
 * completion queue, a trace) and kept by the future until it is freed. The core keeps a
 * small cache of them (core/falloc.c), so their mutexes are initialised once per block, not
 * once per future. */
struct exec__fcold {
    /* Listeners (callbacks, waiters of wait_any, a cq), protected by lock. */
    pthread_mutex_t lock;
    struct exec__list listeners;
    struct exec__listener cb0; /* first callback without allocation */
    struct exec__listener cqnode;
    bool cb0_used;
    bool cq_routed;
    struct exec_future *cq_next; /* link inside a completion queue, under its lock */
    /* Trace (core/trace.h): exec__ticks() at submit and the argument bytes, set by the
     * front only when the executor traces. */
    uint64_t tsub;
    uint32_t targ;
    struct exec__fcold *next_free; /* the core's cache */
};

/*
 * A future: 112 bytes (falloc.c asserts <= 128). Its owner (struct exec) is not stored:
 * futures live in aligned arenas whose header names it (exec__future_core()).
 */
/* The MPI backend's part of a future (src/mpi/). */
struct exec__fpart_mpi {
    union {
        struct exec__list link; /* queued: in the FIFO of futures waiting for a rank */
        struct {
            int rank;      /* sent: the rank that has it, and its slot there */
            uint32_t slot;
        };
    };
    bool queued; /* in the FIFO (the backend's lock) */
};

struct exec_future {
    /* Hot, written by whoever ends the future. */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    exec_task_fn *fn;
    /* Argument bytes until the task ended (inl or heap), then result bytes (inl or heap;
     * NULL when size 0): exec__future_set_result() drops the argument first. */
    union {
        void *arg;
        void *res;
    };
    uint32_t arg_size; /* non-zero while the argument is held (set by the front) */
    uint32_t res_size;
    struct exec__fault fault; /* outcome; fault.code is the result code */

    uint32_t timeout_ms; /* effective run-time limit, 0 = none */
    /* Trace: the task's number (from 1, in the order the backend accepted them; set by the
     * backend's submit, traced or not). */
    uint64_t tseq;

    /* The part that belongs to the backend holding the future, named per backend; nothing
     * else reads it. A new backend adds its own struct here (docs/internals.md). */
    union {
        struct exec__fpart_threads threads;
        struct exec__fpart_process process;
        struct exec__fpart_mpi mpi;
    } bk;

    /* Listeners, completion-queue routing, trace times: NULL until first needed; set once
     * (a CAS), read with acquire. */
    struct exec__fcold *_Atomic cold;

    _Alignas(16) unsigned char inl[EXEC__INLINE_BYTES];
};

/* Futures live in arenas of EXEC__ARENA_BYTES aligned to their size; the first slot of each
 * holds this header. Private to core/falloc.c but for `core`. */
#define EXEC__ARENA_BYTES ((size_t)2 << 20)
struct exec__arena {
    struct exec *core; /* the owner of every future in it */
};

/* The executor core that owns @f. */
static inline struct exec *exec__future_core(const struct exec_future *f)
{
    return ((const struct exec__arena *)((uintptr_t)f & ~(uintptr_t)(EXEC__ARENA_BYTES - 1)))
        ->core;
}

/* The cold part of @f, made if needed. NULL on ENOMEM. */
struct exec__fcold *exec__future_cold(struct exec_future *f);
static inline struct exec__fcold *exec__future_cold_get(const struct exec_future *f)
{
    return atomic_load_explicit(&((struct exec_future *)f)->cold, memory_order_acquire);
}

/* Big argument copies kept for reuse (core/falloc.c): classes 2^16 .. 2^(16+N-1) bytes, at
 * most EXEC__BIG_KEEP bytes per core. */
#define EXEC__BIG_SHIFT 16
#define EXEC__BIG_MIN ((size_t)1 << EXEC__BIG_SHIFT)
#define EXEC__BIG_CLASSES 12
#define EXEC__BIG_KEEP ((size_t)64 << 20)

/* Allocation of futures from the core's arenas (core/falloc.c). Returns NULL on ENOMEM.
 * The new future has state QUEUED, refs 1, no argument. */
struct exec_future *exec__future_alloc(struct exec *core);
/* Copy the argument into the future (inline or one heap block). EXEC_OK or EXEC_ENOMEM. */
int exec__future_set_arg(struct exec_future *f, const void *arg, size_t size);
/* Drop the argument copy (after the task ran). */
void exec__future_drop_arg(struct exec_future *f);

/* Try to take the right to end @f. From QUEUED or RUNNING (@from_mask: bit 1<<state).
 * Returns true if this caller won; it must then call exec__future_finish(). */
bool exec__future_claim(struct exec_future *f, uint32_t from_mask);
/* Store the result bytes of a claimed future whose task has returned (its argument is
 * dropped first: they share a pointer). EXEC_OK or EXEC_ENOMEM. */
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

/* Listener registration. Listen returns false (and does not add) if @f is already terminal,
 * or if @f's cold part, which holds the list, could not be made (ENOMEM): a caller that must
 * tell the two apart makes it first with exec__future_cold() (the thread backend's helping
 * wait just polls again). Unlisten only after a listen that returned true. */
bool exec__future_listen(struct exec_future *f, struct exec__listener *l);
void exec__future_unlisten(struct exec_future *f, struct exec__listener *l);


#endif /* EXEC_CORE_FUTURE_H */
