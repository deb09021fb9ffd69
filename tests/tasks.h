/* SPDX-License-Identifier: MIT */
/*
 * tasks.h - the task functions and small helpers that several test files share: one copy
 * of each, so that every file checks the task calling convention the same (strictest) way.
 *
 * Tasks see only their argument and result bytes, so each one here is valid on both
 * backends unless its comment says THREADS_ONLY. A task that finds the calling convention
 * broken returns BAD_CALL; one whose gate or pipe fails returns READ_FAILED. No test
 * expects either status: they only turn a broken call into a failed future.
 *
 * The helpers build executors for the backend of the running test (test_backend) and fail
 * the test (harness.h) on any unexpected error.
 */
#ifndef EXEC_TEST_TASKS_H
#define EXEC_TEST_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "executor.h"
#include "gate.h"

/* Statuses a task returns when something around it went wrong (never a test's own code). */
#define BAD_CALL 97    /* the executor broke the task calling convention */
#define READ_FAILED 98 /* a gate or pipe could not be opened, read or written */

/* An invalid pointer value that out-parameters start with, to see that failures leave them
 * alone (or set them to NULL, which DESIGN.md also allows). */
#define SENTINEL ((void *)(uintptr_t)0x5e17)

/* --- tasks ------------------------------------------------------------------------------ */

/* Echo: the argument bytes are the result bytes (*out_size must start at 0). */
int task_echo(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size);

/* Writes 8 result bytes, then returns the int32 of its argument as its status (the bytes
 * of a failed task must be discarded). */
int task_status(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size);

/* Waits at gate, then (if out is not empty) writes tag to out; result: value (int64). */
struct block_arg {
    int64_t value;
    char gate[GATE_PATH];
    char out[GATE_PATH];
    char tag;
};
int task_block(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size);

/* int64 x -> int64 3x+1 as a map element: arg_size, out_cap and *out_size on entry are all
 * 8 (the exec_map() calling convention). */
int task_triple(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size);

/* int64 x -> int64 3x+1 as a submitted task: out_cap is max_result_size (at least 8) and
 * *out_size starts at 0 (the exec_submit() calling convention). */
int task_triple_submit(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size);

/* Does nothing, successfully. */
int task_noop(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size);

/* Sleeps in 1 ms steps until exec_task_should_stop() (its deadline or a cancel), at most
 * 20 s; returns 0. */
int task_until_stopped(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size);

/* THREADS_ONLY (a pipe fd in the argument): blocks until one byte can be read from the
 * pipe; result: the worker thread's tid (int64). */
int task_block_on_pipe(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size);

/* THREADS_ONLY: the argument of a task that uses an executor itself. Its address travels
 * in the argument bytes, which only means something inside the same process; n and base
 * are what the task does with it (a count, a depth, a value...). */
struct ex_arg {
    exec_t *ex;
    int64_t n;
    int64_t base;
};

/* In a task: copy the argument to @dst if it is exactly @size bytes; whether it was. */
bool task_arg(void *dst, size_t size, const void *arg, size_t arg_size);

/* In a task: the @n bytes at @v as the result (task_put), or @v as an 8-byte result; 0, or
 * BAD_CALL if @out_cap is too small. */
int task_put(void *out, size_t out_cap, size_t *out_size, const void *v, size_t n);
int task_put_i64(void *out, size_t out_cap, size_t *out_size, int64_t v);
/* In a task: wait for @f (at most @timeout_ms, or EXEC_WAIT_FOREVER), then copy its result
 * to *v. Returns EXEC_OK, the code of the call that failed, or EXEC_EINVAL for a result
 * that is not 8 bytes (*v is then untouched). Does not release @f. */
int task_wait_i64(exec_future_t *f, int timeout_ms, int64_t *v);

/* --- helpers of the test side ---------------------------------------------------------- */

/* test_config() with @workers workers (0: the default count). */
exec_config_t config_workers(int workers);
/* exec_create() that must succeed. */
exec_t *make_exec(const exec_config_t *cfg);
/* An executor for test_backend with @workers workers (0: the default count). */
exec_t *make_workers(int workers);

/* An executor for test_backend with @workers workers and the other fields of @cfg: a
 * compound literal of just the fields the test sets (its backend and workers are ignored). */
exec_t *make_with(int workers, exec_config_t cfg);

/* exec_stats() of @ex, which must succeed. */
exec_stats_t stats_of(exec_t *ex);

/* The task counters of exec_stats(@ex) are as listed, e.g. EXPECT_COUNTS(ex, .submitted = 4,
 * .completed = 4): a counter not listed must be 0, one listed as STAT_ANY is not checked. */
struct counts {
    uint64_t submitted, completed, failed, cancelled, queued, running;
};
#define STAT_ANY UINT64_MAX
#define EXPECT_COUNTS(ex, ...)                                                             \
    expect_counts_((ex), (struct counts){__VA_ARGS__}, __FILE__, __LINE__)
void expect_counts_(exec_t *ex, struct counts want, const char *file, int line);

/* Submit that must succeed: task_echo of an int64, task_status of @status, task_block. */
exec_future_t *submit_echo_i64(exec_t *ex, int64_t value);
exec_future_t *submit_status(exec_t *ex, int32_t status);
exec_future_t *submit_block(exec_t *ex, const struct gate *g, int64_t value);
/* A task blocked on @g; when released it writes @tag to @out (if not NULL), returns @value. */
exec_future_t *submit_block_tag(exec_t *ex, const struct gate *g, int64_t value,
                                const struct gate *out, char tag);

/* THREADS_ONLY: the pipe that task_block_on_pipe tasks read (p[0]; the test writes one byte
 * to p[1] per task it lets go), a task blocked on it, and the end of a test that used one:
 * destroy @ex, then close both ends. */
void pipe_open(int p[2]);
exec_future_t *submit_pipe_blocker(exec_t *ex, const int p[2]);
void destroy_with_pipe(exec_t *ex, int p[2]);

/* The tids that @n running task_block_on_pipe tasks returned differ from each other and
 * from the test's thread, and @queued (the task that waited in the queue) ran on one of
 * those same workers. */
void check_worker_tids(const int64_t *running, int n, int64_t queued);

/* The usual start of a test with a gate: gate_open(@g), then make_workers(@workers); and
 * its end: exec_destroy(@ex), which must succeed, then gate_close(@g). */
exec_t *make_gated(struct gate *g, int workers);
void destroy_gated(exec_t *ex, struct gate *g);
/* RELEASE_ALL() of the futures listed after @g, then destroy_gated(@ex, @g). */
#define DESTROY_GATED(ex, g, ...) (RELEASE_ALL(__VA_ARGS__), destroy_gated((ex), (g)))

/* submit_block(), then wait (WAIT_STATE) until the task runs: it holds a worker. */
#define SUBMIT_RUNNING(ex, g, value) submit_running_((ex), (g), (value), __FILE__, __LINE__)
exec_future_t *submit_running_(exec_t *ex, const struct gate *g, int64_t value,
                               const char *file, int line);

/* Release every future listed: RELEASE_ALL(a, b, c). */
#define RELEASE_ALL(...)                                                                   \
    release_all_((exec_future_t *[]){__VA_ARGS__},                                         \
                 sizeof((exec_future_t *[]){__VA_ARGS__}) / sizeof(exec_future_t *))
void release_all_(exec_future_t *const *fs, size_t n);

/* The int64 result of a future that must already be DONE (no waiting). */
int64_t result_i64(const exec_future_t *f);
/* Wait for @f (without a bound: the runner's alarm catches a hang), then result_i64(). */
int64_t wait_i64(exec_future_t *f);

/* Reap the forked child @pid; fail unless it ends within @timeout_ms (it is killed after
 * that) by exiting with status 0 (@want_sig 0) or by the signal @want_sig. */
#define EXPECT_CHILD_END(pid, want_sig, timeout_ms)                                        \
    expect_child_end_((pid), (want_sig), (timeout_ms), __FILE__, __LINE__)
void expect_child_end_(pid_t pid, int want_sig, int timeout_ms, const char *file, int line);

/* exec_version() and the EXEC_VERSION_* macros agree with each other. */
void check_version(void);

/* snprintf() into @buf (4096 bytes), for paths and commands; fails the test if the text
 * does not fit. Returns @buf. */
__attribute__((format(printf, 2, 3))) char *fmt(char *buf, const char *f, ...);

#endif /* EXEC_TEST_TASKS_H */
