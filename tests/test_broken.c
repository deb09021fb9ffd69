/* SPDX-License-Identifier: MIT */
/*
 * test_broken.c - the per-worker initializer and the pool it breaks, on both backends: it
 * runs once in each new worker (recycled ones too) before that worker's first task; one that
 * fails (returns non-zero; on processes also _exit() or a signal; on threads pthread_exit())
 * breaks the pool: tasks submitted before end EXEC_EBROKEN promptly, with how the
 * initializer ended in the fault; later submits and maps are refused at once; no worker is
 * started again and none is left.
 */
#include "harness.h"

#include "gate.h"
#include "tasks.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Promptness bound (the 1 s), times the tool's slowness. */
#define PROMPT_MS 1000

/* Counters every worker sees, thread or process: shared anonymous memory mapped before the
 * executor (so its zygote and workers inherit it). */
struct shared {
    atomic_int init_calls;
    atomic_int ran;
};
static struct shared *sh;

static void sh_map(void)
{
    void *p = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    ASSERT_TRUE(p != MAP_FAILED);
    sh = p;
}

static exec_t *make_init(int workers, exec_config_t cfg)
{
    sh_map();
    return make_with(workers, cfg);
}

/* What the initializer left in this worker (a thread-local: per worker on both backends). */
static _Thread_local int init_value;

/* Initializers. Their argument: an int (the value to keep), or a gate path to wait on. */
static int init_keep(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->init_calls, 1);
    if (n != sizeof init_value)
        return BAD_CALL;
    memcpy(&init_value, arg, sizeof init_value);
    return 0;
}

/* Waits until the test lets it go (so that the test submits first), then returns 5. */
static int init_wait_fail(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->init_calls, 1);
    if (task_gate_wait(arg) != 0)
        return READ_FAILED;
    return 5;
}

static int init_wait_exit(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->init_calls, 1);
    (void)task_gate_wait(arg);
    _exit(3);
}

static int init_wait_segv(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->init_calls, 1);
    (void)task_gate_wait(arg);
    raise(SIGSEGV);
    return 0;
}

static int init_wait_thread_exit(const void *arg, size_t n, void *out, size_t cap,
                                 size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->init_calls, 1);
    (void)task_gate_wait(arg);
    pthread_exit(NULL);
}

/* The third initializer call (and every later one) fails with 6. */
static int init_third_fails(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n, (void)out, (void)cap, (void)osz;
    return atomic_fetch_add(&sh->init_calls, 1) >= 2 ? 6 : 0;
}

/* Tasks. */
static int task_init_value(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n;
    atomic_fetch_add(&sh->ran, 1);
    return task_put_i64(out, cap, osz, init_value);
}

static int task_count(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n, (void)out, (void)cap, (void)osz;
    atomic_fetch_add(&sh->ran, 1);
    return 0;
}

static exec_fault_t fault_of(exec_future_t *f)
{
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    return ft;
}

/* Wait until the stats say no worker is alive (bounded). */
static void expect_no_worker(exec_t *ex)
{
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    while (stats_of(ex).workers_alive != 0 && test_now_ms() < end)
        test_sleep_ms(5);
    ASSERT_EQ(stats_of(ex).workers_alive, 0);
}

/* Each new worker runs the initializer once with a copy of init_arg, recycled ones too,
 * before its first task; the caller's buffer is free when exec_create() returns. */
TEST(init_runs_in_every_worker)
{
    int magic = 4242;
    exec_config_t cfg = {.initializer = init_keep, .init_arg = &magic,
                         .init_arg_size = sizeof magic, .max_tasks_per_child = 2};
    exec_t *ex = make_init(2, cfg);
    magic = 0;
    enum { N = 20 };
    exec_future_t *fs[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(exec_submit(ex, task_init_value, NULL, 0, &fs[i]));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(wait_i64(fs[i]), 4242);
        ASSERT_EQ(fault_of(fs[i]).cause, EXEC_CAUSE_NONE);
        exec_future_release(fs[i]);
    }
    ASSERT_OK(exec_destroy(ex));
    /* Once per worker: 10 workers ran the 20 tasks; at most the last two replacements ran
     * it without getting a task. */
    ASSERT_GE(atomic_load(&sh->init_calls), N / 2);
    ASSERT_LE(atomic_load(&sh->init_calls), N / 2 + 2);
}

/* The initializer of each worker blocks on a gate until the test has submitted, then fails
 * with @init (a return, an exit, a signal, a thread exit): every task ends EXEC_EBROKEN
 * within PROMPT_MS of the gate's opening, none ran, the fault says how the initializer
 * ended; later submits and maps are refused at once; no worker is started again and none is
 * left. Returns the fault of the first task for the caller's checks. */
static exec_fault_t break_with(exec_task_fn *init)
{
    struct gate g;
    gate_open(&g);
    char path[GATE_PATH];
    gate_path(path, &g);
    exec_t *ex = make_init(2, (exec_config_t){.initializer = init, .init_arg = path,
                                              .init_arg_size = sizeof path});
    enum { N = 6 };
    exec_future_t *fs[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(exec_submit(ex, task_count, NULL, 0, &fs[i]));
    gate_release(&g, 2);
    uint64_t t0 = test_now_ms();
    ASSERT_OK(exec_future_wait_all(fs, N, PROMPT_MS * test_timeout_scale()));
    ASSERT_LE(test_now_ms() - t0, (uint64_t)PROMPT_MS * test_timeout_scale());
    exec_fault_t first = fault_of(fs[0]);
    for (int i = 0; i < N; i++) {
        exec_fault_t ft = fault_of(fs[i]);
        ASSERT_EQ(ft.code, EXEC_EBROKEN);
        ASSERT_EQ(ft.cause, EXEC_CAUSE_INITIALIZER);
        ASSERT_EQ(ft.task_status, first.task_status);
        ASSERT_EQ(ft.signal, first.signal);
        ASSERT_EQ(ft.exit_status, first.exit_status);
        ASSERT_ERR(exec_future_result(fs[i], NULL, NULL), EXEC_EBROKEN);
        exec_future_release(fs[i]);
    }
    ASSERT_EQ(atomic_load(&sh->ran), 0);
    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, task_count, NULL, 0, &f), EXEC_EBROKEN);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, out, 8, 4, NULL), EXEC_EBROKEN);
    expect_no_worker(ex);
    /* No respawn loop: only the first two workers ever ran the initializer. */
    test_sleep_ms(200);
    ASSERT_LE(atomic_load(&sh->init_calls), 2);
    ASSERT_EQ(stats_of(ex).workers_retired, 0);
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_NOWAIT));
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);
    return first;
}

/* break_with(@init), and the fault says how the initializer ended. */
static void expect_break(exec_task_fn *init, int task_status, int sig, int exit_status)
{
    exec_fault_t ft = break_with(init);
    ASSERT_EQ(ft.task_status, task_status);
    ASSERT_EQ(ft.signal, sig);
    ASSERT_EQ(ft.exit_status, exit_status);
}

TEST(init_returns_nonzero_breaks)
{
    expect_break(init_wait_fail, 5, 0, -1);
}

TEST(init_exit_breaks)
{
    expect_break(init_wait_exit, 0, 0, 3);
}

TEST(init_signal_breaks)
{
    expect_break(init_wait_segv, 0, SIGSEGV, -1);
}

/* On threads the initializer's end leaves no detail but the cause: it ended its thread. */
TEST(init_thread_exit_breaks)
{
    expect_break(init_wait_thread_exit, 0, 0, -1);
}

/* An initializer that fails only in a later worker (the third) breaks the pool then: tasks
 * that ran before keep their results, tasks still waiting end EXEC_EBROKEN with its status,
 * later submits are refused, and no fourth worker starts. */
TEST(init_fails_in_recycled_worker)
{
    exec_t *ex = make_init(1, (exec_config_t){.initializer = init_third_fails,
                                              .max_tasks_per_child = 1});
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    int r, done = 0, broken = 0;
    do {
        exec_future_t *f = NULL;
        r = exec_submit(ex, task_count, NULL, 0, &f);
        if (r != EXEC_OK)
            break;
        ASSERT_OK(exec_future_wait(f, GATE_BOUND_MS * test_timeout_scale()));
        exec_fault_t ft = fault_of(f);
        if (ft.code == EXEC_OK) {
            ASSERT_EQ(broken, 0); /* nothing runs once the pool is broken */
            done++;
        } else {
            ASSERT_EQ(ft.code, EXEC_EBROKEN);
            ASSERT_EQ(ft.cause, EXEC_CAUSE_INITIALIZER);
            ASSERT_EQ(ft.task_status, 6);
            broken++;
        }
        exec_future_release(f);
    } while (test_now_ms() < end);
    ASSERT_ERR(r, EXEC_EBROKEN);
    ASSERT_GE(done, 1);
    ASSERT_LE(done, 2);
    ASSERT_EQ(atomic_load(&sh->ran), done);
    expect_no_worker(ex);
    ASSERT_OK(exec_destroy(ex));
    /* No worker after the break. On processes the replacement of a worker is prepared when
     * its last task is sent, so one more may have been starting as the pool broke. */
    ASSERT_GE(atomic_load(&sh->init_calls), 3);
    ASSERT_LE(atomic_load(&sh->init_calls), test_backend == EXEC_BACKEND_PROCESSES ? 4 : 3);
}

/* The only child of this test process: the zygote of its one forkserver pool (its workers
 * are the zygote's children). 0 if there is not exactly one. */
struct only {
    pid_t found;
    int n;
};

static void only_visit(long pid, void *arg)
{
    struct only *o = arg;
    pid_t ppid;
    if (test_proc_stat((pid_t)pid, NULL, &ppid, NULL) == 0 && ppid == getpid()) {
        o->found = (pid_t)pid;
        o->n++;
    }
}

static pid_t only_child(void)
{
    struct only o = {0, 0};
    test_each_process(only_visit, &o);
    return o.n == 1 ? o.found : 0;
}

/* The zygote dies (SIGKILL): the pool breaks with EXEC_CAUSE_ZYGOTE, not with a text about
 * a breaker that is off: a task submitted afterwards ends EXEC_EBROKEN or is refused with
 * it, and the executor still shuts down. */
TEST(broken_zygote_killed)
{
    exec_t *ex = make_init(2, (exec_config_t){0});
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, task_count, NULL, 0, &f));
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    exec_future_release(f);
    pid_t z = only_child();
    ASSERT_GT(z, 0);
    ASSERT_EQ(kill(z, SIGKILL), 0);
    uint64_t end = test_now_ms() + (uint64_t)GATE_BOUND_MS * test_timeout_scale();
    int r, broken = 0;
    for (;;) {
        f = NULL;
        r = exec_submit(ex, task_count, NULL, 0, &f);
        if (r != EXEC_OK || test_now_ms() > end)
            break;
        ASSERT_OK(exec_future_wait(f, GATE_BOUND_MS * test_timeout_scale()));
        exec_fault_t ft = fault_of(f);
        exec_future_release(f);
        /* Before the supervisor saw the death a task may still run, or die with its
         * worker; after it, only EXEC_EBROKEN. */
        if (ft.code == EXEC_OK || ft.code == EXEC_ECRASHED) {
            ASSERT_EQ(broken, 0);
            continue;
        }
        ASSERT_EQ(ft.code, EXEC_EBROKEN);
        ASSERT_EQ(ft.cause, EXEC_CAUSE_ZYGOTE);
        broken++;
    }
    ASSERT_ERR(r, EXEC_EBROKEN);
    ASSERT_OK(exec_destroy(ex));
}
