/* SPDX-License-Identifier: MIT */
/*
 * test_soak.c - the soak test (issue 13, "Fuzzing and soak"): a long mixed run on each
 * backend with everything that can happen to a task happening at once, from several
 * submitting threads, on a pool that recycles its workers.
 *
 * The mix (per 1,000 tasks): 4 crash their worker (abort, _exit, SIGKILL; processes only: on
 * threads they fail with a status instead), 4 outlive a 10 ms deadline, 20 are slow (1-3 ms),
 * 20 are cancelled at once (queued, or already done), 5 run until they are cancelled while
 * running, 50 fail with a status, 50 read a value from a shared-memory buffer by ref, the
 * rest compute 3x+1. Workers are recycled every 100 tasks (10 in runs under 10,000 tasks).
 *
 * What is checked: every future ends exactly once (a done-callback counts the ends of each
 * task) in a state its task allows, with the right result or fault; exec_stats() adds up
 * (completed + failed + cancelled = submitted, and each equals what the submitters saw); and
 * nothing is left afterwards (the runner's hygiene check: processes, zombies, fds, /dev/shm).
 *
 * Size: EXEC_SOAK_TASKS tasks (default 2,000 divided by EXEC_TEST_TIMEOUT_SCALE: a few
 * seconds inside `make test`, and small enough under valgrind). `make soak` runs a million
 * (SOAK_TASKS) and prints the figures.
 */
#include "harness.h"
#include "tasks.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "process/proto.h" /* exec__test_wregion: a late stop, played by a task */

enum kind { K_OK, K_FAIL, K_SLOW, K_CRASH, K_DEADLINE, K_SHM, K_CANCEL_Q, K_CANCEL_RUN };

#define SOAK_THREADS 4
#define SOAK_WINDOW 64 /* futures outstanding per submitting thread */
#define SHM_WORDS 4096u
#define DEADLINE_MS 10u
/* A task past its deadline waits to be stopped for at most this, times the timeout scale:
 * long enough that the deadline stops it first even on a machine so loaded that the
 * supervisor or the timer thread does not run for a second (with 500 ms, a few tasks of a
 * 1 M run under load outlived their 10 ms deadline that way and ended DONE). A task waiting
 * to be cancelled while running gives up after CANCEL_BOUND_MS: some are cancelled only when
 * they are the oldest of their window, so a long wait could hold every worker while each
 * submitter waits for a task queued behind them (then it ends DONE, which its check allows). */
#define DEADLINE_BOUND_MS 30000u
#define CANCEL_BOUND_MS 500u

struct soak_arg {
    uint32_t kind;
    uint32_t pad;
    int64_t x;
    exec_shm_ref_t ref; /* K_SHM only (the argument is shorter otherwise) */
};
#define ARG_SHORT offsetof(struct soak_arg, ref)

static int64_t shm_value(int64_t x)
{
    return (x % SHM_WORDS) * 7 + 1;
}

/* Wait until asked to stop (deadline, cancel) or @bound_ms pass. */
static void run_until_stopped(uint64_t bound_ms)
{
    uint64_t end = test_now_ms() + bound_ms;
    while (!exec_task_should_stop() && test_now_ms() < end)
        usleep(1000);
}

static int soak_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    struct soak_arg a;
    memset(&a, 0, sizeof a);
    if (arg_size != ARG_SHORT && arg_size != sizeof a)
        return BAD_CALL;
    memcpy(&a, arg, arg_size);
    int64_t v = 3 * a.x + 1;
    switch (a.kind) {
    case K_FAIL:
        return (int)(a.x % 100) + 1;
    case K_SLOW:
        usleep(1000 + (useconds_t)(a.x % 3) * 1000);
        break;
    case K_CRASH:
        if (a.x % 3 == 0)
            abort();
        if (a.x % 3 == 1)
            _exit(7);
        raise(SIGKILL);
        return BAD_CALL;
    case K_DEADLINE:
        run_until_stopped((uint64_t)DEADLINE_BOUND_MS * (uint64_t)test_timeout_scale());
        break;
    case K_CANCEL_RUN:
        run_until_stopped(CANCEL_BOUND_MS);
        break;
    case K_SHM: {
        void *p;
        size_t n;
        if (arg_size != sizeof a || exec_shm_map(&a.ref, EXEC_SHM_RDONLY, &p, &n) != 0 ||
            n != SHM_WORDS * sizeof(int64_t))
            return READ_FAILED;
        memcpy(&v, (const int64_t *)p + a.x % SHM_WORDS, sizeof v);
        break;
    }
    default:
        break;
    }
    return task_put_i64(out, out_cap, out_size, v);
}

/* The kind of task @i: a fixed mix, spread by a hash so that kinds interleave. */
static enum kind kind_of(uint64_t i, bool processes)
{
    uint64_t h = i * 0x9e3779b97f4a7c15u;
    unsigned r = (unsigned)((h >> 40) % 1000);
    if (r < 4)
        return processes ? K_CRASH : K_FAIL;
    if (r < 8)
        return K_DEADLINE;
    if (r < 28)
        return K_SLOW;
    if (r < 48)
        return K_CANCEL_Q;
    if (r < 53)
        return K_CANCEL_RUN;
    if (r < 103)
        return K_FAIL;
    if (r < 153)
        return K_SHM;
    return K_OK;
}

struct soak {
    exec_t *ex;
    uint64_t total;
    bool processes;
    exec_shm_ref_t ref;
    _Atomic uint8_t *ends; /* per task: how many times its done-callback ran */
};

struct slot {
    exec_future_t *f;
    uint64_t i;
    enum kind k;
    int cancel; /* what exec_future_cancel() returned; 1 = not called */
};

struct submitter {
    struct soak *s;
    int t;
    uint64_t done, failed, cancelled; /* terminal states seen */
    uint64_t bad;                     /* outcomes the task does not allow */
    char why[256];                    /* the first of them */
};

static void on_end(exec_future_t *f, void *user_data)
{
    (void)f;
    atomic_fetch_add_explicit((_Atomic uint8_t *)user_data, 1, memory_order_relaxed);
}

static void bad(struct submitter *m, const struct slot *sl, const char *what, long v)
{
    exec_fault_t ft;
    memset(&ft, 0, sizeof ft);
    (void)exec_future_fault(sl->f, &ft);
    if (m->bad++ == 0)
        snprintf(m->why, sizeof m->why,
                 "task %llu (kind %d, cancel %d): %s %ld (fault %s, signal %d, exit %d, "
                 "status %d)",
                 (unsigned long long)sl->i, (int)sl->k, sl->cancel, what, v,
                 exec_errname(ft.code), ft.signal, ft.exit_status, ft.task_status);
}

/* Whether the future of @sl ended as its task allows. */
static void check(struct submitter *m, const struct slot *sl)
{
    exec_future_t *f = sl->f;
    int st = exec_future_state(f);
    exec_fault_t ft;
    memset(&ft, 0, sizeof ft);
    if (st == EXEC_STATE_FAILED && exec_future_fault(f, &ft) != 0)
        return bad(m, sl, "no fault for a failed future", 0);
    m->done += st == EXEC_STATE_DONE;
    m->failed += st == EXEC_STATE_FAILED;
    m->cancelled += st == EXEC_STATE_CANCELLED;
    int64_t x = (int64_t)sl->i;
    int64_t want = sl->k == K_SHM ? shm_value(x) : 3 * x + 1;
    switch (sl->k) {
    case K_FAIL:
        if (st != EXEC_STATE_FAILED || ft.code != EXEC_ETASK || ft.task_status != x % 100 + 1)
            return bad(m, sl, "status task ended", st);
        return;
    case K_CRASH:
        if (st != EXEC_STATE_FAILED || ft.code != EXEC_ECRASHED)
            return bad(m, sl, "crashing task ended", st);
        return;
    case K_DEADLINE:
        if (st != EXEC_STATE_FAILED || ft.code != EXEC_ETIMEDOUT)
            return bad(m, sl, "task past its deadline ended", st);
        return;
    case K_CANCEL_Q:
    case K_CANCEL_RUN:
        if (sl->cancel == EXEC_OK) {
            if (st != EXEC_STATE_CANCELLED)
                return bad(m, sl, "cancelled task ended", st);
            return;
        }
        if (sl->cancel != EXEC_EBUSY)
            return bad(m, sl, "exec_future_cancel() returned", sl->cancel);
        break; /* it had ended: it ran */
    default:
        break;
    }
    if (st != EXEC_STATE_DONE)
        return bad(m, sl, "task ended", st);
    const void *r;
    size_t n;
    int64_t v;
    if (exec_future_result(f, &r, &n) != 0 || n != sizeof v)
        return bad(m, sl, "result size", (long)n);
    memcpy(&v, r, sizeof v);
    if (v != want)
        bad(m, sl, "wrong result", (long)v);
}

static int submit_one(struct submitter *m, struct slot *sl, uint64_t i)
{
    struct soak *s = m->s;
    struct soak_arg a;
    memset(&a, 0, sizeof a);
    sl->i = i;
    sl->k = kind_of(i, s->processes);
    sl->cancel = 1;
    a.kind = sl->k;
    a.x = (int64_t)i;
    size_t size = ARG_SHORT;
    if (sl->k == K_SHM) {
        a.ref = s->ref;
        size = sizeof a;
    }
    exec_submit_opts_t o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = sl->k == K_DEADLINE ? DEADLINE_MS : EXEC_NO_TIMEOUT;
    int e = exec_submit_ex(s->ex, soak_task, &a, size, &o, &sl->f);
    if (e != 0)
        return e;
    e = exec_future_on_done(sl->f, on_end, (void *)&s->ends[i]);
    if (e != 0)
        return e;
    /* Cancels: every queued-cancel task and half the running-cancel ones at once (they are
     * usually still queued); the other half when they are the oldest of the window. */
    if (sl->k == K_CANCEL_Q || (sl->k == K_CANCEL_RUN && i % 2 == 0))
        sl->cancel = exec_future_cancel(sl->f, sl->k == K_CANCEL_Q ? 0 : EXEC_CANCEL_RUNNING);
    return 0;
}

static void finish_one(struct submitter *m, struct slot *sl)
{
    if (sl->k == K_CANCEL_RUN && sl->cancel == 1)
        sl->cancel = exec_future_cancel(sl->f, EXEC_CANCEL_RUNNING);
    int e = exec_future_wait(sl->f, EXEC_WAIT_FOREVER);
    if (e != 0)
        bad(m, sl, "exec_future_wait() returned", e);
    else
        check(m, sl);
    exec_future_release(sl->f);
    sl->f = NULL;
}

static void *submitter_main(void *arg)
{
    struct submitter *m = arg;
    struct slot win[SOAK_WINDOW];
    memset(win, 0, sizeof win);
    uint64_t n = 0;
    for (uint64_t i = (uint64_t)m->t; i < m->s->total; i += SOAK_THREADS, n++) {
        struct slot *sl = &win[n % SOAK_WINDOW];
        if (sl->f)
            finish_one(m, sl);
        int e = submit_one(m, sl, i);
        if (e != 0) {
            bad(m, sl, "submit returned", e);
            if (sl->f)
                exec_future_release(sl->f);
            sl->f = NULL;
            break;
        }
    }
    for (uint64_t j = 0; j < SOAK_WINDOW; j++) {
        struct slot *sl = &win[(n + j) % SOAK_WINDOW];
        if (sl->f)
            finish_one(m, sl);
    }
    return NULL;
}

static uint64_t soak_tasks(void)
{
    const char *env = getenv("EXEC_SOAK_TASKS");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && v > 0)
            return v;
    }
    return 2000u / (uint64_t)test_timeout_scale();
}

TEST(soak_mixed)
{
    struct soak s;
    memset(&s, 0, sizeof s);
    s.total = soak_tasks();
    s.processes = test_backend == EXEC_BACKEND_PROCESSES;
    s.ends = calloc(s.total, sizeof *s.ends);
    ASSERT_NOT_NULL(s.ends);

    char name[64];
    snprintf(name, sizeof name, "exec-t%d-soak", (int)getpid());
    exec_shm_t *shm;
    ASSERT_OK(exec_shm_create(&shm, name, SHM_WORDS * sizeof(int64_t), 0));
    int64_t *words = exec_shm_ptr(shm);
    for (unsigned i = 0; i < SHM_WORDS; i++)
        words[i] = shm_value(i);
    ASSERT_OK(exec_shm_ref(shm, &s.ref));

    exec_config_t cfg = config_workers(4);
    cfg.max_tasks_per_child = s.total >= 10000 ? 100 : 10; /* small runs recycle too */
    if (s.processes)
        cfg.kill_grace_ms = 50; /* process-only (EXEC_EINVAL on threads) */
    s.ex = make_exec(&cfg);

    uint64_t t0 = test_now_ms();
    pthread_t th[SOAK_THREADS];
    struct submitter m[SOAK_THREADS];
    memset(m, 0, sizeof m);
    for (int t = 0; t < SOAK_THREADS; t++) {
        m[t].s = &s;
        m[t].t = t;
        ASSERT_OK(pthread_create(&th[t], NULL, submitter_main, &m[t]));
    }
    uint64_t done = 0, failed = 0, cancelled = 0;
    for (int t = 0; t < SOAK_THREADS; t++) {
        ASSERT_OK(pthread_join(th[t], NULL));
        if (m[t].bad)
            TEST_FAIL("%llu bad outcomes on thread %d, the first: %s",
                      (unsigned long long)m[t].bad, t, m[t].why);
        done += m[t].done;
        failed += m[t].failed;
        cancelled += m[t].cancelled;
    }
    uint64_t ms = test_now_ms() - t0;

    /* Every future has ended; a task whose future ended at its deadline or by a cancel
     * may still be returning on threads (it keeps its thread until it sees the stop flag). */
    exec_stats_t st = stats_of(s.ex);
    uint64_t until = test_now_ms() + 5000u * (uint64_t)test_timeout_scale();
    while ((st.running || st.queued) && test_now_ms() < until) {
        test_sleep_ms(5);
        st = stats_of(s.ex);
    }
    ASSERT_EQ(st.submitted, s.total);
    ASSERT_EQ(done + failed + cancelled, s.total);
    ASSERT_EQ(st.completed + st.failed + st.cancelled, st.submitted);
    ASSERT_EQ(st.completed, done);
    ASSERT_EQ(st.failed, failed);
    ASSERT_EQ(st.cancelled, cancelled);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.running, 0);
    ASSERT_GT(st.workers_retired, 0);
    ASSERT_OK(exec_destroy(s.ex)); /* after it, every callback has run */
    for (uint64_t i = 0; i < s.total; i++)
        if (atomic_load(&s.ends[i]) != 1)
            TEST_FAIL("task %llu ended %d times", (unsigned long long)i,
                      (int)atomic_load(&s.ends[i]));
    printf("# soak %s: %llu tasks in %llu ms: %llu done, %llu failed (%llu timed out, %llu "
           "crashed), %llu cancelled; %llu workers retired (%llu tasks, %llu timeout, "
           "%llu crash)\n",
           test_backend_name(), (unsigned long long)s.total, (unsigned long long)ms,
           (unsigned long long)st.completed, (unsigned long long)st.failed,
           (unsigned long long)st.timed_out, (unsigned long long)st.crashed,
           (unsigned long long)st.cancelled, (unsigned long long)st.workers_retired,
           (unsigned long long)st.retired_tasks, (unsigned long long)st.retired_timeout,
           (unsigned long long)st.retired_crash);
    ASSERT_OK(exec_shm_close(shm));
    free(s.ends);
}

/* ---------------------------------------------------------------------------------------- */
/* What the soak found                                                                       */
/* ---------------------------------------------------------------------------------------- */

static _Atomic int hold_supervisor, held;

/* A done-callback; on processes it runs on the supervisor thread, which it holds up. */
static void hold(exec_future_t *f, void *user_data)
{
    (void)f, (void)user_data;
    atomic_store(&held, 1);
    uint64_t end = test_now_ms() + 10000u * (uint64_t)test_timeout_scale();
    while (atomic_load(&hold_supervisor) && test_now_ms() < end)
        test_sleep_ms(1);
}

/* PROCESSES_ONLY (on threads a done-callback runs on the worker, and a cancelled running
 * task is never killed). Found by the soak (1 M tasks): EXEC_CANCEL_RUNNING of a task whose worker
 * had finished it (its completion not read yet) killed the worker, and with it the task after it,
 * which failed with EXEC_ECRASHED. Now the cancel says EXEC_EBUSY and both tasks end DONE. The
 * supervisor is held in a done-callback so that the finished task's completion waits. */
TEST(soak_cancel_running_after_finish)
{
    struct gate g, ga, b_out;
    exec_t *ex = make_gated(&g, 1);
    gate_open(&ga);
    gate_open(&b_out);
    atomic_store(&hold_supervisor, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &ga, 1);
    ASSERT_OK(exec_future_on_done(a, hold, NULL)); /* a runs: the callback comes later */
    struct gate gb;
    gate_open(&gb);
    exec_future_t *b = submit_block_tag(ex, &gb, 2, &b_out, 'b');
    exec_future_t *c = submit_block(ex, &g, 3);
    gate_release(&ga, 1); /* a ends, and its callback holds the supervisor */
    uint64_t end = test_now_ms() + GATE_BOUND_MS;
    while (!atomic_load(&held) && test_now_ms() < end)
        test_sleep_ms(1);
    ASSERT_TRUE(atomic_load(&held));
    gate_release(&gb, 1); /* b ends (its completion waits), then c runs */
    ASSERT_EQ(gate_read_within(&b_out, GATE_BOUND_MS), 'b');
    /* b is finished and c runs: nothing queued, one task running. */
    end = test_now_ms() + GATE_BOUND_MS;
    exec_stats_t st = stats_of(ex);
    while ((st.queued != 0 || st.running != 1) && test_now_ms() < end) {
        test_sleep_ms(1);
        st = stats_of(ex);
    }
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.running, 1);
    int r = exec_future_cancel(b, EXEC_CANCEL_RUNNING);
    atomic_store(&hold_supervisor, 0);
    ASSERT_EQ(r, EXEC_EBUSY);
    gate_release(&g, 1);
    ASSERT_EQ(wait_i64(a), 1);
    ASSERT_EQ(wait_i64(c), 3);
    ASSERT_EQ(wait_i64(b), 2);
    ASSERT_EQ(stats_of(ex).crashed, 0);
    gate_close(&gb);
    gate_close(&b_out);
    gate_close(&ga);
    DESTROY_GATED(ex, &g, a, b, c);
}

/* Plays a stop that comes late: marks the request before its own as the one to stop (as the
 * parent does for a deadline or a cancel that it decided just before that task ended), then
 * gets the SIGTERM. Returns 1 if it was told to stop, else 0. */
static int t_late_stop(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg, (void)arg_size;
    struct exec__wregion *rg = exec__test_wregion;
    if (!rg)
        return BAD_CALL;
    atomic_store(&rg->stop_seq, atomic_load(&rg->cur_seq) - 1);
    kill(getpid(), SIGTERM);
    return task_put_i64(out, out_cap, out_size, exec_task_should_stop());
}

/* PROCESSES_ONLY. The rest of the same race: the parent decided to stop a task (cancel,
 * deadline) just before it ended, and its SIGTERM reached the worker while it ran the next
 * task, which then failed with EXEC_ECRASHED. A stop meant for a finished request is now
 * ignored by the worker. */
TEST(soak_late_stop_ignored)
{
    exec_t *ex = make_workers(1);
    exec_future_t *a = submit_echo_i64(ex, 1), *b;
    ASSERT_EQ(wait_i64(a), 1);
    ASSERT_OK(exec_submit(ex, t_late_stop, NULL, 0, &b));
    ASSERT_EQ(wait_i64(b), 0);
    ASSERT_EQ(stats_of(ex).crashed, 0);
    RELEASE_ALL(a, b);
    ASSERT_OK(exec_destroy(ex));
}

static int t_abort_now(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    abort();
}

/* PROCESSES_ONLY. Found in the figures of the 1 M soak (4,019 tasks crashed, 3,027 workers
 * retired for a crash): a worker that crashed after its last request of max_tasks_per_child
 * was sent was counted as retired for its tasks, not for a crash (nor by the crash-loop
 * breaker). Here the crash is the last of its two tasks. */
TEST(soak_crash_in_last_quota_counted)
{
    struct gate g;
    exec_t *ex;
    gate_open(&g);
    exec_config_t cfg = config_workers(1);
    cfg.max_tasks_per_child = 2;
    ex = make_exec(&cfg);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1), *b;
    ASSERT_OK(exec_submit(ex, t_abort_now, NULL, 0, &b)); /* the last of the quota */
    gate_release(&g, 1);
    ASSERT_EQ(wait_i64(a), 1);
    ASSERT_OK(exec_future_wait(b, EXEC_WAIT_FOREVER));
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(b, &ft));
    ASSERT_EQ(ft.code, EXEC_ECRASHED);
    uint64_t end = test_now_ms() + GATE_BOUND_MS;
    while (stats_of(ex).workers_retired < 1 && test_now_ms() < end)
        test_sleep_ms(2);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.retired_crash, 1);
    ASSERT_EQ(st.retired_tasks, 0);
    RELEASE_ALL(a, b);
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);
}
