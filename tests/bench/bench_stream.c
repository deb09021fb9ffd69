/* SPDX-License-Identifier: MIT */
/*
 * bench_stream.c - exec_map_stream() against exec_map() on the same items, both backends,
 * side by side in one run (target of the streaming-map issue: the stream moves >= 0.8x the
 * items per second of the array map).
 *
 * Three weights of item, because the answer depends on it:
 *   tiny   10,000,000 int64, y = 3x + 1 (about 1-2 ns of work: the map is pure overhead)
 *   light   2,000,000 int64, 64 rounds of a multiply-xorshift mix (tens of ns)
 *   line      200,000 int64, 1,000 rounds (about a microsecond, a line of text's worth)
 * exec_map reads an input array and writes an output array; the stream produces each item
 * from a counter and consumes it into a running sum, through a window of 65,536 items. Runs
 * alternate (map, stream, map, ...) so both see the same moments of a noisy machine; each
 * figure is the median of 5.
 *
 * The stream's calling thread produces and consumes every item while the workers run; the
 * "caller" column is its CPU time per item (CLOCK_THREAD_CPUTIME_ID over the whole stream,
 * waiting included). On a machine with as many CPUs as workers that thread shares a CPU with
 * them, so for the tiniest items it bounds the ratio: with c ns of caller CPU and w ns of
 * worker CPU per item on W workers and P CPUs, the stream needs at least (c + w) / P ns per
 * item where exec_map needs w / W. So the last two columns time exec_map doing the stream's
 * whole job: the same producer fills the input array, the map runs, the same sum reads the
 * output ("map+in/out"), and the stream's items/s against that.
 *
 * Usage: bench_stream [--quick] [--workers N]
 *   --quick      a tenth of the items, 3 runs
 *   --workers N  workers of both executors (default 2; 1 on a 2-CPU machine leaves the
 *                caller a CPU of its own, which shows the driver's own cost)
 */
#include <executor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

#define MAX_RUNS 5
#define WINDOW 65536

struct weight {
    const char *name;
    size_t n;
    exec_task_fn *fn;
    int rounds; /* for want() */
};

static int64_t mix(int64_t x, int rounds)
{
    uint64_t v = (uint64_t)x;
    for (int i = 0; i < rounds; i++) {
        v = v * 0x9E3779B97F4A7C15u + 1;
        v ^= v >> 29;
    }
    return (int64_t)(v >> 1);
}

static int triple(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)cap, (void)osz;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x = 3 * x + 1;
    memcpy(out, &x, sizeof x);
    return 0;
}

#define MIX_TASK(name, rounds)                                                             \
    static int name(const void *arg, size_t n, void *out, size_t cap, size_t *osz)         \
    {                                                                                      \
        (void)n, (void)cap, (void)osz;                                                     \
        int64_t x;                                                                         \
        memcpy(&x, arg, sizeof x);                                                         \
        x = mix(x, rounds);                                                                \
        memcpy(out, &x, sizeof x);                                                         \
        return 0;                                                                          \
    }
MIX_TASK(light, 64)
MIX_TASK(line, 1000)

static int64_t want(const struct weight *w, int64_t x)
{
    return w->rounds ? mix(x, w->rounds) : 3 * x + 1;
}

struct io {
    int64_t next, n;
    int64_t sum;
};

/* A producer and a consumer as a user writes them: the counter in a local while the loop
 * runs (through io->next, every store to the items might alias it). */
static int produce(void *items, size_t max, size_t size, size_t *count, void *ud)
{
    (void)size;
    struct io *io = ud;
    int64_t *p = items, next = io->next, left = io->n - next;
    size_t k = max < (size_t)left ? max : (size_t)left;
    for (size_t i = 0; i < k; i++)
        p[i] = next + (int64_t)i;
    io->next = next + (int64_t)k;
    *count = k;
    return 0;
}

static int consume(size_t first, size_t count, const int *status, const void *results,
                   void *ud)
{
    (void)first;
    const int64_t *v = results;
    int64_t sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += status[i] == 0 ? v[i] : 0;
    ((struct io *)ud)->sum += sum;
    return 0;
}

static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double run_map(exec_t *ex, const struct weight *w, int64_t *in, int64_t *out)
{
    uint64_t t0 = bench_now_ns();
    int r = exec_map(ex, w->fn, in, sizeof *in, out, sizeof *out, w->n, NULL);
    uint64_t t1 = bench_now_ns();
    int64_t last = (int64_t)w->n - 1;
    if (r != EXEC_OK || out[last] != want(w, last)) {
        fprintf(stderr, "exec_map: %s\n", exec_errname(r));
        exit(1);
    }
    return (double)w->n / ((double)(t1 - t0) / 1e9);
}

/* The stream's whole job done with exec_map: the same producer fills the input array, the
 * map runs, the same sum reads the output array; timed together. */
static double run_map_io(exec_t *ex, const struct weight *w, int64_t *in, int64_t *out,
                         int64_t expect)
{
    struct io io = {0, (int64_t)w->n, 0};
    uint64_t t0 = bench_now_ns();
    size_t got = 0;
    produce(in, w->n, sizeof *in, &got, &io);
    int r = exec_map(ex, w->fn, in, sizeof *in, out, sizeof *out, w->n, NULL);
    int64_t sum = 0;
    for (size_t i = 0; i < w->n; i++)
        sum += out[i];
    uint64_t t1 = bench_now_ns();
    if (r != EXEC_OK || got != w->n || sum != expect) {
        fprintf(stderr, "exec_map with its input and output: %s\n", exec_errname(r));
        exit(1);
    }
    return (double)w->n / ((double)(t1 - t0) / 1e9);
}

static double run_stream(exec_t *ex, const struct weight *w, int64_t expect, double *caller)
{
    struct io io = {0, (int64_t)w->n, 0};
    exec_stream_opts_t o = {0};
    o.window = WINDOW;
    double c0 = thread_cpu_ns();
    uint64_t t0 = bench_now_ns();
    int r = exec_map_stream(ex, w->fn, sizeof(int64_t), sizeof(int64_t), produce, consume, &io,
                            &o);
    uint64_t t1 = bench_now_ns();
    *caller = (thread_cpu_ns() - c0) / (double)w->n;
    if (r != EXEC_OK || io.sum != expect) {
        fprintf(stderr, "exec_map_stream: %s (sum %lld, want %lld)\n", exec_errname(r),
                (long long)io.sum, (long long)expect);
        exit(1);
    }
    return (double)w->n / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    bool quick = false;
    int workers = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_stream [--quick] [--workers N]\n");
            return 2;
        }
    }
    if (workers < 1 || workers > 64) {
        fprintf(stderr, "bench_stream: --workers 1..64\n");
        return 2;
    }
    int runs = quick ? 3 : MAX_RUNS;
    struct weight ws[] = {{"tiny", 10000000, triple, 0},
                          {"light", 2000000, light, 64},
                          {"line", 200000, line, 1000}};
    size_t nmax = 0;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        if (quick)
            ws[i].n /= 10;
        nmax = ws[i].n > nmax ? ws[i].n : nmax;
    }
    int64_t *in = malloc(nmax * sizeof *in), *out = malloc(nmax * sizeof *out);
    if (!in || !out)
        return 1;
    for (size_t i = 0; i < nmax; i++)
        in[i] = (int64_t)i;
    printf("exec_map_stream vs exec_map on the same int64 items, %d workers, median of %d\n"
           "(stream: produced by a counter, consumed into a sum, window %d items; caller: the\n"
           "stream's calling thread's CPU per item)\n\n",
           workers, runs, WINDOW);
    const int wd[] = {11, 7, 10, 12, 16, 8, 8, 6, 14, 8};
    const char *head[] = {"backend", "items", "n", "exec_map", "exec_map_stream",
                          "ratio", "caller", "target", "map+in/out", "ratio"};
    bench_row(wd, 10, head);
    for (int b = 0; b < 2; b++) {
        exec_config_t cfg = {0};
        cfg.backend = b ? EXEC_BACKEND_PROCESSES : EXEC_BACKEND_THREADS;
        cfg.workers = workers;
        exec_t *ex;
        if (exec_create(&ex, &cfg) != EXEC_OK)
            return 1;
        for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
            const struct weight *w = &ws[k];
            int64_t expect = 0;
            for (size_t i = 0; i < w->n; i++)
                expect += want(w, (int64_t)i);
            double m[MAX_RUNS], s[MAX_RUNS], c[MAX_RUNS], e[MAX_RUNS];
            for (int i = 0; i < runs; i++) {
                m[i] = run_map(ex, w, in, out);
                s[i] = run_stream(ex, w, expect, &c[i]);
                e[i] = run_map_io(ex, w, in, out, expect);
            }
            double mm = bench_median(m, (size_t)runs), sm = bench_median(s, (size_t)runs);
            double em = bench_median(e, (size_t)runs);
            double cm = bench_median(c, (size_t)runs);
            char c1[32], c2[32], c3[32], c4[32], c5[32], c6[32], c7[32];
            const char *row[] = {b ? "processes" : "threads", w->name,
                                 bench_fmt(c5, sizeof c5, "%zu", w->n),
                                 bench_fmt_rate(c1, sizeof c1, mm),
                                 bench_fmt_rate(c2, sizeof c2, sm),
                                 bench_fmt(c3, sizeof c3, "%.2fx", sm / mm),
                                 bench_fmt(c4, sizeof c4, "%.1f ns", cm),
                                 sm / mm >= 0.8 ? "PASS" : "MISS",
                                 bench_fmt_rate(c6, sizeof c6, em),
                                 bench_fmt(c7, sizeof c7, "%.2fx", sm / em)};
            bench_row(wd, 10, row);
        }
        exec_destroy(ex);
    }
    free(in);
    free(out);
    return 0;
}
