/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - volume and races: a million tasks from four threads, cancel racing
 * completion, and done-callbacks added while their futures finish. All SLOW, all run on both
 * backends: tasks only see their argument bytes, and callbacks run in this process on both.
 */
#include "harness.h"
#include "tasks.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* 0 when @f finished with the int64 result @want, else a code saying what went wrong. */
static int check_i64(exec_future_t *f, int64_t want)
{
    const void *r = NULL;
    size_t size = 0;
    int e = exec_future_result(f, &r, &size);
    if (e != 0)
        return e;
    if (size != sizeof want || r == NULL)
        return 1;
    int64_t v;
    memcpy(&v, r, sizeof v);
    return v == want ? 0 : 2;
}

/* ---------------------------------------------------------------------------------------- */
/* A million tasks                                                                           */
/* ---------------------------------------------------------------------------------------- */

enum { MILLION_THREADS = 4, PER_THREAD = 250000, WINDOW = 10000 };

struct producer {
    exec_t *ex;
    int64_t base;
    size_t done;      /* results checked */
    size_t bad;       /* results missing or wrong */
    int first_err;    /* first error seen (submit, wait or result) */
    int64_t first_at; /* its argument */
};

static void producer_fail(struct producer *p, int e, int64_t x)
{
    if (p->bad++ == 0) {
        p->first_err = e;
        p->first_at = x;
    }
}

/* Submit PER_THREAD tasks with at most WINDOW outstanding; check and release the oldest when
 * the window is full. */
static void *produce(void *arg)
{
    struct producer *p = arg;
    exec_future_t **fs = calloc(WINDOW, sizeof *fs);
    if (!fs) {
        producer_fail(p, EXEC_ENOMEM, -1);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)PER_THREAD + WINDOW; i++) {
        size_t slot = i % WINDOW;
        if (fs[slot]) {
            int64_t x = p->base + (int64_t)(i - WINDOW);
            int e = exec_future_wait(fs[slot], EXEC_WAIT_FOREVER);
            if (e == 0)
                e = check_i64(fs[slot], x * 3 + 1);
            if (e != 0)
                producer_fail(p, e, x);
            p->done++;
            exec_future_release(fs[slot]);
            fs[slot] = NULL;
        }
        if (i < PER_THREAD) {
            int64_t x = p->base + (int64_t)i;
            int e = exec_submit(p->ex, task_triple_submit, &x, sizeof x, &fs[slot]);
            if (e != 0) {
                producer_fail(p, e, x);
                fs[slot] = NULL;
            }
        }
    }
    free(fs);
    return NULL;
}

/* 1,000,000 tasks from four threads, every result checked, futures released as we go. */
TEST(stress_million_tasks)
{
    exec_t *ex = make_workers(0);
    struct producer p[MILLION_THREADS];
    pthread_t t[MILLION_THREADS];
    for (int i = 0; i < MILLION_THREADS; i++) {
        p[i] = (struct producer){.ex = ex, .base = (int64_t)i * 1000000000};
        ASSERT_EQ(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < MILLION_THREADS; i++) {
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
        if (p[i].bad)
            TEST_FAIL("thread %d: %zu bad results; first: %d (%s) for x = %lld", i, p[i].bad,
                      p[i].first_err, exec_errname(p[i].first_err), (long long)p[i].first_at);
        ASSERT_EQ(p[i].done, PER_THREAD);
    }
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, (uint64_t)MILLION_THREADS * PER_THREAD);
    ASSERT_EQ(st.queued, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Cancel racing completion                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Submit a no-op and cancel it at once, 100,000 times: each future ends in exactly the
 * terminal state the cancel's return promised, and the counters add up. */
TEST(stress_cancel_race)
{
    exec_t *ex = make_workers(2);
    enum { N = 100000 };
    uint64_t won = 0, lost = 0;
    for (int i = 0; i < N; i++) {
        exec_future_t *f;
        ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, &f));
        int c = exec_future_cancel(f, 0);
        ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
        int st = exec_future_state(f);
        int r = exec_future_result(f, NULL, NULL);
        if (c == EXEC_OK) {
            won++;
            ASSERT_EQ(st, EXEC_STATE_CANCELLED);
            ASSERT_ERR(r, EXEC_ECANCELLED);
        } else {
            lost++;
            ASSERT_ERR(c, EXEC_EBUSY);
            ASSERT_EQ(st, EXEC_STATE_DONE);
            ASSERT_OK(r);
        }
        /* A second cancel always loses: the future is terminal. */
        ASSERT_ERR(exec_future_cancel(f, 0), EXEC_EBUSY);
        ASSERT_EQ(exec_future_state(f), st);
        exec_future_release(f);
    }
    /* After a waiting shutdown nothing is in flight, so the counters must be exact. */
    ASSERT_OK(exec_shutdown(ex, 0));
    exec_stats_t s = stats_of(ex);
    ASSERT_EQ(s.submitted, N);
    ASSERT_EQ(s.cancelled + s.completed, s.submitted);
    ASSERT_EQ(s.cancelled, won);
    ASSERT_EQ(s.completed, lost);
    ASSERT_EQ(s.failed, 0);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Done-callbacks under concurrency                                                          */
/* ---------------------------------------------------------------------------------------- */

enum { CB_TOTAL = 100000, CB_ROUND = 10000 };

/* Callbacks run in this process on both backends, so file statics are fine here. */
static struct {
    atomic_uint *calls_a;     /* per future: runs of the callback added by the submitter */
    atomic_uint *calls_b;     /* per future: runs of the callback added by the other thread */
    atomic_ulong total;       /* all runs */
    atomic_ulong not_final;   /* runs that saw a non-terminal state */
    atomic_ulong bad_result;  /* runs that saw a wrong result */
    atomic_ulong out_of_order; /* b ran before a, where a was added first */
} cbs;

static void on_done_common(exec_future_t *f, size_t i)
{
    int st = exec_future_state(f);
    if (st != EXEC_STATE_DONE && st != EXEC_STATE_FAILED && st != EXEC_STATE_CANCELLED)
        atomic_fetch_add(&cbs.not_final, 1);
    else if (check_i64(f, (int64_t)i * 3 + 1) != 0)
        atomic_fetch_add(&cbs.bad_result, 1);
    atomic_fetch_add(&cbs.total, 1);
}

static void on_done_a(exec_future_t *f, void *user_data)
{
    size_t i = (size_t)((atomic_uint *)user_data - cbs.calls_a);
    atomic_fetch_add(&cbs.calls_a[i], 1);
    on_done_common(f, i);
}

static void on_done_b(exec_future_t *f, void *user_data)
{
    size_t i = (size_t)((atomic_uint *)user_data - cbs.calls_b);
    on_done_common(f, i);
    /* a was added (and exec_future_on_done() returned) before b was added, so a must have
     * started already. */
    if (atomic_load(&cbs.calls_a[i]) == 0)
        atomic_fetch_add(&cbs.out_of_order, 1);
    atomic_fetch_add(&cbs.calls_b[i], 1);
}

struct adder {
    exec_future_t **fs;
    size_t first, count;
    atomic_size_t published; /* futures fs[first .. first+published) are ready for b */
    size_t failed;           /* exec_future_on_done() failures */
};

/* The second thread: add callback b to each future as soon as it is published. */
static void *add_b(void *arg)
{
    struct adder *a = arg;
    for (size_t k = 0; k < a->count; k++) {
        while (atomic_load_explicit(&a->published, memory_order_acquire) <= k)
            sched_yield();
        size_t i = a->first + k;
        if (exec_future_on_done(a->fs[i], on_done_b, &cbs.calls_b[i]) != 0)
            a->failed++;
    }
    return NULL;
}

/* 100,000 futures, each with one callback added by the submitting thread right after submit
 * and one added by a second thread while the task may be finishing: each runs exactly once,
 * sees the future terminal with its result, and they run in the order added. */
TEST(stress_on_done_once)
{
    exec_t *ex = make_workers(2);
    cbs.calls_a = calloc(CB_TOTAL, sizeof *cbs.calls_a);
    cbs.calls_b = calloc(CB_TOTAL, sizeof *cbs.calls_b);
    exec_future_t **fs = calloc(CB_TOTAL, sizeof *fs);
    ASSERT_NOT_NULL(cbs.calls_a);
    ASSERT_NOT_NULL(cbs.calls_b);
    ASSERT_NOT_NULL(fs);
    for (size_t i = 0; i < CB_TOTAL; i++) {
        atomic_init(&cbs.calls_a[i], 0);
        atomic_init(&cbs.calls_b[i], 0);
    }

    for (size_t first = 0; first < CB_TOTAL; first += CB_ROUND) {
        struct adder a = {.fs = fs, .first = first, .count = CB_ROUND};
        atomic_init(&a.published, 0);
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, add_b, &a), 0);
        for (size_t k = 0; k < CB_ROUND; k++) {
            size_t i = first + k;
            int64_t x = (int64_t)i;
            ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &fs[i]));
            ASSERT_OK(exec_future_on_done(fs[i], on_done_a, &cbs.calls_a[i]));
            atomic_store_explicit(&a.published, k + 1, memory_order_release);
        }
        ASSERT_EQ(pthread_join(t, NULL), 0);
        ASSERT_EQ(a.failed, 0);
        for (size_t k = 0; k < CB_ROUND; k++) {
            ASSERT_OK(exec_future_wait(fs[first + k], EXEC_WAIT_FOREVER));
            exec_future_release(fs[first + k]);
        }
        /* A callback may still be running in the thread that finished its future just
         * after a wait returned: wait (bounded) for this round's calls to land. */
        unsigned long want = 2 * (unsigned long)(first + CB_ROUND);
        unsigned long total = atomic_load(&cbs.total);
        for (int ms = 0; ms < 10000 && total < want; ms++) {
            test_sleep_ms(1);
            total = atomic_load(&cbs.total);
        }
        ASSERT_EQ(total, want);
    }
    /* After destroy no callback can still be pending anywhere: check every count now. */
    ASSERT_OK(exec_destroy(ex));
    unsigned long total = atomic_load(&cbs.total);
    ASSERT_EQ(total, 2 * (unsigned long)CB_TOTAL);
    for (size_t i = 0; i < CB_TOTAL; i++) {
        unsigned a = atomic_load(&cbs.calls_a[i]), b = atomic_load(&cbs.calls_b[i]);
        if (a != 1 || b != 1)
            TEST_FAIL("future %zu: callback a ran %u times, b %u times; want 1 and 1", i, a,
                      b);
    }
    unsigned long not_final = atomic_load(&cbs.not_final);
    unsigned long bad_result = atomic_load(&cbs.bad_result);
    unsigned long out_of_order = atomic_load(&cbs.out_of_order);
    ASSERT_EQ(not_final, 0);
    ASSERT_EQ(bad_result, 0);
    /* "Several callbacks may be added; they run in the order added" (executor.h). */
    ASSERT_EQ(out_of_order, 0);
    free(cbs.calls_a);
    free(cbs.calls_b);
    free(fs);
}
