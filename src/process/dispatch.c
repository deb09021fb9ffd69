/* SPDX-License-Identifier: MIT */
/*
 * process/dispatch.c - what waits for a worker and where it goes: the FIFO of futures not yet
 * in a ring, the maps with items to claim, requests written into workers' rings (the
 * argument copied once), requests taken back before they start, and the deferred ends of
 * futures (applied outside the lock). See process/pool.h for the whole design.
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

void exec__pp_fin_add(struct pp *pp, struct exec_future *f, int code, exec_state_t end,
                      bool release, const struct inst *in)
{
    EXEC__ASSERT(pp->nfins < pp->fins_cap);
    struct fin *x = &pp->fins[pp->nfins++];
    memset(x, 0, sizeof *x);
    x->f = f;
    x->code = code;
    x->end = end;
    x->release = release;
    x->xst = -1;
    x->wid = -1;
    if (in) {
        x->pid = inst_pid(in);
        x->wid = in->slot;
    }
}

static void fin_apply(struct fin *x)
{
    struct exec_future *f = x->f;
    if (x->code != EXEC_OK &&
        exec__future_claim(f, 1u << EXEC_STATE_QUEUED | 1u << EXEC_STATE_RUNNING)) {
        f->fault.code = x->code;
        f->fault.signal = x->sig;
        f->fault.exit_status = x->xst;
        f->fault.task_status = x->tstatus;
        f->fault.sys_errno = x->serr;
        f->fault.worker_pid = x->pid;
        f->fault.worker_id = x->wid;
        f->fault.cause = x->cause;
        exec__future_drop_arg(f);
        exec__future_finish(f, x->end);
    }
    if (x->release)
        exec_future_release(f);
}

/* Re-entrant: a done-callback run here may run a supervisor round (a shutdown from inside
 * it), which adds and flushes too; each entry is taken before it is applied. */
void exec__pp_fins_flush(struct pp *pp)
{
    while (pp->fins_next < pp->nfins) {
        struct fin x = pp->fins[pp->fins_next++];
        fin_apply(&x);
    }
    pp->nfins = pp->fins_next = 0;
}

/* End a list of futures (linked by their FP(f)->link) with one outcome (@how: its code and
 * detail; f, end and release are ignored) and drop the backend's references. The list is
 * ours: nobody else sees it. */
void exec__pp_end_list(struct exec__list *list, const struct fin *how)
{
    struct exec__list *l;
    while ((l = exec__list_first(list))) {
        exec__list_remove(l);
        struct fin x = *how;
        x.f = EXEC__CONTAINER_OF(l, struct exec_future, bk.process.link);
        x.end = how->code == EXEC_ECANCELLED ? EXEC_STATE_CANCELLED : EXEC_STATE_FAILED;
        x.release = true;
        fin_apply(&x);
    }
}

/* The detail of a future that a broken pool fails: why it broke. */
void exec__pp_broken_detail(const struct pp *pp, struct fin *x)
{
    x->cause = pp->broken_cause;
    x->tstatus = pp->broken_status;
    x->sig = pp->broken_sig;
    x->xst = pp->broken_xst;
}

void exec__pp_q_push(struct pp *pp, struct exec_future *f, bool front)
{
    FP(f)->where = LOC_QUEUE;
    FP(f)->inst = NULL;
    if (front)
        exec__list_push_front(&pp->queue, &FP(f)->link);
    else
        exec__list_push_back(&pp->queue, &FP(f)->link);
    pp->qlen++;
    if (f->arg_size >= EXEC__BIG_MIN)
        pp->qbig += f->arg_size;
}

void exec__pp_q_unlink(struct pp *pp, struct exec_future *f)
{
    exec__list_remove(&FP(f)->link);
    FP(f)->where = LOC_NONE;
    pp->qlen--;
    if (f->arg_size >= EXEC__BIG_MIN)
        pp->qbig -= f->arg_size;
}

static struct exec_future *q_first(struct pp *pp)
{
    struct exec__list *l = exec__list_first(&pp->queue);
    return l ? EXEC__CONTAINER_OF(l, struct exec_future, bk.process.link) : NULL;
}

/* Move the whole FIFO to the end of @out (a list of the caller's). */
void exec__pp_q_take_all(struct pp *pp, struct exec__list *out)
{
    for (struct exec_future *f = q_first(pp); f; ) {
        struct exec__list *n = exec__list_next(&pp->queue, &FP(f)->link);
        FP(f)->where = LOC_NONE;
        f = n ? EXEC__CONTAINER_OF(n, struct exec_future, bk.process.link) : NULL;
    }
    exec__list_splice(out, &pp->queue);
    pp->qlen = 0;
    pp->qbig = 0;
}

void exec__pp_map_list(struct pp *pp, struct exec__map *m)
{
    if (exec__list_unlinked(&m->link))
        exec__list_push_back(&pp->maps, &m->link);
}

void exec__pp_map_unlist(struct exec__map *m)
{
    if (!exec__list_unlinked(&m->link))
        exec__list_remove(&m->link);
}

/* A claimed range that never started: back to its map to run elsewhere, unless the pool is
 * broken (then it fails like everything else) or a shutdown cancelled the map. */
void exec__pp_range_back(struct pp *pp, struct exec__map *m, size_t lo, size_t hi)
{
    if (pp->broken)
        exec__map_fail(m, lo, hi, EXEC_EBROKEN);
    else if (exec__map_unclaim(m, lo, hi))
        exec__pp_map_list(pp, m);
}

/* End every item of every listed map not claimed yet with @code. */
void exec__pp_maps_fail_pending(struct pp *pp, int code)
{
    struct exec__list *l;
    while ((l = exec__list_first(&pp->maps))) {
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        exec__pp_map_unlist(m);
        exec__map_fail_unclaimed(m, code); /* may be the map's last touch: unlisted before */
    }
}

/* Whether a listed map still has items to hand out; forget those that have none. */
bool exec__pp_maps_have_work(struct pp *pp)
{
    struct exec__list *l = exec__list_first(&pp->maps);
    while (l) {
        struct exec__list *next = exec__list_next(&pp->maps, l);
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        if (exec__map_has_work(m))
            return true;
        exec__pp_map_unlist(m);
        l = next;
    }
    return false;
}

/* The least busy worker that accepts a request now, or NULL. */
struct inst *exec__pp_pick(struct pp *pp)
{
    struct inst *best = NULL;
    for (int s = 0; s < pp->nslots; s++) {
        struct inst *in = cur_inst(pp, s);
        if (in && inst_may_take(pp, in) && !in->full && (!best || in->fn < best->fn)) {
            best = in;
            if (!in->fn)
                break;
        }
    }
    return best;
}

struct exec__req *exec__pp_req_begin(struct inst *in, size_t payload, uint32_t kind)
{
    struct exec__req *rq = (struct exec__req *)exec__rq_reserve(&in->rq, sizeof *rq + payload);
    if (!rq)
        return NULL;
    rq->h.kind = kind;
    rq->h.seq = ++in->seq;
    atomic_store_explicit(&rq->state, EXEC__RS_QUEUED, memory_order_relaxed);
    rq->flags = 0;
    rq->fn = NULL;
    rq->arg_size = rq->out_size = rq->count = 0;
    return rq;
}

static struct ent *ent_add(struct inst *in, struct exec__req *rq, uint32_t kind)
{
    struct ent *e = &in->fifo[(in->fhead + in->fn) & (DEPTH - 1)];
    in->fn++;
    memset(e, 0, sizeof *e);
    e->seq = rq->h.seq;
    e->end = in->rq.pos;
    e->req = rq;
    e->rsize = rq->h.size;
    e->kind = kind;
    in->dirty = true;
    return e;
}

static void count_dispatch(struct inst *in, struct exec__req *rq)
{
    in->dispatched++;
    if (in->max_tasks && in->dispatched >= in->max_tasks) {
        rq->flags |= EXEC__RF_LAST;
        in->st = I_RETIRING;
        in->reason = R_TASKS;
    }
}

/* The request of task @f in @in's ring, its argument bytes not written yet; NULL when the
 * ring is short of bytes. exec__pp_task_commit() makes it one of @in's requests. */
struct exec__req *exec__pp_task_reserve(struct inst *in, struct exec_future *f)
{
    struct exec__req *rq = exec__pp_req_begin(in, f->arg_size, EXEC__REQ_TASK);
    if (!rq)
        return NULL;
    rq->fn = f->fn;
    rq->arg_size = f->arg_size;
    if (f->timeout_ms)
        rq->flags |= EXEC__RF_TIMED;
    count_dispatch(in, rq);
    return rq;
}

void exec__pp_task_commit(struct inst *in, struct exec_future *f, struct exec__req *rq)
{
    struct ent *e = ent_add(in, rq, EXEC__REQ_TASK);
    e->arg_size = f->arg_size;
    e->f = f;
    FP(f)->where = LOC_FIFO;
    FP(f)->inst = in;
    FP(f)->seq = e->seq;
}

/* Put task @f in @in's ring, its argument copied from @arg (the submitter's bytes, or the
 * copy the future kept while it waited in the FIFO). */
bool exec__pp_dispatch_task(struct inst *in, struct exec_future *f, const void *arg)
{
    struct exec__req *rq = exec__pp_task_reserve(in, f);
    if (!rq)
        return false;
    if (f->arg_size)
        memcpy(rq + 1, arg, f->arg_size);
    exec__pp_task_commit(in, f, rq);
    return true;
}

static bool dispatch_chunk(struct inst *in, struct exec__map *m, size_t lo, size_t hi)
{
    struct exec__req *rq = exec__pp_req_begin(in, (hi - lo) * m->in_size, EXEC__REQ_MAP);
    if (!rq)
        return false;
    rq->fn = m->fn;
    rq->arg_size = m->in_size;
    rq->out_size = m->out_size;
    rq->count = hi - lo;
    memcpy(rq + 1, exec__map_in(m, lo), (hi - lo) * m->in_size);
    count_dispatch(in, rq);
    struct ent *e = ent_add(in, rq, EXEC__REQ_MAP);
    e->map = m;
    e->lo = lo;
    e->hi = hi;
    return true;
}

/* A task taken back from a ring before it started waits in the FIFO again, at its front. Its
 * argument lived only in the request, whose bytes the ring will reuse: copy it out. */
void exec__pp_requeue_task(struct pp *pp, struct ent *e, const struct inst *in)
{
    struct exec_future *f = e->f;
    if (exec__future_set_arg(f, e->req + 1, e->arg_size) != 0) {
        exec__pp_fin_add(pp, f, EXEC_ENOMEM, EXEC_STATE_FAILED, true, in);
        return;
    }
    exec__pp_q_push(pp, f, true);
}

void exec__pp_flush(struct inst *in)
{
    if (!in->dirty)
        return;
    in->dirty = false;
    exec__rq_publish(&in->rq);
    (void)exec__rq_wake_consumer(&in->rq);
}

/* The next map range for @in: claimed from the first listed map, which then goes to the back
 * of the list (maps take turns). False when no map has work or the ring is short of bytes. */
static bool refill_chunk(struct pp *pp, struct inst *in, bool *none)
{
    struct exec__list *l;
    while ((l = exec__list_first(&pp->maps))) {
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        size_t lo, hi;
        if (!exec__map_claim(m, &lo, &hi)) {
            exec__pp_map_unlist(m);
            continue;
        }
        exec__list_remove(l);
        exec__list_push_back(&pp->maps, l);
        if (dispatch_chunk(in, m, lo, hi))
            return true;
        exec__pp_range_back(pp, m, lo, hi);
        return false;
    }
    *none = true;
    return false;
}

/* Move work from the FIFO and the maps into rings; returns how many requests it sent. */
int exec__pp_refill(struct pp *pp)
{
    int sent = 0;
    for (;;) {
        struct inst *in = exec__pp_pick(pp);
        if (!in)
            break;
        bool ok, none = false;
        struct exec_future *f = q_first(pp);
        if (f) {
            exec__pp_q_unlink(pp, f);
            ok = exec__pp_dispatch_task(in, f, f->arg);
            if (ok)
                exec__future_drop_arg(f); /* the ring has it now */
            else
                exec__pp_q_push(pp, f, true);
        } else {
            ok = refill_chunk(pp, in, &none);
            if (none)
                break;
        }
        if (!ok) {
            in->full = true; /* ring bytes are short (big arguments): try the others */
            continue;
        }
        sent++;
    }
    FOR_EACH_INST(pp, in) {
        exec__pp_flush(in);
        in->full = false; /* submitters pick() too */
    }
    /* Submitters of big arguments are woken once half the bound is free, not at each ring
     * slot that frees (a wake-up per 64 KiB task cost as much as copying it). */
    if (pp->space_waiters > pp->big_waiters || (pp->big_waiters && pp->qbig <= QBIG_MAX / 2))
        pthread_cond_broadcast(&pp->cond);
    return sent;
}

/* Take back every request @in has not started; tasks and chunks go back to the front of the
 * FIFO in their order, unless @fail_code: then tasks are failed with it. */
uint32_t exec__pp_steal(struct pp *pp, struct inst *in, int fail_code)
{
    uint32_t n = 0;
    for (uint32_t i = in->fn; i-- > 0;) {
        struct ent *e = fifo_at(in, i);
        if (!e->f && !e->map)
            continue;
        uint32_t exp = EXEC__RS_QUEUED;
        if (!atomic_compare_exchange_strong_explicit(&e->req->state, &exp, EXEC__RS_STOLEN,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire))
            continue;
        n++;
        if (e->f) {
            if (fail_code)
                exec__pp_fin_add(pp, e->f, fail_code, EXEC_STATE_FAILED, true, NULL);
            else
                exec__pp_requeue_task(pp, e, NULL);
            e->f = NULL;
        } else {
            if (fail_code)
                exec__map_fail(e->map, e->lo, e->hi, fail_code);
            else
                exec__pp_range_back(pp, e->map, e->lo, e->hi);
            e->map = NULL;
        }
    }
    return n;
}

/* Requests waiting for a worker (FIFO, and rings not taken yet); *running: being run. */
size_t exec__pp_count_work(struct pp *pp, uint64_t *running)
{
    size_t n = pp->qlen;
    uint64_t run = 0;
    FOR_EACH_INST(pp, in) {
        for (uint32_t i = 0; i < in->fn; i++) {
            struct ent *e = fifo_at(in, i);
            if (!e->f && !e->map)
                continue;
            uint32_t st = atomic_load_explicit(&e->req->state, memory_order_acquire);
            if (st == EXEC__RS_QUEUED)
                n++;
            else if (st == EXEC__RS_RUNNING && !in->exited &&
                     e->seq > atomic_load_explicit(&in->rg->done_seq, memory_order_acquire))
                run++;
        }
    }
    if (running)
        *running = run;
    return n;
}
