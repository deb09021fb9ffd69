/* SPDX-License-Identifier: MIT */
/*
 * test_fork.c - fork() while executors exist, as the end of executor.h documents it. In the
 * child: terminal futures keep their results, submitting to an inherited executor returns
 * EXEC_ESHUTDOWN, waiting on a future that was pending at the fork returns EXEC_ESHUTDOWN
 * instead of hanging, exec_destroy() frees the child's copy, and a new executor works. The
 * parent's executor is untouched by all that.
 *
 * THREADS_ONLY: the tests block workers on pipes whose fds travel in the argument bytes and
 * fork this process directly; the process backend has its own fork story (start methods).
 * Assertions in a forked child end that child with status 1 (see harness.h); the parent
 * turns anything but a clean exit 0 within 10 s into a failure.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* ThreadSanitizer cannot start threads in the child of a multi-threaded fork (it dies with
 * "starting new threads after multi-threaded fork is not supported"), so under it the
 * children skip the part that makes a new executor. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* In a child: a fresh executor runs a task and a map, and is destroyed. */
static void fresh_executor_works(void)
{
    if (UNDER_TSAN)
        return;
    exec_t *ex = make_workers(2);
    exec_future_t *f;
    int64_t x = 41;
    ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &f));
    ASSERT_EQ(wait_i64(f), 124);
    exec_future_release(f);
    int64_t in[50], out[50];
    for (int i = 0; i < 50; i++)
        in[i] = i;
    ASSERT_OK(exec_map(ex, task_triple, in, sizeof in[0], out, sizeof out[0], 50, NULL));
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(out[i], 3 * i + 1);
    ASSERT_OK(exec_destroy(ex));
}

/* ---------------------------------------------------------------------------------------- */
/* Fork with finished and pending futures                                                    */
/* ---------------------------------------------------------------------------------------- */

TEST(fork_child_sees_shutdown)
{
    exec_t *ex = make_workers(2);

    exec_future_t *done;
    int64_t x = 7;
    ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &done));
    ASSERT_EQ(wait_i64(done), 22);

    /* Two running tasks block both workers; a third waits in the queue. */
    int p[2];
    pipe_open(p);
    exec_future_t *running[2], *queued;
    for (int i = 0; i < 2; i++)
        running[i] = submit_pipe_blocker(ex, p);
    for (int i = 0; i < 2; i++)
        WAIT_STATE(running[i], EXEC_STATE_RUNNING);
    queued = submit_pipe_blocker(ex, p);
    ASSERT_EQ(exec_future_state(queued), EXEC_STATE_QUEUED);

    fflush(NULL);
    pid_t pid = fork();
    ASSERT_LE(0, pid);
    if (pid == 0) {
        close(p[1]); /* only the parent may wake its tasks */

        /* A future that was terminal at the fork keeps its result. */
        ASSERT_EQ(exec_future_state(done), EXEC_STATE_DONE);
        ASSERT_OK(exec_future_wait(done, 0));
        ASSERT_EQ(wait_i64(done), 22);

        /* The inherited executor takes no work. */
        ASSERT_ERR(exec_submit(ex, task_triple_submit, &x, sizeof x, NULL), EXEC_ESHUTDOWN);
        exec_future_t *f = NULL;
        ASSERT_ERR(exec_submit(ex, task_triple_submit, &x, sizeof x, &f), EXEC_ESHUTDOWN);
        int64_t in[4] = {1, 2, 3, 4}, out[4];
        ASSERT_ERR(exec_map(ex, task_triple, in, sizeof in[0], out, sizeof out[0], 4, NULL),
                   EXEC_ESHUTDOWN);

        /* Pending futures can never end here: waiting says so instead of blocking. A
         * timed wait must give EXEC_ESHUTDOWN too, not run out its clock. */
        ASSERT_ERR(exec_future_wait(running[0], EXEC_WAIT_FOREVER), EXEC_ESHUTDOWN);
        uint64_t t0 = test_now_ms();
        ASSERT_ERR(exec_future_wait(running[1], 5000), EXEC_ESHUTDOWN);
        ASSERT_ERR(exec_future_wait(queued, EXEC_WAIT_FOREVER), EXEC_ESHUTDOWN);
        ASSERT_LT(test_now_ms() - t0, 5000);
        ASSERT_ERR(exec_future_result(queued, NULL, NULL), EXEC_EAGAIN);

        exec_future_release(done);
        exec_future_release(running[0]);
        exec_future_release(running[1]);
        exec_future_release(queued);
        ASSERT_OK(exec_destroy(ex));

        fresh_executor_works();
        close(p[0]);
        _exit(0);
    }
    EXPECT_CHILD_END(pid, 0, 10000);

    /* The child's destroy did not touch the parent's pool: everything still runs. */
    ASSERT_EQ(exec_future_state(running[0]), EXEC_STATE_RUNNING);
    ASSERT_EQ(exec_future_state(running[1]), EXEC_STATE_RUNNING);
    ASSERT_EQ(write(p[1], "abc", 3), 3);
    /* Each blocked task ran to its end on a worker thread: two workers, the queued task on
     * one of them. */
    int64_t tid[2] = {wait_i64(running[0]), wait_i64(running[1])};
    check_worker_tids(tid, 2, wait_i64(queued));
    ASSERT_EQ(wait_i64(done), 22);
    exec_future_t *f;
    ASSERT_OK(exec_submit(ex, task_triple_submit, &x, sizeof x, &f));
    ASSERT_EQ(wait_i64(f), 22);
    exec_future_release(f);
    exec_future_release(done);
    exec_future_release(running[0]);
    exec_future_release(running[1]);
    exec_future_release(queued);
    destroy_with_pipe(ex, p);
}

/* ---------------------------------------------------------------------------------------- */
/* Fork while other threads submit                                                           */
/* ---------------------------------------------------------------------------------------- */

struct busy {
    exec_t *ex;
    int64_t base;
    atomic_bool *stop;
    atomic_size_t done;
    size_t bad;
    int first_err;
};

/* Submit, wait, check, release, with up to 8 futures outstanding, until told to stop. */
static void *keep_submitting(void *arg)
{
    struct busy *b = arg;
    enum { K = 8 };
    exec_future_t *fs[K];
    int64_t i = 0;
    while (!atomic_load(b->stop)) {
        for (int k = 0; k < K; k++) {
            int64_t v = b->base + i + k;
            int e = exec_submit(b->ex, task_triple_submit, &v, sizeof v, &fs[k]);
            if (e != 0) {
                fs[k] = NULL;
                if (b->bad++ == 0)
                    b->first_err = e;
            }
        }
        for (int k = 0; k < K; k++) {
            if (!fs[k])
                continue;
            const void *r = NULL;
            size_t size = 0;
            int e = exec_future_wait(fs[k], EXEC_WAIT_FOREVER);
            if (e == 0)
                e = exec_future_result(fs[k], &r, &size);
            int64_t want = (b->base + i + k) * 3 + 1;
            if (e != 0 || size != sizeof want || memcmp(r, &want, sizeof want) != 0) {
                if (b->bad++ == 0)
                    b->first_err = e ? e : 1;
            }
            exec_future_release(fs[k]);
        }
        i += K;
        atomic_fetch_add(&b->done, K);
    }
    return NULL;
}

/* Fork 20 times while four threads keep submitting and waiting: no child hangs on a lock
 * that a parent thread held at the fork, and the parent's work is unaffected. */
TEST(fork_while_submitting)
{
    enum { THREADS = 4, FORKS = 20 };
    exec_t *ex = make_workers(2);
    atomic_bool stop;
    atomic_init(&stop, false);
    struct busy b[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        b[i] = (struct busy){.ex = ex, .base = (int64_t)i << 40, .stop = &stop};
        atomic_init(&b[i].done, 0);
        ASSERT_EQ(pthread_create(&t[i], NULL, keep_submitting, &b[i]), 0);
    }
    /* Make sure every thread is busy before the first fork. */
    for (int i = 0; i < THREADS; i++) {
        size_t done = atomic_load(&b[i].done);
        for (int ms = 0; ms < 5000 && done < 100; ms++) {
            test_sleep_ms(1);
            done = atomic_load(&b[i].done);
        }
        ASSERT_LE(100, done);
    }

    for (int k = 0; k < FORKS; k++) {
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_LE(0, pid);
        if (pid == 0) {
            int64_t x = 1;
            ASSERT_ERR(exec_submit(ex, task_triple_submit, &x, sizeof x, NULL), EXEC_ESHUTDOWN);
            ASSERT_OK(exec_destroy(ex));
            fresh_executor_works();
            _exit(0);
        }
        EXPECT_CHILD_END(pid, 0, 10000);
        size_t before = atomic_load(&b[k % THREADS].done);
        /* Let the threads move on a little between forks (bounded). */
        for (int ms = 0; ms < 1000 && atomic_load(&b[k % THREADS].done) < before + 16; ms++)
            test_sleep_ms(1);
    }

    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++) {
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
        if (b[i].bad)
            TEST_FAIL("thread %d: %zu bad results; first error %d (%s)", i, b[i].bad,
                      b[i].first_err, exec_errname(b[i].first_err));
    }
    ASSERT_OK(exec_destroy(ex));
}
