/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program that uses an installed libexecutor: the tooling tests build it
 * against `make install` trees, with pkg-config and with CMake, and check its output
 * ("version <EXEC_VERSION_NUMBER>" and "square 49" on two lines).
 */
#include <executor.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int square(const void *arg, size_t arg_size, void *out, size_t out_cap,
                  size_t *out_size)
{
    int64_t x;
    if (arg_size != sizeof x || out_cap < sizeof x)
        return 1;
    memcpy(&x, arg, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_size = sizeof x;
    return 0;
}

int main(void)
{
    exec_config_t cfg = {0};
    exec_t *ex;
    exec_future_t *f;
    int64_t v = 7;
    const void *r;
    size_t n;
    cfg.workers = 2;
    if (exec_create(&ex, &cfg) != 0)
        return 2;
    if (exec_submit(ex, square, &v, sizeof v, &f) != 0)
        return 3;
    if (exec_future_wait(f, EXEC_WAIT_FOREVER) != 0)
        return 4;
    if (exec_future_result(f, &r, &n) != 0 || n != sizeof v)
        return 5;
    memcpy(&v, r, sizeof v);
    printf("version %u\nsquare %lld\n", exec_version(), (long long)v);
    exec_future_release(f);
    return exec_destroy(ex) == 0 ? 0 : 6;
}
