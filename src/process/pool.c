/* SPDX-License-Identifier: MIT */
/*
 * process_pool.c - the process backend, parent side: dispatch, supervision, recycling,
 * deadlines.
 *
 * Processes. exec_create() maps one shared anonymous region (MAP_SHARED|MAP_ANONYMOUS: no
 * name, nothing in /dev/shm, inherited by every later fork) holding a doorbell word and, for
 * each worker slot, two "worker regions" of two rings each. With the forkserver start method
 * it then forks the zygote (forkserver.c), which forks every worker; with the fork method
 * the supervisor thread forks workers itself (the child of a multi-threaded process may
 * inherit locks held by threads that do not exist in it; that is the documented risk of
 * EXEC_START_FORK). A slot owns two regions so that a worker's replacement can start on the
 * other region while the old worker drains (recycling without a gap).
 *
 * Transport. Per worker, a request ring (parent -> worker) and a completion ring (worker ->
 * parent), see ring.h. Function pointers travel as they are (same program image); argument
 * bytes are copied once into the request ring and read in place by the task; results come
 * back in the completion ring. No system call per message: a side sleeps on a futex only
 * when it ran dry, and is woken only if it said so. A control socket to the zygote carries
 * only spawn/kill/exit events.
 *
 * Threads. Submitters write requests straight into the ring of the least busy worker (at
 * most DEPTH requests in flight per worker); what does not fit waits in a FIFO of futures.
 * One supervisor thread per executor drains completion rings and finishes futures (they live
 * in this process's private memory, so no worker can), refills rings from the FIFO and from
 * running exec_map() calls, watches deadlines, handles worker exits (zygote events or pidfds),
 * recycles and respawns. Everything but the rings' consumer sides is under pp->lock; futures
 * are finished outside it (their callbacks may submit).
 *
 * Wake-ups. After any activity the supervisor polls the completion rings and a `kick` flag
 * for SUP_SPIN_NS, yielding the CPU between looks, then sleeps in poll() on the doorbell (an
 * eventfd that workers and submitters write only when the supervisor announced it sleeps),
 * the control socket and the pidfds. Workers likewise poll their request ring for a while
 * after each task before sleeping on its futex. So a steady stream costs no system call per
 * message, and a submit-then-wait loop costs one wake-up per round trip (the waiter's). A
 * submitter that put a request in a ring raises `kick`: the supervisor must watch its start
 * (to mark the future RUNNING: the worker publishes the request number it runs, and the
 * supervisor ticks every TICK_NS while a start is unobserved) and its deadline.
 *
 * Request ownership. Every request in a ring has a state word: the worker takes it with
 * QUEUED -> RUNNING, the parent takes it back with QUEUED -> CANCELLED (cancel) or STOLEN
 * (re-dispatch: its worker retires, is being killed, or sits on a long task while another is
 * idle). Exactly one side wins, so a task runs at most once and a cancelled one never starts.
 * The parent reuses request bytes only after it read the matching completion, so it may look
 * at the state word of any request still in its in-flight list. When a worker dies, requests
 * it had not taken go back to the front of the FIFO; the one it was running fails with
 * EXEC_ECRASHED (signal or exit status from the zygote's waitpid).
 *
 * Deadlines. A timed request carries a flag; the worker rings the doorbell when it starts
 * one, the supervisor arms the deadline from the start time the worker published, fails the
 * future with EXEC_ETIMEDOUT at the deadline, sends SIGTERM, and SIGKILL after kill_grace_ms
 * (again every 100 ms until the worker is gone). Cancelling a running task does the same.
 *
 * Recycling. max_tasks_per_child is counted here: the N-th request sent to a worker carries
 * the LAST flag (the worker exits after it), the worker stops taking requests, and its
 * replacement is spawned at once on the slot's other region, so it is ready when the old one
 * leaves. Requests taken back from a worker before it started them give their quota back, and
 * never from a worker whose quota is all sent: every worker that retires for this reason ran
 * exactly N tasks. Memory (after each task) and age (between tasks, also while idle) are
 * checked by the worker, which says why in its last completion. Limits get their jitter when
 * a worker is prepared; retirements are counted by reason.
 *
 * Failures. A worker that dies without saying it retires is a crash (counted for the
 * crash-loop breaker: crash_limit crashes within crash_window_ms break the pool, EXEC_EBROKEN
 * for what waits and what comes). An initializer that fails breaks the pool at once
 * (EXEC_EBROKEN, the initializer's status in task_status): it would fail in every worker, and
 * respawning would only loop. A spawn that fails is retried after 2, 4, ... ms (up to 1 s);
 * after SPAWN_FAIL_LIMIT failures in a row with no worker left, what waits fails with
 * EXEC_ESYS (errno in sys_errno) instead of waiting forever, and later submits wait for the
 * next try. If the zygote dies, its workers die with it and the pool is broken.
 *
 * Hygiene. No signal handler in the parent; the parent reaps only its own children by pid
 * (the zygote; or, with the fork method, each worker through its pidfd), so SIGCHLD may be
 * SIG_IGN or handled by the application. All fds are close-on-exec from birth; the
 * supervisor runs with asynchronous signals blocked; every blocking call retries on EINTR.
 */
#include "process/proto.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fault.h"
#include "core/backend.h"

#define DEPTH 64u            /* requests in flight per worker (power of two) */
#define DRAIN_BATCH 64u      /* completions handled per lock round */
#define TICK_NS 2000000u     /* supervisor tick while starts may be unobserved */
#define STEAL_AFTER_NS 2000000u
#ifndef SUP_SPIN_NS
#define SUP_SPIN_NS 50000u /* supervisor polls this long before sleeping */
#endif
#define RING_MIN ((size_t)1 << 20)
#define SPAWN_FAIL_LIMIT 5   /* failed spawns in a row with no worker alive: fail the queue */
#define DISCARD_MIN ((size_t)1 << 20) /* give back the shm pages of messages this big */

enum { I_FREE, I_SPAWNING, I_LIVE, I_RETIRING, I_KILLING };
/* Why a worker goes away. */
enum { R_NONE, R_TASKS, R_MEMORY, R_AGE, R_TIMEOUT, R_SHUTDOWN, R_INIT, R_LOST };
/* Where a future is (its process part: f->bk.process.where). */
enum { LOC_NONE = 0, LOC_QUEUE = 1, LOC_FIFO = 2 };
#define FP(f) (&(f)->bk.process)

struct pp;

/* One request in flight. It owns the backend's reference of f (NULL once moved/ended). */
struct ent {
    uint64_t seq, end; /* request number; ring position after it */
    struct exec__req *req;
    struct exec_future *f;
    struct exec__map *map; /* or a range [lo, hi) of a map's items */
    size_t lo, hi;
    uint32_t kind;
};

/* One worker process lifetime on one region of a slot. */
struct inst {
    int slot, rix;
    uint32_t gen;
    struct exec__wregion *rg;
    struct exec__rq rq; /* request producer (pp->lock) */
    struct exec__rq cq; /* completion consumer (supervisor only) */
    int st;
    /* st != I_FREE, for the supervisor's lock-free polling. Only the supervisor moves an
     * instance out of and back to I_FREE (and exec_create() before it starts), so only it
     * writes this, and reads it without the lock. */
    bool used;
    pid_t pid;
    int pidfd;
    bool spawn_sent, exit_sent, exited, status_known, polled;
    int wstatus;
    int pending_sig;
    uint64_t seq;
    struct ent *fifo; /* DEPTH entries, oldest at fhead */
    uint32_t fhead, fn;
    uint32_t dispatched, max_tasks;
    int reason;
    uint64_t spawn_ns, seen_seq, deadline_ns, deadline_seq, kill_at;
    bool dirty;
    bool full; /* refill(): no ring bytes for the next request this round */
};

struct slot {
    struct inst in[2];
    int cur; /* instance taking new work, -1 none */
};

/* A deferred end of a future, applied outside the lock. */
struct fin {
    struct exec_future *f;
    int code, sig, xst, tstatus, serr, pid, wid;
    exec_state_t end;
    bool release;
};

struct pp {
    struct exec *core;
    const exec_config_t *cfg;
    bool forkserver;

    pthread_mutex_t lock; /* protects everything below up to `sup` unless noted */
    pthread_cond_t cond;  /* stopped; queue space */
    struct exec__list queue; /* futures waiting for a ring (their FP(f)->link) */
    size_t qlen;
    struct exec__list maps;  /* maps with items to claim (their link), core/map.h */
    int nslots;
    struct slot *slots;
    uint32_t gen_next;
    bool shut, stopped, broken, zygote_dead, tripped;
    bool spawn_gave_up; /* a spawn failed again with no worker alive: fail what waits */
    /* The supervisor's own (no other thread touches them): */
    uint32_t zev_seen;        /* hub->zevents when the socket was last drained */
    uint64_t pidfd_polled_at; /* fork method: last look at the pidfds */
    bool woke;                /* it just returned from poll() */
    int broken_code, broken_status, broken_errno;
    size_t space_waiters;
    uint64_t submitted, retired[8], alive;
    uint64_t *crashes; /* ring of crash times (crash_limit entries) */
    uint32_t ncrash;
    int spawn_streak, spawn_errno;
    uint64_t spawn_retry_at;
    uint64_t rng;

    /* Supervisor. */
    pthread_t sup;
    bool sup_started;
    _Atomic int kick;
    struct fin *fins; /* supervisor's scratch */
    size_t nfins, fins_cap;
    struct inst **todo;
    struct pollfd *pfd;
    struct inst **pfd_inst;

    /* Shared memory and fds. */
    unsigned char *shm;
    size_t shm_size, region_size;
    uint64_t req_cap, cmp_cap; /* ring sizes, fixed at create: read without the lock */
    struct exec__hub *hub;
    struct exec__wctx *wctx; /* 2 per slot */
    int bell[2];
    int ctl;     /* control socket to the zygote, -1 for fork */
    int death_w; /* write end of the zygote's death pipe */
    pid_t zpid;
};

static bool pp_in_task(void *impl);

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

static uint64_t rnd(struct pp *pp)
{
    uint64_t x = pp->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return pp->rng = x;
}

/* A limit spread down by up to recycle_jitter_pct percent (never above the configured one,
 * so a limit is never exceeded). */
static uint64_t jitter(struct pp *pp, uint64_t v)
{
    uint32_t pct = pp->cfg->recycle_jitter_pct;
    if (!v || !pct)
        return v;
    uint64_t cut = (uint64_t)((double)v * pct / 100.0 * (double)(rnd(pp) % 10001) / 10000.0);
    return v - cut > 0 ? v - cut : 1;
}

/* Tell the supervisor there is something new for it (a request in a ring it must watch, a
 * map, a cancel, a shutdown). The flag pairs with sleep_once(): it announces its sleep,
 * fences, and re-reads the flag; we set the flag, fence (in exec__hub_ring) and read its
 * announcement. So either it sees the flag or we see it asleep and ring the doorbell. */
static void kick(struct pp *pp)
{
    if (!atomic_load_explicit(&pp->kick, memory_order_relaxed))
        atomic_store_explicit(&pp->kick, 1, memory_order_seq_cst);
    exec__hub_ring(pp->hub, pp->bell[1]);
}

/* The worker's pid: known from the zygote's event, or published by the worker itself
 * (which may run a task before the supervisor has read that event). */
static int inst_pid(const struct inst *in)
{
    return in->pid ? in->pid : atomic_load_explicit(&in->rg->pid, memory_order_relaxed);
}

static void fin_add(struct pp *pp, struct exec_future *f, int code, exec_state_t end,
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
        exec__future_drop_arg(f);
        exec__future_finish(f, x->end);
    }
    if (x->release)
        exec_future_release(f);
}

static void fins_flush(struct pp *pp)
{
    for (size_t i = 0; i < pp->nfins; i++)
        fin_apply(&pp->fins[i]);
    pp->nfins = 0;
}

/* End a list of futures (linked by their FP(f)->link) with one outcome and drop the
 * backend's references. The list is ours: nobody else sees it. */
static void end_list(struct exec__list *list, int code, int tstatus, int serr)
{
    struct exec__list *l;
    while ((l = exec__list_first(list))) {
        exec__list_remove(l);
        struct exec_future *f = EXEC__CONTAINER_OF(l, struct exec_future, bk.process.link);
        struct fin x = {f, code, 0, -1, tstatus, serr, 0, -1,
                        code == EXEC_ECANCELLED ? EXEC_STATE_CANCELLED : EXEC_STATE_FAILED,
                        true};
        fin_apply(&x);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The FIFO of futures not yet in a ring (pp->lock)                                          */
/* ---------------------------------------------------------------------------------------- */

static void q_push(struct pp *pp, struct exec_future *f, bool front)
{
    FP(f)->where = LOC_QUEUE;
    FP(f)->inst = NULL;
    if (front)
        exec__list_push_front(&pp->queue, &FP(f)->link);
    else
        exec__list_push_back(&pp->queue, &FP(f)->link);
    pp->qlen++;
}

static void q_unlink(struct pp *pp, struct exec_future *f)
{
    exec__list_remove(&FP(f)->link);
    FP(f)->where = LOC_NONE;
    pp->qlen--;
}

static struct exec_future *q_first(struct pp *pp)
{
    struct exec__list *l = exec__list_first(&pp->queue);
    return l ? EXEC__CONTAINER_OF(l, struct exec_future, bk.process.link) : NULL;
}

/* Move the whole FIFO to the end of @out (a list of the caller's). */
static void q_take_all(struct pp *pp, struct exec__list *out)
{
    for (struct exec_future *f = q_first(pp); f; ) {
        struct exec__list *n = exec__list_next(&pp->queue, &FP(f)->link);
        FP(f)->where = LOC_NONE;
        f = n ? EXEC__CONTAINER_OF(n, struct exec_future, bk.process.link) : NULL;
    }
    exec__list_splice(out, &pp->queue);
    pp->qlen = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Maps (core/map.h): ranges of items travel as chunk requests                               */
/* ---------------------------------------------------------------------------------------- */

static void map_list(struct pp *pp, struct exec__map *m)
{
    if (exec__list_unlinked(&m->link))
        exec__list_push_back(&pp->maps, &m->link);
}

static void map_unlist(struct exec__map *m)
{
    if (!exec__list_unlinked(&m->link))
        exec__list_remove(&m->link);
}

/* A claimed range that never started: back to its map to run elsewhere, unless the pool is
 * broken (then it fails like everything else) or a shutdown cancelled the map. */
static void range_back(struct pp *pp, struct exec__map *m, size_t lo, size_t hi)
{
    if (pp->broken)
        exec__map_fail(m, lo, hi, pp->broken_code);
    else if (exec__map_unclaim(m, lo, hi))
        map_list(pp, m);
}

/* End every item of every listed map not claimed yet with @code. */
static void maps_fail_pending(struct pp *pp, int code)
{
    struct exec__list *l;
    while ((l = exec__list_first(&pp->maps))) {
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        map_unlist(m);
        exec__map_fail_unclaimed(m, code); /* may be the map's last touch: unlisted before */
    }
}

/* Whether a listed map still has items to hand out; forget those that have none. */
static bool maps_have_work(struct pp *pp)
{
    struct exec__list *l = exec__list_first(&pp->maps);
    while (l) {
        struct exec__list *next = exec__list_next(&pp->maps, l);
        struct exec__map *m = EXEC__CONTAINER_OF(l, struct exec__map, link);
        if (exec__map_has_work(m))
            return true;
        map_unlist(m);
        l = next;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Worker instances (pp->lock)                                                               */
/* ---------------------------------------------------------------------------------------- */

static struct ent *fifo_at(struct inst *in, uint32_t i)
{
    return &in->fifo[(in->fhead + i) & (DEPTH - 1)];
}

static struct ent *fifo_find(struct inst *in, uint64_t seq)
{
    if (!in->fn)
        return NULL;
    uint64_t first = fifo_at(in, 0)->seq;
    if (seq < first || seq - first >= in->fn)
        return NULL;
    return fifo_at(in, (uint32_t)(seq - first));
}

static bool inst_takes_work(const struct inst *in)
{
    return (in->st == I_SPAWNING || in->st == I_LIVE) && in->fn < DEPTH;
}

static struct inst *cur_inst(struct pp *pp, int s)
{
    struct slot *sl = &pp->slots[s];
    return sl->cur >= 0 ? &sl->in[sl->cur] : NULL;
}

/* The least busy worker that accepts a request now, or NULL. */
static struct inst *pick(struct pp *pp)
{
    struct inst *best = NULL;
    for (int s = 0; s < pp->nslots; s++) {
        struct inst *in = cur_inst(pp, s);
        if (in && inst_takes_work(in) && !in->full && (!best || in->fn < best->fn)) {
            best = in;
            if (!in->fn)
                break;
        }
    }
    return best;
}

static struct exec__req *req_begin(struct inst *in, size_t payload, uint32_t kind)
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

/* Put task @f in @in's ring, its argument copied from @arg (the submitter's bytes, or the
 * copy the future kept while it waited in the FIFO). */
static bool dispatch_task(struct inst *in, struct exec_future *f, const void *arg)
{
    struct exec__req *rq = req_begin(in, f->arg_size, EXEC__REQ_TASK);
    if (!rq)
        return false;
    rq->fn = f->fn;
    rq->arg_size = f->arg_size;
    if (f->arg_size)
        memcpy(rq + 1, arg, f->arg_size);
    if (f->timeout_ms)
        rq->flags |= EXEC__RF_TIMED;
    count_dispatch(in, rq);
    struct ent *e = ent_add(in, rq, EXEC__REQ_TASK);
    e->f = f;
    FP(f)->where = LOC_FIFO;
    FP(f)->inst = in;
    FP(f)->seq = e->seq;
    return true;
}

static bool dispatch_chunk(struct inst *in, struct exec__map *m, size_t lo, size_t hi)
{
    struct exec__req *rq = req_begin(in, (hi - lo) * m->in_size, EXEC__REQ_MAP);
    if (!rq)
        return false;
    rq->fn = m->fn;
    rq->arg_size = m->in_size;
    rq->out_size = m->out_size;
    rq->count = hi - lo;
    memcpy(rq + 1, m->in + lo * m->in_size, (hi - lo) * m->in_size);
    count_dispatch(in, rq);
    struct ent *e = ent_add(in, rq, EXEC__REQ_MAP);
    e->map = m;
    e->lo = lo;
    e->hi = hi;
    return true;
}

/* A task taken back from a ring before it started waits in the FIFO again, at its front. Its
 * argument lived only in the request, whose bytes the ring will reuse: copy it out. */
static void requeue_task(struct pp *pp, struct ent *e, const struct inst *in)
{
    struct exec_future *f = e->f;
    if (exec__future_set_arg(f, e->req + 1, (size_t)e->req->arg_size) != 0) {
        fin_add(pp, f, EXEC_ENOMEM, EXEC_STATE_FAILED, true, in);
        return;
    }
    q_push(pp, f, true);
}

static void flush(struct inst *in)
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
            map_unlist(m);
            continue;
        }
        exec__list_remove(l);
        exec__list_push_back(&pp->maps, l);
        if (dispatch_chunk(in, m, lo, hi))
            return true;
        range_back(pp, m, lo, hi);
        return false;
    }
    *none = true;
    return false;
}

/* Move work from the FIFO and the maps into rings; returns how many requests it sent. */
static int refill(struct pp *pp)
{
    int sent = 0;
    for (;;) {
        struct inst *in = pick(pp);
        if (!in)
            break;
        bool ok, none = false;
        struct exec_future *f = q_first(pp);
        if (f) {
            q_unlink(pp, f);
            ok = dispatch_task(in, f, f->arg);
            if (ok)
                exec__future_drop_arg(f); /* the ring has it now */
            else
                q_push(pp, f, true);
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
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            flush(&pp->slots[s].in[r]);
            pp->slots[s].in[r].full = false; /* submitters pick() too */
        }
    if (pp->space_waiters)
        pthread_cond_broadcast(&pp->cond);
    return sent;
}

/* Take back every request @in has not started; tasks and chunks go back to the front of the
 * FIFO in their order, unless @fail_code: then tasks are failed with it. */
static uint32_t steal(struct pp *pp, struct inst *in, int fail_code)
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
                fin_add(pp, e->f, fail_code, EXEC_STATE_FAILED, true, NULL);
            else
                requeue_task(pp, e, NULL);
            e->f = NULL;
        } else {
            if (fail_code)
                exec__map_fail(e->map, e->lo, e->hi, fail_code);
            else
                range_back(pp, e->map, e->lo, e->hi);
            e->map = NULL;
        }
    }
    return n;
}

static void send_signal(struct pp *pp, struct inst *in, int sig)
{
    if (in->exited)
        return;
    if (!in->pid) {
        in->pending_sig = sig;
        return;
    }
    if (pp->forkserver) {
        struct exec__zmsg m = {EXEC__Z_KILL, in->slot, in->rix, in->pid, sig, in->gen};
        (void)exec__zsend(pp->ctl, &m, true);
    } else if (in->pidfd < 0 || exec__pidfd_kill(in->pidfd, sig) != 0) {
        kill(in->pid, sig); /* not reaped yet (we reap only after it exits): no pid reuse */
    }
}

static void begin_kill(struct pp *pp, struct inst *in, int reason)
{
    in->st = I_KILLING;
    in->reason = reason;
    send_signal(pp, in, SIGTERM);
    in->kill_at = exec__now_ns() + (uint64_t)pp->cfg->kill_grace_ms * 1000000u;
    steal(pp, in, 0);
}

static bool anyone_alive(struct pp *pp)
{
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++)
            if (pp->slots[s].in[r].st != I_FREE)
                return true;
    return false;
}

static bool work_left(struct pp *pp)
{
    if (!exec__list_empty(&pp->queue) || maps_have_work(pp))
        return true;
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++)
            if (pp->slots[s].in[r].fn)
                return true;
    return false;
}

/* The pool stops: fail what waits (FIFO, maps, unstarted requests) with @code. */
static void go_broken(struct pp *pp, int code, int status, int serr, struct exec__list *out)
{
    pp->broken = true;
    pp->broken_code = code;
    pp->broken_status = status;
    pp->broken_errno = serr;
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->st != I_FREE)
                steal(pp, in, code);
        }
    /* steal() failed tasks with a zero status; patch the detail in. */
    for (size_t i = 0; i < pp->nfins; i++)
        if (pp->fins[i].code == code) {
            pp->fins[i].tstatus = status;
            pp->fins[i].serr = serr;
        }
    maps_fail_pending(pp, code);
    if (pp->space_waiters)
        pthread_cond_broadcast(&pp->cond);
    q_take_all(pp, out);
}

/* Make @in ready for a new worker process. */
static void prepare(struct pp *pp, struct slot *sl, int rix)
{
    struct inst *in = &sl->in[rix];
    struct exec__wregion *rg = in->rg;
    exec__ring_init(&rg->req, pp->req_cap);
    exec__ring_init(&rg->cmp, pp->cmp_cap);
    rg->max_rss = jitter(pp, pp->cfg->max_rss_per_child);
    rg->max_age_ns = jitter(pp, pp->cfg->max_age_ms) * 1000000u;
    rg->gen = in->gen = ++pp->gen_next;
    atomic_store(&rg->cur_seq, 0);
    atomic_store(&rg->pid, 0);
    atomic_store(&rg->cur_start_ns, 0);
    atomic_store(&rg->done_seq, 0);
    exec__rq_attach(&in->rq, &rg->req, exec__wregion_req_data(rg), true);
    in->rq.own_lim = true;
    exec__rq_attach(&in->cq, &rg->cmp, exec__wregion_cmp_data(rg), false);
    in->st = I_SPAWNING;
    in->used = true;
    in->pid = 0;
    in->pidfd = -1;
    in->spawn_sent = in->exit_sent = in->exited = in->status_known = in->polled = false;
    in->wstatus = 0;
    in->pending_sig = 0;
    in->seq = 0;
    in->fhead = in->fn = 0;
    in->dispatched = 0;
    in->max_tasks = (uint32_t)jitter(pp, pp->cfg->max_tasks_per_child);
    in->reason = R_NONE;
    in->spawn_ns = exec__now_ns();
    in->seen_seq = in->deadline_ns = in->deadline_seq = in->kill_at = 0;
    in->dirty = false;
    sl->cur = rix;
    pp->alive++;
}

/* Give each slot without a working instance a new one (the spawn itself happens outside the
 * lock); returns how many were prepared into pp->todo. */
static int plan_spawns(struct pp *pp, uint64_t now)
{
    int n = 0;
    if (pp->broken || pp->zygote_dead || (pp->shut && !work_left(pp)) ||
        now < pp->spawn_retry_at)
        return 0;
    for (int s = 0; s < pp->nslots; s++) {
        struct slot *sl = &pp->slots[s];
        struct inst *in = cur_inst(pp, s);
        if (in && (in->st == I_SPAWNING || in->st == I_LIVE))
            continue;
        for (int r = 0; r < 2; r++)
            if (sl->in[r].st == I_FREE) {
                prepare(pp, sl, r);
                break;
            }
    }
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->st != I_FREE && !in->spawn_sent) {
                in->spawn_sent = true;
                pp->todo[n++] = in;
            }
        }
    return n;
}

/* Copy the results and statuses (NULL: all 0) of the first @k items of chunk @e out of a
 * completion laid out by the worker (results, padded to 16, then one int32 status per item),
 * then account for them. */
static void chunk_results(struct exec__map *m, const struct ent *e, const unsigned char *res,
                          const int32_t *st, size_t k)
{
    size_t lo = e->lo, nfail = 0, first = SIZE_MAX;
    if (m->out_size)
        memcpy(m->out + lo * m->out_size, res, k * m->out_size);
    for (size_t i = 0; i < k; i++) {
        int32_t v = st ? st[i] : 0;
        if (m->status)
            m->status[lo + i] = v;
        if (v && !nfail++)
            first = lo + i;
    }
    exec__map_ran(m, lo, lo + k, nfail, first);
}

/* The worker died in the middle of map chunk @e. It reported each item as it finished it
 * (the region's map_seq, map_done, map_cmp words), so the items it finished keep their results,
 * the one it was running fails with EXEC_ECRASHED, and the ones it had not started go back to
 * the map to run on another worker. */
static void chunk_lost(struct pp *pp, struct inst *in, struct ent *e)
{
    struct exec__map *m = e->map;
    size_t count = e->hi - e->lo, k = 0;
    const unsigned char *res = NULL;
    size_t res_bytes = exec__ring_round(count * m->out_size);
    size_t need = sizeof(struct exec__cmp) + res_bytes + count * sizeof(int32_t);
    if (atomic_load_explicit(&in->rg->map_seq, memory_order_acquire) == e->seq) {
        uint64_t off = in->rg->map_cmp;
        k = (size_t)atomic_load_explicit(&in->rg->map_done, memory_order_acquire);
        /* A dying worker may have scribbled anything: believe only what fits. */
        if (k > count || off > pp->cmp_cap || need > pp->cmp_cap - off)
            k = 0;
        res = exec__wregion_cmp_data(in->rg) + off + sizeof(struct exec__cmp);
    }
    /* Order matters: while a later piece is still out, no call here ends the map. */
    if (k)
        chunk_results(m, e, res, (const int32_t *)(res + res_bytes), k);
    if (k == count)
        return; /* it died after its last item, before it could say so */
    exec__map_fail(m, e->lo + k, e->lo + k + 1, EXEC_ECRASHED);
    if (e->lo + k + 1 < e->hi)
        range_back(pp, m, e->lo + k + 1, e->hi);
}

/* A worker process exists no more (or never will): settle its requests. */
static void settle(struct pp *pp, struct inst *in, bool started)
{
    int sig = 0, xst = -1;
    if (in->status_known) {
        if (WIFSIGNALED(in->wstatus))
            sig = WTERMSIG(in->wstatus);
        else if (WIFEXITED(in->wstatus))
            xst = WEXITSTATUS(in->wstatus);
    }
    /* Backwards, so that requests pushed to the front of the FIFO keep their order (and
     * chunks popped from the end of a map's redo stack too). */
    for (uint32_t i = in->fn; i-- > 0;) {
        struct ent *e = fifo_at(in, i);
        if (!e->f && !e->map)
            continue;
        bool ran = atomic_load_explicit(&e->req->state, memory_order_acquire) ==
                   EXEC__RS_RUNNING;
        if (e->f && ran) {
            fin_add(pp, e->f, EXEC_ECRASHED, EXEC_STATE_FAILED, true, in);
            pp->fins[pp->nfins - 1].sig = sig;
            pp->fins[pp->nfins - 1].xst = xst;
        } else if (e->f && pp->broken) {
            fin_add(pp, e->f, pp->broken_code, EXEC_STATE_FAILED, true, in);
        } else if (e->f) {
            requeue_task(pp, e, in); /* never started: it runs elsewhere */
        } else if (ran) {
            chunk_lost(pp, in, e);
        } else {
            range_back(pp, e->map, e->lo, e->hi);
        }
        e->f = NULL;
        e->map = NULL;
    }
    in->fn = 0;

    if (started) {
        int reason = in->reason;
        if (reason == R_NONE) {
            reason = R_LOST;
            if (pp->cfg->crash_limit) {
                uint64_t now = exec__now_ns();
                pp->crashes[pp->ncrash++ % pp->cfg->crash_limit] = now;
                if (pp->ncrash >= pp->cfg->crash_limit) {
                    uint64_t oldest = pp->crashes[pp->ncrash % pp->cfg->crash_limit];
                    if (now - oldest <= (uint64_t)pp->cfg->crash_window_ms * 1000000u)
                        pp->tripped = true; /* the supervisor breaks the pool */
                }
            }
        }
        if (reason != R_SHUTDOWN && reason != R_INIT)
            pp->retired[reason]++;
    }
    if (in->pidfd >= 0)
        close(in->pidfd);
    in->pidfd = -1;
    in->st = I_FREE;
    in->used = false;
    pp->alive--;
    struct slot *sl = &pp->slots[in->slot];
    if (sl->cur == in->rix)
        sl->cur = -1;
}

static void spawn_failed(struct pp *pp, struct inst *in, int err)
{
    settle(pp, in, false);
    pp->spawn_streak++;
    pp->spawn_errno = err;
    uint64_t backoff = (uint64_t)1000000u << (pp->spawn_streak < 10 ? pp->spawn_streak : 10);
    pp->spawn_retry_at = exec__now_ns() + backoff;
    if (pp->spawn_streak >= SPAWN_FAIL_LIMIT && !anyone_alive(pp))
        pp->spawn_gave_up = true;
}

/* ---------------------------------------------------------------------------------------- */
/* Supervisor                                                                                */
/* ---------------------------------------------------------------------------------------- */

static struct inst *find_inst(struct pp *pp, int slot, uint32_t gen)
{
    if (slot < 0 || slot >= pp->nslots)
        return NULL;
    for (int r = 0; r < 2; r++) {
        struct inst *in = &pp->slots[slot].in[r];
        if (in->st != I_FREE && in->gen == gen)
            return in;
    }
    return NULL;
}

/* Zygote events, or exits of our own workers (lock held). @force: the supervisor just woke
 * from poll(), which may have seen the socket or a pidfd ready. */
static bool read_events(struct pp *pp, bool force)
{
    bool any = false;
    if (pp->forkserver) {
        if (pp->zygote_dead)
            return false;
        uint32_t zev = atomic_load_explicit(&pp->hub->zevents, memory_order_acquire);
        if (!force && zev == pp->zev_seen)
            return false;
        pp->zev_seen = zev;
        for (;;) {
            struct exec__zmsg m;
            int r = exec__zrecv(pp->ctl, &m, true);
            if (r == 0)
                break;
            any = true;
            if (r < 0) {
                /* The zygote is gone: so are its workers (PDEATHSIG); nothing can spawn. */
                pp->zygote_dead = true;
                for (int s = 0; s < pp->nslots; s++)
                    for (int k = 0; k < 2; k++) {
                        struct inst *in = &pp->slots[s].in[k];
                        if (in->st != I_FREE)
                            in->exited = true;
                    }
                break;
            }
            struct inst *in = find_inst(pp, m.slot, m.gen);
            if (!in)
                continue;
            switch (m.op) {
            case EXEC__Z_SPAWNED:
                in->pid = m.pid;
                if (in->st == I_SPAWNING)
                    in->st = I_LIVE;
                pp->spawn_streak = 0;
                if (in->pending_sig)
                    send_signal(pp, in, in->pending_sig);
                break;
            case EXEC__Z_SPAWNFAIL:
                spawn_failed(pp, in, m.arg);
                break;
            case EXEC__Z_EXITED:
                in->exited = true;
                in->status_known = true;
                in->wstatus = m.arg;
                break;
            default:
                break;
            }
        }
        return any;
    }
    /* Fork method: our own children, by pid only (never waitpid(-1): not ours to reap).
     * Their pidfds are polled without waiting here (sleep_once() waits on them), at most
     * once a millisecond, so a death is seen even while completions keep the supervisor
     * busy. */
    uint64_t now = exec__now_ns();
    if (!force && now - pp->pidfd_polled_at < 1000000u)
        return false;
    pp->pidfd_polled_at = now;
    int n = 0;
    for (int s = 0; s < pp->nslots; s++)
        for (int k = 0; k < 2; k++) {
            struct inst *in = &pp->slots[s].in[k];
            if (in->st != I_FREE && !in->exited && in->pid && in->pidfd >= 0) {
                pp->pfd[n].fd = in->pidfd;
                pp->pfd[n].events = POLLIN;
                pp->pfd[n].revents = 0;
                pp->pfd_inst[n++] = in;
            }
        }
    if (n && poll(pp->pfd, (nfds_t)n, 0) > 0)
        for (int i = 0; i < n; i++)
            if (pp->pfd[i].revents)
                pp->pfd_inst[i]->polled = true;
    for (int s = 0; s < pp->nslots; s++)
        for (int k = 0; k < 2; k++) {
            struct inst *in = &pp->slots[s].in[k];
            if (in->st == I_FREE || in->exited || !in->pid)
                continue;
            if (in->pidfd >= 0 && !in->polled)
                continue;
            in->polled = false;
            int st = 0;
            pid_t r = waitpid(in->pid, &st, WNOHANG);
            if (r == in->pid) {
                in->exited = in->status_known = true;
                in->wstatus = st;
                any = true;
            } else if (r < 0 && errno == ECHILD) {
                /* SIGCHLD is SIG_IGN (auto-reaped) or someone else reaped it. */
                in->exited = true;
                any = true;
            }
        }
    return any;
}

static void finish_done(struct exec_future *f, const struct exec__cmp *c, const struct inst *in)
{
    if (!exec__future_claim(f, 1u << EXEC_STATE_QUEUED | 1u << EXEC_STATE_RUNNING))
        return;
    exec_state_t end = EXEC_STATE_DONE;
    f->fault.worker_pid = inst_pid(in);
    f->fault.worker_id = in->slot;
    f->fault.code = c->code;
    if (c->code == EXEC_ETASK) {
        f->fault.task_status = c->status;
        end = EXEC_STATE_FAILED;
    } else if (c->code != EXEC_OK) {
        end = EXEC_STATE_FAILED;
    } else if (exec__future_set_result(f, c + 1, (size_t)c->size) != 0) {
        f->fault.code = EXEC_ENOMEM;
        end = EXEC_STATE_FAILED;
    }
    exec__future_drop_arg(f);
    exec__future_finish(f, end);
}

static int reason_of(uint32_t flags)
{
    return flags & EXEC__CF_TASKS ? R_TASKS : flags & EXEC__CF_MEMORY ? R_MEMORY : R_AGE;
}

/* The worker announced it exits: no more requests to it; take back what it will not run. */
static void note_retire(struct pp *pp, struct inst *in, int reason)
{
    if (in->st == I_SPAWNING || in->st == I_LIVE || in->st == I_RETIRING) {
        in->st = I_RETIRING;
        if (in->reason == R_NONE || in->reason == R_TASKS)
            in->reason = reason == R_TASKS && in->reason == R_TASKS ? R_TASKS : reason;
    }
    steal(pp, in, 0);
}

/* Read completions of @in. Returns whether there were any. */
static bool drain(struct pp *pp, struct inst *in)
{
    struct exec__msg *msgs[DRAIN_BATCH];
    struct ent ents[DRAIN_BATCH];
    uint32_t n = 0;
    struct exec__msg *m;
    while (n < DRAIN_BATCH && (m = exec__rq_peek(&in->cq))) {
        msgs[n++] = m;
        exec__rq_next(&in->cq, m);
    }
    if (!n)
        return false;
    struct exec__list broken_list;
    exec__list_init(&broken_list);
    pthread_mutex_lock(&pp->lock);
    for (uint32_t i = 0; i < n; i++) {
        const struct exec__cmp *c = (const struct exec__cmp *)msgs[i];
        memset(&ents[i], 0, sizeof ents[i]);
        if (c->h.kind == EXEC__CMP_DONE || c->h.kind == EXEC__CMP_SKIP) {
            EXEC__ASSERT(in->fn && fifo_at(in, 0)->seq == c->h.seq);
            ents[i] = *fifo_at(in, 0);
            if (ents[i].req->h.size >= DISCARD_MIN) /* the worker is done with it */
                exec__shm_discard(ents[i].req, ents[i].req->h.size);
            in->fhead = (in->fhead + 1) & (DEPTH - 1);
            in->fn--;
            in->rq.lim = ents[i].end; /* its request bytes are free again */
            if (ents[i].f)
                FP(ents[i].f)->where = LOC_NONE;
            if (c->flags)
                note_retire(pp, in, reason_of(c->flags));
        } else if (c->h.kind == EXEC__CMP_RETIRE) {
            note_retire(pp, in, reason_of(c->flags));
        } else if (c->h.kind == EXEC__CMP_INITFAIL) {
            in->reason = R_INIT;
            in->st = I_RETIRING;
            steal(pp, in, 0);
            if (!pp->broken)
                go_broken(pp, EXEC_EBROKEN, c->status, 0, &broken_list);
        }
    }
    refill(pp);
    pthread_mutex_unlock(&pp->lock);

    for (uint32_t i = 0; i < n; i++) {
        const struct exec__cmp *c = (const struct exec__cmp *)msgs[i];
        struct ent *e = &ents[i];
        if (c->h.kind != EXEC__CMP_DONE)
            continue;
        if (e->f) {
            finish_done(e->f, c, in);
            exec_future_release(e->f);
        } else if (e->map) {
            size_t count = e->hi - e->lo;
            const unsigned char *res = (const unsigned char *)(c + 1);
            const int32_t *st = NULL;
            if (c->nfailed)
                st = (const int32_t *)(res + exec__ring_round(count * e->map->out_size));
            chunk_results(e->map, e, res, st, count);
        }
    }
    /* Pages of very large messages go back to the system: a ring sized for 256 MiB messages
     * must not keep them resident after one went through. */
    for (uint32_t i = 0; i < n; i++)
        if (msgs[i]->size >= DISCARD_MIN)
            exec__shm_discard(msgs[i], msgs[i]->size);
    exec__rq_release(&in->cq);
    fins_flush(pp);
    end_list(&broken_list, EXEC_EBROKEN, pp->broken_status, 0);
    return true;
}

/* Deadlines, RUNNING marks, kill escalation, work stealing (lock held). Returns the next
 * time something is due (0 = nothing). */
static uint64_t timers(struct pp *pp, uint64_t now)
{
    uint64_t next = 0;
#define DUE(t) (next = (!next || (t) < next) ? (t) : next)
    struct inst *idle = NULL;
    bool starving = false;
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->st == I_FREE || in->exited)
                continue;
            if (in->st == I_KILLING && in->kill_at) {
                if (now >= in->kill_at) {
                    /* Again every 100 ms until it is gone: a request to the zygote is sent
                     * without blocking and could, in theory, be dropped. */
                    send_signal(pp, in, SIGKILL);
                    in->kill_at = now + 100000000u;
                    DUE(in->kill_at);
                } else {
                    DUE(in->kill_at);
                }
            }
            if (!in->fn) {
                if (inst_takes_work(in))
                    idle = in;
                continue;
            }
            uint64_t cs = atomic_load_explicit(&in->rg->cur_seq, memory_order_acquire);
            if (cs != in->seen_seq) {
                in->seen_seq = cs;
                struct ent *e = fifo_find(in, cs);
                if (e && e->f) {
                    uint32_t st = atomic_load_explicit(&e->f->state, memory_order_relaxed);
                    while ((st & EXEC__ST_MASK) == EXEC_STATE_QUEUED &&
                           !atomic_compare_exchange_weak_explicit(
                               &e->f->state, &st, (st & ~EXEC__ST_MASK) | EXEC_STATE_RUNNING,
                               memory_order_relaxed, memory_order_relaxed))
                        ;
                    if (e->f->timeout_ms) {
                        in->deadline_seq = cs;
                        in->deadline_ns =
                            atomic_load_explicit(&in->rg->cur_start_ns, memory_order_relaxed) +
                            (uint64_t)e->f->timeout_ms * 1000000u;
                    }
                }
            }
            if (in->deadline_ns && in->st != I_KILLING) {
                if (atomic_load_explicit(&in->rg->done_seq, memory_order_acquire) >=
                    in->deadline_seq) {
                    in->deadline_ns = 0;
                } else if (now >= in->deadline_ns) {
                    struct ent *e = fifo_find(in, in->deadline_seq);
                    if (e && e->f) {
                        fin_add(pp, e->f, EXEC_ETIMEDOUT, EXEC_STATE_FAILED, false, in);
                        pp->fins[pp->nfins - 1].sig = SIGTERM;
                    }
                    in->deadline_ns = 0;
                    begin_kill(pp, in, R_TIMEOUT);
                } else {
                    DUE(in->deadline_ns);
                }
            }
            if (in->seen_seq < in->seq) {
                DUE(now + TICK_NS); /* a start we have not seen yet */
                uint64_t t0 = atomic_load_explicit(&in->rg->cur_start_ns, memory_order_relaxed);
                uint64_t done = atomic_load_explicit(&in->rg->done_seq, memory_order_relaxed);
                if (in->fn > 1 && in->st != I_KILLING &&
                    ((done < cs && t0 && now - t0 >= STEAL_AFTER_NS) ||
                     (in->st == I_SPAWNING && now - in->spawn_ns >= STEAL_AFTER_NS)))
                    starving = true;
            }
        }
#undef DUE
    if (idle && starving && exec__list_empty(&pp->queue) && exec__list_empty(&pp->maps)) {
        /* Head-of-line blocking: a worker sits on a long task with requests queued behind
         * it while another worker is idle. Take the queued ones back; refill spreads them. */
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++) {
                struct inst *in = &pp->slots[s].in[r];
                /* Not from a worker whose quota of tasks is all sent: it must run exactly
                 * max_tasks_per_child, the last one flagged. From the others the stolen
                 * requests give their quota back. */
                if (in != idle && (in->st == I_LIVE || in->st == I_SPAWNING) && in->fn > 1 &&
                    !in->exited) {
                    uint64_t t0 = atomic_load_explicit(&in->rg->cur_start_ns,
                                                       memory_order_relaxed);
                    uint64_t done = atomic_load_explicit(&in->rg->done_seq,
                                                         memory_order_relaxed);
                    uint64_t cs = in->seen_seq;
                    if ((done < cs && t0 && now - t0 >= STEAL_AFTER_NS) ||
                        (in->st == I_SPAWNING && now - in->spawn_ns >= STEAL_AFTER_NS))
                        in->dispatched -= steal(pp, in, 0);
                }
            }
    }
    if (pp->spawn_retry_at > now && (next == 0 || pp->spawn_retry_at < next))
        next = pp->spawn_retry_at;
    return next;
}

/* Ask every worker to exit once no work is left after a shutdown; true when all are gone. */
static bool wind_down(struct pp *pp)
{
    if (!pp->shut || work_left(pp))
        return false;
    bool all_free = true;
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->st != I_FREE && !in->spawn_sent)
                settle(pp, in, false); /* prepared, never started: nothing to stop */
            if (in->st == I_FREE)
                continue;
            all_free = false;
            if (in->exit_sent || in->exited || in->st == I_KILLING)
                continue;
            struct exec__req *rq = req_begin(in, 0, EXEC__REQ_EXIT);
            if (!rq)
                continue; /* cannot happen: the ring is empty */
            in->dirty = true;
            in->exit_sent = true;
            if (in->reason == R_NONE)
                in->reason = R_SHUTDOWN;
            if (in->st == I_LIVE || in->st == I_SPAWNING)
                in->st = I_RETIRING;
            flush(in);
        }
    return all_free;
}

static void spawn_one(struct pp *pp, struct inst *in)
{
    if (EXEC__FAULT(EXEC__FAULT_SPAWN)) {
        pthread_mutex_lock(&pp->lock);
        spawn_failed(pp, in, EAGAIN);
        pthread_mutex_unlock(&pp->lock);
        return;
    }
    if (pp->forkserver) {
        struct exec__zmsg m = {EXEC__Z_SPAWN, in->slot, in->rix, 0, 0, in->gen};
        if (exec__zsend(pp->ctl, &m, false) != 0) {
            pthread_mutex_lock(&pp->lock);
            spawn_failed(pp, in, errno);
            pthread_mutex_unlock(&pp->lock);
        }
        return;
    }
    /* Fork method: this thread lives as long as the pool, so the child's PDEATHSIG (which
     * follows the forking thread) fires exactly when the pool or the process goes. */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        exec__set_pdeathsig(SIGKILL);
        if (getppid() != parent)
            _exit(EXEC__WEXIT_SETUP);
        exec__stdio_forget();
        exec__worker_main(&pp->wctx[in->slot * 2 + in->rix]);
    }
    int err = errno;
    pthread_mutex_lock(&pp->lock);
    if (pid < 0) {
        spawn_failed(pp, in, err);
    } else {
        in->pid = pid;
        in->pidfd = exec__pidfd_open(pid);
        if (in->st == I_SPAWNING)
            in->st = I_LIVE;
        pp->spawn_streak = 0;
        if (in->pending_sig)
            send_signal(pp, in, in->pending_sig);
    }
    pthread_mutex_unlock(&pp->lock);
}

static void stop_zygote(struct pp *pp)
{
    if (!pp->forkserver || pp->zpid <= 0)
        return;
    if (!pp->zygote_dead) {
        struct exec__zmsg m = {EXEC__Z_QUIT, 0, 0, 0, 0, 0};
        (void)exec__zsend(pp->ctl, &m, false);
    }
    /* With SIGCHLD ignored this still blocks until the zygote is gone, then says ECHILD. */
    while (waitpid(pp->zpid, NULL, 0) < 0 && errno == EINTR)
        ;
    pp->zpid = 0;
}

static void sleep_once(struct pp *pp, uint64_t due)
{
    int n = 0;
    pp->pfd[n].fd = pp->bell[0];
    pp->pfd[n].events = POLLIN;
    pp->pfd_inst[n++] = NULL;
    if (pp->forkserver && !pp->zygote_dead) {
        pp->pfd[n].fd = pp->ctl;
        pp->pfd[n].events = POLLIN;
        pp->pfd_inst[n++] = NULL;
    }
    bool need_tick = false;
    pthread_mutex_lock(&pp->lock);
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->st == I_FREE || in->exited || pp->forkserver || !in->pid)
                continue;
            if (in->pidfd < 0) {
                need_tick = true;
                continue;
            }
            pp->pfd[n].fd = in->pidfd;
            pp->pfd[n].events = POLLIN;
            pp->pfd_inst[n++] = in;
        }
    pthread_mutex_unlock(&pp->lock);

    /* Announce the sleep, then look again (seq_cst both: see kick() and exec__hub_ring()). */
    atomic_store_explicit(&pp->hub->sleeping, 1, memory_order_seq_cst);
    bool ready = atomic_exchange_explicit(&pp->kick, 0, memory_order_seq_cst);
    for (int s = 0; s < pp->nslots && !ready; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
            if (in->used &&
                atomic_load_explicit(&in->rg->cmp.tail, memory_order_seq_cst) != in->cq.pos)
                ready = true;
        }
    if (!ready) {
        int timeout = -1;
        uint64_t now = exec__now_ns();
        if (need_tick && (!due || due > now + 10000000u))
            due = now + 10000000u;
        if (due)
            timeout = due > now ? (int)((due - now + 999999u) / 1000000u) : 0;
        int r = poll(pp->pfd, (nfds_t)n, timeout);
        if (r > 0)
            for (int i = 0; i < n; i++)
                if (pp->pfd_inst[i] && pp->pfd[i].revents)
                    pp->pfd_inst[i]->polled = true;
    }
    atomic_store_explicit(&pp->hub->sleeping, 0, memory_order_relaxed);
    exec__event_drain(pp->bell[0]);
    pp->woke = true;
    if (need_tick)
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++)
                pp->slots[s].in[r].polled = true;
}

/* After activity, poll the completion rings and the kick flag for a while (yielding the CPU
 * between looks) before sleeping: a completion or a submission that comes soon then costs
 * no wake-up. A submit-wait loop thus pays one wake-up per round trip (the waiter's), not
 * three. An idle pool spins once, then sleeps until something happens. */
static bool spin(struct pp *pp)
{
    uint64_t until = exec__now_ns() + SUP_SPIN_NS;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&pp->kick, memory_order_relaxed) &&
            atomic_exchange_explicit(&pp->kick, 0, memory_order_relaxed))
            return true;
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++) {
                struct inst *in = &pp->slots[s].in[r];
                if (in->used &&
                    atomic_load_explicit(&in->rg->cmp.tail, memory_order_relaxed) !=
                        in->cq.pos)
                    return true;
            }
        if (i & 7) {
            exec__cpu_relax();
            continue;
        }
        if (exec__now_ns() >= until)
            return false;
        exec__yield();
    }
}

static void *sup_main(void *arg)
{
    struct pp *pp = arg;
    /* A done-callback that waits on a future of this executor reaches pp_wait (EDEADLK)
     * instead of sleeping forever on the thread that would have to finish it. */
    exec__tls_core = pp->core;
    for (;;) {
        bool busy = false;
        struct exec__list failed;
        exec__list_init(&failed);
        int fail_code = 0;

        pthread_mutex_lock(&pp->lock);
        busy |= read_events(pp, pp->woke);
        pp->woke = false;
        pthread_mutex_unlock(&pp->lock);

        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++) {
                struct inst *in = &pp->slots[s].in[r];
                if (in->used)
                    while (drain(pp, in))
                        busy = true;
            }

        uint64_t now = exec__now_ns();
        pthread_mutex_lock(&pp->lock);
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++) {
                struct inst *in = &pp->slots[s].in[r];
                if (in->st != I_FREE && in->exited &&
                    atomic_load_explicit(&in->rg->cmp.tail, memory_order_acquire) ==
                        in->cq.pos) {
                    settle(pp, in, true);
                    busy = true;
                }
            }
        if (pp->tripped && !pp->broken) {
            go_broken(pp, EXEC_EBROKEN, 0, 0, &failed); /* crash-loop breaker */
            fail_code = EXEC_EBROKEN;
        } else if (pp->zygote_dead && !pp->broken) {
            go_broken(pp, EXEC_EBROKEN, 0, 0, &failed);
            fail_code = EXEC_EBROKEN;
        } else if (pp->spawn_gave_up) {
            /* Workers cannot be made (after SPAWN_FAIL_LIMIT tries with growing pauses):
             * fail what waits rather than strand it. Later submits wait for the next try,
             * at most about a second away, and fail the same way if it fails too. */
            pp->spawn_gave_up = false;
            q_take_all(pp, &failed);
            fail_code = EXEC_ESYS;
            maps_fail_pending(pp, EXEC_ESYS);
        }
        uint64_t due = timers(pp, now);
        int nspawn = plan_spawns(pp, now);
        if (refill(pp))
            busy = true; /* timers() must see the new requests (their starts, deadlines) */
        bool done = wind_down(pp);
        int serr = pp->spawn_errno;
        pthread_mutex_unlock(&pp->lock);

        fins_flush(pp);
        if (fail_code)
            end_list(&failed, fail_code, fail_code == EXEC_EBROKEN ? pp->broken_status : 0,
                     fail_code == EXEC_ESYS ? serr : 0);
        for (int i = 0; i < nspawn; i++)
            spawn_one(pp, pp->todo[i]);
        if (nspawn)
            busy = true;
        if (done) {
            stop_zygote(pp);
            pthread_mutex_lock(&pp->lock);
            pp->stopped = true;
            pthread_cond_broadcast(&pp->cond);
            pthread_mutex_unlock(&pp->lock);
            return NULL;
        }
        if (!busy && !spin(pp))
            sleep_once(pp, due);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Operations                                                                                */
/* ---------------------------------------------------------------------------------------- */

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
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++)
                free(pp->slots[s].in[r].fifo);
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

static int start_zygote(struct pp *pp)
{
    int sv[2], dp[2];
    if (exec__seqpacket_pair(sv) != 0)
        return EXEC_ESYS;
    if (exec__pipe_cloexec(dp) != 0) {
        close(sv[0]);
        close(sv[1]);
        return EXEC_ESYS;
    }
    struct exec__zygote_cfg z = {pp->hub, sv[1], dp[0], pp->bell[1], pp->nslots, pp->wctx};
    sigset_t old;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the zygote starts with signals blocked */
    pid_t pid = fork();
    if (pid == 0)
        exec__zygote_main(&z);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    close(dp[0]);
    if (pid < 0) {
        close(sv[0]);
        close(dp[1]);
        errno = err;
        return EXEC_ESYS;
    }
    pp->zpid = pid;
    pp->ctl = sv[0];
    pp->death_w = dp[1];
    return 0;
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

    /* Ring sizes: the largest message must fit in half a ring. */
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
        goto fail;
    pp->hub = (struct exec__hub *)pp->shm;
    if (exec__event_open(pp->bell) != 0) {
        r = EXEC_ESYS;
        goto fail;
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
                goto fail;
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
    pthread_mutex_init(&pp->lock, NULL);
    pthread_cond_init(&pp->cond, NULL);
    if (pp->forkserver) {
        r = start_zygote(pp);
        if (r)
            goto fail_locks;
    }
    /* Prepare every slot now so that the first submits go straight into rings; the
     * supervisor makes the processes. */
    pthread_mutex_lock(&pp->lock);
    (void)plan_spawns(pp, exec__now_ns());
    for (int s = 0; s < pp->nslots; s++)
        for (int k = 0; k < 2; k++)
            pp->slots[s].in[k].spawn_sent = false;
    pthread_mutex_unlock(&pp->lock);
    if (exec__thread_start(&pp->sup, 0, sup_main, pp) != 0) {
        r = EXEC_ESYS;
        stop_zygote(pp);
        goto fail_locks;
    }
    pp->sup_started = true;
    *impl = pp;
    return EXEC_OK;

fail_locks:
    pthread_mutex_destroy(&pp->lock);
    pthread_cond_destroy(&pp->cond);
fail:
    close_fds(pp);
    pp_free(pp);
    return r;
}

/* Requests waiting for a worker (FIFO, and rings not taken yet); *running: being run. */
static size_t count_work(struct pp *pp, uint64_t *running)
{
    size_t n = pp->qlen;
    uint64_t run = 0;
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            struct inst *in = &pp->slots[s].in[r];
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

static size_t waiting(struct pp *pp)
{
    return count_work(pp, NULL);
}

static int pp_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    if (EXEC__UNLIKELY(pp->cfg->queue_max) && !pp_in_task(pp)) {
        while (!pp->shut && !pp->broken && waiting(pp) >= pp->cfg->queue_max) {
            if (flags & EXEC_SUBMIT_TRY) {
                pthread_mutex_unlock(&pp->lock);
                return EXEC_EAGAIN;
            }
            pp->space_waiters++;
            pthread_cond_wait(&pp->cond, &pp->lock);
            pp->space_waiters--;
        }
    }
    if (EXEC__UNLIKELY(pp->shut || pp->broken)) {
        int r = pp->shut ? EXEC_ESHUTDOWN : EXEC_EBROKEN;
        pthread_mutex_unlock(&pp->lock);
        return r;
    }
    /* The argument is copied once: straight into a ring with room, or else into the future,
     * where it waits for one (and from where refill() copies it into the ring). */
    struct inst *in = exec__list_empty(&pp->queue) ? pick(pp) : NULL;
    if (in && dispatch_task(in, f, arg)) {
        pp->submitted++;
        flush(in);
        pthread_mutex_unlock(&pp->lock);
        /* Wake a sleeping supervisor now, in parallel with the worker: it then waits for
         * the completion spinning, and the round trip costs two wake-ups, not three. (It
         * must also see the start, to mark the future RUNNING.) */
        kick(pp);
        return EXEC_OK;
    }
    if (EXEC__UNLIKELY(exec__future_set_arg(f, arg, f->arg_size) != 0)) {
        pthread_mutex_unlock(&pp->lock);
        return EXEC_ENOMEM;
    }
    pp->submitted++;
    q_push(pp, f, false);
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
            q_unlink(pp, f);
            end = release = true;
            r = EXEC_OK;
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
                }
            } else if ((flags & EXEC_CANCEL_RUNNING) &&
                       exec__future_claim(f, 1u << EXEC_STATE_QUEUED |
                                                 1u << EXEC_STATE_RUNNING)) {
                /* The worker runs it: kill and replace the worker. The entry keeps the
                 * backend's reference until the supervisor settles the worker. */
                end = true;
                r = EXEC_OK;
                f->fault.worker_pid = inst_pid(in);
                f->fault.worker_id = in->slot;
                if (in->st != I_KILLING)
                    begin_kill(pp, in, R_TIMEOUT);
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
        /* The core cancelled the maps already: their ranges come back cancelled. */
        q_take_all(pp, &cancelled);
        /* Requests in rings that no worker took yet are cancelled too. */
        for (int s = 0; s < pp->nslots; s++)
            for (int r = 0; r < 2; r++) {
                struct inst *in = &pp->slots[s].in[r];
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
                        range_back(pp, e->map, e->lo, e->hi);
                        e->map = NULL;
                    }
                }
            }
    }
    pthread_cond_broadcast(&pp->cond);
    pthread_mutex_unlock(&pp->lock);
    end_list(&cancelled, EXEC_ECANCELLED, 0, 0);
    kick(pp);
    if (flags & EXEC_SHUTDOWN_NOWAIT)
        return EXEC_OK;
    pthread_mutex_lock(&pp->lock);
    while (!pp->stopped)
        pthread_cond_wait(&pp->cond, &pp->lock);
    pthread_mutex_unlock(&pp->lock);
    return EXEC_OK;
}

static void pp_destroy(void *impl)
{
    struct pp *pp = impl;
    if (pp->sup_started)
        pthread_join(pp->sup, NULL);
    stop_zygote(pp);
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
    st->queued = count_work(pp, &running);
    for (int s = 0; s < pp->nslots; s++)
        for (int r = 0; r < 2; r++) {
            const struct inst *in = &pp->slots[s].in[r];
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

/* ---------------------------------------------------------------------------------------- */
/* exec_map: the core's driver hands maps over, the supervisor sends their chunks           */
/* ---------------------------------------------------------------------------------------- */

static int pp_map_start(void *impl, struct exec__map *m)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    if (pp->shut || pp->broken) {
        int r = pp->shut ? EXEC_ESHUTDOWN : EXEC_EBROKEN;
        pthread_mutex_unlock(&pp->lock);
        return r;
    }
    map_list(pp, m);
    refill(pp);
    pthread_mutex_unlock(&pp->lock);
    kick(pp);
    return EXEC_OK;
}

static void pp_map_end(void *impl, struct exec__map *m)
{
    struct pp *pp = impl;
    pthread_mutex_lock(&pp->lock);
    map_unlist(m);
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
    if (c->init_arg_size > c->max_arg_size)
        return EXEC_ETOOBIG;
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
};
