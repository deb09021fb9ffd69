/* SPDX-License-Identifier: MIT */
/*
 * 06_shared_memory.c - big data for workers: through shared memory, or copied through
 * arguments.
 *
 *     06_shared_memory [processes|threads]        (default: processes)
 *
 * A task's argument is copied (example 01): right for a few bytes, wrong for an 80 MB array.
 * Here the parent fills an array of 10,000,000 int64_t (80 MB) and has the workers sum it in
 * slices, two ways:
 *
 *   1. Shared memory: the array lives in a buffer made with exec_shm_create(); each task
 *      receives a 128-byte exec_shm_ref_t plus its slice bounds, and exec_shm_map() gives it
 *      the very same bytes. A worker process maps the buffer on first use and keeps the
 *      mapping for later tasks: the second pass shows that. (On threads the ref resolves to
 *      the parent's own mapping.)
 *   2. Task arguments: each task receives a copy of its slice as argument bytes (so the
 *      executor's max_arg_size is raised to the slice size): 80 MB copied into the workers.
 *
 * The parent checks both totals against n(n-1)/2 and prints the times side by side:
 *
 *   summing 10000000 int64_t (80 MB) in 8 slices on processes, buffer /dev/shm/exec-4242-1
 *     parent fills the buffer           26.9 ms
 *                                        time   vs shm  total
 *     shared memory, first pass        10.8 ms     1.0x  49999995000000 ok
 *     shared memory, mapped already     2.9 ms     0.3x  49999995000000 ok
 *     copied through task arguments   123.1 ms    11.4x  49999995000000 ok
 *
 * (times vary.) Ownership and cleanup: this process created the buffer, so it alone may
 * unlink it. The name is generated ("exec-<pid>-<n>"); exec_shm_close() unmaps and removes
 * it, and if this program died first (even by SIGKILL) the library's guardian process would
 * remove it: nothing is left in /dev/shm. Workers only map it; they never remove it.
 */
#include <executor.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 10000000u
#define SLICES 8u
#define SLICE (N / SLICES)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t sum(const int64_t *v, size_t n)
{
    int64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += v[i];
    return t;
}

static int put(void *out, size_t cap, size_t *out_size, int64_t t)
{
    if (cap < sizeof t)
        return 2;
    memcpy(out, &t, sizeof t);
    *out_size = sizeof t;
    return 0;
}

/* The argument of a shared-memory task: which buffer, which slice. */
struct slice {
    exec_shm_ref_t ref;
    uint64_t lo, hi;
};

static int sum_shm(const void *arg, size_t arg_size, void *out, size_t cap, size_t *out_size)
{
    struct slice s;
    if (arg_size != sizeof s)
        return 1;
    memcpy(&s, arg, sizeof s);
    void *p;
    size_t size;
    if (exec_shm_map(&s.ref, EXEC_SHM_RDONLY, &p, &size) != 0 || s.hi * sizeof(int64_t) > size)
        return 3;
    return put(out, cap, out_size, sum((const int64_t *)p + s.lo, s.hi - s.lo));
}

static int sum_arg(const void *arg, size_t arg_size, void *out, size_t cap, size_t *out_size)
{
    return put(out, cap, out_size, sum(arg, arg_size / sizeof(int64_t)));
}

/* Wait for every future, add up their results, release them. -1 on any failure. */
static int collect(exec_future_t **fs, int64_t *total)
{
    int bad = 0;
    *total = 0;
    for (unsigned k = 0; k < SLICES; k++) {
        const void *r;
        size_t n;
        int64_t t;
        exec_future_wait(fs[k], EXEC_WAIT_FOREVER);
        int code = exec_future_result(fs[k], &r, &n);
        if (code == 0 && n == sizeof t) {
            memcpy(&t, r, sizeof t);
            *total += t;
        } else {
            fprintf(stderr, "slice %u: %s\n", k, exec_strerror(code));
            bad = 1;
        }
        exec_future_release(fs[k]);
    }
    return bad ? -1 : 0;
}

static int pass_shm(exec_t *ex, const exec_shm_t *buf, int64_t *total)
{
    exec_future_t *fs[SLICES];
    for (unsigned k = 0; k < SLICES; k++) {
        struct slice s = {.lo = (uint64_t)k * SLICE, .hi = (uint64_t)(k + 1) * SLICE};
        exec_shm_ref(buf, &s.ref);
        int r = exec_submit(ex, sum_shm, &s, sizeof s, &fs[k]);
        if (r != 0) {
            fprintf(stderr, "exec_submit: %s\n", exec_strerror(r));
            return -1; /* (the futures already submitted are leaked: we exit anyway) */
        }
    }
    return collect(fs, total);
}

static int pass_args(exec_t *ex, const int64_t *v, int64_t *total)
{
    exec_future_t *fs[SLICES];
    for (unsigned k = 0; k < SLICES; k++) {
        int r = exec_submit(ex, sum_arg, v + (size_t)k * SLICE, SLICE * sizeof *v, &fs[k]);
        if (r != 0) {
            fprintf(stderr, "exec_submit: %s\n", exec_strerror(r));
            return -1;
        }
    }
    return collect(fs, total);
}

int main(int argc, char **argv)
{
    exec_config_t cfg = {0};
    const char *backend = argc > 1 ? argv[1] : "processes";
    if (strcmp(backend, "processes") == 0) {
        cfg.backend = EXEC_BACKEND_PROCESSES;
    } else if (strcmp(backend, "threads") != 0) {
        fprintf(stderr, "usage: %s [processes|threads]\n", argv[0]);
        return 2;
    }
    cfg.max_arg_size = SLICE * sizeof(int64_t); /* 10 MB: for the argument-copy pass */

    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != 0) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }

    exec_shm_t *buf;
    r = exec_shm_create(&buf, NULL, N * sizeof(int64_t), 0);
    if (r != 0) {
        fprintf(stderr, "exec_shm_create: %s\n", exec_strerror(r));
        exec_destroy(ex);
        return 1;
    }
    int64_t *v = exec_shm_ptr(buf);
    double t0 = now_ms();
    for (uint32_t i = 0; i < N; i++)
        v[i] = (int64_t)i;
    double fill_ms = now_ms() - t0;
    const int64_t want = (int64_t)N * (N - 1) / 2;

    int64_t t_shm1, t_shm2, t_arg;
    t0 = now_ms();
    int bad = pass_shm(ex, buf, &t_shm1);
    double shm1_ms = now_ms() - t0;
    t0 = now_ms();
    bad |= pass_shm(ex, buf, &t_shm2);
    double shm2_ms = now_ms() - t0;
    t0 = now_ms();
    bad |= pass_args(ex, v, &t_arg);
    double arg_ms = now_ms() - t0;

    printf("summing %u int64_t (%u MB) in %u slices on %s, buffer /dev/shm/%s\n", N,
           (unsigned)(N * sizeof(int64_t) / 1000000), SLICES, backend, exec_shm_name(buf));
    printf("  parent fills the buffer       %8.1f ms\n", fill_ms);
    printf("  %-30s %8s %8s  %s\n", "", "time", "vs shm", "total");
    printf("  %-30s %6.1f ms %8s  %lld %s\n", "shared memory, first pass", shm1_ms, "1.0x",
           (long long)t_shm1, t_shm1 == want ? "ok" : "WRONG");
    printf("  %-30s %6.1f ms %7.1fx  %lld %s\n", "shared memory, mapped already", shm2_ms,
           shm2_ms / shm1_ms, (long long)t_shm2, t_shm2 == want ? "ok" : "WRONG");
    printf("  %-30s %6.1f ms %7.1fx  %lld %s\n", "copied through task arguments", arg_ms,
           arg_ms / shm1_ms, (long long)t_arg, t_arg == want ? "ok" : "WRONG");

    exec_destroy(ex);
    exec_shm_close(buf);
    return bad || t_shm1 != want || t_shm2 != want || t_arg != want;
}
