/* SPDX-License-Identifier: MIT */
/*
 * 03_c_gil.c - C's own "GIL": a library that takes one global mutex in every call.
 *
 * Many C libraries were written for one thread and made "thread-safe" later the simplest
 * way: one global mutex around every call (or around their global state, which every call
 * touches). Such a library is a global interpreter lock in all but name. Here the "library"
 * is lib_count_primes() below; the tasks do nothing but call it.
 *
 *   - On threads, every call waits for the lock: one call runs at a time, whatever the
 *     number of threads. About 1x.
 *   - In worker processes, each process has its own copy of the library: its code, its
 *     globals and its mutex. Two processes make two calls at the same time. About 2x on
 *     2 cores.
 *
 * The lesson: in C it is not the language that decides whether threads run in parallel (C
 * has no GIL, see 02_cpu_bound.c) but the libraries your tasks call. If one serialises,
 * move those tasks to a process pool: one field of the config, no other code change.
 *
 * The last lines show the other side of the coin: the library's call counter (its global
 * state) in this process saw the serial and the thread calls, but not the calls made in the
 * worker processes, which counted in their own copies. A process worker never shares
 * globals with the parent (use shared memory for that, 06_shared_memory.c).
 *
 * Output (times vary):
 *   16 calls of a library that holds one global mutex per call, pools of 2 workers
 *                          seconds   speedup
 *   serial loop               0.60     1.00x
 *   threads                   0.60     1.01x
 *   processes                 0.30     1.98x
 *   calls the library counted in this process: serial 16, threads 16, processes 0
 */
#include <executor.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the "library": global state, one global lock ------------------------------------- */

static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
static int lib_calls; /* global state that the lock protects */

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* Counts the primes in [lo, hi). Holds the library's lock for the whole call. */
static int64_t lib_count_primes(uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&lib_lock);
    lib_calls++;
    int64_t found = 0;
    for (uint64_t n = lo; n < hi; n++)
        found += is_prime(n);
    pthread_mutex_unlock(&lib_lock);
    return found;
}

/* ---- the program ---------------------------------------------------------------------- */

#define CALLS 16
#define SPAN 200000u /* numbers per call: the same amount of work in every call */

/* The task: one call of the library. Argument: the first number (uint64_t). */
static int call_library(const void *arg, size_t arg_size, void *out, size_t out_cap,
                        size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    uint64_t lo;
    memcpy(&lo, arg, sizeof lo);
    int64_t found = lib_count_primes(lo, lo + SPAN);
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

/* All calls on a fresh pool of @backend; returns the seconds taken (pool start and stop
 * included), or -1. */
static double on_pool(exec_backend_t backend, const uint64_t *starts, int64_t *total)
{
    exec_config_t cfg = {0};
    cfg.backend = backend;
    double t0 = now();
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return -1;
    }
    int64_t found[CALLS];
    exec_map_opts_t opts = {0};
    opts.chunk_size = 1;
    r = exec_map(ex, call_library, starts, sizeof starts[0], found, sizeof found[0], CALLS,
                 &opts);
    exec_destroy(ex);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_map: %s\n", exec_strerror(r));
        return -1;
    }
    *total = 0;
    for (int i = 0; i < CALLS; i++)
        *total += found[i];
    return now() - t0;
}

int main(void)
{
    uint64_t starts[CALLS];
    for (int i = 0; i < CALLS; i++)
        starts[i] = 4000000u + (uint64_t)i * SPAN;

    double t0 = now();
    int64_t serial_total = 0;
    for (int i = 0; i < CALLS; i++)
        serial_total += lib_count_primes(starts[i], starts[i] + SPAN);
    double serial = now() - t0;
    int counted[3] = {lib_calls, 0, 0};

    exec_cpu_budget_t budget;
    exec_cpu_budget(NULL, &budget);
    printf("%d calls of a library that holds one global mutex per call, pools of %d workers\n",
           CALLS, budget.workers);
    printf("                       seconds   speedup\n");
    printf("serial loop            %7.2f   %6.2fx\n", serial, 1.0);

    static const struct {
        exec_backend_t backend;
        const char *name;
    } pools[] = {{EXEC_BACKEND_THREADS, "threads"}, {EXEC_BACKEND_PROCESSES, "processes"}};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        int before = lib_calls;
        int64_t total = 0;
        double s = on_pool(pools[k].backend, starts, &total);
        counted[k + 1] = lib_calls - before;
        if (s < 0 || total != serial_total) {
            printf("%-22s failed (total %lld)\n", pools[k].name, (long long)total);
            bad = 1;
            continue;
        }
        printf("%-22s %7.2f   %6.2fx\n", pools[k].name, s, serial / s);
    }
    printf("calls the library counted in this process: serial %d, threads %d, processes %d\n",
           counted[0], counted[1], counted[2]);
    return bad;
}
