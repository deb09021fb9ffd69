/* SPDX-License-Identifier: MIT */
/*
 * test_recycle.c - recycling holds to the end and retired workers leave nothing behind:
 * tasks still queued at a shutdown each run on a fresh worker, retired worker processes are
 * reaped promptly (never more zombies than workers), and a worker's cache of shared-memory
 * mappings stays small while buffers come and go.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Recycling during a shutdown                                                               */
/* ---------------------------------------------------------------------------------------- */

/* THREADS_ONLY (a thread-local): how many tasks the calling worker thread has run, this one
 * included. */
static int count_runs(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg, (void)arg_size;
    static _Thread_local int64_t runs;
    return task_put_i64(out, out_cap, out_size, ++runs);
}

/* max_tasks_per_child = 1: tasks still queued when exec_shutdown(NOWAIT) is called each run
 * on a thread of their own (each is its thread's first task), not all on the last worker. */
TEST(recycle_threads_queued_at_shutdown)
{
    struct gate g;
    gate_open(&g);
    exec_t *ex = make_with(2, (exec_config_t){.max_tasks_per_child = 1});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = SUBMIT_RUNNING(ex, &g, 2);
    enum { N = 8 };
    exec_future_t *q[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(exec_submit(ex, count_runs, NULL, 0, &q[i]));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_NOWAIT));
    gate_release(&g, 2);
    ASSERT_EQ(wait_i64(a), 1);
    ASSERT_EQ(wait_i64(b), 2);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(wait_i64(q[i]), 1);
    ASSERT_OK(exec_shutdown(ex, 0));
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.retired_tasks, N + 2);
    ASSERT_EQ(st.workers_alive, 0);
    RELEASE_ALL(a, b);
    for (int i = 0; i < N; i++)
        exec_future_release(q[i]);
    destroy_gated(ex, &g);
}
