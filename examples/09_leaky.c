/* SPDX-License-Identifier: MIT */
/*
 * 09_leaky.c - recycling workers keeps a leaky library's memory bounded.
 *
 * Each call of leak() allocates 1 MiB and never frees it: think of a library with a leak
 * you cannot fix. Run in a long-lived worker, such a task makes the worker grow by 1 MiB per
 * call, forever; on a thread pool the whole program would grow with it.
 *
 * The process backend can retire a worker and start a fresh one (whose memory starts
 * small again) after max_tasks_per_child tasks, or as soon as its resident memory exceeds
 * max_rss_per_child. No task is lost or run twice by that. The program runs 200 leaky
 * calls on 2 worker processes three times: without recycling, with max_tasks_per_child =
 * 20, and with max_rss_per_child = 32 MiB. Each task reports its worker's resident memory
 * (RSS) after its leak; the table shows the largest, the peak RSS of any worker.
 *
 * Output (the figures vary a little):
 *   200 calls of a task that leaks 1 MiB per call, on 2 worker processes
 *                                    peak worker RSS   workers recycled
 *   without recycling                        180 MiB                  0
 *   max_tasks_per_child = 20                  21 MiB                 10
 *   max_rss_per_child = 32 MiB                33 MiB                  6
 *   recycling bounded the workers' memory: yes
 *
 * (Without recycling each worker keeps every MiB it leaked until the pool ends; how the
 * 200 calls fall on the 2 workers varies, so that peak lies between about 100 and 200 MiB.)
 * Recycling is a bound, not a fix: a worker's memory still grows between two restarts,
 * and a restart costs a fork (a fraction of a millisecond here, see docs/performance.md),
 * so pick the largest count your memory budget allows.
 */
#include <executor.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CALLS 200
#define LEAK ((size_t)1 << 20)
#define MIB (1024 * 1024)

/* The leaked blocks escape here, so that the compiler keeps the memset that makes them
 * resident (writes to a block nobody can see again may be optimised away). */
static void *volatile leaked;

/* Resident memory of the calling process, in bytes (0 if unknown). */
static int64_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* The task: leaks LEAK bytes (touched, so they are resident) and returns its RSS. */
static int leak(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out_cap;
    char *p = malloc(LEAK);
    if (p == NULL)
        return 1;
    memset(p, 1, LEAK);
    leaked = p; /* never freed */
    int64_t rss = rss_bytes();
    memcpy(out, &rss, sizeof rss);
    *out_size = sizeof rss;
    return 0;
}

/* Runs the CALLS leaky tasks on a fresh process pool made from @cfg. Returns the peak
 * worker RSS in bytes (-1 on failure) and the number of workers recycled in *@recycled. */
static int64_t run(exec_config_t cfg, uint64_t *recycled)
{
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = 2;
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return -1;
    }
    exec_future_t *fs[CALLS];
    int submitted = 0, ok = 0;
    while (submitted < CALLS && exec_submit(ex, leak, NULL, 0, &fs[submitted]) == EXEC_OK)
        submitted++;
    int64_t peak = 0;
    for (int i = 0; i < submitted; i++) {
        const void *res;
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        if (exec_future_result(fs[i], &res, NULL) == EXEC_OK) {
            int64_t rss;
            memcpy(&rss, res, sizeof rss);
            peak = rss > peak ? rss : peak;
            ok++;
        }
        exec_future_release(fs[i]);
    }
    /* Stats may lag a moment behind the futures: shut down first, so that every worker
     * has ended and been counted, then read them. */
    exec_shutdown(ex, 0);
    exec_stats_t st;
    exec_stats(ex, &st);
    exec_destroy(ex);
    *recycled = st.retired_tasks + st.retired_memory;
    return ok == CALLS ? peak : -1;
}

int main(void)
{
    exec_config_t plain = {0}, by_count = {0}, by_rss = {0};
    by_count.max_tasks_per_child = 20;
    by_rss.max_rss_per_child = (size_t)32 * MIB;
    static const char *const names[] = {"without recycling", "max_tasks_per_child = 20",
                                        "max_rss_per_child = 32 MiB"};
    const exec_config_t *cfgs[] = {&plain, &by_count, &by_rss};

    printf("%d calls of a task that leaks %zu MiB per call, on 2 worker processes\n", CALLS,
           LEAK / MIB);
    printf("%-32s %15s %18s\n", "", "peak worker RSS", "workers recycled");
    int64_t peak[3];
    for (int k = 0; k < 3; k++) {
        uint64_t recycled = 0;
        peak[k] = run(*cfgs[k], &recycled);
        if (peak[k] < 0) {
            printf("%-32s failed\n", names[k]);
            return 1;
        }
        printf("%-32s %11lld MiB %18llu\n", names[k], (long long)(peak[k] / MIB),
               (unsigned long long)recycled);
    }
    int bounded = peak[1] < peak[0] && peak[2] < peak[0];
    printf("recycling bounded the workers' memory: %s\n", bounded ? "yes" : "no");
    return bounded ? 0 : 1;
}
