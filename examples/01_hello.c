/* SPDX-License-Identifier: MIT */
/*
 * 01_hello.c - the smallest complete program: make an executor, run one task on it, read
 * the result, clean up.
 *
 * A task is a plain C function. It gets a private copy of its argument bytes and writes its
 * result bytes into `out`; the future owns those bytes until it is released.
 */
#include <executor.h>
#include <stdio.h>
#include <string.h>

static int greet(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    int n = snprintf(out, out_cap, "hello, %.*s", (int)arg_size, (const char *)arg);
    *out_size = (size_t)n + 1; /* include the NUL: the result is a C string */
    return 0;                  /* 0 = success; any other value is the task's error code */
}

int main(void)
{
    exec_t *ex;
    if (exec_create(&ex, NULL) != 0) /* NULL config: threads, one worker per CPU */
        return 1;

    exec_future_t *f;
    const char name[] = "world";
    int r = exec_submit(ex, greet, name, strlen(name), &f); /* name is copied here */
    if (r == 0) {
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        const void *res;
        r = exec_future_result(f, &res, NULL);
        if (r == 0)
            printf("%s\n", (const char *)res);
        exec_future_release(f); /* frees the result bytes */
    }
    if (r != 0)
        fprintf(stderr, "error: %s\n", exec_strerror(r));
    exec_destroy(ex);
    return r != 0;
}
