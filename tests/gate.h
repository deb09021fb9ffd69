/* SPDX-License-Identifier: MIT */
/*
 * gate.h - blocking tasks deterministically, on both backends, and a few assertions on
 * futures (shared by the test files).
 *
 * A gate is a FIFO in the test's temporary directory. Tasks get its path in their argument
 * bytes and open it themselves, which works in a worker thread and in a worker process
 * however it was started (a worker process inherits none of the test's fds: the zygote
 * closes them). The test keeps the FIFO open read-write for the gate's whole life, so a
 * task's open() never blocks and its read() never sees end-of-file. A task blocks by reading
 * one byte from a gate (the test lets it go by writing that byte) and reports by writing a
 * byte to one (the test reads it with a timeout).
 */
#ifndef EXEC_TEST_GATE_H
#define EXEC_TEST_GATE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <executor.h>

#define GATE_PATH 112

struct gate {
    char path[GATE_PATH];
    int fd; /* the test's read-write descriptor */
};

/* read()/write() retried on EINTR. */
ssize_t read_retry(int fd, void *buf, size_t n);
ssize_t write_retry(int fd, const void *buf, size_t n);
/* Test side: make a gate in the test's temporary directory; let @n blocked tasks go; one
 * byte a task wrote within @ms (or -1); close and remove it. */
void gate_open(struct gate *g);
void gate_release(const struct gate *g, int n);
int gate_read_within(const struct gate *g, int ms);
void gate_close(struct gate *g);
/* Task side: block until released (0, or -1 on error); write @tag (0 or -1). */
int task_gate_wait(const char *path);
int task_gate_post(const char *path, char tag);
/* Copy a gate's path into a task argument field. */
void gate_path(char dst[GATE_PATH], const struct gate *g);
/* Test side: a thread that lets @n blocked tasks go about 30 ms from now (the pause only
 * makes it likely that the test is already waiting; nothing relies on it), and its join. */
struct gate_later {
    pthread_t t;
    const struct gate *g;
    int n;
};
void gate_release_later(struct gate_later *l, const struct gate *g, int n);
void gate_later_join(struct gate_later *l);

/* Shared assertions of the future tests (test_executor, test_future, test_cq). */
#define GATE_BOUND_MS 5000
/* Poll the future's state until it is @st (bounded; the state is not expected to skip it). */
#define WAIT_STATE(f, st) wait_state_((f), (st), __FILE__, __LINE__)
void wait_state_(exec_future_t *f, int st, const char *file, int line);
/* Wait for @f to end successfully with a result of exactly @size bytes and copy them to
 * @dst; returns the result's address (for alignment checks). */
#define WAIT_RESULT(f, dst, size) wait_result_((f), (dst), (size), __FILE__, __LINE__)
const void *wait_result_(exec_future_t *f, void *dst, size_t size, const char *file, int line);
/* Wait for @f to end successfully with the int64 result @want. */
#define ASSERT_RESULT_I64(f, want) assert_result_i64_((f), (want), __FILE__, __LINE__)
void assert_result_i64_(exec_future_t *f, int64_t want, const char *file, int line);

#endif /* EXEC_TEST_GATE_H */
