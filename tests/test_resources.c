/* SPDX-License-Identifier: MIT */
/*
 * test_resources.c - running out of resources says so: with few file descriptors left,
 * exec_create() either returns an executor that runs tasks or fails with EXEC_ESYS and the
 * errno of the call that failed (EMFILE), never a pool that breaks later with a text about
 * a cause that did not happen.
 */
#include "harness.h"

#include "tasks.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

/* `ulimit -n` set to the fds open now plus @room, then up to 50 executors of 2 workers: each
 * one created maps 100 items correctly; each failure is EXEC_ESYS with errno EMFILE. */
static void create_until_out_of_fds(exec_start_method_t method, int room)
{
    struct rlimit old, low;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)(test_count_fds() + room);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    enum { MAX = 50, N = 100 };
    exec_t *ex[MAX];
    int made = 0, failed = 0;
    for (int i = 0; i < MAX; i++) {
        exec_config_t cfg = config_workers(2);
        cfg.start_method = method;
        errno = 0;
        int r = exec_create(&ex[made], &cfg);
        if (r != EXEC_OK) {
            int err = errno;
            ASSERT_ERR(r, EXEC_ESYS);
            /* Valgrind (EXEC_TEST_TIMEOUT_SCALE 10) keeps fds of its own in every process it
             * runs, the zygote too, and answers some calls near the limit with EBADF: there
             * only "an errno" is checked. */
            if (test_timeout_scale() < 10)
                ASSERT_EQ(err, EMFILE);
            else
                ASSERT_NE(err, 0);
            failed++;
            continue;
        }
        int64_t in[N], out[N];
        for (int k = 0; k < N; k++)
            in[k] = k;
        ASSERT_OK(exec_map(ex[made], task_triple, in, 8, out, 8, N, NULL));
        for (int k = 0; k < N; k++)
            ASSERT_EQ(out[k], 3 * k + 1);
        made++;
    }
    for (int i = 0; i < made; i++)
        ASSERT_OK(exec_destroy(ex[i]));
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    ASSERT_GE(made, 1);
    ASSERT_GE(failed, 1);
}

TEST(resources_few_fds_forkserver)
{
    create_until_out_of_fds(EXEC_START_FORKSERVER, 24);
}

TEST(resources_few_fds_fork)
{
    create_until_out_of_fds(EXEC_START_FORK, 24);
}
