/* SPDX-License-Identifier: MIT */
/*
 * test_cq.c - completion queues, tested against the contract in executor.h: futures come
 * out in the order they finish, the fd is readable exactly while one waits (and is
 * close-on-exec), cq_add of a finished future, one queue per future, routing through
 * exec_submit_opts_t.cq, references handed over by pop, destroy with futures inside or
 * still pending, and an epoll loop.
 *
 * Tasks see only their argument and result bytes; a task that must block waits at a gate (a
 * FIFO whose path travels in its argument, see tests/gate.h). The queue itself lives in the
 * calling process.
 */
#include "harness.h"
#include "gate.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUND_MS 5000

/* The gate of the running test (each test runs in a child process of its own). */
static struct gate g;

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static exec_cq_t *make_cq(void)
{
    exec_cq_t *cq = NULL;
    ASSERT_OK(exec_cq_create(&cq));
    ASSERT_NOT_NULL(cq);
    return cq;
}

/* Whether @fd is readable within @ms. */
static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    ASSERT_GE(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

/* The end of a test: destroy its queue, then its executor, then close the gate @g (if not
 * NULL). */
static void end_cq(exec_cq_t *cq, exec_t *ex, struct gate *gate)
{
    exec_cq_destroy(cq);
    ASSERT_OK(exec_destroy(ex));
    if (gate)
        gate_close(gate);
}

/* Pop within the bound; fails the test on a timeout. */
static exec_future_t *pop(exec_cq_t *cq)
{
    exec_future_t *f = NULL;
    ASSERT_OK(exec_cq_pop(cq, BOUND_MS, &f));
    ASSERT_NOT_NULL(f);
    return f;
}

/* ---------------------------------------------------------------------------------------- */
/* The queue alone                                                                           */
/* ---------------------------------------------------------------------------------------- */

TEST(cq_create_destroy)
{
    ASSERT_ERR(exec_cq_create(NULL), EXEC_EINVAL);
    exec_cq_t *a = make_cq();
    exec_cq_t *b = make_cq();
    ASSERT_TRUE(a != b);
    ASSERT_NE(exec_cq_fd(a), exec_cq_fd(b));
    exec_cq_destroy(a);
    exec_cq_destroy(b);
    exec_cq_destroy(NULL);
    /* The runner checks that no fd is left behind by the two queues. */
}

/* The fd: >= 0, the same on every call, close-on-exec, not readable while empty. */
TEST(cq_fd_properties)
{
    ASSERT_ERR(exec_cq_fd(NULL), EXEC_EINVAL);
    exec_cq_t *cq = make_cq();
    int fd = exec_cq_fd(cq);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(exec_cq_fd(cq), fd);
    int fl = fcntl(fd, F_GETFD);
    ASSERT_GE(fl, 0);
    ASSERT_TRUE(fl & FD_CLOEXEC);
    ASSERT_FALSE(readable_within(fd, 0));
    exec_cq_destroy(cq);
}

/* pop on an empty queue: EXEC_ETIMEDOUT for 0 and a short timeout, out untouched; bad
 * input is EXEC_EINVAL. */
TEST(cq_pop_timeout)
{
    exec_cq_t *cq = make_cq();
    exec_future_t *f = SENTINEL;
    ASSERT_ERR(exec_cq_pop(cq, 0, &f), EXEC_ETIMEDOUT);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    f = SENTINEL;
    ASSERT_ERR(exec_cq_pop(cq, 20, &f), EXEC_ETIMEDOUT);
    ASSERT_TRUE(f == SENTINEL || f == NULL);
    ASSERT_ERR(exec_cq_pop(NULL, 0, &f), EXEC_EINVAL);
    ASSERT_ERR(exec_cq_pop(cq, 0, NULL), EXEC_EINVAL);
    exec_cq_destroy(cq);
}

/* ---------------------------------------------------------------------------------------- */
/* With futures                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Not readable while the routed future is pending, readable once it finished, not readable
 * once popped; with two inside, still readable after the first pop. */
TEST(cq_fd_readiness)
{
    exec_t *ex = make_gated(&g, 2);
    exec_cq_t *cq = make_cq();
    int fd = exec_cq_fd(cq);
    exec_future_t *a = submit_block(ex, &g, 1);
    ASSERT_OK(exec_cq_add(cq, a));
    ASSERT_FALSE(readable_within(fd, 0));
    ASSERT_FALSE(readable_within(fd, 20));
    gate_release(&g, 1);
    ASSERT_TRUE(readable_within(fd, BOUND_MS));
    ASSERT_TRUE(readable_within(fd, 0)); /* level-triggered: still readable */
    exec_future_t *got = pop(cq);
    ASSERT_TRUE(got == a);
    ASSERT_FALSE(readable_within(fd, 0));
    exec_future_release(got);

    exec_future_t *b = submit_echo_i64(ex, 2);
    exec_future_t *c = submit_echo_i64(ex, 3);
    ASSERT_OK(exec_future_wait(b, BOUND_MS));
    ASSERT_OK(exec_future_wait(c, BOUND_MS));
    ASSERT_OK(exec_cq_add(cq, b));
    ASSERT_OK(exec_cq_add(cq, c));
    ASSERT_TRUE(readable_within(fd, 0));
    exec_future_release(pop(cq));
    ASSERT_TRUE(readable_within(fd, 0));
    exec_future_release(pop(cq));
    ASSERT_FALSE(readable_within(fd, 0));

    RELEASE_ALL(a, b, c);
    end_cq(cq, ex, &g);
}

/* Completion order, not the order of adding: with one worker, tasks end in submission order
 * whatever order they were added in. */
TEST(cq_order_one_worker)
{
    exec_t *ex = make_gated(&g, 1);
    exec_cq_t *cq = make_cq();
    exec_future_t *fs[4];
    fs[0] = submit_block(ex, &g, 0); /* holds the others back until all are added */
    for (int i = 1; i < 4; i++)
        fs[i] = submit_echo_i64(ex, i);
    for (int i = 3; i >= 0; i--)
        ASSERT_OK(exec_cq_add(cq, fs[i]));
    gate_release(&g, 1);
    for (int i = 0; i < 4; i++) {
        exec_future_t *f = pop(cq);
        if (f != fs[i])
            TEST_FAIL("pop %d: got the future with result %lld", i, (long long)result_i64(f));
        ASSERT_EQ(result_i64(f), i);
        exec_future_release(f);
    }
    exec_future_t *none = SENTINEL;
    ASSERT_ERR(exec_cq_pop(cq, 0, &none), EXEC_ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        exec_future_release(fs[i]);
    end_cq(cq, ex, &g);
}

/* Tasks held by their own gates end in the order the test releases them (b, c, a); the
 * queue yields that order, and nothing else is ready in between. */
TEST(cq_order_controlled)
{
    struct gate gs[3];
    for (int i = 0; i < 3; i++)
        gate_open(&gs[i]);
    exec_t *ex = make_workers(3);
    exec_cq_t *cq = make_cq();
    exec_future_t *fs[3];
    for (int i = 0; i < 3; i++) {
        fs[i] = submit_block(ex, &gs[i], 10 + i);
        ASSERT_OK(exec_cq_add(cq, fs[i]));
    }
    static const int order[3] = {1, 2, 0};
    for (int k = 0; k < 3; k++) {
        exec_future_t *none = SENTINEL;
        ASSERT_ERR(exec_cq_pop(cq, 0, &none), EXEC_ETIMEDOUT);
        gate_release(&gs[order[k]], 1);
        exec_future_t *f = pop(cq);
        ASSERT_TRUE(f == fs[order[k]]);
        ASSERT_EQ(result_i64(f), 10 + order[k]);
        exec_future_release(f);
    }
    for (int i = 0; i < 3; i++)
        exec_future_release(fs[i]);
    end_cq(cq, ex, NULL);
    for (int i = 0; i < 3; i++)
        gate_close(&gs[i]);
}

/* cq_add of a future that already finished delivers it at once. */
TEST(cq_add_finished)
{
    exec_t *ex = make_workers(1);
    exec_cq_t *cq = make_cq();
    exec_future_t *f = submit_echo_i64(ex, 5);
    ASSERT_OK(exec_future_wait(f, BOUND_MS));
    ASSERT_OK(exec_cq_add(cq, f));
    ASSERT_TRUE(readable_within(exec_cq_fd(cq), 0));
    exec_future_t *got = NULL;
    ASSERT_OK(exec_cq_pop(cq, 0, &got));
    ASSERT_TRUE(got == f);
    ASSERT_EQ(result_i64(got), 5);
    RELEASE_ALL(got, f);
    end_cq(cq, ex, NULL);
}

/* NULL arguments and a second routing (same queue or another) are EXEC_EINVAL; the future
 * still comes out once, from its first queue only. */
TEST(cq_add_invalid)
{
    exec_t *ex = make_gated(&g, 1);
    exec_cq_t *cq = make_cq();
    exec_cq_t *other = make_cq();
    exec_future_t *f = submit_block(ex, &g, 7);
    ASSERT_ERR(exec_cq_add(NULL, f), EXEC_EINVAL);
    ASSERT_ERR(exec_cq_add(cq, NULL), EXEC_EINVAL);
    ASSERT_OK(exec_cq_add(cq, f));
    ASSERT_ERR(exec_cq_add(cq, f), EXEC_EINVAL);
    ASSERT_ERR(exec_cq_add(other, f), EXEC_EINVAL);
    gate_release(&g, 1);
    exec_future_t *got = pop(cq);
    ASSERT_TRUE(got == f);
    exec_future_release(got);
    exec_future_t *none = SENTINEL;
    ASSERT_ERR(exec_cq_pop(cq, 0, &none), EXEC_ETIMEDOUT);
    ASSERT_ERR(exec_cq_pop(other, 0, &none), EXEC_ETIMEDOUT);
    ASSERT_FALSE(readable_within(exec_cq_fd(other), 0));
    /* Finished and popped: still routed, still EXEC_EINVAL. */
    ASSERT_ERR(exec_cq_add(other, f), EXEC_EINVAL);
    exec_future_release(f);
    exec_cq_destroy(cq);
    exec_cq_destroy(other);
    destroy_gated(ex, &g);
}

/* exec_submit_opts_t.cq routes the future as exec_cq_add() would: the same future comes
 * out, it counts as routed, and failed, cancelled and fire-and-forget futures come out too. */
TEST(cq_submit_route)
{
    exec_t *ex = make_gated(&g, 1);
    exec_cq_t *cq = make_cq();
    exec_submit_opts_t o = {.cq = cq};

    int64_t v = 21;
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f));
    ASSERT_NOT_NULL(f);
    exec_future_t *got = pop(cq);
    ASSERT_TRUE(got == f);
    ASSERT_EQ(result_i64(got), 21);
    ASSERT_ERR(exec_cq_add(cq, f), EXEC_EINVAL);
    RELEASE_ALL(got, f);

    /* Fire and forget: the queue's reference is the only one, and pop hands it over. */
    v = 22;
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, NULL));
    got = pop(cq);
    ASSERT_EQ(result_i64(got), 22);
    exec_future_release(got);

    /* A task error. */
    int32_t st = 42;
    ASSERT_OK(exec_submit_ex(ex, task_status, &st, sizeof st, &o, &f));
    got = pop(cq);
    ASSERT_TRUE(got == f);
    ASSERT_ERR(exec_future_result(got, NULL, NULL), EXEC_ETASK);
    RELEASE_ALL(got, f);

    /* A cancelled queued task. */
    exec_future_t *blocker = SUBMIT_RUNNING(ex, &g, 1);
    v = 23;
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, &f));
    ASSERT_OK(exec_future_cancel(f, 0));
    got = pop(cq);
    ASSERT_TRUE(got == f);
    ASSERT_ERR(exec_future_result(got, NULL, NULL), EXEC_ECANCELLED);
    RELEASE_ALL(got, f);
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(blocker, BOUND_MS));
    exec_future_release(blocker);

    exec_future_t *none = SENTINEL;
    ASSERT_ERR(exec_cq_pop(cq, 0, &none), EXEC_ETIMEDOUT);
    end_cq(cq, ex, &g);
}

/* pop hands over a reference of its own: the submit reference and the popped one are
 * released independently, in either order. */
TEST(cq_pop_reference)
{
    exec_t *ex = make_workers(1);
    exec_cq_t *cq = make_cq();
    exec_future_t *fs[2] = {submit_echo_i64(ex, 1), submit_echo_i64(ex, 2)};
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(exec_cq_add(cq, fs[k]));
        if (k == 0)
            ASSERT_OK(exec_future_wait(fs[0], BOUND_MS)); /* ends before the pop */
        exec_future_t *p = pop(cq);
        ASSERT_TRUE(p == fs[k]);
        /* First the submit reference (k 0), then the popped one (k 1) goes first. */
        exec_future_t *first = k == 0 ? fs[k] : p, *second = k == 0 ? p : fs[k];
        exec_future_release(first);
        ASSERT_EQ(result_i64(second), k + 1);
        exec_future_release(second);
    }
    end_cq(cq, ex, NULL);
}

struct popper {
    exec_cq_t *cq;
    exec_future_t *f;
    int rc;
};

static void *pop_forever(void *p)
{
    struct popper *pp = p;
    pp->rc = exec_cq_pop(pp->cq, EXEC_WAIT_FOREVER, &pp->f);
    return NULL;
}

/* A pop that blocks (EXEC_WAIT_FOREVER) in another thread wakes when a future finishes. */
TEST(cq_pop_blocking)
{
    exec_t *ex = make_gated(&g, 1);
    exec_cq_t *cq = make_cq();
    exec_future_t *f = submit_block(ex, &g, 4);
    ASSERT_OK(exec_cq_add(cq, f));
    struct popper pp = {.cq = cq, .f = NULL, .rc = 12345};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, pop_forever, &pp), 0);
    test_sleep_ms(20); /* only makes it likely the popper sleeps first; not relied on */
    gate_release(&g, 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(pp.rc);
    ASSERT_TRUE(pp.f == f);
    ASSERT_EQ(result_i64(pp.f), 4);
    RELEASE_ALL(pp.f, f);
    end_cq(cq, ex, &g);
}

/* Destroying a queue with finished futures inside and pending ones routed to it: nothing
 * leaks or crashes (valgrind/ASan runs check), the futures the test holds stay valid, and a
 * pending one finishes normally afterwards. */
TEST(cq_destroy_with_futures)
{
    exec_t *ex = make_gated(&g, 2);
    exec_cq_t *cq = make_cq();
    exec_submit_opts_t o = {.cq = cq};
    exec_future_t *done1 = submit_echo_i64(ex, 1);
    ASSERT_OK(exec_cq_add(cq, done1));
    int64_t v = 2;
    /* Only the queue holds it. */
    ASSERT_OK(exec_submit_ex(ex, task_echo, &v, sizeof v, &o, NULL));
    exec_future_t *pending = submit_block(ex, &g, 3);
    ASSERT_OK(exec_cq_add(cq, pending));
    struct block_arg ba = {.value = 4};
    gate_path(ba.gate, &g);
    /* Pending, forgotten. */
    ASSERT_OK(exec_submit_ex(ex, task_block, &ba, sizeof ba, &o, NULL));
    ASSERT_OK(exec_future_wait(done1, BOUND_MS));
    /* Let the fire-and-forget echo reach the queue too (two inside, two pending). */
    uint64_t end = test_now_ms() + BOUND_MS;
    for (;;) {
        exec_stats_t st = stats_of(ex);
        if (st.completed >= 2)
            break;
        ASSERT_LT(test_now_ms(), end);
        test_sleep_ms(1);
    }
    exec_cq_destroy(cq);

    ASSERT_EQ(result_i64(done1), 1);
    gate_release(&g, 2);
    ASSERT_OK(exec_future_wait(pending, BOUND_MS));
    ASSERT_EQ(result_i64(pending), 3);
    DESTROY_GATED(ex, &g, done1, pending);
}

/* An epoll loop: wait on the fd, drain with pop(0), until 100 routed fire-and-forget tasks
 * came out, each once with its own result; then the fd is quiet. */
TEST(cq_epoll_loop)
{
    enum { N = 100 };
    exec_t *ex = make_workers(2);
    exec_cq_t *cq = make_cq();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(ep, 0);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = 0xc0ffee;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, exec_cq_fd(cq), &ev), 0);

    exec_submit_opts_t o = {.cq = cq};
    for (int64_t i = 0; i < N; i++)
        ASSERT_OK(exec_submit_ex(ex, task_echo, &i, sizeof i, &o, NULL));

    bool seen[N] = {false};
    int got = 0;
    uint64_t end = test_now_ms() + 2 * BOUND_MS;
    while (got < N) {
        ASSERT_LT(test_now_ms(), end);
        struct epoll_event out;
        int r = epoll_wait(ep, &out, 1, BOUND_MS);
        if (r < 0 && errno == EINTR)
            continue;
        ASSERT_EQ(r, 1);
        ASSERT_EQ(out.data.u64, 0xc0ffee);
        ASSERT_TRUE(out.events & EPOLLIN);
        exec_future_t *f;
        int popped = 0;
        while (exec_cq_pop(cq, 0, &f) == EXEC_OK) {
            int64_t v = result_i64(f);
            ASSERT_GE(v, 0);
            ASSERT_LT(v, N);
            ASSERT_FALSE(seen[v]);
            seen[v] = true;
            got++;
            popped++;
            exec_future_release(f);
        }
        ASSERT_GT(popped, 0); /* readable meant something was there */
    }
    struct epoll_event out;
    ASSERT_EQ(epoll_wait(ep, &out, 1, 0), 0);
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.completed, N);
    ASSERT_EQ(close(ep), 0);
    end_cq(cq, ex, NULL);
}
