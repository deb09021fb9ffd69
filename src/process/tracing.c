/* SPDX-License-Identifier: MIT */
/*
 * process/tracing.c - what the trace (core/trace.h) shows of a process pool. Workers are other
 * processes, so the parent writes every event: the supervisor, on its own lane, records each
 * worker's track (named by its slot and pid), the spans of tasks and chunks from the times the
 * worker put in its completions (or, for the one a dead worker was running, from the start it
 * published to the death the supervisor saw), deadlines, crashes, kills and recycling. Cancels
 * come from the caller's thread, on the shared lane. See process/pool.h for the pool itself.
 */
#include "process/pool.h"

#include <string.h>

/* An instant now. The supervisor's times are CLOCK_MONOTONIC, like its workers'. */
static void instant(struct pp *pp, int kind, uint32_t tid, uint64_t a, uint64_t b, int32_t c,
                    int32_t d)
{
    struct exec__tev *e = exec__tlane_ev(pp->tl);
    uint64_t now = exec__now_ns();
    exec__tev_set(e, kind, tid, now, now, EXEC__TEVF_NS);
    e->a = a;
    e->b = b;
    e->c = c;
    e->d = d;
}

/* Name @in's track once its pid is known (lock held, or the supervisor's own instance). */
static void name_track(struct pp *pp, struct inst *in)
{
    int pid = inst_pid(in);
    if (in->tnamed || !pid)
        return;
    in->tnamed = true;
    instant(pp, EXEC__TEV_TRACK, (uint32_t)pid, (uint64_t)in->slot, 0, 0, 1);
}

void exec__pp_trace_started(struct pp *pp, struct inst *in)
{
    if (!pp->tl || !inst_pid(in))
        return;
    name_track(pp, in);
    /* At the time the parent asked for it: its first task may have run before we heard. */
    struct exec__tev *e = exec__tlane_ev(pp->tl);
    exec__tev_set(e, EXEC__TEV_START, (uint32_t)inst_pid(in), in->spawn_ns, in->spawn_ns,
                  EXEC__TEVF_NS);
    e->a = (uint64_t)in->slot;
}

void exec__pp_trace_done(struct pp *pp, struct inst *in, const struct ent *e,
                         const struct exec__cmp *c, int code)
{
    if (!pp->tl)
        return;
    name_track(pp, in);
    uint32_t tid = (uint32_t)inst_pid(in);
    uint64_t t1 = c->t_end > c->t_start ? c->t_end : c->t_start;
    if (e->f)
        exec__trace_task(pp->tl, e->f, tid, c->t_start, t1, EXEC__TEVF_NS, code,
                         code == EXEC_ETASK ? c->status : 0);
    else if (e->map)
        exec__trace_chunk(pp->tl, tid, c->t_start, t1, EXEC__TEVF_NS, e->lo, e->hi,
                          (int32_t)c->nfailed, c->nfailed ? EXEC_ETASK : EXEC_OK,
                          (int32_t)e->map->in_size);
}

void exec__pp_trace_lost(struct pp *pp, struct inst *in, const struct ent *e)
{
    if (!pp->tl)
        return;
    name_track(pp, in);
    uint32_t tid = (uint32_t)inst_pid(in);
    uint64_t now = exec__now_ns(), t0 = now;
    if (atomic_load_explicit(&in->rg->cur_seq, memory_order_acquire) == e->seq)
        t0 = atomic_load_explicit(&in->rg->cur_start_ns, memory_order_relaxed);
    if (!t0 || t0 > now)
        t0 = now;
    if (e->f) {
        /* Not ended yet: the supervisor ends it EXEC_ECRASHED (only it and a cancel, under
         * the lock we hold, can end a running task). Else whoever did says how. */
        uint32_t st = exec__future_state(e->f);
        int code = st == EXEC_STATE_QUEUED || st == EXEC_STATE_RUNNING
                       ? EXEC_ECRASHED
                       : exec__future_end_code(e->f);
        exec__trace_task(pp->tl, e->f, tid, t0, now, EXEC__TEVF_NS, code, 0);
    } else if (e->map) {
        exec__trace_chunk(pp->tl, tid, t0, now, EXEC__TEVF_NS, e->lo, e->hi, 1,
                          EXEC_ECRASHED, (int32_t)e->map->in_size);
    }
}

void exec__pp_trace_exit(struct pp *pp, struct inst *in, int reason, int sig, int xst,
                         uint64_t seq)
{
    if (!pp->tl || !inst_pid(in))
        return;
    name_track(pp, in);
    uint32_t tid = (uint32_t)inst_pid(in);
    switch (reason) {
    case R_LOST:
        instant(pp, EXEC__TEV_CRASH, tid, seq, 0, sig, xst);
        break;
    case R_TASKS:
    case R_MEMORY:
    case R_AGE:
        instant(pp, EXEC__TEV_RECYCLE, tid, in->dispatched, 0,
                reason == R_TASKS    ? EXEC__TRECYCLE_TASKS
                : reason == R_MEMORY ? EXEC__TRECYCLE_MEMORY
                                     : EXEC__TRECYCLE_AGE,
                0);
        break;
    case R_TIMEOUT:
        instant(pp, EXEC__TEV_KILLED, tid, seq, 0, sig, 0);
        break;
    default: /* shutdown, or an initializer that failed: nothing to show */
        break;
    }
}

void exec__pp_trace_deadline(struct pp *pp, struct inst *in, const struct exec_future *f)
{
    if (!pp->tl)
        return;
    name_track(pp, in);
    instant(pp, EXEC__TEV_DEADLINE, (uint32_t)inst_pid(in), f->tseq, f->timeout_ms, 0, 0);
}

void exec__pp_trace_cancel(struct pp *pp, const struct exec_future *f, const struct inst *in,
                           int when)
{
    exec__trace_shared_instant(pp->trace, EXEC__TEV_CANCEL, in ? (uint32_t)inst_pid(in) : 0,
                               f->tseq, 0, when, 0);
}

void exec__pp_trace_cancel_list(struct pp *pp, struct exec__list *list)
{
    if (!pp->trace)
        return;
    for (struct exec__list *l = exec__list_first(list); l; l = exec__list_next(list, l)) {
        const struct exec_future *f =
            EXEC__CONTAINER_OF(l, struct exec_future, bk.process.link);
        exec__trace_shared_instant(pp->trace, EXEC__TEV_CANCEL, 0, f->tseq, 0,
                                   EXEC__TCANCEL_SHUTDOWN, 0);
    }
}
