/* SPDX-License-Identifier: MIT */
/*
 * process/pool.c - the process backend's operations: create and destroy a pool, submit,
 * cancel, shutdown, stats, and the map operations of the core's driver. The design of the
 * whole backend is described in process/pool.h.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fault.h"
#include "process/pool.h"

static bool pp_in_task(void *impl);

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static void pp_free(struct pp *pp)
{
    if (pp->slots)
        FOR_EACH_INST(pp, in)
            free(in->fifo);
    free(pp->slots);
    free(pp->wctx);
    free(pp->fins);
    free(pp->todo);
    free(pp->pfd);
    free(pp->pfd_inst);
    free(pp->crashes);
    exec__shm_unmap(pp->shm, pp->shm_size);
    free(pp);
}

static void close_fds(struct pp *pp)
{
    if (pp->bell[0] >= 0)
        close(pp->bell[0]);
    if (pp->bell[1] >= 0 && pp->bell[1] != pp->bell[0])
        close(pp->bell[1]);
    if (pp->ctl >= 0)
        close(pp->ctl);
    if (pp->death_w >= 0)
        close(pp->death_w);
    pp->bell[0] = pp->bell[1] = pp->ctl = pp->death_w = -1;
}

/* The shared region of the pool: the doorbell page, then two worker regions per slot, each
 * with its two rings, sized so that the largest message fits in half a ring. */
static int map_regions(struct pp *pp)
{
    const exec_config_t *cfg = pp->cfg;
    size_t ninst = (size_t)pp->nslots * 2;
    size_t req_cap = pow2_at_least(2 * exec__ring_round(sizeof(struct exec__req) +
                                                        cfg->max_arg_size));
    size_t cmp_cap = pow2_at_least(2 * exec__ring_round(sizeof(struct exec__cmp) +
                                                        cfg->max_result_size));
    if (req_cap < RING_MIN)
        req_cap = RING_MIN;
    if (cmp_cap < RING_MIN)
        cmp_cap = RING_MIN;
    pp->region_size = EXEC__WREGION_HDR + req_cap + cmp_cap;
    pp->req_cap = req_cap;
    pp->cmp_cap = cmp_cap;
    pp->shm_size = 4096 + ninst * pp->region_size;
    pp->shm = exec__shm_map(pp->shm_size);
    if (!pp->shm)
        return EXEC_ENOMEM;
    pp->hub = (struct exec__hub *)pp->shm;
    if (exec__event_open(pp->bell) != 0) {
        return EXEC_ESYS;
    }
    for (int s = 0; s < pp->nslots; s++) {
        pp->slots[s].cur = -1;
        for (int k = 0; k < 2; k++) {
            struct inst *in = &pp->slots[s].in[k];
            in->slot = s;
            in->rix = k;
            in->pidfd = -1;
            in->fifo = calloc(DEPTH, sizeof *in->fifo);
            if (!in->fifo)
                return EXEC_ENOMEM;
            in->rg = (struct exec__wregion *)(pp->shm + 4096 +
                                              ((size_t)s * 2 + (size_t)k) * pp->region_size);
            exec__ring_init(&in->rg->req, req_cap);
            exec__ring_init(&in->rg->cmp, cmp_cap);
            in->rg->slot = s;
            struct exec__wctx *w = &pp->wctx[s * 2 + k];
            w->hub = pp->hub;
            w->rg = in->rg;
            w->bell_fd = pp->bell[1];
            w->max_result = cfg->max_result_size;
            w->init = cfg->initializer;
            w->init_arg = cfg->init_arg;
            w->init_arg_size = cfg->init_arg_size;
        }
    }
    return EXEC_OK;
}

static int pp_create(struct exec *core, void **impl)
{
    const exec_config_t *cfg = &core->cfg;
    struct pp *pp = calloc(1, sizeof *pp);
    if (!pp)
        return EXEC_ENOMEM;
    pp->core = core;
    pp->cfg = cfg;
    pp->forkserver = cfg->start_method == EXEC_START_FORKSERVER;
    pp->nslots = cfg->workers;
    pp->trace = core->trace;
    pp->tl = exec__trace_lane(core->trace, cfg->workers, true);
    pp->bell[0] = pp->bell[1] = pp->ctl = pp->death_w = -1;
    exec__list_init(&pp->queue);
    exec__list_init(&pp->maps);
    pp->rng = (uint64_t)exec__now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)pp;
    if (!pp->rng)
        pp->rng = 88172645463325252ull;
    int r = EXEC_ENOMEM;
    size_t ninst = (size_t)pp->nslots * 2;
    pp->slots = calloc((size_t)pp->nslots, sizeof *pp->slots);
    pp->wctx = calloc(ninst, sizeof *pp->wctx);
    pp->fins_cap = ninst * (DEPTH + 2) + 16;
    pp->fins = calloc(pp->fins_cap, sizeof *pp->fins);
    pp->todo = calloc(ninst, sizeof *pp->todo);
    pp->pfd = calloc(ninst + 2, sizeof *pp->pfd);
    pp->pfd_inst = calloc(ninst + 2, sizeof *pp->pfd_inst);
    pp->crashes = calloc(cfg->crash_limit ? cfg->crash_limit : 1, sizeof *pp->crashes);
    if (!pp->slots || !pp->wctx || !pp->fins || !pp->todo || !pp->pfd || !pp->pfd_inst ||
        !pp->crashes)
        goto fail;

    r = map_regions(pp);
    if (r)
        goto fail;
    pthread_mutex_init(&pp->lock, NULL);
    pthread_cond_init(&pp->cond, NULL);
    if (pp->forkserver) {
        r = exec__pp_start_zygote(pp);
        if (r)
            goto fail_locks;
    }
    /* Prepare every slot now so that the first submits go straight into rings; the
     * supervisor makes the processes. */
    pthread_mutex_lock(&pp->lock);
    (void)exec__pp_plan_spawns(pp, exec__now_ns());
    FOR_EACH_INST(pp, in)
        in->spawn_sent = false;
    pthread_mutex_unlock(&pp->lock);
    if (exec__thread_start(&pp->sup, 0, exec__pp_sup_main, pp) != 0) {
        r = EXEC_ESYS;
        exec__pp_stop_zygote(pp);
        goto fail_locks;
    }
    pp->sup_started = true;
    *impl = pp;
    return EXEC_OK;

fail_locks:
    pthread_mutex_destroy(&pp->lock);
    pthread_cond_destroy(&pp->cond);
fail:;
    int err = errno; /* exec_create() says: errno tells why (EXEC_ESYS) */
    close_fds(pp);
    pp_free(pp);
    errno = err;
    return r;
}

static size_t waiting(struct pp *pp)
{
    return exec__pp_count_work(pp, NULL);
}

/* A submitter waits for room (pp->lock held): EXEC_OK once woken, or EXEC_EAGAIN with the
 * lock released under EXEC_SUBMIT_TRY. */
static int wait_space(struct pp *pp, uint32_t flags)
{
    if (flags & EXEC_SUBMIT_TRY) {
        pthread_mutex_unlock(&pp->lock);
        return EXEC_EAGAIN;
    }
    pp->space_waiters++;
    int cs = exec__cancel_off();
    pthread_cond_wait(&pp->cond, &pp->lock);
    exec__cancel_restore(cs);
    pp->space_waiters--;
    return EXEC_OK;
}

#define COPY_IT 1 /* wait_big_room(): queue a copy after all */

/* A big argument (EXEC__BIG_MIN bytes or more) is copied into the request without pp->lock:
 * a copy of 64-256 KiB under the lock kept the supervisor asleep on it (issue 11: 0.5
 * futex calls per task, all of them the lock; processes moved 0.24-0.38x the thread
 * backend's bytes). While `writing` is set, no one else reserves or publishes in that ring
 * (pick() skips it), a cancelling shutdown waits, and the worker's end is not settled, so the
 * request joins the others as if it had been written under the lock. Only for a worker in
 * its loop: one still spawning can fail and be settled at once. Returns with the lock held. */
static bool send_big(struct pp *pp, struct inst *in, struct exec_future *f, const void *arg)
{
    struct exec__req *rq = exec__pp_task_reserve(in, f);
    if (!rq)
        return false;
    pp->submitted++;
    in->writing = true;
    pp->writers++;
    pthread_mutex_unlock(&pp->lock);
    memcpy(rq + 1, arg, f->arg_size);
    pthread_mutex_lock(&pp->lock);
    in->writing = false;
    if (--pp->writers == 0 && pp->shut)
        pthread_cond_broadcast(&pp->cond); /* pp_shutdown() may wait for it */
    exec__pp_task_commit(in, f, rq);
    exec__pp_flush(in);
    return true;
}

/* Send @f straight to a worker's ring if one has room and nothing waits before it. */
static bool send_now(struct pp *pp, struct exec_future *f, const void *arg)
{
    struct inst *in = exec__list_empty(&pp->queue) ? exec__pp_pick(pp) : NULL;
    f->tseq = pp->submitted + 1; /* the task's number in the trace */
    if (in && f->arg_size >= EXEC__BIG_MIN && in->st == I_LIVE && in->ready)
        return send_big(pp, in, f, arg);
    if (!in || !exec__pp_dispatch_task(in, f, arg))
        return false;
    pp->submitted++;
    exec__pp_flush(in);
    return true;
}

/* A submit the pool refuses now (shut down or broken): its code, with the lock released;
 * 0 otherwise. */
static int refused(struct pp *pp)
{
    if (EXEC__LIKELY(!pp->shut && !pp->broken))
        return 0;
    int r = pp->shut ? EXEC_ESHUTDOWN : EXEC_EBROKEN;
    pthread_mutex_unlock(&pp->lock);
    return r;
}

/* send_now(); when it sent, release the lock and wake a sleeping supervisor now, in parallel
 * with the worker: it then waits for the completion spinning, and the round trip costs two
 * wake-ups, not three. (It must also see the start, to mark the future RUNNING.) */
static bool sent(struct pp *pp, struct exec_future *f, const void *arg)
{
    if (!send_now(pp, f, arg))
        return false;
    pthread_mutex_unlock(&pp->lock);
    kick(pp);
    return true;
}

/* A big argument while QBIG_MAX bytes of them wait in the FIFO: wait until a ring takes it
 * (EXEC_OK, lock released) or the FIFO has room for its copy (COPY_IT, lock held); or fail
 * (EXEC_EAGAIN with EXEC_SUBMIT_TRY, EXEC_ESHUTDOWN, EXEC_EBROKEN; lock released). */
static int wait_big_room(struct pp *pp, struct exec_future *f, const void *arg, uint32_t flags)
{
    for (;;) {
        int r = refused(pp);
        if (r)
            return r;
        if (sent(pp, f, arg))
            return EXEC_OK;
        if (!pp->qbig || pp->qbig + f->arg_size <= QBIG_MAX)
            return COPY_IT;
        if (flags & EXEC_SUBMIT_TRY)
            return wait_space(pp, flags); /* EXEC_EAGAIN, the lock released */
        pp->big_waiters++;
        (void)wait_space(pp, flags);
        pp->big_waiters--;
    }
}

static int pp_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    if (EXEC__UNLIKELY(pp->cfg->queue_max) && !pp_in_task(pp)) {
        while (!pp->shut && !pp->broken && waiting(pp) >= pp->cfg->queue_max) {
            if (wait_space(pp, flags) != EXEC_OK)
                return EXEC_EAGAIN;
        }
    }
    int r = refused(pp);
    if (r)
        return r;
    /* The argument is copied once: straight into a ring with room, or else into the future,
     * where it waits for one (and from where refill() copies it into the ring). */
    if (sent(pp, f, arg))
        return EXEC_OK;
    if (EXEC__UNLIKELY(f->arg_size >= EXEC__BIG_MIN) && pp->qbig &&
        pp->qbig + f->arg_size > QBIG_MAX && !pp_in_task(pp)) {
        r = wait_big_room(pp, f, arg, flags);
        if (r != COPY_IT)
            return r; /* sent, or refused; the lock is released */
    }
    if (EXEC__UNLIKELY(exec__future_set_arg(f, arg, f->arg_size) != 0)) {
        pthread_mutex_unlock(&pp->lock);
        return EXEC_ENOMEM;
    }
    pp->submitted++;
    exec__pp_q_push(pp, f, false);
    pthread_mutex_unlock(&pp->lock);
    return EXEC_OK;
}

static int pp_cancel(void *impl, struct exec_future *f, unsigned flags)
{
    struct pp *pp = impl;
    int r = EXEC_EBUSY;
    bool end = false, release = false;
    exec_future_retain(f); /* ours until we are done with it here */
    pthread_mutex_lock(&pp->lock);
    if (FP(f)->where == LOC_QUEUE) {
        if (exec__future_claim(f, 1u << EXEC_STATE_QUEUED)) {
            exec__pp_q_unlink(pp, f);
            end = release = true;
            r = EXEC_OK;
            exec__pp_trace_cancel(pp, f, NULL, EXEC__TCANCEL_QUEUED);
        }
    } else if (FP(f)->where == LOC_FIFO) {
        struct inst *in = FP(f)->inst;
        struct ent *e = fifo_find(in, FP(f)->seq);
        if (e && e->f == f) {
            uint32_t exp = EXEC__RS_QUEUED;
            if (atomic_compare_exchange_strong_explicit(&e->req->state, &exp,
                                                        EXEC__RS_CANCELLED,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                if (exec__future_claim(f, 1u << EXEC_STATE_QUEUED |
                                              1u << EXEC_STATE_RUNNING)) {
                    e->f = NULL;
                    FP(f)->where = LOC_NONE;
                    end = release = true;
                    r = EXEC_OK;
                    exec__pp_trace_cancel(pp, f, NULL, EXEC__TCANCEL_QUEUED);
                }
            } else if ((flags & EXEC_CANCEL_RUNNING) &&
                       atomic_load_explicit(&in->rg->done_seq, memory_order_acquire) <
                           FP(f)->seq &&
                       exec__future_claim(f, 1u << EXEC_STATE_QUEUED |
                                                 1u << EXEC_STATE_RUNNING)) {
                /* The worker runs it (not merely ran it: then its result is on its way, and
                 * killing the worker would kill the task after it): kill and replace the
                 * worker. The entry keeps the backend's reference until the supervisor
                 * settles the worker. */
                end = true;
                r = EXEC_OK;
                f->fault.worker_pid = inst_pid(in);
                f->fault.worker_id = in->slot;
                exec__pp_trace_cancel(pp, f, in, EXEC__TCANCEL_RUNNING);
                if (in->st != I_KILLING) {
                    atomic_store_explicit(&in->rg->stop_seq, FP(f)->seq, memory_order_release);
                    exec__pp_begin_kill(pp, in, R_TIMEOUT);
                }
            }
        }
    }
    pthread_mutex_unlock(&pp->lock);
    if (end) {
        f->fault.code = EXEC_ECANCELLED;
        exec__future_drop_arg(f);
        exec__future_finish(f, EXEC_STATE_CANCELLED);
        kick(pp);
    }
    if (release)
        exec_future_release(f); /* the backend's reference */
    exec_future_release(f);
    return r;
}

static int pp_shutdown(void *impl, unsigned flags)
{
    struct pp *pp = impl;
    struct exec__list cancelled;
    exec__list_init(&cancelled);
    pthread_mutex_lock(&pp->lock);
    pp->shut = true;
    if (flags & EXEC_SHUTDOWN_CANCEL) {
        /* A task being copied into a ring was accepted before the shutdown: cancel it too.
         * Not a cancellation point (the thread would end holding the pool's lock). */
        if (pp->writers) {
            int cs = exec__cancel_off();
            while (pp->writers)
                pthread_cond_wait(&pp->cond, &pp->lock);
            exec__cancel_restore(cs);
        }
        /* The core cancelled the maps already: their ranges come back cancelled. */
        exec__pp_q_take_all(pp, &cancelled);
        /* Requests in rings that no worker took yet are cancelled too. */
        FOR_EACH_INST(pp, in) {
            for (uint32_t i = 0; i < in->fn; i++) {
                struct ent *e = fifo_at(in, i);
                if (!e->f && !e->map)
                    continue;
                uint32_t exp = EXEC__RS_QUEUED;
                if (!atomic_compare_exchange_strong_explicit(
                        &e->req->state, &exp, EXEC__RS_CANCELLED, memory_order_acq_rel,
                        memory_order_acquire))
                    continue;
                if (e->f) {
                    FP(e->f)->where = LOC_NONE;
                    exec__list_push_back(&cancelled, &FP(e->f)->link);
                    e->f = NULL;
                } else {
                    exec__pp_range_back(pp, e->map, e->lo, e->hi);
                    e->map = NULL;
                }
            }
        }
    }
    pthread_cond_broadcast(&pp->cond);
    pthread_mutex_unlock(&pp->lock);
    exec__pp_trace_cancel_list(pp, &cancelled);
    exec__pp_end_list(&cancelled, &(struct fin){.code = EXEC_ECANCELLED, .xst = -1, .wid = -1});
    kick(pp);
    if (flags & EXEC_SHUTDOWN_NOWAIT)
        return EXEC_OK;
    int cs = exec__cancel_off();
    pthread_mutex_lock(&pp->lock);
    while (!pp->stopped)
        pthread_cond_wait(&pp->cond, &pp->lock);
    pthread_mutex_unlock(&pp->lock);
    exec__cancel_restore(cs);
    return EXEC_OK;
}

/* exec_shutdown(ex, 0) from a done-callback, i.e. on the supervisor thread: shut down as
 * usual without waiting, then do the supervisor's job here until every task has ended (the
 * workers exit, and the supervisor stops, once the callback has returned). */
static int pp_shutdown_inside(void *impl, unsigned flags)
{
    struct pp *pp = impl;
    (void)pp_shutdown(pp, flags | EXEC_SHUTDOWN_NOWAIT);
    exec__pp_sup_wait_idle(pp);
    return EXEC_OK;
}

static void pp_destroy(void *impl)
{
    struct pp *pp = impl;
    if (pp->sup_started)
        pthread_join(pp->sup, NULL);
    exec__pp_stop_zygote(pp);
    close_fds(pp);
    pthread_mutex_destroy(&pp->lock);
    pthread_cond_destroy(&pp->cond);
    pp_free(pp);
}

static void pp_forget(void *impl)
{
    /* A fork() child: the supervisor and the workers are the parent's. Close our copies of
     * the fds (the death pipe's write end above all: the zygote must see the parent's death)
     * and free memory; no lock, no signal, no wait. */
    struct pp *pp = impl;
    close_fds(pp);
    pp_free(pp);
}

static void pp_stats(void *impl, exec_stats_t *st)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    st->submitted = pp->submitted;
    uint64_t running = 0, alive = 0;
    st->queued = exec__pp_count_work(pp, &running);
    FOR_EACH_INST(pp, in) {
        if (in->st != I_FREE && !in->exited)
            alive++;
    }
    st->running = running;
    st->workers_alive = alive;
    st->retired_tasks = pp->retired[R_TASKS];
    st->retired_memory = pp->retired[R_MEMORY];
    st->retired_age = pp->retired[R_AGE];
    st->retired_timeout = pp->retired[R_TIMEOUT];
    st->retired_crash = pp->retired[R_LOST];
    st->workers_retired = st->retired_tasks + st->retired_memory + st->retired_age +
                          st->retired_timeout + st->retired_crash;
    pthread_mutex_unlock(&pp->lock);
}

static bool pp_in_task(void *impl)
{
    struct pp *pp = impl;
    return pp->sup_started && pthread_equal(pthread_self(), pp->sup);
}

static int pp_wait(void *impl, struct exec_future *f, uint64_t deadline_ns)
{
    (void)impl;
    (void)f;
    (void)deadline_ns;
    return EXEC_EDEADLK; /* only the supervisor calls this (from a done-callback) */
}

static int pp_map_start(void *impl, struct exec__map *m)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    if (pp->shut || pp->broken) {
        int r = pp->shut ? EXEC_ESHUTDOWN : EXEC_EBROKEN;
        pthread_mutex_unlock(&pp->lock);
        return r;
    }
    exec__pp_map_list(pp, m);
    exec__pp_refill(pp);
    pthread_mutex_unlock(&pp->lock);
    kick(pp);
    return EXEC_OK;
}

static void pp_map_end(void *impl, struct exec__map *m)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    exec__pp_map_unlist(m);
    pthread_mutex_unlock(&pp->lock);
}

/* A chunk travels as one request and comes back as one completion: each must fit in half a
 * ring (the completion carries a status per item too). */
static size_t pp_chunk_max(void *impl, size_t in_size, size_t out_size)
{
    struct pp *pp = impl;
    size_t by_in = (pp->req_cap / 2 - sizeof(struct exec__req)) / in_size;
    size_t by_out = (pp->cmp_cap / 2 - sizeof(struct exec__cmp) - 16) / (out_size + 4);
    size_t max = by_in < by_out ? by_in : by_out;
    return max ? max : 1;
}

static int pp_check_config(exec_config_t *c)
{
    if (c->start_method != EXEC_START_FORKSERVER && c->start_method != EXEC_START_FORK)
        return EXEC_EINVAL;
    if (c->recycle_jitter_pct > 100)
        return EXEC_EINVAL;
    if (!c->kill_grace_ms)
        c->kill_grace_ms = 100;
    if (!c->crash_window_ms)
        c->crash_window_ms = 10000;
    return EXEC_OK;
}

const struct exec__backend_ops exec__process_ops = {
    .version = EXEC__OPS_VERSION,
    .name = "processes",
    .check_config = pp_check_config,
    .create = pp_create,
    .submit = pp_submit,
    .cancel = pp_cancel,
    .shutdown = pp_shutdown,
    .stats = pp_stats,
    .destroy = pp_destroy,
    .forget = pp_forget,
    .in_task = pp_in_task,
    .wait = pp_wait,
    .map_start = pp_map_start,
    .map_end = pp_map_end,
    .chunk_max = pp_chunk_max,
    .map_unclaims = true,
    .shutdown_inside = pp_shutdown_inside,
};
