/* SPDX-License-Identifier: MIT */
/*
 * 02_cpu_bound.c - CPU-bound work: count primes serially, on threads and on processes.
 *
 * The range [0, BELOW) is dealt out to PARTS tasks in blocks of 1000 numbers, round-robin
 * like cards (bigger numbers cost more to test, so contiguous slices would not be equal
 * work). exec_map() runs the task once per element of an array of `struct part` and writes
 * one int64_t count per element, in order. The program prints one table:
 *
 *   counting the primes below 5000000 (348513 of them) in 16 tasks, pools of 2 workers
 *                          seconds   speedup
 *   serial loop               0.55     1.00x
 *   threads                   0.28     1.95x
 *   processes                 0.28     1.96x
 *
 * (a run on 2 idle cores; times vary, and a pool's time includes starting and stopping it.)
 *
 * Why both pools scale here, unlike Python's threads: CPython lets a thread run Python code
 * only while it holds the global interpreter lock (GIL), so a CPU-bound loop in 2 threads
 * runs one thread at a time, and Python programmers use processes to get a second core. C
 * has no interpreter and no such lock: each pthread is scheduled by the kernel on its own
 * core and runs machine code freely. A C thread pool is as parallel as a process pool, and
 * cheaper (no process to start, no bytes to copy between address spaces). Processes pay off
 * in C for other reasons: isolation, deadlines, leaks, global locks (examples 03, 07-09).
 */
#include <executor.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BELOW 5000000u
#define PARTS 16
#define BLOCK 1000u

/* The argument of one task: plain numbers, valid in a thread or in a worker process. */
struct part {
    uint32_t below; /* count primes in [0, below) */
    uint32_t index; /* this task takes blocks index, index + count, index + 2*count... */
    uint32_t count;
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

/* The task: its argument is one struct part, its result one int64_t. */
static int count_part(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct part p;
    memcpy(&p, arg, sizeof p); /* arg: this task's own copy of the element */
    int64_t found = 0;
    for (uint32_t b = p.index * BLOCK; b < p.below; b += p.count * BLOCK)
        for (uint32_t n = b; n < b + BLOCK && n < p.below; n++)
            found += is_prime(n);
    memcpy(out, &found, sizeof found);
    *out_size = sizeof found;
    return 0; /* 0 = success */
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Runs all parts on a fresh pool of @backend; returns the seconds taken, or -1. */
static double on_pool(exec_backend_t backend, const struct part *parts, int64_t *total)
{
    exec_config_t cfg = {0}; /* workers 0: one per CPU this process may use */
    cfg.backend = backend;
    double t0 = now();
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return -1;
    }
    int64_t counts[PARTS];
    exec_map_opts_t opts = {0};
    opts.chunk_size = 1; /* one part per hand-out: 16 equal parts share out evenly */
    r = exec_map(ex, count_part, parts, sizeof parts[0], counts, sizeof counts[0], PARTS,
                 &opts);
    exec_destroy(ex); /* waits for the workers to end */
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_map: %s\n", exec_strerror(r));
        return -1;
    }
    *total = 0;
    for (int i = 0; i < PARTS; i++)
        *total += counts[i];
    return now() - t0;
}

int main(void)
{
    struct part parts[PARTS];
    for (int i = 0; i < PARTS; i++)
        parts[i] = (struct part){BELOW, (uint32_t)i, PARTS};

    /* The serial loop: the same task function, called directly over the whole range. */
    struct part whole = {BELOW, 0, 1};
    int64_t serial_total;
    size_t size;
    double t0 = now();
    count_part(&whole, sizeof whole, &serial_total, sizeof serial_total, &size);
    double serial = now() - t0;

    exec_cpu_budget_t budget;
    exec_cpu_budget(NULL, &budget);
    printf("counting the primes below %u (%lld of them) in %d tasks, pools of %d workers\n",
           BELOW, (long long)serial_total, PARTS, budget.workers);
    printf("                       seconds   speedup\n");
    printf("serial loop            %7.2f   %6.2fx\n", serial, 1.0);

    static const struct {
        exec_backend_t backend;
        const char *name;
    } pools[] = {{EXEC_BACKEND_THREADS, "threads"}, {EXEC_BACKEND_PROCESSES, "processes"}};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        int64_t total = 0;
        double s = on_pool(pools[k].backend, parts, &total);
        if (s < 0 || total != serial_total) {
            printf("%-22s failed (total %lld)\n", pools[k].name, (long long)total);
            bad = 1;
            continue;
        }
        printf("%-22s %7.2f   %6.2fx\n", pools[k].name, s, serial / s);
    }
    return bad;
}
