/* SPDX-License-Identifier: MIT */
/* tasks.c - see tasks.h. */
#include "tasks.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

int task_echo(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    if (arg_size > out_cap || *out_size != 0)
        return BAD_CALL;
    if (arg_size)
        memcpy(out, arg, arg_size);
    *out_size = arg_size;
    return 0;
}

int task_status(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    int32_t st;
    if (arg_size != sizeof st || out_cap < 8)
        return BAD_CALL;
    memcpy(&st, arg, sizeof st);
    memcpy(out, "garbage!", 8);
    *out_size = 8;
    return st;
}

int task_block(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    struct block_arg a;
    if (arg_size != sizeof a || out_cap < sizeof a.value)
        return BAD_CALL;
    memcpy(&a, arg, sizeof a);
    if (task_gate_wait(a.gate) != 0)
        return READ_FAILED;
    if (a.out[0] && task_gate_post(a.out, a.tag) != 0)
        return READ_FAILED;
    memcpy(out, &a.value, sizeof a.value);
    *out_size = sizeof a.value;
    return 0;
}

int task_triple(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    int64_t x;
    if (arg_size != sizeof x || out_cap != sizeof x || *out_size != sizeof x)
        return BAD_CALL;
    memcpy(&x, arg, sizeof x);
    x = x * 3 + 1;
    memcpy(out, &x, sizeof x);
    return 0;
}

int task_triple_submit(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    int64_t x;
    if (arg_size != sizeof x || *out_size != 0)
        return BAD_CALL;
    memcpy(&x, arg, sizeof x);
    return task_put_i64(out, out_cap, out_size, x * 3 + 1);
}

int task_noop(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    return 0;
}

int task_until_stopped(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg, (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    /* Sleep between looks: a pure spin can starve the timer thread under valgrind, which
     * runs one thread at a time. */
    uint64_t t0 = test_now_ms();
    while (!exec_task_should_stop() && test_now_ms() - t0 < 20000)
        test_sleep_ms(1);
    return 0;
}

int task_block_on_pipe(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    int fd;
    char c;
    if (!task_arg(&fd, sizeof fd, arg, arg_size))
        return BAD_CALL;
    if (read_retry(fd, &c, 1) != 1)
        return READ_FAILED;
    return task_put_i64(out, out_cap, out_size, gettid());
}

bool task_arg(void *dst, size_t size, const void *arg, size_t arg_size)
{
    if (arg_size != size)
        return false;
    memcpy(dst, arg, size);
    return true;
}

int task_put(void *out, size_t out_cap, size_t *out_size, const void *v, size_t n)
{
    if (out_cap < n)
        return BAD_CALL;
    memcpy(out, v, n);
    *out_size = n;
    return 0;
}

int task_put_i64(void *out, size_t out_cap, size_t *out_size, int64_t v)
{
    return task_put(out, out_cap, out_size, &v, sizeof v);
}

int task_wait_i64(exec_future_t *f, int timeout_ms, int64_t *v)
{
    const void *r = NULL;
    size_t size = 0;
    int e = exec_future_wait(f, timeout_ms);
    if (e == EXEC_OK)
        e = exec_future_result(f, &r, &size);
    if (e == EXEC_OK && size != sizeof *v)
        e = EXEC_EINVAL;
    if (e == EXEC_OK)
        memcpy(v, r, sizeof *v);
    return e;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

exec_t *make_exec(const exec_config_t *cfg)
{
    exec_t *ex = NULL;
    ASSERT_OK(exec_create(&ex, cfg));
    ASSERT_NOT_NULL(ex);
    return ex;
}

exec_config_t config_workers(int workers)
{
    exec_config_t cfg;
    test_config(&cfg);
    cfg.workers = workers;
    return cfg;
}

exec_t *make_workers(int workers)
{
    exec_config_t cfg = config_workers(workers);
    return make_exec(&cfg);
}

exec_t *make_with(int workers, exec_config_t cfg)
{
    cfg.backend = test_backend;
    cfg.workers = workers;
    return make_exec(&cfg);
}

exec_stats_t stats_of(exec_t *ex)
{
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    return st;
}

void expect_counts_(exec_t *ex, struct counts want, const char *file, int line)
{
    exec_stats_t st = stats_of(ex);
    const struct {
        const char *name;
        uint64_t got, want;
    } c[] = {
        {"submitted", st.submitted, want.submitted},
        {"completed", st.completed, want.completed},
        {"failed", st.failed, want.failed},
        {"cancelled", st.cancelled, want.cancelled},
        {"queued", st.queued, want.queued},
        {"running", st.running, want.running},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i].want != STAT_ANY && c[i].got != c[i].want)
            test_fail_(file, line, "stats.%s = %llu, want %llu", c[i].name,
                       (unsigned long long)c[i].got, (unsigned long long)c[i].want);
}

/* Submit @fn(@arg) and return its future. */
static exec_future_t *submit_ok(exec_t *ex, exec_task_fn *fn, const void *arg, size_t size)
{
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, fn, arg, size, &f));
    ASSERT_NOT_NULL(f);
    return f;
}

exec_future_t *submit_echo_i64(exec_t *ex, int64_t value)
{
    return submit_ok(ex, task_echo, &value, sizeof value);
}

exec_future_t *submit_status(exec_t *ex, int32_t status)
{
    return submit_ok(ex, task_status, &status, sizeof status);
}

exec_future_t *submit_block_tag(exec_t *ex, const struct gate *g, int64_t value,
                                const struct gate *out, char tag)
{
    struct block_arg a;
    memset(&a, 0, sizeof a);
    gate_path(a.gate, g);
    if (out)
        gate_path(a.out, out);
    a.value = value;
    a.tag = tag;
    return submit_ok(ex, task_block, &a, sizeof a);
}

exec_future_t *submit_block(exec_t *ex, const struct gate *g, int64_t value)
{
    return submit_block_tag(ex, g, value, NULL, 0);
}

void pipe_open(int p[2])
{
    ASSERT_EQ(pipe(p), 0);
}

exec_future_t *submit_pipe_blocker(exec_t *ex, const int p[2])
{
    return submit_ok(ex, task_block_on_pipe, &p[0], sizeof p[0]);
}

void destroy_with_pipe(exec_t *ex, int p[2])
{
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(close(p[0]), 0);
    ASSERT_EQ(close(p[1]), 0);
}

void check_worker_tids(const int64_t *running, int n, int64_t queued)
{
    bool found = false;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            ASSERT_NE(running[i], running[j]);
        ASSERT_NE(running[i], (int64_t)gettid());
        found |= queued == running[i];
    }
    ASSERT_TRUE(found);
}

exec_t *make_gated(struct gate *g, int workers)
{
    gate_open(g);
    return make_workers(workers);
}

void destroy_gated(exec_t *ex, struct gate *g)
{
    ASSERT_OK(exec_destroy(ex));
    gate_close(g);
}

exec_future_t *submit_running_(exec_t *ex, const struct gate *g, int64_t value,
                               const char *file, int line)
{
    exec_future_t *f = submit_block(ex, g, value);
    wait_state_(f, EXEC_STATE_RUNNING, file, line);
    return f;
}

void release_all_(exec_future_t *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        exec_future_release(fs[i]);
}

int64_t result_i64(const exec_future_t *f)
{
    ASSERT_EQ(exec_future_state(f), EXEC_STATE_DONE);
    const void *data = NULL;
    size_t size = 0;
    ASSERT_OK(exec_future_result(f, &data, &size));
    ASSERT_EQ(size, sizeof(int64_t));
    ASSERT_NOT_NULL(data);
    int64_t v;
    memcpy(&v, data, sizeof v);
    return v;
}

int64_t wait_i64(exec_future_t *f)
{
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    return result_i64(f);
}

void expect_child_end_(pid_t pid, int want_sig, int timeout_ms, const char *file, int line)
{
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < timeout_ms && r == 0; i++) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == 0)
            test_sleep_ms(1);
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        test_fail_(file, line, "forked child %d did not end within %d ms (hang; killed)",
                   (int)pid, timeout_ms);
    }
    if (r != pid)
        test_fail_(file, line, "waitpid(%d): %d", (int)pid, (int)r);
    if (want_sig == 0) {
        if (WIFSIGNALED(status))
            test_fail_(file, line, "forked child %d died of signal %d", (int)pid,
                       WTERMSIG(status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            test_fail_(file, line,
                       "forked child %d exited with status %d (its message is above on "
                       "stderr)",
                       (int)pid, WEXITSTATUS(status));
    } else {
        if (!WIFSIGNALED(status))
            test_fail_(file, line, "forked child %d exited %d, want signal %d", (int)pid,
                       WEXITSTATUS(status), want_sig);
        if (WTERMSIG(status) != want_sig)
            test_fail_(file, line, "forked child %d died of signal %d, want %d", (int)pid,
                       WTERMSIG(status), want_sig);
    }
}

char *fmt(char *buf, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, 4096, f, ap);
    va_end(ap);
    if (n < 0 || n >= 4096)
        TEST_FAIL("path or command too long: %.200s...", buf);
    return buf;
}

void check_version(void)
{
    ASSERT_EQ(exec_version(), EXEC_VERSION_NUMBER);
    ASSERT_EQ(EXEC_VERSION_NUMBER,
              EXEC_VERSION_MAJOR * 10000 + EXEC_VERSION_MINOR * 100 + EXEC_VERSION_PATCH);
    char s[64];
    snprintf(s, sizeof s, "%d.%d.%d", EXEC_VERSION_MAJOR, EXEC_VERSION_MINOR,
             EXEC_VERSION_PATCH);
    ASSERT_STR_EQ(EXEC_VERSION_STRING, s);
}
