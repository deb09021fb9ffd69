/* SPDX-License-Identifier: MIT */
/*
 * process/supervise.c - the supervisor thread of a process pool: it drains completion rings
 * and ends futures, reads zygote events and worker exits, watches starts and deadlines,
 * recycles, refills rings, winds down at shutdown, and sleeps when nothing happens. See
 * process/pool.h for the whole design.
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
                FOR_EACH_INST(pp, in) {
                    if (in->st != I_FREE)
                        in->exited = true;
                }
                break;
            }
            struct inst *in = find_inst(pp, m.slot, m.gen);
            if (!in || !exec__zmsg_ok(&m, true, pp->nslots))
                continue;
            switch (m.op) {
            case EXEC__Z_SPAWNED:
                in->pid = m.pid;
                exec__pp_trace_started(pp, in);
                if (in->st == I_SPAWNING)
                    in->st = I_LIVE;
                if (in->pending_sig)
                    exec__pp_send_signal(pp, in, in->pending_sig);
                break;
            case EXEC__Z_SPAWNFAIL:
                exec__pp_spawn_failed(pp, in, m.arg);
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
    FOR_EACH_INST(pp, in) {
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
    FOR_EACH_INST(pp, in) {
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

/* End @f from its completion, up to publishing the end: claim it and copy the result out of
 * the ring (which may be reused once released). Returns the code it ends with, or 1 if it had
 * ended already (a deadline, a cancel); the caller then publishes *end with
 * exec__future_finish() (its done-callbacks run then) unless it returned 1. */
static int finish_done(struct exec_future *f, const struct exec__cmpv *v, const struct inst *in,
                       exec_state_t *end)
{
    const struct exec__cmp *c = &v->h;
    if (!exec__future_claim(f, 1u << EXEC_STATE_QUEUED | 1u << EXEC_STATE_RUNNING))
        return 1;
    *end = EXEC_STATE_DONE;
    f->fault.worker_pid = inst_pid(in);
    f->fault.worker_id = in->slot;
    f->fault.code = c->code;
    if (c->code == EXEC_ETASK) {
        f->fault.task_status = c->status;
        *end = EXEC_STATE_FAILED;
    } else if (c->code != EXEC_OK) {
        *end = EXEC_STATE_FAILED;
    } else if (exec__future_set_result(f, v->msg + sizeof *c, (size_t)c->size) != 0) {
        f->fault.code = EXEC_ENOMEM;
        *end = EXEC_STATE_FAILED;
    }
    exec__future_drop_arg(f);
    return f->fault.code;
}

static int reason_of(uint32_t flags)
{
    return flags & EXEC__CF_TASKS ? R_TASKS : flags & EXEC__CF_MEMORY ? R_MEMORY : R_AGE;
}

/* The worker announced it exits: no more requests to it; take back what it will not run. */
static void note_retire(struct pp *pp, struct inst *in, int reason)
{
    in->said_retire = true;
    if (in->st == I_SPAWNING || in->st == I_LIVE || in->st == I_RETIRING) {
        in->st = I_RETIRING;
        if (in->reason == R_NONE || in->reason == R_TASKS)
            in->reason = reason == R_TASKS && in->reason == R_TASKS ? R_TASKS : reason;
    }
    exec__pp_steal(pp, in, 0);
}

/* The worker wrote something impossible (decode.c): it is treated as crashed. Kill it now;
 * its ring is not read again, and settling it (once it is gone) fails what it ran. */
static void give_up(struct pp *pp, struct inst *in)
{
    in->bad = true;
    if (in->exited)
        return;
    if (in->st != I_KILLING)
        exec__pp_begin_kill(pp, in, R_LOST);
    exec__pp_send_signal(pp, in, SIGKILL);
}

/* Read completions of @in. Returns whether there were any. */
static bool drain(struct pp *pp, struct inst *in)
{
    struct exec__cmpv cv[DRAIN_BATCH];
    struct ent ents[DRAIN_BATCH];
    if (in->bad)
        return false;
    uint32_t n = exec__pp_cmp_read(&in->cq, cv, DRAIN_BATCH);
    if (!n && !in->cq.bad)
        return false;
    struct exec__list broken_list;
    exec__list_init(&broken_list);
    pthread_mutex_lock(&pp->lock);
    for (uint32_t i = 0; i < n; i++) {
        const struct exec__cmp *c = &cv[i].h;
        memset(&ents[i], 0, sizeof ents[i]);
        if (!exec__pp_cmp_ok(&cv[i], in->fn ? fifo_at(in, 0) : NULL,
                             pp->cfg->max_result_size)) {
            in->cq.bad = true;
            n = i;
            break;
        }
        if (c->h.kind == EXEC__CMP_DONE || c->h.kind == EXEC__CMP_SKIP) {
            ents[i] = *fifo_at(in, 0);
            if (ents[i].rsize >= DISCARD_MIN) /* the worker is done with it */
                exec__shm_discard(ents[i].req, ents[i].rsize);
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
            exec__pp_steal(pp, in, 0);
            if (!pp->broken)
                exec__pp_go_broken(pp, EXEC_CAUSE_INITIALIZER, c->status, 0, -1,
                                   &broken_list);
        }
    }
    if (in->cq.bad)
        give_up(pp, in);
    exec__pp_refill(pp);
    pthread_mutex_unlock(&pp->lock);

    /* Everything is copied out of the ring before it is released, and futures publish
     * their end only after that: a done-callback may wait for this executor's shutdown,
     * which runs the supervisor's loop (drain() included) from inside the callback. */
    exec_state_t ends[DRAIN_BATCH];
    bool won[DRAIN_BATCH];
    for (uint32_t i = 0; i < n; i++) {
        const struct exec__cmp *c = &cv[i].h;
        struct ent *e = &ents[i];
        if (c->h.kind != EXEC__CMP_DONE) {
            e->f = NULL;
            continue;
        }
        if (e->f) {
            int code = finish_done(e->f, &cv[i], in, &ends[i]);
            won[i] = code != 1;
            if (pp->tl)
                exec__pp_trace_done(pp, in, e, c,
                                    code <= 0 ? code : exec__future_end_code(e->f));
        } else if (e->map) {
            exec__pp_trace_done(pp, in, e, c, 0); /* before the map may go */
            size_t count = e->hi - e->lo;
            const unsigned char *res = cv[i].msg + sizeof *c;
            const int32_t *st = NULL;
            if (c->nfailed)
                st = (const int32_t *)(res + exec__ring_round(count * e->map->out_size));
            exec__pp_chunk_results(e->map, e, res, st, count);
        }
    }
    /* Pages of very large messages go back to the system: a ring sized for 256 MiB messages
     * must not keep them resident after one went through. */
    for (uint32_t i = 0; i < n; i++)
        if (cv[i].msize >= DISCARD_MIN)
            exec__shm_discard(cv[i].msg, cv[i].msize);
    exec__rq_release(&in->cq);
    for (uint32_t i = 0; i < n; i++) {
        if (!ents[i].f)
            continue;
        if (won[i])
            exec__future_finish(ents[i].f, ends[i]);
        exec_future_release(ents[i].f);
    }
    exec__pp_fins_flush(pp);
    struct fin how = {.code = EXEC_EBROKEN, .wid = -1};
    exec__pp_broken_detail(pp, &how);
    exec__pp_end_list(&broken_list, &how);
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
    FOR_EACH_INST(pp, in) {
        if (in->st == I_FREE || in->exited)
            continue;
        exec__pp_note_ready(pp, in);
        if (in->st == I_KILLING && in->kill_at) {
            if (now >= in->kill_at) {
                /* Again every 100 ms until it is gone: a request to the zygote is sent
                 * without blocking and could, in theory, be dropped. */
                exec__pp_send_signal(pp, in, SIGKILL);
                in->kill_at = now + 100000000u;
                DUE(in->kill_at);
            } else {
                DUE(in->kill_at);
            }
        }
        if (!in->fn) {
            if (inst_may_take(pp, in))
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
                    /* The worker's word (its task can overwrite it): a deadline is never
                     * put later than timeout_ms from now. */
                    uint64_t t0 = atomic_load(&in->rg->cur_start_ns);
                    in->deadline_seq = cs;
                    in->deadline_ns = (t0 < now ? t0 : now) + e->f->timeout_ms * 1000000ull;
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
                    exec__pp_trace_deadline(pp, in, e->f);
                    exec__pp_fin_add(pp, e->f, EXEC_ETIMEDOUT, EXEC_STATE_FAILED, false, in);
                    pp->fins[pp->nfins - 1].sig = SIGTERM;
                }
                in->deadline_ns = 0;
                atomic_store(&in->rg->stop_seq, in->deadline_seq);
                exec__pp_begin_kill(pp, in, R_TIMEOUT);
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
        FOR_EACH_INST(pp, in) {
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
                    in->dispatched -= exec__pp_steal(pp, in, 0);
            }
        }
    }
    if (pp->spawn_retry_at > now && (next == 0 || pp->spawn_retry_at < next))
        next = pp->spawn_retry_at;
    return next;
}

/* Ask every worker to exit once no work is left after a shutdown, or once a broken pool's
 * running tasks are done (killing workers still in their initializer); true when all are
 * gone. */
static bool wind_down(struct pp *pp)
{
    if ((!pp->shut && !pp->broken) || exec__pp_work_left(pp))
        return false;
    bool all_free = true;
    FOR_EACH_INST(pp, in) {
        if (in->st != I_FREE && !in->spawn_sent)
            exec__pp_settle(pp, in, false); /* prepared, never started: nothing to stop */
        if (in->st == I_FREE)
            continue;
        all_free = false;
        if (in->exit_sent || in->exited || in->st == I_KILLING)
            continue;
        if (pp->broken && atomic_load_explicit(&in->rg->phase, memory_order_acquire) !=
                              EXEC__WPHASE_READY) {
            exec__pp_begin_kill(pp, in, R_INIT); /* nothing will ever run there */
            continue;
        }
        struct exec__req *rq = exec__pp_req_begin(in, 0, EXEC__REQ_EXIT);
        if (!rq)
            continue; /* cannot happen: the ring is empty */
        in->dirty = true;
        in->exit_sent = true;
        if (in->reason == R_NONE)
            in->reason = R_SHUTDOWN;
        if (in->st == I_LIVE || in->st == I_SPAWNING)
            in->st = I_RETIRING;
        exec__pp_flush(in);
    }
    return all_free;
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
    FOR_EACH_INST(pp, in) {
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
            if (in->used && !in->bad &&
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
        FOR_EACH_INST(pp, in)
            in->polled = true;
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
        FOR_EACH_INST(pp, in) {
            if (in->used && !in->bad &&
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

/* One round of the supervisor: events, completions, settled workers, breaking, timers,
 * spawns, refills, winding down, and the futures that ended. Sets *busy when something
 * happened and *due to the next timer (0 = none). Returns whether every worker is gone after
 * a shutdown. Re-entrant: a done-callback it runs may wait for a shutdown, which runs rounds
 * itself (exec__pp_sup_wait_idle()); every scratch array is emptied before a callback runs. */
static bool sup_round(struct pp *pp, bool *busy, uint64_t *due)
{
    struct exec__list failed;
    exec__list_init(&failed);
    int fail_code = 0;

    exec__pp_fins_flush(pp); /* left by the round we run inside, if any */
    pthread_mutex_lock(&pp->lock);
    *busy |= read_events(pp, pp->woke);
    pp->woke = false;
    pthread_mutex_unlock(&pp->lock);

    FOR_EACH_INST(pp, in) {
        if (in->used)
            while (drain(pp, in)) /* false at once for a worker given up (in->bad) */
                *busy = true;
    }

    uint64_t now = exec__now_ns();
    pthread_mutex_lock(&pp->lock);
    FOR_EACH_INST(pp, in) {
        /* Not while a submitter writes a request there: it commits the request first
         * (pool.c, send_big()), then settle() takes it back like any other. */
        if (in->st != I_FREE && in->exited && !in->writing &&
            (in->bad ||
             atomic_load_explicit(&in->rg->cmp.tail, memory_order_acquire) == in->cq.pos)) {
            if (!exec__pp_settle_early(pp, in, &failed))
                exec__pp_settle(pp, in, true);
            *busy = true;
        }
    }
    if (!exec__list_empty(&failed)) {
        fail_code = EXEC_EBROKEN; /* an initializer died: settle_early() broke the pool */
    } else if (pp->tripped && !pp->broken) {
        exec__pp_go_broken(pp, EXEC_CAUSE_CRASH_LOOP, 0, 0, -1, &failed);
        fail_code = EXEC_EBROKEN;
    } else if (pp->zygote_dead && !pp->broken) {
        exec__pp_go_broken(pp, EXEC_CAUSE_ZYGOTE, 0, 0, -1, &failed);
        fail_code = EXEC_EBROKEN;
    } else if (pp->spawn_gave_up) {
        /* Workers cannot be made (after SPAWN_FAIL_LIMIT tries with growing pauses): fail
         * what waits rather than strand it. Later submits wait for the next try, at most
         * about a second away, and fail the same way if it fails too. */
        pp->spawn_gave_up = false;
        exec__pp_q_take_all(pp, &failed);
        fail_code = EXEC_ESYS;
        exec__pp_maps_fail_pending(pp, EXEC_ESYS);
    }
    *due = timers(pp, now);
    int nspawn = exec__pp_plan_spawns(pp, now);
    if (exec__pp_refill(pp))
        *busy = true; /* timers() must see the new requests (their starts, deadlines) */
    bool done = wind_down(pp);
    int serr = pp->spawn_errno;
    pthread_mutex_unlock(&pp->lock);

    /* Spawns first: pp->todo must be used up before a callback may run a round. */
    for (int i = 0; i < nspawn; i++)
        exec__pp_spawn_one(pp, pp->todo[i]);
    if (nspawn)
        *busy = true;
    exec__pp_fins_flush(pp);
    if (fail_code) {
        struct fin how = {.code = fail_code, .xst = -1, .wid = -1};
        if (fail_code == EXEC_EBROKEN) {
            exec__pp_broken_detail(pp, &how);
        } else {
            how.serr = serr;
            how.cause = EXEC_CAUSE_SPAWN;
        }
        exec__pp_end_list(&failed, &how);
    }
    return done;
}

void exec__pp_sup_wait_idle(struct pp *pp)
{
    for (;;) {
        pthread_mutex_lock(&pp->lock);
        bool left = exec__pp_work_left(pp);
        pthread_mutex_unlock(&pp->lock);
        if (!left)
            return;
        bool busy = false;
        uint64_t due = 0;
        (void)sup_round(pp, &busy, &due); /* the supervisor's own loop stops the pool */
        if (!busy && !spin(pp))
            sleep_once(pp, due);
    }
}

void *exec__pp_sup_main(void *arg)
{
    struct pp *pp = arg;
    /* A done-callback that waits on a future of this executor reaches pp_wait (EDEADLK)
     * instead of sleeping forever on the thread that would have to finish it. */
    exec__tls_core = pp->core;
    for (;;) {
        bool busy = false;
        uint64_t due = 0;
        if (sup_round(pp, &busy, &due)) {
            exec__pp_stop_zygote(pp);
            pthread_mutex_lock(&pp->lock);
            pp->stopped = true;
            pthread_cond_broadcast(&pp->cond);
            pthread_mutex_unlock(&pp->lock);
            return NULL;
        }
        if (!busy && !spin(pp)) {
            if (pp->tl)
                exec__tlane_idle(pp->tl); /* about to sleep: what it recorded goes out */
            sleep_once(pp, due);
        }
    }
}
