/* SPDX-License-Identifier: MIT */
/*
 * test_recycle.c - recycling holds to the end and retired workers leave nothing behind:
 * tasks still queued at a shutdown each run on a fresh worker, retired worker processes are
 * reaped promptly (never more zombies than workers), and a worker's cache of shared-memory
 * mappings stays small while buffers come and go.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Recycling during a shutdown                                                               */
/* ---------------------------------------------------------------------------------------- */

/* THREADS_ONLY (a thread-local): how many tasks the calling worker thread has run, this one
 * included. */
static int count_runs(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg, (void)arg_size;
    static _Thread_local int64_t runs;
    return task_put_i64(out, out_cap, out_size, ++runs);
}

/* max_tasks_per_child = 1: tasks still queued when exec_shutdown(NOWAIT) is called each run
 * on a thread of their own (each is its thread's first task), not all on the last worker. */
TEST(recycle_threads_queued_at_shutdown)
{
    struct gate g;
    gate_open(&g);
    exec_t *ex = make_with(2, (exec_config_t){.max_tasks_per_child = 1});
    exec_future_t *a = SUBMIT_RUNNING(ex, &g, 1);
    exec_future_t *b = SUBMIT_RUNNING(ex, &g, 2);
    enum { N = 8 };
    exec_future_t *q[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(exec_submit(ex, count_runs, NULL, 0, &q[i]));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_NOWAIT));
    gate_release(&g, 2);
    ASSERT_EQ(wait_i64(a), 1);
    ASSERT_EQ(wait_i64(b), 2);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(wait_i64(q[i]), 1);
    ASSERT_OK(exec_shutdown(ex, 0));
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.retired_tasks, N + 2);
    ASSERT_EQ(st.workers_alive, 0);
    RELEASE_ALL(a, b);
    for (int i = 0; i < N; i++)
        exec_future_release(q[i]);
    destroy_gated(ex, &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Retired workers are reaped                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Appends the pids listed in a /proc/.../children file to @pids (at most @cap). */
static int read_children(const char *path, int *pids, int n, int cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return n;
    int pid;
    while (n < cap && fscanf(f, "%d", &pid) == 1)
        pids[n++] = pid;
    fclose(f);
    return n;
}

/* The state letter of process @pid ('?' if it is gone). */
static char proc_state(int pid)
{
    char st = '?';
    return test_proc_stat((pid_t)pid, &st, NULL, NULL) == 0 ? st : '?';
}

/* Zombies among this process's children and their children (the zygote's workers), from
 * the children lists of /proc (a zombie stays on its parent's list until it is reaped). */
static int count_zombies(void)
{
    enum { CAP = 256 };
    int kids[CAP], n = 0;
    char path[300];
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        n = read_children(path, kids, n, CAP);
    }
    closedir(d);
    int direct = n;
    for (int i = 0; i < direct; i++) {
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", kids[i], kids[i]);
        n = read_children(path, kids, n, CAP);
    }
    int z = 0;
    for (int i = 0; i < n; i++)
        z += proc_state(kids[i]) == 'Z';
    return z;
}

struct sampler {
    _Atomic int stop, max, samples;
};

static void *sample_zombies(void *p)
{
    struct sampler *s = p;
    while (!atomic_load(&s->stop)) {
        int z = count_zombies();
        if (z > atomic_load(&s->max))
            atomic_store(&s->max, z);
        atomic_fetch_add(&s->samples, 1);
        usleep(100); /* leave the CPUs to the pool (2 on the machine this ran on) */
    }
    return NULL;
}

/* PROCESSES_ONLY: 4 workers recycled after every task under steady load (a window of 16
 * tasks in flight): at no sample are there more zombies than workers. */
TEST(recycle_process_zombies_bounded)
{
    enum { W = 4, N = 400, WINDOW = 16 };
    exec_t *ex = make_with(W, (exec_config_t){.max_tasks_per_child = 1});
    struct sampler s;
    atomic_init(&s.stop, 0);
    atomic_init(&s.max, 0);
    atomic_init(&s.samples, 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, sample_zombies, &s), 0);
    exec_future_t *fs[WINDOW] = {0};
    int n = N / test_timeout_scale();
    for (int i = 0; i < n + WINDOW; i++) {
        exec_future_t **slot = &fs[i % WINDOW];
        if (*slot) {
            ASSERT_OK(exec_future_wait(*slot, EXEC_WAIT_FOREVER));
            ASSERT_EQ(exec_future_state(*slot), EXEC_STATE_DONE);
            exec_future_release(*slot);
            *slot = NULL;
        }
        if (i < n)
            ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, slot));
    }
    atomic_store(&s.stop, 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    exec_stats_t st = stats_of(ex);
    ASSERT_GE(st.retired_tasks, (uint64_t)n - W);
    ASSERT_GT(atomic_load(&s.samples), 10);
    int most = atomic_load(&s.max);
    ASSERT_LE(most, W);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* A worker's cache of shared-memory mappings                                                */
/* ---------------------------------------------------------------------------------------- */

/* Maps the buffer its exec_shm_ref_t argument names and returns its first 8 bytes. */
static int map_first(const void *arg, size_t arg_size, void *out, size_t out_cap,
                     size_t *out_size)
{
    exec_shm_ref_t ref;
    if (!task_arg(&ref, sizeof ref, arg, arg_size))
        return BAD_CALL;
    void *p = NULL;
    size_t size = 0;
    int r = exec_shm_map(&ref, 0, &p, &size);
    if (r != 0)
        return -r;
    int64_t v;
    memcpy(&v, p, sizeof v);
    return task_put_i64(out, out_cap, out_size, v);
}

/* The mappings of /dev/shm objects in the calling process (live or removed). */
static int shm_mapped(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg, (void)arg_size;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return READ_FAILED;
    char line[512];
    int64_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "/dev/shm/") != NULL;
    fclose(f);
    return task_put_i64(out, out_cap, out_size, n);
}

/* PROCESSES_ONLY (a worker's own cache): 300 times at full speed, create a buffer, map it in
 * a task, close (and so unlink) it: the one worker keeps only a handful of stale mappings,
 * although it never idles long enough for its periodic trim. */
TEST(recycle_shm_cache_stays_small)
{
    enum { N = 300, WINDOW = 8 };
    exec_t *ex = make_workers(1);
    exec_shm_t *s[WINDOW] = {0};
    exec_future_t *f[WINDOW] = {0};
    /* A window of tasks in flight keeps the worker busy: buffer i is closed once the task
     * that mapped it ended, while the next ones are queued. */
    for (int i = 0; i < N + WINDOW; i++) {
        int k = i % WINDOW;
        if (f[k]) {
            ASSERT_EQ(wait_i64(f[k]), i - WINDOW);
            exec_future_release(f[k]);
            ASSERT_OK(exec_shm_close(s[k]));
            f[k] = NULL;
        }
        if (i >= N)
            continue;
        ASSERT_OK(exec_shm_create(&s[k], NULL, 4096, 0));
        int64_t v = i;
        memcpy(exec_shm_ptr(s[k]), &v, sizeof v);
        exec_shm_ref_t ref;
        ASSERT_OK(exec_shm_ref(s[k], &ref));
        ASSERT_OK(exec_submit(ex, map_first, &ref, sizeof ref, &f[k]));
    }
    exec_future_t *g = NULL;
    ASSERT_OK(exec_submit(ex, shm_mapped, NULL, 0, &g));
    int64_t stale = wait_i64(g);
    exec_future_release(g);
    ASSERT_LE(stale, 2 * WINDOW + 8);
    ASSERT_OK(exec_destroy(ex));
}
