/* SPDX-License-Identifier: MIT */
/*
 * test_thread_exit.c - a thread task that ends its worker thread: pthread_exit() in the
 * task, pthread_cancel() of the task's thread by the application, an exit in a task run
 * nested inside a wait, and in a map item. The future fails EXEC_ECRASHED with
 * EXEC_CAUSE_THREAD_EXIT (not "never ends"), the worker thread is replaced, and the pool
 * keeps its size and keeps working. THREADS_ONLY: a process worker that calls pthread_exit()
 * exits, which test_process.c covers as a crash.
 */
#include "harness.h"

#include "gate.h"
#include "tasks.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static int t_exit(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n, (void)out, (void)cap, (void)osz;
    pthread_exit(NULL);
}

/* Blocks in a cancellation point (read() of a gate) after publishing its thread; a cleanup
 * handler closes its fd, as cancellation-safe code does. */
static pthread_t victim;
static atomic_int victim_set;

static void close_fd(void *p)
{
    close(*(int *)p);
}

static int t_cancellable(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    int fd = open(arg, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return READ_FAILED;
    int r = READ_FAILED;
    pthread_cleanup_push(close_fd, &fd);
    victim = pthread_self();
    atomic_store(&victim_set, 1);
    char c;
    r = read_retry(fd, &c, 1) == 1 ? 0 : READ_FAILED;
    pthread_cleanup_pop(1);
    return r;
}

static void release_future(void *f)
{
    exec_future_release(f);
}

/* Wait for @child (its thread ends in there: this does not return) and release it; the
 * reference is released by a cleanup handler when the thread unwinds, as cancellation-safe
 * code does. */
static int wait_child(exec_future_t *child, void *out, size_t cap, size_t *osz)
{
    int64_t v = 0;
    pthread_cleanup_push(release_future, child);
    (void)task_wait_i64(child, EXEC_WAIT_FOREVER, &v);
    pthread_cleanup_pop(1);
    return task_put_i64(out, cap, osz, v);
}

/* Submits t_exit to its own executor and waits for it: on one worker, the child runs nested
 * inside this wait, on this same thread, and ends it. */
static int t_wait_child_exit(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    struct ex_arg a;
    if (!task_arg(&a, sizeof a, arg, n))
        return BAD_CALL;
    exec_future_t *child = NULL;
    if (exec_submit(a.ex, t_exit, NULL, 0, &child) != EXEC_OK)
        return BAD_CALL;
    return wait_child(child, out, cap, osz);
}

/* A chain of tasks, each waiting on the next (n: how many more); the last ends its thread.
 * On one worker each runs nested inside its parent's wait, n + 1 levels deep. */
static int t_chain(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    struct ex_arg a;
    if (!task_arg(&a, sizeof a, arg, n))
        return BAD_CALL;
    if (a.n == 0)
        pthread_exit(NULL);
    a.n--;
    exec_future_t *child = NULL;
    if (exec_submit(a.ex, t_chain, &a, sizeof a, &child) != EXEC_OK)
        return BAD_CALL;
    return wait_child(child, out, cap, osz);
}

/* Map item: 3x+1, and item 37 ends its thread. */
static int t_item(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    int64_t x;
    if (!task_arg(&x, sizeof x, arg, n))
        return BAD_CALL;
    if (x == 37)
        pthread_exit(NULL);
    return task_triple(arg, n, out, cap, osz);
}

static void expect_thread_exit(exec_future_t *f)
{
    ASSERT_OK(exec_future_wait(f, GATE_BOUND_MS * test_timeout_scale()));
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_FAILED);
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_EQ(ft.code, EXEC_ECRASHED);
    ASSERT_EQ(ft.cause, EXEC_CAUSE_THREAD_EXIT);
    ASSERT_EQ(ft.signal, 0);
    ASSERT_EQ(ft.exit_status, -1);
    ASSERT_GE(ft.worker_id, 0);
}

/* The pool still has @workers workers that run tasks at once: @workers blocked tasks all
 * start, then all finish. */
/* The stats are a snapshot: a worker counts its task as ended just after the future ended,
 * so a check right after a wait polls for a moment. */
static exec_stats_t settled_stats(exec_t *ex)
{
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    while (stats_of(ex).running != 0 && test_now_ms() < end)
        test_sleep_ms(2);
    return stats_of(ex);
}

static void expect_full_pool(exec_t *ex, int workers)
{
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    while (stats_of(ex).workers_alive != (uint64_t)workers && test_now_ms() < end)
        test_sleep_ms(5);
    ASSERT_EQ(stats_of(ex).workers_alive, (uint64_t)workers);
    struct gate g;
    gate_open(&g);
    exec_future_t *fs[8];
    for (int i = 0; i < workers; i++)
        fs[i] = SUBMIT_RUNNING(ex, &g, i);
    gate_release(&g, workers);
    for (int i = 0; i < workers; i++) {
        ASSERT_RESULT_I64(fs[i], i);
        exec_future_release(fs[i]);
    }
    gate_close(&g);
}

TEST(thread_exit_in_task)
{
    exec_t *ex = make_workers(2);
    for (int round = 0; round < 3; round++) {
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, t_exit, NULL, 0, &f));
        expect_thread_exit(f);
        exec_future_release(f);
    }
    expect_full_pool(ex, 2);
    exec_stats_t st = settled_stats(ex);
    ASSERT_EQ(st.crashed, 3);
    ASSERT_EQ(st.failed, 3);
    ASSERT_EQ(st.running, 0);
    ASSERT_OK(exec_destroy(ex));
}

TEST(thread_exit_cancelled_by_application)
{
    struct gate g;
    exec_t *ex = make_gated(&g, 2);
    char path[GATE_PATH];
    gate_path(path, &g);
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, t_cancellable, path, sizeof path, &f));
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    while (!atomic_load(&victim_set) && test_now_ms() < end)
        test_sleep_ms(1);
    ASSERT_TRUE(atomic_load(&victim_set));
    ASSERT_EQ(pthread_cancel(victim), 0);
    expect_thread_exit(f);
    exec_future_release(f);
    expect_full_pool(ex, 2);
    destroy_gated(ex, &g);
}

/* One worker: the parent task waits on its child, the child runs nested in that wait on the
 * same thread and ends it: both fail, and the replacement serves the next tasks. */
TEST(thread_exit_nested)
{
    exec_t *ex = make_workers(1);
    struct ex_arg a = {.ex = ex};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, t_wait_child_exit, &a, sizeof a, &f));
    expect_thread_exit(f);
    exec_future_release(f);
    expect_full_pool(ex, 1);
    ASSERT_EQ(stats_of(ex).crashed, 2);
    ASSERT_OK(exec_destroy(ex));
}

/* Twenty levels of nested waits (deeper than the frames a slot keeps inline): every task of
 * the chain fails, nothing leaks, and the replacement serves. */
TEST(thread_exit_deep_nesting)
{
    exec_t *ex = make_workers(1);
    struct ex_arg a = {.ex = ex, .n = 20};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, t_chain, &a, sizeof a, &f));
    expect_thread_exit(f);
    exec_future_release(f);
    expect_full_pool(ex, 1);
    exec_stats_t st = settled_stats(ex);
    ASSERT_EQ(st.crashed, 21);
    ASSERT_EQ(st.running, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* A map item that ends its thread: that item fails EXEC_ECRASHED, every other item (before
 * it in its chunk, after it, elsewhere) has its result, and the map says so. */
TEST(thread_exit_in_map_item)
{
    exec_t *ex = make_workers(2);
    enum { N = 100 };
    int64_t in[N], out[N];
    int st[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    memset(out, 0, sizeof out);
    exec_map_opts_t o = {.chunk_size = 10, .status = st};
    ASSERT_ERR(exec_map(ex, t_item, in, 8, out, 8, N, &o), EXEC_ECRASHED);
    ASSERT_EQ(o.failed, 1);
    ASSERT_EQ(o.first_failed, 37);
    for (int i = 0; i < N; i++) {
        if (i == 37) {
            ASSERT_EQ(st[i], EXEC_ECRASHED);
            continue;
        }
        ASSERT_EQ(st[i], 0);
        ASSERT_EQ(out[i], 3 * i + 1);
    }
    expect_full_pool(ex, 2);
    ASSERT_OK(exec_destroy(ex));
}
