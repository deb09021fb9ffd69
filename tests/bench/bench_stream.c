/* SPDX-License-Identifier: MIT */
/*
 * bench_stream.c - exec_map_stream() against exec_map() on the same items, both backends,
 * side by side in one run (target: the stream moves >= 0.8x the items per second of the
 * array map).
 *
 * The items: 10,000,000 int64, task y = 3x + 1. exec_map reads a 80 MB input array and writes
 * a 80 MB output array; the stream produces each item with a counter and consumes it into a
 * running sum, through a window of 65,536 items. Each figure is the median of 5 runs.
 */
#include <executor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define N 10000000
#define RUNS 5

static int triple(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)cap, (void)osz;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x = 3 * x + 1;
    memcpy(out, &x, sizeof x);
    return 0;
}

struct io {
    int64_t next, n;
    int64_t sum;
};

static int produce(void *items, size_t max, size_t size, size_t *count, void *ud)
{
    (void)size;
    struct io *io = ud;
    int64_t *p = items;
    size_t k = 0;
    for (; k < max && io->next < io->n; k++)
        p[k] = io->next++;
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

static double run_map(exec_t *ex, int64_t *in, int64_t *out)
{
    uint64_t t0 = bench_now_ns();
    int r = exec_map(ex, triple, in, sizeof *in, out, sizeof *out, N, NULL);
    uint64_t t1 = bench_now_ns();
    if (r != EXEC_OK || out[N - 1] != 3 * (int64_t)(N - 1) + 1) {
        fprintf(stderr, "exec_map: %s\n", exec_errname(r));
        exit(1);
    }
    return N / ((double)(t1 - t0) / 1e9);
}

static double run_stream(exec_t *ex)
{
    struct io io = {0, N, 0};
    exec_stream_opts_t o = {0};
    o.window = 65536;
    uint64_t t0 = bench_now_ns();
    int r = exec_map_stream(ex, triple, sizeof(int64_t), sizeof(int64_t), produce, consume, &io,
                            &o);
    uint64_t t1 = bench_now_ns();
    int64_t want = 3 * ((int64_t)N * (N - 1) / 2) + N;
    if (r != EXEC_OK || io.sum != want) {
        fprintf(stderr, "exec_map_stream: %s (sum %lld, want %lld)\n", exec_errname(r),
                (long long)io.sum, (long long)want);
        exit(1);
    }
    return N / ((double)(t1 - t0) / 1e9);
}

int main(void)
{
    int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    if (!in || !out)
        return 1;
    for (int64_t i = 0; i < N; i++)
        in[i] = i;
    printf("exec_map_stream vs exec_map: %d int64 items, y = 3x + 1, 2 workers, median of %d\n"
           "(stream: produced by a counter, consumed into a sum, window 65536 items)\n\n",
           N, RUNS);
    const int w[] = {12, 16, 16, 10, 8};
    const char *head[] = {"backend", "exec_map", "exec_map_stream", "ratio", "target"};
    bench_row(w, 5, head);
    for (int b = 0; b < 2; b++) {
        exec_config_t cfg = {0};
        cfg.backend = b ? EXEC_BACKEND_PROCESSES : EXEC_BACKEND_THREADS;
        cfg.workers = 2;
        exec_t *ex;
        if (exec_create(&ex, &cfg) != EXEC_OK)
            return 1;
        double m[RUNS], s[RUNS];
        for (int i = 0; i < RUNS; i++) {
            m[i] = run_map(ex, in, out);
            s[i] = run_stream(ex);
        }
        exec_destroy(ex);
        double mm = bench_median(m, RUNS), sm = bench_median(s, RUNS);
        char c1[32], c2[32], c3[32];
        const char *row[] = {b ? "processes" : "threads", bench_fmt_rate(c1, sizeof c1, mm),
                             bench_fmt_rate(c2, sizeof c2, sm),
                             bench_fmt(c3, sizeof c3, "%.2fx", sm / mm),
                             sm / mm >= 0.8 ? "PASS" : "MISS"};
        bench_row(w, 5, row);
    }
    free(in);
    free(out);
    return 0;
}
