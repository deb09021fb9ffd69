/* SPDX-License-Identifier: MIT */
/*
 * test_scale.c - the largest pool a config may ask for (EXEC_WORKERS_MAX workers) works on
 * every backend: it starts, maps over 10,000 items and goes away; and so does a burst in which
 * every one of its workers is recycled at once (max_tasks_per_child = 1). On processes these
 * once hung: the supervisor and the zygote each blocked in send() on their socket pair.
 */
#include "harness.h"
#include "tasks.h"

#include <stdint.h>
#include <stdlib.h>

/* task_triple over @n items (in chunks of @chunk, 0 = automatic); every result checked. */
static void map_checked(exec_t *ex, size_t n, size_t chunk)
{
    int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    ASSERT_NOT_NULL(in);
    ASSERT_NOT_NULL(out);
    for (size_t i = 0; i < n; i++) {
        in[i] = (int64_t)i;
        out[i] = -1;
    }
    exec_map_opts_t o = {.chunk_size = chunk};
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, &o));
    ASSERT_EQ(o.failed, 0);
    for (size_t i = 0; i < n; i++)
        if (out[i] != (int64_t)i * 3 + 1)
            TEST_FAIL("item %zu: %lld, want %lld", i, (long long)out[i],
                      (long long)i * 3 + 1);
    free(in);
    free(out);
}

/* Every worker of the largest pool starts (the pool counts them alive), then one map of
 * 10,000 items runs over them. */
TEST(scale_largest_pool)
{
    exec_t *ex = make_workers(EXEC_WORKERS_MAX);
    uint64_t t0 = test_now_ms();
    while (stats_of(ex).workers_alive < EXEC_WORKERS_MAX) {
        ASSERT_LT(test_now_ms() - t0, 120000u * (uint64_t)test_timeout_scale());
        test_sleep_ms(5);
    }
    map_checked(ex, 10000, 0);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.workers_alive, EXEC_WORKERS_MAX);
    ASSERT_EQ(st.workers_retired, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* Bursts of deaths and spawns: with max_tasks_per_child = 1 and one-item chunks, a map of
 * EXEC_WORKERS_MAX items retires every worker at once while all their replacements start;
 * a second map runs on the replacements (and retires some of them in turn). */
TEST(scale_largest_pool_recycle_burst)
{
    exec_t *ex = make_with(EXEC_WORKERS_MAX, (exec_config_t){.max_tasks_per_child = 1});
    size_t n = (size_t)EXEC_WORKERS_MAX + 64;
    map_checked(ex, EXEC_WORKERS_MAX, 1);
    map_checked(ex, 64, 1);
    ASSERT_EQ(stats_of(ex).map_items, n);
    /* Every chunk was one worker's only task: once all are gone, each retired for it. */
    ASSERT_OK(exec_shutdown(ex, 0));
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.retired_tasks, n);
    ASSERT_EQ(st.workers_alive, 0);
    ASSERT_OK(exec_destroy(ex));
}
