/* SPDX-License-Identifier: MIT */
/*
 * test_future.c - futures, tested against the contract in executor.h: waiting (one, any,
 * all, with and without timeouts), states, result bytes, faults, cancellation, done-callbacks,
 * reference counting, and per-task deadlines with the cooperative stop flag.
 *
 * Tasks see only their argument and result bytes. A task that must block waits at a gate, a
 * FIFO whose path travels in its argument bytes (tests/gate.h); a task that must report
 * something the future cannot carry (it ran at all; it saw its stop flag after its result
 * was discarded) writes a byte to a gate.
 * Done-callbacks always run in the calling process (in the thread that finished the future),
 * so they may use the test's memory on every backend.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Liveness bound of every wait in this file: generous, never a speed claim. */
#define BOUND_MS 5000

/* The gate of the running test (each test runs in a child process of its own). */
static struct gate g;
/* How long a looping task runs at most if nobody stops it: longer than BOUND_MS, so that a
 * missing stop shows up as a failed wait, yet far below the runner's alarm. */
#define LOOP_MAX_MS 8000

/* atomic_load() as a function, so that assertion messages show a readable expression. */
static int load(atomic_int *a)
{
    return atomic_load(a);
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Loops until exec_task_should_stop() (or LOOP_MAX_MS), then writes 'S' (stopped) or 'N'
 * (never asked) to the gate out. */
struct loop_arg {
    char out[GATE_PATH];
};

static int loop_until_stop(const void *arg, size_t arg_size, void *out, size_t out_cap,
                           size_t *out_size)
{
    struct loop_arg a;
    (void)out, (void)out_cap, (void)out_size;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    uint64_t end = test_now_ms() + LOOP_MAX_MS;
    char tag = 'N';
    while (test_now_ms() < end) {
        if (exec_task_should_stop()) {
            tag = 'S';
            break;
        }
        test_sleep_ms(1);
    }
    return task_gate_post(a.out, tag) == 0 ? 0 : READ_FAILED;
}

/* Waits (polling) at the gate whose path is its argument, watching its stop flag meanwhile;
 * result: int64 1 if the flag was ever set, else 0. */
static int poll_gate_watch_stop(const void *arg, size_t arg_size, void *out, size_t out_cap,
                                size_t *out_size)
{
    char path[GATE_PATH];
    if (arg_size != sizeof path || out_cap < sizeof(int64_t))
        return BAD_CALL;
    memcpy(path, arg, sizeof path);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return READ_FAILED;
    int64_t saw = 0;
    uint64_t end = test_now_ms() + LOOP_MAX_MS;
    int rc = READ_FAILED;
    while (test_now_ms() < end) {
        saw |= exec_task_should_stop();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&p, 1, 5) == 1 && read_retry(fd, &c, 1) == 1) {
            rc = 0;
            break;
        }
    }
    close(fd);
    saw |= exec_task_should_stop();
    memcpy(out, &saw, sizeof saw);
    *out_size = sizeof saw;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Poll an atomic counter until it reaches @want (callbacks may run just after a wait
 * returns: the contract does not order them with waiters). */
#define WAIT_COUNT(counter, want) wait_count_((counter), (want), __FILE__, __LINE__)
static void wait_count_(atomic_int *c, int want, const char *file, int line)
{
    uint64_t end = test_now_ms() + BOUND_MS;
    while (atomic_load(c) < want) {
        if (test_now_ms() > end)
            test_fail_(file, line, "counter %d, want %d within %d ms", atomic_load(c), want,
                       BOUND_MS);
        test_sleep_ms(1);
    }
}

/* The fault fields every backend fills the same way for a task that ran on a worker. */
static void check_ran_on_worker(const exec_fault_t *ft, int workers)
{
    ASSERT_GE(ft->worker_id, 0);
    ASSERT_LT(ft->worker_id, workers);
    if (test_backend == EXEC_BACKEND_THREADS)
        ASSERT_EQ(ft->worker_pid, 0);
    else
        ASSERT_GT(ft->worker_pid, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Waiting                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Timeout 0 polls, a short timeout expires, neither ends the task; once it ended, every
 * wait returns EXEC_OK at once. */
TEST(future_wait_timeout)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 5);
    ASSERT_ERR(exec_future_wait(f, 0), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_future_wait(f, 30), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_future_wait(f, 1), EXEC_ETIMEDOUT);
    int st = exec_future_state(f);
    ASSERT_TRUE(st == EXEC_STATE_QUEUED || st == EXEC_STATE_RUNNING);
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    ASSERT_OK(exec_future_wait(f, 0));
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    ASSERT_RESULT_I64(f, 5);
    DESTROY_GATED(ex, &g, f);
}

/* EXEC_WAIT_FOREVER sleeps until another thread lets the task finish. */
TEST(future_wait_forever)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 6);
    struct gate_later later;
    gate_release_later(&later, &g, 1);
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    gate_later_join(&later);
    ASSERT_RESULT_I64(f, 6);
    DESTROY_GATED(ex, &g, f);
}

/* NULL future or a negative timeout other than EXEC_WAIT_FOREVER: EXEC_EINVAL, pending or
 * terminal. */
TEST(future_wait_invalid)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 1);
    ASSERT_ERR(exec_future_wait(NULL, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait(NULL, EXEC_WAIT_FOREVER), EXEC_EINVAL);
    static const int bad[] = {-5, -2, -1000, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_ERR(exec_future_wait(f, bad[i]), EXEC_EINVAL);
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_ERR(exec_future_wait(f, bad[i]), EXEC_EINVAL);
    DESTROY_GATED(ex, &g, f);
}

/* QUEUED while the only worker is busy, RUNNING once it takes the task, DONE at the end. */
TEST(future_state_transitions)
{
    exec_t *ex = make_gated(&g, 1);
    ASSERT_ERR(exec_future_state(NULL), EXEC_EINVAL);
    exec_future_t *a = submit_block(ex, &g, 1);
    exec_future_t *b = submit_block(ex, &g, 2);
    WAIT_STATE(a, EXEC_STATE_RUNNING);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);
    gate_release(&g, 1);
    WAIT_STATE(a, EXEC_STATE_DONE);
    WAIT_STATE(b, EXEC_STATE_RUNNING);
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_DONE);
    gate_release(&g, 1);
    WAIT_STATE(b, EXEC_STATE_DONE);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_DONE);
    DESTROY_GATED(ex, &g, a, b);
}

/* wait_any: the index of the one that finished among blocked ones; the lowest index when
 * several are terminal; EXEC_ETIMEDOUT when none finishes; a sleeping wait woken by one. */
TEST(future_wait_any)
{
    exec_t *ex = make_gated(&g, 3);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = SUBMIT_RUNNING(ex, &g, 2);

    exec_future_t *blocked[2] = {a, b};
    ASSERT_ERR(exec_future_wait_any(blocked, 2, 0), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_future_wait_any(blocked, 2, 50), EXEC_ETIMEDOUT);

    exec_future_t *c = submit_echo_i64(ex, 3);
    exec_future_t *abc[3] = {a, b, c};
    ASSERT_EQ(exec_future_wait_any(abc, 3, BOUND_MS), 2);
    ASSERT_EQ(exec_future_wait_any(abc, 3, 0), 2);
    exec_future_t *ca[2] = {c, a};
    ASSERT_EQ(exec_future_wait_any(ca, 2, 0), 0);
    exec_future_t *d = submit_echo_i64(ex, 4);
    ASSERT_OK(exec_future_wait(d, BOUND_MS));
    exec_future_t *adc[3] = {a, d, c};
    ASSERT_EQ(exec_future_wait_any(adc, 3, EXEC_WAIT_FOREVER), 1); /* lowest of d, c */

    /* Asleep in wait_any when one of the blocked ones finishes. */
    struct gate_later later;
    gate_release_later(&later, &g, 1);
    int idx = exec_future_wait_any(blocked, 2, EXEC_WAIT_FOREVER);
    gate_later_join(&later);
    ASSERT_TRUE(idx == 0 || idx == 1);
    ASSERT_EQ(exec_future_state(blocked[idx]), EXEC_STATE_DONE);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_RESULT_I64(c, 3);
    DESTROY_GATED(ex, &g, a, b, c, d);
}

/* wait_all: EXEC_ETIMEDOUT while any is pending (one finished is not enough); EXEC_OK with
 * every one terminal, whatever its outcome. */
TEST(future_wait_all)
{
    exec_t *ex = make_gated(&g, 3);
    exec_future_t *fs[4];
    fs[0] = submit_echo_i64(ex, 0);
    fs[1] = submit_block(ex, &g, 1);
    fs[2] = submit_block(ex, &g, 2);
    fs[3] = submit_status(ex, 9);
    ASSERT_OK(exec_future_wait(fs[0], BOUND_MS));
    ASSERT_OK(exec_future_wait(fs[3], BOUND_MS));
    ASSERT_ERR(exec_future_wait_all(fs, 4, 0), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_future_wait_all(fs, 4, 50), EXEC_ETIMEDOUT);
    ASSERT_OK(exec_future_wait_all(fs, 1, 0));
    gate_release(&g, 1);
    ASSERT_ERR(exec_future_wait_all(fs, 4, 50), EXEC_ETIMEDOUT); /* one still blocked */
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait_all(fs, 4, EXEC_WAIT_FOREVER));
    for (int i = 0; i < 4; i++) {
        int st = exec_future_state(fs[i]);
        ASSERT_EQ(st, i == 3 ? EXEC_STATE_FAILED : EXEC_STATE_DONE);
    }
    ASSERT_OK(exec_future_wait_all(fs, 4, 0));
    for (int i = 0; i < 4; i++)
        exec_future_release(fs[i]);
    destroy_gated(ex, &g);
}

/* Bad input of wait_any / wait_all: NULL array, n == 0, a NULL entry anywhere, a negative
 * timeout. */
TEST(future_wait_many_invalid)
{
    exec_t *ex = make_workers(1);
    exec_future_t *f = submit_echo_i64(ex, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    exec_future_t *one[1] = {f};
    exec_future_t *null_first[2] = {NULL, f};
    exec_future_t *null_last[2] = {f, NULL};

    ASSERT_ERR(exec_future_wait_any(NULL, 1, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_any(one, 0, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_any(null_first, 2, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_any(null_last, 2, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_any(one, 1, -5), EXEC_EINVAL);

    ASSERT_ERR(exec_future_wait_all(NULL, 1, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_all(one, 0, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_all(null_first, 2, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_all(null_last, 2, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_future_wait_all(one, 1, -5), EXEC_EINVAL);

    /* The valid calls on the same array work. */
    ASSERT_EQ(exec_future_wait_any(one, 1, 0), 0);
    ASSERT_OK(exec_future_wait_all(one, 1, 0));
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Results and faults                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Result bytes and size for sizes around the inline storage; aligned; NULL for size 0;
 * either out-parameter may be NULL; the pointer is stable. */
TEST(future_result_bytes)
{
    exec_t *ex = make_workers(2);
    static const size_t sizes[] = {0, 1, 8, 63, 64, 65, 5000};
    unsigned char buf[5000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 11 + 3);
    ASSERT_ERR(exec_future_result(NULL, NULL, NULL), EXEC_EINVAL);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, task_echo, buf, n, &f));
        ASSERT_OK(exec_future_wait(f, BOUND_MS));
        ASSERT_EQ(exec_future_state(f), EXEC_STATE_DONE);
        const void *data = SENTINEL;
        size_t size = 12345;
        ASSERT_OK(exec_future_result(f, &data, &size));
        ASSERT_EQ(size, n);
        if (n == 0) {
            ASSERT_NULL(data);
        } else {
            ASSERT_NOT_NULL(data);
            ASSERT_EQ((uintptr_t)data % _Alignof(max_align_t), 0);
            ASSERT_MEM_EQ(data, buf, n);
        }
        const void *again = SENTINEL;
        size_t size2 = 0;
        ASSERT_OK(exec_future_result(f, &again, NULL));
        ASSERT_TRUE(again == data);
        ASSERT_OK(exec_future_result(f, NULL, &size2));
        ASSERT_EQ(size2, n);
        ASSERT_OK(exec_future_result(f, NULL, NULL));
        exec_future_release(f);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* result and fault of a future that is not terminal: EXEC_EAGAIN, nothing written. */
TEST(future_result_pending)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = submit_block(ex, &g, 1);
    exec_future_t *b = submit_block(ex, &g, 2); /* stays QUEUED */
    WAIT_STATE(a, EXEC_STATE_RUNNING);
    exec_future_t *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const void *data = SENTINEL;
        size_t size = 777;
        ASSERT_ERR(exec_future_result(both[i], &data, &size), EXEC_EAGAIN);
        ASSERT_TRUE(data == SENTINEL);
        ASSERT_EQ(size, 777);
        exec_fault_t ft;
        memset(&ft, 0x7b, sizeof ft);
        ASSERT_ERR(exec_future_fault(both[i], &ft), EXEC_EAGAIN);
        ASSERT_EQ(ft.code, 0x7b7b7b7b);
        ASSERT_ERR(exec_future_result(both[i], NULL, NULL), EXEC_EAGAIN);
    }
    ASSERT_ERR(exec_future_fault(NULL, &(exec_fault_t){0}), EXEC_EINVAL);
    ASSERT_ERR(exec_future_fault(a, NULL), EXEC_EINVAL);
    gate_release(&g, 2);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    DESTROY_GATED(ex, &g, a, b);
}

/* A task returning non-zero: state FAILED, result EXEC_ETASK with no bytes (those it wrote
 * are discarded), fault.task_status holds the value exactly, even one that looks like a
 * library code. */
TEST(future_task_error)
{
    exec_t *ex = make_workers(2);
    static const int32_t statuses[] = {42, 1, -1, -3, EXEC_ETIMEDOUT, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < sizeof statuses / sizeof statuses[0]; k++) {
        exec_future_t *f = submit_status(ex, statuses[k]);
        ASSERT_OK(exec_future_wait(f, BOUND_MS));
        ASSERT_EQ(exec_future_state(f), EXEC_STATE_FAILED);
        const void *data = SENTINEL;
        size_t size = 777;
        ASSERT_ERR(exec_future_result(f, &data, &size), EXEC_ETASK);
        ASSERT_NULL(data); /* "NULL when the size is 0 or the task failed" */
        ASSERT_EQ(size, 0);
        exec_fault_t ft;
        ASSERT_OK(exec_future_fault(f, &ft));
        ASSERT_ERR(ft.code, EXEC_ETASK);
        if (ft.task_status != statuses[k])
            TEST_FAIL("status %d: fault.task_status %d", statuses[k], ft.task_status);
        ASSERT_EQ(ft.sys_errno, 0);
        ASSERT_EQ(ft.signal, 0);
        ASSERT_EQ(ft.exit_status, -1);
        check_ran_on_worker(&ft, 2);
        exec_future_release(f);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* The fault of a success: code EXEC_OK, no status, errno, signal or exit status; which
 * worker ran it. */
TEST(future_fault_success)
{
    exec_t *ex = make_workers(2);
    exec_future_t *f = submit_echo_i64(ex, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    exec_fault_t ft;
    memset(&ft, 0x7b, sizeof ft);
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_OK(ft.code);
    ASSERT_EQ(ft.task_status, 0);
    ASSERT_EQ(ft.sys_errno, 0);
    ASSERT_EQ(ft.signal, 0);
    /* exit_status: "else -1" in exec_fault_t; see the report on "zeros for a success". */
    ASSERT_EQ(ft.exit_status, -1);
    check_ran_on_worker(&ft, 2);
    for (size_t i = 0; i < sizeof ft.reserved / sizeof ft.reserved[0]; i++)
        ASSERT_EQ(ft.reserved[i], 0);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Cancel                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* A queued task: cancel is EXEC_OK, the state is CANCELLED at once, the result
 * EXEC_ECANCELLED, the task never runs; cancelling again is EXEC_EBUSY. */
TEST(future_cancel_queued)
{
    struct gate out;
    exec_t *ex = make_gated(&g, 1);
    gate_open(&out);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_block_tag(ex, &g, 2, &out, 'b');
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);

    ASSERT_ERR(exec_future_cancel(NULL, 0), EXEC_EINVAL);
    ASSERT_OK(exec_future_cancel(b, 0));
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_CANCELLED);
    ASSERT_OK(exec_future_wait(b, 0));
    const void *data = SENTINEL;
    ASSERT_ERR(exec_future_result(b, &data, NULL), EXEC_ECANCELLED);
    ASSERT_NULL(data);
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(b, &ft));
    ASSERT_ERR(ft.code, EXEC_ECANCELLED);
    ASSERT_EQ(ft.worker_id, -1);
    ASSERT_EQ(ft.task_status, 0);
    ASSERT_ERR(exec_future_cancel(b, 0), EXEC_EBUSY);
    ASSERT_ERR(exec_future_cancel(b, EXEC_CANCEL_RUNNING), EXEC_EBUSY);

    /* Let a finish, then let anything else that wrongly runs b through: b never writes. */
    gate_release(&g, 2);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_OK(exec_shutdown(ex, 0));
    ASSERT_EQ(gate_read_within(&out, 0), -1);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_CANCELLED);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.cancelled, 1);
    ASSERT_EQ(st.completed, 1);
    DESTROY_GATED(ex, &g, a, b);
    gate_close(&out);
}

/* A running task without EXEC_CANCEL_RUNNING: EXEC_EBUSY, and it runs on unharmed. */
TEST(future_cancel_running_busy)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    ASSERT_ERR(exec_future_cancel(a, 0), EXEC_EBUSY);
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_RUNNING);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    DESTROY_GATED(ex, &g, a);
}

/* A terminal task (done or failed), with or without the flag: EXEC_EBUSY, outcome kept.
 * Unknown flags: EXEC_EINVAL (the header lists only EXEC_CANCEL_RUNNING). */
TEST(future_cancel_finished)
{
    exec_t *ex = make_workers(1);
    exec_future_t *ok = submit_echo_i64(ex, 1);
    exec_future_t *bad = submit_status(ex, 42);
    ASSERT_OK(exec_future_wait(ok, BOUND_MS));
    ASSERT_OK(exec_future_wait(bad, BOUND_MS));
    ASSERT_ERR(exec_future_cancel(ok, 0), EXEC_EBUSY);
    ASSERT_ERR(exec_future_cancel(ok, EXEC_CANCEL_RUNNING), EXEC_EBUSY);
    ASSERT_ERR(exec_future_cancel(bad, 0), EXEC_EBUSY);
    ASSERT_ERR(exec_future_cancel(bad, EXEC_CANCEL_RUNNING), EXEC_EBUSY);
    ASSERT_ERR(exec_future_cancel(ok, 2), EXEC_EINVAL);
    ASSERT_RESULT_I64(ok, 1);
    ASSERT_EQ(exec_future_state(bad), EXEC_STATE_FAILED);
    ASSERT_ERR(exec_future_result(bad, NULL, NULL), EXEC_ETASK);
    RELEASE_ALL(ok, bad);
    ASSERT_OK(exec_destroy(ex));
}

/* EXEC_CANCEL_RUNNING on a running task that loops until told to stop: EXEC_OK, CANCELLED
 * at once (not when the task returns), EXEC_ECANCELLED; on threads the task sees its stop
 * flag; either way the pool keeps working. */
TEST(future_cancel_running)
{
    struct gate out;
    exec_t *ex = make_gated(&out, 1);
    struct loop_arg la;
    gate_path(la.out, &out);
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, loop_until_stop, &la, sizeof la, &f));
    WAIT_STATE(f, EXEC_STATE_RUNNING);
    ASSERT_OK(exec_future_cancel(f, EXEC_CANCEL_RUNNING));
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_CANCELLED);
    ASSERT_OK(exec_future_wait(f, 0));
    ASSERT_ERR(exec_future_result(f, NULL, NULL), EXEC_ECANCELLED);
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_ERR(ft.code, EXEC_ECANCELLED);
    check_ran_on_worker(&ft, 1); /* it did run: worker_id is -1 only "if it never ran" */
    ASSERT_ERR(exec_future_cancel(f, EXEC_CANCEL_RUNNING), EXEC_EBUSY);
    if (test_backend == EXEC_BACKEND_THREADS)
        ASSERT_EQ(gate_read_within(&out, BOUND_MS), 'S');
    exec_future_t *next = submit_echo_i64(ex, 5);
    ASSERT_RESULT_I64(next, 5);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.cancelled, 1);
    ASSERT_EQ(st.completed, 1);
    DESTROY_GATED(ex, &out, next, f);
}

/* ---------------------------------------------------------------------------------------- */
/* Done-callbacks                                                                            */
/* ---------------------------------------------------------------------------------------- */

struct cb_log {
    atomic_int calls;
    atomic_int order[8]; /* callback ids, in the order they ran */
    atomic_int bad;      /* a callback saw a non-terminal state or a wrong future */
    exec_future_t *expect;
    pthread_t thread; /* thread of the last call */
    int state;        /* state seen by the last call */
};

static void cb_count(exec_future_t *f, void *user_data)
{
    struct cb_log *log = user_data;
    int st = exec_future_state(f);
    if (f != log->expect || (st != EXEC_STATE_DONE && st != EXEC_STATE_FAILED &&
                             st != EXEC_STATE_CANCELLED))
        atomic_fetch_add(&log->bad, 1);
    /* The outcome is readable from inside the callback. */
    if (exec_future_result(f, NULL, NULL) == EXEC_EAGAIN)
        atomic_fetch_add(&log->bad, 1);
    log->thread = pthread_self();
    log->state = st;
    atomic_fetch_add(&log->calls, 1);
}

/* The callback logged in @log ran exactly once, and always saw what it should. */
static void ran_once(struct cb_log *log)
{
    ASSERT_EQ(load(&log->calls), 1);
    ASSERT_EQ(load(&log->bad), 0);
}

/* on_done added while pending runs exactly once, after the end; added after the end it runs
 * before on_done returns, in the calling thread. */
TEST(future_on_done_once)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 1);
    struct cb_log log = {.expect = f};
    ASSERT_OK(exec_future_on_done(f, cb_count, &log));
    ASSERT_EQ(load(&log.calls), 0);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(f, 1);
    WAIT_COUNT(&log.calls, 1);
    ASSERT_EQ(log.state, EXEC_STATE_DONE);

    struct cb_log late = {.expect = f};
    ASSERT_OK(exec_future_on_done(f, cb_count, &late));
    ASSERT_EQ(load(&late.calls), 1);
    ASSERT_TRUE(pthread_equal(late.thread, pthread_self()));
    ASSERT_EQ(late.state, EXEC_STATE_DONE);

    /* Exactly once: nothing more by the time every thread of the pool is gone. */
    ASSERT_OK(exec_destroy(ex));
    ran_once(&log);
    ran_once(&late);
    exec_future_release(f);
    gate_close(&g);
}

/* Callbacks of failed and cancelled futures run too; a cancel of a queued task finishes it
 * in the cancelling thread, so its callback has run when cancel returns. */
TEST(future_on_done_failed_and_cancelled)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *q = submit_echo_i64(ex, 2);
    exec_future_t *bad = submit_status(ex, 5);
    struct cb_log lq = {.expect = q}, lbad = {.expect = bad};
    ASSERT_OK(exec_future_on_done(q, cb_count, &lq));
    ASSERT_OK(exec_future_on_done(bad, cb_count, &lbad));
    ASSERT_OK(exec_future_cancel(q, 0));
    ASSERT_EQ(load(&lq.calls), 1);
    ASSERT_TRUE(pthread_equal(lq.thread, pthread_self()));
    ASSERT_EQ(lq.state, EXEC_STATE_CANCELLED);
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(bad, BOUND_MS));
    WAIT_COUNT(&lbad.calls, 1);
    ASSERT_EQ(lbad.state, EXEC_STATE_FAILED);
    ASSERT_OK(exec_destroy(ex));
    ran_once(&lq);
    ran_once(&lbad);
    RELEASE_ALL(a, q, bad);
    gate_close(&g);
}

struct order_cb {
    struct cb_log *log;
    int id;
    unsigned delay_ms; /* sleep before recording: makes a late-running callback visible */
    pthread_t thread;  /* the thread it ran in */
};

static void cb_order(exec_future_t *f, void *user_data)
{
    struct order_cb *o = user_data;
    (void)f;
    if (o->delay_ms)
        test_sleep_ms(o->delay_ms);
    o->thread = pthread_self();
    int i = atomic_fetch_add(&o->log->calls, 1);
    if (i < 8)
        atomic_store(&o->log->order[i], o->id);
}

/* Several callbacks run in the order added: three added while pending, and one more added
 * after the end. */
TEST(future_on_done_order)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 1);
    struct cb_log log = {.expect = f};
    struct order_cb cbs[4] = {{&log, 1, 0, 0}, {&log, 2, 0, 0}, {&log, 3, 0, 0}, {&log, 4, 0, 0}};
    for (int i = 0; i < 3; i++)
        ASSERT_OK(exec_future_on_done(f, cb_order, &cbs[i]));
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    WAIT_COUNT(&log.calls, 3);
    ASSERT_OK(exec_future_on_done(f, cb_order, &cbs[3]));
    ASSERT_EQ(load(&log.calls), 4);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(load(&log.order[i]), i + 1);
    DESTROY_GATED(ex, &g, f);
}

/* "They run in the order added" also when a callback is added right after the future ended
 * while the one added before is still running in the finishing thread: the late one must
 * not overtake it. And since the future is terminal, the late one runs "now, in this
 * thread, before this returns" (so on_done has to wait for the earlier one to end). The
 * first callback is slow on purpose, to open that window. */
TEST(future_on_done_order_after_end)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *f = submit_block(ex, &g, 1);
    struct cb_log log = {.expect = f};
    struct order_cb slow = {&log, 1, 100, 0}, late = {&log, 2, 0, 0};
    ASSERT_OK(exec_future_on_done(f, cb_order, &slow));
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS)); /* terminal: slow may still be running */
    ASSERT_OK(exec_future_on_done(f, cb_order, &late));
    ASSERT_EQ(load(&log.calls), 2); /* both ran before on_done returned */
    ASSERT_TRUE(pthread_equal(late.thread, pthread_self()));
    ASSERT_EQ(load(&log.order[0]), 1);
    ASSERT_EQ(load(&log.order[1]), 2);
    DESTROY_GATED(ex, &g, f);
}

/* Bad input: EXEC_EINVAL, and the callback never runs. */
TEST(future_on_done_invalid)
{
    exec_t *ex = make_workers(1);
    exec_future_t *f = submit_echo_i64(ex, 1);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    struct cb_log log = {.expect = f};
    ASSERT_ERR(exec_future_on_done(NULL, cb_count, &log), EXEC_EINVAL);
    ASSERT_ERR(exec_future_on_done(f, NULL, &log), EXEC_EINVAL);
    ASSERT_EQ(load(&log.calls), 0);
    /* The same callback with valid arguments runs (at once: the future is terminal). */
    ASSERT_OK(exec_future_on_done(f, cb_order, &(struct order_cb){&log, 1, 0, 0}));
    ASSERT_EQ(load(&log.calls), 1);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

static void cb_release(exec_future_t *f, void *user_data)
{
    atomic_int *done = user_data;
    exec_future_release(f); /* the test handed over its only reference */
    atomic_fetch_add(done, 1);
}

/* A callback that releases its own future, the test holding no other reference: no crash,
 * no use after free (the suite also runs under valgrind and ASan), whether the callback
 * runs in the finishing thread or in on_done itself. */
TEST(future_on_done_release_self)
{
    exec_t *ex = make_gated(&g, 1);
    atomic_int done = 0;
    exec_future_t *f = submit_block(ex, &g, 1);
    ASSERT_OK(exec_future_on_done(f, cb_release, &done));
    f = NULL; /* not ours any more */
    gate_release(&g, 1);
    WAIT_COUNT(&done, 1);

    exec_future_t *h = submit_echo_i64(ex, 2);
    ASSERT_OK(exec_future_wait(h, BOUND_MS));
    ASSERT_OK(exec_future_on_done(h, cb_release, &done));
    ASSERT_EQ(load(&done), 2);
    h = NULL;

    /* Same with a second callback after the releasing one, both added while pending. */
    exec_future_t *k = submit_block(ex, &g, 3);
    struct cb_log log = {.expect = k};
    ASSERT_OK(exec_future_on_done(k, cb_count, &log));
    ASSERT_OK(exec_future_on_done(k, cb_release, &done));
    k = NULL;
    gate_release(&g, 1);
    WAIT_COUNT(&done, 3);
    ASSERT_EQ(load(&log.calls), 1);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(load(&done), 3);
    ASSERT_EQ(load(&log.bad), 0);
    gate_close(&g);
}

/* ---------------------------------------------------------------------------------------- */
/* References                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* retain returns its argument (NULL for NULL); release(NULL) is safe; each reference keeps
 * the future and its result alive; releasing a pending future does not cancel its task. */
TEST(future_retain_release)
{
    struct gate out;
    exec_t *ex = make_gated(&g, 1);
    gate_open(&out);
    ASSERT_NULL(exec_future_retain(NULL));
    exec_future_release(NULL);

    exec_future_t *f = submit_echo_i64(ex, 11);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    exec_future_t *refs[10];
    for (int i = 0; i < 10; i++) {
        refs[i] = exec_future_retain(f);
        ASSERT_TRUE(refs[i] == f);
    }
    exec_future_release(f); /* the submit reference */
    for (int i = 0; i < 10; i++) {
        ASSERT_RESULT_I64(refs[i], 11); /* still alive with its bytes */
        exec_future_release(refs[i]);
    }

    /* Dropping the only reference of a queued future: the task still runs. */
    exec_future_t *a = submit_block(ex, &g, 1);
    exec_future_t *b = submit_block_tag(ex, &g, 2, &out, 'b');
    exec_future_release(b);
    gate_release(&g, 2);
    ASSERT_EQ(gate_read_within(&out, BOUND_MS), 'b');
    ASSERT_RESULT_I64(a, 1);
    DESTROY_GATED(ex, &g, a);
    gate_close(&out);
}

/* ---------------------------------------------------------------------------------------- */
/* Deadlines and the stop flag                                                               */
/* ---------------------------------------------------------------------------------------- */

TEST(future_should_stop_outside_task)
{
    ASSERT_FALSE(exec_task_should_stop());
}

/* Run @n looping tasks (with @opts, or exec_submit() when NULL) on an executor with the
 * default timeout @cfg_timeout_ms; each must fail with EXEC_ETIMEDOUT within the bound, and
 * on threads see its stop flag. */
static void expect_timeouts(uint32_t cfg_timeout_ms, const exec_submit_opts_t *opts, int n)
{
    struct gate out;
    gate_open(&out);
    exec_t *ex = make_with(n, (exec_config_t){.timeout_ms = cfg_timeout_ms});
    exec_future_t *fs[4];
    ASSERT_LE(n, 4);
    struct loop_arg la;
    gate_path(la.out, &out);
    for (int i = 0; i < n; i++) {
        if (opts)
            ASSERT_OK(exec_submit_ex(ex, loop_until_stop, &la, sizeof la, opts, &fs[i]));
        else
            ASSERT_OK(exec_submit(ex, loop_until_stop, &la, sizeof la, &fs[i]));
    }
    for (int i = 0; i < n; i++) {
        int rc = exec_future_wait(fs[i], BOUND_MS);
        if (rc != 0)
            TEST_FAIL("task %d: not ended by its deadline within %d ms: %s", i, BOUND_MS,
                      exec_errname(rc));
        ASSERT_EQ(exec_future_state(fs[i]), EXEC_STATE_FAILED);
        const void *data = SENTINEL;
        ASSERT_ERR(exec_future_result(fs[i], &data, NULL), EXEC_ETIMEDOUT);
        ASSERT_NULL(data);
        exec_fault_t ft;
        ASSERT_OK(exec_future_fault(fs[i], &ft));
        ASSERT_ERR(ft.code, EXEC_ETIMEDOUT);
        ASSERT_EQ(ft.task_status, 0);
        check_ran_on_worker(&ft, n);
    }
    /* On threads the task goes on until it reads its stop flag, which must now be set. */
    if (test_backend == EXEC_BACKEND_THREADS)
        for (int i = 0; i < n; i++)
            ASSERT_EQ(gate_read_within(&out, BOUND_MS), 'S');
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.timed_out, n);
    ASSERT_EQ(st.failed, n);
    ASSERT_EQ(st.completed, 0);
    /* The pool still works. */
    exec_future_t *f = submit_echo_i64(ex, 3);
    ASSERT_RESULT_I64(f, 3);
    exec_future_release(f);
    for (int i = 0; i < n; i++)
        exec_future_release(fs[i]);
    destroy_gated(ex, &out);
}

/* exec_submit_opts_t.timeout_ms on an executor without a default. */
TEST(future_timeout_opts)
{
    exec_submit_opts_t o = {0};
    o.timeout_ms = 100;
    expect_timeouts(0, &o, 1);
}

/* The executor's cfg.timeout_ms applies to exec_submit() and to opts.timeout_ms == 0. */
TEST(future_timeout_config_default)
{
    expect_timeouts(100, NULL, 2);
    exec_submit_opts_t o = {0};
    expect_timeouts(100, &o, 2);
    /* A per-task limit other than 0 replaces the default. */
    o.timeout_ms = 50;
    expect_timeouts(60000, &o, 1);
}

/* EXEC_NO_TIMEOUT disables cfg.timeout_ms: the task runs well past it, never sees its stop
 * flag, and succeeds when released. */
TEST(future_timeout_none_overrides)
{
    gate_open(&g);
    exec_t *ex = make_with(1, (exec_config_t){.timeout_ms = 100});
    exec_submit_opts_t o = {0};
    o.timeout_ms = EXEC_NO_TIMEOUT;
    exec_future_t *f = NULL;
    char path[GATE_PATH];
    gate_path(path, &g);
    ASSERT_OK(exec_submit_ex(ex, poll_gate_watch_stop, path, sizeof path, &o, &f));
    WAIT_STATE(f, EXEC_STATE_RUNNING);
    /* Four default timeouts later it is still running. */
    ASSERT_ERR(exec_future_wait(f, 400), EXEC_ETIMEDOUT);
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_RUNNING);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(f, 0); /* 0: the stop flag was never set */
    DESTROY_GATED(ex, &g, f);
}

/* The limit counts from when the task starts, not from submit: a quick task that waited in
 * the queue longer than its limit still succeeds. */
TEST(future_timeout_counts_from_start)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_submit_opts_t o = {0};
    o.timeout_ms = 100;
    int64_t v = 2;
    exec_future_t *b = NULL;
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &b));
    ASSERT_ERR(exec_future_wait(b, 300), EXEC_ETIMEDOUT); /* queued 3x its limit */
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    DESTROY_GATED(ex, &g, a, b);
}

/* ---------------------------------------------------------------------------------------- */
/* Futures at scale                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Resident KiB of this process. */
static long resident_kib(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (fp) {
        if (fscanf(fp, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(fp);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ThreadSanitizer keeps shadow memory for the memory a program touches (several bytes per
 * byte), counts in the resident set and is not given back when the program unmaps: there
 * the resident figures are printed, not checked. */
#if defined(__SANITIZE_THREAD__)
#define RESIDENT_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RESIDENT_CHECKED 0
#endif
#endif
#ifndef RESIDENT_CHECKED
#define RESIDENT_CHECKED 1
#endif

/* Many futures outstanding at once, then released: the counters come back to idle (nothing
 * queued or running, every submit counted as completed) and so does the memory (the arenas
 * of futures are unmapped; one is kept for the next burst). */
TEST(future_memory_returns)
{
    int n = 100000 / test_timeout_scale();
    if (n < 40000)
        n = 40000;
    exec_config_t cfg;
    test_config(&cfg);
    cfg.workers = 2;
    exec_t *ex = NULL;
    ASSERT_OK(exec_create(&ex, &cfg));
    exec_future_t **fs = calloc((size_t)n, sizeof *fs);
    ASSERT_NOT_NULL(fs);
    for (int i = 0; i < n; i++) /* resident before the measurement (not folded into calloc) */
        ((volatile uintptr_t *)fs)[i] = 1;
    /* Warm-up: what the backend touches once for good (on processes: its rings). */
    int warm = 20000;
    for (int i = 0; i < warm; i++)
        ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, &fs[i]));
    for (int i = 0; i < warm; i++) {
        ASSERT_OK(exec_future_wait(fs[i], BOUND_MS));
        exec_future_release(fs[i]);
    }

    long idle = resident_kib();
    for (int i = 0; i < n; i++)
        ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, &fs[i]));
    long peak = resident_kib();
    for (int i = 0; i < n; i++) {
        ASSERT_OK(exec_future_wait(fs[i], BOUND_MS));
        ASSERT_EQ(exec_future_state(fs[i]), EXEC_STATE_DONE);
        exec_future_release(fs[i]);
    }
    long after = resident_kib();
    fprintf(stderr, "# %d futures [%s]: resident +%ld KiB outstanding (%.0f B each), +%ld KiB "
                    "after release\n",
            n, test_backend_name(), peak - idle, (peak - idle) * 1024.0 / n, after - idle);
    /* Futures take memory while outstanding (at most 128 bytes each: a sanity bound, the
     * benchmark measures it)... */
    if (RESIDENT_CHECKED) {
        ASSERT_LE(peak - idle, (long)n * 128 / 1024 + 4096);
        /* ...and give it back: at most the kept arena (2 MiB) and some slack remain. */
        ASSERT_LE(after - idle, 3072);
    }

    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.running, 0);
    ASSERT_EQ(st.submitted, (uint64_t)(n + warm));
    ASSERT_EQ(st.completed, (uint64_t)(n + warm));
    free(fs);
    ASSERT_OK(exec_destroy(ex));
}
