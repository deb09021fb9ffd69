/* SPDX-License-Identifier: MIT */
/*
 * bench_threads.c - the four benchmarks of libexecutor, printed as one table with every
 * figure measured side by side in the same run, one column per backend.
 *
 *   1. submit-and-wait of 1,000,000 no-op tasks (each increments an atomic counter) on 2
 *      workers: tasks/s, next to the same increments in a serial loop;
 *   2. exec_map() of 10,000,000 items whose body is one multiply-add: items/s, next to a
 *      serial loop over the same arrays;
 *   3. round trip (submit one no-op, wait for it) 100,000 times: median and p99, next to a
 *      raw futex ping-pong between two threads (the floor of any sleeping hand-off), in
 *      blocks interleaved with the pools' and with the threads pinned two ways: the caller
 *      on one CPU and the partner or workers on another, then everyone on one CPU;
 *   4. counting primes by trial division (about 2 s serially here) split into 2, 8 and 64
 *      tasks: speedup over the serial loop.
 *
 * Each figure is compared with its target from issue 2 (PASS or MISS). The machine the
 * figures in docs/performance.md come from has 2 shared, noisy cores: absolute figures drift
 * by 20-40% between runs, so compare inside one run, and re-run. To help with that, repeated
 * runs go round the columns (serial, threads, processes, serial, ...), medians are reported,
 * and each benchmark says how much CPU other processes took while it ran.
 *
 * The process backend gets its own column. Until it is built, exec_create() returns
 * EXEC_ENOTSUP for it and the column says so; nothing here needs changing the day it lands.
 *
 * Usage: bench_threads [--quick] [--runs N] [--only LIST] [--threads-only]
 *   --quick         a short smoke run (a few seconds): small sizes, one run each
 *   --runs N        repeat benchmarks 1 and 2 N times and report the median (default 3);
 *                   benchmark 4 runs min(N, 3) times; benchmark 3 reports the median and
 *                   p99 of its samples
 *   --only LIST     run only the benchmarks listed, e.g. --only 1,3 (for profiling)
 *   --threads-only  skip the process backend
 * Exit status: 0 when every benchmark ran and its results were right (a MISS is not a
 * failure: speed is reported, not asserted); 1 on any error or wrong result.
 */
#include "bench_common.h"

#include <executor.h>

#include <sched.h>

#define WORKERS 2
#define WINDOW 4096 /* futures in flight at most in benchmark 1 */
#define PRIME_BLOCK 1024 /* numbers per block dealt round-robin to the parts of benchmark 4 */
#define RT_BLOCK 1000   /* round trips per interleaved block in benchmark 3 */
#define MAX_RUNS 64

/* Targets of issue 2. */
#define TARGET_TASKS_PER_S 6e6
#define TARGET_ITEMS_PER_S 100e6
#define TARGET_RT_RATIO 1.5
#define TARGET_SPEEDUP 1.9

enum { B_THREADS, B_PROCESSES, NBACKENDS };

static const int split_parts[] = {2, 8, 64};

/* Placements of benchmark 3: the caller on CPU A, the partner or the workers on CPU B
 * (another CPU), or everyone on CPU A. */
enum { P_CROSS, P_SAME, NPLACES };
#define NSPLITS (sizeof split_parts / sizeof split_parts[0])

/* Sizes; --quick shrinks them. */
struct sizes {
    uint32_t tasks;      /* benchmark 1 */
    size_t items;        /* benchmark 2 */
    uint32_t roundtrips; /* benchmark 3 */
    uint64_t primes_max; /* benchmark 4: count primes below this */
    int runs;            /* repetitions of benchmarks 1 and 2 */
    int primes_runs;     /* repetitions of benchmark 4 */
    unsigned only;       /* bit k set: run benchmark k (1..4) */
};

/* One backend: its executor and what it measured. */
struct backend {
    const char *name;
    bool in_process;                /* its workers are threads of this process */
    exec_t *ex;                     /* NULL when not available */
    char why[64];                   /* why not, for the table */
    int errors;                     /* failures counted while running on it */
    double tasks_per_s;             /* 1 */
    double items_per_s;             /* 2 */
    double rt_median_ns[NPLACES], rt_p99_ns[NPLACES]; /* 3, per placement */
    bool rt_pinned[NPLACES];                          /* its workers were placed */
    double split_s[NSPLITS];        /* 4: median seconds */
    double speedup[NSPLITS];        /* 4: median of the per-run speedups */
    /* CPU efficiency: CPU time of the serial loop / CPU time this process used doing the
     * same work on the pool (threads only: worker processes are not this process). */
    double map_eff, primes_eff[NSPLITS];
};

/* The baselines, measured in the same run. */
struct baseline {
    double inc_per_s;                     /* 1: serial increments */
    double map_fn_per_s, map_inline_per_s; /* 2: serial loops */
    double floor_median_ns[NPLACES], floor_p99_ns[NPLACES]; /* 3: futex ping-pong */
    int cpu_a, cpu_b;                     /* 3: the CPUs used for placement */
    bool have_places[NPLACES];
    double primes_s;                      /* 4: serial count, median seconds */
    uint64_t nprimes;
    double others[5];                     /* CPUs used by other processes during 1..4 */
};

static int failures; /* wrong results or API errors */

#define FAIL(...)                                                                         \
    do {                                                                                  \
        fprintf(stderr, "bench_threads: " __VA_ARGS__);                                   \
        fprintf(stderr, "\n");                                                            \
        failures++;                                                                       \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* The counter benchmark 1's tasks increment. In a worker process it is that process's own
 * copy, so only the thread backend can check it. It gets a cache line of its own: placed by
 * the linker next to a variable of the library that every submit reads, it would measure
 * false sharing instead of the pool (see docs/performance.md). */
static struct {
    _Alignas(64) _Atomic uint64_t value;
    char pad[64 - sizeof(_Atomic uint64_t)];
} counter_line;
#define counter (counter_line.value)

static int noop_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return 0;
}

/* Benchmark 2's body: y = a*x + b, one multiply-add per item. */
#define MA_A 1.000001
#define MA_B 0.5
static int muladd_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg_size, (void)out_cap, (void)out_size;
    double x;
    memcpy(&x, arg, sizeof x);
    x = x * MA_A + MA_B;
    memcpy(out, &x, sizeof x);
    return 0;
}

/* Benchmark 4: one part of the primes count. */
struct primes_arg {
    uint64_t lo, hi, part, parts;
};

static int primes_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct primes_arg a;
    memcpy(&a, arg, sizeof a);
    uint64_t c = bench_count_primes(a.lo, a.hi, a.part, a.parts, PRIME_BLOCK);
    memcpy(out, &c, sizeof c);
    *out_size = sizeof c;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Baselines                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* The same increments as benchmark 1, in a loop on this thread. The function is called
 * through a volatile pointer so that the compiler cannot fold the loop into one add. */
static double serial_increments(uint32_t n)
{
    exec_task_fn *volatile fn = noop_task;
    atomic_store(&counter, 0);
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        size_t sz = 0;
        fn(NULL, 0, NULL, 0, &sz);
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (atomic_load(&counter) != n)
        FAIL("serial increments: counter %llu, expected %u",
             (unsigned long long)atomic_load(&counter), n);
    return n / s;
}

/* Benchmark 2's work on this thread, calling the same task function per item (what
 * exec_map does on each worker). */
static double serial_muladd_fn(const double *in, double *out, size_t n, double *cpu_s)
{
    exec_task_fn *volatile fn = muladd_task;
    exec_task_fn *f = fn;
    double c0 = bench_self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        size_t sz = sizeof(double);
        f(&in[i], sizeof(double), &out[i], sizeof(double), &sz);
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    *cpu_s = bench_self_cpu_s() - c0;
    return n / s;
}

/* The same work as a plain loop the compiler can vectorise: what hand-written code does. */
static double serial_muladd_inline(const double *in, double *out, size_t n)
{
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] * MA_A + MA_B;
    __asm__ __volatile__("" : : "r"(out) : "memory");
    return n / ((double)(bench_now_ns() - t0) / 1e9);
}

/* ---------------------------------------------------------------------------------------- */
/* The benchmarks on one executor                                                            */
/* ---------------------------------------------------------------------------------------- */

/* 1. Submit @n no-op tasks in windows of WINDOW futures, waiting for and releasing each
 *    window before the next, so memory stays bounded. Returns tasks/s, or 0 on error. */
static double bench_submit(exec_t *ex, bool check_counter, uint32_t n)
{
    static exec_future_t *fs[WINDOW];
    atomic_store(&counter, 0);
    uint64_t t0 = bench_now_ns();
    for (uint32_t done = 0; done < n;) {
        uint32_t w = n - done < WINDOW ? n - done : WINDOW;
        for (uint32_t i = 0; i < w; i++) {
            int r = exec_submit(ex, noop_task, NULL, 0, &fs[i]);
            if (r) {
                FAIL("exec_submit: %s", exec_errname(r));
                for (uint32_t j = 0; j < i; j++) {
                    exec_future_wait(fs[j], EXEC_WAIT_FOREVER);
                    exec_future_release(fs[j]);
                }
                return 0;
            }
        }
        for (uint32_t i = 0; i < w; i++) {
            exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
            int r = exec_future_result(fs[i], NULL, NULL);
            if (r)
                FAIL("no-op task failed: %s", exec_errname(r));
            exec_future_release(fs[i]);
        }
        done += w;
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (check_counter && atomic_load(&counter) != n)
        FAIL("counter %llu after %u tasks", (unsigned long long)atomic_load(&counter), n);
    return n / s;
}

/* Overwrite @out with a value no result has, element by element (see run_map()). */
static void poison(double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = -1.0;
}

/* 2. exec_map of the multiply-add over @n items. Returns items/s, or 0 on error; the CPU
 *    time this process used meanwhile (all its threads) into *@cpu_s. */
static double bench_map(exec_t *ex, const double *in, double *out, size_t n, double *cpu_s)
{
    poison(out, n);
    double c0 = bench_self_cpu_s();
    uint64_t t0 = bench_now_ns();
    int r = exec_map(ex, muladd_task, in, sizeof *in, out, sizeof *out, n, NULL);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    *cpu_s = bench_self_cpu_s() - c0;
    if (r) {
        FAIL("exec_map: %s", exec_errname(r));
        return 0;
    }
    /* Spot-check a few results (all of them would double the memory traffic measured by
     * nothing; exec_map's order is tested by the suite). */
    for (size_t i = 0; i < n; i += n / 7 + 1)
        if (out[i] != in[i] * MA_A + MA_B) {
            FAIL("exec_map: wrong result at %zu", i);
            return 0;
        }
    return n / s;
}

/* 3. @n round trips, each one's nanoseconds into @ns[] (NULL: do not record). 0 or -1. */
static int bench_roundtrip(exec_t *ex, uint32_t n, uint64_t *ns)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        exec_future_t *f;
        int r = exec_submit(ex, noop_task, NULL, 0, &f);
        if (r) {
            FAIL("exec_submit: %s", exec_errname(r));
            return -1;
        }
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        r = exec_future_result(f, NULL, NULL);
        exec_future_release(f);
        uint64_t t1 = bench_now_ns();
        if (r) {
            FAIL("no-op task failed: %s", exec_errname(r));
            return -1;
        }
        if (ns)
            ns[i] = t1 - t0;
    }
    return 0;
}

/* 4. Count primes below @max in @parts tasks. Returns seconds, or 0 on error; the CPU time
 *    this process used meanwhile into *@cpu_s. */
static double bench_primes(exec_t *ex, uint64_t max, int parts, uint64_t expect, double *cpu_s)
{
    exec_future_t *fs[64];
    double c0 = bench_self_cpu_s();
    uint64_t t0 = bench_now_ns();
    int started = 0;
    for (; started < parts; started++) {
        struct primes_arg a = {0, max, (uint64_t)started, (uint64_t)parts};
        int r = exec_submit(ex, primes_task, &a, sizeof a, &fs[started]);
        if (r) {
            FAIL("exec_submit: %s", exec_errname(r));
            break;
        }
    }
    uint64_t total = 0;
    bool ok = started == parts;
    for (int i = 0; i < started; i++) {
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        const void *res;
        size_t size;
        int r = exec_future_result(fs[i], &res, &size);
        if (r || size != sizeof total) {
            FAIL("primes task: %s, %zu bytes", exec_errname(r), size);
            ok = false;
        } else {
            uint64_t c;
            memcpy(&c, res, sizeof c);
            total += c;
        }
        exec_future_release(fs[i]);
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    *cpu_s = bench_self_cpu_s() - c0;
    if (ok && total != expect) {
        FAIL("primes in %d tasks: %llu, serial %llu", parts, (unsigned long long)total,
             (unsigned long long)expect);
        ok = false;
    }
    return ok ? s : 0;
}

/* Run @call for backend @be, charging the failures it reports to that backend. */
#define ON(be, call)                                                                      \
    do {                                                                                  \
        int f0_ = failures;                                                               \
        call;                                                                             \
        (be)->errors += failures - f0_;                                                   \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Running everything, interleaved                                                           */
/* ---------------------------------------------------------------------------------------- */

/*
 * Each benchmark runs on every backend before the next one starts, and repeated runs go
 * round the backends (serial, threads, processes, serial, threads, ...): whatever else the
 * machine does at a given moment then weighs on every column alike. The idle executor's
 * workers sleep meanwhile.
 */
static void open_backend(struct backend *be, exec_backend_t kind, bool skip)
{
    be->name = kind == EXEC_BACKEND_THREADS ? "threads" : "processes";
    be->in_process = kind == EXEC_BACKEND_THREADS;
    if (skip) {
        snprintf(be->why, sizeof be->why, "skipped (--threads-only)");
        return;
    }
    exec_config_t cfg = {0};
    cfg.backend = kind;
    cfg.workers = WORKERS;
    int r = exec_create(&be->ex, &cfg);
    if (r == EXEC_ENOTSUP) {
        snprintf(be->why, sizeof be->why, "n/a (%s backend not built)",
                 kind == EXEC_BACKEND_THREADS ? "thread" : "process");
        be->ex = NULL;
    } else if (r) {
        snprintf(be->why, sizeof be->why, "n/a (exec_create: %s)", exec_errname(r));
        FAIL("exec_create(%s): %s", be->name, exec_errname(r));
        be->ex = NULL;
    }
}

static void close_backend(struct backend *be)
{
    if (!be->ex)
        return;
    int r = exec_destroy(be->ex);
    if (r)
        FAIL("exec_destroy(%s): %s", be->name, exec_errname(r));
}

/* 1. submit + wait, and the serial increments. */
static void run_submit(const struct sizes *sz, struct backend *bes, struct baseline *base)
{
    double v[NBACKENDS + 1][MAX_RUNS] = {{0}};
    printf("1. submit + wait...\n");
    fflush(stdout);
    for (int r = 0; r < sz->runs; r++) {
        v[NBACKENDS][r] = serial_increments(sz->tasks);
        for (int b = 0; b < NBACKENDS; b++)
            if (bes[b].ex)
                ON(&bes[b], v[b][r] = bench_submit(bes[b].ex, b == B_THREADS, sz->tasks));
    }
    base->inc_per_s = bench_median(v[NBACKENDS], (size_t)sz->runs);
    for (int b = 0; b < NBACKENDS; b++)
        bes[b].tasks_per_s = bench_median(v[b], (size_t)sz->runs);
}

/* 2. exec_map, and the two serial loops. */
static void run_map(const struct sizes *sz, struct backend *bes, struct baseline *base)
{
    /* Both arrays are written element by element before anything is timed. memset() is
     * not enough here: after a memset of fresh memory, the first pass over it still ran 3x
     * slower than the next ones on the reference machine (a VM). */
    double *in = malloc(sz->items * sizeof *in), *out = malloc(sz->items * sizeof *out);
    if (!in || !out) {
        FAIL("out of memory");
        free(in);
        free(out);
        return;
    }
    for (size_t i = 0; i < sz->items; i++)
        in[i] = (double)(i % 1000) * 0.25;
    poison(out, sz->items);
    double cpu, serial_cpu[MAX_RUNS], eff[NBACKENDS][MAX_RUNS] = {{0}};
    serial_muladd_fn(in, out, sz->items, &cpu);

    double v[NBACKENDS + 2][MAX_RUNS] = {{0}};
    printf("2. exec_map...\n");
    fflush(stdout);
    for (int r = 0; r < sz->runs; r++) {
        v[NBACKENDS][r] = serial_muladd_fn(in, out, sz->items, &serial_cpu[r]);
        v[NBACKENDS + 1][r] = serial_muladd_inline(in, out, sz->items);
        for (int b = 0; b < NBACKENDS; b++)
            if (bes[b].ex) {
                ON(&bes[b], v[b][r] = bench_map(bes[b].ex, in, out, sz->items, &cpu));
                eff[b][r] = cpu > 0 ? serial_cpu[r] / cpu : 0;
            }
    }
    base->map_fn_per_s = bench_median(v[NBACKENDS], (size_t)sz->runs);
    base->map_inline_per_s = bench_median(v[NBACKENDS + 1], (size_t)sz->runs);
    for (int b = 0; b < NBACKENDS; b++) {
        bes[b].items_per_s = bench_median(v[b], (size_t)sz->runs);
        bes[b].map_eff = bench_median(eff[b], (size_t)sz->runs);
    }
    free(in);
    free(out);
}

/*
 * 3. Round trips. The caller pins itself to CPU A, and the ping-pong partner and every
 * worker to CPU B (placement "cross") or to CPU A too (placement "same"): see
 * bench_common.h for why. Workers are placed by tasks that pin the thread (or process) that
 * runs them: WORKERS such tasks, each holding its worker for a moment so that every worker
 * takes exactly one. Afterwards everyone gets the original affinity back.
 */
static int pin_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                    size_t *out_size)
{
    (void)out_cap;
    cpu_set_t set;
    if (arg_size != sizeof set)
        return 1;
    memcpy(&set, arg, sizeof set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) /* 0: the calling thread */
        return 2;
    struct timespec hold = {0, 50 * 1000000L};
    nanosleep(&hold, NULL);
    int32_t tid = (int32_t)syscall(SYS_gettid);
    memcpy(out, &tid, sizeof tid);
    *out_size = sizeof tid;
    return 0;
}

/* Run pin_task on every worker of @ex. 0 when each ran it (distinct thread ids), else -1. */
static int place_workers(exec_t *ex, const cpu_set_t *set)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        exec_future_t *fs[WORKERS];
        int32_t tids[WORKERS];
        int n = 0, ok = 1;
        for (; n < WORKERS; n++)
            if (exec_submit(ex, pin_task, set, sizeof *set, &fs[n]) != 0)
                break;
        for (int i = 0; i < n; i++) {
            const void *r;
            size_t size;
            exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
            if (exec_future_result(fs[i], &r, &size) != 0 || size != sizeof tids[i])
                ok = 0;
            else
                memcpy(&tids[i], r, sizeof tids[i]);
            exec_future_release(fs[i]);
        }
        if (n < WORKERS || !ok)
            return -1;
        bool distinct = true;
        for (int i = 0; i < WORKERS; i++)
            for (int j = 0; j < i; j++)
                distinct = distinct && tids[i] != tids[j];
        if (distinct)
            return 0;
    }
    return -1;
}

static void roundtrips_placed(const struct sizes *sz, struct backend *bes,
                              struct baseline *base, int place)
{
    int cpu_other = place == P_CROSS ? base->cpu_b : base->cpu_a;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_other, &set);
    if (bench_pin_cpu(base->cpu_a) != 0)
        return;
    for (int b = 0; b < NBACKENDS; b++)
        bes[b].rt_pinned[place] = bes[b].ex && place_workers(bes[b].ex, &set) == 0;

    uint32_t block = sz->roundtrips < RT_BLOCK ? sz->roundtrips : RT_BLOCK;
    uint32_t nblocks = sz->roundtrips / block;
    uint32_t n = nblocks * block;
    uint64_t *ns[NBACKENDS + 1];
    bool nomem = false;
    for (int b = 0; b <= NBACKENDS; b++)
        if (!(ns[b] = malloc(n * sizeof *ns[b])))
            nomem = true;
    struct bench_pingpong pp;
    int err = nomem ? ENOMEM : bench_pingpong_start(&pp, n + block, cpu_other);
    if (err) {
        FAIL("cannot start the ping-pong: %s", strerror(err));
        for (int b = 0; b <= NBACKENDS; b++)
            free(ns[b]);
        return;
    }
    /* One block of each to warm up, then the measured blocks, interleaved. */
    bench_pingpong_run(&pp, block, NULL);
    for (int b = 0; b < NBACKENDS; b++)
        if (bes[b].rt_pinned[place])
            ON(&bes[b], bench_roundtrip(bes[b].ex, block, NULL));
    for (uint32_t k = 0; k < nblocks; k++) {
        bench_pingpong_run(&pp, block, ns[NBACKENDS] + (size_t)k * block);
        for (int b = 0; b < NBACKENDS; b++)
            if (bes[b].rt_pinned[place])
                ON(&bes[b], bench_roundtrip(bes[b].ex, block, ns[b] + (size_t)k * block));
    }
    bench_pingpong_stop(&pp);
    base->have_places[place] = true;
    base->floor_p99_ns[place] = (double)bench_percentile_u64(ns[NBACKENDS], n, 99);
    base->floor_median_ns[place] = (double)bench_percentile_u64(ns[NBACKENDS], n, 50);
    for (int b = 0; b < NBACKENDS; b++)
        if (bes[b].rt_pinned[place] && !bes[b].errors) {
            bes[b].rt_p99_ns[place] = (double)bench_percentile_u64(ns[b], n, 99);
            bes[b].rt_median_ns[place] = (double)bench_percentile_u64(ns[b], n, 50);
        }
    for (int b = 0; b <= NBACKENDS; b++)
        free(ns[b]);
}

static void run_roundtrips(const struct sizes *sz, struct backend *bes, struct baseline *base)
{
    printf("3. round trips...\n");
    fflush(stdout);
    cpu_set_t orig;
    int cpus[2];
    if (sched_getaffinity(0, sizeof orig, &orig) != 0) {
        FAIL("sched_getaffinity: %s", strerror(errno));
        return;
    }
    int ncpus = bench_first_cpus(&orig, cpus, 2);
    base->cpu_a = cpus[0];
    base->cpu_b = ncpus > 1 ? cpus[1] : cpus[0];
    if (ncpus > 1)
        roundtrips_placed(sz, bes, base, P_CROSS);
    roundtrips_placed(sz, bes, base, P_SAME);
    bench_pin_set(&orig);
    for (int b = 0; b < NBACKENDS; b++)
        if (bes[b].ex && place_workers(bes[b].ex, &orig) != 0)
            FAIL("%s: could not restore the workers' CPU affinity", bes[b].name);
}

/* 4. Each run: the serial count, then each split on each backend; a speedup is taken within
 *    one run (serial time of that run / split time), and the median over runs reported. */
static void run_primes(const struct sizes *sz, struct backend *bes, struct baseline *base)
{
    int runs = sz->primes_runs;
    double serial[MAX_RUNS], serial_cpu[MAX_RUNS], t[NBACKENDS][NSPLITS][MAX_RUNS],
        sp[NBACKENDS][NSPLITS][MAX_RUNS], eff[NBACKENDS][NSPLITS][MAX_RUNS];
    memset(t, 0, sizeof t);
    memset(sp, 0, sizeof sp);
    memset(eff, 0, sizeof eff);
    printf("4. primes...\n");
    fflush(stdout);
    for (int r = 0; r < runs; r++) {
        double c0 = bench_self_cpu_s();
        uint64_t t0 = bench_now_ns();
        base->nprimes = bench_count_primes(0, sz->primes_max, 0, 1, PRIME_BLOCK);
        serial[r] = (double)(bench_now_ns() - t0) / 1e9;
        serial_cpu[r] = bench_self_cpu_s() - c0;
        for (size_t i = 0; i < NSPLITS; i++)
            for (int b = 0; b < NBACKENDS; b++) {
                if (!bes[b].ex)
                    continue;
                double cpu = 0;
                ON(&bes[b], t[b][i][r] = bench_primes(bes[b].ex, sz->primes_max,
                                                      split_parts[i], base->nprimes, &cpu));
                sp[b][i][r] = t[b][i][r] > 0 ? serial[r] / t[b][i][r] : 0;
                eff[b][i][r] = cpu > 0 ? serial_cpu[r] / cpu : 0;
            }
    }
    base->primes_s = bench_median(serial, (size_t)runs);
    for (int b = 0; b < NBACKENDS; b++)
        for (size_t i = 0; i < NSPLITS; i++) {
            bes[b].split_s[i] = bench_median(t[b][i], (size_t)runs);
            bes[b].speedup[i] = bench_median(sp[b][i], (size_t)runs);
            bes[b].primes_eff[i] = bench_median(eff[b][i], (size_t)runs);
        }
}

/* ---------------------------------------------------------------------------------------- */
/* The table                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Columns: what, serial or floor, threads, processes, target, verdict on threads, on
 * processes. */
static const int widths[] = {24, 14, 15, 31, 10, 8, 9};
#define NCOLS ((int)(sizeof widths / sizeof widths[0]))
#define CELL 64

static void row(const char *label, const char *base, const char *thr, const char *proc,
                const char *target, const char *vthr, const char *vproc)
{
    const char *cells[] = {label, base, thr, proc, target, vthr, vproc};
    bench_row(widths, NCOLS, cells);
}

/* How a figure is written in a cell. */
enum kind { RATE, US, NS, RATIO };

/* A backend's cell: its figure @x written as @k, or why it has none. */
static const char *cell(char *buf, const struct backend *be, enum kind k, double x)
{
    if (!be->ex)
        return be->why;
    if (be->errors)
        return "error (see stderr)";
    switch (k) {
    case RATE:
        return bench_fmt_rate(buf, CELL, x);
    case US:
        return bench_fmt_us(buf, CELL, x);
    case NS:
        return bench_fmt(buf, CELL, "%.0f ns", x);
    case RATIO:
        break;
    }
    return bench_fmt(buf, CELL, "%.2fx", x);
}

static const char *verdict(const struct backend *be, bool pass)
{
    if (!be->ex || be->errors)
        return "-";
    return pass ? "PASS" : "MISS";
}

/* "93%": the share of the pool's CPU time the serial loop needed for the same work. Only for
 * threads: a process pool's workers are other processes. */
static const char *eff_cell(char *buf, const struct backend *be, double eff)
{
    if (!be->ex)
        return be->why;
    if (be->errors)
        return "error (see stderr)";
    if (!be->in_process || eff <= 0)
        return "-";
    return bench_fmt(buf, CELL, "%.0f%%", eff * 100);
}

/* "other processes used 0.12 CPUs meanwhile", when known. */
static void print_others(double others)
{
    if (others >= 0)
        printf("   (other processes used %.2f CPUs on average meanwhile)\n", others);
}

static void print_submit(const struct sizes *sz, const struct backend *t,
                         const struct backend *p, const struct baseline *base)
{
    char c1[CELL], c2[CELL], c3[CELL], tg[CELL];
    printf("\n1. submit + wait for %u no-op tasks (each an atomic increment); futures in\n"
           "   windows of %d: submit a window, wait for each future, release it\n",
           sz->tasks, WINDOW);
    row("   tasks/s", bench_fmt_rate(c1, CELL, base->inc_per_s),
        cell(c2, t, RATE, t->tasks_per_s), cell(c3, p, RATE, p->tasks_per_s),
        bench_fmt(tg, CELL, ">= %.0f M/s", TARGET_TASKS_PER_S / 1e6),
        verdict(t, t->tasks_per_s >= TARGET_TASKS_PER_S),
        verdict(p, p->tasks_per_s >= TARGET_TASKS_PER_S));
    row("   time per task", bench_fmt(c1, CELL, "%.1f ns", 1e9 / base->inc_per_s),
        cell(c2, t, NS, 1e9 / t->tasks_per_s),
        cell(c3, p, NS, 1e9 / p->tasks_per_s), NULL, NULL, NULL);
    print_others(base->others[1]);
}

static void print_map(const struct sizes *sz, const struct backend *t, const struct backend *p,
                      const struct baseline *base)
{
    char c1[CELL], c2[CELL], c3[CELL], tg[CELL];
    printf("\n2. exec_map of %zu items, y = a*x + b on doubles; serial: the same task\n"
           "   function called in a loop on the same arrays\n",
           sz->items);
    row("   items/s", bench_fmt_rate(c1, CELL, base->map_fn_per_s),
        cell(c2, t, RATE, t->items_per_s), cell(c3, p, RATE, p->items_per_s),
        bench_fmt(tg, CELL, ">= %.0f M/s", TARGET_ITEMS_PER_S / 1e6),
        verdict(t, t->items_per_s >= TARGET_ITEMS_PER_S),
        verdict(p, p->items_per_s >= TARGET_ITEMS_PER_S));
    row("   pool / serial", "1x", cell(c2, t, RATIO, t->items_per_s / base->map_fn_per_s),
        cell(c3, p, RATIO, p->items_per_s / base->map_fn_per_s), NULL, NULL, NULL);
    row("   CPU efficiency", "100%", eff_cell(c2, t, t->map_eff), eff_cell(c3, p, p->map_eff),
        NULL, NULL, NULL);
    row("   inlined serial loop", bench_fmt_rate(c1, CELL, base->map_inline_per_s), NULL, NULL,
        NULL, NULL, NULL);
    print_others(base->others[2]);
}

static void print_roundtrip(const struct sizes *sz, const struct backend *t,
                            const struct backend *p, const struct baseline *base)
{
    char c1[CELL], c2[CELL], c3[CELL], tg[CELL];
    printf("\n3. round trip: submit one no-op task and wait for it, %u times; floor: raw\n"
           "   futex ping-pong between two threads, in blocks of %d interleaved with the pools\n",
           sz->roundtrips, RT_BLOCK);
    for (int pl = 0; pl < NPLACES; pl++) {
        if (!base->have_places[pl])
            continue;
        if (pl == P_CROSS)
            printf("   caller on CPU %d; partner, workers on CPU %d:\n", base->cpu_a,
                   base->cpu_b);
        else
            printf("   caller, partner and workers all on CPU %d:\n", base->cpu_a);
        /* A backend whose workers could not be placed has no figure here. */
        struct backend tt = *t, pp = *p;
        if (tt.ex && !tt.rt_pinned[pl])
            tt.errors = 1;
        if (pp.ex && !pp.rt_pinned[pl])
            pp.errors = 1;
        row("     median", bench_fmt_us(c1, CELL, base->floor_median_ns[pl]),
            cell(c2, &tt, US, tt.rt_median_ns[pl]), cell(c3, &pp, US, pp.rt_median_ns[pl]),
            NULL, NULL, NULL);
        row("     p99", bench_fmt_us(c1, CELL, base->floor_p99_ns[pl]),
            cell(c2, &tt, US, tt.rt_p99_ns[pl]), cell(c3, &pp, US, pp.rt_p99_ns[pl]), NULL,
            NULL, NULL);
        double rt = tt.rt_median_ns[pl] / base->floor_median_ns[pl];
        double rp = pp.rt_median_ns[pl] / base->floor_median_ns[pl];
        row("     median / floor", "1x", cell(c2, &tt, RATIO, rt), cell(c3, &pp, RATIO, rp),
            bench_fmt(tg, CELL, "<= %.1fx", TARGET_RT_RATIO), verdict(&tt, rt <= TARGET_RT_RATIO),
            verdict(&pp, rp <= TARGET_RT_RATIO));
    }
    print_others(base->others[3]);
}

/* "1.97x (1.00 s)", or why there is no figure. */
static const char *speedup_cell(char *buf, const struct backend *be, size_t i)
{
    if (!be->ex)
        return be->why;
    if (be->errors)
        return "error (see stderr)";
    return bench_fmt(buf, CELL, "%.2fx (%.2f s)", be->speedup[i], be->split_s[i]);
}

static void print_primes(const struct sizes *sz, const struct backend *t,
                         const struct backend *p, const struct baseline *base)
{
    char c1[CELL], c2[CELL], c3[CELL], tg[CELL];
    printf("\n4. count the primes below %llu by trial division (%llu of them), the range\n"
           "   split into N tasks: speedup over the serial loop (median of %d run%s, seconds)\n",
           (unsigned long long)sz->primes_max, (unsigned long long)base->nprimes,
           sz->primes_runs, sz->primes_runs == 1 ? "" : "s");
    for (size_t i = 0; i < NSPLITS; i++) {
        char label[32];
        snprintf(label, sizeof label, "   %d tasks", split_parts[i]);
        row(label, bench_fmt(c1, CELL, "1x (%.2f s)", base->primes_s), speedup_cell(c2, t, i),
            speedup_cell(c3, p, i), bench_fmt(tg, CELL, ">= %.1fx", TARGET_SPEEDUP),
            verdict(t, t->speedup[i] >= TARGET_SPEEDUP),
            verdict(p, p->speedup[i] >= TARGET_SPEEDUP));
    }
    for (size_t i = 0; i < NSPLITS; i++) {
        char label[32];
        snprintf(label, sizeof label, "   CPU efficiency, %d", split_parts[i]);
        row(label, "100%", eff_cell(c2, t, t->primes_eff[i]),
            eff_cell(c3, p, p->primes_eff[i]), NULL, NULL, NULL);
    }
    print_others(base->others[4]);
}

static void print_table(const struct sizes *sz, const struct backend *bes,
                        const struct baseline *base)
{
    const struct backend *t = &bes[B_THREADS], *p = &bes[B_PROCESSES];
    printf("\n");
    row("", "serial/floor", "threads", "processes", "target", "threads", "processes");
    if (sz->only & 2)
        print_submit(sz, t, p, base);
    if (sz->only & 4)
        print_map(sz, t, p, base);
    if (sz->only & 8)
        print_roundtrip(sz, t, p, base);
    if (sz->only & 16)
        print_primes(sz, t, p, base);
    printf("\nBenchmarks 1 and 2: median of %d run%s. Targets: issue 2's, set for the thread "
           "backend.\nCPU efficiency: CPU time of the serial loop / CPU time of the pool for the "
           "same work\n(speedup = efficiency x CPUs actually free). Worker processes count as "
           "\"other processes\".\n",
           sz->runs, sz->runs == 1 ? "" : "s");
}

/* ---------------------------------------------------------------------------------------- */

/* "1,3" -> bits 1 and 3; 0 when the list is empty or holds anything but 1..4 and commas. */
static unsigned parse_only(const char *list)
{
    unsigned bits = 0;
    for (const char *p = list; *p; p++) {
        if (*p >= '1' && *p <= '4')
            bits |= 1u << (*p - '0');
        else if (*p != ',')
            return 0;
    }
    return bits;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: bench_threads [--quick] [--runs N] [--only LIST] [--threads-only]\n");
}

int main(int argc, char **argv)
{
    struct sizes sz = {1000000, 10000000, 100000, 11000000, 3, 3, 2 | 4 | 8 | 16};
    bool quick = false, threads_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--threads-only")) {
            threads_only = true;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            sz.runs = atoi(argv[++i]);
            if (sz.runs < 1 || sz.runs > MAX_RUNS) {
                fprintf(stderr, "bench_threads: --runs takes 1..%d\n", MAX_RUNS);
                return 2;
            }
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            sz.only = parse_only(argv[++i]);
            if (!sz.only) {
                fprintf(stderr, "bench_threads: --only takes a list of 1..4, e.g. 1,3\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (quick) {
        sz.tasks = 100000;
        sz.items = 1000000;
        sz.roundtrips = 10000;
        sz.primes_max = 1000000;
        sz.runs = 1;
    }
    sz.primes_runs = sz.runs < 3 ? sz.runs : 3;

    exec_cpu_budget_t budget;
    exec_cpu_budget(NULL, &budget);
    printf("libexecutor %s benchmarks%s: %d workers per executor; %d CPU%s usable, %d online.\n"
           "Figures drift between runs on a shared machine: compare within one run.\n",
           EXEC_VERSION_STRING, quick ? " (--quick)" : "", WORKERS, budget.workers,
           budget.workers == 1 ? "" : "s", budget.online);
    fflush(stdout);

    struct backend bes[NBACKENDS];
    memset(bes, 0, sizeof bes);
    open_backend(&bes[B_THREADS], EXEC_BACKEND_THREADS, false);
    open_backend(&bes[B_PROCESSES], EXEC_BACKEND_PROCESSES, threads_only);

    struct baseline base;
    memset(&base, 0, sizeof base);
    int before = failures;
    void (*const runners[5])(const struct sizes *, struct backend *, struct baseline *) = {
        NULL, run_submit, run_map, run_roundtrips, run_primes};
    for (int k = 1; k <= 4; k++) {
        if (!(sz.only & (1u << k)))
            continue;
        struct bench_load load;
        bench_load_begin(&load);
        runners[k](&sz, bes, &base);
        base.others[k] = bench_load_others(&load);
    }
    if (failures != before)
        fprintf(stderr, "bench_threads: figures of a backend with errors are not shown\n");
    for (int b = 0; b < NBACKENDS; b++)
        close_backend(&bes[b]);
    print_table(&sz, bes, &base);
    if (failures) {
        fprintf(stderr, "bench_threads: %d error%s\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
