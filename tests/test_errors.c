/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - the error list: every code's number is frozen, exec_errname() and
 * exec_strerror() agree with EXEC_ERRNO_MAP for every code, and any other int gets the
 * documented fallback. Those tests make no executor, so they are backend-free. Then the
 * error side of what issue 13 added: bad input to the initializer fields (both backends) and
 * the texts and causes of a broken pool.
 */
#include "harness.h"

#include "tasks.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Every row of the map, as the header generates it. */
struct code_row {
    int value;
    const char *name;    /* "EXEC_" #NAME */
    const char *message; /* the map's message */
};

#define ROW(name, value, msg) {(value), "EXEC_" #name, (msg)},
static const struct code_row rows[] = {EXEC_ERRNO_MAP(ROW)};
#undef ROW

#define NROWS (sizeof rows / sizeof rows[0])

/* The numbers are frozen forever (curl rule): spell each one out, so that renumbering or
 * reordering the map fails here even if every other test still passes. */
TEST(errors_values_fixed)
{
    ASSERT_EQ(EXEC_OK, 0);
    ASSERT_EQ(EXEC_EINVAL, -1);
    ASSERT_EQ(EXEC_ENOMEM, -2);
    ASSERT_EQ(EXEC_ESHUTDOWN, -3);
    ASSERT_EQ(EXEC_ETOOBIG, -4);
    ASSERT_EQ(EXEC_ETIMEDOUT, -5);
    ASSERT_EQ(EXEC_ECANCELLED, -6);
    ASSERT_EQ(EXEC_ECRASHED, -7);
    ASSERT_EQ(EXEC_ETASK, -8);
    ASSERT_EQ(EXEC_EAGAIN, -9);
    ASSERT_EQ(EXEC_EDEADLK, -10);
    ASSERT_EQ(EXEC_ESYS, -11);
    ASSERT_EQ(EXEC_ENOTSUP, -12);
    ASSERT_EQ(EXEC_EBUSY, -13);
    ASSERT_EQ(EXEC_EBROKEN, -14);
    /* Append-only: the map is exactly 0, -1, ..., -14 in order, with nothing in between.
     * A new code makes this fail on purpose: add its literal above and bump the count. */
    ASSERT_EQ(NROWS, 15);
    for (size_t i = 0; i < NROWS; i++)
        ASSERT_EQ(rows[i].value, -(int)i);
}

/* exec_errname() gives "EXEC_" #NAME for every code of the map. */
TEST(errors_names)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *name = exec_errname(rows[i].value);
        ASSERT_NOT_NULL(name);
        ASSERT_STR_EQ(name, rows[i].name);
    }
    /* Spot checks that do not go through the map at all. */
    ASSERT_STR_EQ(exec_errname(0), "EXEC_OK");
    ASSERT_STR_EQ(exec_errname(-1), "EXEC_EINVAL");
    ASSERT_STR_EQ(exec_errname(-14), "EXEC_EBROKEN");
}

/* exec_strerror() gives the map's message for every code; messages are non-empty and
 * pairwise distinct (a reader can tell two codes apart from their messages alone). */
TEST(errors_messages)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *msg = exec_strerror(rows[i].value);
        ASSERT_NOT_NULL(msg);
        ASSERT_STR_EQ(msg, rows[i].message);
        ASSERT_GT(strlen(msg), 0);
        /* No code's message is the fallback for unknown codes. */
        ASSERT_FALSE(strcmp(msg, "unknown error") == 0);
    }
    for (size_t i = 0; i < NROWS; i++)
        for (size_t j = i + 1; j < NROWS; j++) {
            if (strcmp(exec_strerror(rows[i].value), exec_strerror(rows[j].value)) == 0)
                TEST_FAIL("codes %d and %d share the message \"%s\"", rows[i].value,
                          rows[j].value, exec_strerror(rows[i].value));
            if (strcmp(exec_errname(rows[i].value), exec_errname(rows[j].value)) == 0)
                TEST_FAIL("codes %d and %d share the name %s", rows[i].value, rows[j].value,
                          exec_errname(rows[i].value));
        }
}

/* Any int that is not a code: "unknown error" and "EXEC_EUNKNOWN", never NULL. The values
 * next to the ends of the map are the ones an off-by-one table lookup would get wrong. */
TEST(errors_unknown_codes)
{
    static const int unknown[] = {1, 2, -15, -16, 100, -100, -1000, 12345, INT_MAX,
                                  INT_MIN, INT_MIN + 1, INT_MAX - 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ASSERT_STR_EQ(exec_strerror(unknown[i]), "unknown error");
        ASSERT_STR_EQ(exec_errname(unknown[i]), "EXEC_EUNKNOWN");
    }
}

/* The strings are static: two calls for the same code return the same pointer (nothing is
 * allocated per call), and the text is still intact after many other calls. */
TEST(errors_strings_static)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *m1 = exec_strerror(rows[i].value);
        const char *n1 = exec_errname(rows[i].value);
        for (int k = -20; k <= 5; k++) {
            (void)exec_strerror(k);
            (void)exec_errname(k);
        }
        ASSERT_TRUE(m1 == exec_strerror(rows[i].value));
        ASSERT_TRUE(n1 == exec_errname(rows[i].value));
        ASSERT_STR_EQ(m1, rows[i].message);
        ASSERT_STR_EQ(n1, rows[i].name);
    }
    ASSERT_TRUE(exec_strerror(77) == exec_strerror(-77));
    ASSERT_TRUE(exec_errname(77) == exec_errname(-77));
}

/* Thread-safety: four threads call both functions on every code and on unknown codes at
 * once; each checks every answer. */
static void *hammer(void *p)
{
    long bad = 0;
    (void)p;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < NROWS; i++) {
            bad += strcmp(exec_strerror(rows[i].value), rows[i].message) != 0;
            bad += strcmp(exec_errname(rows[i].value), rows[i].name) != 0;
        }
        bad += strcmp(exec_errname(round + 1), "EXEC_EUNKNOWN") != 0;
        bad += strcmp(exec_strerror(-15 - round), "unknown error") != 0;
    }
    return (void *)(intptr_t)bad;
}

TEST(errors_thread_safe)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        ASSERT_EQ(pthread_join(t[i], &bad), 0);
        ASSERT_EQ((intptr_t)bad, 0);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The initializer's bad input, and what a broken pool's texts may claim                     */
/* ---------------------------------------------------------------------------------------- */

/* exec_create() with bad initializer fields, on both backends: argument bytes without a
 * pointer are EXEC_EINVAL, more bytes than max_arg_size EXEC_ETOOBIG; nothing is written,
 * nothing is left (the runner counts threads, children and fds; valgrind the heap). */
TEST(errors_bad_initializer)
{
    static const char bytes[16] = "initializer";
    struct {
        exec_config_t cfg;
        int want;
    } bad[] = {
        {{.initializer = task_noop, .init_arg = NULL, .init_arg_size = 4}, EXEC_EINVAL},
        {{.init_arg = NULL, .init_arg_size = 1}, EXEC_EINVAL},
        {{.initializer = task_noop, .init_arg = bytes, .init_arg_size = 9,
          .max_arg_size = 8},
         EXEC_ETOOBIG},
        {{.initializer = task_noop, .init_arg = bytes,
          .init_arg_size = EXEC_DEFAULT_MAX_ARG_SIZE + 1},
         EXEC_ETOOBIG},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        exec_config_t c = bad[i].cfg;
        c.backend = test_backend;
        c.workers = 1;
        exec_t *ex = SENTINEL;
        ASSERT_ERR(exec_create(&ex, &c), bad[i].want);
        ASSERT_TRUE(ex == SENTINEL);
    }
    /* The limit itself is fine, and the argument may be given without an initializer. */
    exec_config_t ok = config_workers(1);
    ok.initializer = task_noop;
    ok.init_arg = bytes;
    ok.init_arg_size = 8;
    ok.max_arg_size = 8;
    ASSERT_OK(exec_destroy(make_exec(&ok)));
    ok.initializer = NULL;
    ASSERT_OK(exec_destroy(make_exec(&ok)));
}

/* EXEC_EBROKEN's text fits every way a pool breaks: it names none of them (the cause is in
 * exec_fault_t.cause), and the causes are distinct, fixed numbers. */
TEST(errors_broken_text_names_no_cause)
{
    const char *m = exec_strerror(EXEC_EBROKEN);
    ASSERT_TRUE(strstr(m, "broken") != NULL);
    ASSERT_TRUE(strstr(m, "breaker") == NULL);
    ASSERT_TRUE(strstr(m, "crash") == NULL);
    ASSERT_TRUE(strstr(m, "initializer") == NULL);
    ASSERT_TRUE(strstr(m, "zygote") == NULL);
    ASSERT_EQ(EXEC_CAUSE_NONE, 0);
    ASSERT_EQ(EXEC_CAUSE_INITIALIZER, 1);
    ASSERT_EQ(EXEC_CAUSE_CRASH_LOOP, 2);
    ASSERT_EQ(EXEC_CAUSE_ZYGOTE, 3);
    ASSERT_EQ(EXEC_CAUSE_THREAD_EXIT, 4);
    ASSERT_EQ(EXEC_CAUSE_SPAWN, 5);
    ASSERT_EQ(sizeof(exec_fault_t), 12 * sizeof(int)); /* cause came out of reserved */
}
