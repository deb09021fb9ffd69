/* SPDX-License-Identifier: MIT */
/*
 * mpi/trace.c - the tasks and map chunks that the ranks ran, in rank 0's trace
 * (exec_config_t.trace_path, EXEC_TRACE). The comm thread records them as their results
 * arrive, on the backend's own lane (index `workers`; it is that lane's one writer): a span
 * from the moment it sent the work to the moment the result came back, on rank 0's clock
 * (so it includes the transfer, and the wait on the rank of work sent in advance), with the
 * outcome the rank reported. Each worker of each rank is a track: tid = its worker id + 1,
 * named "mpi worker <id> (rank <r>, pid <pid>)" at its first span and again when its pid
 * changed (a local worker process replaced).
 */
#include "mpi/pool.h"

#include <stdlib.h>
#include <string.h>

#include "core/trace.h"

int exec__mpi_trace_open(struct mp *p)
{
    struct exec *core = p->core;
    if (!core->trace)
        return EXEC_OK;
    p->track_pid = calloc((size_t)core->cfg.workers + 1, sizeof *p->track_pid);
    if (!p->track_pid)
        return EXEC_ENOMEM;
    p->tl = exec__trace_lane(core->trace, core->cfg.workers, false);
    return EXEC_OK;
}

void exec__mpi_trace_free(struct mp *p)
{
    free(p->track_pid);
    p->track_pid = NULL;
    p->tl = NULL;
}

void exec__mpi_trace_idle(struct mp *p)
{
    if (p->tl)
        exec__tlane_idle(p->tl);
}

/* The track of the worker that reported @r on rank @ri (named when new or its pid changed). */
static uint32_t track(struct mp *p, int ri, const struct mpi__result *r)
{
    const struct rank *rk = &p->ranks[ri];
    int local = r->fault.worker_id >= 0 && r->fault.worker_id < rk->workers
                    ? r->fault.worker_id : 0;
    int slot = rk->base + local;
    uint32_t tid = (uint32_t)slot + 1;
    int32_t pid = r->fault.worker_pid ? r->fault.worker_pid : rk->pid;
    if (p->track_pid[slot] != pid) {
        p->track_pid[slot] = pid;
        exec__trace_instant(p->tl, EXEC__TEV_TRACK, tid, (uint64_t)slot, (uint64_t)pid, ri, 1);
    }
    return tid;
}

/* A chunk's failed items and its outcome, from the reply (see dispatch.c, chunk.c). */
static int chunk_outcome(const struct slot *s, const struct mpi__result *r, const void *data,
                         int32_t *failed)
{
    size_t n = s->hi - s->lo, osz = s->m->out_size;
    bool items = r->flags & MPI__RESULT_ITEMS;
    *failed = (int32_t)n;
    if (r->state != EXEC_STATE_DONE)
        return r->state == EXEC_STATE_CANCELLED ? EXEC_ECANCELLED
                                                : r->fault.code ? r->fault.code : EXEC_ECRASHED;
    if (r->size != n * ((items ? 2 : 1) * sizeof(int) + osz))
        return EXEC_ECRASHED;
    int code = EXEC_OK, v;
    *failed = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(&v, (const unsigned char *)data + i * sizeof v, sizeof v);
        int c = 0;
        if (items)
            memcpy(&c, (const unsigned char *)data + (n + i) * sizeof c, sizeof c);
        *failed += v || c;
        if (c && code == EXEC_OK)
            code = c;
    }
    return code ? code : *failed ? EXEC_ETASK : EXEC_OK;
}

void exec__mpi_trace_result(struct mp *p, int ri, const struct slot *s,
                            const struct mpi__result *r, const void *data)
{
    uint64_t now = exec__ticks();
    uint32_t tid = track(p, ri, r);
    if (s->f) {
        int code = r->state == EXEC_STATE_DONE        ? EXEC_OK
                   : r->state == EXEC_STATE_CANCELLED ? EXEC_ECANCELLED
                   : r->fault.code                    ? r->fault.code
                                                      : EXEC_ECRASHED;
        exec__trace_task(p->tl, s->f, tid, s->t_sent, now, 0, code, r->fault.task_status);
    } else if (s->m) {
        int32_t failed;
        int code = chunk_outcome(s, r, data, &failed);
        exec__trace_chunk(p->tl, tid, s->t_sent, now, 0, s->lo, s->hi, failed, code,
                          (int32_t)s->m->in_size);
    }
}
