/* SPDX-License-Identifier: MIT */
/*
 * process/worker.c - the child side of the process backend: the loop of one worker process.
 *
 * The worker consumes requests from its request ring in order. It never releases request bytes
 * itself: the parent reuses them only after it has read the matching completion, so the parent may
 * still look at the state word of any request it has not seen complete. It takes an entry with a
 * CAS of the entry's state word QUEUED -> RUNNING; if the parent took the entry back first
 * (cancelled, or stolen to run on an idle worker), it answers SKIP. The task reads its argument in
 * place in the ring (zero copy) and writes its result into a private buffer of max_result_size
 * bytes followed by an inaccessible guard page, so a task that overruns its buffer crashes its
 * worker instead of corrupting the ring; the result is then copied into the completion ring. Map
 * chunks write their results straight into the completion ring.
 *
 * The worker retires by itself when the parent said so (the LAST flag: max_tasks_per_child),
 * when its resident set exceeds max_rss after a task, or when it is older than max_age
 * between tasks. It says why in its last completion, then exits. SIGTERM (a deadline or a
 * cancel) sets exec__worker_stop, which exec_task_should_stop() reads; the result of the
 * interrupted task is discarded and the worker exits as soon as the task returns (the parent
 * sends SIGKILL after the grace period otherwise).
 *
 * Exit is _exit() after flushing stdout and stderr: atexit handlers and stdio buffers
 * inherited from the parent belong to the parent and must not run or be written twice.
 */
#include "process/proto.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "shm/shm.h"

/* How long an idle worker polls its ring (yielding the CPU between looks) before it sleeps
 * on its futex: long enough to catch a request that follows closely, short enough not to
 * burn a CPU on a small machine. */
#ifndef WORKER_SPIN_NS
#define WORKER_SPIN_NS 50000u
#endif

struct wk {
    const struct exec__wctx *c;
    struct exec__wregion *rg;
    struct exec__rq in;  /* consumer of requests */
    struct exec__rq out; /* producer of completions */
    unsigned char *res;  /* result buffer, max_result bytes, a guard page after it */
    int statm_fd;
    uint64_t age_deadline; /* 0 = no max age */
    uint64_t t_start;      /* when the request being run started */
};

#ifdef EXEC_TEST_HOOKS
struct exec__wregion *exec__test_wregion;
#endif

/* The region, for on_term(). */
static struct exec__wregion *term_rg;

static void on_term(int sig)
{
    (void)sig;
    /* A stop meant for a request this worker has finished is stale: the task it runs now
     * must not pay for it (see stop_seq in process/proto.h). Between two requests cur_seq
     * is still the finished one, so the worker stops there and leaves the next one queued
     * for the parent to run elsewhere. */
    if (term_rg) {
        uint64_t s = atomic_load_explicit(&term_rg->stop_seq, memory_order_acquire);
        if (s != UINT64_MAX &&
            s < atomic_load_explicit(&term_rg->cur_seq, memory_order_acquire))
            return;
    }
    atomic_store_explicit(&exec__worker_stop, 1, memory_order_relaxed);
}

_Noreturn static void leave(int code)
{
    fflush(stdout);
    fflush(stderr);
    _exit(code);
}

/* Callers made what the supervisor must see visible with a seq_cst store first (a ring's
 * tail, the kick flag): that store and this load pair with the supervisor's seq_cst store of
 * `sleeping` and its re-reads (see sleep_once() in process/supervise.c). */
void exec__hub_ring(struct exec__hub *hub, int bell_fd)
{
    if (atomic_load_explicit(&hub->sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&hub->sleeping, 0, memory_order_relaxed))
        exec__event_signal(bell_fd);
}

static void post(struct wk *w)
{
    exec__rq_publish(&w->out);
    exec__hub_ring(w->c->hub, w->c->bell_fd);
}

/* Room for a completion of @size bytes; waits for the parent to drain when full. */
static struct exec__cmp *reserve(struct wk *w, size_t size)
{
    for (;;) {
        struct exec__msg *m = exec__rq_reserve(&w->out, size);
        if (m)
            return (struct exec__cmp *)m;
        /* Full: what we already reserved must reach the parent, or it has nothing to free. */
        post(w);
        exec__rq_wait_space(&w->out, exec__ring_round(size) * 2, exec__now_ns() + 100000000u);
    }
}

/* Why this worker must retire after the task it just ran (0 = it need not). */
static uint32_t retire_reason(struct wk *w, const struct exec__req *rq)
{
    uint32_t why = 0;
    if (rq->flags & EXEC__RF_LAST)
        why |= EXEC__CF_TASKS;
    if (w->rg->max_rss && exec__rss_bytes(&w->statm_fd) > w->rg->max_rss)
        why |= EXEC__CF_MEMORY;
    if (w->age_deadline && exec__now_ns() >= w->age_deadline)
        why |= EXEC__CF_AGE;
    return why;
}

static void skip(struct wk *w, struct exec__req *rq)
{
    struct exec__cmp *c = reserve(w, sizeof *c);
    c->h.kind = EXEC__CMP_SKIP;
    c->h.seq = rq->h.seq;
    c->code = 0;
    c->status = 0;
    /* The last request of our quota was cancelled: we retire all the same. */
    c->flags = rq->flags & EXEC__RF_LAST ? EXEC__CF_TASKS : 0;
    c->nfailed = 0;
    c->size = 0;
    exec__rq_next(&w->in, &rq->h);
    post(w);
    if (rq->flags & EXEC__RF_LAST)
        leave(0);
}

static bool take(struct wk *w, struct exec__req *rq)
{
    uint32_t exp = EXEC__RS_QUEUED;
    if (!atomic_compare_exchange_strong_explicit(&rq->state, &exp, EXEC__RS_RUNNING,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        skip(w, rq);
        return false;
    }
    w->t_start = exec__now_ns();
    atomic_store_explicit(&w->rg->cur_start_ns, w->t_start, memory_order_relaxed);
    atomic_store_explicit(&w->rg->cur_seq, rq->h.seq, memory_order_release);
    /* A timed task: the supervisor, if asleep, must arm the deadline now. (Other starts it
     * observes while it spins or on its tick.) */
    if (rq->flags & EXEC__RF_TIMED)
        exec__hub_ring(w->c->hub, w->c->bell_fd);
    return true;
}

static void run_task(struct wk *w, struct exec__req *rq)
{
    if (!take(w, rq))
        return;
    size_t cap = w->c->max_result, n = 0;
    const void *arg = rq->arg_size ? (const void *)(rq + 1) : NULL;
    int st = rq->fn(arg, (size_t)rq->arg_size, w->res, cap, &n);
    uint64_t t_end = w->rg->trace ? exec__now_ns() : 0;
    if (atomic_load_explicit(&exec__worker_stop, memory_order_relaxed))
        leave(0); /* timed out or cancelled: the parent already ended the future */

    int32_t code = st ? EXEC_ETASK : n > cap ? EXEC_ETOOBIG : EXEC_OK;
    size_t payload = code == EXEC_OK ? n : 0;
    uint32_t why = retire_reason(w, rq);
    struct exec__cmp *c = reserve(w, sizeof *c + payload);
    c->h.kind = EXEC__CMP_DONE;
    c->h.seq = rq->h.seq;
    c->code = code;
    c->status = st;
    c->flags = why;
    c->nfailed = 0;
    c->size = payload;
    c->t_start = w->t_start;
    c->t_end = t_end;
    if (payload)
        memcpy(c + 1, w->res, payload);
    atomic_store_explicit(&w->rg->done_seq, rq->h.seq, memory_order_release);
    exec__rq_next(&w->in, &rq->h);
    post(w);
    if (why)
        leave(0);
}

static void run_map(struct wk *w, struct exec__req *rq)
{
    if (!take(w, rq))
        return;
    size_t count = (size_t)rq->count, isz = (size_t)rq->arg_size, osz = (size_t)rq->out_size;
    size_t res_bytes = exec__ring_round(count * osz);
    struct exec__cmp *c = reserve(w, sizeof *c + res_bytes + count * sizeof(int32_t));
    unsigned char *out = (unsigned char *)(c + 1);
    int32_t *status = (int32_t *)(out + res_bytes);
    const unsigned char *in = (const unsigned char *)(rq + 1);
    _Alignas(16) unsigned char dummy[16];
    uint32_t nfailed = 0;
    /* Say where the results go and how far we got after every item: if we die in the middle,
     * the parent keeps what we finished (see chunk_lost() in the parent). */
    w->rg->map_cmp = (uint64_t)((unsigned char *)c - exec__wregion_cmp_data(w->rg));
    atomic_store_explicit(&w->rg->map_done, 0, memory_order_relaxed);
    atomic_store_explicit(&w->rg->map_seq, rq->h.seq, memory_order_release);
    for (size_t i = 0; i < count; i++) {
        size_t n = osz;
        void *o = osz ? (void *)(out + i * osz) : (void *)dummy;
        int st = rq->fn(in + i * isz, isz, o, osz, &n);
        status[i] = st;
        nfailed += st != 0;
        atomic_store_explicit(&w->rg->map_done, i + 1, memory_order_release);
    }
    uint64_t t_end = w->rg->trace ? exec__now_ns() : 0;
    if (atomic_load_explicit(&exec__worker_stop, memory_order_relaxed))
        leave(0);
    uint32_t why = retire_reason(w, rq);
    c->h.kind = EXEC__CMP_DONE;
    c->h.seq = rq->h.seq;
    c->code = EXEC_OK;
    c->status = 0;
    c->flags = why;
    c->nfailed = nfailed;
    c->size = count;
    c->t_start = w->t_start;
    c->t_end = t_end;
    if (!nfailed)
        exec__rq_shrink(&w->out, &c->h, sizeof *c + res_bytes);
    atomic_store_explicit(&w->rg->done_seq, rq->h.seq, memory_order_release);
    exec__rq_next(&w->in, &rq->h);
    post(w);
    if (why)
        leave(0);
}

/* A standalone message: RETIRE (age) or INITFAIL. */
_Noreturn static void say_and_leave(struct wk *w, uint32_t kind, uint32_t flags, int status)
{
    struct exec__cmp *c = reserve(w, sizeof *c);
    c->h.kind = kind;
    c->h.seq = 0;
    c->code = 0;
    c->status = status;
    c->flags = flags;
    c->nfailed = 0;
    c->size = 0;
    post(w);
    leave(0);
}

static unsigned char *result_buffer(size_t cap)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t body = (cap + (size_t)pg - 1) & ~((size_t)pg - 1);
    if (!body)
        body = (size_t)pg;
    unsigned char *base = mmap(NULL, body + (size_t)pg, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    (void)mprotect(base + body, (size_t)pg, PROT_NONE);
    /* End as close to the guard page as alignment (16) allows. */
    return base + body - exec__ring_round(cap ? cap : 1);
}

_Noreturn void exec__worker_main(const struct exec__wctx *c)
{
    /* Signals: the parent owns Ctrl-C (SIGINT ignored), a dead reader must not kill us
     * (SIGPIPE ignored), SIGTERM asks the running task to stop. No SA_RESTART: a task
     * blocked in a system call gets EINTR and can look at exec_task_should_stop(). */
    exec__child_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    atomic_store(&exec__worker_stop, 0);
    /* The thread that forked us (or the zygote) may have been running a thread-pool task:
     * its thread-locals mean nothing here. */
    exec__tls_task = NULL;
    exec__tls_core = NULL;
    exec__tls_counters = NULL;

    struct wk w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.rg = c->rg;
    term_rg = w.rg;
    atomic_store_explicit(&w.rg->pid, (int32_t)getpid(), memory_order_relaxed);
#ifdef EXEC_TEST_HOOKS
    exec__test_wregion = w.rg;
#endif
    w.statm_fd = -1;
    exec__rq_attach(&w.in, &w.rg->req, exec__wregion_req_data(w.rg), false);
    exec__rq_attach(&w.out, &w.rg->cmp, exec__wregion_cmp_data(w.rg), true);
    if (w.rg->max_age_ns)
        w.age_deadline = exec__now_ns() + w.rg->max_age_ns;
    w.res = result_buffer(c->max_result);
    if (!w.res) {
        atomic_store_explicit(&w.rg->setup_errno, errno ? errno : ENOMEM,
                              memory_order_relaxed);
        leave(EXEC__WEXIT_SETUP);
    }

    /* The parent tells an initializer that dies (_exit(), a signal) from a task that does
     * by this word: the pool breaks instead of respawning workers that die the same way. */
    if (c->init) {
        atomic_store_explicit(&w.rg->phase, EXEC__WPHASE_INIT, memory_order_release);
        size_t n = 0;
        int st = c->init(c->init_arg_size ? c->init_arg : NULL, c->init_arg_size, w.res,
                         c->max_result, &n);
        if (st)
            say_and_leave(&w, EXEC__CMP_INITFAIL, 0, st);
    }
    atomic_store_explicit(&w.rg->phase, EXEC__WPHASE_READY, memory_order_release);

    for (;;) {
        if (atomic_load_explicit(&exec__worker_stop, memory_order_relaxed))
            leave(0);
        struct exec__msg *m = exec__rq_peek(&w.in);
        if (!m && w.in.bad)
            leave(EXEC__WEXIT_SETUP); /* a task overwrote our request ring */
        if (!m) {
            if (w.age_deadline && exec__now_ns() >= w.age_deadline)
                say_and_leave(&w, EXEC__CMP_RETIRE, EXEC__CF_AGE, 0);
            /* Idle, and no task holds a pointer into a shared buffer: drop the mappings of
             * buffers that are gone (rate limited inside). Only when idle, because
             * unmapping a big populated buffer takes milliseconds that queued work should
             * not wait for. */
            (void)exec__shmbuf_trim(false);
            (void)exec__rq_wait_data(&w.in, w.age_deadline, WORKER_SPIN_NS);
            continue;
        }
        struct exec__req *rq = (struct exec__req *)m;
        switch (m->kind) {
        case EXEC__REQ_TASK:
            run_task(&w, rq);
            break;
        case EXEC__REQ_MAP:
            run_map(&w, rq);
            break;
        default: /* EXEC__REQ_EXIT */
            leave(0);
        }
        /* Between tasks: no task holds a pointer into a shared buffer now. */
        (void)exec__shmbuf_trim_grown();
    }
}
