/* SPDX-License-Identifier: MIT */
/*
 * mpi/dispatch.c - rank 0's communication thread: the only thread of the executor that calls
 * MPI while it runs. It hands FIFO futures and map chunks to ranks with a free slot (each rank
 * has `cap` slots: the bound on work in flight there), receives results and ends the futures
 * and map ranges. A sent future is RUNNING.
 */
#include "mpi/pool.h"

#include <stdlib.h>
#include <string.h>

_Thread_local bool exec__mpi_on_comm_thread;

/* Work sent to ranks beyond their workers waits there: counted as waiting (queue_max and
 * exec_stats' queued), the rest as running. p->lock held. */
size_t exec__mpi_waiting_remote(const struct mp *p)
{
    size_t n = 0;
    for (int ri = 1; ri < p->size; ri++)
        if (p->ranks[ri].busy > (uint32_t)p->ranks[ri].workers)
            n += p->ranks[ri].busy - (uint32_t)p->ranks[ri].workers;
    return n;
}

void exec__mpi_poke(struct mp *p)
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
    r->bytes -= s.bytes;
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

/* The task records of one round for one rank, end to end: sent as one message. */
struct pack {
    unsigned char *b;
    size_t len, cap;
};

struct outbox {
    struct out *o;
    size_t n, cap;
    struct pack *tasks;        /* [rank], allocated at the first task */
    uint64_t now;              /* exec__now_ns() of this round */
    exec_task_fn *last_fn;     /* the function last encoded, and its reference: most */
    struct mpi__fnref last_ref; /* tasks of a round share it */
    struct exec_future **drop; /* references to release after the lock */
    size_t ndrop, drop_cap;
};

bool exec__mpi_grow(void **a, size_t *cap, size_t n, size_t el)
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
    if (!exec__mpi_grow((void **)&ob->o, &ob->cap, ob->n, sizeof *ob->o))
        return false;
    ob->o[ob->n++] = (struct out){rank, tag, buf, len};
    return true;
}

/* Room for @len more bytes in @k. */
static bool pack_room(struct pack *k, size_t len)
{
    if (k->len + len <= k->cap)
        return true;
    size_t cap = k->cap ? k->cap : 4096;
    while (cap < k->len + len)
        cap *= 2;
    unsigned char *b = realloc(k->b, cap);
    if (!b)
        return false;
    k->b = b;
    k->cap = cap;
    return true;
}

/* Start FIFO future @f on rank @ri: its record joins the rank's pack of this round. False
 * if it cannot be packed now (no memory). */
static bool send_task(struct mp *p, struct outbox *ob, int ri, struct exec_future *f)
{
    struct rank *r = &p->ranks[ri];
    /* The function was encoded once at submit (EXEC_EINVAL if in no module); again here from
     * the module cache, so that the future does not carry 16 bytes for it. */
    if (f->fn != ob->last_fn) {
        if (exec__mpi_fn_encode((void (*)(void))f->fn, &ob->last_ref) != EXEC_OK)
            return false;
        ob->last_fn = f->fn;
    }
    struct mpi__task t = {.fn = ob->last_ref, .size = f->arg_size, .timeout_ms = f->timeout_ms};
    if (!ob->tasks)
        ob->tasks = calloc((size_t)p->size, sizeof *ob->tasks);
    struct pack *k = ob->tasks ? &ob->tasks[ri] : NULL;
    if (!k || !pack_room(k, sizeof t + f->arg_size))
        return false;
    int i = slot_take(r);
    t.id = (uint64_t)i;
    memcpy(k->b + k->len, &t, sizeof t);
    if (f->arg_size)
        memcpy(k->b + k->len + sizeof t, f->arg, f->arg_size);
    k->len += sizeof t + f->arg_size;
    r->slots[i].bytes = f->arg_size;
    r->slots[i].sent_ns = ob->now;
    r->bytes += f->arg_size;
    exec__future_drop_arg(f);
    r->slots[i].f = f;
    r->slots[i].t_sent = p->tl ? exec__ticks() : 0;
    f->bk.mpi.rank = ri;
    f->bk.mpi.slot = (uint32_t)i;
    /* Until its result says exactly (a cancel of a running task never hears it): */
    f->fault.rank = ri;
    f->fault.worker_id = r->base;
    f->fault.worker_pid = r->pid;
    p->inflight++;
    p->tasks_inflight++;
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
        if (code || !b || !exec__mpi_grow((void **)&ob->o, &ob->cap, ob->n, sizeof *ob->o)) {
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
        r->slots[i].bytes = bytes;
        r->slots[i].sent_ns = ob->now;
        r->slots[i].t_sent = p->tl ? exec__ticks() : 0;
        r->bytes += bytes;
        p->inflight++;
        out_add(ob, ri, MPI__TAG_CHUNK, b, sizeof t + bytes);
        return true;
    }
    return false;
}

#define DEEP_QUEUE 64u

/* Map chunks a rank may hold beyond its workers at most (each is many items). */
#define CHUNKS_AHEAD(workers) (3u * (uint32_t)(workers) + 4u)

/* A rank may hold about as much work beyond its workers as it ended in the last window of
 * this length, and at least one more per worker (which hides the round trip): about 4 ms of
 * its work waits there, whatever the tasks' length (a thousand tiny ones, or one long one
 * per worker), so the last ones do not wait behind a busy rank while another idles. */
#define WINDOW_NS 4000000u

/* Whether rank @rk takes one more task (@task) or map chunk now. Up to its workers, always.
 * Beyond, up to the window's count above, up to MPI__AHEAD_BYTES of arguments there (flow
 * control) and the rank's cap of slots; chunks up to CHUNKS_AHEAD; tasks only ahead of a
 * long queue (more than DEEP_QUEUE + 2 per worker wait: with a short one a sent task is a
 * started one) and at most a fair share of it. p->lock held. */
static bool room(const struct mp *p, const struct rank *rk, bool task)
{
    if (rk->free_head < 0)
        return false;
    uint32_t w = (uint32_t)rk->workers;
    if (rk->busy < w)
        return true;
    uint32_t ahead = rk->ahead > w ? rk->ahead : w;
    if (rk->bytes >= MPI__AHEAD_BYTES || rk->busy - w >= ahead)
        return false;
    if (!task)
        return rk->busy - w < CHUNKS_AHEAD(w);
    return p->waiting > DEEP_QUEUE + 2 * (size_t)p->core->cfg.workers &&
           rk->busy - w < p->waiting / (size_t)(p->size - 1);
}

/*
 * Hand out work, one item per rank per round, while some rank has room(). So with a short
 * queue a sent task is a started one (exact states, cancel of queued tasks, no task stuck
 * behind a long one on a busy rank while another rank idles); with a long one a round trip
 * carries many tasks. p->lock held.
 */
static void dispatch(struct mp *p, struct outbox *ob)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (int ri = 1; ri < p->size; ri++) {
            struct rank *rk = &p->ranks[ri];
            struct exec__list *l = exec__list_first(&p->fifo);
            if (!room(p, rk, l != NULL))
                continue;
            if (l) {
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
                    if (exec__mpi_grow((void **)&ob->drop, &ob->drop_cap, ob->ndrop,
                                       sizeof *ob->drop))
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

/* Everything the comm thread must send now: cancels, work, stats requests. Cancels first:
 * one whose task's result came meanwhile has a free slot (dropped here), which dispatch()
 * may give to another task. */
static void collect(struct mp *p, struct outbox *ob)
{
    ob->now = exec__now_ns();
    for (size_t i = 0; i < p->ncancels; i++) {
        struct mpi__cancel c = {.id = p->cancels[i].slot, .flags = p->cancels[i].flags};
        if (!p->ranks[p->cancels[i].rank].slots[c.id].f)
            continue;
        void *b = malloc(sizeof c);
        if (b && memcpy(b, &c, sizeof c) &&
            !out_add(ob, p->cancels[i].rank, MPI__TAG_CANCEL, b, sizeof c))
            free(b);
    }
    p->ncancels = 0;
    dispatch(p, ob);
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

/* The outcome a rank reported, packed into the future. */
static void set_fault(struct exec_future *f, const exec_fault_t *x)
{
    f->fault.code = (int8_t)x->code;
    f->fault.task_status = x->task_status;
    f->fault.sys_errno = (int16_t)x->sys_errno;
    f->fault.signal = (int8_t)x->signal;
    f->fault.exit_status = (int16_t)x->exit_status;
    f->fault.worker_pid = x->worker_pid;
    f->fault.worker_id = (int16_t)x->worker_id;
    f->fault.cause = (int8_t)x->cause;
    f->fault.rank = (int16_t)x->rank;
}

static void end_task(const struct rank *rk, struct exec_future *f, const struct mpi__result *r,
                     const void *data)
{
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        exec_state_t st = (exec_state_t)r->state;
        set_fault(f, &r->fault);
        if (f->fault.worker_id >= 0)
            f->fault.worker_id = (int16_t)(f->fault.worker_id + rk->base); /* across ranks */
        if (st == EXEC_STATE_DONE && r->size > exec__future_core(f)->cfg.max_result_size) {
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
    if (r->state == EXEC_STATE_DONE && (r->flags & MPI__RESULT_ITEMS)) {
        exec__mpi_chunk_ended(m, s->lo, s->hi, data, r->size); /* item by item (chunk.c) */
        return;
    }
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

/* One result record; returns its bytes (0: malformed, drop the rest). */
static size_t on_result(struct mp *p, int from, const void *msg, size_t len)
{
    struct mpi__result r;
    if (from < 1 || from >= p->size || len < sizeof r)
        return 0;
    memcpy(&r, msg, sizeof r);
    if (r.id >= p->ranks[from].cap || r.size > len - sizeof r)
        return 0;
    /* End the work, then free its slot: shutdown waits for the slots, and what it waits
     * for includes the end (counters, callbacks). The slot stays ours meanwhile. */
    pthread_mutex_lock(&p->lock);
    struct slot s = p->ranks[from].slots[r.id];
    pthread_mutex_unlock(&p->lock);
    const unsigned char *data = (const unsigned char *)msg + sizeof r;
    uint64_t now = exec__now_ns(), took = now - s.sent_ns;
    p->rtt_ns = p->rtt_ns ? p->rtt_ns - p->rtt_ns / 8 + took / 8 : took;
    if (p->tl)
        exec__mpi_trace_result(p, from, &s, &r, data);
    if (s.f)
        end_task(&p->ranks[from], s.f, &r, data);
    else if (s.m)
        end_chunk(&s, &r, data);
    pthread_mutex_lock(&p->lock);
    struct rank *rk = &p->ranks[from];
    slot_free(p, rk, (uint32_t)r.id);
    rk->ended++;
    if (now - rk->window_ns >= WINDOW_NS) {
        rk->ahead = rk->ended;
        rk->ended = 0;
        rk->window_ns = now;
    }
    pthread_mutex_unlock(&p->lock);
    return sizeof r + r.size;
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

/* Send what collect() gathered: each rank's tasks as one message (its pack: the buffer goes
 * to MPI, the next round starts a new one), the rest one message each. */
static bool send_all(struct mp *p, struct outbox *ob)
{
    bool any = ob->n != 0;
    for (int ri = 1; ob->tasks && ri < p->size; ri++) {
        struct pack *k = &ob->tasks[ri];
        if (!k->len)
            continue;
        exec__mpi_send(&p->sends, p->comm, ri, MPI__TAG_TASK, k->b, k->len);
        *k = (struct pack){0};
        any = true;
    }
    for (size_t i = 0; i < ob->n; i++) {
        struct out *o = &ob->o[i];
        exec__mpi_send(&p->sends, p->comm, o->rank, o->tag, o->buf, o->len);
    }
    ob->n = 0;
    return any;
}

void *exec__mpi_comm_main(void *arg)
{
    struct mp *p = arg;
    struct outbox ob = {0};
    struct mpi__backoff bo;
    exec__mpi_on_comm_thread = true;
    exec__mpi_backoff_reset(&bo);
    for (;;) {
        uint32_t seen = atomic_load(&p->wake);
        pthread_mutex_lock(&p->lock);
        if (p->abandon || (p->stop && !p->inflight && exec__list_empty(&p->fifo))) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        collect(p, &ob);
        bool out = p->inflight || p->stats_pending;
        pthread_mutex_unlock(&p->lock);
        bool any = send_all(p, &ob) || ob.ndrop;
        for (size_t i = 0; i < ob.ndrop; i++)
            exec_future_release(ob.drop[i]);
        ob.ndrop = 0;
        size_t len = 0;
        int from = 0, tag = 0;
        while (exec__mpi_recv(p->comm, MPI_ANY_SOURCE, &p->buf, &p->bufcap, &len, &from,
                              &tag) == 1) {
            any = true;
            if (tag == MPI__TAG_RESULT) /* a batch: one record after the other */
                for (size_t at = 0, n = 1; at < len && n; at += n)
                    n = on_result(p, from, (unsigned char *)p->buf + at, len - at);
            else if (tag == MPI__TAG_STATS)
                on_stats(p, p->buf, len);
            else if (tag == MPI__TAG_SHM_REQ) /* a copy of a buffer (shm.c) */
                exec__mpi_shm_answer(p->comm, &p->sends, from, p->buf, len);
        }
        any |= exec__mpi_shm_flush(p->comm, &p->sends); /* closed buffers' copies */
        out |= !exec__mpi_sends_reap(&p->sends);
        if (any) {
            exec__mpi_backoff_reset(&bo);
            continue;
        }
        /* With results out, probe again within an eighth of the usual wait for one. */
        uint64_t ns = exec__mpi_backoff_next(&bo, p->rtt_ns / 8 > MPI__STEP_MIN_NS
                                                      ? p->rtt_ns / 8 : MPI__STEP_MIN_NS);
        if (!ns)
            continue;
        /* Sleep until a request (submit, cancel, map, stats, stop) or the next probe (none
         * with nothing out: only a request can start anything). The flag pairs with poke():
         * a poke after our load of `wake` changes it and wakes us. */
        exec__mpi_trace_idle(p);
        atomic_store(&p->sleeping, true);
        exec__futex_wait(&p->wake, seen, out ? exec__now_ns() + ns : 0);
        atomic_store(&p->sleeping, false);
    }
    for (int ri = 0; ob.tasks && ri < p->size; ri++)
        free(ob.tasks[ri].b);
    free(ob.tasks);
    free(ob.o);
    free(ob.drop);
    return NULL;
}

