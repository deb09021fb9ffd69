/* SPDX-License-Identifier: MIT */
/*
 * 14_timeline.c - a run worth looking at on a timeline: the trace behind the picture of
 * docs/guide.md, "A timeline of a run".
 *
 *   14_timeline [TRACE_FILE]
 *
 * writes the trace of a small process pool to TRACE_FILE (Trace Event JSON: open it in
 * ui.perfetto.dev or chrome://tracing, or draw it with tests/tooling/trace-plot.py). Without
 * an argument the program runs untraced, unless EXEC_TRACE names a file: the variable traces
 * any program without recompiling it.
 *
 * The pool has 2 workers, each retired after 12 tasks (max_tasks_per_child). It runs four
 * scenes, one after the other:
 *
 *   1. a slow task (60 ms) and 16 short ones (3 ms) submitted at once: a few of them wait
 *      in the slow worker's queue behind it until the supervisor takes them back for the
 *      other worker;
 *   2. a task that crashes (SIGSEGV) among short ones: its worker dies, the task fails with
 *      EXEC_ECRASHED, and a fresh worker takes the slot;
 *   3. a task that runs past its 20 ms deadline: it fails with EXEC_ETIMEDOUT and its worker
 *      is killed and replaced;
 *   4. a stream of short tasks, on which workers keep reaching their 12 tasks and retiring.
 */
#include <executor.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SHORT_MS 3
#define SLOW_MS 60

/* Sleep @ms, or less if asked to stop (a deadline). */
static int sleep_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    int32_t ms;
    (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    memcpy(&ms, arg, sizeof ms);
    for (int32_t i = 0; i < ms && !exec_task_should_stop(); i++) {
        struct timespec one = {0, 1000000};
        nanosleep(&one, NULL);
    }
    return 0;
}

static int crash_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    raise(SIGSEGV); /* a bug in a library: only this worker dies */
    return 0;
}

/* Submit @n tasks sleeping SHORT_MS each, except task @special, which runs @fn (NULL:
 * sleeps SLOW_MS); wait for them all. Returns how many failed (each is printed), -1 if a
 * submit failed. */
static int batch(exec_t *ex, int n, int special, exec_task_fn *fn)
{
    exec_future_t *fs[32];
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int32_t ms = i == special ? SLOW_MS : SHORT_MS;
        exec_task_fn *task = i == special && fn ? fn : sleep_task;
        if (exec_submit(ex, task, &ms, sizeof ms, &fs[i]) != 0)
            return -1;
    }
    for (int i = 0; i < n; i++) {
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        int r = exec_future_result(fs[i], NULL, NULL);
        if (r != EXEC_OK) {
            exec_fault_t ft;
            exec_future_fault(fs[i], &ft);
            printf("  task %d: %s (signal %d)\n", i, exec_errname(r), ft.signal);
            failed++;
        }
        exec_future_release(fs[i]);
    }
    return failed;
}

int main(int argc, char **argv)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = 2;
    cfg.max_tasks_per_child = 12;
    cfg.trace_path = argc > 1 ? argv[1] : NULL; /* EXEC_TRACE, if set, wins */
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    int bad = 0;

    printf("1. a slow task and 16 short ones\n");
    bad += batch(ex, 17, 0, NULL) != 0;

    printf("2. a crash among short tasks\n");
    bad += batch(ex, 9, 3, crash_task) != 1;

    printf("3. a task past its deadline\n");
    exec_submit_opts_t late = {0};
    late.timeout_ms = 20;
    int32_t long_ms = 500;
    exec_future_t *f;
    if (exec_submit_ex(ex, sleep_task, &long_ms, sizeof long_ms, &late, &f) != 0)
        return 1;
    exec_future_wait(f, EXEC_WAIT_FOREVER);
    printf("  the late task: %s\n", exec_errname(exec_future_result(f, NULL, NULL)));
    bad += exec_future_result(f, NULL, NULL) != EXEC_ETIMEDOUT;
    exec_future_release(f);

    printf("4. short tasks while workers recycle\n");
    bad += batch(ex, 30, -1, NULL) != 0;

    exec_shutdown(ex, 0);
    exec_stats_t st;
    exec_stats(ex, &st);
    printf("workers replaced: %llu after 12 tasks, %llu after a crash, %llu at a deadline\n",
           (unsigned long long)st.retired_tasks, (unsigned long long)st.retired_crash,
           (unsigned long long)st.retired_timeout);
    exec_destroy(ex);
    if (bad) {
        printf("unexpected outcomes\n");
        return 1;
    }
    printf("all scenes ran as expected%s%s\n", cfg.trace_path ? "; trace: " : "",
           cfg.trace_path ? cfg.trace_path : "");
    return 0;
}
