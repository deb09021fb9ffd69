/* SPDX-License-Identifier: MIT */
/*
 * test_mpi.c - what only the mpi backend does (MPI_ONLY: run by build/tests/run-mpi as MPI
 * jobs, see tests/mpi_run.h), and what a program without the backend sees (THREADS_ONLY).
 * The behavioural tests shared with the other backends are listed in tests/mpi_list.h.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tasks.h"

/* A config of the mpi backend whose serving ranks run local process pools. */
static exec_t *make_mpi(void)
{
    exec_config_t c;
    test_config(&c);
    return make_exec(&c);
}

static exec_config_t mpi_processes(void)
{
    exec_config_t c;
    test_config(&c);
    c.mpi_local_backend = EXEC_BACKEND_PROCESSES;
    return c;
}

static int task_segv(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    raise(SIGSEGV);
    return 0;
}

static int task_sleep_ms(const void *arg, size_t arg_size, void *out, size_t out_cap,
                         size_t *out_size)
{
    int64_t ms = 0;
    if (!task_arg(&ms, sizeof ms, arg, arg_size))
        return BAD_CALL;
    for (int64_t i = 0; i < ms / 10 && !exec_task_should_stop(); i++)
        usleep(10000);
    return task_put_i64(out, out_cap, out_size, (int64_t)getpid());
}

/* A map item that crashes its worker for the value 13. */
static int task_item_segv(const void *arg, size_t arg_size, void *out, size_t out_cap,
                          size_t *out_size)
{
    int64_t v;
    memcpy(&v, arg, sizeof v);
    if (v == 13)
        raise(SIGSEGV);
    return task_triple(arg, arg_size, out, out_cap, out_size);
}

static int64_t init_seen; /* set by the initializer in each local worker process */

static int task_init(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    (void)out, (void)out_cap, (void)out_size;
    return task_arg(&init_seen, sizeof init_seen, arg, arg_size) ? 0 : BAD_CALL;
}

static int task_read_init(const void *arg, size_t arg_size, void *out, size_t out_cap,
                          size_t *out_size)
{
    (void)arg, (void)arg_size;
    return task_put_i64(out, out_cap, out_size, init_seen);
}

static exec_future_t *submit_sleep(exec_t *ex, int64_t ms, uint32_t timeout_ms)
{
    exec_submit_opts_t o = {.timeout_ms = timeout_ms};
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit_ex(ex, task_sleep_ms, &ms, sizeof ms, &o, &f));
    return f;
}

/* Without exec_mpi_main() (the plain runner never calls it) the backend is not there. */
TEST(mpi_backend_missing)
{
    exec_config_t c = {0};
    exec_t *ex = NULL;
    c.backend = EXEC_BACKEND_MPI;
    ASSERT_EQ(exec_create(&ex, &c), EXEC_ENOTSUP);
    ASSERT_NULL(ex);
    c.backend = EXEC_BACKEND_THREADS;
    c.mpi_local_backend = EXEC_BACKEND_PROCESSES; /* an MPI-only field elsewhere */
    ASSERT_EQ(exec_create(&ex, &c), EXEC_EINVAL);
    c.backend = (exec_backend_t)3;
    c.mpi_local_backend = 0;
    ASSERT_EQ(exec_create(&ex, &c), EXEC_EINVAL);
}

TEST(mpi_remote_segfault)
{
    exec_config_t c = mpi_processes();
    exec_t *ex = make_exec(&c);
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, task_segv, NULL, 0, &f));
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_EQ(ft.code, EXEC_ECRASHED);
    ASSERT_EQ(ft.signal, SIGSEGV);
    ASSERT_LT(0, ft.rank);
    ASSERT_NE(ft.worker_pid, (int)getpid());
    exec_future_release(f);
    /* The rank and its pool go on. */
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(wait_i64(submit_echo_i64(ex, i)), i);
    ASSERT_OK(exec_destroy(ex));
}

TEST(mpi_deadline_kills_only_that_task)
{
    exec_config_t c = mpi_processes();
    exec_t *ex = make_exec(&c);
    uint64_t t0 = test_now_ms();
    exec_future_t *f = submit_sleep(ex, 20000, 200);
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    ASSERT_LT(test_now_ms() - t0, 10000u * (unsigned)test_timeout_scale());
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_EQ(ft.code, EXEC_ETIMEDOUT);
    ASSERT_LT(0, ft.rank);
    exec_future_release(f);
    ASSERT_EQ(wait_i64(submit_echo_i64(ex, 5)), 5);
    ASSERT_OK(exec_destroy(ex));
}

TEST(mpi_cancel_running_remote)
{
    exec_config_t c = mpi_processes();
    exec_t *ex = make_exec(&c);
    exec_future_t *f = submit_sleep(ex, 20000, 0);
    while (exec_future_state(f) == EXEC_STATE_QUEUED)
        test_sleep_ms(1);
    ASSERT_EQ(exec_future_cancel(f, 0), EXEC_EBUSY); /* sent: running */
    test_sleep_ms(100);
    uint64_t t0 = test_now_ms();
    ASSERT_OK(exec_future_cancel(f, EXEC_CANCEL_RUNNING));
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_CANCELLED);
    exec_future_release(f);
    /* The remote worker was killed: destroy does not wait the 20 s. */
    ASSERT_EQ(wait_i64(submit_echo_i64(ex, 9)), 9);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_LT(test_now_ms() - t0, 10000u * (unsigned)test_timeout_scale());
}

/* The job's check (tests/mpi_run.c): every rank ends soon after this returns, although the
 * executor is not destroyed and every serving rank still runs a 20 s task. */
TEST(mpi_rank0_exits_without_destroy)
{
    exec_config_t c = mpi_processes();
    exec_t *ex = make_exec(&c);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    for (uint64_t i = 0; i < st.workers_alive + 2; i++)
        exec_future_release(submit_sleep(ex, 20000, 0));
    test_sleep_ms(300);
}

TEST(mpi_bad_function_pointer)
{
    exec_t *ex = make_mpi();
    unsigned char *code = malloc(64);
    ASSERT_NE(code, NULL);
    exec_task_fn *fn = (exec_task_fn *)(uintptr_t)code; /* heap: in no module */
    exec_future_t *f = SENTINEL;
    ASSERT_EQ(exec_submit(ex, fn, NULL, 0, &f), EXEC_EINVAL);
    free(code);
    ASSERT_OK(exec_destroy(ex));
}

TEST(mpi_faults_name_the_rank_on_threads)
{
    exec_t *ex = make_mpi();
    exec_future_t *f = submit_status(ex, 7);
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_EQ(ft.code, EXEC_ETASK);
    ASSERT_EQ(ft.task_status, 7);
    ASSERT_LT(0, ft.rank);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

TEST(mpi_stats_sum_the_ranks)
{
    exec_config_t c;
    test_config(&c);
    c.workers = 2;
    exec_t *ex = make_exec(&c);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_LT(1u, st.workers_alive); /* 2 per serving rank, at least one rank */
    ASSERT_EQ(st.workers_alive % 2, 0);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(wait_i64(submit_echo_i64(ex, i)), i);
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.submitted, 10);
    ASSERT_EQ(st.completed, 10);
    ASSERT_OK(exec_destroy(ex));
}

TEST(mpi_initializer_runs_on_ranks)
{
    exec_config_t c = mpi_processes();
    int64_t v = 4242;
    c.initializer = task_init;
    c.init_arg = &v;
    c.init_arg_size = sizeof v;
    exec_t *ex = make_exec(&c);
    for (int i = 0; i < 4; i++) {
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, task_read_init, NULL, 0, &f));
        ASSERT_EQ(wait_i64(f), 4242);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* One MPI executor at a time, exactly: a second one is EXEC_EBUSY (with its message) from
 * the first one's exec_create() until its exec_destroy(), also while it is shut down, and
 * does not disturb it; after exec_destroy() a new one works. Other backends are not limited. */
TEST(mpi_executors_in_turn)
{
    for (int round = 0; round < 3; round++) {
        exec_t *ex = make_mpi();
        exec_t *two = NULL;
        ASSERT_EQ(exec_create(&two, NULL) == EXEC_OK, true); /* threads: fine */
        exec_destroy(two);
        exec_config_t c;
        test_config(&c);
        two = SENTINEL;
        ASSERT_ERR(exec_create(&two, &c), EXEC_EBUSY); /* one MPI executor at a time */
        ASSERT_TRUE(two == SENTINEL); /* written on success only */
        ASSERT_EQ(strcmp(exec_strerror(EXEC_EBUSY), "busy: already running or finished, or in use"),
                  0);
        ASSERT_EQ(wait_i64(submit_echo_i64(ex, round)), round); /* the first is undisturbed */
        if (round == 1) {
            ASSERT_OK(exec_shutdown(ex, 0));
            ASSERT_ERR(exec_create(&two, &c), EXEC_EBUSY); /* shut down: still there */
        }
        ASSERT_OK(exec_destroy(ex));
    }
    exec_t *ex = make_mpi(); /* and once more after the last destroy */
    ASSERT_EQ(wait_i64(submit_echo_i64(ex, 7)), 7);
    ASSERT_OK(exec_destroy(ex));
}

/* Flow control: with 20000 futures outstanding, what is in flight stays bounded. */
TEST(mpi_in_flight_bounded)
{
    exec_t *ex = make_mpi();
    enum { N = 20000 };
    exec_future_t **fs = malloc(N * sizeof *fs);
    ASSERT_NE(fs, NULL);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    uint64_t bound = st.workers_alive * 4 + 4 * 64; /* 4 per worker + 4 per rank, generously */
    uint64_t most = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, &fs[i]));
        if (i % 2000 == 0) {
            ASSERT_OK(exec_stats(ex, &st));
            most = st.running > most ? st.running : most;
        }
    }
    ASSERT_OK(exec_future_wait_all(fs, N, EXEC_WAIT_FOREVER));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(exec_future_state(fs[i]), EXEC_STATE_DONE);
        exec_future_release(fs[i]);
    }
    free(fs);
    ASSERT_LT(most, bound + 1);
    ASSERT_OK(exec_destroy(ex));
}

/* A crash in a map chunk on a remote rank fails only the item it hit (the rest of the chunk
 * keeps its results or runs on another local worker); tests/test_map_faults.c counts runs. */
TEST(mpi_map_crash_fails_its_item)
{
    exec_config_t c = mpi_processes();
    exec_t *ex = make_exec(&c);
    enum { N = 100 };
    int64_t in[N], out[N];
    int st[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    exec_map_opts_t o = {.chunk_size = 10, .status = st};
    ASSERT_EQ(exec_map(ex, task_item_segv, in, sizeof in[0], out, sizeof out[0], N, &o),
              EXEC_ECRASHED);
    for (int i = 0; i < N; i++) {
        if (i == 13) {
            ASSERT_EQ(st[i], EXEC_ECRASHED);
        } else {
            ASSERT_EQ(st[i], 0);
            ASSERT_EQ(out[i], 3 * i + 1);
        }
    }
    ASSERT_EQ(o.failed, 1);
    ASSERT_EQ(o.first_failed, 13);
    ASSERT_OK(exec_destroy(ex));
}
