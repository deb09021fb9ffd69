/* SPDX-License-Identifier: MIT */
/*
 * 11_nested.c - divide and conquer: a parallel merge sort of 10 million ints whose tasks
 * submit and wait for their own subtasks.
 *
 * A thread worker that waits on a future of its own pool does not block the pool: while it
 * waits it runs queued tasks itself. So a task tree of any shape completes even on one
 * worker. (This needs the thread backend: a task in a worker process cannot reach the
 * parent's executor, and the array lives in the parent's memory.)
 */
#include <executor.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 10000000
#define CUTOFF 100000 /* below this many ints, sort serially */

struct job {
    exec_t *ex; /* the executor itself travels in the argument bytes: fine on threads */
    int *a, *tmp;
    size_t lo, hi;
};

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

static void merge(int *a, int *tmp, size_t lo, size_t mid, size_t hi)
{
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi)
        tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < hi)
        tmp[k++] = a[j++];
    memcpy(a + lo, tmp + lo, (hi - lo) * sizeof *a);
}

static int sort_task(const void *arg, size_t arg_size, void *out, size_t cap, size_t *len)
{
    (void)arg_size, (void)out, (void)cap, (void)len;
    struct job j;
    memcpy(&j, arg, sizeof j);
    if (j.hi - j.lo <= CUTOFF) {
        qsort(j.a + j.lo, j.hi - j.lo, sizeof *j.a, cmp_int);
        return 0;
    }
    size_t mid = j.lo + (j.hi - j.lo) / 2;
    struct job left = j, right = j;
    left.hi = mid;
    right.lo = mid;
    exec_future_t *f;
    /* The left half goes to the pool; this task sorts the right half itself. */
    if (exec_submit(j.ex, sort_task, &left, sizeof left, &f) != 0)
        return 1;
    int r = sort_task(&right, sizeof right, NULL, 0, NULL);
    exec_future_wait(f, EXEC_WAIT_FOREVER); /* runs queued work while waiting */
    if (exec_future_result(f, NULL, NULL) != 0)
        r = 1;
    exec_future_release(f);
    if (r == 0)
        merge(j.a, j.tmp, j.lo, mid, j.hi);
    return r;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    int *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *tmp = malloc(N * sizeof *tmp);
    if (!a || !b || !tmp)
        return 1;
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = b[i] = (int)(x >> 1);
    }

    double t0 = now();
    qsort(b, N, sizeof *b, cmp_int);
    double serial = now() - t0;

    exec_t *ex;
    if (exec_create(&ex, NULL) != 0)
        return 1;
    struct job j = {ex, a, tmp, 0, N};
    exec_future_t *f;
    t0 = now();
    int r = exec_submit(ex, sort_task, &j, sizeof j, &f);
    if (r == 0) {
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        r = exec_future_result(f, NULL, NULL);
        exec_future_release(f);
    }
    double par = now() - t0;
    exec_stats_t st;
    exec_stats(ex, &st);
    exec_destroy(ex);

    int sorted = r == 0 && memcmp(a, b, N * sizeof *a) == 0;
    printf("sorted %d ints: %s\n", N, sorted ? "yes" : "NO");
    printf("qsort, 1 thread:        %.2f s\n", serial);
    printf("merge sort, %d workers: %.2f s (%.1fx), %llu tasks\n", (int)st.workers_alive,
           par, serial / par, (unsigned long long)st.submitted);
    free(a);
    free(b);
    free(tmp);
    return sorted ? 0 : 1;
}
