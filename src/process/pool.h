/* SPDX-License-Identifier: MIT */
/*
 * process/pool.h - the process backend, parent side: what its files share. The parts:
 *   pool.c       create, destroy and the operations table (submit, cancel, shutdown, stats, maps)
 *   dispatch.c   what waits and where it goes: the FIFO, maps, requests into rings, taking back
 *   spawn.c      worker lifetimes: preparing, spawning, killing, settling a dead worker
 *   supervise.c  the supervisor thread: completions, events, deadlines, sleeping
 *   tracing.c    what the trace shows of it (core/trace.h): the supervisor records every event
 *   worker.c     the child side; zygote.c the forkserver; ring.c the transport (proto.h)
 * Nothing here is API; nothing outside src/process/ includes it.
 *
 * Processes. exec_create() maps one shared anonymous region (MAP_SHARED|MAP_ANONYMOUS: no
 * name, nothing in /dev/shm, inherited by every later fork) holding a doorbell word and, for
 * each worker slot, two "worker regions" of two rings each. With the forkserver start method
 * it then forks the zygote (zygote.c), which forks every worker; with the fork method
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
 * for what waits and what comes). A worker says in its region how far it got before its loop
 * (set-up, initializer, ready). An initializer that fails (returns non-zero, or the worker
 * dies while in it) breaks the pool at once (EXEC_EBROKEN, how it ended in task_status,
 * exit_status or signal): it would fail in every worker, and respawning would only loop. A
 * worker that dies in its own set-up counts as a failed spawn. A broken pool fails what waits,
 * lets running tasks finish, then asks every worker to exit (and kills those still in their
 * initializer); the supervisor then ends as after a shutdown. A spawn that fails is retried
 * after 2, 4, ... ms (up to 1 s);
 * after SPAWN_FAIL_LIMIT failures in a row with no worker left, what waits fails with
 * EXEC_ESYS (errno in sys_errno) instead of waiting forever, and later submits wait for the
 * next try. If the zygote dies, its workers die with it and the pool is broken.
 *
 * Hygiene. No signal handler in the parent; the parent reaps only its own children by pid
 * (the zygote; or, with the fork method, each worker through its pidfd), so SIGCHLD may be
 * SIG_IGN or handled by the application. All fds are close-on-exec from birth; the
 * supervisor runs with asynchronous signals blocked; every blocking call retries on EINTR.
 */
#ifndef EXEC_PROCESS_POOL_H
#define EXEC_PROCESS_POOL_H

#include "process/proto.h"

#include "core/backend.h"
#include "core/trace.h"

#define DEPTH 64u            /* requests in flight per worker (power of two) */
#define DRAIN_BATCH 64u      /* completions handled per lock round */
#define TICK_NS 2000000u     /* supervisor tick while starts may be unobserved */
#define STEAL_AFTER_NS 2000000u
#ifndef SUP_SPIN_NS
#define SUP_SPIN_NS 50000u /* supervisor polls this long before sleeping */
#endif
#define RING_MIN ((size_t)1 << 20)
#define SPAWN_FAIL_LIMIT 5   /* failed spawns in a row with no worker alive: fail the queue */
/* Give back the shm pages of messages this big after use. Smaller ones keep their pages:
 * arguments of 1-4 MiB that refault 256-1024 pages in the parent and the worker on every
 * task moved at a twentieth of the thread backend's speed (issue 11). A ring is then at most
 * fully resident when it is under 2 * DISCARD_MIN (rings are 2x max_arg_size rounded up). */
#define DISCARD_MIN ((size_t)8 << 20)
/* Copies of big arguments (EXEC__BIG_MIN bytes and more) waiting in the FIFO, at most: beyond
 * it a submitter waits for a ring to take its argument directly. A deep FIFO of copies made
 * every task's argument fresh memory, copied twice (issue 11: 4 MiB arguments in windows
 * of 256 moved at 1.2 GB/s with 1,000 page faults per task; straight into a ring, 11-18). */
#ifndef QBIG_MAX
#define QBIG_MAX ((size_t)4 << 20)
#endif

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
    /* What the parent wrote in the request, kept here: the worker can overwrite the ring. */
    uint32_t rsize;  /* bytes of the request message */
    size_t arg_size; /* task: argument bytes */
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
    bool tnamed; /* its track is named in the trace */
    bool ready;  /* seen in its loop (rg->phase READY): the spawn succeeded */
    bool bad;    /* it wrote an impossible completion (decode.c): killed, its ring ignored */
    bool said_retire; /* it said it retires (a completion's flags, or RETIRE) */
    /* A submitter copies a big argument into a request it reserved, without pp->lock
     * (pool.c, send_big()). Meanwhile nothing else touches this ring's producer side: no
     * other request is reserved or published, and the worker's end is not settled. */
    bool writing;
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
    int cause; /* exec_cause_t */
};

struct pp {
    struct exec *core;
    const exec_config_t *cfg;
    bool forkserver;

    pthread_mutex_t lock; /* protects everything below up to `sup` unless noted */
    pthread_cond_t cond;  /* stopped; queue space */
    struct exec__list queue; /* futures waiting for a ring (their FP(f)->link) */
    size_t qlen;
    size_t qbig; /* bytes of the big arguments (>= EXEC__BIG_MIN) copied into queued futures */
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
    /* Why the pool broke (EXEC_EBROKEN): the detail every future it fails gets. */
    int broken_cause, broken_status, broken_sig, broken_xst;
    size_t space_waiters;
    size_t big_waiters; /* of them, submitters of big arguments (woken at QBIG_MAX / 2) */
    size_t writers;     /* instances with `writing` set; a cancelling shutdown waits for 0 */
    uint64_t submitted, retired[8], alive;
    uint64_t *crashes; /* ring of crash times (crash_limit entries) */
    uint32_t ncrash;
    int spawn_streak, spawn_errno;
    uint64_t spawn_retry_at;
    uint64_t rng;

    /* Trace (NULL when not tracing): the supervisor's lane, and the shared lane's owner. */
    struct exec__trace *trace;
    struct exec__tlane *tl;

    /* Supervisor. */
    pthread_t sup;
    bool sup_started;
    _Atomic int kick;
    struct fin *fins; /* supervisor's scratch; fins_next: the first one not applied yet */
    size_t nfins, fins_next, fins_cap;
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

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Every worker instance of @pp, two per slot. */
#define FOR_EACH_INST(pp, in)                                                             \
    for (int s_##in = 0; s_##in < (pp)->nslots; s_##in++)                                 \
        for (struct inst *in = &(pp)->slots[s_##in].in[0]; in <= &(pp)->slots[s_##in].in[1]; \
             in++)

/* Tell the supervisor there is something new for it (a request in a ring it must watch, a
 * map, a cancel, a shutdown). The flag pairs with sleep_once(): it announces its sleep,
 * fences, and re-reads the flag; we set the flag, fence (in exec__hub_ring) and read its
 * announcement. So either it sees the flag or we see it asleep and ring the doorbell. */
static inline void kick(struct pp *pp)
{
    if (!atomic_load_explicit(&pp->kick, memory_order_relaxed))
        atomic_store_explicit(&pp->kick, 1, memory_order_seq_cst);
    exec__hub_ring(pp->hub, pp->bell[1]);
}

/* The worker's pid: known from the zygote's event, or published by the worker itself
 * (which may run a task before the supervisor has read that event). */
static inline int inst_pid(const struct inst *in)
{
    return in->pid ? in->pid : atomic_load_explicit(&in->rg->pid, memory_order_relaxed);
}

static inline struct ent *fifo_at(struct inst *in, uint32_t i)
{
    return &in->fifo[(in->fhead + i) & (DEPTH - 1)];
}

static inline struct ent *fifo_find(struct inst *in, uint64_t seq)
{
    if (!in->fn)
        return NULL;
    uint64_t first = fifo_at(in, 0)->seq;
    if (seq < first || seq - first >= in->fn)
        return NULL;
    return fifo_at(in, (uint32_t)(seq - first));
}

static inline bool inst_takes_work(const struct inst *in)
{
    return (in->st == I_SPAWNING || in->st == I_LIVE) && in->fn < DEPTH && !in->writing;
}

/* Whether @in may be sent its next request now. The request that retires it
 * (max_tasks_per_child) waits until the slot's previous worker is reaped (the zygote's
 * EXITED event, or our waitpid): a worker that retires for its quota then never dies while
 * its predecessor is still a zombie, so steady recycling leaves at most one zombie per slot
 * (with max_tasks_per_child = 1 a slot's new worker starts its task once the old one is
 * gone, which also keeps the tasks running at once at the worker count). */
static inline bool inst_may_take(const struct pp *pp, const struct inst *in)
{
    if (!inst_takes_work(in))
        return false;
    if (!in->max_tasks || in->dispatched + 1 < in->max_tasks)
        return true;
    const struct inst *prev = &pp->slots[in->slot].in[1 - in->rix];
    return prev->st == I_FREE || prev->exited;
}

static inline struct inst *cur_inst(struct pp *pp, int s)
{
    struct slot *sl = &pp->slots[s];
    return sl->cur >= 0 ? &sl->in[sl->cur] : NULL;
}

/* dispatch.c: the FIFO, maps, requests into rings (pp->lock unless noted) */
void exec__pp_fin_add(struct pp *pp, struct exec_future *f, int code, exec_state_t end,
                      bool release, const struct inst *in);
void exec__pp_fins_flush(struct pp *pp);
void exec__pp_end_list(struct exec__list *list, const struct fin *how);
void exec__pp_broken_detail(const struct pp *pp, struct fin *x);
void exec__pp_q_push(struct pp *pp, struct exec_future *f, bool front);
void exec__pp_q_unlink(struct pp *pp, struct exec_future *f);
void exec__pp_q_take_all(struct pp *pp, struct exec__list *out);
void exec__pp_map_list(struct pp *pp, struct exec__map *m);
void exec__pp_map_unlist(struct exec__map *m);
void exec__pp_range_back(struct pp *pp, struct exec__map *m, size_t lo, size_t hi);
void exec__pp_maps_fail_pending(struct pp *pp, int code);
bool exec__pp_maps_have_work(struct pp *pp);
struct inst *exec__pp_pick(struct pp *pp);
struct exec__req *exec__pp_req_begin(struct inst *in, size_t payload, uint32_t kind);
bool exec__pp_dispatch_task(struct inst *in, struct exec_future *f, const void *arg);
/* dispatch_task() in two steps, for a copy made without pp->lock (pool.c, send_big()). */
struct exec__req *exec__pp_task_reserve(struct inst *in, struct exec_future *f);
void exec__pp_task_commit(struct inst *in, struct exec_future *f, struct exec__req *rq);
void exec__pp_requeue_task(struct pp *pp, struct ent *e, const struct inst *in);
void exec__pp_flush(struct inst *in);
int exec__pp_refill(struct pp *pp);
uint32_t exec__pp_steal(struct pp *pp, struct inst *in, int fail_code);
size_t exec__pp_count_work(struct pp *pp, uint64_t *running);

/* decode.c: the parent's checks of what a worker wrote (pure; see the top of decode.c) */
/* A completion as the parent reads it: its header copied out of the ring once (the worker may
 * still write there), the size of its message as peek() checked it, where its payload is. */
struct exec__cmpv {
    struct exec__cmp h;
    uint32_t msize;
    unsigned char *msg; /* in the ring; the payload follows the header */
};
/* Read up to @max completions from ring view @q. A message too short for a completion's
 * header sets q->bad, as broken framing does (see exec__rq_peek()). */
uint32_t exec__pp_cmp_read(struct exec__rq *q, struct exec__cmpv *out, uint32_t max);
/* Whether @v is a completion the parent can act on: @e is the oldest request in flight (NULL
 * if none), @max_result the pool's result capacity. */
bool exec__pp_cmp_ok(const struct exec__cmpv *v, const struct ent *e, size_t max_result);
/* How many items of map chunk @e (results of @out_size bytes) a dead worker finished, from the
 * progress words of its region; 0 unless they describe a completion that fits the ring. */
size_t exec__pp_chunk_done(const struct ent *e, size_t out_size, uint64_t map_seq,
                           uint64_t map_done, uint64_t map_cmp, uint64_t cmp_cap);

/* spawn.c: worker lifetimes */
void exec__pp_send_signal(struct pp *pp, struct inst *in, int sig);
void exec__pp_begin_kill(struct pp *pp, struct inst *in, int reason);
bool exec__pp_work_left(struct pp *pp);
void exec__pp_go_broken(struct pp *pp, int cause, int status, int sig, int xst,
                        struct exec__list *out);
bool exec__pp_settle_early(struct pp *pp, struct inst *in, struct exec__list *broken);
int exec__pp_plan_spawns(struct pp *pp, uint64_t now);
void exec__pp_chunk_results(struct exec__map *m, const struct ent *e, const unsigned char *res,
                            const int32_t *st, size_t k);
void exec__pp_settle(struct pp *pp, struct inst *in, bool started);
void exec__pp_spawn_failed(struct pp *pp, struct inst *in, int err);
void exec__pp_note_ready(struct pp *pp, struct inst *in);
void exec__pp_spawn_one(struct pp *pp, struct inst *in);
void exec__pp_stop_zygote(struct pp *pp);
int exec__pp_start_zygote(struct pp *pp);

/* tracing.c: trace events (the supervisor's, unless said; each a no-op when not tracing) */
void exec__pp_trace_started(struct pp *pp, struct inst *in);
void exec__pp_trace_done(struct pp *pp, struct inst *in, const struct ent *e,
                         const struct exec__cmp *c, int code);
void exec__pp_trace_lost(struct pp *pp, struct inst *in, const struct ent *e);
void exec__pp_trace_exit(struct pp *pp, struct inst *in, int reason, int sig, int xst,
                         uint64_t seq);
void exec__pp_trace_deadline(struct pp *pp, struct inst *in, const struct exec_future *f);
/* Any thread (the shared lane). */
void exec__pp_trace_cancel(struct pp *pp, const struct exec_future *f, const struct inst *in,
                           int when);
void exec__pp_trace_cancel_list(struct pp *pp, struct exec__list *list);

/* supervise.c: the supervisor thread */
void *exec__pp_sup_main(void *arg);
/* On the supervisor thread (a done-callback that waits for a shutdown): run the supervisor's
 * rounds until no task or chunk is left. */
void exec__pp_sup_wait_idle(struct pp *pp);

#endif /* EXEC_PROCESS_POOL_H */
