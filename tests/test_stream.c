/* SPDX-License-Identifier: MIT */
/*
 * test_stream.c - exec_map_stream(): items from a producer, results to a consumer, at most a
 * window in memory, on every backend, through the one map driver (src/core/stream.c).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "tasks.h"

/* Items count their runs here (shared with worker processes). */
static _Atomic uint64_t *runs;

static void runs_map(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(p != MAP_FAILED);
    runs = p;
}

/* x -> 3x + 1; item 1234567 of a "crashy" stream dies (processes only). */
static int triple(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)cap;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (runs)
        atomic_fetch_add(runs, 1);
    if (x == -1234)
        raise(SIGSEGV);
    if (x % 1000 == 999)
        return 9; /* a task failure: reaches the consumer as status 9 */
    x = 3 * x + 1;
    memcpy(out, &x, sizeof x);
    *osz = sizeof x;
    return 0;
}

struct st {
    uint64_t n, produced;   /* items to produce, produced so far */
    uint64_t crash_at;      /* produce -1234 at this index (UINT64_MAX: never) */
    int fail_with;          /* producer: return this at index fail_at */
    uint64_t fail_at;
    uint64_t stop_at;       /* consumer: ask to stop here */
    bool shutdown;          /* consumer: a cancelling shutdown of ex at stop_at instead */
    exec_t *ex;
    uint64_t consumed, next_index, bad;
    uint64_t *seen;         /* unordered: deliveries per index (or NULL) */
    int statuses[4];        /* counts: ok, task failure (9), crashed, cancelled */
};

/* Up to @max items, but never past fail_at; a third of the calls give one item only (a
 * producer may give fewer than asked). */
static int produce(void *items, size_t max, size_t size, size_t *count, void *ud)
{
    struct st *s = ud;
    if (size != sizeof(int64_t) || max == 0)
        return EXEC_EINVAL;
    if (s->produced == s->fail_at)
        return s->fail_with;
    size_t k = 0;
    if (s->produced % 3 == 0)
        max = 1;
    for (; k < max && s->produced < s->n && s->produced != s->fail_at; k++) {
        int64_t x = s->produced == s->crash_at ? -1234 : (int64_t)s->produced;
        memcpy((char *)items + k * size, &x, sizeof x);
        s->produced++;
    }
    *count = k;
    return 0;
}

static int consume_one(size_t index, int status, const void *result, void *ud);

static int consume(size_t first, size_t count, const int *status, const void *results,
                   void *ud)
{
    struct st *s = ud;
    if (count == 0)
        s->bad++;
    for (size_t i = 0; i < count; i++)
        if (consume_one(first + i, status[i], (const char *)results + i * sizeof(int64_t), s))
            return 1;
    return 0;
}

static int consume_one(size_t index, int status, const void *result, void *ud)
{
    struct st *s = ud;
    if (s->seen) {
        s->seen[index]++;
    } else if (index != s->next_index) {
        s->bad++;
    }
    s->next_index = index + 1;
    s->consumed++;
    int64_t want = 3 * (int64_t)index + 1, got = 0;
    if (status == 0) {
        memcpy(&got, result, sizeof got);
        s->bad += got != want || index % 1000 == 999;
        s->statuses[0]++;
    } else if (status == 9) {
        s->bad += index % 1000 != 999;
        s->statuses[1]++;
    } else if (status == EXEC_ECRASHED) {
        s->bad += index != s->crash_at;
        s->statuses[2]++;
    } else if (status == EXEC_ECANCELLED) {
        s->statuses[3]++;
    } else {
        s->bad++;
    }
    if (index == s->stop_at) {
        if (s->shutdown)
            return exec_shutdown(s->ex, EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT);
        return 1;
    }
    return 0;
}

static struct st fresh(uint64_t n)
{
    struct st s;
    memset(&s, 0, sizeof s);
    s.n = n;
    s.crash_at = s.fail_at = s.stop_at = UINT64_MAX;
    return s;
}

static int run(exec_t *ex, struct st *s, size_t window, unsigned flags, exec_stream_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->window = window;
    o->flags = flags;
    return exec_map_stream(ex, triple, sizeof(int64_t), sizeof(int64_t), produce, consume, s,
                           o);
}

/* Run @s through a window of 1024 on 2 workers: the map returns @want and every result the
 * consumer saw was right. */
static void expect_run(struct st *s, exec_stream_opts_t *o, int want)
{
    exec_t *ex = make_workers(2);
    s->ex = ex;
    ASSERT_ERR(run(ex, s, 1024, 0, o), want);
    ASSERT_EQ(s->bad, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* In input order, every item once, task failures reported per item, the summary right. */
TEST(stream_in_order)
{
    exec_t *ex = make_workers(2);
    struct st s = fresh(100000);
    exec_stream_opts_t o;
    ASSERT_ERR(run(ex, &s, 1000, 0, &o), EXEC_ETASK);
    ASSERT_EQ(s.bad, 0);
    ASSERT_EQ(s.consumed, 100000);
    ASSERT_EQ(s.statuses[1], 100);
    ASSERT_EQ(o.items, 100000);
    ASSERT_EQ(o.failed, 100);
    ASSERT_EQ(o.first_failed, 999);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.map_items, 100000);
    ASSERT_OK(exec_destroy(ex));
}

/* Completion order: every item delivered exactly once, with its own result. */
TEST(stream_unordered)
{
    exec_t *ex = make_workers(2);
    struct st s = fresh(50000);
    s.seen = calloc(50000, sizeof *s.seen);
    ASSERT_NOT_NULL(s.seen);
    exec_stream_opts_t o;
    ASSERT_ERR(run(ex, &s, 512, EXEC_STREAM_UNORDERED, &o), EXEC_ETASK);
    ASSERT_EQ(s.bad, 0);
    for (int i = 0; i < 50000; i++)
        ASSERT_EQ(s.seen[i], 1);
    ASSERT_EQ(o.items, 50000);
    free(s.seen);
    ASSERT_OK(exec_destroy(ex));
}

static long rss_kib(void)
{
    char buf[128] = {0};
    int fd = open("/proc/self/statm", O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    long size = 0, res = 0;
    ASSERT_EQ(sscanf(buf, "%ld %ld", &size, &res), 2);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

struct rss {
    struct st s;
    long at_start, peak;
};

static int consume_rss(size_t first, size_t count, const int *status, const void *results,
                       void *ud)
{
    struct rss *r = ud;
    if (first >> 20 != (first + count) >> 20) { /* about every million items */
        long now = rss_kib();
        if (!r->at_start && first >= (1u << 20))
            r->at_start = now;
        if (now > r->peak)
            r->peak = now;
    }
    return consume(first, count, status, results, &r->s);
}

static int produce_rss(void *items, size_t max, size_t size, size_t *count, void *ud)
{
    return produce(items, max, size, count, &((struct rss *)ud)->s);
}

/* 100 M items through a window of 10,000: the resident memory of the process stays flat
 * (a bound, measured every million items from the first million on). */
TEST(stream_memory_flat)
{
    exec_t *ex = make_workers(2);
    uint64_t n = 100000000 / (uint64_t)test_timeout_scale();
    struct rss r;
    memset(&r, 0, sizeof r);
    r.s = fresh(n);
    exec_stream_opts_t o = {0};
    o.window = 10000;
    ASSERT_ERR(exec_map_stream(ex, triple, sizeof(int64_t), sizeof(int64_t), produce_rss,
                               consume_rss, &r, &o),
               EXEC_ETASK);
    ASSERT_EQ(r.s.bad, 0);
    ASSERT_EQ(r.s.consumed, n);
    ASSERT_EQ(o.items, n);
    fprintf(stderr, "# %llu items, window 10000 [%s]: RSS %ld KiB after 1 M items, peak %ld KiB\n",
            (unsigned long long)n, test_backend_name(), r.at_start, r.peak);
    ASSERT_GT(r.at_start, 0);
    /* Flat: no growth with the input (one byte kept per item would be 100 MB). Sanitizers
     * grow the process a little on their own (ASan's fake stacks, shadow pages). */
    ASSERT_LE(r.peak - r.at_start, 4096 * test_timeout_scale());
    ASSERT_OK(exec_destroy(ex));
}

/* A producer that fails stops the map cleanly: what it produced runs and is consumed, in
 * order, and its code comes back. */
TEST(stream_producer_fails)
{
    struct st s = fresh(100000);
    s.fail_at = 5000;
    s.fail_with = EXEC_ESYS;
    exec_stream_opts_t o;
    expect_run(&s, &o, EXEC_ESYS);
    ASSERT_EQ(s.consumed, 5000);
    ASSERT_EQ(o.items, 5000);
}

/* A consumer that asks to stop: nothing more is delivered, what had not started never runs
 * (runs are bounded by the window), EXEC_ECANCELLED. */
TEST(stream_consumer_stops)
{
    runs_map();
    struct st s = fresh(1000000);
    s.stop_at = 3000;
    exec_stream_opts_t o;
    expect_run(&s, &o, EXEC_ECANCELLED);
    ASSERT_EQ(s.consumed, 3001); /* the batch with item 3000 was the last one delivered */
    ASSERT_LE(o.items, 3001 + 1024 + 1024);
    ASSERT_LE(atomic_load(runs), o.items);
    munmap((void *)runs, 4096);
    runs = NULL;
}

/* A cancelling shutdown in the middle: the items not started reach the consumer as
 * EXEC_ECANCELLED, production stops, EXEC_ECANCELLED. */
TEST(stream_shutdown_cancel)
{
    struct st s = fresh(1000000);
    s.stop_at = 2000;
    s.shutdown = true;
    exec_stream_opts_t o;
    expect_run(&s, &o, EXEC_ECANCELLED);
    ASSERT_EQ(s.consumed, o.items);
    ASSERT_LE(o.items, 2001 + 1024 + 1024);
    ASSERT_EQ((uint64_t)s.statuses[0] + s.statuses[1] + s.statuses[3], o.items);
}

/* A worker dying in the middle of the stream fails that item only; the rest keep their
 * results, in order. */
TEST(process_stream_crash)
{
    exec_t *ex = make_workers(2);
    struct st s = fresh(20000);
    s.crash_at = 12345;
    exec_stream_opts_t o;
    ASSERT_ERR(run(ex, &s, 2048, 0, &o), EXEC_ECRASHED);
    ASSERT_EQ(s.bad, 0);
    ASSERT_EQ(s.consumed, 20000);
    ASSERT_EQ(s.statuses[2], 1);
    ASSERT_EQ(o.failed, 21); /* 20 task failures (999, 1999, ...) and the crash */
    ASSERT_OK(exec_destroy(ex));
}

static int never_produce(void *items, size_t max, size_t size, size_t *count, void *ud)
{
    (void)items, (void)max, (void)size, (void)count, (void)ud;
    TEST_FAIL("the producer ran after bad input");
    return 0;
}

/* Bad input: a code, and no callback runs. */
TEST(stream_bad_input)
{
    exec_t *ex = make_workers(1);
    struct st s = fresh(10);
    exec_stream_opts_t o = {0};
    ASSERT_ERR(exec_map_stream(NULL, triple, 8, 8, never_produce, consume, &s, NULL),
               EXEC_EINVAL);
    ASSERT_ERR(exec_map_stream(ex, NULL, 8, 8, never_produce, consume, &s, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, NULL, consume, &s, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, never_produce, NULL, &s, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_map_stream(ex, triple, 0, 8, never_produce, consume, &s, NULL),
               EXEC_EINVAL);
    o.flags = 4;
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, never_produce, consume, &s, &o), EXEC_EINVAL);
    o.flags = 0;
    o.reserved[2] = 1;
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, never_produce, consume, &s, &o), EXEC_EINVAL);
    o.reserved[2] = 0;
    o.window = SIZE_MAX / 2;
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, never_produce, consume, &s, &o), EXEC_EINVAL);
    ASSERT_ERR(exec_map_stream(ex, triple, EXEC_DEFAULT_MAX_ARG_SIZE + 1, 8, never_produce,
                               consume, &s, NULL),
               EXEC_ETOOBIG);
    ASSERT_OK(exec_shutdown(ex, 0));
    ASSERT_ERR(exec_map_stream(ex, triple, 8, 8, never_produce, consume, &s, NULL),
               EXEC_ESHUTDOWN);
    ASSERT_EQ(s.consumed, 0);
    ASSERT_OK(exec_destroy(ex));
}
