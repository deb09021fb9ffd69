/* SPDX-License-Identifier: MIT */
/*
 * test_executor.c - the executor's own calls, tested against the contract in executor.h:
 * exec_create() (defaults, every invalid configuration), exec_submit() and exec_submit_ex()
 * (bad input, size limits, argument copying, fire-and-forget, full queues), exec_shutdown()
 * and exec_destroy() (draining, cancelling, waiting, calls from inside a task), exec_stats()
 * and exec_version().
 *
 * Tasks see only their argument and result bytes. A task that must block waits at a gate, a
 * FIFO whose path travels in its argument bytes (tests/gate.h); a task that must prove it ran
 * writes a byte to one. Tests marked THREADS_ONLY in tests/list.h say why in their comment.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
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

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Writes one byte (the argument's tag) to a gate: proof, across processes too, that it ran. */
struct signal_arg {
    char gate[GATE_PATH];
    char tag;
};

static int signal_ran(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    struct signal_arg a;
    (void)out, (void)out_cap, (void)out_size;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    return task_gate_post(a.gate, a.tag) == 0 ? 0 : READ_FAILED;
}

/* Reports how it was called, for the calling-convention test. */
struct probe {
    int64_t arg_null;    /* arg == NULL */
    int64_t arg_size;
    int64_t arg_aligned; /* arg % alignof(max_align_t) == 0 (1 when NULL) */
    int64_t out_cap;
    int64_t out_size0; /* *out_size on entry */
    int64_t out_aligned;
    uint64_t arg_sum; /* sum of bytes * (index + 1) */
};

static int probe(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    struct probe p;
    const unsigned char *b = arg;
    p.arg_null = arg == NULL;
    p.arg_size = (int64_t)arg_size;
    p.arg_aligned = (uintptr_t)arg % _Alignof(max_align_t) == 0;
    p.out_cap = (int64_t)out_cap;
    p.out_size0 = (int64_t)*out_size;
    p.out_aligned = (uintptr_t)out % _Alignof(max_align_t) == 0;
    p.arg_sum = 0;
    for (size_t i = 0; i < arg_size && b; i++)
        p.arg_sum += (uint64_t)b[i] * (i + 1);
    if (out_cap < sizeof p)
        return BAD_CALL;
    memcpy(out, &p, sizeof p);
    *out_size = sizeof p;
    return 0;
}

/* Fills its whole result buffer (out_cap bytes) with (i * 7 + seed) & 0xff. */
static int fill_out(const void *arg, size_t arg_size, void *out, size_t out_cap,
                    size_t *out_size)
{
    uint8_t seed;
    if (arg_size != 1)
        return BAD_CALL;
    memcpy(&seed, arg, 1);
    unsigned char *o = out;
    for (size_t i = 0; i < out_cap; i++)
        o[i] = (unsigned char)(i * 7 + seed);
    *out_size = out_cap;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Poll exec_stats() until @field >= @want. */
#define WAIT_STAT(ex, field, want)                                                         \
    do {                                                                                   \
        uint64_t wait_end_ = test_now_ms() + BOUND_MS;                                     \
        exec_stats_t wait_st_;                                                             \
        for (;;) {                                                                         \
            ASSERT_OK(exec_stats((ex), &wait_st_));                                        \
            if (wait_st_.field >= (uint64_t)(want))                                        \
                break;                                                                     \
            if (test_now_ms() > wait_end_)                                                 \
                TEST_FAIL("stats." #field " = %llu, want >= %llu within %d ms",            \
                          (unsigned long long)wait_st_.field, (unsigned long long)(want),  \
                          BOUND_MS);                                                       \
            test_sleep_ms(1);                                                              \
        }                                                                                  \
    } while (0)

/* exec_create() that must fail: returns its code; the out-parameter must be untouched or
 * NULL. If it wrongly succeeds, the executor is destroyed so the failure message is clean. */
static int create_fails(const exec_config_t *cfg)
{
    exec_t *ex = SENTINEL;
    int rc = exec_create(&ex, cfg);
    if (rc == 0) {
        exec_destroy(ex);
        return 0;
    }
    if (ex != SENTINEL && ex != NULL)
        TEST_FAIL("exec_create failed with %s but wrote %p to its out-parameter",
                  exec_errname(rc), (void *)ex);
    return rc;
}

/* Each of the @n configs of @bad, with the backend (unless it sets one) and the worker
 * count of @base, must make exec_create() fail with EXEC_EINVAL. */
static void expect_invalid(const exec_config_t *base, const exec_config_t *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        exec_config_t c = bad[i];
        if (c.backend == EXEC_BACKEND_THREADS)
            c.backend = base->backend;
        c.workers = base->workers;
        int rc = create_fails(&c);
        if (rc != EXEC_EINVAL)
            TEST_FAIL("bad config #%zu: %s, want EXEC_EINVAL", i, exec_errname(rc));
    }
}

/* A thread that runs one call and records the result. */
struct bg {
    pthread_t t;
    exec_t *ex;
    unsigned flags;
    exec_future_t *f;
    int rc;
    atomic_bool done;
};

static void *bg_shutdown(void *p)
{
    struct bg *b = p;
    b->rc = exec_shutdown(b->ex, b->flags);
    atomic_store(&b->done, true);
    return NULL;
}

/* Whether the thread's call returned (a function, for readable assertion messages). */
static bool done(struct bg *b)
{
    return atomic_load(&b->done);
}

static void bg_start(struct bg *b, void *(*fn)(void *))
{
    atomic_init(&b->done, false);
    ASSERT_EQ(pthread_create(&b->t, NULL, fn, b), 0);
}

static void bg_join(struct bg *b)
{
    ASSERT_EQ(pthread_join(b->t, NULL), 0);
    ASSERT_TRUE(done(b));
}

/* ---------------------------------------------------------------------------------------- */
/* Version and creation                                                                      */
/* ---------------------------------------------------------------------------------------- */

TEST(executor_version)
{
    check_version();
}

/* NULL config: a working thread pool with every default. */
TEST(executor_create_null_cfg)
{
    exec_t *ex = make_exec(NULL);
    exec_future_t *f = submit_echo_i64(ex, 12345);
    ASSERT_RESULT_I64(f, 12345);
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    WAIT_STAT(ex, workers_alive, (uint64_t)b.workers);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.workers_alive, b.workers);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* {0} (plus the backend under test): defaults for sizes and workers; the config is copied
 * (changing it afterwards changes nothing) and not written to. */
TEST(executor_create_zero_cfg)
{
    exec_config_t cfg, copy;
    test_config(&cfg);
    copy = cfg;
    exec_t *ex = make_exec(&cfg);
    ASSERT_MEM_EQ(&cfg, &copy, sizeof cfg);
    cfg.max_arg_size = 1; /* must not affect ex */
    cfg.workers = -5;

    /* Default worker count. */
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    WAIT_STAT(ex, workers_alive, (uint64_t)b.workers);

    /* Default max_arg_size: exactly it works, one more byte is EXEC_ETOOBIG. */
    unsigned char *big = malloc(EXEC_DEFAULT_MAX_ARG_SIZE + 1);
    ASSERT_NOT_NULL(big);
    for (size_t i = 0; i < EXEC_DEFAULT_MAX_ARG_SIZE + 1; i++)
        big[i] = (unsigned char)(i * 31 + 1);
    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, probe, big, EXEC_DEFAULT_MAX_ARG_SIZE + 1, &f), EXEC_ETOOBIG);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    ASSERT_OK(exec_submit(ex, probe, big, EXEC_DEFAULT_MAX_ARG_SIZE, &f));
    struct probe p;
    WAIT_RESULT(f, &p, sizeof p);
    uint64_t sum = 0;
    for (size_t i = 0; i < EXEC_DEFAULT_MAX_ARG_SIZE; i++)
        sum += (uint64_t)big[i] * (i + 1);
    ASSERT_EQ(p.arg_size, EXEC_DEFAULT_MAX_ARG_SIZE);
    ASSERT_EQ(p.arg_sum, sum);
    /* Default max_result_size is the task's out_cap. */
    ASSERT_EQ(p.out_cap, EXEC_DEFAULT_MAX_RESULT_SIZE);
    exec_future_release(f);
    free(big);
    ASSERT_OK(exec_destroy(ex));
}

/* Every out-of-range field gives EXEC_EINVAL and no executor. */
TEST(executor_create_invalid)
{
    exec_config_t base = config_workers(1);
    /* The base itself is valid, so every failure below is due to the one field changed. */
    exec_t *ex = make_exec(&base);
    ASSERT_OK(exec_destroy(ex));

    ASSERT_ERR(exec_create(NULL, &base), EXEC_EINVAL);
    ASSERT_ERR(exec_create(NULL, NULL), EXEC_EINVAL);

    exec_config_t c;
    static const int bad_workers[] = {-1, -1000, INT32_MIN, EXEC_WORKERS_MAX + 1, INT32_MAX};
    for (size_t i = 0; i < sizeof bad_workers / sizeof bad_workers[0]; i++) {
        c = base;
        c.workers = bad_workers[i];
        int rc = create_fails(&c);
        if (rc != EXEC_EINVAL)
            TEST_FAIL("workers = %d: %s, want EXEC_EINVAL", bad_workers[i], exec_errname(rc));
    }

    for (size_t k = 0; k < sizeof base.reserved / sizeof base.reserved[0]; k++) {
        static const uint32_t vals[] = {1, 0x80000000u};
        for (size_t v = 0; v < 2; v++) {
            c = base;
            c.reserved[k] = vals[v];
            int rc = create_fails(&c);
            if (rc != EXEC_EINVAL)
                TEST_FAIL("reserved[%zu] = %#x: %s, want EXEC_EINVAL", k, vals[v],
                          exec_errname(rc));
        }
    }

    const exec_config_t bad[] = {
        {.max_arg_size = EXEC_SIZE_LIMIT + 1},
        {.max_arg_size = SIZE_MAX},
        {.max_result_size = EXEC_SIZE_LIMIT + 1},
        {.max_result_size = SIZE_MAX},
        {.backend = (exec_backend_t)7},
        {.backend = (exec_backend_t)-1},
    };
    expect_invalid(&base, bad, sizeof bad / sizeof bad[0]);
}

/* The fields under "process backend only" must be 0 on the thread backend (the initializer
 * and its argument are for both backends now: test_broken.c).
 * THREADS_ONLY: on the process backend these same values are valid. */
TEST(executor_create_process_fields_on_threads)
{
    exec_config_t base = {0};
    base.backend = EXEC_BACKEND_THREADS;
    base.workers = 1;
    exec_t *ex = make_exec(&base);
    ASSERT_OK(exec_destroy(ex));

    const exec_config_t bad[] = {
        {.start_method = EXEC_START_FORK},
        {.kill_grace_ms = 1},
        {.max_rss_per_child = 1 << 20},
        {.max_age_ms = 1000},
        {.recycle_jitter_pct = 10},
        {.crash_limit = 3},
        {.crash_window_ms = 1000},
    };
    expect_invalid(&base, bad, sizeof bad / sizeof bad[0]);
}

/* Out-of-range values of the process fields are invalid on every backend (on threads for
 * the extra reason that any non-zero process field is). */
TEST(executor_create_process_field_ranges)
{
    exec_config_t base = config_workers(1);
    const exec_config_t bad[] = {
        {.start_method = (exec_start_method_t)2},
        {.recycle_jitter_pct = 101},
        {.initializer = task_echo, .init_arg = NULL, .init_arg_size = 4}, /* NULL bytes */
    };
    expect_invalid(&base, bad, sizeof bad / sizeof bad[0]);
}

/* The smallest valid sizes: 1-byte argument and result limits, a one-slot queue. */
TEST(executor_create_smallest_limits)
{
    exec_config_t cfg = config_workers(1);
    cfg.max_arg_size = 1;
    cfg.max_result_size = 1;
    cfg.queue_max = 1;
    exec_t *ex = make_exec(&cfg);
    exec_future_t *f = NULL;
    ASSERT_ERR(exec_submit(ex, task_echo, "ab", 2, &f), EXEC_ETOOBIG);
    ASSERT_NULL(f);
    ASSERT_OK(exec_submit(ex, task_echo, "z", 1, &f));
    char z;
    WAIT_RESULT(f, &z, 1);
    ASSERT_EQ(z, 'z');
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Submitting                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Bad input to exec_submit() and exec_submit_ex(): EXEC_EINVAL, nothing written, nothing
 * accepted. */
TEST(executor_submit_invalid)
{
    exec_t *ex = make_workers(1);
    int64_t v = 1;
    exec_future_t *f = SENTINEL;

    ASSERT_ERR(exec_submit(NULL, task_echo, &v, sizeof v, &f), EXEC_EINVAL);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, NULL, &v, sizeof v, &f), EXEC_EINVAL);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, task_echo, NULL, 8, &f), EXEC_EINVAL);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    ASSERT_ERR(exec_submit(ex, task_echo, NULL, 1, NULL), EXEC_EINVAL);

    exec_submit_opts_t o = {0};
    f = SENTINEL;
    ASSERT_ERR(exec_submit_ex(NULL, task_echo, &v, sizeof v, &o, &f), EXEC_EINVAL);
    ASSERT_ERR(exec_submit_ex(ex, NULL, &v, sizeof v, &o, &f), EXEC_EINVAL);
    ASSERT_ERR(exec_submit_ex(ex, task_echo, NULL, 8, &o, &f), EXEC_EINVAL);
    ASSERT_TRUE(f == SENTINEL || f == NULL);

    /* Unknown flags. */
    static const uint32_t bad_flags[] = {2, 4, 0x80000000u, ~0u};
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        o = (exec_submit_opts_t){0};
        o.flags = bad_flags[i];
        f = SENTINEL;
        int rc = exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f);
        if (rc != EXEC_EINVAL)
            TEST_FAIL("flags %#x: %s, want EXEC_EINVAL", bad_flags[i], exec_errname(rc));
        ASSERT_TRUE(f == SENTINEL || f == NULL);
    }
    /* Reserved opts words. */
    for (size_t k = 0; k < sizeof o.reserved / sizeof o.reserved[0]; k++) {
        o = (exec_submit_opts_t){0};
        o.reserved[k] = 1;
        f = SENTINEL;
        int rc = exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f);
        if (rc != EXEC_EINVAL)
            TEST_FAIL("opts.reserved[%zu] = 1: %s, want EXEC_EINVAL", k, exec_errname(rc));
        ASSERT_TRUE(f == SENTINEL || f == NULL);
    }

    /* None of these was accepted. */
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* What a task sees: argument size and bytes, NULL for size 0 (even when the caller passed a
 * pointer), alignment, out_cap == max_result_size, *out_size starting at 0. Sizes around the
 * inline/heap boundary of argument storage. */
TEST(executor_submit_calling_convention)
{
    exec_t *ex = make_with(2, (exec_config_t){.max_result_size = 4096});
    static const size_t sizes[] = {0, 1, 7, 8, 63, 64, 65, 100, 1000, 4096};
    unsigned char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i ^ (i >> 8));
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        exec_future_t *f = NULL;
        /* Size 0 with a non-NULL pointer: allowed, and the task gets NULL. */
        ASSERT_OK(exec_submit(ex, probe, buf, n, &f));
        struct probe p;
        const void *data = WAIT_RESULT(f, &p, sizeof p);
        ASSERT_EQ((uintptr_t)data % _Alignof(max_align_t), 0);
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (uint64_t)buf[i] * (i + 1);
        if (p.arg_null != (n == 0) || p.arg_size != (int64_t)n || !p.arg_aligned ||
            p.out_cap != 4096 || p.out_size0 != 0 || !p.out_aligned || p.arg_sum != sum)
            TEST_FAIL("size %zu: arg_null %lld arg_size %lld arg_aligned %lld out_cap %lld "
                      "out_size0 %lld out_aligned %lld sum %llu (want %llu)",
                      n, (long long)p.arg_null, (long long)p.arg_size,
                      (long long)p.arg_aligned, (long long)p.out_cap, (long long)p.out_size0,
                      (long long)p.out_aligned, (unsigned long long)p.arg_sum,
                      (unsigned long long)sum);
        exec_future_release(f);
    }
    /* NULL with size 0 is the same as any pointer with size 0. */
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, probe, NULL, 0, &f));
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    const void *data;
    ASSERT_OK(exec_future_result(f, &data, NULL));
    struct probe p;
    memcpy(&p, data, sizeof p);
    ASSERT_EQ(p.arg_null, 1);
    ASSERT_EQ(p.arg_size, 0);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* arg_size > max_arg_size: EXEC_ETOOBIG from both submit calls; exactly max_arg_size works. */
TEST(executor_submit_too_big)
{
    exec_t *ex = make_with(1, (exec_config_t){.max_arg_size = 100, .max_result_size = 100});
    unsigned char buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(255 - i);

    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, task_echo, buf, 101, &f), EXEC_ETOOBIG);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    ASSERT_ERR(exec_submit(ex, task_echo, buf, 200, NULL), EXEC_ETOOBIG);
    exec_submit_opts_t o = {0};
    f = SENTINEL;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, buf, 101, &o, &f), EXEC_ETOOBIG);
    ASSERT_TRUE(f == SENTINEL || f == NULL);

    ASSERT_OK(exec_submit(ex, task_echo, buf, 100, &f));
    unsigned char back[100];
    WAIT_RESULT(f, back, sizeof back);
    ASSERT_MEM_EQ(back, buf, 100);
    exec_future_release(f);

    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 1);
    ASSERT_OK(exec_destroy(ex));
}

/* A result of exactly max_result_size bytes comes back whole (a small limit, and one above
 * the inline storage of a future). */
TEST(executor_result_max_size)
{
    static const size_t limits[] = {3, 3000, 200000};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        exec_t *ex = make_with(1, (exec_config_t){.max_result_size = limits[k]});
        uint8_t seed = (uint8_t)(k + 5);
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, fill_out, &seed, 1, &f));
        unsigned char *d = malloc(limits[k]);
        ASSERT_NOT_NULL(d);
        WAIT_RESULT(f, d, limits[k]);
        for (size_t i = 0; i < limits[k]; i++)
            if (d[i] != (unsigned char)(i * 7 + seed))
                TEST_FAIL("limit %zu: byte %zu is %u", limits[k], i, d[i]);
        free(d);
        exec_future_release(f);
        ASSERT_OK(exec_destroy(ex));
    }
}

/* The argument is copied before exec_submit() returns: while the only worker is held, the
 * caller submits from a buffer and at once overwrites (small, kept inside the future) or
 * frees (large, on the heap) it; the task, which runs only afterwards, sees the old bytes. */
TEST(executor_submit_copies_arg)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *blocker = SUBMIT_RUNNING(ex, &g, 0);
    static const size_t sizes[] = {16, 2000};
    exec_future_t *f[2];
    unsigned char *want[2];
    for (size_t k = 0; k < 2; k++) {
        size_t n = sizes[k];
        unsigned char *a = malloc(n);
        want[k] = malloc(n);
        ASSERT_NOT_NULL(a);
        ASSERT_NOT_NULL(want[k]);
        for (size_t i = 0; i < n; i++)
            want[k][i] = a[i] = (unsigned char)(i * 13 + k + 1);
        ASSERT_OK(exec_submit(ex, task_echo, a, n, &f[k]));
        memset(a, 0xee, n);
        free(a);
        ASSERT_EQ(exec_future_state(f[k]), EXEC_STATE_QUEUED);
    }
    gate_release(&g, 1);
    ASSERT_RESULT_I64(blocker, 0);
    for (size_t k = 0; k < 2; k++) {
        ASSERT_OK(exec_future_wait(f[k], BOUND_MS));
        const void *data;
        size_t size;
        ASSERT_OK(exec_future_result(f[k], &data, &size));
        ASSERT_EQ(size, sizes[k]);
        ASSERT_MEM_EQ(data, want[k], sizes[k]);
        exec_future_release(f[k]);
        free(want[k]);
    }
    DESTROY_GATED(ex, &g, blocker);
}

/* f == NULL: fire and forget. The task still runs (it writes a byte we read back), through
 * both submit calls, and counts as completed. */
TEST(executor_submit_forget)
{
    struct gate out;
    exec_t *ex = make_gated(&out, 2);
    struct signal_arg a = {.tag = 'a'};
    gate_path(a.gate, &out);
    ASSERT_OK(exec_submit(ex, signal_ran, &a, sizeof a, NULL));
    ASSERT_EQ(gate_read_within(&out, BOUND_MS), 'a');
    a.tag = 'b';
    exec_submit_opts_t o = {0};
    ASSERT_OK(exec_submit_ex(ex, signal_ran, &a, sizeof a, &o, NULL));
    ASSERT_EQ(gate_read_within(&out, BOUND_MS), 'b');
    ASSERT_OK(exec_shutdown(ex, 0)); /* every task and its bookkeeping is over */
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 2);
    ASSERT_EQ(st.completed, 2);
    destroy_gated(ex, &out);
}

/* ---------------------------------------------------------------------------------------- */
/* Full queues                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* queue_max = 2 with the only worker blocked: two tasks wait, a third with EXEC_SUBMIT_TRY
 * is refused with EXEC_EAGAIN (not counted, out-parameter untouched), and is accepted once
 * room is made. */
TEST(executor_submit_try_full)
{
    gate_open(&g);
    exec_t *ex = make_with(1, (exec_config_t){.queue_max = 2});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_echo_i64(ex, 2);
    exec_future_t *c = submit_echo_i64(ex, 3);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);
    ASSERT_EQ(exec_future_state(c), EXEC_STATE_QUEUED);

    exec_submit_opts_t o = {0};
    o.flags = EXEC_SUBMIT_TRY;
    int64_t v = 4;
    exec_future_t *d = SENTINEL;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &d), EXEC_EAGAIN);
    ASSERT_TRUE(d == SENTINEL || d == NULL);
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, NULL), EXEC_EAGAIN);
    /* Bad input is still EXEC_EINVAL on a full queue. */
    o.flags = EXEC_SUBMIT_TRY | 2u;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &d), EXEC_EINVAL);
    o.flags = EXEC_SUBMIT_TRY;

    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 3);
    ASSERT_EQ(st.queued, 2);
    ASSERT_EQ(st.running, 1);

    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_RESULT_I64(c, 3);
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &d));
    ASSERT_RESULT_I64(d, 4);
    DESTROY_GATED(ex, &g, a, b, c, d);
}

struct bg_submit {
    struct bg b;
    int64_t value;
};

static void *bg_submit_echo(void *p)
{
    struct bg *b = p;
    struct bg_submit *s = (struct bg_submit *)b;
    b->rc = exec_submit(b->ex, task_echo, &s->value, sizeof s->value, &b->f);
    atomic_store(&b->done, true);
    return NULL;
}

/* A blocking submit on a full queue returns once a worker takes a task and frees a slot. */
TEST(executor_submit_blocks_when_full)
{
    gate_open(&g);
    exec_t *ex = make_with(1, (exec_config_t){.queue_max = 1});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_block(ex, &g, 2); /* fills the queue */
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);

    struct bg_submit s = {.value = 3};
    s.b.ex = ex;
    s.b.f = NULL;
    bg_start(&s.b, bg_submit_echo);
    /* The worker is blocked and the queue full: the submit cannot have returned. The pause
     * only gives a wrongly non-blocking submit time to show itself; nothing relies on it. */
    test_sleep_ms(20);
    ASSERT_FALSE(done(&s.b));
    /* Meanwhile a try-submit is refused. */
    exec_submit_opts_t o = {0};
    o.flags = EXEC_SUBMIT_TRY;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &s.value, sizeof s.value, &o, NULL), EXEC_EAGAIN);
    ASSERT_FALSE(done(&s.b));

    /* a ends, b takes the worker (and blocks on the gate): the queue has room for c. */
    gate_release(&g, 1);
    bg_join(&s.b);
    ASSERT_OK(s.b.rc);
    ASSERT_NOT_NULL(s.b.f);
    ASSERT_RESULT_I64(a, 1);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_RESULT_I64(s.b.f, 3);
    DESTROY_GATED(ex, &g, a, b, s.b.f);
}

/* Submits from inside a task ignore queue_max (else a full queue could deadlock the pool).
 * THREADS_ONLY: the task submits to the executor whose pointer it gets in its argument,
 * which only means something inside the same process. */
static int submit_many_inside(const void *arg, size_t arg_size, void *out, size_t out_cap,
                              size_t *out_size)
{
    struct ex_arg a; /* a.n: how many tasks to submit */
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    int32_t ok = 0;
    for (int64_t i = 0; i < a.n; i++) {
        ok += exec_submit(a.ex, task_echo, &i, sizeof i, NULL) == EXEC_OK;
    }
    return task_put(out, out_cap, out_size, &ok, sizeof ok);
}

TEST(executor_submit_inside_task_unbounded)
{
    exec_t *ex = make_with(1, (exec_config_t){.queue_max = 1});
    struct ex_arg a = {.ex = ex, .n = 5};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, submit_many_inside, &a, sizeof a, &f));
    int32_t ok;
    WAIT_RESULT(f, &ok, sizeof ok);
    ASSERT_EQ(ok, 5);
    exec_future_release(f);
    ASSERT_OK(exec_shutdown(ex, 0));
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 6);
    ASSERT_EQ(st.completed, 6);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Big arguments                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* The first and the last 8 bytes of the argument. */
static int task_ends(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    unsigned char r[16];
    if (arg_size < sizeof r)
        return BAD_CALL;
    memcpy(r, arg, 8);
    memcpy(r + 8, (const unsigned char *)arg + arg_size - 8, 8);
    return task_put(out, out_cap, out_size, r, sizeof r);
}

static void fill_big(unsigned char *buf, size_t n, int i)
{
    memset(buf, 0, n);
    for (int k = 0; k < 8; k++) {
        buf[k] = (unsigned char)(i * 8 + k);
        buf[n - 8 + k] = (unsigned char)(255 - i * 8 - k);
    }
}

static void check_ends(exec_future_t *f, int i)
{
    unsigned char want[16], r[16];
    fill_big(want, sizeof want, i);
    WAIT_RESULT(f, r, sizeof r);
    ASSERT_MEM_EQ(r, want, sizeof r);
}

/* 64 tasks of 256 KiB, all submitted before any is waited for: each task sees its own
 * argument (the process backend queues only a few MiB of copies and puts the rest straight
 * into the rings as they drain; the thread backend reuses its copies' buffers). */
TEST(executor_big_args_deep_window)
{
    enum { SZ = 256 << 10, N = 64 };
    exec_t *ex = make_with(2, (exec_config_t){.max_arg_size = SZ});
    unsigned char *buf = malloc(SZ);
    ASSERT_NOT_NULL(buf);
    exec_future_t *fs[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            fill_big(buf, SZ, i);
            ASSERT_OK(exec_submit(ex, task_ends, buf, SZ, &fs[i]));
        }
        for (int i = 0; i < N; i++) {
            check_ends(fs[i], i);
            exec_future_release(fs[i]);
        }
    }
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.completed, 2 * N);
    free(buf);
    ASSERT_OK(exec_destroy(ex));
}

static void *bg_submit_big(void *p)
{
    struct bg *b = p;
    unsigned char *buf = malloc(1 << 20);
    if (!buf) {
        b->rc = EXEC_ENOMEM;
    } else {
        fill_big(buf, 1 << 20, 7);
        b->rc = exec_submit(b->ex, task_ends, buf, 1 << 20, &b->f);
        free(buf);
    }
    atomic_store(&b->done, true);
    return NULL;
}

/* PROCESSES_ONLY. With the only worker busy, copies of big arguments queue up to a few MiB;
 * beyond that a submit waits for a ring to take its argument (EXEC_EAGAIN with
 * EXEC_SUBMIT_TRY), returns once the worker drains, and is woken by a shutdown. */
TEST(process_big_args_bounded_queue)
{
    enum { SZ = 1 << 20, MAXN = 64 };
    gate_open(&g);
    exec_t *ex = make_with(1, (exec_config_t){.max_arg_size = SZ});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    unsigned char *buf = malloc(SZ);
    ASSERT_NOT_NULL(buf);
    exec_future_t *fs[MAXN];
    exec_submit_opts_t o = {.flags = EXEC_SUBMIT_TRY};
    int n = 0, r = EXEC_OK;
    while (n < MAXN) {
        fill_big(buf, SZ, n);
        r = exec_submit_ex(ex, task_ends, buf, SZ, &o, &fs[n]);
        if (r != EXEC_OK)
            break;
        n++;
    }
    ASSERT_ERR(r, EXEC_EAGAIN);
    /* The ring (2 MiB and a bit) and the queued copies (4 MiB): never the whole window. */
    ASSERT_TRUE(n >= 2 && n <= 8);

    /* A blocking submit waits, then goes through once the worker drains. */
    struct bg b = {.ex = ex};
    bg_start(&b, bg_submit_big);
    test_sleep_ms(20); /* time for a wrongly non-blocking submit to show itself */
    ASSERT_FALSE(done(&b));
    gate_release(&g, 1);
    bg_join(&b);
    ASSERT_OK(b.rc);
    ASSERT_RESULT_I64(a, 1);
    for (int i = 0; i < n; i++) {
        check_ends(fs[i], i);
        exec_future_release(fs[i]);
    }
    check_ends(b.f, 7);
    RELEASE_ALL(a, b.f);

    /* Blocked again; a shutdown that cancels the queue wakes it with EXEC_ESHUTDOWN. */
    a = SUBMIT_RUNNING(ex, &g, 2);
    for (n = 0; n < MAXN; n++) {
        fill_big(buf, SZ, n);
        if (exec_submit_ex(ex, task_ends, buf, SZ, &o, &fs[n]) != EXEC_OK)
            break;
    }
    struct bg b2 = {.ex = ex};
    bg_start(&b2, bg_submit_big);
    test_sleep_ms(20);
    ASSERT_FALSE(done(&b2));
    struct bg s = {.ex = ex, .flags = EXEC_SHUTDOWN_CANCEL};
    bg_start(&s, bg_shutdown);
    bg_join(&b2);
    ASSERT_ERR(b2.rc, EXEC_ESHUTDOWN);
    gate_release(&g, 1);
    bg_join(&s);
    ASSERT_OK(s.rc);
    ASSERT_RESULT_I64(a, 2);
    for (int i = 0; i < n; i++) {
        ASSERT_OK(exec_future_wait(fs[i], EXEC_WAIT_FOREVER)); /* the runner's alarm bounds it */
        exec_state_t st = exec_future_state(fs[i]);
        ASSERT_TRUE(st == EXEC_STATE_CANCELLED || st == EXEC_STATE_DONE);
        exec_future_release(fs[i]);
    }
    exec_future_release(a);
    free(buf);
    destroy_gated(ex, &g);
}

/* PROCESSES_ONLY. A submit blocked on the queued big arguments returns once they are
 * cancelled, while the worker is still busy (their bytes are free). */
TEST(process_big_args_cancel_wakes)
{
    enum { SZ = 1 << 20, MAXN = 64 };
    gate_open(&g);
    exec_t *ex = make_with(1, (exec_config_t){.max_arg_size = SZ});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    unsigned char *buf = calloc(1, SZ);
    ASSERT_NOT_NULL(buf);
    exec_future_t *fs[MAXN];
    exec_submit_opts_t o = {.flags = EXEC_SUBMIT_TRY};
    int n = 0;
    while (n < MAXN && exec_submit_ex(ex, task_ends, buf, SZ, &o, &fs[n]) == EXEC_OK)
        n++;
    ASSERT_TRUE(n < MAXN);
    struct bg b = {.ex = ex};
    bg_start(&b, bg_submit_big);
    test_sleep_ms(20);
    ASSERT_FALSE(done(&b));
    int cancelled = 0;
    for (int i = 0; i < n; i++)
        cancelled += exec_future_cancel(fs[i], 0) == EXEC_OK;
    ASSERT_TRUE(cancelled >= 1); /* the queued ones (those in the ring may be taken back) */
    bg_join(&b); /* returns with the worker still blocked */
    ASSERT_OK(b.rc);
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_RUNNING);
    gate_release(&g, 1);
    ASSERT_RESULT_I64(a, 1);
    check_ends(b.f, 7);
    for (int i = 0; i < n; i++)
        exec_future_release(fs[i]);
    RELEASE_ALL(a, b.f);
    free(buf);
    destroy_gated(ex, &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Shutdown                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* After exec_shutdown(): every submit is EXEC_ESHUTDOWN; shutting down again is fine with
 * every flag; futures from before keep their results. */
TEST(executor_submit_after_shutdown)
{
    exec_t *ex = make_workers(2);
    exec_future_t *before = submit_echo_i64(ex, 77);
    ASSERT_OK(exec_shutdown(ex, 0));
    /* shutdown(0) waited for every queued and running task. */
    ASSERT_EQ(exec_future_state(before), EXEC_STATE_DONE);

    int64_t v = 5;
    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, task_echo, &v, sizeof v, &f), EXEC_ESHUTDOWN);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    ASSERT_ERR(exec_submit(ex, task_echo, &v, sizeof v, NULL), EXEC_ESHUTDOWN);
    exec_submit_opts_t o = {0};
    f = SENTINEL;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f), EXEC_ESHUTDOWN);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    o.flags = EXEC_SUBMIT_TRY;
    ASSERT_ERR(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f), EXEC_ESHUTDOWN);

    ASSERT_OK(exec_shutdown(ex, 0));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_NOWAIT));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_CANCEL));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT));
    ASSERT_ERR(exec_submit(ex, task_echo, &v, sizeof v, NULL), EXEC_ESHUTDOWN);

    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 1);
    ASSERT_RESULT_I64(before, 77);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_RESULT_I64(before, 77); /* still valid after destroy, until released */
    exec_future_release(before);
}

/* NULL or unknown flags: EXEC_EINVAL, and nothing is done (the executor still accepts). */
TEST(executor_shutdown_invalid)
{
    exec_t *ex = make_workers(1);
    ASSERT_ERR(exec_shutdown(NULL, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_shutdown(NULL, EXEC_SHUTDOWN_NOWAIT), EXEC_EINVAL);
    static const unsigned bad[] = {4, 8, 0x80000000u, ~0u, EXEC_SHUTDOWN_CANCEL | 4};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = exec_shutdown(ex, bad[i]);
        if (rc != EXEC_EINVAL)
            TEST_FAIL("flags %#x: %s, want EXEC_EINVAL", bad[i], exec_errname(rc));
    }
    exec_future_t *f = submit_echo_i64(ex, 9);
    ASSERT_RESULT_I64(f, 9);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* shutdown(0) from another thread runs the queued tasks, not cancels them, and returns only
 * after they ran. */
TEST(executor_shutdown_drains)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_echo_i64(ex, 2);
    exec_future_t *c = submit_echo_i64(ex, 3);

    struct bg s = {.ex = ex, .flags = 0};
    bg_start(&s, bg_shutdown);
    /* Wait until the shutdown has begun: submits start failing. */
    uint64_t end = test_now_ms() + BOUND_MS;
    int64_t v = 0;
    int rc;
    while ((rc = exec_submit(ex, task_echo, &v, sizeof v, NULL)) == EXEC_OK) {
        ASSERT_LT(test_now_ms(), end);
        test_sleep_ms(1);
    }
    ASSERT_ERR(rc, EXEC_ESHUTDOWN);
    /* a still blocks the only worker: the shutdown cannot be over, b and c still wait. */
    ASSERT_FALSE(done(&s));
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_RUNNING);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_QUEUED);
    ASSERT_EQ(exec_future_state(c), EXEC_STATE_QUEUED);

    gate_release(&g, 1);
    bg_join(&s);
    ASSERT_OK(s.rc);
    /* Returned only after everything ran. */
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_DONE);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_DONE);
    ASSERT_EQ(exec_future_state(c), EXEC_STATE_DONE);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_RESULT_I64(c, 3);
    DESTROY_GATED(ex, &g, a, b, c);
}

/* EXEC_SHUTDOWN_CANCEL: queued tasks end EXEC_STATE_CANCELLED / EXEC_ECANCELLED without
 * running (the fire-and-forget one never writes its byte); the running task finishes, and
 * the shutdown waits for it. */
TEST(executor_shutdown_cancel)
{
    struct gate out;
    exec_t *ex = make_gated(&g, 1);
    gate_open(&out);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_echo_i64(ex, 2);
    exec_future_t *c = submit_echo_i64(ex, 3);
    struct signal_arg sa = {.tag = 'd'};
    gate_path(sa.gate, &out);
    ASSERT_OK(exec_submit(ex, signal_ran, &sa, sizeof sa, NULL));

    struct bg s = {.ex = ex, .flags = EXEC_SHUTDOWN_CANCEL};
    bg_start(&s, bg_shutdown);
    WAIT_STATE(b, EXEC_STATE_CANCELLED);
    WAIT_STATE(c, EXEC_STATE_CANCELLED);
    /* The running task is not cancelled, and the shutdown waits for it. */
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_RUNNING);
    ASSERT_FALSE(done(&s));

    gate_release(&g, 1);
    bg_join(&s);
    ASSERT_OK(s.rc);
    ASSERT_RESULT_I64(a, 1);

    exec_future_t *cancelled[2] = {b, c};
    for (int i = 0; i < 2; i++) {
        exec_future_t *f = cancelled[i];
        ASSERT_OK(exec_future_wait(f, 0));
        const void *data = SENTINEL;
        ASSERT_ERR(exec_future_result(f, &data, NULL), EXEC_ECANCELLED);
        exec_fault_t fault;
        ASSERT_OK(exec_future_fault(f, &fault));
        ASSERT_ERR(fault.code, EXEC_ECANCELLED);
        ASSERT_EQ(fault.worker_id, -1); /* never ran */
        ASSERT_EQ(fault.task_status, 0);
    }
    /* The forgotten queued task never ran. */
    ASSERT_EQ(gate_read_within(&out, 0), -1);

    EXPECT_COUNTS(ex, .submitted = 4, .completed = 1, .cancelled = 3);
    ASSERT_ERR(exec_submit(ex, task_echo, &sa, sizeof sa, NULL), EXEC_ESHUTDOWN);
    DESTROY_GATED(ex, &g, a, b, c);
    gate_close(&out);
}

/* EXEC_SHUTDOWN_NOWAIT returns while a task still runs; exec_destroy() does the waiting. */
TEST(executor_shutdown_nowait)
{
    exec_t *ex = make_gated(&g, 1);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = submit_echo_i64(ex, 2);
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_NOWAIT));
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_RUNNING); /* could not have finished */
    ASSERT_ERR(exec_submit(ex, task_echo, "12345678", 8, NULL), EXEC_ESHUTDOWN);
    gate_release(&g, 1);
    ASSERT_OK(exec_destroy(ex));
    /* Not cancelled: NOWAIT alone runs the queued task. */
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    RELEASE_ALL(a, b);
    gate_close(&g);
}

/* ---------------------------------------------------------------------------------------- */
/* Destroy                                                                                   */
/* ---------------------------------------------------------------------------------------- */

TEST(executor_destroy_null)
{
    ASSERT_OK(exec_destroy(NULL));
}

/* exec_destroy() with tasks running and queued waits for all of them; their futures keep
 * their results after it and are released afterwards. */
TEST(executor_destroy_waits)
{
    exec_t *ex = make_gated(&g, 2);
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = SUBMIT_RUNNING(ex, &g, 2);
    exec_future_t *c = submit_echo_i64(ex, 3);
    ASSERT_EQ(exec_future_state(c), EXEC_STATE_QUEUED);
    struct gate_later later;
    gate_release_later(&later, &g, 2);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_DONE);
    ASSERT_EQ(exec_future_state(b), EXEC_STATE_DONE);
    ASSERT_EQ(exec_future_state(c), EXEC_STATE_DONE);
    gate_later_join(&later);
    ASSERT_RESULT_I64(a, 1);
    ASSERT_RESULT_I64(b, 2);
    ASSERT_RESULT_I64(c, 3);
    exec_future_t *extra = exec_future_retain(c);
    RELEASE_ALL(a, b, c);
    ASSERT_RESULT_I64(extra, 3);
    exec_future_release(extra);
    gate_close(&g);
}

/* exec_destroy() from inside one of the executor's own tasks: EXEC_EDEADLK, nothing done,
 * the executor still works. A waiting exec_shutdown() from there works (tests/test_inside.c).
 * THREADS_ONLY: the task gets the exec_t pointer through its argument bytes; in a worker
 * process that pointer would name the child's copy, a different object (struct ex_arg). */

static int call_destroy_inside(const void *arg, size_t arg_size, void *out, size_t out_cap,
                               size_t *out_size)
{
    struct ex_arg a;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    int32_t rc[3];
    rc[0] = exec_destroy(a.ex);
    rc[1] = exec_destroy(a.ex);
    rc[2] = exec_submit(a.ex, task_noop, NULL, 0, NULL);
    return task_put(out, out_cap, out_size, rc, sizeof rc);
}

TEST(executor_destroy_in_task)
{
    exec_t *ex = make_workers(2);
    struct ex_arg a = {.ex = ex};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, call_destroy_inside, &a, sizeof a, &f));
    int32_t rc[3];
    WAIT_RESULT(f, rc, sizeof rc);
    ASSERT_ERR(rc[0], EXEC_EDEADLK);
    ASSERT_ERR(rc[1], EXEC_EDEADLK);
    ASSERT_OK(rc[2]);
    exec_future_release(f);
    /* Nothing was done: the executor still takes and runs tasks. */
    f = submit_echo_i64(ex, 8);
    ASSERT_RESULT_I64(f, 8);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* exec_shutdown(NOWAIT) from inside a task is allowed; afterwards submits fail.
 * THREADS_ONLY: the exec_t pointer travels in the argument bytes (see above). */
static int call_shutdown_nowait_inside(const void *arg, size_t arg_size, void *out,
                                       size_t out_cap, size_t *out_size)
{
    struct ex_arg a;
    if (!task_arg(&a, sizeof a, arg, arg_size))
        return BAD_CALL;
    int32_t rc = exec_shutdown(a.ex, EXEC_SHUTDOWN_NOWAIT);
    return task_put(out, out_cap, out_size, &rc, sizeof rc);
}

TEST(executor_shutdown_nowait_in_task)
{
    exec_t *ex = make_workers(1);
    struct ex_arg a = {.ex = ex};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, call_shutdown_nowait_inside, &a, sizeof a, &f));
    int32_t rc;
    WAIT_RESULT(f, &rc, sizeof rc);
    ASSERT_OK(rc);
    ASSERT_ERR(exec_submit(ex, task_echo, "x", 1, NULL), EXEC_ESHUTDOWN);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Statistics                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A known workload: 5 successes, 3 task errors, 1 cancelled while queued, 2 blocked tasks
 * that then succeed. Every counter matches, at the start, while blocked and at the end. */
TEST(executor_stats_counts)
{
    exec_t *ex = make_gated(&g, 2);
    exec_stats_t st;
    ASSERT_ERR(exec_stats(NULL, &st), EXEC_EINVAL);
    ASSERT_ERR(exec_stats(ex, NULL), EXEC_EINVAL);

    WAIT_STAT(ex, workers_alive, 2);
    ASSERT_EQ(stats_of(ex).workers_alive, 2);
    EXPECT_COUNTS(ex, .submitted = 0);

    exec_future_t *fs[11];
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        fs[n++] = submit_echo_i64(ex, i);
    for (int i = 0; i < 3; i++) {
        int32_t status = 7 + i;
        ASSERT_OK(exec_submit(ex, task_status, &status, sizeof status, &fs[n]));
        n++;
    }
    ASSERT_OK(exec_future_wait_all(fs, n, BOUND_MS));

    /* Counters of terminal futures are in place once the futures are terminal (running
     * drops only once the workers are back from their tasks). */
    EXPECT_COUNTS(ex, .submitted = 8, .completed = 5, .failed = 3, .running = STAT_ANY);

    /* Both workers blocked, one task queued then cancelled. */
    fs[n++] = SUBMIT_RUNNING(ex, &g, 100);
    fs[n++] = SUBMIT_RUNNING(ex, &g, 101);
    fs[n] = submit_echo_i64(ex, 102);
    EXPECT_COUNTS(ex, .submitted = 11, .completed = 5, .failed = 3, .queued = 1, .running = 2);
    ASSERT_OK(exec_future_cancel(fs[n], 0));
    n++;
    EXPECT_COUNTS(ex, .submitted = 11, .completed = 5, .failed = 3, .cancelled = 1,
                  .running = 2);

    gate_release(&g, 2);
    ASSERT_OK(exec_future_wait_all(fs, n, BOUND_MS));
    EXPECT_COUNTS(ex, .submitted = 11, .completed = 7, .failed = 3, .cancelled = 1,
                  .running = STAT_ANY);
    st = stats_of(ex);
    ASSERT_EQ(st.timed_out, 0);
    ASSERT_EQ(st.crashed, 0);
    ASSERT_EQ(st.workers_alive, 2);
    ASSERT_EQ(st.workers_retired, 0);
    ASSERT_EQ(st.map_items, 0);
    for (size_t i = 0; i < sizeof st.reserved / sizeof st.reserved[0]; i++)
        ASSERT_EQ(st.reserved[i], 0);
    /* running drops to 0 once the workers are back from their tasks. */
    ASSERT_OK(exec_shutdown(ex, 0));
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.running, 0);
    ASSERT_EQ(st.completed + st.failed + st.cancelled, st.submitted);
    for (size_t i = 0; i < n; i++)
        exec_future_release(fs[i]);
    destroy_gated(ex, &g);
}

/* A done-callback run by one of the executor's own threads (on threads: the timer thread
 * that fails a task at its deadline; on processes: the supervisor) must not be able to
 * destroy that executor: it would join or free the thread running it. A waiting shutdown
 * from there works (and waits for the work only: tests/test_inside.c). */
struct in_cb {
    exec_t *ex;
    _Atomic int destroy_rc, shutdown_rc, calls;
};

static void destroy_from_callback(exec_future_t *f, void *user_data)
{
    (void)f;
    struct in_cb *c = user_data;
    atomic_store(&c->destroy_rc, exec_destroy(c->ex));
    atomic_store(&c->shutdown_rc, exec_shutdown(c->ex, 0));
    atomic_fetch_add(&c->calls, 1);
}

TEST(executor_destroy_in_deadline_callback)
{
    exec_t *ex = make_workers(1);
    struct in_cb c = {.ex = ex};
    atomic_init(&c.destroy_rc, 1);
    atomic_init(&c.shutdown_rc, 1);
    atomic_init(&c.calls, 0);
    exec_submit_opts_t o = {.timeout_ms = 50};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit_ex(ex, task_until_stopped, NULL, 0, &o, &f));
    ASSERT_OK(exec_future_on_done(f, destroy_from_callback, &c));
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    ASSERT_ERR(exec_future_result(f, NULL, NULL), EXEC_ETIMEDOUT);
    uint64_t t0 = test_now_ms();
    while (atomic_load(&c.calls) == 0) {
        ASSERT_LT(test_now_ms() - t0, (uint64_t)BOUND_MS);
        test_sleep_ms(1);
    }
    ASSERT_ERR(atomic_load(&c.destroy_rc), EXEC_EDEADLK);
    ASSERT_OK(atomic_load(&c.shutdown_rc));
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}
