/* SPDX-License-Identifier: MIT */
/*
 * mpi/serve.c - a serving rank (every rank but 0). Its main thread never returns into the
 * program's main(): it receives tasks from rank 0, runs them in a local executor made with
 * the public API (so a task that crashes or passes its deadline fails its local future only,
 * exactly as on one machine), and sends each result back as its local future ends (a
 * done-callback tells it). It ends the process when rank 0 says so (FINAL).
 */
#include "mpi/mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a rank with an idle worker keeps probing often after its last message. */
#define WARM_NS 2000000u
/* Ends that wake a loop sleeping while its workers are all busy (the last one always does). */
#define WAKE_BATCH 32u

/* A task in flight here: rank 0's slot id -> the local future. */
struct slot {
    exec_future_t *f;
    struct serve *s; /* the done-callback's way back */
    bool chunk;
    bool job; /* a chunk run as a local map (chunk.c) */
};

struct serve {
    MPI_Comm comm;
    exec_t *ex;
    struct slot *slots;
    uint32_t cap;
    size_t workers; /* the local pool's */
    int pid;
    /* The slots whose local future ended, in that order: the done-callbacks (the local
     * pool's threads) append, the loop swaps the array with `spare` and reports them. Each
     * holds up to cap (a slot ends once per task). */
    pthread_mutex_t dlock; /* protects ended and nended */
    uint32_t *ended, *spare;
    size_t nended;
    _Atomic uint32_t running; /* local futures not ended yet */
    _Atomic uint32_t wake; /* bumped at each end; the loop sleeps on it */
    _Atomic bool sleeping; /* it does (pairs with wake as in mpi/pool.h) */
    uint64_t out_cap; /* the executor's max_result_size */
    size_t busy;
    struct mpi__sends sends;
    void *buf;
    size_t bufcap;
    unsigned char *batch; /* results not sent yet: one message for all of them */
    size_t blen, bcap;
    struct mpi__chunks *chunks; /* on a local process pool (chunk.c) */
    bool item_chunks;
};

int exec__mpi_run_chunk(const void *arg, size_t arg_size, void *out, size_t out_cap,
                        size_t *out_size)
{
    struct mpi__chunk_arg h;
    if (arg_size < sizeof h)
        return EXEC_EINVAL;
    memcpy(&h, arg, sizeof h);
    const unsigned char *in = (const unsigned char *)arg + sizeof h;
    int *st = out;
    unsigned char *res = (unsigned char *)out + h.count * sizeof(int);
    if (h.count * (sizeof(int) + h.out_size) > out_cap)
        return EXEC_ETOOBIG;
    for (uint64_t i = 0; i < h.count; i++) {
        size_t n = h.out_size;
        st[i] = h.fn(in + i * h.in_size, h.in_size, h.out_size ? res + i * h.out_size : NULL,
                     h.out_size, &n);
    }
    *out_size = h.count * (sizeof(int) + h.out_size);
    return 0;
}

int exec__mpi_run_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    struct mpi__task_arg h;
    (void)out_cap;
    memcpy(&h, arg, sizeof h);
    size_t len = arg_size - sizeof h, n = 0;
    int st = h.fn(len ? (const unsigned char *)arg + sizeof h : NULL, len, out,
                  (size_t)h.out_cap, &n);
    *out_size = n > h.out_cap ? (size_t)h.out_cap + 1 : n;
    return st;
}

static void reply(struct serve *s, int tag, const void *a, size_t alen, const void *b,
                  size_t blen)
{
    unsigned char *m = malloc(alen + blen ? alen + blen : 1);
    if (!m)
        return; /* rank 0 will wait for this result: nothing better to do without memory */
    if (alen) /* a may be NULL then (memcpy's arguments must not be, even for 0 bytes) */
        memcpy(m, a, alen);
    if (blen)
        memcpy(m + alen, b, blen);
    exec__mpi_send(&s->sends, s->comm, 0, tag, m, alen + blen);
}

/* Add a result to the batch (flush() sends it). Without memory it is lost, and rank 0
 * waits for it: nothing better can be done then. */
static void add_result(struct serve *s, const struct mpi__result *r, const void *data)
{
    size_t need = s->blen + sizeof *r + r->size;
    if (need > s->bcap) {
        size_t cap = need > 2 * s->bcap ? need : 2 * s->bcap;
        unsigned char *b = realloc(s->batch, cap);
        if (!b)
            return;
        s->batch = b;
        s->bcap = cap;
    }
    memcpy(s->batch + s->blen, r, sizeof *r);
    if (r->size)
        memcpy(s->batch + s->blen + sizeof *r, data, r->size);
    s->blen = need;
}

static void flush(struct serve *s)
{
    if (!s->blen)
        return;
    /* The batch buffer itself goes to MPI (freed when sent); the next one starts empty. */
    exec__mpi_send(&s->sends, s->comm, 0, MPI__TAG_RESULT, s->batch, s->blen);
    s->batch = NULL;
    s->blen = s->bcap = 0;
}

static void fail_task(struct serve *s, uint64_t id, int code)
{
    struct mpi__result r = {.id = id, .state = EXEC_STATE_FAILED};
    r.fault.code = code;
    r.fault.exit_status = -1;
    r.fault.worker_id = -1;
    add_result(s, &r, NULL);
}

/* Free the local pool's bookkeeping (its executor is gone). */
static void local_free(struct serve *s)
{
    free(s->slots);
    free(s->ended);
    free(s->spare);
    s->slots = NULL;
    s->ended = s->spare = NULL;
    s->nended = 0;
    s->ex = NULL;
    s->busy = 0;
}

/* Make the local pool of config @c and its bookkeeping. */
static int local_create(struct serve *s, const exec_config_t *c)
{
    s->slots = calloc(s->cap, sizeof *s->slots);
    s->ended = calloc(s->cap, sizeof *s->ended);
    s->spare = calloc(s->cap, sizeof *s->spare);
    int r = s->slots && s->ended && s->spare ? exec_create(&s->ex, c) : EXEC_ENOMEM;
    if (r != EXEC_OK) {
        local_free(s);
        return r;
    }
    for (uint32_t i = 0; i < s->cap; i++)
        s->slots[i].s = s;
    return EXEC_OK;
}

static void hello(struct serve *s, const void *msg, size_t len)
{
    struct mpi__hello h;
    struct mpi__ready ok = {EXEC_EINVAL, 0, (int32_t)s->pid, 0};
    if (len < sizeof h || s->ex) {
        reply(s, MPI__TAG_READY, &ok, sizeof ok, NULL, 0);
        return;
    }
    memcpy(&h, msg, sizeof h);
    exec_config_t c = {0};
    c.backend = (exec_backend_t)h.local_backend;
    c.workers = exec__mpi_rank_workers((int)h.workers, exec__mpi_world.size,
                                       exec__mpi_world.rank);
    s->cap = exec__mpi_rank_cap(c.workers);
    s->out_cap = h.max_result_size;
    /* A task comes with a header, a map chunk is one local task: room for both, and for a
     * result one byte over the limit (the sign of a task that overflowed it). */
    c.max_arg_size = h.max_arg_size + 64;
    if (c.max_arg_size < MPI__CHUNK_BYTES + 64)
        c.max_arg_size = MPI__CHUNK_BYTES + 64;
    c.max_result_size = h.max_result_size + 1;
    if (c.max_result_size < MPI__CHUNK_BYTES)
        c.max_result_size = MPI__CHUNK_BYTES;
    c.max_tasks_per_child = h.max_tasks_per_child;
    c.stack_size = h.stack_size;
    c.start_method = (exec_start_method_t)h.start_method;
    c.kill_grace_ms = h.kill_grace_ms;
    c.max_rss_per_child = h.max_rss_per_child;
    c.max_age_ms = h.max_age_ms;
    c.recycle_jitter_pct = h.recycle_jitter_pct;
    c.crash_limit = h.crash_limit;
    c.crash_window_ms = h.crash_window_ms;
    if (h.has_init) {
        c.initializer = (exec_task_fn *)exec__mpi_fn_decode(&h.init);
        c.init_arg = h.init_arg_size ? (const unsigned char *)msg + sizeof h : NULL;
        c.init_arg_size = h.init_arg_size;
        if (!c.initializer || len < sizeof h + h.init_arg_size) {
            reply(s, MPI__TAG_READY, &ok, sizeof ok, NULL, 0);
            return;
        }
    }
    if (!c.workers) { /* fewer workers than ranks: this one idles */
        ok.code = EXEC_OK;
        reply(s, MPI__TAG_READY, &ok, sizeof ok, NULL, 0);
        return;
    }
    ok.code = exec__mpi_shm_serve(&h); /* before the pool (shm.c) */
    if (ok.code == EXEC_OK)
        ok.code = local_create(s, &c);
    if (ok.code == EXEC_OK)
        ok.workers = c.workers;
    s->workers = ok.code == EXEC_OK ? (size_t)c.workers : 0;
    s->item_chunks = c.backend == EXEC_BACKEND_PROCESSES;
    reply(s, MPI__TAG_READY, &ok, sizeof ok, NULL, 0);
}

/* A local future ended (on a local pool's thread, or here if it had already): queue its
 * slot for the loop and wake the loop if it sleeps. */
static void ended(exec_future_t *f, void *data)
{
    struct slot *sl = data;
    struct serve *s = sl->s;
    (void)f;
    pthread_mutex_lock(&s->dlock);
    s->ended[s->nended++] = (uint32_t)(sl - s->slots);
    size_t n = s->nended;
    pthread_mutex_unlock(&s->dlock);
    /* A sleeping loop is woken by the last end or by a batch of them. */
    bool last = atomic_fetch_sub(&s->running, 1) == 1;
    atomic_fetch_add(&s->wake, 1);
    if ((last || n >= WAKE_BATCH) && atomic_load(&s->sleeping))
        exec__futex_wake(&s->wake, 1);
}

/* A chunk run as a local map ended (on a map thread of chunk.c): wake the loop. */
static void chunk_ended(void *data)
{
    struct serve *s = data;
    atomic_fetch_add(&s->wake, 1);
    if (atomic_load(&s->sleeping))
        exec__futex_wake(&s->wake, 1);
}

/* Watch slot @id's new local future. Without memory for the callback, wait for the task
 * here (the loop stalls meanwhile, but the result stays exact). */
static void watch(struct serve *s, uint32_t id)
{
    if (exec_future_on_done(s->slots[id].f, ended, &s->slots[id]) != EXEC_OK) {
        exec_future_wait(s->slots[id].f, EXEC_WAIT_FOREVER);
        ended(s->slots[id].f, &s->slots[id]);
    }
}

/* One task or chunk; returns the bytes of its record (0: malformed). */
static size_t task(struct serve *s, int tag, const void *msg, size_t len)
{
    struct mpi__task t;
    if (len < sizeof t)
        return 0;
    memcpy(&t, msg, sizeof t);
    if (t.size > len - sizeof t)
        return 0;
    size_t rec = sizeof t + t.size;
    if (!s->ex || t.id >= s->cap || s->slots[t.id].f || s->slots[t.id].job) {
        fail_task(s, t.id, EXEC_EINVAL);
        return rec;
    }
    exec_task_fn *fn = (exec_task_fn *)exec__mpi_fn_decode(&t.fn);
    if (!fn) {
        fail_task(s, t.id, EXEC_EINVAL);
        return rec;
    }
    const unsigned char *arg = (const unsigned char *)msg + sizeof t;
    exec_submit_opts_t o = {.timeout_ms = t.timeout_ms ? t.timeout_ms : EXEC_NO_TIMEOUT};
    int r;
    if (tag == MPI__TAG_CHUNK && s->item_chunks) {
        r = exec__mpi_chunks_add(&s->chunks, s->ex, (int)s->workers, t.id, fn, &t, arg,
                                 chunk_ended, s);
        if (r != EXEC_OK) {
            fail_task(s, t.id, r);
            return rec;
        }
        s->slots[t.id].job = true;
        s->busy++;
        return rec;
    } else if (tag == MPI__TAG_CHUNK) {
        /* The items follow a chunk header of this rank's own (the resolved pointer). */
        struct mpi__chunk_arg h = {fn, t.in_size, t.out_size, t.count};
        unsigned char *a = malloc(sizeof h + t.size);
        if (!a) {
            fail_task(s, t.id, EXEC_ENOMEM);
            return rec;
        }
        memcpy(a, &h, sizeof h);
        memcpy(a + sizeof h, arg, t.size);
        r = exec_submit_ex(s->ex, exec__mpi_run_chunk, a, sizeof h + t.size, &o,
                           &s->slots[t.id].f);
        free(a);
    } else {
        struct mpi__task_arg h = {fn, s->out_cap};
        unsigned char stack[256];
        unsigned char *a = sizeof h + t.size <= sizeof stack ? stack : malloc(sizeof h + t.size);
        if (!a) {
            fail_task(s, t.id, EXEC_ENOMEM);
            return rec;
        }
        memcpy(a, &h, sizeof h);
        if (t.size)
            memcpy(a + sizeof h, arg, t.size);
        r = exec_submit_ex(s->ex, exec__mpi_run_task, a, sizeof h + t.size, &o,
                           &s->slots[t.id].f);
        if (a != stack)
            free(a);
    }
    if (r != EXEC_OK) {
        s->slots[t.id].f = NULL;
        fail_task(s, t.id, r);
        return rec;
    }
    s->slots[t.id].chunk = tag == MPI__TAG_CHUNK;
    s->busy++;
    atomic_fetch_add(&s->running, 1);
    watch(s, (uint32_t)t.id);
    return rec;
}

static void chunk_done(void *ctx, const struct mpi__result *r, const void *data)
{
    struct serve *s = ctx;
    add_result(s, r, data);
    s->slots[r->id].job = false;
    s->busy--;
}

/* Send back every local future and chunk that ended. */
static bool completions(struct serve *s)
{
    if (!s->ex)
        return false;
    size_t n_jobs = exec__mpi_chunks_reap(s->chunks, chunk_done, s);
    pthread_mutex_lock(&s->dlock);
    uint32_t *ids = s->ended;
    size_t n_ended = s->nended;
    s->ended = s->spare;
    s->spare = ids;
    s->nended = 0;
    pthread_mutex_unlock(&s->dlock);
    for (size_t i = 0; i < n_ended; i++) {
        uint32_t id = ids[i];
        exec_future_t *f = s->slots[id].f;
        struct mpi__result r = {.id = id};
        const void *data = NULL;
        size_t n = 0;
        exec_future_result(f, &data, &n);
        exec_future_fault(f, &r.fault);
        r.fault.rank = exec__mpi_world.rank;
        if (!r.fault.worker_pid)
            r.fault.worker_pid = s->pid; /* a local thread pool: this rank's pid */
        r.state = exec_future_state(f);
        r.size = n;
        add_result(s, &r, data);
        exec_future_release(f);
        s->slots[id].f = NULL;
        s->busy--;
    }
    flush(s);
    return n_ended + n_jobs > 0;
}

static void stats(struct serve *s)
{
    exec_stats_t st = {0};
    if (s->ex)
        exec_stats(s->ex, &st);
    reply(s, MPI__TAG_STATS, &st, sizeof st, NULL, 0);
}

static void bye(struct serve *s)
{
    completions(s);
    exec__mpi_chunks_close(s->chunks);
    s->chunks = NULL;
    exec_destroy(s->ex);
    completions(s); /* nothing should be left: rank 0 waited for every task */
    exec__mpi_shm_serve_end();
    local_free(s);
    reply(s, MPI__TAG_BYE_ACK, NULL, 0, NULL, 0);
}

/* Rank 0 is leaving. Tasks still running are cut short: queued ones cancelled, running
 * ones killed on a local process pool; the rest of the local pool ends with this process
 * (a process pool's workers and zygote notice their parent is gone within a second). */
static _Noreturn void final(struct serve *s)
{
    if (s->ex) {
        exec_shutdown(s->ex, EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT);
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->slots[i].f)
                exec_future_cancel(s->slots[i].f, EXEC_CANCEL_RUNNING);
    }
    exec__mpi_sends_finish(&s->sends);
    MPI_Comm_free(&s->comm);
    exec__mpi_world.comm = MPI_COMM_NULL;
    MPI_Finalize(); /* also when the program initialised MPI: it never gets back here */
    fflush(NULL);
    _exit(0);
}

_Noreturn void exec__mpi_serve(void)
{
    struct serve s = {.comm = exec__mpi_world.comm, .pid = (int)getpid()};
    struct mpi__backoff bo;
    pthread_mutex_init(&s.dlock, NULL);
    exec__mpi_backoff_reset(&bo);
    for (;;) {
        uint32_t seen = atomic_load(&s.wake);
        bool any = false;
        size_t len = 0;
        int from = 0, tag = 0;
        while (exec__mpi_recv(s.comm, 0, &s.buf, &s.bufcap, &len, &from, &tag) == 1) {
            any = true;
            switch (tag) {
            case MPI__TAG_HELLO:
                hello(&s, s.buf, len);
                break;
            case MPI__TAG_TASK: /* a batch of tasks, one record after the other */
            case MPI__TAG_CHUNK:
                for (size_t at = 0, n = 1; at < len && n; at += n)
                    n = task(&s, tag, (unsigned char *)s.buf + at, len - at);
                break;
            case MPI__TAG_CANCEL: {
                struct mpi__cancel c;
                if (len >= sizeof c) {
                    memcpy(&c, s.buf, sizeof c);
                    if (c.id < s.cap && s.slots[c.id].f)
                        exec_future_cancel(s.slots[c.id].f, c.flags);
                }
                break;
            }
            case MPI__TAG_STATS_REQ:
                stats(&s);
                break;
            case MPI__TAG_BYE:
                bye(&s);
                break;
            case MPI__TAG_SHM_DATA:
            case MPI__TAG_SHM_DROP:
                exec__mpi_shm_on_msg(tag, s.buf, len);
                break;
            case MPI__TAG_FINAL:
                final(&s);
            default:
                break;
            }
            /* Results go out between messages, not after a long burst of them. */
            completions(&s);
        }
        any |= completions(&s);
        any |= exec__mpi_shm_poll(s.comm, &s.sends);
        exec__mpi_sends_reap(&s.sends);
        if (any) {
            exec__mpi_backoff_reset(&bo);
            continue;
        }
        /* A rank with an idle worker expects its next task soon after its last message
         * (rank 0 answers a result with the next task): it probes often for 2 ms. */
        bool idle = s.ex && s.busy < s.workers;
        uint64_t ns;
        if (s.ex && !idle) /* every worker busy: sleep (an end wakes us), no spinning */
            ns = exec__mpi_backoff_step(&bo, 0);
        else
            ns = exec__mpi_backoff_next(
                &bo, idle && exec__now_ns() - bo.quiet_since < WARM_NS ? MPI__STEP_MIN_NS : 0);
        if (!ns)
            continue;
        /* Sleep until a local future or chunk ends (its callback bumps wake) or the next
         * probe, at most a millisecond away (an MPI message, or a task's request for a copy
         * of a buffer on its socket (shm.c), wakes nothing: they are seen by looking). */
        atomic_store(&s.sleeping, true);
        exec__futex_wait(&s.wake, seen, exec__now_ns() + ns);
        atomic_store(&s.sleeping, false);
    }
}
