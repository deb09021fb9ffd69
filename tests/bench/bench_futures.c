/* SPDX-License-Identifier: MIT */
/*
 * bench_futures.c - futures at scale (issue 11), every figure next to its references measured
 * in the same run:
 *
 *   1. N no-op tasks (each returns 8 bytes) on 2 workers, N = 1,000,000 and 10,000,000, in two
 *      shapes: "all outstanding" (submit all N, then wait for each in order, then release
 *      each) and "windows" (submit 4,096, wait for and release them, repeat). Beside the
 *      thread and process backends: libuv's uv_queue_work() (the caller preallocates the
 *      requests; no result) and GLib's GThreadPool, both with 2 threads doing the same no-op
 *      work, when their development packages were found at build time. Printed: tasks/s,
 *      the ratios to libuv, and the memory per outstanding future (growth of the resident
 *      set while all N are outstanding, / N), and the resident growth left after release;
 *   2. big arguments (64 KiB .. 4 MiB) in windows of 256 futures on 2 workers: the bytes per
 *      second each backend moves into its tasks, and the ratio processes / threads.
 *
 * Ratios inside one run are the result; absolute figures move by 20-40% between runs on a
 * shared 2-core machine. Usage: bench_futures [--quick] [--runs N] [--only LIST]
 *   --quick   N = 100,000 and 1,000,000, smaller argument totals (a smoke run)
 *   --runs N  median of N runs for the 1 M shapes (default 3; 10 M runs once)
 *   --only L  e.g. --only 2
 * Exit status: 0 when everything ran and every result was right (targets are reported, not
 * asserted); 1 on an error.
 */
#include "bench_common.h"

#include <executor.h>

#ifdef BENCH_HAVE_UV
#include <uv.h>
#endif
#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif

#define WORKERS 2
#define WINDOW 4096
#define BIG_WINDOW 256
#define MAX_RUNS 16

/* Targets of issue 11. */
#define TARGET_THREADS_VS_UV 1.5
#define TARGET_PROCESSES_VS_UV 1.0
#define TARGET_WINDOWS 15e6
#define TARGET_BYTES_PER_FUTURE 128.0
#define TARGET_BIG_RATIO 0.5

static int failures;

#define FAIL(...)                                                                         \
    do {                                                                                  \
        fprintf(stderr, "bench_futures: " __VA_ARGS__);                                   \
        fprintf(stderr, "\n");                                                            \
        failures++;                                                                       \
    } while (0)

/* Resident bytes of this process. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* What one measurement of one shape gives. */
struct shot {
    double per_s;
    double bytes_each; /* resident growth at the peak / N (all outstanding only) */
    double left_each;  /* resident growth still there after everything was released / N */
    double cpu_each;   /* CPU time of this process / N, ns (a figure less bent by load) */
};

/* CPU seconds of this process, every thread. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------------------------------- */
/* libexecutor                                                                               */
/* ---------------------------------------------------------------------------------------- */

static int noop8(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    (void)out_cap;
    uint64_t v = 42;
    memcpy(out, &v, sizeof v);
    *out_size = sizeof v;
    return 0;
}

static bool check_one(exec_future_t *f)
{
    const void *data = NULL;
    size_t size = 0;
    int r = exec_future_result(f, &data, &size);
    uint64_t v = 0;
    if (r == EXEC_OK && size == sizeof v)
        memcpy(&v, data, sizeof v);
    if (r != EXEC_OK || v != 42) {
        FAIL("no-op task: %s, %zu bytes", exec_errname(r), size);
        return false;
    }
    return true;
}

static exec_future_t **futs; /* N pointers, touched before any measurement */

static struct shot run_exec(exec_t *ex, uint32_t n, bool all)
{
    struct shot s = {0, 0, 0, 0};
    size_t rss0 = rss_bytes(), peak = 0;
    uint32_t win = all ? n : WINDOW;
    double c0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (uint32_t done = 0; done < n;) {
        uint32_t w = n - done < win ? n - done : win;
        for (uint32_t i = 0; i < w; i++) {
            int r = exec_submit(ex, noop8, NULL, 0, &futs[i]);
            if (r) {
                FAIL("exec_submit: %s", exec_errname(r));
                for (uint32_t j = 0; j < i; j++) {
                    exec_future_wait(futs[j], EXEC_WAIT_FOREVER);
                    exec_future_release(futs[j]);
                }
                return s;
            }
        }
        if (all)
            peak = rss_bytes();
        bool ok = true;
        for (uint32_t i = 0; i < w; i++) {
            exec_future_wait(futs[i], EXEC_WAIT_FOREVER);
            if (ok)
                ok = check_one(futs[i]);
            exec_future_release(futs[i]);
        }
        done += w;
    }
    s.per_s = n / ((double)(bench_now_ns() - t0) / 1e9);
    s.cpu_each = (self_cpu_s() - c0) * 1e9 / n;
    if (all) {
        s.bytes_each = peak > rss0 ? (double)(peak - rss0) / n : 0;
        size_t after = rss_bytes();
        s.left_each = after > rss0 ? (double)(after - rss0) / n : 0;
    }
    return s;
}

static exec_t *open_exec(exec_backend_t kind, size_t max_arg)
{
    exec_config_t cfg = {0};
    cfg.backend = kind;
    cfg.workers = WORKERS;
    cfg.max_arg_size = max_arg;
    exec_t *ex = NULL;
    int r = exec_create(&ex, &cfg);
    if (r) {
        fprintf(stderr, "bench_futures: exec_create(%s): %s\n",
                kind == EXEC_BACKEND_THREADS ? "threads" : "processes", exec_strerror(r));
        return NULL;
    }
    return ex;
}

/* ---------------------------------------------------------------------------------------- */
/* libuv                                                                                     */
/* ---------------------------------------------------------------------------------------- */

#ifdef BENCH_HAVE_UV
struct uv_job {
    uv_work_t req;
    uint64_t result;
};
static uint64_t uv_after_count;

static void uv_noop(uv_work_t *req)
{
    ((struct uv_job *)req)->result = 42;
}

static void uv_after(uv_work_t *req, int status)
{
    if (status != 0 || ((struct uv_job *)req)->result != 42)
        FAIL("uv work: status %d", status);
    uv_after_count++;
}

/* The caller preallocates the requests (libuv's way; it has no future to allocate). */
static struct shot run_uv(uint32_t n, bool all)
{
    struct shot s = {0, 0, 0, 0};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        FAIL("uv_loop_init");
        return s;
    }
    size_t rss0 = rss_bytes();
    uint32_t win = all ? n : WINDOW;
    struct uv_job *jobs = malloc((size_t)win * sizeof *jobs);
    if (!jobs) {
        FAIL("out of memory for %u uv requests", win);
        uv_loop_close(&loop);
        return s;
    }
    uv_after_count = 0;
    double c0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    size_t peak = 0;
    for (uint32_t done = 0; done < n;) {
        uint32_t w = n - done < win ? n - done : win;
        for (uint32_t i = 0; i < w; i++)
            if (uv_queue_work(&loop, &jobs[i].req, uv_noop, uv_after) != 0) {
                FAIL("uv_queue_work");
                break;
            }
        if (all)
            peak = rss_bytes();
        uv_run(&loop, UV_RUN_DEFAULT);
        done += w;
    }
    s.per_s = n / ((double)(bench_now_ns() - t0) / 1e9);
    s.cpu_each = (self_cpu_s() - c0) * 1e9 / n;
    if (uv_after_count != n)
        FAIL("uv: %llu callbacks for %u requests", (unsigned long long)uv_after_count, n);
    if (all)
        s.bytes_each = peak > rss0 ? (double)(peak - rss0) / n : 0;
    free(jobs);
    s.left_each = 0;
    uv_loop_close(&loop);
    return s;
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* GLib                                                                                      */
/* ---------------------------------------------------------------------------------------- */

#ifdef BENCH_HAVE_GLIB
static _Atomic uint32_t g_done; /* tasks finished; the caller sleeps on it */
static uint32_t g_target;

static void g_noop(gpointer data, gpointer user)
{
    (void)user;
    volatile uint64_t result = (uint64_t)(uintptr_t)data; /* the same no-op work */
    (void)result;
    uint32_t d = atomic_fetch_add(&g_done, 1) + 1;
    if (d == __atomic_load_n(&g_target, __ATOMIC_ACQUIRE))
        bench_futex_wake(&g_done);
}

static void g_wait_for(uint32_t target)
{
    for (;;) {
        uint32_t d = atomic_load(&g_done);
        if (d >= target)
            return;
        bench_futex_wait(&g_done, d);
    }
}

static struct shot run_glib(uint32_t n, bool all)
{
    struct shot s = {0, 0, 0, 0};
    GThreadPool *pool = g_thread_pool_new(g_noop, NULL, WORKERS, TRUE, NULL);
    if (!pool) {
        FAIL("g_thread_pool_new");
        return s;
    }
    atomic_store(&g_done, 0);
    size_t rss0 = rss_bytes(), peak = 0;
    uint32_t win = all ? n : WINDOW;
    double c0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (uint32_t done = 0; done < n;) {
        uint32_t w = n - done < win ? n - done : win;
        __atomic_store_n(&g_target, done + w, __ATOMIC_RELEASE);
        for (uint32_t i = 0; i < w; i++)
            g_thread_pool_push(pool, (gpointer)(uintptr_t)(done + i + 1), NULL);
        if (all)
            peak = rss_bytes();
        g_wait_for(done + w);
        done += w;
    }
    s.per_s = n / ((double)(bench_now_ns() - t0) / 1e9);
    s.cpu_each = (self_cpu_s() - c0) * 1e9 / n;
    if (all)
        s.bytes_each = peak > rss0 ? (double)(peak - rss0) / n : 0;
    g_thread_pool_free(pool, FALSE, TRUE);
    return s;
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* 1. Shapes                                                                                 */
/* ---------------------------------------------------------------------------------------- */

enum { C_THREADS, C_PROCESSES, C_UV, C_GLIB, NCOLS };
static const char *const col_name[NCOLS] = {"threads", "processes", "libuv", "GLib"};

struct shape_result {
    struct shot shot[NCOLS];
    bool have[NCOLS];
};

static double median_of(double *v, int n)
{
    return bench_median(v, (size_t)n);
}

/* One shape at one N: the columns go round, @runs times, and each column's median. */
static void measure_shape(exec_t *thr, exec_t *proc, uint32_t n, bool all, int runs,
                          struct shape_result *out)
{
    double per_s[NCOLS][MAX_RUNS], bytes[NCOLS][MAX_RUNS], left[NCOLS][MAX_RUNS];
    double cpu[NCOLS][MAX_RUNS];
    memset(out, 0, sizeof *out);
    for (int r = 0; r < runs; r++) {
        for (int c = 0; c < NCOLS; c++) {
            struct shot s = {0, 0, 0, 0};
            bool have = false;
            int before = failures;
            if (c == C_THREADS && thr) {
                s = run_exec(thr, n, all);
                have = true;
            } else if (c == C_PROCESSES && proc) {
                s = run_exec(proc, n, all);
                have = true;
            }
#ifdef BENCH_HAVE_UV
            if (c == C_UV) {
                s = run_uv(n, all);
                have = true;
            }
#endif
#ifdef BENCH_HAVE_GLIB
            if (c == C_GLIB) {
                s = run_glib(n, all);
                have = true;
            }
#endif
            out->have[c] = have && failures == before;
            per_s[c][r] = s.per_s;
            bytes[c][r] = s.bytes_each;
            left[c][r] = s.left_each;
            cpu[c][r] = s.cpu_each;
        }
    }
    for (int c = 0; c < NCOLS; c++) {
        out->shot[c].per_s = median_of(per_s[c], runs);
        out->shot[c].bytes_each = median_of(bytes[c], runs);
        out->shot[c].left_each = median_of(left[c], runs);
        out->shot[c].cpu_each = median_of(cpu[c], runs);
    }
}

static const char *pass(bool ok)
{
    return ok ? "PASS" : "MISS";
}

static void print_shape(const char *label, uint32_t n, bool all, const struct shape_result *r)
{
    char b[NCOLS][32], num[32];
    for (int c = 0; c < NCOLS; c++) {
        if (r->have[c])
            bench_fmt_rate(b[c], sizeof b[c], r->shot[c].per_s);
        else
            snprintf(b[c], sizeof b[c], "-");
    }
    printf("  %-26s %11s %11s %11s %11s", label, b[C_THREADS], b[C_PROCESSES], b[C_UV],
           b[C_GLIB]);
    double uv = r->have[C_UV] ? r->shot[C_UV].per_s : 0;
    if (uv > 0) {
        double rt = r->shot[C_THREADS].per_s / uv, rp = r->shot[C_PROCESSES].per_s / uv;
        printf("   thr/uv %.2fx", rt);
        if (r->have[C_PROCESSES])
            printf("  proc/uv %.2fx", rp);
        if (all)
            printf("  [%s %s]", pass(rt >= TARGET_THREADS_VS_UV),
                   r->have[C_PROCESSES] ? pass(rp >= TARGET_PROCESSES_VS_UV) : "-");
    }
    if (!all)
        printf("   [%s: threads >= %s]", pass(r->shot[C_THREADS].per_s >= TARGET_WINDOWS),
               bench_fmt_rate(num, sizeof num, TARGET_WINDOWS));
    printf("\n");
    printf("  %-26s", "  CPU ns per task (here)");
    for (int c = 0; c < NCOLS; c++) {
        if (r->have[c])
            printf(" %11.0f", r->shot[c].cpu_each);
        else
            printf(" %11s", "-");
    }
    printf("   (worker processes not counted)\n");
    if (all) {
        printf("  %-26s", "  bytes per outstanding");
        for (int c = 0; c < NCOLS; c++) {
            if (r->have[c])
                printf(" %11.1f", r->shot[c].bytes_each);
            else
                printf(" %11s", "-");
        }
        printf("   [%s: <= %.0f B, threads and processes]\n",
               pass(r->shot[C_THREADS].bytes_each <= TARGET_BYTES_PER_FUTURE &&
                    (!r->have[C_PROCESSES] ||
                     r->shot[C_PROCESSES].bytes_each <= TARGET_BYTES_PER_FUTURE)),
               TARGET_BYTES_PER_FUTURE);
        printf("  %-26s %11.1f %11.1f\n", "  bytes left after release",
               r->shot[C_THREADS].left_each, r->shot[C_PROCESSES].left_each);
    }
    (void)n;
    fflush(stdout);
}

static void bench_shapes(uint32_t n1, uint32_t n2, int runs, bool threads_only)
{
    futs = malloc((size_t)n2 * sizeof *futs);
    if (!futs) {
        FAIL("out of memory for %u future pointers", n2);
        return;
    }
    /* Resident before any measurement (a memset of zeros could be folded into a calloc
     * that touches nothing). */
    for (size_t i = 0; i < (size_t)n2; i++)
        ((volatile uintptr_t *)futs)[i] = 1;
    exec_t *thr = open_exec(EXEC_BACKEND_THREADS, 0);
    exec_t *proc = threads_only ? NULL : open_exec(EXEC_BACKEND_PROCESSES, 0);
    if (!thr)
        failures++;

    printf("\n1. no-op tasks returning 8 bytes, %d workers, tasks/s (median of %d runs at "
           "%u, 1 run at %u)\n",
           WORKERS, runs, n1, n2);
    printf("   all outstanding: submit N, wait for each in order, release each; windows: "
           "of %d futures\n",
           WINDOW);
    printf("  %-26s %11s %11s %11s %11s\n", "shape", col_name[0], col_name[1], col_name[2],
           col_name[3]);
#ifndef BENCH_HAVE_UV
    printf("  (no libuv column: install libuv's development package (libuv1-dev) and "
           "rebuild)\n");
#endif
#ifndef BENCH_HAVE_GLIB
    printf("  (no GLib column: install GLib's development package (libglib2.0-dev) and "
           "rebuild)\n");
#endif
    const uint32_t ns[2] = {n1, n2};
    for (int k = 0; k < 2; k++) {
        char label[64];
        struct shape_result r;
        int rr = k == 0 ? runs : 1;
        snprintf(label, sizeof label, "%u all outstanding", ns[k]);
        measure_shape(thr, proc, ns[k], true, rr, &r);
        print_shape(label, ns[k], true, &r);
        snprintf(label, sizeof label, "%u windows of %d", ns[k], WINDOW);
        measure_shape(thr, proc, ns[k], false, rr, &r);
        print_shape(label, ns[k], false, &r);
    }
    uint64_t t0 = bench_now_ns();
    exec_destroy(thr);
    double dt = (double)(bench_now_ns() - t0) / 1e6;
    t0 = bench_now_ns();
    exec_destroy(proc);
    printf("  exec_destroy after %u released futures: threads %.2f ms, processes %.2f ms\n",
           n2, dt, (double)(bench_now_ns() - t0) / 1e6);
    free(futs);
    futs = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* 2. Big arguments                                                                          */
/* ---------------------------------------------------------------------------------------- */

static int sum_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                    size_t *out_size)
{
    (void)out_cap;
    const unsigned char *p = arg;
    uint64_t v = 0;
    for (size_t i = 0; i < arg_size; i += 4096) /* touch every page, like a reader would */
        v += p[i];
    v += p[arg_size - 1];
    memcpy(out, &v, sizeof v);
    *out_size = sizeof v;
    return 0;
}

static double run_big(exec_t *ex, const unsigned char *buf, size_t size, size_t total)
{
    exec_future_t *fs[BIG_WINDOW];
    size_t n = total / size;
    if (n < BIG_WINDOW)
        n = BIG_WINDOW;
    uint64_t expect = 0;
    for (size_t i = 0; i < size; i += 4096)
        expect += buf[i];
    expect += buf[size - 1];
    uint64_t t0 = bench_now_ns();
    for (size_t done = 0; done < n;) {
        size_t w = n - done < BIG_WINDOW ? n - done : BIG_WINDOW;
        for (size_t i = 0; i < w; i++) {
            int r = exec_submit(ex, sum_task, buf, size, &fs[i]);
            if (r) {
                FAIL("exec_submit(%zu bytes): %s", size, exec_errname(r));
                for (size_t j = 0; j < i; j++) {
                    exec_future_wait(fs[j], EXEC_WAIT_FOREVER);
                    exec_future_release(fs[j]);
                }
                return 0;
            }
        }
        for (size_t i = 0; i < w; i++) {
            exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
            const void *d = NULL;
            size_t sz = 0;
            uint64_t v = 0;
            int r = exec_future_result(fs[i], &d, &sz);
            if (r == EXEC_OK && sz == sizeof v)
                memcpy(&v, d, sizeof v);
            if (r != EXEC_OK || v != expect)
                FAIL("big argument task: %s", exec_errname(r));
            exec_future_release(fs[i]);
        }
        done += w;
    }
    return (double)(n * size) / ((double)(bench_now_ns() - t0) / 1e9);
}

static double minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_minflt;
}

static void bench_big(size_t total, int runs, bool threads_only)
{
    static const size_t sizes[] = {64 << 10, 256 << 10, 1 << 20, 4 << 20};
    const size_t max = 4 << 20;
    unsigned char *buf = malloc(max);
    if (!buf) {
        FAIL("out of memory");
        return;
    }
    for (size_t i = 0; i < max; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    exec_t *thr = open_exec(EXEC_BACKEND_THREADS, max);
    exec_t *proc = threads_only ? NULL : open_exec(EXEC_BACKEND_PROCESSES, max);
    printf("\n2. big arguments, windows of %d futures, %d workers: GB/s moved into tasks "
           "(median of %d), %zu MiB per point\n",
           BIG_WINDOW, WORKERS, runs, total >> 20);
    printf("  %-12s %10s %10s %10s %27s\n", "arg size", "threads", "processes", "proc/thr",
           "faults/task: thr  proc");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        double t[MAX_RUNS], p[MAX_RUNS], flt[MAX_RUNS], tflt[MAX_RUNS];
        size_t n = total / sizes[k] < BIG_WINDOW ? BIG_WINDOW : total / sizes[k];
        for (int r = 0; r < runs; r++) {
            double f0 = minflt();
            t[r] = thr ? run_big(thr, buf, sizes[k], total) : 0;
            tflt[r] = (minflt() - f0) / (double)n;
            (void)run_big(proc ? proc : thr, buf, sizes[k], sizes[k] * BIG_WINDOW); /* warm */
            f0 = minflt();
            p[r] = proc ? run_big(proc, buf, sizes[k], total) : 0;
            flt[r] = (minflt() - f0) / (double)n;
        }
        double tm = bench_median(t, (size_t)runs), pm = bench_median(p, (size_t)runs);
        char sz[32];
        snprintf(sz, sizeof sz, "%zu KiB", sizes[k] >> 10);
        printf("  %-12s %10.2f %10.2f %9.2fx %21.1f %5.1f   [%s: >= %.1fx]\n", sz, tm / 1e9,
               pm / 1e9, tm > 0 ? pm / tm : 0, bench_median(tflt, (size_t)runs),
               bench_median(flt, (size_t)runs),
               pass(tm > 0 && pm / tm >= TARGET_BIG_RATIO), TARGET_BIG_RATIO);
        fflush(stdout);
    }
    exec_destroy(thr);
    exec_destroy(proc);
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_futures [--quick] [--runs N] [--only LIST] [--threads-only]\n");
}

int main(int argc, char **argv)
{
    uint32_t n1 = 1000000, n2 = 10000000;
    size_t big_total = (size_t)1 << 30;
    int runs = 3;
    unsigned only = 2 | 4;
    bool threads_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            n1 = 100000;
            n2 = 1000000;
            big_total = (size_t)128 << 20;
            runs = 1;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1 || runs > MAX_RUNS) {
                fprintf(stderr, "bench_futures: --runs takes 1..%d\n", MAX_RUNS);
                return 2;
            }
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = 0;
            for (const char *p = argv[++i]; *p; p++)
                if (*p == '1' || *p == '2')
                    only |= 1u << (*p - '0');
        } else if (!strcmp(argv[i], "--threads-only")) {
            threads_only = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
#ifdef BENCH_HAVE_UV
    setenv("UV_THREADPOOL_SIZE", "2", 1); /* read by libuv when its pool starts */
#endif
    printf("libexecutor %s, futures at scale: %d workers, libuv %s, GLib %s.\n"
           "Figures drift between runs on a shared machine: compare within one run.\n",
           EXEC_VERSION_STRING, WORKERS,
#ifdef BENCH_HAVE_UV
           uv_version_string(),
#else
           "absent",
#endif
#ifdef BENCH_HAVE_GLIB
           "present"
#else
           "absent"
#endif
    );
    if (only & 2)
        bench_shapes(n1, n2, runs, threads_only);
    if (only & 4)
        bench_big(big_total, runs, threads_only);
    if (failures) {
        fprintf(stderr, "bench_futures: %d error%s\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
