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

/* --- shared-memory buffers across hosts (src/mpi/shm.c) -------------------------------- */

/* Test hooks of the MPI library's test build (weak: the plain runner has no MPI library). */
uint64_t exec__test_mpi_shm_fetches(void) __attribute__((weak));
size_t exec__test_mpi_shm_copies(void) __attribute__((weak));

struct shm_arg {
    exec_shm_ref_t ref[2];
};

struct shm_res {
    uint64_t sum[2];
    int64_t rw;     /* exec_shm_map() read-write */
    uint64_t copies; /* copies this serving process holds (a local thread pool: the rank's) */
};

static uint64_t byte_sum(const void *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((const unsigned char *)p)[i];
    return s;
}

static int task_shm_read(const void *arg, size_t arg_size, void *out, size_t out_cap,
                         size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct shm_arg a;
    struct shm_res res = {{0}, 0, 0};
    memcpy(&a, arg, sizeof a);
    for (int k = 0; k < 2; k++) {
        void *p = NULL;
        size_t n = 0;
        int r = exec_shm_map(&a.ref[k], EXEC_SHM_RDONLY, &p, &n);
        if (r != EXEC_OK)
            return 100 - r; /* the task's status says which code */
        res.sum[k] = byte_sum(p, n);
    }
    void *p = NULL;
    size_t n = 0;
    res.rw = exec_shm_map(&a.ref[0], 0, &p, &n);
    res.copies = exec__test_mpi_shm_copies ? exec__test_mpi_shm_copies() : 0;
    memcpy(out, &res, sizeof res);
    *out_size = sizeof res;
    return 0;
}

static int task_shm_copies(const void *arg, size_t arg_size, void *out, size_t out_cap,
                           size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out_cap;
    int64_t n = exec__test_mpi_shm_copies ? (int64_t)exec__test_mpi_shm_copies() : -1;
    memcpy(out, &n, sizeof n);
    *out_size = sizeof n;
    return 0;
}

/* Run @n tasks of @fn(@arg); count their ranks in seen[]; results into res[] (n at most 64). */
static void run_on_ranks(exec_t *ex, exec_task_fn *fn, const void *arg, size_t arg_size, int n,
                         void *res, size_t res_size, int *ranks)
{
    exec_future_t *fs[64] = {NULL};
    ASSERT_TRUE(n > 0 && n <= 64);
    for (int i = 0; i < n; i++)
        ASSERT_OK(exec_submit(ex, fn, arg, arg_size, &fs[i]));
    ASSERT_OK(exec_future_wait_all(fs, (size_t)n, EXEC_WAIT_FOREVER));
    for (int i = 0; i < n; i++) {
        exec_fault_t ft;
        const void *data = NULL;
        size_t len = 0;
        ASSERT_OK(exec_future_fault(fs[i], &ft));
        ASSERT_EQ(ft.task_status, 0);
        ASSERT_OK(exec_future_result(fs[i], &data, &len));
        ASSERT_EQ(len, res_size);
        memcpy((unsigned char *)res + (size_t)i * res_size, data, len);
        ranks[i] = ft.rank;
        exec_future_release(fs[i]);
    }
}

/* Rank 1 shares rank 0's host and maps the buffers directly (read-write too); rank 2 acts
 * as on another host (EXEC_MPI_OTHER_HOST=2): it gets one read-only copy per buffer, however
 * many tasks and workers map it, refuses read-write maps with EXEC_ENOTSUP, and drops the
 * copies when rank 0 closes the buffers. Local thread pools, then local process pools. */
TEST(mpi_shm_across_hosts)
{
    ASSERT_TRUE(exec__test_mpi_shm_fetches != NULL);
    ASSERT_EQ(setenv("EXEC_MPI_OTHER_HOST", "2", 1), 0);
    enum { N = 40 };
    static struct shm_res res[N];
    int ranks[N];
    for (int round = 0; round < 2; round++) {
        exec_config_t c;
        test_config(&c);
        c.workers = 4;
        c.mpi_local_backend = round ? EXEC_BACKEND_PROCESSES : EXEC_BACKEND_THREADS;
        exec_t *ex = make_exec(&c);
        exec_shm_t *b[2];
        size_t size[2] = {100000, 5000};
        ASSERT_OK(exec_shm_create(&b[0], NULL, size[0], 0));
        ASSERT_OK(exec_shm_create(&b[1], NULL, size[1], EXEC_SHM_ANONYMOUS));
        struct shm_arg a;
        uint64_t want[2];
        for (int k = 0; k < 2; k++) {
            unsigned char *p = exec_shm_ptr(b[k]);
            for (size_t i = 0; i < size[k]; i++)
                p[i] = (unsigned char)(i % (k ? 13 : 251));
            want[k] = byte_sum(p, size[k]);
            ASSERT_OK(exec_shm_ref(b[k], &a.ref[k]));
        }
        uint64_t before = exec__test_mpi_shm_fetches();
        run_on_ranks(ex, task_shm_read, &a, sizeof a, N, res, sizeof res[0], ranks);
        int seen[3] = {0, 0, 0};
        for (int i = 0; i < N; i++) {
            ASSERT_TRUE(ranks[i] == 1 || ranks[i] == 2);
            seen[ranks[i]]++;
            ASSERT_EQ(res[i].sum[0], want[0]);
            ASSERT_EQ(res[i].sum[1], want[1]);
            ASSERT_EQ(res[i].rw, ranks[i] == 2 ? EXEC_ENOTSUP : EXEC_OK);
            if (round == 0 && ranks[i] == 2)
                ASSERT_EQ(res[i].copies, 2);
        }
        ASSERT_GT(seen[1], 0);
        ASSERT_GT(seen[2], 0);
        ASSERT_EQ(exec__test_mpi_shm_fetches() - before, 2); /* rank 2, once per buffer */
        ASSERT_OK(exec_shm_close(b[0]));
        ASSERT_OK(exec_shm_close(b[1]));
        /* Rank 2 drops its copies soon after (a SHM_DROP each). */
        int64_t left = -1;
        for (uint64_t t0 = test_now_ms(); round == 0 && left != 0;) {
            int64_t n[8];
            int rk[8];
            run_on_ranks(ex, task_shm_copies, NULL, 0, 8, n, sizeof n[0], rk);
            for (int i = 0; i < 8; i++)
                if (rk[i] == 2)
                    left = n[i];
            ASSERT_LT(test_now_ms() - t0, 5000u * (unsigned)test_timeout_scale());
        }
        ASSERT_OK(exec_destroy(ex));
    }
    ASSERT_EQ(unsetenv("EXEC_MPI_OTHER_HOST"), 0);
}

/* The knob is checked: anything but "all" or a list of ranks 1..32 is EXEC_EINVAL. */
TEST(mpi_shm_other_host_knob_checked)
{
    exec_config_t c;
    test_config(&c);
    exec_t *ex = SENTINEL;
    const char *bad[] = {"x", "0", "2,", "1,,2", "33", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(setenv("EXEC_MPI_OTHER_HOST", bad[i], 1), 0);
        ASSERT_ERR(exec_create(&ex, &c), EXEC_EINVAL);
    }
    ASSERT_EQ(setenv("EXEC_MPI_OTHER_HOST", "all", 1), 0);
    ex = make_exec(&c);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(unsetenv("EXEC_MPI_OTHER_HOST"), 0);
}
