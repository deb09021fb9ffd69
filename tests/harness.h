/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what every test file includes.
 *
 * A test is a function written with TEST(name) and listed once in tests/list.h. The runner
 * (tests/run.c) runs each test in its own forked child, once per backend when the test is
 * listed BOTH_BACKENDS; the test reads the backend from test_backend, or simply builds its
 * config with test_config(), so the same body serves both backends.
 *
 *     TEST(submit_returns_result)
 *     {
 *         exec_config_t cfg;
 *         test_config(&cfg);
 *         exec_t *ex;
 *         ASSERT_OK(exec_create(&ex, &cfg));
 *         ...
 *         ASSERT_OK(exec_destroy(ex));
 *     }
 *
 * A failing assertion prints "file:line: expression: values" to stderr and ends the test
 * child at once with exit status 1 (from any thread; in a worker process of the process
 * backend it ends only that worker). After the test returns, the runner checks that it left
 * no child process, thread, file descriptor or /dev/shm/exec-* entry behind.
 */
#ifndef EXEC_TEST_HARNESS_H
#define EXEC_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "executor.h"

/** Define a test: TEST(foo) { ... } defines void test_foo(void). */
#define TEST(name)                                                                         \
    void test_##name(void);                                                                \
    void test_##name(void)

/* Exit statuses of a test child, as the runner reads them. */
#define TEST_EXIT_FAIL 1    /* an assertion failed */
#define TEST_EXIT_HYGIENE 3 /* the test passed but left something behind */
#define TEST_EXIT_TOOL 99   /* valgrind or a sanitizer reported an error (see Makefile) */

/** The backend this run of the test is for; set by the runner before the test starts. */
extern exec_backend_t test_backend;

/** Zero *cfg, then set cfg->backend = test_backend. */
void test_config(exec_config_t *cfg);

/** "threads" or "processes": the name of test_backend. */
const char *test_backend_name(void);

/** EXEC_TEST_TIMEOUT_SCALE (>= 1): how much slower than normal the suite runs (valgrind 10,
 *  sanitizers 2-5). A heavy test may divide its iteration count by it; never assert speed. */
int test_timeout_scale(void);

/** CLOCK_MONOTONIC in milliseconds. */
uint64_t test_now_ms(void);
/** Sleep for @ms milliseconds (restarting on EINTR). */
void test_sleep_ms(unsigned ms);

/** Open file descriptors of this process. */
int test_count_fds(void);
/** Threads of this process (entries of /proc/self/task). */
int test_count_threads(void);
/** Processes whose parent is this process, zombies included (from /proc). */
int test_count_children(void);
/** From /proc/<pid>/stat: the state letter, parent and process group of @pid (each out
 *  may be NULL). 0, or -1 when the process is gone. */
int test_proc_stat(pid_t pid, char *state, pid_t *ppid, pid_t *pgid);
/** Calls @fn(pid, @arg) for every process in /proc; returns how many there were. */
int test_each_process(void (*fn)(long pid, void *arg), void *arg);
/** Entries of /dev/shm whose name starts with @prefix (e.g. "exec-"). */
int test_count_shm(const char *prefix);

/**
 * test_tmpdir() - a new empty directory under $TMPDIR (or /tmp), removed with its contents
 * when the test ends, whether it passes or fails. Fails the test if it cannot be made.
 * Return: its path, valid until the test ends.
 */
const char *test_tmpdir(void);

/**
 * test_fail_() - report a failure at @file:@line and end the test child (exit status 1).
 * The assertion macros call it; tests may call it through TEST_FAIL() for custom checks.
 */
_Noreturn void test_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TEST_FAIL(...) test_fail_(__FILE__, __LINE__, __VA_ARGS__)

/* --- assertions ------------------------------------------------------------------------- */
/* Each argument is evaluated exactly once. Integer assertions compare as long long. */

#define TEST_CMP_(a, op, b)                                                                \
    do {                                                                                   \
        long long test_a_ = (long long)(a);                                                \
        long long test_b_ = (long long)(b);                                                \
        if (!(test_a_ op test_b_))                                                         \
            test_fail_(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, test_a_, \
                       test_b_);                                                           \
    } while (0)

#define ASSERT_EQ(a, b) TEST_CMP_(a, ==, b)
#define ASSERT_NE(a, b) TEST_CMP_(a, !=, b)
#define ASSERT_LT(a, b) TEST_CMP_(a, <, b)
#define ASSERT_LE(a, b) TEST_CMP_(a, <=, b)
#define ASSERT_GT(a, b) TEST_CMP_(a, >, b)
#define ASSERT_GE(a, b) TEST_CMP_(a, >=, b)

#define ASSERT_TRUE(c)                                                                     \
    do {                                                                                   \
        if (!(c))                                                                          \
            test_fail_(__FILE__, __LINE__, "%s: false", #c);                               \
    } while (0)

#define ASSERT_FALSE(c)                                                                    \
    do {                                                                                   \
        if (c)                                                                             \
            test_fail_(__FILE__, __LINE__, "%s: true, want false", #c);                    \
    } while (0)

/** @expr == 0 (EXEC_OK); on failure prints the value and its exec_errname(). */
#define ASSERT_OK(expr)                                                                    \
    do {                                                                                   \
        long long test_r_ = (long long)(expr);                                             \
        if (test_r_ != 0)                                                                  \
            test_fail_(__FILE__, __LINE__, "%s: %lld (%s), want 0 (EXEC_OK)", #expr,       \
                       test_r_, exec_errname((int)test_r_));                               \
    } while (0)

/** @expr == @code; on failure prints both values and names. */
#define ASSERT_ERR(expr, code)                                                             \
    do {                                                                                   \
        long long test_r_ = (long long)(expr);                                             \
        long long test_c_ = (long long)(code);                                             \
        if (test_r_ != test_c_)                                                            \
            test_fail_(__FILE__, __LINE__, "%s: %lld (%s), want %lld (%s)", #expr,         \
                       test_r_, exec_errname((int)test_r_), test_c_,                       \
                       exec_errname((int)test_c_));                                        \
    } while (0)

#define ASSERT_NULL(p)                                                                     \
    do {                                                                                   \
        const void *test_p_ = (const void *)(p);                                           \
        if (test_p_ != NULL)                                                               \
            test_fail_(__FILE__, __LINE__, "%s: %p, want NULL", #p, test_p_);              \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                                 \
    do {                                                                                   \
        if ((const void *)(p) == NULL)                                                     \
            test_fail_(__FILE__, __LINE__, "%s: NULL", #p);                                \
    } while (0)

/** Two C strings are equal; either may be NULL (NULL equals only NULL). */
#define ASSERT_STR_EQ(a, b)                                                                \
    do {                                                                                   \
        const char *test_sa_ = (a);                                                        \
        const char *test_sb_ = (b);                                                        \
        if (!test_str_eq_(test_sa_, test_sb_))                                             \
            test_fail_(__FILE__, __LINE__, "%s == %s: %s%s%s vs %s%s%s", #a, #b,           \
                       test_sa_ ? "\"" : "", test_sa_ ? test_sa_ : "NULL",                 \
                       test_sa_ ? "\"" : "", test_sb_ ? "\"" : "",                         \
                       test_sb_ ? test_sb_ : "NULL", test_sb_ ? "\"" : "");                \
    } while (0)

/** @n bytes at @a and @b are equal; on failure prints the first differing byte. */
#define ASSERT_MEM_EQ(a, b, n)                                                             \
    do {                                                                                   \
        const unsigned char *test_ma_ = (const unsigned char *)(a);                        \
        const unsigned char *test_mb_ = (const unsigned char *)(b);                        \
        size_t test_n_ = (size_t)(n);                                                      \
        for (size_t test_i_ = 0; test_i_ < test_n_; test_i_++) {                           \
            if (test_ma_[test_i_] != test_mb_[test_i_])                                    \
                test_fail_(__FILE__, __LINE__,                                             \
                           "%s == %s (%zu bytes): differ at byte %zu: 0x%02x vs 0x%02x",   \
                           #a, #b, test_n_, test_i_, test_ma_[test_i_],                    \
                           test_mb_[test_i_]);                                             \
        }                                                                                  \
    } while (0)

static inline bool test_str_eq_(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

#endif /* EXEC_TEST_HARNESS_H */
