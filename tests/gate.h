/* SPDX-License-Identifier: MIT */
/*
 * gate.h - blocking tasks deterministically, on both backends (shared by the test files).
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

#include <sys/types.h>

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

#endif /* EXEC_TEST_GATE_H */
