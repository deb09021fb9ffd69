/* SPDX-License-Identifier: MIT */
/* gate.c - see gate.h. */
#include "gate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#include <stdint.h>

ssize_t read_retry(int fd, void *buf, size_t n)
{
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

ssize_t write_retry(int fd, const void *buf, size_t n)
{
    ssize_t r;
    do
        r = write(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

void gate_open(struct gate *g)
{
    static const char *dir; /* one per test child (each test runs in a fresh fork) */
    static int seq;
    if (!dir)
        dir = test_tmpdir();
    int n = snprintf(g->path, sizeof g->path, "%s/gate%d", dir, seq++);
    ASSERT_LT(n, (int)sizeof g->path);
    ASSERT_EQ(mkfifo(g->path, 0600), 0);
    g->fd = open(g->path, O_RDWR | O_CLOEXEC);
    ASSERT_GE(g->fd, 0);
}

/* Let @n blocked tasks go. */
void gate_release(const struct gate *g, int n)
{
    for (int i = 0; i < n; i++)
        ASSERT_EQ(write_retry(g->fd, "x", 1), 1);
}

/* One byte a task wrote to @g within @ms, or -1 if none came. */
int gate_read_within(const struct gate *g, int ms)
{
    struct pollfd p = {.fd = g->fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        return -1;
    unsigned char c;
    return read_retry(g->fd, &c, 1) == 1 ? c : -1;
}

void gate_close(struct gate *g)
{
    ASSERT_EQ(close(g->fd), 0);
    ASSERT_EQ(unlink(g->path), 0);
}

/* In a task: block until the test releases the gate at @path. 0, or -1 on error. */
int task_gate_wait(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char c;
    ssize_t r = read_retry(fd, &c, 1);
    close(fd);
    return r == 1 ? 0 : -1;
}

/* In a task: write @tag to the gate at @path. 0, or -1 on error. */
int task_gate_post(const char *path, char tag)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = write_retry(fd, &tag, 1);
    close(fd);
    return r == 1 ? 0 : -1;
}

/* Copy a gate's path into a task argument field. */
void gate_path(char dst[GATE_PATH], const struct gate *g)
{
    memcpy(dst, g->path, GATE_PATH);
}

static void *release_later(void *p)
{
    const struct gate_later *l = p;
    test_sleep_ms(30);
    gate_release(l->g, l->n);
    return NULL;
}

void gate_release_later(struct gate_later *l, const struct gate *g, int n)
{
    l->g = g;
    l->n = n;
    ASSERT_EQ(pthread_create(&l->t, NULL, release_later, l), 0);
}

void gate_later_join(struct gate_later *l)
{
    ASSERT_EQ(pthread_join(l->t, NULL), 0);
}

/* Poll the future's state until it is @st (bounded; the state is not expected to skip it). */
void wait_state_(exec_future_t *f, int st, const char *file, int line)
{
    uint64_t end = test_now_ms() + GATE_BOUND_MS;
    int now;
    while ((now = exec_future_state(f)) != st) {
        if (test_now_ms() > end)
            test_fail_(file, line, "future state %d, want %d within %d ms", now, st,
                       GATE_BOUND_MS);
        test_sleep_ms(1);
    }
}

const void *wait_result_(exec_future_t *f, void *dst, size_t size, const char *file, int line)
{
    int rc = exec_future_wait(f, GATE_BOUND_MS);
    if (rc != 0)
        test_fail_(file, line, "exec_future_wait: %s", exec_errname(rc));
    const void *data = NULL;
    size_t got = 0;
    rc = exec_future_result(f, &data, &got);
    if (rc != 0)
        test_fail_(file, line, "exec_future_result: %s", exec_errname(rc));
    if (got != size || data == NULL)
        test_fail_(file, line, "result of %zu bytes at %p, want %zu bytes", got, data, size);
    memcpy(dst, data, size);
    return data;
}

/* Wait for @f to end successfully with the int64 result @want. */
void assert_result_i64_(exec_future_t *f, int64_t want, const char *file, int line)
{
    int64_t got;
    wait_result_(f, &got, sizeof got, file, line);
    if (got != want)
        test_fail_(file, line, "result %lld, want %lld", (long long)got, (long long)want);
    if (exec_future_state(f) != EXEC_STATE_DONE)
        test_fail_(file, line, "state %d, want DONE", exec_future_state(f));
}
