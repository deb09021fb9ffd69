/* SPDX-License-Identifier: MIT */
/*
 * test_pool.c - how the pool itself behaves: nested submission and waiting from inside tasks,
 * worker recycling (max_tasks_per_child), the signal mask and scheduling policy of worker
 * threads, the library's hands-off policy on signal handlers, the worker count, and shutdown
 * with queued work.
 *
 * Most tests here are THREADS_ONLY: they pass an executor pointer or pipe fds to a task, or
 * look at thread identity, none of which means anything in a worker process.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Nested submission                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* The tasks here that use an executor themselves take a struct ex_arg (tests/tasks.h): n
 * is a depth, the x of a triple, or the count of a nested map's items (base, base + 1...). */

/* THREADS_ONLY (nested submission to the parent's executor): submit the child, wait on it,
 * return depth. */
static int chain(const void *arg, size_t arg_size, void *out, size_t out_cap,
                 size_t *out_size)
{
    struct ex_arg nd;
    if (!task_arg(&nd, sizeof nd, arg, arg_size))
        return BAD_CALL;
    if (nd.n > 0) {
        struct ex_arg child = {nd.ex, nd.n - 1, 0};
        exec_future_t *f;
        if (exec_submit(nd.ex, chain, &child, sizeof child, &f) != 0)
            return 10;
        int64_t v = -1;
        (void)task_wait_i64(f, EXEC_WAIT_FOREVER, &v); /* v stays -1 on failure */
        exec_future_release(f);
        if (v != nd.n - 1)
            return 11;
    }
    return task_put_i64(out, out_cap, out_size, nd.n);
}

/* Run the nested task @fn with n = @n on @ex; returns its result. */
static int64_t run_nested(exec_t *ex, exec_task_fn *fn, int64_t n)
{
    struct ex_arg root = {ex, n, 0};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, fn, &root, sizeof root, &f));
    int64_t v = wait_i64(f);
    exec_future_release(f);
    return v;
}

/* A chain of 1,000 tasks, each waiting on the next, on two workers. */
TEST(pool_recursive_chain)
{
    exec_t *ex = make_workers(2);
    ASSERT_EQ(run_nested(ex, chain, 1000), 1000);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 1001);
    ASSERT_EQ(st.completed, 1001);
    ASSERT_OK(exec_destroy(ex));
}

/* THREADS_ONLY (nested submission): submit two children, wait on both, return the size of
 * the subtree. */
static int fan_out(const void *arg, size_t arg_size, void *out, size_t out_cap,
                   size_t *out_size)
{
    struct ex_arg nd;
    if (!task_arg(&nd, sizeof nd, arg, arg_size))
        return BAD_CALL;
    int64_t total = 1;
    if (nd.n > 0) {
        struct ex_arg child = {nd.ex, nd.n - 1, 0};
        exec_future_t *f[2] = {NULL, NULL};
        int bad = 0;
        for (int i = 0; i < 2; i++)
            if (exec_submit(nd.ex, fan_out, &child, sizeof child, &f[i]) != 0)
                bad = 1;
        for (int i = 0; i < 2 && !bad; i++) {
            int64_t v = 0;
            (void)task_wait_i64(f[i], EXEC_WAIT_FOREVER, &v); /* v stays 0 on failure */
            if (v != ((int64_t)1 << nd.n) - 1) /* a child's subtree: 2^depth - 1 nodes */
                bad = 1;
            total += v;
        }
        exec_future_release(f[0]);
        exec_future_release(f[1]);
        if (bad)
            return 12;
    }
    return task_put_i64(out, out_cap, out_size, total);
}

/* A binary tree of depth 10 (2,047 tasks), each waiting on both children, on two workers. */
TEST(pool_fan_out_tree)
{
    exec_t *ex = make_workers(2);
    ASSERT_EQ(run_nested(ex, fan_out, 10), 2047);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Worker recycling                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Per worker thread: how many tasks this thread ran, and a serial number that names the
 * thread for the whole test (tids can be reused by the kernel; serials are not). */
static _Thread_local uint32_t tl_count;
static _Thread_local uint32_t tl_serial;
static atomic_uint serial_source;

struct tally {
    uint32_t count;
    uint32_t serial;
    int64_t tid;
};

/* THREADS_ONLY (thread-local state): count this task and name the thread that ran it. */
static int count_in_thread(const void *arg, size_t arg_size, void *out, size_t out_cap,
                           size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    if (!tl_serial)
        tl_serial = atomic_fetch_add(&serial_source, 1) + 1;
    struct tally t = {++tl_count, tl_serial, gettid()};
    if (out_cap < sizeof t)
        return BAD_CALL;
    memcpy(out, &t, sizeof t);
    *out_size = sizeof t;
    return 0;
}

static void check_recycling(uint32_t max_tasks)
{
    enum { M = 60, WORKERS = 2 };
    exec_t *ex = make_with(WORKERS, (exec_config_t){.max_tasks_per_child = max_tasks});
    exec_future_t *f[M];
    for (int i = 0; i < M; i++)
        ASSERT_OK(exec_submit(ex, count_in_thread, NULL, 0, &f[i]));

    /* seen[s][c]: whether thread serial s reported count c. */
    static unsigned char seen[M + 1][M + 2];
    memset(seen, 0, sizeof seen);
    uint32_t max_serial = 0;
    for (int i = 0; i < M; i++) {
        ASSERT_OK(exec_future_wait(f[i], EXEC_WAIT_FOREVER));
        const void *r;
        size_t size;
        ASSERT_OK(exec_future_result(f[i], &r, &size));
        ASSERT_EQ(size, sizeof(struct tally));
        struct tally t;
        memcpy(&t, r, sizeof t);
        /* A thread-local counter starts fresh in each replacement and never passes N. */
        ASSERT_LE(1, t.count);
        ASSERT_LE(t.count, max_tasks);
        ASSERT_LE(1, t.serial);
        ASSERT_LE(t.serial, M);
        ASSERT_EQ(seen[t.serial][t.count], 0);
        seen[t.serial][t.count] = 1;
        if (t.serial > max_serial)
            max_serial = t.serial;
        exec_future_release(f[i]);
    }
    /* Each thread ran tasks 1..k, k <= N; threads that reached N are the retired ones, and
     * at most WORKERS threads (the ones still alive) stopped short of N. */
    uint64_t reached = 0, short_of = 0;
    for (uint32_t s = 1; s <= max_serial; s++) {
        uint32_t k = 0;
        while (k + 1 <= max_tasks && seen[s][k + 1])
            k++;
        for (uint32_t c = k + 1; c <= M; c++)
            ASSERT_EQ(seen[s][c], 0);
        if (k == max_tasks)
            reached++;
        else if (k > 0)
            short_of++;
    }
    ASSERT_LE(short_of, WORKERS);
    ASSERT_LE(1, reached);

    /* A worker retires after its N-th task has finished, so the counter may lag the last
     * future a little: poll (bounded) until it catches up, then it must be exact. */
    exec_stats_t st;
    for (int i = 0; i < 5000; i++) {
        ASSERT_OK(exec_stats(ex, &st));
        if (st.workers_retired >= reached && st.workers_alive == WORKERS)
            break;
        test_sleep_ms(1);
    }
    ASSERT_EQ(st.workers_retired, reached);
    ASSERT_EQ(st.retired_tasks, reached);
    ASSERT_EQ(st.workers_alive, WORKERS);
    ASSERT_EQ(st.retired_memory + st.retired_age + st.retired_timeout + st.retired_crash, 0);
    ASSERT_OK(exec_destroy(ex));
}

TEST(pool_max_tasks_per_child_1)
{
    check_recycling(1);
}

TEST(pool_max_tasks_per_child_3)
{
    check_recycling(3);
}

TEST(pool_max_tasks_per_child_10)
{
    check_recycling(10);
}

/* ---------------------------------------------------------------------------------------- */
/* Signals                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static const int async_signals[] = {SIGINT, SIGTERM, SIGUSR1, SIGALRM, SIGCHLD};
#define N_ASYNC (sizeof async_signals / sizeof async_signals[0])

/* THREADS_ONLY: returns a bitmask, bit i set when async_signals[i] is blocked in the worker
 * thread (worker processes ignore SIGINT rather than block it: a different contract). */
static int blocked_signals(const void *arg, size_t arg_size, void *out, size_t out_cap,
                           size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    sigset_t set;
    sigemptyset(&set);
    if (pthread_sigmask(SIG_BLOCK, NULL, &set) != 0)
        return 96;
    int64_t mask = 0;
    for (size_t i = 0; i < N_ASYNC; i++)
        if (sigismember(&set, async_signals[i]) == 1)
            mask |= (int64_t)1 << i;
    return task_put_i64(out, out_cap, out_size, mask);
}

/* Worker threads block asynchronous signals, so they land on the application's threads. */
TEST(pool_worker_signals_blocked)
{
    /* The calling thread blocks none of them: the workers must not inherit that. */
    sigset_t none, old;
    sigemptyset(&none);
    for (size_t i = 0; i < N_ASYNC; i++)
        sigaddset(&none, async_signals[i]);
    ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &none, &old), 0);
    exec_t *ex = make_workers(2);
    for (int i = 0; i < 8; i++) {
        exec_future_t *f;
        ASSERT_OK(exec_submit(ex, blocked_signals, NULL, 0, &f));
        ASSERT_EQ(wait_i64(f), ((int64_t)1 << N_ASYNC) - 1);
        exec_future_release(f);
    }
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* THREADS_ONLY: the scheduling policy of the worker thread that runs it. */
static int sched_policy(const void *arg, size_t arg_size, void *out, size_t out_cap,
                        size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    return task_put_i64(out, out_cap, out_size, sched_getscheduler(0));
}

/* Eight tasks on a fresh executor of @cfg each find their worker under policy @want. */
static void worker_policies(const exec_config_t *cfg, int64_t want)
{
    exec_t *ex;
    ASSERT_OK(exec_create(&ex, cfg));
    for (int i = 0; i < 8; i++) {
        exec_future_t *f;
        ASSERT_OK(exec_submit(ex, sched_policy, NULL, 0, &f));
        ASSERT_EQ(wait_i64(f), want);
        exec_future_release(f);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* Worker threads run under SCHED_BATCH (a woken worker does not preempt the thread that
 * submitted to it), the calling thread keeps its own policy; replaced threads too. */
TEST(pool_worker_sched_batch)
{
    ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
    exec_config_t cfg = {0};
    cfg.workers = 2;
    worker_policies(&cfg, SCHED_BATCH);
    cfg.max_tasks_per_child = 1; /* every task on a new thread */
    worker_policies(&cfg, SCHED_BATCH);
    ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
}

/* Only SCHED_OTHER becomes SCHED_BATCH: a program whose thread runs under another policy
 * (here SCHED_IDLE, which needs no privilege) gives its workers that policy, as
 * pthread_create() does. */
TEST(pool_worker_sched_inherited)
{
    struct sched_param sp = {0};
    ASSERT_EQ(sched_setscheduler(0, SCHED_IDLE, &sp), 0); /* this test's own child process */
    exec_config_t cfg = {0};
    cfg.workers = 2;
    worker_policies(&cfg, SCHED_IDLE);
}

/* THREADS_ONLY initializer: puts its worker thread back under SCHED_OTHER. */
static int init_sched_other(const void *arg, size_t arg_size, void *out, size_t out_cap,
                            size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp) != 0)
        return 97;
    return task_put_i64(out, out_cap, out_size, 0); /* ignored: an initializer's output */
}

/* The way out documented in the header: an initializer sets the policy it wants. */
TEST(pool_worker_sched_initializer)
{
    exec_config_t cfg = {0};
    cfg.workers = 2;
    cfg.initializer = init_sched_other;
    worker_policies(&cfg, SCHED_OTHER);
}

static const int handled_signals[] = {SIGCHLD, SIGINT, SIGTERM, SIGPIPE, SIGSEGV};
#define N_HANDLED (sizeof handled_signals / sizeof handled_signals[0])

static void snapshot_handlers(struct sigaction *sa)
{
    for (size_t i = 0; i < N_HANDLED; i++) {
        memset(&sa[i], 0, sizeof sa[i]);
        ASSERT_EQ(sigaction(handled_signals[i], NULL, &sa[i]), 0);
    }
}

static void same_handlers(const struct sigaction *a, const struct sigaction *b)
{
    for (size_t i = 0; i < N_HANDLED; i++) {
        /* sa_handler and sa_sigaction share storage: compare it whichever flag is set. */
        ASSERT_EQ((uintptr_t)a[i].sa_handler, (uintptr_t)b[i].sa_handler);
        ASSERT_EQ(a[i].sa_flags, b[i].sa_flags);
    }
}

/* BOTH_BACKENDS: the library installs no signal handler, at any point of an executor's life. */
TEST(pool_no_signal_handlers)
{
    struct sigaction before[N_HANDLED], now[N_HANDLED];
    snapshot_handlers(before);
    exec_t *ex = make_workers(2);
    snapshot_handlers(now);
    same_handlers(before, now);

    int64_t in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof in[0], out, sizeof out[0], 100, NULL));
    ASSERT_EQ(out[99], 298);
    exec_future_t *f;
    int64_t x = 5;
    ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &f));
    ASSERT_EQ(wait_i64(f), 16);
    exec_future_release(f);
    snapshot_handlers(now);
    same_handlers(before, now);

    ASSERT_OK(exec_shutdown(ex, 0));
    snapshot_handlers(now);
    same_handlers(before, now);
    ASSERT_OK(exec_destroy(ex));
    snapshot_handlers(now);
    same_handlers(before, now);
}

/* ---------------------------------------------------------------------------------------- */
/* Worker count                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* workers = 3: three live workers, three distinct threads run three blocked tasks at once, a
 * fourth task waits in the queue, and it later runs on one of the same three threads. */
TEST(pool_worker_count)
{
    exec_t *ex = make_workers(3);
    exec_stats_t st;
    for (int i = 0; i < 5000; i++) {
        ASSERT_OK(exec_stats(ex, &st));
        if (st.workers_alive == 3)
            break;
        test_sleep_ms(1);
    }
    ASSERT_EQ(st.workers_alive, 3);

    int p[2];
    pipe_open(p);
    exec_future_t *f[4];
    for (int i = 0; i < 4; i++)
        f[i] = submit_pipe_blocker(ex, p);
    int running = 0;
    for (int t = 0; t < 5000 && running < 3; t++) {
        running = 0;
        for (int i = 0; i < 4; i++)
            running += exec_future_state(f[i]) == EXEC_STATE_RUNNING;
        if (running < 3)
            test_sleep_ms(1);
    }
    ASSERT_EQ(running, 3);
    int queued = -1;
    for (int i = 0; i < 4; i++)
        if (exec_future_state(f[i]) != EXEC_STATE_RUNNING)
            queued = i;
    ASSERT_LE(0, queued);
    ASSERT_EQ(exec_future_state(f[queued]), EXEC_STATE_QUEUED);
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.running, 3);
    ASSERT_EQ(st.queued, 1);
    ASSERT_EQ(st.workers_alive, 3);

    /* One byte per task: all four at once, since whichever worker finishes first may take
     * the queued task and read a byte before the other running tasks do. */
    ASSERT_EQ(write(p[1], "abcd", 4), 4);
    int64_t tid[4];
    for (int i = 0, k = 0; i < 4; i++)
        if (i != queued)
            tid[k++] = wait_i64(f[i]);
    tid[3] = wait_i64(f[queued]);
    check_worker_tids(tid, 3, tid[3]);
    for (int i = 0; i < 4; i++)
        exec_future_release(f[i]);
    destroy_with_pipe(ex, p);
}

/* ---------------------------------------------------------------------------------------- */
/* Waiting and mapping from inside tasks                                                     */
/* ---------------------------------------------------------------------------------------- */

/* THREADS_ONLY (executor pointer in the argument): run triple on another executor and wait. */
static int via_other(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    struct ex_arg fw; /* fw.ex: the other executor */
    if (!task_arg(&fw, sizeof fw, arg, arg_size))
        return BAD_CALL;
    exec_future_t *f;
    if (exec_submit(fw.ex, task_triple_submit, &fw.n, sizeof fw.n, &f) != 0)
        return 20;
    int64_t v = 0;
    int e = task_wait_i64(f, 10000, &v);
    exec_future_release(f);
    return e ? 21 : task_put_i64(out, out_cap, out_size, v);
}

/* A task waits on a future of another executor. */
TEST(pool_wait_other_executor)
{
    exec_t *a = make_workers(2);
    exec_t *b = make_workers(1);
    enum { N = 50 };
    exec_future_t *f[N];
    for (int i = 0; i < N; i++) {
        struct ex_arg fw = {b, i, 0};
        ASSERT_OK(exec_submit(a, via_other, &fw, sizeof fw, &f[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(wait_i64(f[i]), 3 * i + 1);
        exec_future_release(f[i]);
    }
    ASSERT_OK(exec_destroy(a));
    ASSERT_OK(exec_destroy(b));
}

/* THREADS_ONLY (executor pointer in the argument): exec_map on our own executor; returns
 * the sum of the results. */
static int map_inside(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    struct ex_arg nm;
    if (!task_arg(&nm, sizeof nm, arg, arg_size))
        return BAD_CALL;
    int64_t *in = calloc((size_t)nm.n, sizeof *in);
    int64_t *res = malloc((size_t)nm.n * sizeof *res);
    if (!in || !res) {
        free(in);
        free(res);
        return 30;
    }
    for (int64_t i = 0; i < nm.n; i++)
        in[i] = nm.base + i;
    int e = exec_map(nm.ex, task_triple, in, sizeof *in, res, sizeof *res, (size_t)nm.n, NULL);
    int64_t sum = 0;
    for (int64_t i = 0; i < nm.n; i++) {
        if (res[i] != in[i] * 3 + 1)
            e = e ? e : 31;
        sum += res[i];
    }
    free(in);
    free(res);
    return e ? 32 : task_put_i64(out, out_cap, out_size, sum);
}

/* exec_map called from inside tasks of the same executor completes, even with every worker
 * inside such a task. */
TEST(pool_nested_map)
{
    exec_t *ex = make_workers(2);
    enum { K = 5 };
    exec_future_t *f[K];
    for (int i = 0; i < K; i++) {
        struct ex_arg nm = {ex, 20000, 1000 * i};
        ASSERT_OK(exec_submit(ex, map_inside, &nm, sizeof nm, &f[i]));
    }
    for (int i = 0; i < K; i++) {
        int64_t want = 0;
        for (int64_t x = 1000 * i; x < 1000 * i + 20000; x++)
            want += 3 * x + 1;
        ASSERT_EQ(wait_i64(f[i]), want);
        exec_future_release(f[i]);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Shutdown                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct shutter {
    exec_t *ex;
    int ret;
};

static void *shutdown_thread(void *arg)
{
    struct shutter *s = arg;
    s->ret = exec_shutdown(s->ex, 0);
    return NULL;
}

/* exec_shutdown(0) with tasks queued behind a blocked worker runs them all. */
TEST(pool_shutdown_runs_queued)
{
    exec_t *ex = make_workers(1);
    int p[2];
    pipe_open(p);
    exec_future_t *blocker = submit_pipe_blocker(ex, p);
    WAIT_STATE(blocker, EXEC_STATE_RUNNING);
    enum { N = 50 };
    exec_future_t *f[N];
    for (int i = 0; i < N; i++) {
        int64_t x = i;
        ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &f[i]));
    }
    for (int i = 0; i < N; i++)
        ASSERT_EQ(exec_future_state(f[i]), EXEC_STATE_QUEUED);

    struct shutter s = {ex, -100};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, shutdown_thread, &s), 0);
    /* The shutdown has begun once submit refuses; until then probes are accepted (and must
     * run too). */
    int e = 0;
    for (int i = 0; i < 5000 && e == 0; i++) {
        e = exec_submit(ex, task_noop, NULL, 0, NULL);
        if (e == 0)
            test_sleep_ms(1);
    }
    ASSERT_ERR(e, EXEC_ESHUTDOWN);
    ASSERT_EQ(exec_future_state(blocker), EXEC_STATE_RUNNING);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(s.ret);

    ASSERT_EQ(exec_future_state(blocker), EXEC_STATE_DONE);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(exec_future_state(f[i]), EXEC_STATE_DONE);
        ASSERT_EQ(wait_i64(f[i]), 3 * i + 1);
        exec_future_release(f[i]);
    }
    exec_future_release(blocker);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.completed, st.submitted);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.running, 0);
    ASSERT_EQ(st.cancelled, 0);
    destroy_with_pipe(ex, p);
}
