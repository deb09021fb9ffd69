/* SPDX-License-Identifier: MIT */
/*
 * test_mpi_guard.c - the guard exec_mpi_main() misused, or used by a program that owns MPI:
 * each test starts build/tests/mpi-guard MODE (tests/mpi_guard.c) as an MPI job of its own
 * with $EXEC_TEST_MPIRUN (so under both transports of `make mpi-test`; MPI_SELF in
 * tests/list.h), then checks that the job ended by itself, exited 0, and that every rank
 * saw the code and message executor_mpi.h documents. A job that hangs is cut at 60 s
 * (times EXEC_TEST_TIMEOUT_SCALE) and fails the test.
 *
 * Bad input that needs no job of its own is tested elsewhere, on the mpi backend: an
 * oversize argument (executor_submit_too_big), use after shutdown
 * (executor_submit_after_shutdown), a non-function pointer (mpi_bad_function_pointer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "shell.h"

/* Run the job; its output (every rank's, and mpirun's) into @out. */
static void job(const char *mode, char *out, size_t cap)
{
    char log[4200], cmd[4096];
    snprintf(log, sizeof log, "%s/job.log", test_tmpdir());
    const char *launch = getenv("EXEC_TEST_MPIRUN");
    snprintf(cmd, sizeof cmd, "timeout -k 5 %d %s %s/tests/mpi-guard %s",
             60 * test_timeout_scale(), launch && *launch ? launch : "mpirun -np 3",
             EXEC_BUILD_DIR, mode);
    int st = sh(log, cmd);
    read_file(log, out, cap);
    if (st != 0) {
        dump_log(log);
        TEST_FAIL("mpi-guard %s: exit status %d (124: it hung)", mode, st);
    }
}

/* How many lines of @out say "<mode>: ok", and that the others say nothing else. */
static int oks(const char *out, const char *mode)
{
    char want[64];
    snprintf(want, sizeof want, ": %s: ok", mode);
    int n = 0;
    for (const char *p = out; (p = strstr(p, want)) != NULL; p += strlen(want))
        n++;
    return n;
}

/* Every rank (3) saw EXEC_ENOTSUP, its message, and mpirun exited 0. */
static void expect_refused(const char *mode)
{
    static char out[65536];
    job(mode, out, sizeof out);
    ASSERT_EQ(oks(out, mode), 3);
    ASSERT_TRUE(strstr(out, exec_strerror(EXEC_ENOTSUP)) != NULL);
    ASSERT_TRUE(strstr(out, "want") == NULL); /* no rank saw another code */
}

/* Under mpirun without the guard: EXEC_ENOTSUP from exec_create() on every rank. */
TEST(mpi_guard_missing)
{
    expect_refused("none");
}

/* MPI_Init() (MPI_THREAD_SINGLE) before the guard: EXEC_ENOTSUP on every rank, no rank
 * serves, the program finalises MPI and the job ends. */
TEST(mpi_guard_after_mpi_init)
{
    expect_refused("init");
}

TEST(mpi_guard_after_init_single)
{
    expect_refused("single");
}

TEST(mpi_guard_after_init_funneled)
{
    expect_refused("funneled");
}

/* MPI_THREAD_SERIALIZED is enough when the guard initialises MPI itself, not when the
 * program did: its own threads may call MPI beside the executor's. */
TEST(mpi_guard_after_init_serialized)
{
    expect_refused("serialized");
}

/* MPI_THREAD_MULTIPLE before the guard: the executor works, and the program's own
 * MPI_Finalize() on rank 0 ends the serving ranks first (no hang in it). */
TEST(mpi_guard_after_init_multiple)
{
    static char out[65536];
    job("multiple", out, sizeof out);
    ASSERT_EQ(oks(out, "multiple"), 1);
    ASSERT_TRUE(strstr(out, "want") == NULL);
}
