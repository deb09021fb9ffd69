/* SPDX-License-Identifier: MIT */
/*
 * bench_trace.c - what a trace costs: submit-and-wait of 1,000,000 no-op tasks in windows of 4,096
 * futures (benchmark 1 of bench_threads.c) on 2 workers, with and without a trace file, on both
 * backends; then the same with tasks that compute for 1 us and for 10 us (a tenth and a hundredth
 * as many), because the cost of a trace is per task: a no-op task is the worst case, and these show
 * how fast it fades. Runs alternate (off, on, on, off, off, on, ...) so that both see the same
 * moments of a noisy machine; the median of each is reported, with the ratio on/off and PASS or
 * MISS against the target of the trace issue (at most 1.3x slower with tracing on). The ratio of
 * the best runs is printed too: on a machine shared with other people's work, the fastest run of
 * each kind is the one least disturbed, and the medians of 5 can be far off (one kind may be slowed
 * by someone else's build and not the other). And the size of the trace.
 *
 * The trace files go to $TMPDIR (or /tmp) and are removed after each run (a million tasks
 * make about 150 MB of JSON).
 *
 * Usage: bench_trace [--quick] [--runs N] [--tasks N] [--threads-only] [--keep PATH]
 *   --quick         100,000 tasks, 3 runs
 *   --runs N        runs of each kind (default 5)
 *   --tasks N       tasks per run (default 1,000,000)
 *   --threads-only  skip the process backend
 *   --keep PATH     also write one traced run of each backend to PATH.<backend>.json
 * Exit status: 0 when every run succeeded (a MISS is reported, not a failure); 1 on errors.
 */
#include "bench_common.h"

#include <executor.h>

#include <sys/stat.h>
#include <time.h>

#define WORKERS 2
#define WINDOW 4096
#define MAX_RUNS 64
#define TARGET_RATIO 1.3

static int errors;

#define FAIL(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "bench_trace: " __VA_ARGS__);                                      \
        fputc('\n', stderr);                                                               \
        errors++;                                                                          \
    } while (0)

static int noop_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    (void)arg;
    (void)arg_size;
    (void)out;
    (void)out_cap;
    (void)out_size;
    return 0;
}

/* Computes for the nanoseconds its argument says (a uint32_t). */
static int spin_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    (void)out;
    (void)out_cap;
    (void)out_size;
    uint32_t ns = 0;
    if (arg_size == sizeof ns)
        memcpy(&ns, arg, sizeof ns);
    uint64_t end = bench_now_ns() + ns;
    while (bench_now_ns() < end)
        ;
    return 0;
}

/* Submit @n no-op tasks in windows of WINDOW futures; tasks/s, or 0 on error. The executor
 * is created and destroyed inside the timing: a trace is written until exec_destroy(). */
static double run_once(exec_backend_t backend, const char *trace, uint32_t n, uint32_t work_ns)
{
    static exec_future_t *fs[WINDOW];
    exec_config_t cfg = {0};
    cfg.backend = backend;
    cfg.workers = WORKERS;
    cfg.trace_path = trace;
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r) {
        FAIL("exec_create: %s", exec_errname(r));
        return 0;
    }
    uint64_t t0 = bench_now_ns();
    for (uint32_t done = 0; done < n;) {
        uint32_t w = n - done < WINDOW ? n - done : WINDOW;
        for (uint32_t i = 0; i < w; i++) {
            r = work_ns ? exec_submit(ex, spin_task, &work_ns, sizeof work_ns, &fs[i])
                        : exec_submit(ex, noop_task, NULL, 0, &fs[i]);
            if (r) {
                FAIL("exec_submit: %s", exec_errname(r));
                w = i;
                n = done; /* stop after this window */
                break;
            }
        }
        for (uint32_t i = 0; i < w; i++) {
            exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
            if ((r = exec_future_result(fs[i], NULL, NULL)) != 0)
                FAIL("task failed: %s", exec_errname(r));
            exec_future_release(fs[i]);
        }
        done += w;
    }
    r = exec_destroy(ex);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (r)
        FAIL("exec_destroy: %s", exec_errname(r));
    return n && !errors ? n / s : 0;
}

/* A pause after removing a trace, for the kernel to free its pages. */
static void settle(void)
{
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv)
{
    uint32_t tasks = 1000000;
    int runs = 5;
    bool threads_only = false;
    const char *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            tasks = 100000;
            runs = 3;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--tasks") && i + 1 < argc) {
            tasks = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--threads-only")) {
            threads_only = true;
        } else if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
            keep = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--runs N] [--tasks N] [--threads-only] "
                            "[--keep PATH]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || tasks < 1) {
        fprintf(stderr, "bench_trace: --runs 1..%d, --tasks >= 1\n", MAX_RUNS);
        return 2;
    }
    /* EXEC_TRACE would trace the untraced runs too. */
    unsetenv("EXEC_TRACE");
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_trace.%d.json", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());

    printf("trace cost: submit+wait of %u no-op tasks (and of tasks of 1 us, 10 us: a tenth, a "
           "hundredth as many), windows of %d futures, %d workers, median of %d runs\n",
           tasks, WINDOW, WORKERS, runs);
    static const int widths[] = {10, 8, 14, 14, 8, 6, 18, 12};
    static const char *const head[] = {"backend", "task", "untraced", "traced", "ratio", "",
                                       "best: ratio", "trace file"};
    bench_row(widths, 8, head);
    bool miss = false;
    static const uint32_t work[] = {0, 1000, 10000};
    for (int row = 0; row < 6 && !errors; row++) {
        int b = row / 3;
        uint32_t w = work[row % 3], n = w ? tasks / (w / 100) : tasks;
        exec_backend_t backend = b ? EXEC_BACKEND_PROCESSES : EXEC_BACKEND_THREADS;
        if (b && threads_only)
            break;
        if (n < WINDOW)
            n = WINDOW;
        double off[MAX_RUNS], on[MAX_RUNS];
        long long bytes = 0;
        (void)run_once(backend, NULL, n / 10, w); /* warm up */
        for (int k = 0; k < runs && !errors; k++) {
            /* Which goes first alternates: a run right after a traced one may share the
             * machine with the kernel still freeing that trace's pages. */
            for (int j = 0; j < 2; j++) {
                if ((j ^ k) & 1) {
                    on[k] = run_once(backend, path, n, w);
                    bytes = file_size(path);
                    unlink(path);
                    settle();
                } else {
                    off[k] = run_once(backend, NULL, n, w);
                }
            }
        }
        if (errors)
            break;
        if (keep && !w) {
            char kp[4200];
            snprintf(kp, sizeof kp, "%s.%s.json", keep, b ? "processes" : "threads");
            unlink(kp);
            (void)run_once(backend, kp, n, 0);
        }
        double moff = bench_median(off, (size_t)runs), mon = bench_median(on, (size_t)runs);
        double ratio = mon > 0 ? moff / mon : 0;
        /* bench_median() sorted them: the best runs are the last. */
        double best = on[runs - 1] > 0 ? off[runs - 1] / on[runs - 1] : 0;
        char c0[16], c1[32], c2[32], c3[32], c5[32], c6[48];
        const char *cells[] = {b ? "processes" : "threads",
                             w ? bench_fmt(c0, sizeof c0, "%u us", w / 1000) : "no-op",
                             bench_fmt_rate(c1, sizeof c1, moff),
                             bench_fmt_rate(c2, sizeof c2, mon),
                             bench_fmt(c3, sizeof c3, "%.2fx", ratio),
                             ratio <= TARGET_RATIO ? "PASS" : "MISS",
                             bench_fmt(c6, sizeof c6, "%.2fx (%.2f/%.2f M)", best,
                                       off[runs - 1] / 1e6, on[runs - 1] / 1e6),
                             bench_fmt(c5, sizeof c5, "%.1f MB", (double)bytes / 1e6)};
        bench_row(widths, 8, cells);
        miss |= ratio > TARGET_RATIO;
    }
    printf("target: traced at most %.1fx slower than untraced%s\n", TARGET_RATIO,
           miss ? " (MISS on some rows: the no-op row is the worst case)" : "");
    return errors ? 1 : 0;
}
