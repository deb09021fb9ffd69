/* SPDX-License-Identifier: MIT */
/*
 * test_map.c - exec_map() and exec_map_unordered(): results in input order, chunking,
 * per-item status, progress, the unordered variant, bad input, and maps running next to other
 * work.
 *
 * Every task here works on its argument and result bytes only (no shared globals), so each
 * test is valid on the process backend too.
 */
#include "harness.h"
#include "tasks.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* task_triple after some busy work (about 10-50 us), so that a map takes a while. */
static int slow_triple(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    uint64_t h = arg_size;
    for (int i = 0; i < 20000; i++)
        h = h * 6364136223846793005u + 1442695040888963407u;
    if (h == 42) /* keeps the loop; practically never true */
        return 42;
    return task_triple(arg, arg_size, out, out_cap, out_size);
}

/* int64 index -> index*3+1 (task_triple); fails with status 5 when index % 7 == 3. */
static int triple_or_fail(const void *arg, size_t arg_size, void *out, size_t out_cap,
                          size_t *out_size)
{
    int64_t x;
    if (arg_size == sizeof x) {
        memcpy(&x, arg, sizeof x);
        if (x % 7 == 3)
            return 5;
    }
    return task_triple(arg, arg_size, out, out_cap, out_size);
}

/* int64 index, no result; fails with status 5 when index % 7 == 3. */
static int no_result(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    int64_t x;
    (void)out;
    if (arg_size != sizeof x || out_cap != 0 || *out_size != 0)
        return BAD_CALL;
    memcpy(&x, arg, sizeof x);
    return x % 7 == 3 ? 5 : 0;
}

/* A 24-byte element in, a 4-byte element out. */
struct wide {
    int64_t a, b, c;
};
static int sum3(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    struct wide w;
    if (arg_size != sizeof w || out_cap != sizeof(int32_t) || *out_size != sizeof(int32_t))
        return BAD_CALL;
    memcpy(&w, arg, sizeof w);
    int32_t r = (int32_t)(w.a + w.b + w.c);
    memcpy(out, &r, sizeof r);
    return 0;
}

/* A 2-byte element in, a 16-byte element out: {x, -x} as int64. */
static int spread(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    uint16_t x;
    if (arg_size != sizeof x || out_cap != 16 || *out_size != 16)
        return BAD_CALL;
    memcpy(&x, arg, sizeof x);
    int64_t r[2] = {x, -(int64_t)x};
    memcpy(out, r, sizeof r);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* malloc() that must succeed. */
static void *must_malloc(size_t size)
{
    void *p = malloc(size);
    ASSERT_NOT_NULL(p);
    return p;
}

static int64_t *iota64(size_t n, int64_t base)
{
    int64_t *a = must_malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = base + (int64_t)i;
    return a;
}

/* @n zeroed int64 results. */
static int64_t *zeros64(size_t n)
{
    int64_t *a = calloc(n, sizeof *a);
    ASSERT_NOT_NULL(a);
    return a;
}

/* Set @n item statuses to -12345 (never a task's status). */
static void reset_status(int *status, size_t n)
{
    for (size_t i = 0; i < n; i++)
        status[i] = -12345;
}

/* @n item statuses, reset_status(). */
static int *new_status(size_t n)
{
    int *status = must_malloc(n * sizeof *status);
    reset_status(status, n);
    return status;
}

/* The start of most tests here: an executor with the default worker count, and @n items:
 * *in = iota64(n, 0), then (each unless its pointer is NULL) *out = zeros64(n) and
 * *status = new_status(n). */
static exec_t *map_begin(size_t n, int64_t **in, int64_t **out, int **status)
{
    *in = iota64(n, 0);
    if (out)
        *out = zeros64(n);
    if (status)
        *status = new_status(n);
    return make_workers(0);
}

/* The end of a test: free its arrays (any may be NULL), destroy its executor. */
static void map_end(exec_t *ex, void *in, void *out, void *status)
{
    free(in);
    free(out);
    free(status);
    ASSERT_OK(exec_destroy(ex));
}

/* Map triple over base..base+n-1 with @chunk and check every result in order. */
static void map_triple_check(exec_t *ex, size_t n, size_t chunk, int64_t base)
{
    int64_t *in = iota64(n, base);
    int64_t *out = must_malloc(n * sizeof *out);
    memset(out, 0xa5, n * sizeof *out);
    exec_map_opts_t o = {0};
    o.chunk_size = chunk;
    o.failed = 12345;
    o.first_failed = 12345;
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, &o));
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(out[i], in[i] * 3 + 1);
    ASSERT_EQ(o.failed, 0);
    ASSERT_EQ(o.first_failed, n);
    free(in);
    free(out);
}

/* ---------------------------------------------------------------------------------------- */
/* Ordered results                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* A million items, every result checked in input order; opts NULL is accepted. */
TEST(map_million_in_order)
{
    exec_t *ex = make_workers(0);
    size_t n = 1000000;
    int64_t *in = iota64(n, -500000);
    int64_t *out = zeros64(n);
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, NULL));
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(out[i], in[i] * 3 + 1);
    /* The input is borrowed: it is unchanged. */
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(in[i], (int64_t)i - 500000);
    map_end(ex, in, out, NULL);
}

/* Sizes around the automatic chunking: one item, fewer items than workers, odd counts. */
TEST(map_small_and_odd_sizes)
{
    exec_t *ex = make_workers(4);
    static const size_t sizes[] = {1, 2, 3, 5, 63, 64, 65, 1000, 4097, 100003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        map_triple_check(ex, sizes[k], 0, (int64_t)k * 1000);
    ASSERT_OK(exec_destroy(ex));
}

/* Explicit chunk sizes: 1, 7 (n not a multiple), n, n + 5 (larger than the input). */
TEST(map_chunk_sizes)
{
    exec_t *ex = make_workers(3);
    size_t n = 10007;
    map_triple_check(ex, n, 1, 0);
    map_triple_check(ex, n, 7, 1);
    map_triple_check(ex, n, n, 2);
    map_triple_check(ex, n, n + 5, 3);
    map_triple_check(ex, 1, 1, 4);
    map_triple_check(ex, 1, 7, 5);
    map_triple_check(ex, 6, 7, 6);
    ASSERT_OK(exec_destroy(ex));
}

/* Element sizes that differ: 24 bytes in -> 4 out, and 2 bytes in -> 16 out. */
TEST(map_in_out_sizes_differ)
{
    exec_t *ex = make_workers(0);
    size_t n = 30011;
    struct wide *in = must_malloc(n * sizeof *in);
    int32_t *out = must_malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        in[i] = (struct wide){(int64_t)i, 2 * (int64_t)i, 7};
    ASSERT_OK(exec_map(ex, sum3, in, sizeof *in, out, sizeof *out, n, NULL));
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(out[i], (int32_t)(3 * i + 7));
    free(in);
    free(out);

    uint16_t *in2 = must_malloc(n * sizeof *in2);
    int64_t(*out2)[2] = must_malloc(n * sizeof *out2);
    for (size_t i = 0; i < n; i++)
        in2[i] = (uint16_t)(i * 13);
    ASSERT_OK(exec_map(ex, spread, in2, sizeof *in2, out2, 16, n, NULL));
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(out2[i][0], (int64_t)in2[i]);
        ASSERT_EQ(out2[i][1], -(int64_t)in2[i]);
    }
    map_end(ex, in2, out2, NULL);
}

/* out_size 0 with out NULL: the items run (their statuses prove it), nothing is written. */
TEST(map_no_result)
{
    size_t n = 1000;
    int64_t *in;
    int *status;
    exec_t *ex = map_begin(n, &in, NULL, &status);
    exec_map_opts_t o = {0};
    o.status = status;
    ASSERT_ERR(exec_map(ex, no_result, in, sizeof *in, NULL, 0, n, &o), EXEC_ETASK);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        int want = i % 7 == 3 ? 5 : 0;
        ASSERT_EQ(status[i], want);
        failed += want != 0;
    }
    ASSERT_EQ(o.failed, failed);
    ASSERT_EQ(o.first_failed, 3);

    /* All succeed when no index is 3 mod 7. */
    ASSERT_OK(exec_map(ex, no_result, in, sizeof *in, NULL, 0, 3, NULL));
    map_end(ex, in, NULL, status);
}

/* ---------------------------------------------------------------------------------------- */
/* Per-item status                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Some items fail: EXEC_ETASK, the count, the first index, every status, the others computed. */
TEST(map_item_failures)
{
    size_t n = 100000;
    int64_t *in, *out;
    int *status;
    exec_t *ex = map_begin(n, &in, &out, &status);
    static const size_t chunks[] = {0, 1, 7, 1000};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        reset_status(status, n);
        memset(out, 0, n * sizeof *out);
        exec_map_opts_t o = {0};
        o.chunk_size = chunks[k];
        o.status = status;
        o.failed = 777;
        o.first_failed = 777;
        ASSERT_ERR(exec_map(ex, triple_or_fail, in, sizeof *in, out, sizeof *out, n, &o),
                   EXEC_ETASK);
        size_t failed = 0;
        for (size_t i = 0; i < n; i++) {
            if (i % 7 == 3) {
                ASSERT_EQ(status[i], 5);
                failed++;
            } else {
                ASSERT_EQ(status[i], 0);
                ASSERT_EQ(out[i], (int64_t)i * 3 + 1);
            }
        }
        ASSERT_EQ(o.failed, failed);
        ASSERT_EQ(o.first_failed, 3);
    }

    /* Without a status array the summary is still written. */
    exec_map_opts_t o = {0};
    o.failed = 777;
    o.first_failed = 777;
    ASSERT_ERR(exec_map(ex, triple_or_fail, in, sizeof *in, out, sizeof *out, n, &o),
               EXEC_ETASK);
    ASSERT_EQ(o.failed, (n + 3) / 7);
    ASSERT_EQ(o.first_failed, 3);

    /* first_failed is an index into this call's input, not a value: shifted by 3, the
     * failing values 3, 10, ... sit at indexes 0, 7, ... */
    o = (exec_map_opts_t){0};
    o.chunk_size = 1;
    ASSERT_ERR(exec_map(ex, triple_or_fail, in + 3, sizeof *in, out, sizeof *out, n - 3, &o),
               EXEC_ETASK);
    ASSERT_EQ(o.first_failed, 0);
    map_end(ex, in, out, status);
}

/* Success writes failed = 0 and first_failed = n, and a status of 0 for every item. */
TEST(map_success_summary)
{
    size_t n = 4321;
    int64_t *in, *out;
    int *status;
    exec_t *ex = map_begin(n, &in, &out, &status);
    exec_map_opts_t o = {0};
    o.status = status;
    o.failed = 99;
    o.first_failed = 0;
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, &o));
    ASSERT_EQ(o.failed, 0);
    ASSERT_EQ(o.first_failed, n);
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(status[i], 0);
        ASSERT_EQ(out[i], (int64_t)i * 3 + 1);
    }
    map_end(ex, in, out, status);
}

/* ---------------------------------------------------------------------------------------- */
/* Progress                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct progress {
    pthread_t caller;
    size_t total;
    size_t calls;
    size_t last_done;
    size_t other_thread; /* calls from a thread other than the caller */
    size_t backwards;    /* calls whose done was below the previous one */
    size_t bad_total;    /* calls whose total was not n */
    size_t over;         /* calls with done > total */
};

static void on_progress(size_t done, size_t total, void *user_data)
{
    struct progress *p = user_data;
    if (!pthread_equal(pthread_self(), p->caller))
        p->other_thread++;
    if (p->calls && done < p->last_done)
        p->backwards++;
    if (total != p->total)
        p->bad_total++;
    if (done > total)
        p->over++;
    p->calls++;
    p->last_done = done;
}

/* Progress is reported on the calling thread, never backwards, and ends at done == total. */
TEST(map_progress)
{
    size_t n = 1000000;
    int64_t *in, *out;
    exec_t *ex = map_begin(n, &in, &out, NULL);
    static const uint32_t intervals[] = {1, 0};
    for (size_t k = 0; k < 2; k++) {
        struct progress p = {.caller = pthread_self(), .total = n};
        exec_map_opts_t o = {0};
        o.progress = on_progress;
        o.progress_data = &p;
        o.progress_interval_ms = intervals[k];
        o.chunk_size = k ? 0 : 1000;
        ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, &o));
        ASSERT_LT(0, p.calls);
        ASSERT_EQ(p.last_done, n);
        ASSERT_EQ(p.other_thread, 0);
        ASSERT_EQ(p.backwards, 0);
        ASSERT_EQ(p.bad_total, 0);
        ASSERT_EQ(p.over, 0);
        for (size_t i = 0; i < n; i += 997)
            ASSERT_EQ(out[i], (int64_t)i * 3 + 1);
    }
    map_end(ex, in, out, NULL);
}

/* The rate limit: at most one call per interval plus the final one. The items are slow
 * enough (some 0.1 s of work in all) for a map that ignored the interval to report many
 * times, and fast enough to finish within one interval on an idle machine. */
TEST(map_progress_rate_limit)
{
    size_t n = 5000;
    int64_t *in, *out;
    exec_t *ex = map_begin(n, &in, &out, NULL);
    struct progress p = {.caller = pthread_self(), .total = n};
    exec_map_opts_t o = {0};
    o.progress = on_progress;
    o.progress_data = &p;
    o.progress_interval_ms = 1000;
    o.chunk_size = 1;
    uint64_t t0 = test_now_ms();
    ASSERT_OK(exec_map(ex, slow_triple, in, sizeof *in, out, sizeof *out, n, &o));
    uint64_t elapsed = test_now_ms() - t0;
    /* One call per whole interval that passed, one more for a call at the very start of an
     * interval, and the final done == total call. On an idle machine elapsed is far below a
     * second, which makes the bound 2. */
    ASSERT_LE(p.calls, 2 + elapsed / 1000);
    ASSERT_LT(0, p.calls);
    ASSERT_EQ(p.last_done, n);
    ASSERT_EQ(p.other_thread, 0);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(out[i], (int64_t)i * 3 + 1);
    map_end(ex, in, out, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Unordered                                                                                 */
/* ---------------------------------------------------------------------------------------- */

struct items {
    pthread_t caller;
    size_t n;
    const unsigned char *out;
    size_t out_size;
    unsigned char *seen;  /* calls per index (saturating at 255) */
    size_t calls;
    size_t other_thread;  /* calls from a thread other than the caller */
    size_t bad_index;     /* index >= n */
    size_t bad_pointer;   /* result != out + index * out_size */
    size_t bad_status;    /* status not what the task returned */
    size_t bad_value;     /* result bytes wrong for a successful item */
};

static void on_item(size_t index, int status, const void *result, void *user_data)
{
    struct items *it = user_data;
    it->calls++;
    if (!pthread_equal(pthread_self(), it->caller))
        it->other_thread++;
    if (index >= it->n) {
        it->bad_index++;
        return;
    }
    if (it->seen[index] < 255)
        it->seen[index]++;
    if (result != it->out + index * it->out_size)
        it->bad_pointer++;
    int want = index % 7 == 3 ? 5 : 0;
    if (status != want)
        it->bad_status++;
    if (status == 0) {
        int64_t v;
        memcpy(&v, it->out + index * it->out_size, sizeof v);
        if (v != (int64_t)index * 3 + 1)
            it->bad_value++;
    }
}

static void run_unordered(exec_t *ex, size_t n, size_t chunk)
{
    int64_t *in = iota64(n, 0);
    int64_t *out = zeros64(n);
    int *status = new_status(n);
    struct items it = {.caller = pthread_self(), .n = n, .out_size = sizeof *out};
    it.out = (const unsigned char *)out;
    it.seen = calloc(n, 1);
    ASSERT_NOT_NULL(it.seen);
    exec_map_opts_t o = {0};
    o.chunk_size = chunk;
    o.status = status;
    ASSERT_ERR(exec_map_unordered(ex, triple_or_fail, in, sizeof *in, out, sizeof *out, n,
                                  on_item, &it, &o),
               EXEC_ETASK);
    ASSERT_EQ(it.calls, n);
    ASSERT_EQ(it.other_thread, 0);
    ASSERT_EQ(it.bad_index, 0);
    ASSERT_EQ(it.bad_pointer, 0);
    ASSERT_EQ(it.bad_status, 0);
    ASSERT_EQ(it.bad_value, 0);
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(it.seen[i], 1);
        ASSERT_EQ(status[i], i % 7 == 3 ? 5 : 0);
        if (i % 7 != 3)
            ASSERT_EQ(out[i], (int64_t)i * 3 + 1);
    }
    ASSERT_EQ(o.failed, n > 3 ? (n + 3) / 7 : 0);
    ASSERT_EQ(o.first_failed, n > 3 ? 3 : n);
    free(in);
    free(out);
    free(status);
    free(it.seen);
}

/* on_item: exactly once per index, on the calling thread, at out + index * out_size. */
TEST(map_unordered)
{
    exec_t *ex = make_workers(0);
    run_unordered(ex, 200003, 0);
    run_unordered(ex, 10007, 1);
    run_unordered(ex, 10007, 13);
    ASSERT_OK(exec_destroy(ex));
}

/* An unordered map where nothing fails returns EXEC_OK. */
TEST(map_unordered_all_ok)
{
    exec_t *ex = make_workers(0);
    size_t n = 3; /* indexes 0..2: none is 3 mod 7 */
    int64_t in[3] = {0, 1, 2};
    int64_t out[3] = {0};
    unsigned char seen[3] = {0};
    struct items it = {.caller = pthread_self(), .n = n, .out_size = sizeof out[0]};
    it.out = (const unsigned char *)out;
    it.seen = seen;
    exec_map_opts_t o = {0};
    o.failed = 5;
    ASSERT_OK(exec_map_unordered(ex, triple_or_fail, in, sizeof in[0], out, sizeof out[0], n,
                                 on_item, &it, &o));
    ASSERT_EQ(it.calls, 3);
    ASSERT_EQ(it.bad_pointer + it.bad_status + it.bad_value + it.other_thread, 0);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(seen[i], 1);
    ASSERT_EQ(o.failed, 0);
    ASSERT_EQ(o.first_failed, n);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Bad input                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void never_progress(size_t done, size_t total, void *user_data)
{
    (void)done;
    (void)total;
    ++*(int *)user_data;
}

static void never_item(size_t index, int status, const void *result, void *user_data)
{
    (void)index;
    (void)status;
    (void)result;
    ++*(int *)user_data;
}

TEST(map_bad_input)
{
    exec_config_t cfg;
    test_config(&cfg);
    cfg.max_arg_size = 64;
    cfg.max_result_size = 64;
    exec_t *ex = make_exec(&cfg);
    int64_t in[4] = {1, 2, 3, 4};
    int64_t out[4];
    unsigned char big[2 * 65] = {0}, big_out[2 * 65];
    int calls = 0;
    exec_map_opts_t o = {0};
    o.progress = never_progress;
    o.progress_data = &calls;

    ASSERT_ERR(exec_map(NULL, task_triple, in, 8, out, 8, 4, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, NULL, in, 8, out, 8, 4, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, NULL, 8, out, 8, 4, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, out, 8, 0, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, in, 0, out, 8, 4, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, NULL, 8, 4, &o), EXEC_EINVAL);
    /* Limits: element sizes above the configured maximums. */
    ASSERT_ERR(exec_map(ex, task_triple, big, 65, out, 8, 2, &o), EXEC_ETOOBIG);
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, big_out, 65, 2, &o), EXEC_ETOOBIG);
    /* The limits themselves are fine (these items fail: triple insists on 8 bytes). */
    ASSERT_ERR(exec_map(ex, task_triple, big, 64, big_out, 64, 2, NULL), EXEC_ETASK);
    /* n * size overflowing size_t. */
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, NULL, 0, SIZE_MAX / 8 + 1, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, in, 1, out, 8, SIZE_MAX / 8 + 1, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map(ex, task_triple, in, 64, out, 64, SIZE_MAX / 2, &o), EXEC_EINVAL);
    /* Reserved option fields. */
    for (size_t r = 0; r < sizeof o.reserved / sizeof o.reserved[0]; r++) {
        exec_map_opts_t bad = o;
        bad.reserved[r] = 1;
        ASSERT_ERR(exec_map(ex, task_triple, in, 8, out, 8, 4, &bad), EXEC_EINVAL);
        ASSERT_ERR(
            exec_map_unordered(ex, task_triple, in, 8, out, 8, 4, never_item, &calls, &bad),
            EXEC_EINVAL);
    }
    /* Unordered: the same checks, plus on_item NULL. */
    ASSERT_ERR(exec_map_unordered(ex, task_triple, in, 8, out, 8, 4, NULL, NULL, &o),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_unordered(NULL, task_triple, in, 8, out, 8, 4, never_item, &calls, &o),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_unordered(ex, NULL, in, 8, out, 8, 4, never_item, &calls, &o),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_unordered(ex, task_triple, in, 8, out, 8, 0, never_item, &calls, &o),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_unordered(ex, task_triple, in, 8, NULL, 8, 4, never_item, &calls, &o),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_unordered(ex, task_triple, big, 65, out, 8, 2, never_item, &calls, &o),
               EXEC_ETOOBIG);
    ASSERT_ERR(exec_map_unordered(ex, task_triple, in, 8, NULL, 0, SIZE_MAX / 4, never_item,
                                  &calls, &o),
               EXEC_EINVAL);
    /* A call that fails on its input never calls its callbacks. */
    ASSERT_EQ(calls, 0);

    /* The executor still works. */
    o = (exec_map_opts_t){0};
    ASSERT_OK(exec_map(ex, task_triple, in, 8, out, 8, 4, &o));
    ASSERT_EQ(out[3], 13);

    /* After shutdown. */
    ASSERT_OK(exec_shutdown(ex, 0));
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, out, 8, 4, &o), EXEC_ESHUTDOWN);
    ASSERT_ERR(exec_map(ex, task_triple, in, 8, out, 8, 4, NULL), EXEC_ESHUTDOWN);
    ASSERT_ERR(exec_map_unordered(ex, task_triple, in, 8, out, 8, 4, never_item, &calls, &o),
               EXEC_ESHUTDOWN);
    ASSERT_EQ(calls, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Maps next to other work                                                                   */
/* ---------------------------------------------------------------------------------------- */

struct submitter {
    exec_t *ex;
    int64_t base;
    size_t count;
    size_t bad; /* wrong or missing results */
    int first_err;
};

/* Submit count triple tasks, keeping up to 64 outstanding, and check each result. */
static void *submit_loop(void *arg)
{
    struct submitter *s = arg;
    enum { WINDOW = 64 };
    exec_future_t *fs[WINDOW] = {0};
    for (size_t i = 0; i < s->count + WINDOW; i++) {
        size_t slot = i % WINDOW;
        if (fs[slot]) {
            int64_t want = (s->base + (int64_t)(i - WINDOW)) * 3 + 1;
            const void *r;
            size_t size;
            int e = exec_future_wait(fs[slot], EXEC_WAIT_FOREVER);
            if (e == 0)
                e = exec_future_result(fs[slot], &r, &size);
            if (e != 0 || size != sizeof want || memcmp(r, &want, sizeof want) != 0) {
                s->bad++;
                if (!s->first_err)
                    s->first_err = e ? e : 1;
            }
            exec_future_release(fs[slot]);
            fs[slot] = NULL;
        }
        if (i < s->count) {
            int64_t x = s->base + (int64_t)i;
            int e = exec_submit(s->ex, task_triple_submit, &x, sizeof x, &fs[slot]);
            if (e != 0) {
                s->bad++;
                if (!s->first_err)
                    s->first_err = e;
            }
        }
    }
    return NULL;
}

/* A map runs to completion, in order, while two other threads submit tasks. */
TEST(map_with_concurrent_submits)
{
    exec_t *ex = make_workers(0);
    struct submitter s[2] = {{ex, 1000000, 20000, 0, 0}, {ex, 2000000, 20000, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, submit_loop, &s[i]), 0);
    map_triple_check(ex, 300000, 0, -7);
    map_triple_check(ex, 30000, 1, 11);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
        ASSERT_EQ(s[i].first_err, 0);
        ASSERT_EQ(s[i].bad, 0);
    }
    ASSERT_OK(exec_destroy(ex));
}

struct mapper {
    exec_t *ex;
    int64_t base;
    size_t n;
    size_t chunk;
    int ret;
    size_t bad;
};

static void *map_thread(void *arg)
{
    struct mapper *m = arg;
    int64_t *in = iota64(m->n, m->base);
    int64_t *out = must_malloc(m->n * sizeof *out);
    exec_map_opts_t o = {0};
    o.chunk_size = m->chunk;
    m->ret = exec_map(m->ex, task_triple, in, sizeof *in, out, sizeof *out, m->n, &o);
    for (size_t i = 0; i < m->n; i++)
        m->bad += out[i] != in[i] * 3 + 1;
    free(in);
    free(out);
    return NULL;
}

/* Two maps at once from two threads, each gets its own results. */
TEST(map_two_at_once)
{
    exec_t *ex = make_workers(0);
    for (int round = 0; round < 3; round++) {
        struct mapper m[2] = {{ex, 0, 400000, 0, -100, 0},
                              {ex, 10000000, 250007, round == 1 ? 1 : 0, -100, 0}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(pthread_create(&t[i], NULL, map_thread, &m[i]), 0);
        for (int i = 0; i < 2; i++) {
            ASSERT_EQ(pthread_join(t[i], NULL), 0);
            ASSERT_OK(m[i].ret);
            ASSERT_EQ(m[i].bad, 0);
        }
    }
    ASSERT_OK(exec_destroy(ex));
}

/* exec_stats: map_items grows by n per map (ordered and unordered); submitted does not move. */
TEST(map_stats_items)
{
    exec_t *ex = make_workers(0);
    exec_stats_t a, b, c;
    ASSERT_OK(exec_stats(ex, &a));
    map_triple_check(ex, 12345, 0, 0);
    ASSERT_OK(exec_stats(ex, &b));
    ASSERT_EQ(b.map_items - a.map_items, 12345);
    ASSERT_EQ(b.submitted, a.submitted);
    run_unordered(ex, 777, 0);
    ASSERT_OK(exec_stats(ex, &c));
    ASSERT_EQ(c.map_items - b.map_items, 777);
    ASSERT_EQ(c.submitted, b.submitted);
    ASSERT_OK(exec_destroy(ex));
}
