/* SPDX-License-Identifier: MIT */
/*
 * bench_process.c - the process backend's benchmarks (issue 3), each next to its reference
 * measured in the same run:
 *
 *   1. submit-and-wait of 1,000,000 no-op tasks on 2 worker processes (futures in windows of
 *      4096: submit a window, wait for each, release it): tasks/s; target >= 1 M/s;
 *   2. exec_map() of 10,000,000 tiny items (y = 2x + 1 on int64): items/s; target >= 20 M/s;
 *   3. round trip (submit one no-op, wait for it), 20,000 times in blocks interleaved with a
 *      two-process futex ping-pong through shared memory (the floor of any sleeping hand-off
 *      between processes): median and p99; target: median <= 1.5x the floor's;
 *   4. max_tasks_per_child = 1 (a fresh worker for every task): time per task, with a small
 *      parent and with the parent holding 1 GiB resident in 4 KiB pages (allocated after
 *      exec_create(), so the zygote was forked while the parent was small); target <= 0.5 ms
 *      per task, both. For reference: fork()+waitpid() from the same parent, and the fork
 *      start method, which pays for the parent's size on every recycle;
 *   5. counting primes on 2 worker processes: speedup over the serial loop; target >= 1.9x.
 *
 * Figures move by 20-40% between runs on a shared 2-core machine: compare inside one run.
 *
 * Usage: bench_process [--quick] [--runs N] [--only LIST]
 *   --quick     a smoke run of about a second (small sizes, 64 MiB instead of 1 GiB)
 *   --runs N    median of N runs for benchmarks 1, 2 and 5 (default 3)
 *   --only L    e.g. --only 1,3
 * Exit status: 0 when everything ran and every result was right (a MISS is reported, not a
 * failure); 1 on an error or a wrong result.
 */
#include "bench_common.h"

#include <executor.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define WORKERS 2
#define WINDOW 4096
#define RT_BLOCK 500
#define MAX_RUNS 64

#define TARGET_TASKS 1e6
#define TARGET_ITEMS 20e6
#define TARGET_RT_RATIO 1.5
#define TARGET_RECYCLE_MS 0.5
#define TARGET_SPEEDUP 1.9

struct sizes {
    uint32_t tasks, rt, recycle, recycle_fork;
    uint64_t items, primes_hi;
    size_t big;
};

static const struct sizes full = {1000000, 20000, 2000, 100, 10000000, 6000000, (size_t)1 << 30};
static const struct sizes quick = {50000, 2000, 200, 20, 500000, 600000, (size_t)64 << 20};

static bool failed;

static void fail(const char *what, int r)
{
    fprintf(stderr, "bench_process: %s: %s\n", what, exec_strerror(r));
    failed = true;
}

static const char *verdict(bool ok)
{
    return ok ? "PASS" : "MISS";
}

static exec_t *make(uint32_t max_tasks, exec_start_method_t method)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = WORKERS;
    cfg.max_tasks_per_child = max_tasks;
    cfg.start_method = method;
    exec_t *ex = NULL;
    int r = exec_create(&ex, &cfg);
    if (r) {
        fail("exec_create", r);
        return NULL;
    }
    return ex;
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int noop(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n, (void)out, (void)cap, (void)osz;
    return 0;
}

static int axb(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    int64_t x;
    (void)n, (void)cap, (void)osz;
    memcpy(&x, arg, sizeof x);
    x = 2 * x + 1;
    memcpy(out, &x, sizeof x);
    return 0;
}

struct prime_part {
    uint64_t lo, hi, k, parts;
};

static int primes(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    struct prime_part p;
    (void)n, (void)cap;
    memcpy(&p, arg, sizeof p);
    uint64_t c = bench_count_primes(p.lo, p.hi, p.k, p.parts, 1024);
    memcpy(out, &c, sizeof c);
    *osz = sizeof c;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* 1. submit and wait                                                                        */
/* ---------------------------------------------------------------------------------------- */

static double bench_submit(exec_t *ex, uint32_t n)
{
    static exec_future_t *fs[WINDOW];
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < n; i += WINDOW) {
        uint32_t k = n - i < WINDOW ? n - i : WINDOW;
        for (uint32_t j = 0; j < k; j++) {
            int r = exec_submit(ex, noop, NULL, 0, &fs[j]);
            if (r) {
                fail("exec_submit", r);
                return 0;
            }
        }
        for (uint32_t j = 0; j < k; j++) {
            exec_future_wait(fs[j], EXEC_WAIT_FOREVER);
            if (exec_future_result(fs[j], NULL, NULL) != EXEC_OK)
                failed = true;
            exec_future_release(fs[j]);
        }
    }
    return (double)n / ((double)(bench_now_ns() - t0) / 1e9);
}

/* ---------------------------------------------------------------------------------------- */
/* 2. map                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static double bench_map(exec_t *ex, uint64_t n, int64_t *in, int64_t *out)
{
    uint64_t t0 = bench_now_ns();
    int r = exec_map(ex, axb, in, sizeof *in, out, sizeof *out, n, NULL);
    double dt = (double)(bench_now_ns() - t0) / 1e9;
    if (r)
        fail("exec_map", r);
    for (uint64_t i = 0; i < n; i++)
        if (out[i] != 2 * in[i] + 1) {
            fprintf(stderr, "bench_process: map item %llu wrong\n", (unsigned long long)i);
            failed = true;
            break;
        }
    return (double)n / dt;
}

/* ---------------------------------------------------------------------------------------- */
/* 3. round trip against a two-process futex ping-pong                                       */
/* ---------------------------------------------------------------------------------------- */

struct pingpong {
    _Atomic uint32_t ping, pong;
};

static void sfutex_wait(_Atomic uint32_t *w, uint32_t v)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void sfutex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* The partner process: echoes each round until it sees UINT32_MAX. */
static void pingpong_partner(struct pingpong *pp)
{
    for (uint32_t r = 1;; r++) {
        uint32_t v;
        while ((v = atomic_load_explicit(&pp->ping, memory_order_acquire)) != r &&
               v != UINT32_MAX)
            sfutex_wait(&pp->ping, r - 1);
        if (v == UINT32_MAX)
            _exit(0);
        atomic_store_explicit(&pp->pong, r, memory_order_release);
        sfutex_wake(&pp->pong);
    }
}

static void bench_rt(exec_t *ex, uint32_t n, double *med, double *p99, double *fmed,
                     double *fp99)
{
    struct pingpong *pp = mmap(NULL, sizeof *pp, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (pp == MAP_FAILED || !a || !b) {
        failed = true;
        return;
    }
    pid_t child = fork();
    if (child == 0)
        pingpong_partner(pp);
    uint32_t round = 0;
    for (uint32_t i = 0; i < n; i += RT_BLOCK) {
        uint32_t k = n - i < RT_BLOCK ? n - i : RT_BLOCK;
        for (uint32_t j = 0; j < k; j++) {
            round++;
            uint64_t t0 = bench_now_ns();
            atomic_store_explicit(&pp->ping, round, memory_order_release);
            sfutex_wake(&pp->ping);
            while (atomic_load_explicit(&pp->pong, memory_order_acquire) != round)
                sfutex_wait(&pp->pong, round - 1);
            b[i + j] = bench_now_ns() - t0;
        }
        for (uint32_t j = 0; j < k; j++) {
            exec_future_t *f;
            uint64_t t0 = bench_now_ns();
            exec_submit(ex, noop, NULL, 0, &f);
            exec_future_wait(f, EXEC_WAIT_FOREVER);
            a[i + j] = bench_now_ns() - t0;
            exec_future_release(f);
        }
    }
    atomic_store(&pp->ping, UINT32_MAX);
    sfutex_wake(&pp->ping);
    waitpid(child, NULL, 0);
    *med = (double)bench_percentile_u64(a, n, 50);
    *p99 = (double)bench_percentile_u64(a, n, 99);
    *fmed = (double)bench_percentile_u64(b, n, 50);
    *fp99 = (double)bench_percentile_u64(b, n, 99);
    free(a);
    free(b);
    munmap(pp, sizeof *pp);
}

/* ---------------------------------------------------------------------------------------- */
/* 4. a fresh worker per task                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Milliseconds per task with a worker recycled after every task, tasks kept 2 * WORKERS
 * deep (each worker always has its next task waiting). */
static double bench_recycle(exec_t *ex, uint32_t n)
{
    enum { DEEP = 2 * WORKERS };
    exec_future_t *fs[DEEP] = {0};
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < n + DEEP; i++) {
        uint32_t s = i % DEEP;
        if (fs[s]) {
            exec_future_wait(fs[s], EXEC_WAIT_FOREVER);
            if (exec_future_result(fs[s], NULL, NULL) != EXEC_OK)
                failed = true;
            exec_future_release(fs[s]);
            fs[s] = NULL;
        }
        if (i < n && exec_submit(ex, noop, NULL, 0, &fs[s]) != EXEC_OK)
            failed = true;
    }
    return (double)(bench_now_ns() - t0) / 1e6 / n;
}

/* fork() + waitpid() of a child that exits at once, from this process (ms). */
static double bench_raw_fork(uint32_t n)
{
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0)
            _exit(0);
        waitpid(p, NULL, 0);
    }
    return (double)(bench_now_ns() - t0) / 1e6 / n;
}

/* ---------------------------------------------------------------------------------------- */
/* 5. primes                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static double bench_primes(exec_t *ex, uint64_t hi, uint64_t *count)
{
    exec_future_t *fs[WORKERS];
    uint64_t t0 = bench_now_ns();
    for (uint64_t k = 0; k < WORKERS; k++) {
        struct prime_part p = {0, hi, k, WORKERS};
        exec_submit(ex, primes, &p, sizeof p, &fs[k]);
    }
    *count = 0;
    for (int k = 0; k < WORKERS; k++) {
        const void *d;
        exec_future_wait(fs[k], EXEC_WAIT_FOREVER);
        if (exec_future_result(fs[k], &d, NULL) == EXEC_OK)
            *count += *(const uint64_t *)d;
        else
            failed = true;
        exec_future_release(fs[k]);
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------- */

static bool want(const char *only, int n)
{
    if (!only)
        return true;
    char c = (char)('0' + n);
    return strchr(only, c) != NULL;
}

int main(int argc, char **argv)
{
    const struct sizes *sz = &full;
    int runs = 3;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            sz = &quick;
            runs = 1;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1 || runs > MAX_RUNS)
                runs = 3;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_process [--quick] [--runs N] [--only LIST]\n");
            return 2;
        }
    }
    char b1[64], b2[64], b3[64];
    printf("libexecutor process backend, %d workers (forkserver unless said), %d run%s\n\n",
           WORKERS, runs, runs > 1 ? "s (median)" : "");

    exec_t *ex = make(0, EXEC_START_FORKSERVER);
    if (!ex)
        return 1;

    if (want(only, 1)) {
        double v[MAX_RUNS];
        for (int r = 0; r < runs; r++)
            v[r] = bench_submit(ex, sz->tasks);
        double m = bench_median(v, (size_t)runs);
        printf("1. submit + wait, %u no-op tasks (windows of %d)\n", sz->tasks, WINDOW);
        printf("   tasks/s              %-14s target >= 1 M/s   %s\n",
               bench_fmt_rate(b1, sizeof b1, m), verdict(m >= TARGET_TASKS));
        printf("   time per task        %.0f ns\n\n", 1e9 / m);
    }

    if (want(only, 2)) {
        int64_t *in = malloc(sz->items * sizeof *in), *out = malloc(sz->items * sizeof *out);
        if (!in || !out)
            return 1;
        for (uint64_t i = 0; i < sz->items; i++)
            in[i] = (int64_t)i;
        double v[MAX_RUNS], s[MAX_RUNS];
        for (int r = 0; r < runs; r++) {
            v[r] = bench_map(ex, sz->items, in, out);
            uint64_t t0 = bench_now_ns();
            for (uint64_t i = 0; i < sz->items; i++) {
                size_t o = 8;
                axb(&in[i], 8, &out[i], 8, &o);
            }
            s[r] = (double)sz->items / ((double)(bench_now_ns() - t0) / 1e9);
        }
        double m = bench_median(v, (size_t)runs), ser = bench_median(s, (size_t)runs);
        printf("2. exec_map of %llu tiny items (y = 2x + 1 on int64)\n",
               (unsigned long long)sz->items);
        printf("   items/s              %-14s target >= 20 M/s  %s\n",
               bench_fmt_rate(b1, sizeof b1, m), verdict(m >= TARGET_ITEMS));
        printf("   serial loop          %s\n\n", bench_fmt_rate(b1, sizeof b1, ser));
        free(in);
        free(out);
    }

    if (want(only, 3)) {
        double med = 0, p99 = 0, fmed = 0, fp99 = 0;
        bench_rt(ex, sz->rt, &med, &p99, &fmed, &fp99);
        printf("3. round trip: submit one no-op and wait, %u times, in blocks of %d\n"
               "   interleaved with a two-process futex ping-pong (shared memory)\n",
               sz->rt, RT_BLOCK);
        printf("   median               %-12s floor %-12s ratio %.2fx  target <= 1.5x  %s\n",
               bench_fmt_us(b1, sizeof b1, med), bench_fmt_us(b2, sizeof b2, fmed),
               med / fmed, verdict(med <= TARGET_RT_RATIO * fmed));
        printf("   p99                  %-12s floor %s\n\n", bench_fmt_us(b1, sizeof b1, p99),
               bench_fmt_us(b3, sizeof b3, fp99));
    }
    exec_destroy(ex);

    if (want(only, 4)) {
        printf("4. max_tasks_per_child = 1: a fresh worker for each of %u tasks\n", sz->recycle);
        ex = make(1, EXEC_START_FORKSERVER);
        exec_t *exf = make(1, EXEC_START_FORK);
        if (!ex || !exf)
            return 1;
        double small = bench_recycle(ex, sz->recycle);
        double small_fork = bench_recycle(exf, sz->recycle_fork);
        double raw_small = bench_raw_fork(sz->recycle_fork);
        /* Now grow this process by sz->big bytes, all resident, in 4 KiB pages (with
         * transparent huge pages a fork copies 512x fewer page-table entries and the
         * parent's size hardly shows: this is the worst case). */
        char *big = mmap(NULL, sz->big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        if (big == MAP_FAILED)
            return 1;
#ifdef MADV_NOHUGEPAGE
        madvise(big, sz->big, MADV_NOHUGEPAGE);
#endif
        memset(big, 1, sz->big);
        double large = bench_recycle(ex, sz->recycle);
        double large_fork = bench_recycle(exf, sz->recycle_fork);
        double raw_large = bench_raw_fork(sz->recycle_fork);
        munmap(big, sz->big);
        exec_destroy(ex);
        exec_destroy(exf);
        printf("   forkserver, small parent     %.3f ms/task   target <= 0.5 ms  %s\n", small,
               verdict(small <= TARGET_RECYCLE_MS));
        printf("   forkserver, parent +%zu MiB  %.3f ms/task   target <= 0.5 ms  %s\n",
               sz->big >> 20, large, verdict(large <= TARGET_RECYCLE_MS));
        printf("   fork method, small parent    %.3f ms/task   (reference)\n", small_fork);
        printf("   fork method, parent +%zu MiB %.3f ms/task   (reference: pays the size)\n",
               sz->big >> 20, large_fork);
        printf("   fork()+waitpid(), small      %.3f ms;  parent +%zu MiB  %.3f ms\n\n",
               raw_small, sz->big >> 20, raw_large);
    }

    if (want(only, 5)) {
        ex = make(0, EXEC_START_FORKSERVER);
        if (!ex)
            return 1;
        double ser[MAX_RUNS], par[MAX_RUNS];
        uint64_t want_count = 0, got = 0;
        for (int r = 0; r < runs; r++) {
            uint64_t t0 = bench_now_ns();
            want_count = bench_count_primes(0, sz->primes_hi, 0, 1, 1024);
            ser[r] = (double)(bench_now_ns() - t0) / 1e9;
            par[r] = bench_primes(ex, sz->primes_hi, &got);
            if (got != want_count)
                failed = true;
        }
        exec_destroy(ex);
        double s = bench_median(ser, (size_t)runs), p = bench_median(par, (size_t)runs);
        printf("5. count the primes below %llu (%llu) on %d worker processes\n",
               (unsigned long long)sz->primes_hi, (unsigned long long)want_count, WORKERS);
        printf("   speedup              %.2fx (%.2f s vs %.2f s serial)  target >= 1.9x  %s\n\n",
               s / p, p, s, verdict(s / p >= TARGET_SPEEDUP));
    }
    if (failed)
        fprintf(stderr, "bench_process: errors or wrong results\n");
    return failed ? 1 : 0;
}
