/* SPDX-License-Identifier: MIT */
/*
 * mpi/pool.c - the MPI backend on rank 0: its operations, and the communication thread
 * (comm.c has the pieces of MPI both sides use; serve.c is the other side).
 *
 * Submitting puts the future in a FIFO (after checking that its function can travel). The
 * comm thread, the only thread of the executor that calls MPI while it runs, hands FIFO
 * futures and map chunks to ranks with a free slot (each rank has `cap` slots: the bound on
 * work in flight there), receives results and ends the futures. A sent future is RUNNING.
 *
 * Locking: p->lock protects the FIFO, the map list, the slots, the counters and the flags.
 * Futures are ended, and their references dropped, outside it: a done-callback may submit.
 */
#include "mpi/mpi.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    struct exec_future *f; /* a task, or */
    struct exec__map *m;   /* a map chunk [lo, hi) */
    size_t lo, hi;
    int next_free; /* free list; -1 ends it */
};

struct rank {
    uint32_t cap, busy;
    int free_head;
    struct slot *slots;
    int workers; /* its local pool's */
    int base;    /* worker_id of its first local worker */
    int pid;     /* its process */
};

struct cancel {
    int rank;
    uint32_t slot, flags;
};

struct mp {
    struct exec *core;
    MPI_Comm comm;
    int size; /* ranks in the job; 1..size-1 serve */
    struct rank *ranks;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* idle (shutdown), space (queue_max), stats answered */
    struct exec__list fifo;
    size_t waiting, inflight, tasks_inflight;
    struct exec__list maps;
    struct cancel *cancels;
    size_t ncancels, cancels_cap;
    uint64_t submitted;
    bool shut, stop, abandon;
    uint64_t stats_want, stats_sent, stats_done;
    int stats_pending;
    exec_stats_t stats_sum, stats_last;
    int hello_code; /* the first failure a rank reported at creation */

    _Atomic uint32_t wake;    /* bumped at every request for the comm thread */
    _Atomic bool sleeping;    /* the comm thread sleeps on wake */
    pthread_t thread;
    struct mpi__sends sends;  /* the comm thread's */
    void *buf;
    size_t bufcap;
};

static struct mp *_Atomic live; /* the one MPI executor of this process, or NULL */
static _Thread_local bool on_comm_thread;

/* Work sent to ranks beyond their workers waits there: counted as waiting (queue_max and
 * exec_stats' queued), the rest as running. p->lock held. */
static size_t waiting_remote(const struct mp *p)
{
    size_t n = 0;
    for (int ri = 1; ri < p->size; ri++)
        if (p->ranks[ri].busy > (uint32_t)p->ranks[ri].workers)
            n += p->ranks[ri].busy - (uint32_t)p->ranks[ri].workers;
    return n;
}

static void poke(struct mp *p)
{
    atomic_fetch_add(&p->wake, 1);
    if (atomic_load(&p->sleeping))
        exec__futex_wake(&p->wake, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Slots                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int slot_take(struct rank *r)
{
    int i = r->free_head;
    if (i >= 0) {
        r->free_head = r->slots[i].next_free;
        r->busy++;
    }
    return i;
}

/* Free slot @i of @r and say what was in it. p->lock held. */
static struct slot slot_free(struct mp *p, struct rank *r, uint32_t i)
{
    struct slot s = r->slots[i];
    r->slots[i] = (struct slot){.next_free = r->free_head};
    r->free_head = (int)i;
    r->busy--;
    p->inflight--;
    if (s.f)
        p->tasks_inflight--;
    if ((!p->inflight && exec__list_empty(&p->fifo)) || p->core->cfg.queue_max)
        pthread_cond_broadcast(&p->cond); /* idle, or room below queue_max */
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Sending                                                                                   */
/* ---------------------------------------------------------------------------------------- */

struct out {
    int rank, tag;
    void *buf;
    size_t len;
};

struct outbox {
    struct out *o;
    size_t n, cap;
    struct exec_future **drop; /* references to release after the lock */
    size_t ndrop, drop_cap;
};

static bool grow(void **a, size_t *cap, size_t n, size_t el)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *b = realloc(*a, c * el);
    if (!b)
        return false;
    *a = b;
    *cap = c;
    return true;
}

static bool out_add(struct outbox *ob, int rank, int tag, void *buf, size_t len)
{
    if (!grow((void **)&ob->o, &ob->cap, ob->n, sizeof *ob->o))
        return false;
    ob->o[ob->n++] = (struct out){rank, tag, buf, len};
    return true;
}

/* Start FIFO future @f on rank @ri. False if it cannot be packed now (no memory). */
static bool send_task(struct mp *p, struct outbox *ob, int ri, struct exec_future *f)
{
    struct rank *r = &p->ranks[ri];
    struct mpi__task t = {.fn = {f->bk.mpi.module, f->bk.mpi.offset}, .size = f->arg_size,
                          .timeout_ms = f->timeout_ms};
    unsigned char *m = malloc(sizeof t + f->arg_size);
    if (!m || !grow((void **)&ob->o, &ob->cap, ob->n, sizeof *ob->o)) {
        free(m);
        return false;
    }
    int i = slot_take(r);
    t.id = (uint64_t)i;
    memcpy(m, &t, sizeof t);
    if (f->arg_size)
        memcpy(m + sizeof t, f->arg, f->arg_size);
    exec__future_drop_arg(f);
    r->slots[i].f = f;
    f->bk.mpi.rank = ri;
    f->bk.mpi.slot = (uint32_t)i;
    /* Until its result says exactly (a cancel of a running task never hears it): */
    f->fault.rank = ri;
    f->fault.worker_id = r->base;
    f->fault.worker_pid = r->pid;
    p->inflight++;
    p->tasks_inflight++;
    out_add(ob, ri, MPI__TAG_TASK, m, sizeof t + t.size); /* f->arg_size is 0 now */
    return true;
}

/* Claim a chunk of some map for rank @ri. */
static bool send_chunk(struct mp *p, struct outbox *ob, int ri)
{
    struct exec__list *l;
    while ((l = exec__list_first(&p->maps))) {
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        struct mpi__fnref ref;
        size_t lo, hi;
        exec__list_remove(l);
        if (!exec__map_claim(m, &lo, &hi))
            continue; /* nothing to claim now; a stream offers it again */
        exec__list_push_back(&p->maps, l);
        size_t n = hi - lo, bytes = n * m->in_size;
        unsigned char *b = malloc(sizeof(struct mpi__task) + bytes);
        int code = exec__mpi_fn_encode((void (*)(void))m->fn, &ref);
        if (code || !b || !grow((void **)&ob->o, &ob->cap, ob->n, sizeof *ob->o)) {
            free(b);
            exec__map_fail(m, lo, hi, code ? code : EXEC_ENOMEM);
            return true;
        }
        struct rank *r = &p->ranks[ri];
        int i = slot_take(r);
        struct mpi__task t = {.id = (uint64_t)i, .fn = ref, .size = bytes,
                              .in_size = m->in_size, .out_size = m->out_size, .count = n};
        memcpy(b, &t, sizeof t);
        memcpy(b + sizeof t, exec__map_in(m, lo), bytes);
        r->slots[i].m = m;
        r->slots[i].lo = lo;
        r->slots[i].hi = hi;
        p->inflight++;
        out_add(ob, ri, MPI__TAG_CHUNK, b, sizeof t + bytes);
        return true;
    }
    return false;
}

#define DEEP_QUEUE 64u

/*
 * Hand out work, one item per rank per round. A task goes to a rank with a free worker;
 * only while more tasks wait (DEEP_QUEUE + 2 per worker) does a rank get more, up to its
 * cap (flow control), so that the round trip hides behind queued work. So with a short queue
 * a sent task is a started one (exact states, cancel of queued tasks, no task stuck behind a
 * long one on a busy rank while another rank idles). Map chunks always pipeline: they come
 * from one map, and each is many items. p->lock held.
 */
static void dispatch(struct mp *p, struct outbox *ob)
{
    bool progress = true;
    while (progress) {
        progress = false;
        bool deep = p->waiting > DEEP_QUEUE + 2 * (size_t)p->core->cfg.workers;
        for (int ri = 1; ri < p->size; ri++) {
            struct rank *rk = &p->ranks[ri];
            if (rk->free_head < 0)
                continue;
            struct exec__list *l = exec__list_first(&p->fifo);
            if (l && (deep || rk->busy < (uint32_t)rk->workers)) {
                struct exec_future *f = EXEC__CONTAINER_OF(l, struct exec_future, bk.mpi.link);
                exec__list_remove(l);
                f->bk.mpi.queued = false;
                p->waiting--;
                if (p->core->cfg.queue_max)
                    pthread_cond_broadcast(&p->cond);
                progress = true;
                uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
                bool run = false;
                while ((s & EXEC__ST_MASK) == EXEC_STATE_QUEUED && !run)
                    run = atomic_compare_exchange_weak_explicit(
                        &f->state, &s, (s & ~EXEC__ST_MASK) | EXEC_STATE_RUNNING,
                        memory_order_acq_rel, memory_order_relaxed);
                if (!run || !send_task(p, ob, ri, f)) {
                    /* Cancelled while queued (or no memory to send it: fail it). */
                    if (run && exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
                        f->fault.code = EXEC_ENOMEM;
                        exec__future_drop_arg(f);
                        exec__future_finish(f, EXEC_STATE_FAILED);
                    }
                    if (grow((void **)&ob->drop, &ob->drop_cap, ob->ndrop, sizeof *ob->drop))
                        ob->drop[ob->ndrop++] = f;
                }
                continue;
            }
            if (!l && send_chunk(p, ob, ri))
                progress = true;
        }
    }
    if (!p->inflight && exec__list_empty(&p->fifo))
        pthread_cond_broadcast(&p->cond);
}

/* Everything the comm thread must send now: work, cancels, stats requests. */
static void collect(struct mp *p, struct outbox *ob)
{
    dispatch(p, ob);
    for (size_t i = 0; i < p->ncancels; i++) {
        struct mpi__cancel c = {.id = p->cancels[i].slot, .flags = p->cancels[i].flags};
        void *b = malloc(sizeof c);
        if (b && memcpy(b, &c, sizeof c) &&
            !out_add(ob, p->cancels[i].rank, MPI__TAG_CANCEL, b, sizeof c))
            free(b);
    }
    p->ncancels = 0;
    if (p->stats_want > p->stats_sent && !p->stats_pending) {
        p->stats_sent = p->stats_want;
        memset(&p->stats_sum, 0, sizeof p->stats_sum);
        for (int ri = 1; ri < p->size; ri++) {
            void *b = malloc(1);
            if (b && out_add(ob, ri, MPI__TAG_STATS_REQ, b, 0))
                p->stats_pending++;
            else
                free(b);
        }
        if (!p->stats_pending) {
            p->stats_done = p->stats_sent;
            pthread_cond_broadcast(&p->cond);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Receiving                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void end_task(const struct rank *rk, struct exec_future *f, const struct mpi__result *r,
                     const void *data)
{
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        exec_state_t st = (exec_state_t)r->state;
        f->fault = r->fault;
        if (f->fault.worker_id >= 0)
            f->fault.worker_id += rk->base; /* the local slot, numbered across ranks */
        if (st == EXEC_STATE_DONE && r->size > f->core->cfg.max_result_size) {
            f->fault.code = EXEC_ETOOBIG; /* exec__mpi_run_task()'s sign */
            st = EXEC_STATE_FAILED;
        } else if (st == EXEC_STATE_DONE && exec__future_set_result(f, data, r->size) != 0) {
            f->fault.code = EXEC_ENOMEM;
            st = EXEC_STATE_FAILED;
        }
        if (st != EXEC_STATE_DONE && st != EXEC_STATE_CANCELLED)
            st = EXEC_STATE_FAILED;
        exec__future_finish(f, st);
    }
    exec_future_release(f); /* the backend's reference */
}

static void end_chunk(const struct slot *s, const struct mpi__result *r, const void *data)
{
    struct exec__map *m = s->m;
    size_t n = s->hi - s->lo;
    if (r->state != EXEC_STATE_DONE || r->size != n * (sizeof(int) + m->out_size)) {
        int code = r->fault.code ? r->fault.code : EXEC_ECRASHED;
        if (r->state == EXEC_STATE_CANCELLED)
            code = EXEC_ECANCELLED;
        exec__map_fail(m, s->lo, s->hi, code);
        return;
    }
    const unsigned char *res = (const unsigned char *)data + n * sizeof(int);
    int *st = exec__map_status(m, s->lo);
    size_t nfailed = 0, first = s->hi;
    for (size_t i = 0; i < n; i++) {
        int v;
        memcpy(&v, (const unsigned char *)data + i * sizeof v, sizeof v);
        if (v && !nfailed++)
            first = s->lo + i;
        if (st)
            st[i] = v;
    }
    if (m->out_size)
        memcpy(exec__map_out(m, s->lo), res, n * m->out_size);
    exec__map_ran(m, s->lo, s->hi, nfailed, first);
}

static void on_result(struct mp *p, int from, const void *msg, size_t len)
{
    struct mpi__result r;
    if (from < 1 || from >= p->size || len < sizeof r)
        return;
    memcpy(&r, msg, sizeof r);
    if (r.id >= p->ranks[from].cap || len < sizeof r + r.size)
        return;
    /* End the work, then free its slot: shutdown waits for the slots, and what it waits
     * for includes the end (counters, callbacks). The slot stays ours meanwhile. */
    pthread_mutex_lock(&p->lock);
    struct slot s = p->ranks[from].slots[r.id];
    pthread_mutex_unlock(&p->lock);
    const unsigned char *data = (const unsigned char *)msg + sizeof r;
    if (s.f)
        end_task(&p->ranks[from], s.f, &r, data);
    else if (s.m)
        end_chunk(&s, &r, data);
    pthread_mutex_lock(&p->lock);
    slot_free(p, &p->ranks[from], (uint32_t)r.id);
    pthread_mutex_unlock(&p->lock);
}

static void on_stats(struct mp *p, const void *msg, size_t len)
{
    exec_stats_t st;
    if (len < sizeof st)
        return;
    memcpy(&st, msg, sizeof st);
    pthread_mutex_lock(&p->lock);
    exec_stats_t *t = &p->stats_sum;
    t->workers_alive += st.workers_alive;
    t->workers_retired += st.workers_retired;
    t->retired_tasks += st.retired_tasks;
    t->retired_memory += st.retired_memory;
    t->retired_age += st.retired_age;
    t->retired_timeout += st.retired_timeout;
    t->retired_crash += st.retired_crash;
    if (p->stats_pending && !--p->stats_pending) {
        p->stats_last = p->stats_sum;
        p->stats_done = p->stats_sent;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---------------------------------------------------------------------------------------- */
/* The comm thread                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void *comm_main(void *arg)
{
    struct mp *p = arg;
    struct outbox ob = {0};
    struct mpi__backoff bo;
    on_comm_thread = true;
    exec__mpi_backoff_reset(&bo);
    for (;;) {
        uint32_t seen = atomic_load(&p->wake);
        pthread_mutex_lock(&p->lock);
        if (p->abandon || (p->stop && !p->inflight && exec__list_empty(&p->fifo))) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        collect(p, &ob);
        pthread_mutex_unlock(&p->lock);
        bool any = ob.n || ob.ndrop;
        for (size_t i = 0; i < ob.n; i++)
            exec__mpi_send(&p->sends, p->comm, ob.o[i].rank, ob.o[i].tag, ob.o[i].buf,
                           ob.o[i].len);
        ob.n = 0;
        for (size_t i = 0; i < ob.ndrop; i++)
            exec_future_release(ob.drop[i]);
        ob.ndrop = 0;
        size_t len = 0;
        int from = 0, tag = 0;
        while (exec__mpi_recv(p->comm, MPI_ANY_SOURCE, &p->buf, &p->bufcap, &len, &from,
                              &tag) == 1) {
            any = true;
            if (tag == MPI__TAG_RESULT)
                on_result(p, from, p->buf, len);
            else if (tag == MPI__TAG_STATS)
                on_stats(p, p->buf, len);
        }
        exec__mpi_sends_reap(&p->sends);
        if (any) {
            exec__mpi_backoff_reset(&bo);
            continue;
        }
        uint64_t ns = exec__mpi_backoff_next(&bo);
        if (!ns)
            continue;
        /* Sleep until a request (submit, cancel, map, stats, stop) or the next probe. The
         * flag pairs with poke(): a poke after our load of `wake` changes it and wakes us. */
        atomic_store(&p->sleeping, true);
        exec__futex_wait(&p->wake, seen, exec__now_ns() + ns);
        atomic_store(&p->sleeping, false);
    }
    free(ob.o);
    free(ob.drop);
    return NULL;
}

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
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int mp_create(struct exec *core, void **impl)
{
    struct mpi__world *w = &exec__mpi_world;
    if (w->size < 2)
        return EXEC_ENOTSUP; /* no rank to serve: started without mpirun */
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
    if (!p->ranks)
        goto fail;
    r = hello_all(p);
    if (r)
        goto fail_bye;
    r = exec__thread_start(&p->thread, 0, comm_main, p);
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
    f->bk.mpi.module = ref.module;
    f->bk.mpi.offset = ref.offset;
    int r = exec__future_set_arg(f, arg, f->arg_size);
    if (r)
        return r;
    pthread_mutex_lock(&p->lock);
    size_t qmax = p->core->cfg.queue_max;
    while (qmax && !on_comm_thread && p->waiting + waiting_remote(p) >= qmax && !p->shut) {
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
    poke(p);
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
        grow((void **)&p->cancels, &p->cancels_cap, p->ncancels, sizeof *p->cancels))
        p->cancels[p->ncancels++] =
            (struct cancel){f->bk.mpi.rank, f->bk.mpi.slot, EXEC_CANCEL_RUNNING};
    pthread_mutex_unlock(&p->lock);
    poke(p);
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
    poke(p);
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
    size_t far = waiting_remote(p);
    st->queued += p->waiting + far;
    st->running += p->tasks_inflight > far ? p->tasks_inflight - far : 0;
    /* The serving ranks' local pools: workers and retirements (asked now, at most 1 s). */
    if (!on_comm_thread && !p->stop) {
        uint64_t gen = ++p->stats_want;
        pthread_mutex_unlock(&p->lock);
        poke(p);
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
    poke(p);
    pthread_join(p->thread, NULL);
    exec__mpi_sends_finish(&p->sends);
    bye_all(p);
    mp_free(p);
    atomic_store(&live, NULL);
}

static bool mp_in_task(void *impl)
{
    (void)impl;
    return on_comm_thread; /* callbacks run there: waiting would stop the executor */
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
    poke(p);
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
    poke(p);
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
