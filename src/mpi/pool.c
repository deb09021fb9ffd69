/* SPDX-License-Identifier: MIT */
/*
 * mpi/pool.c - the MPI backend on rank 0: its operations (the communication thread is in
 * dispatch.c; comm.c has the pieces of MPI both sides use; serve.c is the other side).
 *
 * Submitting puts the future in a FIFO, after checking that its function can travel. The
 * comm thread takes it from there. Creating and destroying talk to every rank from the
 * calling thread, while no comm thread runs.
 */
#include "mpi/pool.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct mp *_Atomic live; /* the one MPI executor of this process, or NULL */

/* ---------------------------------------------------------------------------------------- */
/* Operations                                                                                */
/* ---------------------------------------------------------------------------------------- */

static int mp_check_config(exec_config_t *c)
{
    if (c->mpi_local_backend != EXEC_BACKEND_THREADS &&
        c->mpi_local_backend != EXEC_BACKEND_PROCESSES)
        return EXEC_EINVAL;
    /* The local pools check the rest of their fields through their own table. */
    exec_config_t local = *c;
    local.backend = c->mpi_local_backend;
    local.mpi_local_backend = 0;
    const struct exec__backend_ops *o = exec__backend_find(local.backend);
    int r = o ? o->check_config(&local) : EXEC_ENOTSUP;
    if (r)
        return r;
    if (c->workers == 0) {
        /* Each serving rank gets rank 0's CPU budget shared among the serving ranks on
         * rank 0's host (at least 1). */
        exec_cpu_budget_t b;
        exec_cpu_budget(NULL, &b);
        int share = b.workers / (exec__mpi_world.host_ranks ? exec__mpi_world.host_ranks : 1);
        long all = (long)(share > 0 ? share : 1) * (exec__mpi_world.size - 1);
        c->workers = all < 1 ? 1 : all > EXEC_WORKERS_MAX ? EXEC_WORKERS_MAX : (int)all;
    }
    return EXEC_OK;
}

static void on_ready(void *ctx, int from, const void *msg, size_t len)
{
    struct mp *p = ctx;
    struct mpi__ready rd;
    if (len < sizeof rd)
        return;
    memcpy(&rd, msg, sizeof rd);
    p->ranks[from].pid = rd.pid;
    if (rd.code && !p->hello_code)
        p->hello_code = rd.code;
}

/* Tell every rank its part of the config and collect the answers (the calling thread does
 * MPI here: the comm thread does not exist yet). */
static int hello_all(struct mp *p)
{
    const exec_config_t *c = &p->core->cfg;
    struct mpi__hello h = {
        .max_arg_size = c->max_arg_size, .max_result_size = c->max_result_size,
        .stack_size = c->stack_size, .max_rss_per_child = c->max_rss_per_child,
        .init_arg_size = c->init_arg_size, .local_backend = (uint32_t)c->mpi_local_backend,
        .workers = (uint32_t)c->workers, .max_tasks_per_child = c->max_tasks_per_child,
        .start_method = (uint32_t)c->start_method, .kill_grace_ms = c->kill_grace_ms,
        .max_age_ms = c->max_age_ms, .recycle_jitter_pct = c->recycle_jitter_pct,
        .crash_limit = c->crash_limit, .crash_window_ms = c->crash_window_ms};
    if (c->initializer) {
        if (exec__mpi_fn_encode((void (*)(void))c->initializer, &h.init))
            return EXEC_EINVAL;
        h.has_init = 1;
    }
    if (exec__mpi_shm_options(&h) != EXEC_OK)
        return EXEC_EINVAL; /* EXEC_MPI_OTHER_HOST malformed */
    unsigned char *b = malloc(sizeof h + c->init_arg_size);
    if (!b)
        return EXEC_ENOMEM;
    memcpy(b, &h, sizeof h);
    if (c->init_arg_size)
        memcpy(b + sizeof h, c->init_arg, c->init_arg_size);
    int r = exec__mpi_round(p->comm, p->size, MPI__TAG_HELLO, b, sizeof h + c->init_arg_size,
                            MPI__TAG_READY, on_ready, p);
    free(b);
    return r ? r : p->hello_code;
}

/* Every rank destroys its local pool; wait until each did. The comm thread is gone. */
static void bye_all(struct mp *p)
{
    exec__mpi_round(p->comm, p->size, MPI__TAG_BYE, NULL, 0, MPI__TAG_BYE_ACK, NULL, NULL);
}

static void mp_free(struct mp *p)
{
    if (p->ranks)
        for (int ri = 0; ri < p->size; ri++)
            free(p->ranks[ri].slots);
    free(p->ranks);
    free(p->cancels);
    free(p->buf);
    exec__mpi_trace_free(p);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int mp_create(struct exec *core, void **impl)
{
    struct mpi__world *w = &exec__mpi_world;
    if (w->size < 2 || w->comm == MPI_COMM_NULL)
        return EXEC_ENOTSUP; /* no rank to serve: started without mpirun, or MPI finalised */
    struct mp *p = calloc(1, sizeof *p);
    if (!p)
        return EXEC_ENOMEM;
    struct mp *none = NULL;
    if (!atomic_compare_exchange_strong(&live, &none, p)) {
        free(p);
        return EXEC_EBUSY;
    }
    p->core = core;
    p->comm = w->comm;
    p->size = w->size;
    pthread_mutex_init(&p->lock, NULL);
    exec__cond_init_mono(&p->cond);
    exec__list_init(&p->fifo);
    exec__list_init(&p->maps);
    int r = EXEC_ENOMEM, base = 0;
    p->ranks = calloc((size_t)p->size, sizeof *p->ranks);
    for (int ri = 1; p->ranks && ri < p->size; ri++) {
        struct rank *rk = &p->ranks[ri];
        rk->workers = exec__mpi_rank_workers(core->cfg.workers, p->size, ri);
        rk->base = base;
        base += rk->workers;
        rk->cap = exec__mpi_rank_cap(rk->workers);
        rk->free_head = rk->cap ? 0 : -1;
        rk->slots = calloc(rk->cap ? rk->cap : 1, sizeof *rk->slots);
        if (!rk->slots)
            goto fail;
        for (uint32_t i = 0; i < rk->cap; i++)
            rk->slots[i].next_free = i + 1 < rk->cap ? (int)i + 1 : -1;
    }
    if (!p->ranks || (r = exec__mpi_trace_open(p)) != EXEC_OK)
        goto fail;
    r = hello_all(p);
    if (r)
        goto fail_bye;
    r = exec__thread_start(&p->thread, 0, exec__mpi_comm_main, p);
    if (r) {
        r = EXEC_ESYS;
        goto fail_bye;
    }
    *impl = p;
    return EXEC_OK;
fail_bye:
    bye_all(p);
fail:
    exec__mpi_sends_finish(&p->sends);
    mp_free(p);
    atomic_store(&live, NULL);
    return r;
}

static int mp_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    struct mp *p = impl;
    struct mpi__fnref ref;
    if (exec__mpi_fn_encode((void (*)(void))f->fn, &ref))
        return EXEC_EINVAL; /* not a function of any loaded module */
    int r = exec__future_set_arg(f, arg, f->arg_size);
    if (r)
        return r;
    pthread_mutex_lock(&p->lock);
    size_t qmax = p->core->cfg.queue_max;
    while (qmax && !exec__mpi_on_comm_thread &&
           p->waiting + exec__mpi_waiting_remote(p) >= qmax && !p->shut) {
        if (flags & EXEC_SUBMIT_TRY) {
            pthread_mutex_unlock(&p->lock);
            exec__future_drop_arg(f);
            return EXEC_EAGAIN;
        }
        pthread_cond_wait(&p->cond, &p->lock);
    }
    if (p->shut) {
        pthread_mutex_unlock(&p->lock);
        exec__future_drop_arg(f);
        return EXEC_ESHUTDOWN;
    }
    f->tseq = ++p->submitted;
    f->fault.worker_id = -1;
    exec__list_push_back(&p->fifo, &f->bk.mpi.link);
    f->bk.mpi.queued = true;
    p->waiting++;
    pthread_mutex_unlock(&p->lock);
    exec__mpi_poke(p);
    return EXEC_OK;
}

static int mp_cancel(void *impl, struct exec_future *f, unsigned flags)
{
    struct mp *p = impl;
    /* In the FIFO: take it out (so that it no longer counts as waiting) and end it. */
    pthread_mutex_lock(&p->lock);
    bool mine = f->bk.mpi.queued && exec__future_claim(f, 1u << EXEC_STATE_QUEUED);
    if (mine) {
        exec__list_remove(&f->bk.mpi.link);
        f->bk.mpi.queued = false;
        p->waiting--;
        if (p->core->cfg.queue_max || exec__list_empty(&p->fifo))
            pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (mine) {
        f->fault.code = EXEC_ECANCELLED;
        exec__future_drop_arg(f);
        exec__future_finish(f, EXEC_STATE_CANCELLED);
        exec_future_release(f); /* the backend's reference */
        return EXEC_OK;
    }
    if (!(flags & EXEC_CANCEL_RUNNING) || !exec__future_claim(f, 1u << EXEC_STATE_RUNNING))
        return EXEC_EBUSY;
    f->fault.code = EXEC_ECANCELLED;
    exec__future_finish(f, EXEC_STATE_CANCELLED);
    /* Tell its rank, unless its result came (and its slot went) meanwhile. */
    pthread_mutex_lock(&p->lock);
    struct rank *r = &p->ranks[f->bk.mpi.rank];
    if (r->slots[f->bk.mpi.slot].f == f &&
        exec__mpi_grow((void **)&p->cancels, &p->cancels_cap, p->ncancels, sizeof *p->cancels))
        p->cancels[p->ncancels++] =
            (struct cancel){f->bk.mpi.rank, f->bk.mpi.slot, EXEC_CANCEL_RUNNING};
    pthread_mutex_unlock(&p->lock);
    exec__mpi_poke(p);
    return EXEC_OK;
}

static int mp_shutdown(void *impl, unsigned flags)
{
    struct mp *p = impl;
    struct exec__list gone;
    exec__list_init(&gone);
    pthread_mutex_lock(&p->lock);
    p->shut = true;
    if (flags & EXEC_SHUTDOWN_CANCEL) {
        exec__list_splice(&gone, &p->fifo);
        p->waiting = 0;
        /* Out of the FIFO: a concurrent cancel no longer takes them (we end them). */
        for (struct exec__list *l = exec__list_first(&gone); l; l = exec__list_next(&gone, l))
            EXEC__CONTAINER_OF(l, struct exec_future, bk.mpi.link)->bk.mpi.queued = false;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    struct exec__list *l;
    while ((l = exec__list_first(&gone))) {
        exec__list_remove(l);
        struct exec_future *f = EXEC__CONTAINER_OF(l, struct exec_future, bk.mpi.link);
        exec__future_cancel_queued(f);
        exec_future_release(f);
    }
    exec__mpi_poke(p);
    if (flags & EXEC_SHUTDOWN_NOWAIT)
        return EXEC_OK;
    pthread_mutex_lock(&p->lock);
    while (p->inflight || !exec__list_empty(&p->fifo))
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return EXEC_OK;
}

static void mp_stats(void *impl, exec_stats_t *st)
{
    struct mp *p = impl;
    pthread_mutex_lock(&p->lock);
    st->submitted += p->submitted;
    size_t far = exec__mpi_waiting_remote(p);
    st->queued += p->waiting + far;
    st->running += p->tasks_inflight > far ? p->tasks_inflight - far : 0;
    /* The serving ranks' local pools: workers and retirements (asked now, at most 1 s). */
    if (!exec__mpi_on_comm_thread && !p->stop) {
        uint64_t gen = ++p->stats_want;
        pthread_mutex_unlock(&p->lock);
        exec__mpi_poke(p);
        pthread_mutex_lock(&p->lock);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        while (p->stats_done < gen &&
               pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
            ;
    }
    const exec_stats_t *t = &p->stats_last;
    st->workers_alive += t->workers_alive;
    st->workers_retired += t->workers_retired;
    st->retired_tasks += t->retired_tasks;
    st->retired_memory += t->retired_memory;
    st->retired_age += t->retired_age;
    st->retired_timeout += t->retired_timeout;
    st->retired_crash += t->retired_crash;
    pthread_mutex_unlock(&p->lock);
}

static void mp_destroy(void *impl)
{
    struct mp *p = impl;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_mutex_unlock(&p->lock);
    exec__mpi_poke(p);
    pthread_join(p->thread, NULL);
    exec__mpi_sends_finish(&p->sends);
    bye_all(p);
    exec__mpi_shm_forget();
    mp_free(p);
    atomic_store(&live, NULL);
}

static bool mp_in_task(void *impl)
{
    (void)impl;
    return exec__mpi_on_comm_thread; /* callbacks run there: waiting would stop the executor */
}

static int mp_map_start(void *impl, struct exec__map *m)
{
    struct mp *p = impl;
    pthread_mutex_lock(&p->lock);
    if (p->shut) {
        pthread_mutex_unlock(&p->lock);
        return EXEC_ESHUTDOWN;
    }
    if (exec__list_unlinked(&m->link))
        exec__list_push_back(&p->maps, &m->link);
    pthread_mutex_unlock(&p->lock);
    exec__mpi_poke(p);
    return EXEC_OK;
}

static void mp_map_end(void *impl, struct exec__map *m)
{
    struct mp *p = impl;
    pthread_mutex_lock(&p->lock);
    if (!exec__list_unlinked(&m->link))
        exec__list_remove(&m->link);
    pthread_mutex_unlock(&p->lock);
}

static size_t mp_chunk_max(void *impl, size_t in_size, size_t out_size)
{
    (void)impl;
    size_t a = MPI__CHUNK_BYTES / in_size, b = MPI__CHUNK_BYTES / (out_size + sizeof(int));
    size_t n = a < b ? a : b;
    return n ? n : 1;
}

void exec__mpi_abandon(void)
{
    struct mp *p = atomic_load(&live);
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->abandon = true;
    pthread_mutex_unlock(&p->lock);
    exec__mpi_poke(p);
    pthread_join(p->thread, NULL);
    atomic_store(&live, NULL); /* its memory stays: the program may still hold futures */
}

const struct exec__backend_ops exec__mpi_ops = {
    .version = EXEC__OPS_VERSION,
    .name = "mpi",
    .check_config = mp_check_config,
    .create = mp_create,
    .submit = mp_submit,
    .cancel = mp_cancel,
    .shutdown = mp_shutdown,
    .stats = mp_stats,
    .destroy = mp_destroy,
    .in_task = mp_in_task,
    .map_start = mp_map_start,
    .map_end = mp_map_end,
    .chunk_max = mp_chunk_max,
};
