/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c - allocation accounting and fault injection (SQLite style).
 *
 * Accounting: the promises of executor.h about allocations, measured with the counters of
 * alloc_hook.h: exec_map() makes no allocation per item (a map of a million items allocates
 * as often as one of a thousand), and exec_submit() allocates at most once (a small argument
 * sits inside a future taken from an arena of futures, which is mapped, not malloc'd:
 * nothing at all in steady state; an argument over 16 bytes costs one malloc on threads). A
 * future's cold part (listeners, completion-queue routing) is malloc'd the first time and
 * then cached by the executor, so routing to a completion queue allocates nothing in steady
 * state either.
 *
 * Fault injection: for N = 1, 2, ... the N-th allocation (or thread start, or fork) from now
 * fails; the call under test must then succeed anyway or return the code its doc comment
 * lists for that case, leave its out-parameter untouched on failure, and leave nothing behind:
 * the live blocks, threads, child processes and fds are counted before and after each round
 * (after undoing what a success made). The loop ends with the first round in which nothing
 * failed (the call made fewer than N allocations); that round must succeed. Failures in the
 * background (worker threads, the timer, the process supervisor) are injected by failing
 * every allocation for a while under load: every future must still end and the executor must
 * still shut down.
 *
 * The hook counts and fails only in the test process: worker processes inherit the hook but
 * never run it (it checks its pid), so the counts below are those of the calling process.
 */
#include "harness.h"

#include "alloc_hook.h"
#include "base/fault.h" /* the test build of the library has the hooks (EXEC__FAULT_ARENA) */
#include "tasks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Liveness bound of every wait here, times the tool's slowness; never a speed claim. */
#define BOUND_MS 10000
/* A fault loop longer than this means the call allocates without end. */
#define MAX_ROUNDS 2000

static int bound_ms(void)
{
    return BOUND_MS * test_timeout_scale();
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks (they see only their argument bytes; on processes they run in a worker process)     */
/* ---------------------------------------------------------------------------------------- */

/* Copies the first (up to) 8 argument bytes to the result. */
static int echo8(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    return task_echo(arg, arg_size < 8 ? arg_size : 8, out, out_cap, out_size);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define BIG_RESULT 100 /* more than the 64 bytes a future holds inline: the result mallocs */

/* Spins for the uint32 number of microseconds in its argument, then returns BIG_RESULT
 * bytes, each the low byte of that number. */
static int busy_big(const void *arg, size_t arg_size, void *out, size_t out_cap,
                    size_t *out_size)
{
    uint32_t us;
    if (arg_size != sizeof us || out_cap < BIG_RESULT)
        return 97;
    memcpy(&us, arg, sizeof us);
    uint64_t end = mono_ns() + (uint64_t)us * 1000u;
    while (mono_ns() < end) {
    }
    memset(out, (int)(us & 0xff), BIG_RESULT);
    *out_size = BIG_RESULT;
    return 0;
}

/*
 * The gate: a word in shared memory mapped before the executor is created, so that worker
 * processes (forked from the zygote made at exec_create(), or from this process) share it.
 * A gated task waits until the word reaches the generation in its argument.
 */
static _Atomic uint32_t *gate;

static void gate_open_map(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        TEST_FAIL("mmap: %s", strerror(errno));
    gate = p;
    atomic_store(gate, 0);
}

static void gate_advance(uint32_t gen)
{
    atomic_store(gate, gen);
}

static int gated(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)out, (void)out_cap, (void)out_size;
    uint32_t gen;
    if (!task_arg(&gen, sizeof gen, arg, arg_size))
        return BAD_CALL;
    uint64_t end = mono_ns() + (uint64_t)60000 * 1000000u; /* far past any test's alarm */
    while (atomic_load(gate) < gen) {
        if (mono_ns() > end)
            return 98;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static exec_future_t *submit_u32(exec_t *ex, exec_task_fn *fn, uint32_t v)
{
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, fn, &v, sizeof v, &f));
    ASSERT_NOT_NULL(f);
    return f;
}

static void wait_done(exec_future_t *f)
{
    ASSERT_OK(exec_future_wait(f, bound_ms()));
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_DONE);
}

/* Waits (bounded) until @count() <= @want; returns the last count. */
static int settle(int (*count)(void), int want)
{
    uint64_t end = test_now_ms() + (uint64_t)bound_ms();
    int n;
    while ((n = count()) > want && test_now_ms() < end)
        test_sleep_ms(2);
    return n;
}

static int count_live(void)
{
    return (int)alloc_hook_live();
}

/* What must come back after each round of a fault loop. */
struct round {
    long live;
    int threads, children, fds;
};

static void round_begin(struct round *r)
{
    r->live = alloc_hook_live();
    r->threads = test_count_threads();
    r->children = test_count_children();
    r->fds = test_count_fds();
}

static void round_end(const struct round *r, const char *what, unsigned long n)
{
    int live = settle(count_live, (int)r->live);
    if (live != r->live)
        TEST_FAIL("%s, failing call #%lu: %ld live blocks before, %d after (a leak)", what,
                  n, r->live, live);
    int threads = settle(test_count_threads, r->threads);
    if (threads > r->threads)
        TEST_FAIL("%s, failing call #%lu: %d threads before, %d after", what, n, r->threads,
                  threads);
    int kids = settle(test_count_children, r->children);
    if (kids > r->children)
        TEST_FAIL("%s, failing call #%lu: %d child processes before, %d after", what, n,
                  r->children, kids);
    int fds = test_count_fds();
    if (fds != r->fds)
        TEST_FAIL("%s, failing call #%lu: %d fds before, %d after", what, n, r->fds, fds);
}

/* @r must be EXEC_OK, @a or @b. */
static void expect_code(const char *what, unsigned long n, int r, int a, int b)
{
    if (r != EXEC_OK && r != a && r != b)
        TEST_FAIL("%s, failing call #%lu: returned %d (%s), want EXEC_OK, %s or %s", what, n, r,
                  exec_errname(r), exec_errname(a), exec_errname(b));
}

/* The end of one round: the loop stops at the first round that injected nothing, which
 * must have succeeded; returns whether to go on. */
static bool round_next(const char *what, unsigned long n, uint64_t hit, int r, int ok)
{
    if (hit)
        return true;
    if (r != ok)
        TEST_FAIL("%s: round %lu injected nothing but returned %d (%s), want %s", what, n, r,
                  exec_errname(r), exec_errname(ok));
    return false;
}

static void check_rounds(const char *what, unsigned long n, unsigned long at_least)
{
    /* Round n injected nothing: the call made n - 1 allocations. It must have made some,
     * or the loop tested nothing (the hook would not be wired). */
    if (n - 1 < at_least)
        TEST_FAIL("%s: only %lu failures injected, want at least %lu", what, n - 1, at_least);
    if (n > MAX_ROUNDS)
        TEST_FAIL("%s: still allocating after %d rounds", what, MAX_ROUNDS);
    fprintf(stderr, "# %s: %lu failure(s) injected in turn\n", what, n - 1);
}

/* One round of a fault loop. */
struct fault {
    const char *what; /* the call under test, for messages */
    int kind;         /* what fails: AH_MALLOC, AH_THREAD or AH_FORK */
    unsigned long n;  /* the round fails the n-th call of that kind */
    uint64_t hit;     /* failures injected in the round */
};

/* In a round: make the n-th call of the kind from now on fail. */
static void fault_arm(const struct fault *ft)
{
    alloc_hook_fail_nth(ft->kind, ft->n);
}

/* In a round: stop failing calls; the call under test returned @r, EXEC_OK or @want. */
static void fault_disarm(struct fault *ft, int r, int want)
{
    ft->hit = alloc_hook_disarm(ft->kind);
    expect_code(ft->what, ft->n, r, want, want);
}

/* The out-parameter @p of a call that returned @r: set on success, untouched (SENTINEL) on
 * failure. Returns whether the call succeeded. */
static bool out_set(int r, const void *p)
{
    if (r != EXEC_OK) {
        ASSERT_TRUE(p == SENTINEL);
        return false;
    }
    ASSERT_TRUE(p != SENTINEL && p != NULL);
    return true;
}

/* Rounds n = 1, 2, ... of @round (which returns the code the round is judged by), each one
 * checked for leftovers, until a round injects nothing: that one must return @ok, and at
 * least @at_least failures must have been injected before it. */
/* Returns how many failures it injected in turn. */
static unsigned long fault_loop(const char *what, int kind,
                                int (*round)(struct fault *ft, void *ctx), void *ctx, int ok,
                                unsigned long at_least)
{
    struct fault ft = {what, kind, 1, 0};
    for (;; ft.n++) {
        if (ft.n > MAX_ROUNDS)
            break;
        struct round rd;
        round_begin(&rd);
        ft.hit = 0;
        int r = round(&ft, ctx);
        round_end(&rd, what, ft.n);
        if (!round_next(what, ft.n, ft.hit, r, ok))
            break;
    }
    check_rounds(what, ft.n, at_least);
    return ft.n - 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Accounting: exec_map() allocates nothing per item                                         */
/* ---------------------------------------------------------------------------------------- */

struct items {
    size_t n;
    size_t sum_index;
    int bad;
};

static void on_item(size_t index, int status, const void *result, void *user_data)
{
    struct items *it = user_data;
    it->n++;
    it->sum_index += index;
    if (status != 0 || result == NULL)
        it->bad++;
}

/* Allocation calls (all threads of this process) of one map of @n items. */
static uint64_t map_calls(exec_t *ex, bool unordered, size_t n, int64_t *in, int64_t *out)
{
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    memset(out, 0, n * sizeof *out);
    struct items it = {0, 0, 0};
    uint64_t before = alloc_hook_calls(AH_MALLOC);
    if (unordered)
        ASSERT_OK(exec_map_unordered(ex, task_triple, in, sizeof *in, out, sizeof *out, n,
                                     on_item, &it, NULL));
    else
        ASSERT_OK(exec_map(ex, task_triple, in, sizeof *in, out, sizeof *out, n, NULL));
    uint64_t calls = alloc_hook_calls(AH_MALLOC) - before;
    for (size_t i = 0; i < n; i += n / 97 + 1)
        ASSERT_EQ(out[i], 3 * (int64_t)i + 1);
    ASSERT_EQ(out[n - 1], 3 * (int64_t)(n - 1) + 1);
    if (unordered) {
        ASSERT_EQ(it.n, n);
        ASSERT_EQ(it.sum_index, n * (n - 1) / 2);
        ASSERT_EQ(it.bad, 0);
    }
    return calls;
}

static void map_accounting(bool unordered)
{
    enum { SMALL = 1000, LARGE = 1000000 };
    int64_t *in = malloc(LARGE * sizeof *in);
    int64_t *out = malloc(LARGE * sizeof *out);
    ASSERT_NOT_NULL(in);
    ASSERT_NOT_NULL(out);
    exec_t *ex = make_workers(2);
    alloc_hook_start();
    (void)map_calls(ex, unordered, SMALL, in, out); /* warm-up: the runners' slab */
    long live = alloc_hook_live();
    uint64_t small = map_calls(ex, unordered, SMALL, in, out);
    uint64_t large = map_calls(ex, unordered, LARGE, in, out);
    uint64_t small2 = map_calls(ex, unordered, SMALL, in, out);
    fprintf(stderr, "# %s [%s]: allocations per map: %" PRIu64 " for %d items, %" PRIu64
                    " for %d items\n",
            unordered ? "exec_map_unordered" : "exec_map", test_backend_name(), small, SMALL,
            large, LARGE);
    ASSERT_EQ(large, small);
    ASSERT_EQ(small2, small);
    ASSERT_LE(small, 4); /* O(1) per map */
    /* The one map driver allocates nothing for an ordered map on threads (workers claim
     * ranges of the caller's arrays); on processes one block: room for ranges a retiring
     * or dying worker hands back. */
    if (!unordered)
        ASSERT_EQ(small, test_backend == EXEC_BACKEND_THREADS ? 0 : 1);
    ASSERT_EQ(alloc_hook_live(), live);
    ASSERT_OK(exec_destroy(ex));
    free(in);
    free(out);
}

/* exec_map() of a million items allocates exactly as often as one of a thousand. */
TEST(alloc_map_no_per_item)
{
    map_accounting(false);
}

/* exec_map_unordered(): the same (it may allocate O(1) per map). */
TEST(alloc_map_unordered_no_per_item)
{
    map_accounting(true);
}

/* ---------------------------------------------------------------------------------------- */
/* Accounting: exec_submit() allocates at most once                                          */
/* ---------------------------------------------------------------------------------------- */

static void submit_accounting(size_t arg_size)
{
    int rounds = 10000 / test_timeout_scale();
    if (rounds < 1000)
        rounds = 1000;
    static unsigned char arg[EXEC_DEFAULT_MAX_ARG_SIZE];
    for (size_t i = 0; i < sizeof arg; i++)
        arg[i] = (unsigned char)(i * 7 + 1);
    exec_t *ex = make_workers(2);
    alloc_hook_start();
    for (int i = 0; i < 100; i++) { /* warm-up: slabs, rings, lazily made buffers */
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, echo8, arg, arg_size, &f));
        wait_done(f);
        exec_future_release(f);
    }
    long live = alloc_hook_live(); /* the slab stays with the executor */
    uint64_t all0 = alloc_hook_calls(AH_MALLOC), mine0 = alloc_hook_thread_calls();
    for (int i = 0; i < rounds; i++) {
        arg[0] = (unsigned char)i;
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, echo8, arg, arg_size, &f));
        ASSERT_OK(exec_future_wait(f, bound_ms()));
        const void *r = NULL;
        size_t n = 0;
        ASSERT_OK(exec_future_result(f, &r, &n));
        ASSERT_EQ(n, 8);
        ASSERT_MEM_EQ(r, arg, 8);
        exec_future_release(f);
    }
    uint64_t all = alloc_hook_calls(AH_MALLOC) - all0;
    uint64_t mine = alloc_hook_thread_calls() - mine0;
    fprintf(stderr, "# exec_submit of %zu bytes [%s]: %d submits: %" PRIu64
                    " allocations by the caller, %" PRIu64 " in all threads\n",
            arg_size, test_backend_name(), rounds, mine, all);
    if (arg_size <= 16) {
        ASSERT_LE(all, 4); /* a handful at most (arenas are mapped, not malloc'd) */
    } else if (arg_size >= 64 * 1024) {
        /* None: threads reuse the executor's kept copies of big arguments (their pages stay
         * resident), processes copy straight into the ring. */
        ASSERT_LE(mine, 4);
        ASSERT_LE(all, 4);
    } else if (test_backend == EXEC_BACKEND_THREADS) {
        /* Exactly one per submit on the calling side (the argument's copy). Nothing else
         * anywhere. */
        ASSERT_EQ(mine, (uint64_t)rounds);
        ASSERT_LE(all, (uint64_t)rounds + 4);
    } else {
        /* None: with a ring free (one submit at a time), the process backend copies the
         * argument once, straight into the ring. */
        ASSERT_LE(mine, 4);
        ASSERT_LE(all, 4);
    }
    ASSERT_EQ(alloc_hook_live(), live);
    ASSERT_OK(exec_destroy(ex));
}

/* 10,000 submits of an 8-byte argument (after warm-up) allocate a handful of times at most. */
TEST(alloc_submit_small_steady)
{
    submit_accounting(8);
}

/* 10,000 submits of a 1,000-byte argument: one allocation per submit, by the caller. */
TEST(alloc_submit_large_one_each)
{
    submit_accounting(1000);
}

/* 10,000 submits of a 64 KiB argument allocate nothing in steady state. */
TEST(alloc_submit_big_steady)
{
    submit_accounting(EXEC_DEFAULT_MAX_ARG_SIZE);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection: exec_create                                                              */
/* ---------------------------------------------------------------------------------------- */

struct create_case {
    exec_config_t cfg;
    int want_code;
};

static int create_round(struct fault *ft, void *ctx)
{
    struct create_case *c = ctx;
    exec_t *ex = SENTINEL;
    fault_arm(ft);
    int r = exec_create(&ex, &c->cfg);
    fault_disarm(ft, r, c->want_code);
    if (out_set(r, ex)) {
        /* The pool works even if a failure was absorbed. */
        exec_future_t *f = submit_u32(ex, echo8, (uint32_t)ft->n);
        wait_done(f);
        exec_future_release(f);
        ASSERT_OK(exec_destroy(ex));
    }
    return r;
}

static void create_loop(int kind, int workers, exec_start_method_t method, uint32_t timeout_ms,
                        int want_code)
{
    char what[128];
    snprintf(what, sizeof what, "exec_create(%s, %d workers%s%s), failing %s",
             test_backend_name(), workers, method == EXEC_START_FORK ? ", fork" : "",
             timeout_ms ? ", timeout" : "",
             kind == AH_MALLOC ? "malloc" : kind == AH_THREAD ? "pthread_create" : "fork");
    struct create_case c = {.want_code = want_code};
    test_config(&c.cfg);
    c.cfg.workers = workers;
    /* An initializer with argument bytes: exec_create() copies them (one allocation more). */
    static const char init_bytes[4] = "abc";
    c.cfg.initializer = task_noop;
    c.cfg.init_arg = init_bytes;
    c.cfg.init_arg_size = sizeof init_bytes;
    c.cfg.start_method = method;
    c.cfg.timeout_ms = timeout_ms;
    fault_loop(what, kind, create_round, &c, EXEC_OK, 1);
}

/* create_loop() for each worker count of @counts, then the fork start method (processes)
 * or the timer thread of a pool with a default timeout (threads). */
static void create_loops(int kind, const int *counts, size_t n, int want_code)
{
    alloc_hook_start();
    for (size_t i = 0; i < n; i++)
        create_loop(kind, counts[i], EXEC_START_FORKSERVER, 0, want_code);
    if (test_backend == EXEC_BACKEND_PROCESSES)
        create_loop(kind, 2, EXEC_START_FORK, 0, want_code);
    else
        create_loop(kind, 2, EXEC_START_FORKSERVER, 5000, want_code);
}

/* exec_create() with its N-th allocation failing: EXEC_ENOMEM and nothing left, for every N
 * until it succeeds; several worker counts, the timer thread, both start methods. */
TEST(alloc_fail_create)
{
    static const int counts[] = {1, 2, 4, 0};
    create_loops(AH_MALLOC, counts, sizeof counts / sizeof counts[0], EXEC_ENOMEM);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection: exec_submit, exec_submit_ex with a completion queue                      */
/* ---------------------------------------------------------------------------------------- */

enum { VIA_SUBMIT, VIA_CQ, VIA_CQ_FORGET, VIA_DEADLINE };

struct submit_case {
    unsigned char arg[1000];
    size_t arg_size;
    int via;
};

static int submit_round(struct fault *ft, void *ctx)
{
    struct submit_case *c = ctx;
    /* A fresh executor each round: it has no arena of futures yet (those are mapped, and
     * fail through EXEC__FAULT_ARENA, see alloc_fail_arena) and no cached cold part. */
    exec_t *ex = make_workers(2);
    exec_cq_t *cq = NULL;
    if (c->via == VIA_CQ || c->via == VIA_CQ_FORGET)
        ASSERT_OK(exec_cq_create(&cq));
    exec_submit_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.cq = cq;
    if (c->via == VIA_DEADLINE)
        opts.timeout_ms = 60000; /* the timer's heap grows in the worker */
    exec_future_t *f = SENTINEL;
    fault_arm(ft);
    int r;
    if (c->via == VIA_SUBMIT)
        r = exec_submit(ex, echo8, c->arg, c->arg_size, &f);
    else
        r = exec_submit_ex(ex, echo8, c->arg, c->arg_size, &opts,
                           c->via == VIA_CQ_FORGET ? NULL : &f);
    if (r == EXEC_OK && c->via == VIA_DEADLINE)
        ASSERT_OK(exec_future_wait(f, bound_ms())); /* the worker's allocations too */
    fault_disarm(ft, r, EXEC_ENOMEM);
    if (r == EXEC_OK) {
        exec_future_t *g = NULL;
        if (cq) {
            ASSERT_OK(exec_cq_pop(cq, bound_ms(), &g));
            if (c->via == VIA_CQ)
                ASSERT_TRUE(g == f);
            else
                ASSERT_TRUE(f == SENTINEL);
        } else {
            g = exec_future_retain(f);
        }
        ASSERT_OK(exec_future_wait(g, bound_ms()));
        const void *res = NULL;
        size_t size = 0;
        int code = exec_future_result(g, &res, &size);
        if (c->via == VIA_DEADLINE && code == EXEC_ENOMEM) {
            /* The failure hit the timer heap in the worker: the deadline could not be
             * watched, so the future failed instead of running unguarded. */
            ASSERT_EQ(exec_future_state(g), EXEC_STATE_FAILED);
        } else {
            ASSERT_OK(code);
            ASSERT_EQ(exec_future_state(g), EXEC_STATE_DONE);
            ASSERT_EQ(size, 8);
            ASSERT_MEM_EQ(res, c->arg, 8);
        }
        exec_future_release(g);
        if (f != SENTINEL)
            exec_future_release(f);
    } else {
        ASSERT_TRUE(f == SENTINEL);
        if (cq) {
            exec_future_t *g = SENTINEL;
            ASSERT_ERR(exec_cq_pop(cq, 0, &g), EXEC_ETIMEDOUT);
            ASSERT_TRUE(g == SENTINEL);
        }
    }
    exec_cq_destroy(cq);
    ASSERT_OK(exec_destroy(ex));
    return r;
}

static void submit_loop(size_t arg_size, int via)
{
    char what[96];
    snprintf(what, sizeof what, "%s of %zu bytes [%s]",
             via == VIA_SUBMIT     ? "exec_submit"
             : via == VIA_CQ       ? "exec_submit_ex(cq)"
             : via == VIA_DEADLINE ? "exec_submit_ex(timeout)"
                                   : "exec_submit_ex(cq, no f)",
             arg_size, test_backend_name());
    struct submit_case c = {.arg_size = arg_size, .via = via};
    for (size_t i = 0; i < sizeof c.arg; i++)
        c.arg[i] = (unsigned char)(i * 13 + 5);
    alloc_hook_start();
    /* What must be allocated at least: the cold part for a queue; the argument's copy
     * over 16 bytes on threads (processes copy it straight into a ring). */
    unsigned long least = (via == VIA_CQ || via == VIA_CQ_FORGET) ? 1 : 0;
    if (arg_size > 16 && test_backend == EXEC_BACKEND_THREADS)
        least++;
    fault_loop(what, AH_MALLOC, submit_round, &c, EXEC_OK, least);
}

/* exec_submit() of a small and of a large argument, on a fresh executor. */
TEST(alloc_fail_submit)
{
    submit_loop(8, VIA_SUBMIT);
    submit_loop(1000, VIA_SUBMIT);
    submit_loop(8, VIA_DEADLINE);
}

/* Mapping an arena of futures fails: the submit fails with EXEC_ENOMEM, leaves its
 * out-parameter alone, and the next submit maps one. */
TEST(alloc_fail_arena)
{
    exec_t *ex = make_workers(2);
    exec__fault_arm(EXEC__FAULT_ARENA, 1);
    uint32_t v = 7;
    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_submit(ex, echo8, &v, sizeof v, &f), EXEC_ENOMEM);
    ASSERT_TRUE(f == SENTINEL);
    ASSERT_EQ(exec__fault_arm(EXEC__FAULT_ARENA, 0), 0); /* consumed by that submit */
    ASSERT_OK(exec_submit(ex, echo8, &v, sizeof v, &f));
    wait_done(f);
    ASSERT_OK(exec_future_result(f, NULL, NULL));
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* Routing to a completion queue in steady state allocates nothing: the futures' cold parts
 * come back to the executor's cache. */
TEST(alloc_submit_cq_steady)
{
    exec_t *ex = make_workers(2);
    exec_cq_t *cq = NULL;
    ASSERT_OK(exec_cq_create(&cq));
    exec_submit_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.cq = cq;
    alloc_hook_start();
    uint64_t all0 = 0;
    for (int i = 0; i < 1100; i++) {
        if (i == 100) /* after warm-up */
            all0 = alloc_hook_calls(AH_MALLOC);
        uint32_t v = (uint32_t)i;
        ASSERT_OK(exec_submit_ex(ex, echo8, &v, sizeof v, &opts, NULL));
        exec_future_t *g = NULL;
        ASSERT_OK(exec_cq_pop(cq, bound_ms(), &g));
        ASSERT_OK(exec_future_result(g, NULL, NULL));
        exec_future_release(g);
    }
    uint64_t all = alloc_hook_calls(AH_MALLOC) - all0;
    fprintf(stderr, "# 1000 submits through a queue [%s]: %" PRIu64 " allocations\n",
            test_backend_name(), all);
    ASSERT_LE(all, 4);
    exec_cq_destroy(cq);
    ASSERT_OK(exec_destroy(ex));
}

/* exec_submit_ex() routing into a completion queue: a failed submit leaves the queue empty. */
TEST(alloc_fail_submit_cq)
{
    submit_loop(8, VIA_CQ);
    submit_loop(1000, VIA_CQ);
    submit_loop(1000, VIA_CQ_FORGET);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection: exec_map, exec_map_unordered                                             */
/* ---------------------------------------------------------------------------------------- */

enum { MAP_N = 100 };

struct map_case {
    bool unordered, with_status;
    int workers;
    int64_t in[MAP_N], out[MAP_N];
    int status[MAP_N];
};

static int map_round(struct fault *ft, void *ctx)
{
    struct map_case *c = ctx;
    exec_t *ex = make_workers(c->workers);
    memset(c->out, 0xa5, sizeof c->out);
    memset(c->status, 0x5a, sizeof c->status);
    exec_map_opts_t opts;
    memset(&opts, 0, sizeof opts);
    if (c->with_status)
        opts.status = c->status;
    struct items it = {0, 0, 0};
    fault_arm(ft);
    int r = c->unordered ? exec_map_unordered(ex, task_triple, c->in, sizeof *c->in, c->out,
                                              sizeof *c->out, MAP_N, on_item, &it, &opts)
                         : exec_map(ex, task_triple, c->in, sizeof *c->in, c->out,
                                    sizeof *c->out, MAP_N, &opts);
    fault_disarm(ft, r, EXEC_ENOMEM);
    if (r == EXEC_OK) {
        for (int i = 0; i < MAP_N; i++)
            ASSERT_EQ(c->out[i], 3 * (int64_t)i + 1);
        if (c->with_status)
            for (int i = 0; i < MAP_N; i++)
                ASSERT_EQ(c->status[i], 0);
        ASSERT_EQ(opts.failed, 0);
        ASSERT_EQ(opts.first_failed, MAP_N);
        if (c->unordered) {
            ASSERT_EQ(it.n, MAP_N);
            ASSERT_EQ(it.bad, 0);
        }
    } else {
        /* Failed before any item ran: nothing written, no callback. */
        unsigned char pat[sizeof c->out];
        memset(pat, 0xa5, sizeof pat);
        ASSERT_MEM_EQ(c->out, pat, sizeof c->out);
        memset(pat, 0x5a, sizeof c->status);
        ASSERT_MEM_EQ(c->status, pat, sizeof c->status);
        ASSERT_EQ(it.n, 0);
    }
    ASSERT_OK(exec_destroy(ex));
    return r;
}

static void map_loop(bool unordered, bool with_status, int workers)
{
    char what[96];
    snprintf(what, sizeof what, "%s(n=%d%s, %d workers) [%s]",
             unordered ? "exec_map_unordered" : "exec_map", MAP_N,
             with_status ? ", status" : "", workers, test_backend_name());
    struct map_case c = {unordered, with_status, workers, {0}, {0}, {0}};
    for (int i = 0; i < MAP_N; i++)
        c.in[i] = i;
    alloc_hook_start();
    /* An ordered map on threads allocates nothing at all: nothing to inject. */
    bool none = test_backend == EXEC_BACKEND_THREADS && !unordered;
    unsigned long injected =
        fault_loop(what, AH_MALLOC, map_round, &c, EXEC_OK, none ? 0 : 1);
    if (none)
        ASSERT_EQ(injected, 0);
}

TEST(alloc_fail_map)
{
    map_loop(false, false, 2);
    map_loop(false, true, 2);
}

TEST(alloc_fail_map_unordered)
{
    map_loop(true, false, 2);
    map_loop(true, true, 2);
}

/* More than 64 workers: the thread pool allocates its array of map runners, and the runners'
 * futures need a second slab. */
TEST(alloc_fail_map_many_workers)
{
    map_loop(false, false, 80);
    map_loop(true, false, 80);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection: done-callbacks, wait-any                                                 */
/* ---------------------------------------------------------------------------------------- */

static void count_cb(exec_future_t *f, void *user_data)
{
    (void)f;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

static int on_done_round(struct fault *ft, void *ctx)
{
    exec_t *ex = ctx;
    exec_future_t *f = submit_u32(ex, gated, (uint32_t)ft->n);
    atomic_int calls[3];
    int r[3];
    for (int k = 0; k < 3; k++)
        atomic_init(&calls[k], 0);
    fault_arm(ft);
    for (int k = 0; k < 3; k++)
        r[k] = exec_future_on_done(f, count_cb, &calls[k]);
    fault_disarm(ft, r[0], EXEC_ENOMEM);
    ASSERT_EQ(exec_future_state(f) <= EXEC_STATE_RUNNING, 1); /* still gated */
    for (int k = 1; k < 3; k++)
        expect_code(ft->what, ft->n, r[k], EXEC_ENOMEM, EXEC_ENOMEM);
    gate_advance((uint32_t)ft->n);
    wait_done(f);
    /* On a terminal future a new callback runs here, after every earlier one returned:
     * once it ran, all the callbacks that will ever run have run. */
    atomic_int barrier;
    atomic_init(&barrier, 0);
    ASSERT_OK(exec_future_on_done(f, count_cb, &barrier));
    ASSERT_EQ(atomic_load(&barrier), 1);
    for (int k = 0; k < 3; k++)
        if (atomic_load(&calls[k]) != (r[k] == EXEC_OK ? 1 : 0))
            TEST_FAIL("%s, failing call #%lu: callback %d returned %s and ran %d times",
                      ft->what, ft->n, k, exec_errname(r[k]), atomic_load(&calls[k]));
    exec_future_release(f);
    return r[0] ? r[0] : r[1] ? r[1] : r[2];
}

/* exec_future_on_done() three times on a running future: the first callback sits in the
 * future's cold part (from the executor's cache here), the next two allocate. A callback
 * whose registration failed never runs. */
TEST(alloc_fail_on_done)
{
    gate_open_map();
    exec_t *ex = make_workers(2);
    alloc_hook_start();
    /* Outside the rounds: the arena, and a cold part the executor then keeps cached (a
     * future routed to a queue makes one). */
    exec_cq_t *cq = NULL;
    ASSERT_OK(exec_cq_create(&cq));
    exec_submit_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.cq = cq;
    uint32_t one = 1;
    ASSERT_OK(exec_submit_ex(ex, echo8, &one, sizeof one, &opts, NULL));
    exec_future_t *warm = NULL;
    ASSERT_OK(exec_cq_pop(cq, bound_ms(), &warm));
    exec_future_release(warm);
    exec_cq_destroy(cq);
    /* The backend drops its references a moment later (processes: the supervisor): wait
     * until only the cached cold part is left. */
    ASSERT_EQ(settle(count_live, 1), 1);
    fault_loop("exec_future_on_done x3", AH_MALLOC, on_done_round, ex, EXEC_OK, 2);
    ASSERT_OK(exec_destroy(ex));
}

enum { NF = 20 };

static int wait_any_round(struct fault *ft, void *ctx)
{
    fault_arm(ft);
    int r = exec_future_wait_any(ctx, NF, 5);
    ft->hit = alloc_hook_disarm(ft->kind);
    if (r != EXEC_ETIMEDOUT && r != EXEC_ENOMEM)
        TEST_FAIL("%s, failing call #%lu: returned %d (%s), want EXEC_ETIMEDOUT or EXEC_ENOMEM",
                  ft->what, ft->n, r, exec_errname(r));
    return r;
}

/* exec_future_wait_any() on 20 futures (more than its 16 nodes on the stack): EXEC_ENOMEM
 * when the nodes cannot be allocated, the timeout otherwise, and nothing left behind. */
TEST(alloc_fail_wait_any)
{
    gate_open_map();
    exec_t *ex = make_workers(2);
    alloc_hook_start();
    exec_future_t *fs[NF];
    for (int i = 0; i < NF; i++)
        fs[i] = submit_u32(ex, gated, 1);
    /* Outside the rounds: the futures' cold parts (their listener lists), kept by them. */
    ASSERT_ERR(exec_future_wait_any(fs, NF, 1), EXEC_ETIMEDOUT);
    fault_loop("exec_future_wait_any(20)", AH_MALLOC, wait_any_round, fs, EXEC_ETIMEDOUT, 1);
    gate_advance(1);
    int r = exec_future_wait_any(fs, NF, bound_ms());
    ASSERT_GE(r, 0);
    ASSERT_OK(exec_future_wait_all(fs, NF, bound_ms()));
    for (int i = 0; i < NF; i++) {
        ASSERT_EQ(exec_future_state(fs[i]), EXEC_STATE_DONE);
        exec_future_release(fs[i]);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection: completion queues, shared memory                                         */
/* ---------------------------------------------------------------------------------------- */

static int cq_create_round(struct fault *ft, void *ctx)
{
    (void)ctx;
    exec_cq_t *cq = SENTINEL;
    fault_arm(ft);
    int r = exec_cq_create(&cq);
    fault_disarm(ft, r, EXEC_ENOMEM);
    if (out_set(r, cq)) {
        exec_future_t *f = SENTINEL;
        ASSERT_ERR(exec_cq_pop(cq, 0, &f), EXEC_ETIMEDOUT);
        exec_cq_destroy(cq);
    }
    return r;
}

TEST(alloc_fail_cq_create)
{
    alloc_hook_start();
    fault_loop("exec_cq_create", AH_MALLOC, cq_create_round, NULL, EXEC_OK, 1);
}

/* exec_shm_create(NULL, 12345 bytes (4096 with @ft->kind AH_FORK), *flags): on success a
 * usable buffer; either way no name left in /dev/shm. */
static int shm_create_round(struct fault *ft, void *ctx)
{
    const unsigned *flags = ctx;
    size_t size = ft->kind == AH_FORK ? 4096 : 12345;
    int shm0 = test_count_shm("exec-");
    exec_shm_t *shm = SENTINEL;
    fault_arm(ft);
    int r = exec_shm_create(&shm, NULL, size, *flags);
    fault_disarm(ft, r, ft->kind == AH_FORK ? EXEC_ESYS : EXEC_ENOMEM);
    if (out_set(r, shm)) {
        ASSERT_EQ(exec_shm_size(shm), size);
        memset(exec_shm_ptr(shm), 1, size);
        ASSERT_OK(exec_shm_close(shm));
    }
    ASSERT_EQ(test_count_shm("exec-"), shm0);
    return r;
}

static void shm_create_loop(unsigned flags)
{
    fault_loop(flags & EXEC_SHM_ANONYMOUS ? "exec_shm_create(anonymous)"
                                          : "exec_shm_create(named)",
               AH_MALLOC, shm_create_round, &flags, EXEC_OK, 1);
}

/* exec_shm_create(), named (with its guardian process) and anonymous. */
TEST(alloc_fail_shm_create)
{
    alloc_hook_start();
    shm_create_loop(0);
    shm_create_loop(EXEC_SHM_ANONYMOUS);
}

static int shm_attach_round(struct fault *ft, void *ctx)
{
    exec_shm_t *owner = ctx;
    exec_shm_t *shm = SENTINEL;
    fault_arm(ft);
    int r = exec_shm_attach(&shm, exec_shm_name(owner), ft->n % 2 ? EXEC_SHM_RDONLY : 0);
    fault_disarm(ft, r, EXEC_ENOMEM);
    if (out_set(r, shm)) {
        ASSERT_EQ(((unsigned char *)exec_shm_ptr(shm))[4095], 0x3c);
        ASSERT_OK(exec_shm_close(shm));
    }
    return r;
}

TEST(alloc_fail_shm_attach)
{
    alloc_hook_start();
    exec_shm_t *owner = NULL;
    ASSERT_OK(exec_shm_create(&owner, NULL, 4096, 0));
    memset(exec_shm_ptr(owner), 0x3c, 4096);
    fault_loop("exec_shm_attach", AH_MALLOC, shm_attach_round, owner, EXEC_OK, 1);
    ASSERT_OK(exec_shm_close(owner));
}

/* In a child of fork(), as in a fresh worker process: map a ref with the N-th allocation
 * failing. Exit status: 10 a failure was injected and handled, 11 nothing was injected and
 * the map worked; an assertion ends the child with 1. */
static _Noreturn void shm_map_child(const exec_shm_ref_t *ref, exec_shm_t *inherited,
                                    unsigned long n, unsigned flags)
{
    alloc_hook_start();
    long live = alloc_hook_live();
    void *p = SENTINEL;
    size_t size = 7;
    alloc_hook_fail_nth(AH_MALLOC, n);
    int r = exec_shm_map(ref, flags, &p, &size);
    uint64_t hit = alloc_hook_disarm(AH_MALLOC);
    expect_code("exec_shm_map in a child", n, r, EXEC_ENOMEM, EXEC_ENOMEM);
    if (r == EXEC_OK) {
        ASSERT_TRUE(p != SENTINEL && p != NULL);
        ASSERT_EQ(size, ref->size);
        ASSERT_EQ(((unsigned char *)p)[ref->size - 1], 0x6b);
    } else {
        ASSERT_TRUE(p == SENTINEL);
        ASSERT_EQ(size, 7);
    }
    /* Closing the inherited handle drops this process's mappings of the buffer (its own
     * block was allocated before the start: not counted). */
    ASSERT_OK(exec_shm_close(inherited));
    ASSERT_EQ(alloc_hook_live(), live);
    _exit(hit ? 10 : 11);
}

static void shm_map_loop(unsigned create_flags, unsigned map_flags)
{
    char what[96];
    snprintf(what, sizeof what, "exec_shm_map(%s%s) in a forked child",
             create_flags & EXEC_SHM_ANONYMOUS ? "anonymous" : "named",
             map_flags & EXEC_SHM_RDONLY ? ", rdonly" : "");
    exec_shm_t *shm = NULL;
    ASSERT_OK(exec_shm_create(&shm, NULL, 8192, create_flags));
    memset(exec_shm_ptr(shm), 0x6b, 8192);
    exec_shm_ref_t ref;
    ASSERT_OK(exec_shm_ref(shm, &ref));
    unsigned long n = 1;
    int injected = 0;
    for (;; n++) {
        if (n > MAX_ROUNDS)
            break;
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
            TEST_FAIL("fork: %s", strerror(errno));
        if (pid == 0)
            shm_map_child(&ref, shm, n, map_flags);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || (WEXITSTATUS(st) != 10 && WEXITSTATUS(st) != 11))
            TEST_FAIL("%s, failing call #%lu: the child ended with status 0x%x (see above)", what,
                      n, st);
        if (WEXITSTATUS(st) == 11)
            break;
        injected++;
    }
    check_rounds(what, n, map_flags & EXEC_SHM_RDONLY ? 1 : 0);
    ASSERT_EQ(injected, (long)n - 1);
    ASSERT_OK(exec_shm_close(shm));
}

/* exec_shm_map() in a fresh forked child, named and anonymous refs. A read-only map always
 * makes (and caches) a mapping of its own; a read-write map in a child of the creator finds
 * the inherited handle's mapping. */
TEST(alloc_fail_shm_map)
{
    alloc_hook_start();
    shm_map_loop(0, EXEC_SHM_RDONLY);
    shm_map_loop(EXEC_SHM_ANONYMOUS, EXEC_SHM_RDONLY);
    shm_map_loop(0, 0);
    shm_map_loop(EXEC_SHM_ANONYMOUS, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection in the background                                                         */
/* ---------------------------------------------------------------------------------------- */

/*
 * Every allocation fails for 50 ms while 1,000 tasks run whose results need one (over 64
 * bytes: allocated by the worker thread or the process supervisor), and while this thread
 * submits more (their futures need slabs). Every future must still end, in any terminal
 * state (a result that could not be stored fails its future with EXEC_ENOMEM), and the
 * executor must still shut down. A per-task timeout makes the thread pool's timer thread
 * track every task (its heap grows by realloc).
 */
TEST(alloc_fail_all_under_load)
{
    enum { NT = 1000, EXTRA = 200, TASK_US = 100 };
    exec_t *ex = make_with(2, (exec_config_t){.timeout_ms = 60000});
    alloc_hook_start();
    exec_future_t **fs = calloc(NT + EXTRA, sizeof *fs);
    ASSERT_NOT_NULL(fs);
    for (int i = 0; i < NT; i++)
        fs[i] = submit_u32(ex, busy_big, TASK_US);
    ASSERT_OK(exec_future_wait(fs[0], bound_ms())); /* the workers run */

    alloc_hook_fail_all(AH_MALLOC);
    uint64_t end = test_now_ms() + (uint64_t)bound_ms();
    int extra = 0, extra_nomem = 0, bad = EXEC_OK;
    while (alloc_hook_injected(AH_MALLOC) == 0 && test_now_ms() < end)
        test_sleep_ms(1);
    uint64_t stop = test_now_ms() + 50;
    while (test_now_ms() < stop) {
        if (extra < EXTRA) {
            exec_future_t *f = SENTINEL;
            uint32_t us = TASK_US;
            int r = exec_submit(ex, busy_big, &us, sizeof us, &f);
            if (r == EXEC_OK)
                fs[NT + extra++] = f;
            else if (r == EXEC_ENOMEM && f == SENTINEL)
                extra_nomem++;
            else if (bad == EXEC_OK)
                bad = r != EXEC_OK ? r : EXEC_EINVAL; /* reported after the disarm */
        }
        test_sleep_ms(1);
    }
    uint64_t injected = alloc_hook_disarm(AH_MALLOC);
    ASSERT_GT(injected, 0);
    if (bad != EXEC_OK)
        TEST_FAIL("exec_submit while allocations fail: %d (%s), want EXEC_OK or EXEC_ENOMEM "
                  "with the future untouched", bad, exec_errname(bad));

    int total = NT + extra;
    ASSERT_OK(exec_future_wait_all(fs, (size_t)total, bound_ms()));
    int done = 0, nomem = 0;
    for (int i = 0; i < total; i++) {
        int st = exec_future_state(fs[i]);
        const void *res = NULL;
        size_t size = 0;
        int code = exec_future_result(fs[i], &res, &size);
        if (st == EXEC_STATE_DONE) {
            ASSERT_EQ(code, EXEC_OK);
            ASSERT_EQ(size, BIG_RESULT);
            ASSERT_EQ(((const unsigned char *)res)[BIG_RESULT - 1], TASK_US & 0xff);
            done++;
        } else {
            ASSERT_EQ(st, EXEC_STATE_FAILED);
            ASSERT_ERR(code, EXEC_ENOMEM);
            nomem++;
        }
        exec_future_release(fs[i]);
    }
    fprintf(stderr, "# [%s] %" PRIu64 " allocations failed; %d tasks done, %d failed with "
                    "EXEC_ENOMEM; %d extra submits, %d refused with EXEC_ENOMEM\n",
            test_backend_name(), injected, done, nomem, extra, extra_nomem);
    ASSERT_EQ(done + nomem, total);
    /* Healed: the pool works. */
    exec_future_t *f = submit_u32(ex, busy_big, 1);
    wait_done(f);
    exec_future_release(f);
    free(fs);
    ASSERT_OK(exec_destroy(ex));
}

/* A task that submits a child task (with a 100-byte argument: the worker thread allocates
 * its copy) and waits for it: with one worker the child runs nested inside the wait, in a
 * result buffer the worker allocates for that depth. The argument carries the executor's
 * address (thread backend: same memory). */
static int parent_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)out, (void)out_cap, (void)out_size;
    exec_t *ex;
    if (!task_arg(&ex, sizeof ex, arg, arg_size))
        return BAD_CALL;
    unsigned char v[100];
    memset(v, 42, sizeof v);
    exec_future_t *child = NULL;
    int r = exec_submit(ex, echo8, v, sizeof v, &child);
    if (r != EXEC_OK)
        return r; /* the task's status: the submit's code */
    r = exec_future_wait(child, EXEC_WAIT_FOREVER);
    if (r == EXEC_OK)
        r = exec_future_result(child, NULL, NULL);
    exec_future_release(child);
    return r;
}

static int nested_round(struct fault *ft, void *ctx)
{
    int *seen_child_nomem = ctx;
    exec_t *ex = make_workers(1);
    exec_future_t *f = SENTINEL;
    fault_arm(ft);
    int r = exec_submit(ex, parent_task, &ex, sizeof ex, &f);
    int code = r;
    if (out_set(r, f)) {
        ASSERT_OK(exec_future_wait(f, bound_ms()));
        exec_fault_t fault;
        ASSERT_OK(exec_future_fault(f, &fault));
        code = fault.code;
        if (fault.code == EXEC_ETASK) {
            ASSERT_ERR(fault.task_status, EXEC_ENOMEM);
            (*seen_child_nomem)++;
        } else {
            ASSERT_OK(fault.code);
        }
        exec_future_release(f);
    }
    fault_disarm(ft, r, EXEC_ENOMEM);
    ASSERT_OK(exec_destroy(ex));
    return code;
}

/* Allocation failures inside a worker thread, in a nested submit and wait: the child's
 * submit or the child itself fails with EXEC_ENOMEM, the parent reports it, nothing leaks. */
TEST(alloc_fail_nested_wait)
{
    alloc_hook_start();
    int seen_child_nomem = 0;
    fault_loop("nested submit+wait in a task", AH_MALLOC, nested_round, &seen_child_nomem,
               EXEC_OK, 2);
    ASSERT_EQ(seen_child_nomem, 2); /* the child's argument, its nested result buffer */
}

/* ---------------------------------------------------------------------------------------- */
/* pthread_create and fork failures                                                          */
/* ---------------------------------------------------------------------------------------- */

/* exec_create() when its N-th thread cannot be created: EXEC_ESYS and no thread (or zygote)
 * left; the timer thread of a pool with a default timeout too. */
TEST(alloc_thread_create_fails)
{
    static const int counts[] = {1, 2, 4};
    create_loops(AH_THREAD, counts, sizeof counts / sizeof counts[0], EXEC_ESYS);
}

/* max_tasks_per_child = 1: each worker thread retires after every task and starts its
 * replacement. While no thread can be created, the workers keep serving (the library tries
 * again after the next task): 100 tasks all complete. Then retirement resumes. */
TEST(alloc_thread_retire_fails)
{
    exec_t *ex = make_with(2, (exec_config_t){.max_tasks_per_child = 1});
    alloc_hook_start();
    int threads = test_count_threads();
    exec_stats_t st0, st1, st2;
    ASSERT_OK(exec_stats(ex, &st0));

    uint64_t creates0 = alloc_hook_calls(AH_THREAD);
    alloc_hook_fail_all(AH_THREAD);
    exec_future_t *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = submit_u32(ex, echo8, (uint32_t)i);
    for (int i = 0; i < 100; i++) {
        wait_done(fs[i]);
        const void *r = NULL;
        size_t size = 0;
        ASSERT_OK(exec_future_result(fs[i], &r, &size));
        ASSERT_EQ(size, 4);
        ASSERT_EQ(*(const uint32_t *)r, (uint32_t)i);
        exec_future_release(fs[i]);
    }
    /* A worker tries to retire after each task, just after it ended the future: wait for
     * the 100th try before the threads may be made again. */
    uint64_t end = test_now_ms() + (uint64_t)bound_ms();
    while (alloc_hook_calls(AH_THREAD) - creates0 < 100 && test_now_ms() < end)
        test_sleep_ms(1);
    uint64_t refused = alloc_hook_disarm(AH_THREAD);
    ASSERT_OK(exec_stats(ex, &st1));
    ASSERT_EQ(refused, 100);
    ASSERT_EQ(st1.workers_retired, st0.workers_retired); /* nobody could retire */
    ASSERT_EQ(st1.workers_alive, 2);
    ASSERT_EQ(test_count_threads(), threads);

    for (int i = 0; i < 10; i++) {
        exec_future_t *f = submit_u32(ex, echo8, (uint32_t)i);
        wait_done(f);
        exec_future_release(f);
    }
    end = test_now_ms() + (uint64_t)bound_ms();
    do {
        ASSERT_OK(exec_stats(ex, &st2));
        if (st2.workers_retired >= st1.workers_retired + 10)
            break;
        test_sleep_ms(1);
    } while (test_now_ms() < end);
    ASSERT_GE(st2.workers_retired, st1.workers_retired + 10);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(settle(test_count_threads, threads - 2), threads - 2);
}

/* A task with a deadline on a pool whose timer thread is not running yet (no default
 * timeout): the submit starts it. If it cannot, the submit fails and keeps nothing. */
TEST(alloc_thread_timer_fails)
{
    exec_t *ex = make_workers(1);
    exec_future_t *warm = submit_u32(ex, echo8, 1); /* the future slab */
    wait_done(warm);
    exec_future_release(warm);
    alloc_hook_start();
    int threads = test_count_threads();
    long live = alloc_hook_live();
    exec_submit_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.timeout_ms = 60000;
    uint32_t v = 5;
    exec_future_t *f = SENTINEL;
    alloc_hook_fail_all(AH_THREAD);
    int r = exec_submit_ex(ex, echo8, &v, sizeof v, &opts, &f);
    ASSERT_EQ(alloc_hook_disarm(AH_THREAD), 1);
    /* executor.h lists no EXEC_ESYS for exec_submit() or exec_submit_ex() (reported): the
     * thread pool returns it when its timer thread cannot start. Nothing is kept. */
    ASSERT_ERR(r, EXEC_ESYS);
    ASSERT_TRUE(f == SENTINEL);
    ASSERT_EQ(test_count_threads(), threads);
    ASSERT_EQ(alloc_hook_live(), live);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.submitted, 1); /* the warm-up */

    ASSERT_OK(exec_submit_ex(ex, echo8, &v, sizeof v, &opts, &f)); /* healed */
    wait_done(f);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));
}

/* exec_create() on processes when the zygote cannot be forked: EXEC_ESYS, nothing left. */
TEST(alloc_fork_create_fails)
{
    alloc_hook_start();
    create_loop(AH_FORK, 2, EXEC_START_FORKSERVER, 0, EXEC_ESYS);
}

/* exec_shm_create() of a named buffer starts the guardian process at its first name: if it
 * cannot be forked, EXEC_ESYS and no name, process or fd is left. */
TEST(alloc_fork_shm_guardian_fails)
{
    alloc_hook_start();
    unsigned flags = 0;
    fault_loop("exec_shm_create(named), failing fork", AH_FORK, shm_create_round, &flags,
               EXEC_OK, 1);
}

/* The fork start method forks workers from the supervisor: while fork fails, a task waits
 * through the retries and then fails with EXEC_ESYS and the errno; afterwards the pool
 * heals. */
TEST(alloc_fork_spawn_fails)
{
    exec_config_t cfg = config_workers(1);
    cfg.start_method = EXEC_START_FORK;
    alloc_hook_start();
    alloc_hook_fail_all(AH_FORK);
    exec_t *ex = make_exec(&cfg);
    exec_future_t *f = submit_u32(ex, echo8, 9);
    ASSERT_OK(exec_future_wait(f, bound_ms()));
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_FAILED);
    exec_fault_t ft;
    ASSERT_OK(exec_future_fault(f, &ft));
    ASSERT_ERR(ft.code, EXEC_ESYS);
    ASSERT_EQ(ft.sys_errno, EAGAIN);
    exec_future_release(f);
    ASSERT_GE(alloc_hook_disarm(AH_FORK), 5);
    ASSERT_EQ(test_count_children(), 0);

    uint64_t end = test_now_ms() + (uint64_t)bound_ms();
    for (;;) {
        f = submit_u32(ex, echo8, 10);
        ASSERT_OK(exec_future_wait(f, bound_ms()));
        int st = exec_future_state(f);
        exec_future_release(f);
        if (st == EXEC_STATE_DONE)
            break;
        if (test_now_ms() > end)
            TEST_FAIL("the pool did not heal after fork worked again");
        test_sleep_ms(10);
    }
    ASSERT_OK(exec_destroy(ex));
}

/* Thread pool: the timer heap grows by realloc when a timed task starts. If that fails the
 * deadline cannot be watched; the future must then fail (EXEC_ENOMEM) rather than run past
 * its deadline and end DONE as if it had none. */
static int sleep_300ms(const void *arg, size_t arg_size, void *out, size_t cap, size_t *len)
{
    (void)arg, (void)arg_size, (void)out, (void)cap, (void)len;
    for (int i = 0; i < 300 && !exec_task_should_stop(); i++)
        test_sleep_ms(1);
    return 0;
}

TEST(alloc_timer_heap_nomem)
{
    exec_t *ex = make_workers(1);
    exec_submit_opts_t o = {.timeout_ms = 50};
    /* Warm up: the future slab and the timer thread exist; the heap has not grown yet. */
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, sleep_300ms, NULL, 0, &f));
    exec_future_release(f);
    alloc_hook_start();
    alloc_hook_fail_all(AH_MALLOC);
    f = NULL;
    int r = exec_submit_ex(ex, sleep_300ms, NULL, 0, &o, &f);
    uint64_t injected = alloc_hook_disarm(AH_MALLOC);
    if (r == EXEC_OK) {
        ASSERT_OK(exec_future_wait(f, 10000));
        int code = exec_future_result(f, NULL, NULL);
        if (code != EXEC_ENOMEM && code != EXEC_ETIMEDOUT)
            TEST_FAIL("timed task ended %s with allocations failing (%llu injected); want "
                      "EXEC_ENOMEM or EXEC_ETIMEDOUT, never a silent success",
                      exec_errname(code), (unsigned long long)injected);
        exec_future_release(f);
    } else {
        ASSERT_ERR(r, EXEC_ENOMEM);
    }
    ASSERT_OK(exec_destroy(ex));
}
