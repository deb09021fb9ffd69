/* SPDX-License-Identifier: MIT */
/*
 * core/backend.h - the seam between the core and a backend: the operations table a backend
 * fills in, and what the core offers backends in return (core/future.h, core/core.h). A
 * backend includes this, core/ and sys/ headers, and nothing of another backend.
 */
#ifndef EXEC_CORE_BACKEND_H
#define EXEC_CORE_BACKEND_H

#include "core/core.h"
#include "core/future.h"
#include "core/map.h"

/*
 * The operations table. A backend is one folder that defines one of these (and nothing
 * else the core sees); core/registry.c maps exec_backend_t values to tables.
 *
 * Versions (SQLite's iVersion idea): `version` says which operations the table has. The core
 * reads an operation only through EXEC__OP(), which yields NULL for an operation newer than
 * the table, so a table written for an older version keeps working when operations are
 * appended. Version 1 is everything below up to map_unclaims; version 2 adds
 * shutdown_inside. Required in every version: check_config, create, submit, cancel,
 * shutdown, stats, destroy. Optional (NULL): the others; without map_start exec_map() says
 * EXEC_ENOTSUP, without wait/help a worker that waits gets EXEC_EDEADLK, without
 * shutdown_inside a waiting exec_shutdown() from inside gets EXEC_EDEADLK.
 */
#define EXEC__OPS_VERSION 2
#define EXEC__OP(ops, op, since) ((ops)->version >= (since) ? (ops)->op : NULL)

struct exec__map;

struct exec__backend_ops {
    int version; /* EXEC__OPS_VERSION the table was written for */
    const char *name;
    /* The backend's own fields of the configuration: check them (EXEC_EINVAL or
     * EXEC_ETOOBIG) and fill in their defaults. The front has checked and defaulted the
     * common ones (workers, sizes, queue_max, timeout_ms) before. No side effects. */
    int (*check_config)(exec_config_t *cfg);
    /* Make the backend for @core (core->cfg is final). Sets *impl. */
    int (*create)(struct exec *core, void **impl);
    /* Queue @f (state QUEUED, f->arg_size set but no argument copied yet: @arg is the
     * caller's, valid only during this call; one reference for the backend already taken).
     * The backend copies the argument where it keeps it: into the future with
     * exec__future_set_arg(), or straight to a worker. On failure it has not kept @f. */
    int (*submit)(void *impl, struct exec_future *f, const void *arg, uint32_t flags);
    /* Cancel @f: queued (it must never start), or running with EXEC_CANCEL_RUNNING.
     * EXEC_OK, or EXEC_EBUSY when it is too late. */
    int (*cancel)(void *impl, struct exec_future *f, unsigned flags);
    /* Refuse new work; EXEC_SHUTDOWN_CANCEL cancels what is queued; wait for the rest
     * unless EXEC_SHUTDOWN_NOWAIT. Maps are cancelled by the core before this is called. */
    int (*shutdown)(void *impl, unsigned flags);
    /* Add what the backend counts (submitted, gauges, retirements) to @st. */
    void (*stats)(void *impl, exec_stats_t *st);
    /* Stop and free everything (shutdown already waited). */
    void (*destroy)(void *impl);
    /* In a child of fork(): free the memory of this copy without joining, signalling or
     * locking anything (the workers belong to the parent). */
    void (*forget)(void *impl);
    /* Whether the calling thread is running a task or callback of this backend. */
    bool (*in_task)(void *impl);
    /* A worker waits on @f (called when in_task): run queued work meanwhile. EXEC_OK when @f
     * is terminal, EXEC_ETIMEDOUT at @deadline_ns (0 = never), EXEC_EDEADLK if it cannot. */
    int (*wait)(void *impl, struct exec_future *f, uint64_t deadline_ns);
    /* exec_map (core/map.h): make @m findable by the workers, which then claim and run its
     * chunks (called again when a streaming map has new items: listing a listed map is a
     * no-op); forget it again (called once every item is accounted for). */
    int (*map_start)(void *impl, struct exec__map *m);
    void (*map_end)(void *impl, struct exec__map *m);
    /* The most items of these sizes one chunk may hold (0 = no limit). */
    size_t (*chunk_max)(void *impl, size_t in_size, size_t out_size);
    /* A worker runs exec_map(): run at most one queued task or chunk here. True if it ran. */
    bool (*help)(void *impl);
    /* The backend may hand claimed ranges back (exec__map_unclaim): the driver keeps room. */
    bool map_unclaims;
    /* Version 2. A waiting exec_shutdown() from inside (called when in_task): refuse new
     * work, cancel what is queued with EXEC_SHUTDOWN_CANCEL, then wait until every task and
     * chunk has ended but those of the calling thread, keeping the pool moving meanwhile
     * (run queued work, or do the backend thread's own job when the caller is that thread).
     * Threads and processes are left for exec_destroy() to join. */
    int (*shutdown_inside)(void *impl, unsigned flags);
};

/* The table of backend @b, or NULL when this build has none (core/registry.c). */
const struct exec__backend_ops *exec__backend_find(exec_backend_t b);
/* An optional backend built into another library registers its table (NULL: unregister). */
void exec__backend_register(exec_backend_t b, const struct exec__backend_ops *ops);
/* Why exec__backend_find(@b) gave NULL: EXEC_ENOTSUP for a backend of the enum that this
 * program did not register (MPI without exec_mpi_main()), EXEC_EINVAL for no backend. */
int exec__backend_missing(exec_backend_t b);
#ifdef EXEC_TEST_HOOKS
/* Test build only: make every exec_create() use @ops (NULL: the real backends again). */
void exec__test_backend_set(const struct exec__backend_ops *ops);
#endif

#endif /* EXEC_CORE_BACKEND_H */
