/* SPDX-License-Identifier: MIT */
/*
 * process/spawn.c - worker lifetimes: preparing an instance for a new worker (limits with
 * jitter), spawning it (through the zygote or by fork), signalling and killing it, and
 * settling what it leaves when it is gone (crashed tasks, a chunk cut in the middle, requests
 * it never started), the crash-loop breaker and a pool that breaks. See process/pool.h.
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

void exec__pp_send_signal(struct pp *pp, struct inst *in, int sig)
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

void exec__pp_begin_kill(struct pp *pp, struct inst *in, int reason)
{
    in->st = I_KILLING;
    in->reason = reason;
    exec__pp_send_signal(pp, in, SIGTERM);
    in->kill_at = exec__now_ns() + (uint64_t)pp->cfg->kill_grace_ms * 1000000u;
    exec__pp_steal(pp, in, 0);
}

static bool anyone_alive(struct pp *pp)
{
    FOR_EACH_INST(pp, in)
        if (in->st != I_FREE)
            return true;
    return false;
}

bool exec__pp_work_left(struct pp *pp)
{
    if (!exec__list_empty(&pp->queue) || exec__pp_maps_have_work(pp))
        return true;
    FOR_EACH_INST(pp, in)
        if (in->fn || in->writing)
            return true;
    return false;
}

/* The pool breaks (@cause, an exec_cause_t, and for the initializer how it ended): fail what
 * waits (FIFO, maps, unstarted requests) with EXEC_EBROKEN; the FIFO's futures go to @out,
 * to be ended with exec__pp_broken_detail() outside the lock. Running tasks finish; then
 * wind_down() makes every worker leave. */
void exec__pp_go_broken(struct pp *pp, int cause, int status, int sig, int xst,
                        struct exec__list *out)
{
    pp->broken = true;
    pp->broken_cause = cause;
    pp->broken_status = status;
    pp->broken_sig = sig;
    pp->broken_xst = xst;
    size_t first = pp->nfins;
    FOR_EACH_INST(pp, in) {
        if (in->st != I_FREE)
            exec__pp_steal(pp, in, EXEC_EBROKEN);
    }
    /* steal() failed tasks without detail; patch it in. */
    for (size_t i = first; i < pp->nfins; i++)
        if (pp->fins[i].code == EXEC_EBROKEN)
            exec__pp_broken_detail(pp, &pp->fins[i]);
    exec__pp_maps_fail_pending(pp, EXEC_EBROKEN);
    if (pp->space_waiters)
        pthread_cond_broadcast(&pp->cond);
    exec__pp_q_take_all(pp, out);
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
    atomic_store(&rg->phase, EXEC__WPHASE_SETUP);
    atomic_store(&rg->setup_errno, 0);
    atomic_store(&rg->stop_seq, UINT64_MAX);
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
    in->tnamed = false;
    in->ready = false;
    in->bad = false;
    in->said_retire = false;
    rg->trace = pp->tl != NULL;
    sl->cur = rix;
    pp->alive++;
}

/* Give each slot without a working instance a new one (the spawn itself happens outside the
 * lock); returns how many were prepared into pp->todo. */
int exec__pp_plan_spawns(struct pp *pp, uint64_t now)
{
    int n = 0;
    if (pp->broken || pp->zygote_dead || (pp->shut && !exec__pp_work_left(pp)) ||
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
    FOR_EACH_INST(pp, in) {
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
void exec__pp_chunk_results(struct exec__map *m, const struct ent *e, const unsigned char *res,
                            const int32_t *st, size_t k)
{
    size_t lo = e->lo, nfail = 0, first = SIZE_MAX;
    unsigned char *out = exec__map_out(m, lo);
    int *status = exec__map_status(m, lo);
    if (out)
        memcpy(out, res, k * m->out_size);
    for (size_t i = 0; i < k; i++) {
        int32_t v = st ? st[i] : 0;
        if (status)
            status[i] = v;
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
    size_t count = e->hi - e->lo;
    size_t res_bytes = exec__ring_round(count * m->out_size);
    /* A dying worker may have scribbled anything: believe only what fits (decode.c). */
    uint64_t seq = atomic_load_explicit(&in->rg->map_seq, memory_order_acquire);
    uint64_t done = atomic_load_explicit(&in->rg->map_done, memory_order_acquire);
    uint64_t off = in->rg->map_cmp;
    size_t k = exec__pp_chunk_done(e, m->out_size, seq, done, off, pp->cmp_cap);
    /* Order matters: while a later piece is still out, no call here ends the map. */
    if (k) {
        const unsigned char *res = exec__wregion_cmp_data(in->rg) + off + sizeof(struct exec__cmp);
        exec__pp_chunk_results(m, e, res, (const int32_t *)(res + res_bytes), k);
    }
    if (k == count)
        return; /* it died after its last item, before it could say so */
    exec__map_fail(m, e->lo + k, e->lo + k + 1, EXEC_ECRASHED);
    if (e->lo + k + 1 < e->hi)
        exec__pp_range_back(pp, m, e->lo + k + 1, e->hi);
}

/* A worker process exists no more (or never will): settle its requests. */
void exec__pp_settle(struct pp *pp, struct inst *in, bool started)
{
    int sig = 0, xst = -1;
    if (in->status_known) {
        if (WIFSIGNALED(in->wstatus))
            sig = WTERMSIG(in->wstatus);
        else if (WIFEXITED(in->wstatus))
            xst = WEXITSTATUS(in->wstatus);
    }
    uint64_t ran_seq = 0;
    /* Backwards, so that requests pushed to the front of the FIFO keep their order (and
     * chunks popped from the end of a map's redo stack too). */
    for (uint32_t i = in->fn; i-- > 0;) {
        struct ent *e = fifo_at(in, i);
        if (!e->f && !e->map)
            continue;
        bool ran = atomic_load_explicit(&e->req->state, memory_order_acquire) ==
                   EXEC__RS_RUNNING;
        if (ran) {
            exec__pp_trace_lost(pp, in, e);
            if (e->f)
                ran_seq = e->f->tseq;
        }
        if (e->f && ran) {
            exec__pp_fin_add(pp, e->f, EXEC_ECRASHED, EXEC_STATE_FAILED, true, in);
            pp->fins[pp->nfins - 1].sig = sig;
            pp->fins[pp->nfins - 1].xst = xst;
        } else if (e->f && pp->broken) {
            exec__pp_fin_add(pp, e->f, EXEC_EBROKEN, EXEC_STATE_FAILED, true, in);
            exec__pp_broken_detail(pp, &pp->fins[pp->nfins - 1]);
        } else if (e->f) {
            exec__pp_requeue_task(pp, e, in); /* never started: it runs elsewhere */
        } else if (ran) {
            chunk_lost(pp, in, e);
        } else {
            exec__pp_range_back(pp, e->map, e->lo, e->hi);
        }
        e->f = NULL;
        e->map = NULL;
    }
    in->fn = 0;

    if (started) {
        int reason = in->reason;
        /* Its quota was all sent, but it died before it said it retires: a crash. */
        if (reason == R_TASKS && !in->said_retire)
            reason = R_NONE;
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
        exec__pp_trace_exit(pp, in, reason, sig, xst, ran_seq);
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

/* @in exited before its loop (it never said READY) and not by our hand: its initializer
 * failed (the pool breaks; the FIFO goes to @broken) or its own set-up did (a failed spawn).
 * Settles @in and returns true; false (nothing done) for a worker that reached its loop. */
bool exec__pp_settle_early(struct pp *pp, struct inst *in, struct exec__list *broken)
{
    uint32_t phase = atomic_load_explicit(&in->rg->phase, memory_order_acquire);
    if (phase == EXEC__WPHASE_READY || in->reason != R_NONE || pp->zygote_dead)
        return false;
    if (phase == EXEC__WPHASE_SETUP) {
        int err = atomic_load_explicit(&in->rg->setup_errno, memory_order_relaxed);
        exec__pp_spawn_failed(pp, in, err ? err : ECHILD);
        return true;
    }
    int sig = 0, xst = -1;
    if (in->status_known && WIFSIGNALED(in->wstatus))
        sig = WTERMSIG(in->wstatus);
    else if (in->status_known && WIFEXITED(in->wstatus))
        xst = WEXITSTATUS(in->wstatus);
    in->reason = R_INIT;
    if (!pp->broken)
        exec__pp_go_broken(pp, EXEC_CAUSE_INITIALIZER, 0, sig, xst, broken);
    exec__pp_settle(pp, in, true);
    return true;
}

/* A spawn succeeded when the worker reached its loop, not when fork() returned: one that
 * dies in its set-up is a failed spawn and must not reset the streak. */
void exec__pp_note_ready(struct pp *pp, struct inst *in)
{
    if (!in->ready &&
        atomic_load_explicit(&in->rg->phase, memory_order_relaxed) == EXEC__WPHASE_READY) {
        in->ready = true;
        pp->spawn_streak = 0;
    }
}

void exec__pp_spawn_failed(struct pp *pp, struct inst *in, int err)
{
    exec__pp_settle(pp, in, false);
    pp->spawn_streak++;
    pp->spawn_errno = err;
    uint64_t backoff = (uint64_t)1000000u << (pp->spawn_streak < 10 ? pp->spawn_streak : 10);
    pp->spawn_retry_at = exec__now_ns() + backoff;
    if (pp->spawn_streak >= SPAWN_FAIL_LIMIT && !anyone_alive(pp))
        pp->spawn_gave_up = true;
}

void exec__pp_spawn_one(struct pp *pp, struct inst *in)
{
    if (EXEC__FAULT(EXEC__FAULT_SPAWN)) {
        pthread_mutex_lock(&pp->lock);
        exec__pp_spawn_failed(pp, in, EAGAIN);
        pthread_mutex_unlock(&pp->lock);
        return;
    }
    if (pp->forkserver) {
        struct exec__zmsg m = {EXEC__Z_SPAWN, in->slot, in->rix, 0, 0, in->gen};
        if (exec__zsend(pp->ctl, &m, false) != 0) {
            pthread_mutex_lock(&pp->lock);
            exec__pp_spawn_failed(pp, in, errno);
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
        exec__pp_spawn_failed(pp, in, err);
    } else {
        in->pid = pid;
        exec__pp_trace_started(pp, in);
        in->pidfd = exec__pidfd_open(pid);
        if (in->st == I_SPAWNING)
            in->st = I_LIVE;
        if (in->pending_sig)
            exec__pp_send_signal(pp, in, in->pending_sig);
    }
    pthread_mutex_unlock(&pp->lock);
}

void exec__pp_stop_zygote(struct pp *pp)
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

int exec__pp_start_zygote(struct pp *pp)
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
    /* The zygote's first word says whether it could set itself up; a zygote that died
     * before it said anything closed the socket. */
    struct exec__zmsg m;
    int got = exec__zrecv(pp->ctl, &m, false);
    if (got > 0 && m.op == EXEC__Z_READY && m.arg == 0)
        return 0;
    err = got > 0 && m.op == EXEC__Z_READY && m.arg > 0 ? m.arg : ECHILD;
    pp->zygote_dead = true; /* nothing to say QUIT to */
    exec__pp_stop_zygote(pp);
    errno = err;
    return err == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
}
