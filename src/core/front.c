/* SPDX-License-Identifier: MIT */
/*
 * core/front.c - the front: it checks every input, fills in the common configuration
 * defaults (the backend's own come from its check_config operation), owns the executor core
 * (future allocator, counters) and forwards to the backend's operations. It never looks
 * inside a backend. Data flows one way: caller -> front -> backend -> worker ->
 * future -> caller.
 */
#include "core/backend.h"
#include "core/trace.h"

#include <stdlib.h>
#include <string.h>

/* Check a user config and produce the final one with every default filled in: the common
 * fields here, the backend's own by its check_config operation. */
static int check_config(const exec_config_t *in, exec_config_t *out,
                        const struct exec__backend_ops **ops)
{
    exec_config_t c;
    if (in)
        c = *in;
    else
        memset(&c, 0, sizeof c);
    if (!exec__all_zero(c.reserved, sizeof c.reserved))
        return EXEC_EINVAL;
    if (c.workers < 0 || c.workers > EXEC_WORKERS_MAX)
        return EXEC_EINVAL;
    if (c.max_arg_size > EXEC_SIZE_LIMIT || c.max_result_size > EXEC_SIZE_LIMIT)
        return EXEC_EINVAL;
    if (c.init_arg_size && !c.init_arg)
        return EXEC_EINVAL;
    if (!c.max_arg_size)
        c.max_arg_size = EXEC_DEFAULT_MAX_ARG_SIZE;
    if (!c.max_result_size)
        c.max_result_size = EXEC_DEFAULT_MAX_RESULT_SIZE;
    if (c.init_arg_size > c.max_arg_size)
        return EXEC_ETOOBIG;
    if (c.mpi_local_backend && c.backend != EXEC_BACKEND_MPI)
        return EXEC_EINVAL; /* an MPI-only field */
    const struct exec__backend_ops *o = exec__backend_find(c.backend);
    if (!o)
        return exec__backend_missing(c.backend); /* none, or not registered */
    if (o->version < 1 || o->version > EXEC__OPS_VERSION || !o->check_config || !o->create ||
        !o->submit || !o->cancel || !o->shutdown || !o->stats || !o->destroy)
        return EXEC_ENOTSUP; /* a table this core cannot drive */
    int r = o->check_config(&c);
    if (r)
        return r;
    if (c.workers == 0) {
        exec_cpu_budget_t b;
        exec_cpu_budget(NULL, &b);
        c.workers = b.workers;
    }
    /* EXEC_TRACE overrides the trace path: a path, or empty for no trace. */
    const char *env = exec__getenv_secure("EXEC_TRACE");
    if (env)
        c.trace_path = *env ? env : NULL;
    *out = c;
    *ops = o;
    return EXEC_OK;
}

EXEC_API int exec_create(exec_t **ex, const exec_config_t *cfg)
{
    if (!ex)
        return EXEC_EINVAL;
    exec_config_t c;
    const struct exec__backend_ops *ops = NULL;
    int r = check_config(cfg, &c, &ops);
    if (r)
        return r;

    struct exec *core = aligned_alloc(EXEC__CACHELINE,
                                      (sizeof *core + EXEC__CACHELINE - 1) /
                                          EXEC__CACHELINE * EXEC__CACHELINE);
    if (!core)
        return EXEC_ENOMEM;
    memset(core, 0, sizeof *core);
    core->cfg = c;
    core->ops = ops;
    exec__fork_init();
    core->fork_gen = exec__fork_gen();
    exec__falloc_init(core);
    pthread_mutex_init(&core->map_lock, NULL);
    exec__list_init(&core->maps);
    /* The initializer's argument bytes are the executor's own from here on: a worker
     * started later (a recycled thread, a process of the fork method) reads this copy. */
    if (c.init_arg_size) {
        void *copy = malloc(c.init_arg_size);
        if (!copy) {
            pthread_mutex_destroy(&core->map_lock);
            free(core);
            return EXEC_ENOMEM;
        }
        memcpy(copy, c.init_arg, c.init_arg_size);
        core->cfg.init_arg = copy;
    } else {
        core->cfg.init_arg = NULL;
    }
    r = c.trace_path ? exec__trace_open(core, c.trace_path) : EXEC_OK;
    /* The executor keeps its own copy of the path, not the caller's string. */
    core->cfg.trace_path = core->trace ? exec__trace_path(core->trace) : NULL;
    if (r == EXEC_OK)
        r = ops->create(core, &core->impl);
    if (r) {
        if (core->trace)
            exec__trace_close(core->trace);
        pthread_mutex_destroy(&core->map_lock);
        free((void *)core->cfg.init_arg);
        free(core);
        return r;
    }
    *ex = core;
    return EXEC_OK;
}

static bool forked(const struct exec *core)
{
    return exec__core_forked(core);
}

bool exec__core_in_task(const struct exec *core)
{
    bool (*in_task)(void *) = EXEC__OP(core->ops, in_task, 1);
    return in_task && in_task(core->impl);
}

EXEC_API int exec_shutdown(exec_t *ex, unsigned flags)
{
    if (!ex || (flags & ~(EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT)))
        return EXEC_EINVAL;
    if (forked(ex)) {
        atomic_store(&ex->shut, true);
        return EXEC_OK;
    }
    /* From inside one of its own tasks or callbacks, the executor cannot wait for its own
     * threads to end (one of them is the caller): the backend waits for the work instead,
     * and exec_destroy() joins the threads later. */
    int (*inside)(void *, unsigned) = NULL;
    if (!(flags & EXEC_SHUTDOWN_NOWAIT) && exec__core_in_task(ex)) {
        inside = EXEC__OP(ex->ops, shutdown_inside, 2);
        if (!inside)
            return EXEC_EDEADLK;
    }
    atomic_store(&ex->shut, true);
    if (flags & EXEC_SHUTDOWN_CANCEL)
        exec__maps_cancel(ex);
    if (inside)
        return inside(ex->impl, flags);
    int r = ex->ops->shutdown(ex->impl, flags);
    /* Every worker is gone: what they recorded reaches the file now. */
    if (ex->trace && !(flags & EXEC_SHUTDOWN_NOWAIT))
        exec__trace_sync(ex->trace);
    return r;
}

EXEC_API int exec_destroy(exec_t *ex)
{
    if (!ex)
        return EXEC_OK;
    if (forked(ex)) {
        /* A child of fork(): the workers are the parent's and the locks may be held by
         * threads that do not exist here. Free our copy without waiting or locking. */
        void (*forget)(void *) = EXEC__OP(ex->ops, forget, 1);
        if (forget)
            forget(ex->impl);
        if (ex->trace)
            exec__trace_forget(ex->trace);
    } else {
        if (exec__core_in_task(ex))
            return EXEC_EDEADLK;
        atomic_store(&ex->shut, true);
        ex->ops->shutdown(ex->impl, 0);
        ex->ops->destroy(ex->impl);
        if (ex->trace)
            exec__trace_close(ex->trace);
    }
    ex->trace = NULL;
    ex->cfg.trace_path = NULL;
    free((void *)ex->cfg.init_arg);
    ex->cfg.init_arg = NULL;
    ex->impl = NULL;
    bool dead;
    if (forked(ex)) {
        atomic_store(&ex->destroyed, true);
        dead = atomic_load(&ex->live) == 0;
    } else {
        exec__lock(&ex->alloc_lock);
        atomic_store(&ex->destroyed, true);
        dead = atomic_load(&ex->live) == 0;
        exec__unlock(&ex->alloc_lock);
    }
    if (dead)
        exec__core_maybe_free(ex);
    return EXEC_OK;
}

/* Submit a task: allocate the future and hand it with the argument to the backend (which
 * copies the argument where it keeps it). @out NULL means fire and forget. */
static int submit(struct exec *core, exec_task_fn *fn, const void *arg, size_t arg_size,
                  uint32_t timeout_ms, uint32_t flags, bool cold, exec_future_t **out)
{
    if (EXEC__UNLIKELY(forked(core) || atomic_load_explicit(&core->shut, memory_order_relaxed)))
        return EXEC_ESHUTDOWN;
    struct exec_future *f = exec__future_alloc(core);
    if (EXEC__UNLIKELY(!f))
        return EXEC_ENOMEM;
    f->fn = fn;
    f->arg_size = (uint32_t)arg_size; /* <= max_arg_size <= EXEC_SIZE_LIMIT */
    f->timeout_ms = timeout_ms;
    /* The cold part (trace times, cq routing) is made before the backend has the future, so
     * that its ENOMEM is the submit's. */
    if (EXEC__UNLIKELY(cold || core->trace != NULL)) {
        struct exec__fcold *c = exec__future_cold(f);
        if (!c) {
            exec__future_free(f);
            return EXEC_ENOMEM;
        }
        /* The number (f->tseq) comes from the backend, which counts its submissions
         * anyway: one more atomic here would cost as much as a no-op task. */
        if (core->trace) {
            c->tsub = exec__ticks();
            c->targ = (uint32_t)arg_size;
        }
    }
    /* One reference for the caller (if it wants one), one for the backend. */
    atomic_store_explicit(&f->refs, out ? 2 : 1, memory_order_relaxed);
    int r = core->ops->submit(core->impl, f, arg, flags);
    if (EXEC__UNLIKELY(r != 0)) {
        exec__future_free(f);
        return r;
    }
    if (out)
        *out = f;
    return EXEC_OK;
}

EXEC_API int exec_submit_ex(exec_t *ex, exec_task_fn *fn, const void *arg, size_t arg_size,
                            const exec_submit_opts_t *opts, exec_future_t **f)
{
    if (EXEC__UNLIKELY(!ex || !fn || (!arg && arg_size)))
        return EXEC_EINVAL;
    uint32_t timeout = ex->cfg.timeout_ms, flags = 0;
    exec_cq_t *cq = NULL;
    if (opts) {
        if (opts->flags & ~EXEC_SUBMIT_TRY ||
            !exec__all_zero(opts->reserved, sizeof opts->reserved))
            return EXEC_EINVAL;
        flags = opts->flags;
        if (opts->timeout_ms == EXEC_NO_TIMEOUT)
            timeout = 0;
        else if (opts->timeout_ms)
            timeout = opts->timeout_ms;
        cq = opts->cq;
    }
    if (EXEC__UNLIKELY(arg_size > ex->cfg.max_arg_size))
        return EXEC_ETOOBIG;
    exec_future_t *mine = NULL;
    int r = submit(ex, fn, arg, arg_size, timeout, flags, cq != NULL, (f || cq) ? &mine : NULL);
    if (r)
        return r;
    if (cq) {
        /* After the backend has it: a future finished already is delivered at once. Routing
         * cannot fail on a fresh future whose cold part exists, so ignore r. */
        (void)exec_cq_add(cq, mine);
    }
    if (f)
        *f = mine;
    else if (mine)
        exec_future_release(mine);
    return EXEC_OK;
}

EXEC_API int exec_submit(exec_t *ex, exec_task_fn *fn, const void *arg, size_t arg_size,
                         exec_future_t **f)
{
    if (EXEC__UNLIKELY(!ex || !fn || (!arg && arg_size)))
        return EXEC_EINVAL;
    if (EXEC__UNLIKELY(arg_size > ex->cfg.max_arg_size))
        return EXEC_ETOOBIG;
    return submit(ex, fn, arg, arg_size, ex->cfg.timeout_ms, 0, false, f);
}

EXEC_API int exec_map(exec_t *ex, exec_task_fn *fn, const void *in, size_t in_size, void *out,
                      size_t out_size, size_t n, exec_map_opts_t *opts)
{
    if (!ex)
        return EXEC_EINVAL;
    struct exec__map_call a = {fn, in, in_size, out, out_size, n, NULL, NULL, opts};
    return exec__map_run(ex, &a);
}

EXEC_API int exec_map_unordered(exec_t *ex, exec_task_fn *fn, const void *in, size_t in_size,
                                void *out, size_t out_size, size_t n, exec_item_fn *on_item,
                                void *user_data, exec_map_opts_t *opts)
{
    if (!ex || !on_item)
        return EXEC_EINVAL;
    struct exec__map_call a = {fn, in, in_size, out, out_size, n, on_item, user_data, opts};
    return exec__map_run(ex, &a);
}

EXEC_API int exec_map_stream(exec_t *ex, exec_task_fn *fn, size_t in_size, size_t out_size,
                             exec_producer_fn *produce, exec_consumer_fn *consume,
                             void *user_data, exec_stream_opts_t *opts)
{
    if (!ex)
        return EXEC_EINVAL;
    struct exec__stream_call a = {fn, in_size, out_size, produce, consume, user_data, opts};
    return exec__map_stream(ex, &a);
}

EXEC_API int exec_stats(exec_t *ex, exec_stats_t *st)
{
    if (!ex || !st)
        return EXEC_EINVAL;
    memset(st, 0, sizeof *st);
    const struct exec__counters *c = &ex->cnt;
    st->completed = atomic_load_explicit(&c->completed, memory_order_relaxed);
    st->failed = atomic_load_explicit(&c->failed, memory_order_relaxed);
    st->cancelled = atomic_load_explicit(&c->cancelled, memory_order_relaxed);
    st->timed_out = atomic_load_explicit(&c->timed_out, memory_order_relaxed);
    st->crashed = atomic_load_explicit(&c->crashed, memory_order_relaxed);
    st->map_items = atomic_load_explicit(&c->map_items, memory_order_relaxed);
    /* The backend adds what it counts itself: submitted, gauges, per-worker counters. */
    if (!forked(ex) && ex->impl)
        ex->ops->stats(ex->impl, st);
    return EXEC_OK;
}
