/* SPDX-License-Identifier: MIT */
/*
 * leaky.c - a task that leaks memory, kept in bounds by recycling its worker.
 *
 * Each call of leak() allocates 4 MiB and never frees it (think of a library with a leak you
 * cannot fix). On a thread pool the program would grow by 4 MiB per task forever. With
 * max_rss_per_child, a worker process whose resident memory exceeds the limit after a task
 * retires and a fresh one takes its place: memory stays bounded, no task is lost.
 *
 * Output (the counts vary a little):
 *   ran 200 leaky tasks (800 MiB leaked in all)
 *   largest worker: 3x MiB (limit 32 MiB + one task's leak)
 *   workers recycled for memory: 2x
 */
#include <executor.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAK (4u << 20)

/* The leaked blocks escape here, so that the compiler keeps the memset that makes them
 * resident (writes to a block nobody can see again may be optimised away). */
static void *volatile leaked;

/* Leaks LEAK bytes (touched, so they count as resident) and returns its RSS in MiB. */
static int leak(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out_cap;
    char *p = malloc(LEAK);
    if (!p)
        return 1;
    memset(p, 1, LEAK);
    leaked = p; /* never freed */
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    int64_t mib = rss * 4096 / (1 << 20);
    memcpy(out, &mib, sizeof mib);
    *out_size = sizeof mib;
    return 0;
}

int main(void)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = 2;
    cfg.max_rss_per_child = 32u << 20; /* retire a worker above 32 MiB */
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    enum { N = 200 };
    exec_future_t *fs[N];
    for (int i = 0; i < N; i++)
        exec_submit(ex, leak, NULL, 0, &fs[i]);
    int ok = 0;
    int64_t biggest = 0;
    for (int i = 0; i < N; i++) {
        const void *res;
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        if (exec_future_result(fs[i], &res, NULL) == EXEC_OK) {
            ok++;
            int64_t mib = *(const int64_t *)res;
            if (mib > biggest)
                biggest = mib;
        }
        exec_future_release(fs[i]);
    }
    exec_stats_t st;
    exec_stats(ex, &st);
    exec_destroy(ex);
    printf("ran %d leaky tasks (%d MiB leaked in all)\n", ok, ok * (int)(LEAK >> 20));
    printf("largest worker: %lld MiB (limit 32 MiB + one task's leak)\n", (long long)biggest);
    printf("workers recycled for memory: %llu\n", (unsigned long long)st.retired_memory);
    return ok == N && st.retired_memory > 0 ? 0 : 1;
}
