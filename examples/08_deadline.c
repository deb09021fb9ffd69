/* SPDX-License-Identifier: MIT */
/*
 * 08_deadline.c - a stuck task is killed at its deadline; a polite one stops by itself.
 *
 * A thread that loops forever cannot be stopped; a process can. With a timeout, the process
 * backend fails the future with EXEC_ETIMEDOUT at the deadline, sends the worker SIGTERM,
 * waits kill_grace_ms and then sends SIGKILL, and starts a fresh worker. A task that polls
 * exec_task_should_stop() sees the SIGTERM and can return early (its result is discarded).
 *
 * On the thread backend the same timeout fails the future at the deadline too, and sets the
 * stop flag that exec_task_should_stop() reads: the polite task would return, but the stuck
 * one would keep its thread busy forever (and exec_destroy() would wait for it forever).
 * Cooperative stop flags suit code you wrote; hard deadlines need processes.
 *
 * Output (times vary a little):
 *   stuck task: EXEC_ETIMEDOUT after 2xx ms
 *   polite task: EXEC_ETIMEDOUT after 2xx ms
 *   the pool still works: 6 * 7 = 42
 */
#include <executor.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int stuck(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    for (volatile unsigned long i = 0;; i++) /* ignores every request to stop */
        ;
    return 0;
}

static int polite(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    while (!exec_task_should_stop()) {
        struct timespec ts = {0, 1000000}; /* "work" in 1 ms steps */
        nanosleep(&ts, NULL);
    }
    return 1; /* whatever it returns now is discarded */
}

static int mul(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    int32_t v[2];
    (void)arg_size, (void)out_cap;
    memcpy(v, arg, sizeof v);
    int32_t p = v[0] * v[1];
    memcpy(out, &p, sizeof p);
    *out_size = sizeof p;
    return 0;
}

static long long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void run(exec_t *ex, exec_task_fn *fn, const char *name)
{
    exec_submit_opts_t opts = {0};
    opts.timeout_ms = 200; /* this task only; cfg.timeout_ms would set it for all */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    exec_future_t *f;
    int r = exec_submit_ex(ex, fn, NULL, 0, &opts, &f);
    if (r != EXEC_OK) {
        printf("%s task: not submitted: %s\n", name, exec_strerror(r));
        return;
    }
    exec_future_wait(f, EXEC_WAIT_FOREVER);
    printf("%s task: %s after %lld ms\n", name, exec_errname(exec_future_result(f, NULL, NULL)),
           ms_since(&t0));
    exec_future_release(f);
}

int main(void)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = 1;
    cfg.kill_grace_ms = 100; /* SIGTERM, then SIGKILL 100 ms later */
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    run(ex, stuck, "stuck");
    run(ex, polite, "polite");

    int32_t v[2] = {6, 7};
    exec_future_t *f;
    const void *res;
    r = exec_submit(ex, mul, v, sizeof v, &f);
    if (r == EXEC_OK) {
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        r = exec_future_result(f, &res, NULL);
        if (r == EXEC_OK)
            printf("the pool still works: 6 * 7 = %d\n", *(const int32_t *)res);
        exec_future_release(f);
    }
    exec_destroy(ex);
    return r == EXEC_OK ? 0 : 1;
}
