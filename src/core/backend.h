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

#endif /* EXEC_CORE_BACKEND_H */
