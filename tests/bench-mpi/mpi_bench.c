/* SPDX-License-Identifier: MIT */
/*
 * mpi_bench.c - the MPI backend measured (make bench, via tests/bench-mpi/run.sh, under
 * mpirun -np 3: rank 0 submits, ranks 1-2 serve). Prints one line per figure, "name value
 * unit", that run.sh puts beside mpi4py.futures' figures:
 *
 *   submit_wait   100000 no-ops submitted with every future outstanding, then waited
 *   map           10 M int64 items through exec_map (automatic chunks)
 *   rtt_p50/p99   submit + wait of one no-op at a time
 *   primes        the primes below 3 M in 32 tasks: serial time / MPI time (threads)
 */
#include <executor.h>
#include <executor_mpi.h>

#include "../bench/bench_common.h"

static int noop(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    return 0;
}

static int inc(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg_size, (void)out_cap, (void)out_size;
    int64_t v;
    memcpy(&v, arg, sizeof v);
    v++;
    memcpy(out, &v, sizeof v);
    return 0;
}

struct part {
    uint32_t below, index, count;
};

static int count_part(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct part p;
    memcpy(&p, arg, sizeof p);
    int64_t found = 0;
    for (uint32_t b = p.index * 1000u; b < p.below; b += p.count * 1000u)
        for (uint32_t n = b; n < b + 1000u && n < p.below; n++)
            found += bench_is_prime(n);
    memcpy(out, &found, sizeof found);
    *out_size = sizeof found;
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void submit_wait(exec_t *ex, int n)
{
    exec_future_t **fs = malloc((size_t)n * sizeof *fs);
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        if (exec_submit(ex, noop, NULL, 0, &fs[i]) != EXEC_OK)
            exit(1);
    exec_future_wait_all(fs, (size_t)n, EXEC_WAIT_FOREVER);
    double t = now_s() - t0;
    for (int i = 0; i < n; i++)
        exec_future_release(fs[i]);
    free(fs);
    printf("submit_wait %.0f tasks/s\n", n / t);
}

static void map(exec_t *ex, size_t n)
{
    int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    double t0 = now_s();
    int r = exec_map(ex, inc, in, sizeof *in, out, sizeof *out, n, NULL);
    double t = now_s() - t0;
    if (r != EXEC_OK || out[n - 1] != (int64_t)n)
        exit(1);
    free(in);
    free(out);
    printf("map %.0f items/s\n", (double)n / t);
}

static void rtt(exec_t *ex, int n)
{
    double *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n + 100; i++) {
        exec_future_t *f;
        double t0 = now_s();
        exec_submit(ex, noop, NULL, 0, &f);
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        exec_future_release(f);
        if (i >= 100)
            v[i - 100] = (now_s() - t0) * 1e6;
    }
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    printf("rtt_p50 %.1f us\nrtt_p99 %.1f us\n", v[n / 2], v[n * 99 / 100]);
    free(v);
}

static void primes(exec_t *ex)
{
    enum { PARTS = 32 };
    struct part parts[PARTS];
    int64_t c[PARTS];
    for (uint32_t i = 0; i < PARTS; i++)
        parts[i] = (struct part){3000000u, i, PARTS};
    double t0 = now_s();
    for (int i = 0; i < PARTS; i++) {
        size_t n;
        count_part(&parts[i], sizeof parts[i], &c[i], sizeof c[i], &n);
    }
    double serial = now_s() - t0;
    exec_map_opts_t o = {.chunk_size = 1};
    double cpu0 = bench_self_cpu_s();
    t0 = now_s();
    exec_map(ex, count_part, parts, sizeof parts[0], c, sizeof c[0], PARTS, &o);
    double par = now_s() - t0;
    /* Rank 0's own CPU while the ranks work: what its waiting costs (no busy-poll). */
    double cpu = bench_self_cpu_s() - cpu0;
    printf("primes %.2f x (serial %.3f s, mpi %.3f s; rank 0 used %.1f%% of a CPU meanwhile)\n",
           serial / par, serial, par, 100.0 * cpu / par);
}

int main(int argc, char **argv)
{
    if (exec_mpi_main(&argc, &argv) != EXEC_OK)
        return 1;
    exec_config_t cfg = {.backend = EXEC_BACKEND_MPI};
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    const char *only = argc > 1 ? argv[1] : "";
    if (!*only || !strcmp(only, "submit"))
        submit_wait(ex, 100000);
    if (!*only || !strcmp(only, "map"))
        map(ex, 10000000);
    if (!*only || !strcmp(only, "rtt"))
        rtt(ex, 2000);
    if (!*only || !strcmp(only, "primes"))
        primes(ex);
    exec_destroy(ex);
    return 0;
}
