/* SPDX-License-Identifier: MIT */
/*
 * 13_mpi.c - the same executor over MPI: count primes across the ranks of an MPI job.
 *
 *   mpirun -np 3 build/examples/13_mpi          # rank 0 runs main, ranks 1-2 serve
 *   srun -n 3 build/examples/13_mpi             # the same under Slurm
 *   mpirun -np 3 build/examples/13_mpi processes   # each rank runs a local process pool
 *
 * Build: link libexecutor-mpi instead of libexecutor (`pkg-config --cflags --libs
 * executor-mpi`); `make` builds this one when Open MPI is installed.
 *
 * The program is example 02 with two changes: exec_mpi_main() at the top of main (the
 * serving ranks never return from it; they end when rank 0's main returns), and
 * .backend = EXEC_BACKEND_MPI. It counts once serially, once across the ranks, prints
 * both times and checks the two counts agree:
 *
 *   counting the primes below 3000000 (216816 of them) in 32 tasks on 2 workers
 *                          seconds   speedup
 *   serial loop               0.31     1.00x
 *   mpi (threads)             0.17     1.85x
 *
 * (the figures are an illustration; `make bench` measures the speedup.)
 */
#include <executor.h>
#include <executor_mpi.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BELOW 3000000u
#define PARTS 32
#define BLOCK 1000u

struct part {
    uint32_t below, index, count;
};

static bool is_prime(uint32_t n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (uint32_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* The task. Its address differs on every rank (address space randomisation): it travels
 * as (module, offset) and is found again on the serving rank. */
static int count_part(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct part p;
    memcpy(&p, arg, sizeof p);
    int64_t found = 0;
    for (uint32_t b = p.index * BLOCK; b < p.below; b += p.count * BLOCK)
        for (uint32_t n = b; n < b + BLOCK && n < p.below; n++)
            found += is_prime(n);
    memcpy(out, &found, sizeof found);
    *out_size = sizeof found;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    /* The guard: rank 0 goes on, every other rank serves tasks from here and never returns. */
    int r = exec_mpi_main(&argc, &argv);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_mpi_main: %s\n", exec_strerror(r));
        return 1;
    }
    bool procs = argc > 1 && strcmp(argv[1], "processes") == 0;
    struct part parts[PARTS];
    int64_t counts[PARTS];
    for (uint32_t i = 0; i < PARTS; i++)
        parts[i] = (struct part){BELOW, i, PARTS};

    double t0 = now();
    int64_t serial = 0;
    for (uint32_t i = 0; i < PARTS; i++) {
        size_t n;
        count_part(&parts[i], sizeof parts[i], &counts[i], sizeof counts[i], &n);
        serial += counts[i];
    }
    double t_serial = now() - t0;

    exec_config_t cfg = {.backend = EXEC_BACKEND_MPI,
                         .mpi_local_backend = procs ? EXEC_BACKEND_PROCESSES : 0};
    exec_t *ex;
    r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s (start it with mpirun -np 3)\n", exec_strerror(r));
        return 1;
    }
    exec_stats_t st;
    exec_stats(ex, &st);
    t0 = now();
    r = exec_map(ex, count_part, parts, sizeof parts[0], counts, sizeof counts[0], PARTS, NULL);
    double t_mpi = now() - t0;
    int64_t total = 0;
    for (int i = 0; i < PARTS; i++)
        total += counts[i];
    exec_destroy(ex);
    if (r != EXEC_OK || total != serial) {
        fprintf(stderr, "exec_map: %s, %lld primes (serial: %lld)\n", exec_strerror(r),
                (long long)total, (long long)serial);
        return 1;
    }
    printf("counting the primes below %u (%lld of them) in %d tasks on %llu workers\n", BELOW,
           (long long)total, PARTS, (unsigned long long)st.workers_alive);
    printf("%-22s %7s   %7s\n", "", "seconds", "speedup");
    printf("%-22s %7.2f   %6.2fx\n", "serial loop", t_serial, 1.0);
    printf("%-22s %7.2f   %6.2fx\n", procs ? "mpi (processes)" : "mpi (threads)", t_mpi,
           t_serial / t_mpi);
    return 0;
}
