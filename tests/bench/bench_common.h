/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - what the benchmark programs of tests/bench/ share: a monotonic clock,
 * medians and percentiles, a raw futex ping-pong (the floor of any sleeping hand-off between
 * two threads), a primes kernel, and a small fixed-width table printer.
 *
 * Everything is `static inline` so that each benchmark stays a single-file program (the
 * Makefile builds tests/bench/<name>.c into $(BUILD)/bench/<name>) and unused helpers cost
 * no warning. This header is not part of the library.
 */
#ifndef EXEC_BENCH_COMMON_H
#define EXEC_BENCH_COMMON_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* ---------------------------------------------------------------------------------------- */
/* Time and statistics                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The @p-th percentile (0..100, nearest rank) of @v; sorts @v in place. */
static inline uint64_t bench_percentile_u64(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_u64);
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.5);
    if (rank > 0)
        rank--;
    if (rank >= n)
        rank = n - 1;
    return v[rank];
}

/* The median of @n doubles (sorted in place); the mean of the two middle ones if @n even. */
static inline double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------------------------------- */
/* Load from other processes                                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * On a machine shared with other people, a slow figure may be the pool's fault or may be
 * someone's compiler taking a CPU. A sampler reads the machine's busy time (/proc/stat) and
 * this process's CPU time around a measurement; the difference, divided by the wall time,
 * is how many CPUs other processes used meanwhile. Resolution: one clock tick (10 ms).
 */
struct bench_load {
    uint64_t t0_ns;
    double busy0_s; /* machine busy time at the start, seconds; < 0 if unknown */
    double self0_s; /* this process's CPU time at the start */
};

static inline double bench_machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
}

static inline double bench_self_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_load_begin(struct bench_load *l)
{
    l->busy0_s = bench_machine_busy_s();
    l->self0_s = bench_self_cpu_s();
    l->t0_ns = bench_now_ns();
}

/* CPUs used on average by other processes since bench_load_begin(); -1 if unknown. Child
 * processes of this one (a process pool's workers) count as "other" here. */
static inline double bench_load_others(const struct bench_load *l)
{
    double busy = bench_machine_busy_s(), self = bench_self_cpu_s();
    double wall = (double)(bench_now_ns() - l->t0_ns) / 1e9;
    if (busy < 0 || l->busy0_s < 0 || wall <= 0)
        return -1;
    double others = ((busy - l->busy0_s) - (self - l->self0_s)) / wall;
    return others < 0 ? 0 : others;
}

/* ---------------------------------------------------------------------------------------- */
/* CPU placement                                                                             */
/* ---------------------------------------------------------------------------------------- */

/*
 * On a small virtual machine a wake-up costs 5-10x more when the woken thread sits on
 * another CPU (an inter-processor interrupt to a vCPU that may be halted or busy with someone
 * else's work) than when it shares the waker's CPU. Unpinned threads land either way, run by
 * run, so round-trip figures are only comparable with the placement fixed.
 */

/* Pin the calling thread to @set. 0 or an errno. */
static inline int bench_pin_set(const cpu_set_t *set)
{
    return pthread_setaffinity_np(pthread_self(), sizeof *set, set);
}

/* Pin the calling thread to one CPU. 0 or an errno. */
static inline int bench_pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return bench_pin_set(&set);
}

/* The first @max CPUs of @set into @cpus; returns how many were found. */
static inline int bench_first_cpus(const cpu_set_t *set, int *cpus, int max)
{
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, set))
            cpus[n++] = c;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw futex ping-pong: the floor of a round trip through a sleeping worker                  */
/* ---------------------------------------------------------------------------------------- */

static inline void bench_futex_wait(_Atomic uint32_t *w, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static inline void bench_futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * Two threads pass a token through two futex words: the caller sets `ping` and wakes the
 * partner, which sets `pong` and wakes the caller back. Neither spins: each side sleeps in
 * FUTEX_WAIT until woken, which is what a pool's worker and its caller do once they have
 * gone idle. One round trip = two wake-ups and two sleeps, the same as "submit a task to a
 * parked worker and sleep until it is done".
 *
 * The partner lives across calls of bench_pingpong_run(), so that a benchmark can
 * interleave blocks of ping-pongs with blocks of the round trips it compares them with: on
 * a shared machine the floor moves (by 5x here, depending on what else runs), and only
 * samples taken in the same moments compare fairly.
 */
struct bench_pingpong {
    _Atomic uint32_t ping; /* round number sent by the caller; 0 = none yet */
    _Atomic uint32_t pong; /* round number echoed by the partner */
    uint32_t rounds;       /* total the partner serves before it exits */
    int cpu;               /* CPU the partner pins itself to; -1 = none */
    pthread_t partner;
};

static inline void *bench_pingpong_partner(void *p)
{
    struct bench_pingpong *pp = p;
    if (pp->cpu >= 0)
        bench_pin_cpu(pp->cpu);
    for (uint32_t r = 1; r <= pp->rounds; r++) {
        while (atomic_load_explicit(&pp->ping, memory_order_acquire) != r)
            bench_futex_wait(&pp->ping, r - 1);
        atomic_store_explicit(&pp->pong, r, memory_order_release);
        bench_futex_wake(&pp->pong);
    }
    return NULL;
}

/* Start a partner, pinned to @cpu unless it is -1, that will serve @rounds round trips in
 * all. 0 or an errno. */
static inline int bench_pingpong_start(struct bench_pingpong *pp, uint32_t rounds, int cpu)
{
    atomic_init(&pp->ping, 0);
    atomic_init(&pp->pong, 0);
    pp->rounds = rounds;
    pp->cpu = cpu;
    return pthread_create(&pp->partner, NULL, bench_pingpong_partner, pp);
}

/* Run @n more round trips, storing each one's nanoseconds in @ns[] (NULL: do not record). */
static inline void bench_pingpong_run(struct bench_pingpong *pp, uint32_t n, uint64_t *ns)
{
    uint32_t r = atomic_load_explicit(&pp->pong, memory_order_relaxed);
    for (uint32_t i = 0; i < n && r < pp->rounds; i++) {
        r++;
        uint64_t t0 = bench_now_ns();
        atomic_store_explicit(&pp->ping, r, memory_order_release);
        bench_futex_wake(&pp->ping);
        while (atomic_load_explicit(&pp->pong, memory_order_acquire) != r)
            bench_futex_wait(&pp->pong, r - 1);
        if (ns)
            ns[i] = bench_now_ns() - t0;
    }
}

/* Serve what is left of the partner's rounds, then join it. */
static inline void bench_pingpong_stop(struct bench_pingpong *pp)
{
    bench_pingpong_run(pp, UINT32_MAX, NULL);
    pthread_join(pp->partner, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* CPU-bound kernel: counting primes by trial division                                       */
/* ---------------------------------------------------------------------------------------- */

static inline bool bench_is_prime(uint64_t n)
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

/*
 * Count the primes in [lo, hi) that belong to part @k of @parts: the range is cut into
 * blocks of @block numbers dealt round-robin to the parts (block b goes to part b % parts).
 * Trial division costs more for bigger numbers, so contiguous halves would give one worker
 * far more work than the other; dealing small blocks gives every part the same mix.
 */
static inline uint64_t bench_count_primes(uint64_t lo, uint64_t hi, uint64_t k,
                                          uint64_t parts, uint64_t block)
{
    uint64_t count = 0;
    for (uint64_t b = lo + k * block; b < hi; b += parts * block) {
        uint64_t end = b + block < hi ? b + block : hi;
        for (uint64_t n = b; n < end; n++)
            count += bench_is_prime(n);
    }
    return count;
}

/* ---------------------------------------------------------------------------------------- */
/* Formatting                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A rate with a unit suffix ("12.3 M/s") into @buf. */
static inline const char *bench_fmt_rate(char *buf, size_t cap, double per_s)
{
    if (per_s >= 1e9)
        snprintf(buf, cap, "%.2f G/s", per_s / 1e9);
    else if (per_s >= 1e6)
        snprintf(buf, cap, "%.2f M/s", per_s / 1e6);
    else if (per_s >= 1e3)
        snprintf(buf, cap, "%.1f k/s", per_s / 1e3);
    else
        snprintf(buf, cap, "%.0f /s", per_s);
    return buf;
}

/* Microseconds from nanoseconds ("8.52 us"). */
static inline const char *bench_fmt_us(char *buf, size_t cap, double ns)
{
    snprintf(buf, cap, "%.2f us", ns / 1000.0);
    return buf;
}

static inline const char *bench_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline const char *bench_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}

/* One table row of @ncols cells (at most BENCH_COLS), each left-aligned in its width from
 * @widths; NULL prints as empty. A cell wider than its column pushes the rest right. */
#define BENCH_COLS 12
static inline void bench_row(const int *widths, int ncols, const char *const *cells)
{
    char line[512];
    size_t len = 0;
    for (int i = 0; i < ncols && i < BENCH_COLS && len < sizeof line; i++) {
        int w = snprintf(line + len, sizeof line - len, "%-*s ", widths[i],
                         cells[i] ? cells[i] : "");
        len += w > 0 ? (size_t)w : 0;
    }
    if (len >= sizeof line)
        len = sizeof line - 1;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    printf("%.*s\n", (int)len, line);
    fflush(stdout);
}

#endif /* EXEC_BENCH_COMMON_H */
