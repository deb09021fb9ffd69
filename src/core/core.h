/* SPDX-License-Identifier: MIT */
/*
 * core/core.h - the executor core: the object behind exec_t (configuration, counters, the
 * future allocator) and the front's internal entry points. Nothing here is API.
 *
 * Ownership model. The user's exec_t handle is a `struct exec` (the "core"). The core owns
 * the future allocator and the counters, and outlives exec_destroy() for as long as any
 * future is still referenced: futures point at their core, never at a backend. A backend
 * owns its workers and sits behind `ops` + `impl`; the front never looks inside it.
 */
#ifndef EXEC_CORE_CORE_H
#define EXEC_CORE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/list.h"
#include "core/future.h"
#include "executor.h"
#include "sys/sys.h"

struct exec__backend_ops;
struct exec__trace;

/* ---------------------------------------------------------------------------------------- */
/* The core                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct exec__counters {
    _Atomic uint64_t submitted, completed, failed, cancelled, timed_out, crashed, map_items;
};

/* Grouped by who writes what, each group on cache lines of its own: a line that one thread
 * writes for every task and another reads for every task moves between CPUs each time
 * (hundreds of nanoseconds on some virtual machines; see falloc.c's arena header). */
struct exec {
    /* Read-mostly: set at creation (shut and destroyed once). */
    exec_config_t cfg; /* final: defaults filled in */
    const struct exec__backend_ops *ops;
    void *impl;
    unsigned fork_gen; /* exec__fork_gen() at creation: a mismatch means "we are a child" */
    _Atomic bool shut; /* no more submissions */
    _Atomic bool destroyed;
    /* The trace (core/trace.h), NULL when not tracing. */
    struct exec__trace *trace;

    /* Future allocator (core/falloc.c), written by every submit and release: arenas and the
     * cache of cold parts, protected by alloc_lock. `live` counts futures handed out and not
     * yet freed; the core is freed when destroyed && live == 0. */
    exec__lock_t alloc_lock __attribute__((aligned(EXEC__CACHELINE)));
    struct exec__list arenas; /* every arena */
    struct exec__list avail;  /* arenas with a free slot, the most recently freed into first */
    size_t nempty;            /* arenas with no future in use (at most one is kept) */
    struct exec__fcold *cold_free;
    size_t ncold_free;
    /* Argument copies of EXEC__BIG_MIN bytes and more, by power-of-two class, kept for the
     * next big argument (linked through their first bytes); big_bytes: their sum. */
    void *big_free[EXEC__BIG_CLASSES];
    size_t big_bytes;
    _Atomic size_t live;

    /* Written as futures end by threads without counters of their own (a process pool's
     * supervisor, an MPI executor's communication thread). */
    struct exec__counters cnt __attribute__((aligned(EXEC__CACHELINE)));

    /* Maps running now (core/map.c), so that a cancelling shutdown reaches them; map_lock
     * protects the list. Map callers sleep on map_word (bumped at every accounting) and
     * announce it in map_sleepers: the word outlives every map (see core/map.c). */
    pthread_mutex_t map_lock __attribute__((aligned(EXEC__CACHELINE)));
    struct exec__list maps;
    _Atomic uint32_t map_word, map_sleepers;
};

/* Whether the @n bytes at @p are all zero (reserved fields). */
static inline bool exec__all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Whether @core was inherited by a child of fork() (its workers do not exist here). */
static inline bool exec__core_forked(const struct exec *core)
{
    return exec__forked_since(core->fork_gen);
}

/* Whether the calling thread runs a task or callback of @core's backend. */
bool exec__core_in_task(const struct exec *core);

/* The future allocator (core/falloc.c). The core may be freed once the user destroyed it
 * and no future is left. */
void exec__falloc_init(struct exec *core);
void exec__core_maybe_free(struct exec *core);
void exec__future_free(struct exec_future *f);
/* A buffer for an argument copy of @size bytes, and its return (the same @size). Copies of
 * EXEC__BIG_MIN bytes and more come from the core's cache, whose pages stay resident: a
 * stream of big arguments then touches no fresh page per task. NULL on ENOMEM. */
void *exec__arg_buf_get(struct exec *core, size_t size);
void exec__arg_buf_put(struct exec *core, void *p, size_t size);

/* The task running on this thread and the executor core it belongs to (thread backend);
 * tls_counters: that worker's private counters. Set by a backend around each task. */
extern _Thread_local struct exec_future *exec__tls_task;
extern _Thread_local struct exec *exec__tls_core;
extern _Thread_local struct exec__counters *exec__tls_counters;
/* Set in a worker process when its running task must stop (exec_task_should_stop()). */
extern _Atomic int exec__worker_stop;

/* CPU budget (budget.c). */
int exec__online_cpus(void);

/* A completion queue's reference (cq.c). */
void exec__cq_unref(struct exec_cq *cq);

#endif /* EXEC_CORE_CORE_H */
