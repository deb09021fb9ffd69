/* SPDX-License-Identifier: MIT */
/*
 * test_inside.c - exec_shutdown(ex, 0) from inside one of the executor's own tasks or
 * done-callbacks: it refuses new work at once, runs (or with EXEC_SHUTDOWN_CANCEL cancels)
 * what is queued, waits for every task but the caller's own and returns EXEC_OK, while the
 * pool keeps moving (on processes the callback runs on the supervisor thread; on threads a
 * deadline callback runs on the timer thread). exec_destroy() from there stays EXEC_EDEADLK,
 * and a later exec_destroy() from outside joins the rest.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* Sleeps for the int32 milliseconds of its argument; result: the same int32. */
static int sleep_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    int32_t ms;
    if (!task_arg(&ms, sizeof ms, arg, arg_size))
        return BAD_CALL;
    test_sleep_ms((unsigned)ms);
    return task_put(out, out_cap, out_size, &ms, sizeof ms);
}

static bool terminal(const exec_future_t *f)
{
    int st = exec_future_state(f);
    return st == EXEC_STATE_DONE || st == EXEC_STATE_FAILED || st == EXEC_STATE_CANCELLED;
}

enum { NQ = 12 };

/* What the callback did, for the test to check. */
struct inside {
    exec_t *ex;
    unsigned flags;
    exec_future_t *others[NQ + 1];
    _Atomic int destroy_rc, shutdown_rc, submit_rc, ended, calls;
};

static void shutdown_in_callback(exec_future_t *f, void *user_data)
{
    (void)f;
    struct inside *c = user_data;
    atomic_store(&c->destroy_rc, exec_destroy(c->ex));
    atomic_store(&c->shutdown_rc, exec_shutdown(c->ex, c->flags));
    atomic_store(&c->submit_rc, exec_submit(c->ex, task_noop, NULL, 0, NULL));
    int ended = 0;
    for (int i = 0; i < NQ + 1; i++)
        ended += terminal(c->others[i]);
    atomic_store(&c->ended, ended);
    atomic_fetch_add(&c->calls, 1);
}

/* Task a (gated) ends and its done-callback (on the worker thread, or the supervisor)
 * shuts the executor down: task b (gated too) and NQ sleepers queued behind it. The callback
 * cannot return while b is blocked; once b is let go it returns EXEC_OK, with b and every
 * sleeper ended (run, or with @flags EXEC_SHUTDOWN_CANCEL cancelled: one worker, blocked in b,
 * cannot have started any). @mt: max_tasks_per_child (1: a's worker retires, and b needs a
 * new one, which only a moving pool gives). */
static void check_callback(int workers, uint32_t mt, unsigned flags)
{
    struct gate ga, gb;
    gate_open(&ga);
    gate_open(&gb);
    exec_t *ex = make_with(workers, (exec_config_t){.max_tasks_per_child = mt});
    struct inside c = {.ex = ex, .flags = flags};
    atomic_init(&c.destroy_rc, 1);
    atomic_init(&c.shutdown_rc, 1);
    atomic_init(&c.submit_rc, 1);
    atomic_init(&c.ended, -1);
    atomic_init(&c.calls, 0);
    exec_future_t *a = SUBMIT_RUNNING(ex, &ga, 1);
    c.others[0] = submit_block(ex, &gb, 2);
    for (int i = 1; i <= NQ; i++) {
        int32_t ms = 2;
        ASSERT_OK(exec_submit(ex, sleep_task, &ms, sizeof ms, &c.others[i]));
    }
    ASSERT_OK(exec_future_on_done(a, shutdown_in_callback, &c));
    gate_release(&ga, 1);
    if (!(flags & EXEC_SHUTDOWN_CANCEL)) {
        /* The callback waits for b, which waits for us. */
        WAIT_STATE(c.others[0], EXEC_STATE_RUNNING);
        test_sleep_ms(20);
        ASSERT_EQ(atomic_load(&c.calls), 0);
    }
    /* Refused at once (with CANCEL, b may have been cancelled before it started). */
    while (exec_submit(ex, task_noop, NULL, 0, NULL) == EXEC_OK)
        test_sleep_ms(1);
    ASSERT_EQ(exec_submit(ex, task_noop, NULL, 0, NULL), EXEC_ESHUTDOWN);
    gate_release(&gb, 1);
    uint64_t t0 = test_now_ms();
    while (atomic_load(&c.calls) == 0) {
        ASSERT_LT(test_now_ms() - t0, (uint64_t)GATE_BOUND_MS * test_timeout_scale());
        test_sleep_ms(1);
    }
    ASSERT_ERR(atomic_load(&c.destroy_rc), EXEC_EDEADLK);
    ASSERT_OK(atomic_load(&c.shutdown_rc));
    ASSERT_ERR(atomic_load(&c.submit_rc), EXEC_ESHUTDOWN);
    ASSERT_EQ(atomic_load(&c.ended), NQ + 1);
    ASSERT_RESULT_I64(a, 1);
    if (!(flags & EXEC_SHUTDOWN_CANCEL)) {
        ASSERT_RESULT_I64(c.others[0], 2);
        for (int i = 1; i <= NQ; i++)
            ASSERT_EQ(exec_future_state(c.others[i]), EXEC_STATE_DONE);
    } else {
        /* Queued behind b on the one worker: at most the first sleeper can have started
         * (if b was cancelled before it did, on processes). */
        for (int i = 2; i <= NQ; i++)
            ASSERT_EQ(exec_future_state(c.others[i]), EXEC_STATE_CANCELLED);
    }
    ASSERT_OK(exec_destroy(ex));
    exec_future_release(a);
    for (int i = 0; i <= NQ; i++)
        exec_future_release(c.others[i]);
    gate_close(&ga);
    gate_close(&gb);
}

TEST(inside_callback_shutdown_waits)
{
    check_callback(1, 0, 0);
}

TEST(inside_callback_shutdown_cancels)
{
    check_callback(1, 0, EXEC_SHUTDOWN_CANCEL);
}

TEST(inside_callback_shutdown_recycles)
{
    check_callback(1, 1, 0);
    check_callback(3, 1, 0);
}

/* THREADS_ONLY (the executor's address in the argument): a task shuts its own executor
 * down. With one worker the task runs the queued ones itself; with three the others do.
 * Either way exec_shutdown() returns once every other task has run, and refuses new work. */
struct count_arg {
    _Atomic int *ran;
};

static int count_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)out, (void)out_cap, (void)out_size;
    struct count_arg a;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    test_sleep_ms(1);
    atomic_fetch_add(a.ran, 1);
    return 0;
}

struct shut_arg {
    exec_t *ex;
    _Atomic int *ran, *go;
    unsigned flags;
};

static int shutdown_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                         size_t *out_size)
{
    struct shut_arg a;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    while (!atomic_load(a.go)) /* until every other task is queued */
        test_sleep_ms(1);
    int32_t r[4];
    r[0] = exec_shutdown(a.ex, a.flags);
    r[1] = atomic_load(a.ran); /* what had run when it returned */
    r[2] = exec_submit(a.ex, task_noop, NULL, 0, NULL);
    r[3] = exec_destroy(a.ex);
    return task_put(out, out_cap, out_size, r, sizeof r);
}

static void check_task(int workers, unsigned flags)
{
    exec_t *ex = make_workers(workers);
    _Atomic int ran, go;
    atomic_init(&ran, 0);
    atomic_init(&go, 0);
    struct shut_arg s = {ex, &ran, &go, flags};
    struct count_arg ca = {&ran};
    exec_future_t *f, *q[NQ];
    ASSERT_OK(exec_submit(ex, shutdown_task, &s, sizeof s, &f));
    for (int i = 0; i < NQ; i++)
        ASSERT_OK(exec_submit(ex, count_task, &ca, sizeof ca, &q[i]));
    atomic_store(&go, 1);
    int32_t r[4];
    WAIT_RESULT(f, r, sizeof r);
    ASSERT_OK(r[0]);
    ASSERT_ERR(r[2], EXEC_ESHUTDOWN);
    ASSERT_ERR(r[3], EXEC_EDEADLK);
    int done = 0;
    for (int i = 0; i < NQ; i++) {
        ASSERT_TRUE(terminal(q[i])); /* ended before the shutdown returned */
        done += exec_future_state(q[i]) == EXEC_STATE_DONE;
    }
    ASSERT_EQ(r[1], done);
    if (!(flags & EXEC_SHUTDOWN_CANCEL))
        ASSERT_EQ(done, NQ);
    ASSERT_OK(exec_destroy(ex));
    exec_future_release(f);
    for (int i = 0; i < NQ; i++)
        exec_future_release(q[i]);
}

TEST(inside_task_shutdown_waits)
{
    check_task(1, 0);
    check_task(3, 0);
    check_task(3, EXEC_SHUTDOWN_CANCEL);
}

/* THREADS_ONLY: a deadline callback on the timer thread shuts down while another task runs
 * until its own deadline: the timer still fails that one at its deadline (the task would
 * otherwise run for 20 s and end DONE). */
TEST(inside_deadline_callback_keeps_timer)
{
    struct gate g;
    exec_t *ex = make_gated(&g, 2);
    struct inside c = {.ex = ex};
    atomic_init(&c.destroy_rc, 1);
    atomic_init(&c.shutdown_rc, 1);
    atomic_init(&c.submit_rc, 1);
    atomic_init(&c.ended, -1);
    atomic_init(&c.calls, 0);
    /* Both workers held, so that a cannot start (nor reach its deadline) before its
     * callback is registered; then a and the other one start together. */
    exec_future_t *b1 = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b2 = SUBMIT_RUNNING(ex, &g, 2);
    exec_submit_opts_t o1 = {.timeout_ms = 30}, o2 = {.timeout_ms = 300};
    exec_future_t *a = NULL;
    ASSERT_OK(exec_submit_ex(ex, task_until_stopped, NULL, 0, &o1, &a));
    ASSERT_OK(exec_submit_ex(ex, task_until_stopped, NULL, 0, &o2, &c.others[0]));
    for (int i = 1; i <= NQ; i++)
        c.others[i] = exec_future_retain(c.others[0]);
    ASSERT_OK(exec_future_on_done(a, shutdown_in_callback, &c));
    gate_release(&g, 2);
    uint64_t t0 = test_now_ms();
    while (atomic_load(&c.calls) == 0) {
        ASSERT_LT(test_now_ms() - t0, 15000u * (uint64_t)test_timeout_scale());
        test_sleep_ms(1);
    }
    ASSERT_OK(atomic_load(&c.shutdown_rc));
    ASSERT_ERR(atomic_load(&c.destroy_rc), EXEC_EDEADLK);
    ASSERT_EQ(atomic_load(&c.ended), NQ + 1);
    ASSERT_ERR(exec_future_result(a, NULL, NULL), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_future_result(c.others[0], NULL, NULL), EXEC_ETIMEDOUT);
    exec_future_release(a);
    for (int i = 0; i <= NQ; i++)
        exec_future_release(c.others[i]);
    DESTROY_GATED(ex, &g, b1, b2);
}

/* Bad input from inside: unknown flags are EXEC_EINVAL before anything happens (the
 * executor still takes work), from a task (THREADS_ONLY: the address in the argument) and
 * from a done-callback on either backend; a NULL executor is EXEC_EINVAL too. */
static int bad_flags_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                          size_t *out_size)
{
    struct ex_arg a;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    int32_t r[3];
    r[0] = exec_shutdown(a.ex, 4u);
    r[1] = exec_shutdown(a.ex, ~0u);
    r[2] = exec_shutdown(NULL, 0);
    return task_put(out, out_cap, out_size, r, sizeof r);
}

static void bad_flags_callback(exec_future_t *f, void *user_data)
{
    (void)f;
    struct inside *c = user_data;
    atomic_store(&c->shutdown_rc, exec_shutdown(c->ex, 0x80u));
    atomic_store(&c->submit_rc, exec_submit(c->ex, task_noop, NULL, 0, NULL));
    atomic_fetch_add(&c->calls, 1);
}

TEST(inside_bad_input)
{
    exec_t *ex = make_workers(1);
    if (test_backend == EXEC_BACKEND_THREADS) {
        struct ex_arg a = {.ex = ex};
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, bad_flags_task, &a, sizeof a, &f));
        int32_t r[3];
        WAIT_RESULT(f, r, sizeof r);
        ASSERT_ERR(r[0], EXEC_EINVAL);
        ASSERT_ERR(r[1], EXEC_EINVAL);
        ASSERT_ERR(r[2], EXEC_EINVAL);
        exec_future_release(f);
    }
    struct gate g;
    gate_open(&g);
    struct inside c = {.ex = ex};
    atomic_init(&c.shutdown_rc, 1);
    atomic_init(&c.submit_rc, 1);
    atomic_init(&c.calls, 0);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    ASSERT_OK(exec_future_on_done(a, bad_flags_callback, &c));
    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    uint64_t t0 = test_now_ms();
    while (atomic_load(&c.calls) == 0) {
        ASSERT_LT(test_now_ms() - t0, (uint64_t)GATE_BOUND_MS * test_timeout_scale());
        test_sleep_ms(1);
    }
    ASSERT_ERR(atomic_load(&c.shutdown_rc), EXEC_EINVAL);
    ASSERT_OK(atomic_load(&c.submit_rc)); /* nothing was shut down */
    exec_future_t *f = submit_echo_i64(ex, 5);
    ASSERT_RESULT_I64(f, 5);
    RELEASE_ALL(a, f);
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);
}
