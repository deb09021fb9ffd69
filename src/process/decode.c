/* SPDX-License-Identifier: MIT */
/*
 * process/decode.c - the checks of what another process says to the parent: completions read
 * from a worker's ring, the map progress words a dead worker left, and the zygote's
 * datagrams (and the zygote's check of the parent's commands). See process/pool.h.
 *
 * Why. A worker runs the application's tasks, and a task may scribble anything over the
 * memory its worker shares with the parent (its rings, its region). The parent believes a
 * message only after these checks, on a copy it made once (the worker may still be writing),
 * and treats a worker that said something impossible as crashed: it is killed, the task it
 * was running fails with EXEC_ECRASHED, the requests it had not started run elsewhere. Never
 * a crash, a hang or a read outside the ring in the parent.
 *
 * These functions are pure (no lock, no system call), so that the fuzz targets of
 * tests/fuzz/ call exactly what the supervisor calls.
 */
#include <signal.h>
#include <string.h>

#include "process/pool.h"

uint32_t exec__pp_cmp_read(struct exec__rq *q, struct exec__cmpv *out, uint32_t max)
{
    uint32_t n = 0;
    struct exec__msg *m;
    while (n < max && (m = exec__rq_peek(q))) {
        if (q->msize < sizeof(struct exec__cmp)) {
            q->bad = true; /* too short to hold a completion's header */
            break;
        }
        struct exec__cmpv *v = &out[n++];
        memcpy(&v->h, m, sizeof v->h);
        v->msize = q->msize;
        v->msg = (unsigned char *)m;
        exec__rq_next(q, m);
    }
    return n;
}

/* Bytes of the payload of a map chunk's completion: results padded to 16, then statuses only
 * when an item failed (worker.c, run_map()). */
static size_t chunk_bytes(size_t count, size_t out_size, bool statuses)
{
    return exec__ring_round(count * out_size) + (statuses ? count * sizeof(int32_t) : 0);
}

bool exec__pp_cmp_ok(const struct exec__cmpv *v, const struct ent *e, size_t max_result)
{
    const struct exec__cmp *c = &v->h;
    size_t room = v->msize - sizeof *c; /* exec__pp_cmp_read() saw msize >= sizeof *c */
    if (c->flags & ~(EXEC__CF_TASKS | EXEC__CF_MEMORY | EXEC__CF_AGE))
        return false;
    switch (c->h.kind) {
    case EXEC__CMP_RETIRE:
    case EXEC__CMP_INITFAIL:
        return true;
    case EXEC__CMP_SKIP:
        return e && c->h.seq == e->seq;
    case EXEC__CMP_DONE:
        break;
    default:
        return false;
    }
    if (!e || c->h.seq != e->seq)
        return false; /* completions come in the order of the requests */
    if (e->kind == EXEC__REQ_TASK) {
        if (c->code != EXEC_OK && c->code != EXEC_ETASK && c->code != EXEC_ETOOBIG)
            return false;
        return c->size <= room && c->size <= max_result;
    }
    if (e->kind != EXEC__REQ_MAP || c->code != EXEC_OK)
        return false;
    size_t count = e->hi - e->lo;
    if (c->size != count || c->nfailed > count)
        return false;
    /* A chunk taken back (stolen) has no map any more: its payload is never read. */
    return !e->map || chunk_bytes(count, e->map->out_size, c->nfailed > 0) <= room;
}

size_t exec__pp_chunk_done(const struct ent *e, size_t out_size, uint64_t map_seq,
                           uint64_t map_done, uint64_t map_cmp, uint64_t cmp_cap)
{
    size_t count = e->hi - e->lo;
    size_t need = sizeof(struct exec__cmp) + chunk_bytes(count, out_size, true);
    if (map_seq != e->seq || map_done > count || map_cmp > cmp_cap ||
        map_cmp % EXEC__RING_ALIGN != 0 || need > cmp_cap - map_cmp)
        return 0;
    return (size_t)map_done;
}

bool exec__zmsg_ok(const struct exec__zmsg *m, bool event, int nslots)
{
    bool slot_ok = m->slot >= 0 && m->slot < nslots;
    switch (m->op) {
    case EXEC__Z_SPAWN:
        return !event && slot_ok && (m->rix == 0 || m->rix == 1);
    case EXEC__Z_KILL:
        return !event && m->pid > 0 && m->arg > 0 && m->arg < NSIG;
    case EXEC__Z_QUIT:
        return !event;
    case EXEC__Z_SPAWNED:
    case EXEC__Z_EXITED:
        return event && slot_ok && m->pid > 0;
    case EXEC__Z_SPAWNFAIL:
        return event && slot_ok && m->arg > 0;
    default:
        return false;
    }
}
