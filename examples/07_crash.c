/* SPDX-License-Identifier: MIT */
/*
 * 07_crash.c - a task that crashes takes down its worker process, not the program.
 *
 * On the process backend each task runs in a worker process. Here one task dereferences a
 * bad pointer: its worker dies of SIGSEGV, its future fails with EXEC_ECRASHED (the fault
 * detail says which signal and which worker), a fresh worker takes the dead one's place,
 * and the pool goes on running the other tasks. The same program on the thread backend
 * would die with the task: a signal like SIGSEGV belongs to the whole process, and no
 * library can safely carry on after memory corruption in one of its threads.
 *
 * Output (pids vary):
 *   square(7) = 49
 *   bad task: EXEC_ECRASHED (worker 12345 killed by signal 11)
 *   after the crash: 100 of 100 tasks ok
 */
#include <executor.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int square(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    int64_t x;
    (void)arg_size;
    (void)out_cap;
    memcpy(&x, arg, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_size = sizeof x;
    return 0;
}

/* An address in the first page of memory, which is never mapped. Volatile: the compiler
 * must not know it (a known bad dereference may be compiled into a trap instruction). */
static int *volatile nowhere = (int *)(uintptr_t)64;

static int bad(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    return *nowhere; /* SIGSEGV */
}

int main(void)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    cfg.workers = 2;
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }

    /* An ordinary task. */
    int64_t x = 7;
    exec_future_t *f;
    const void *res;
    if (exec_submit(ex, square, &x, sizeof x, &f) != EXEC_OK)
        return 1;
    exec_future_wait(f, EXEC_WAIT_FOREVER);
    if (exec_future_result(f, &res, NULL) == EXEC_OK)
        printf("square(7) = %lld\n", (long long)*(const int64_t *)res);
    exec_future_release(f);

    /* The crashing task: only its own future fails. */
    if (exec_submit(ex, bad, NULL, 0, &f) != EXEC_OK)
        return 1;
    exec_future_wait(f, EXEC_WAIT_FOREVER);
    exec_fault_t fault;
    exec_future_fault(f, &fault);
    printf("bad task: %s (worker %d killed by signal %d)\n", exec_errname(fault.code),
           fault.worker_pid, fault.signal);
    exec_future_release(f);

    /* The pool replaced the worker and carries on. */
    exec_future_t *fs[100];
    for (int64_t i = 0; i < 100; i++)
        if (exec_submit(ex, square, &i, sizeof i, &fs[i]) != EXEC_OK)
            return 1;
    int ok = 0;
    for (int64_t i = 0; i < 100; i++) {
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        if (exec_future_result(fs[i], &res, NULL) == EXEC_OK && *(const int64_t *)res == i * i)
            ok++;
        exec_future_release(fs[i]);
    }
    printf("after the crash: %d of 100 tasks ok\n", ok);
    exec_destroy(ex);
    return ok == 100 && fault.code == EXEC_ECRASHED && fault.signal == SIGSEGV ? 0 : 1;
}
