/* SPDX-License-Identifier: MIT */
/*
 * mpi_guard.c - build/tests/mpi-guard MODE: a program that starts under mpirun the ways a
 * program can get the guard exec_mpi_main() wrong, or right while owning MPI itself. The
 * tests of tests/test_mpi_guard.c launch it ($EXEC_TEST_MPIRUN) and read what every rank
 * prints. Each rank prints "rank R: <mode>: ok" and exits 0 when what it saw is what
 * executor_mpi.h documents, else a line saying what differed and exits 1.
 *
 *   none        no guard, no MPI: exec_create() with EXEC_BACKEND_MPI is EXEC_ENOTSUP
 *   init        MPI_Init() before the guard (MPI_THREAD_SINGLE): the guard says
 *   single      MPI_Init_thread(MPI_THREAD_SINGLE)     EXEC_ENOTSUP on every rank and
 *   funneled    MPI_Init_thread(MPI_THREAD_FUNNELED)   registers nothing; the program
 *   serialized  MPI_Init_thread(MPI_THREAD_SERIALIZED) finalises MPI and exits 0
 *   multiple    MPI_Init_thread(MPI_THREAD_MULTIPLE): the guard works; rank 0 runs tasks on
 *               the other ranks, destroys its executor and finalises MPI itself
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "executor_mpi.h"

static int rank_of_world(void)
{
    int init = 0, rank = -1;
    MPI_Initialized(&init);
    if (init)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

static int bad(const char *mode, const char *what, int got, int want)
{
    printf("rank %d: %s: %s: %d (%s), want %d (%s)\n", rank_of_world(), mode, what, got,
           exec_errname(got), want, exec_errname(want));
    return 1;
}

/* exec_create() of the mpi backend, which must be @want. */
static int create_mpi(const char *mode, int want)
{
    exec_config_t c = {.backend = EXEC_BACKEND_MPI};
    exec_t *ex = NULL;
    int r = exec_create(&ex, &c);
    if (r != want)
        return bad(mode, "exec_create(EXEC_BACKEND_MPI)", r, want);
    return 0;
}

static int twice(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    int64_t v;
    memcpy(&v, arg, sizeof v);
    v *= 2;
    memcpy(out, &v, sizeof v);
    *out_size = sizeof v;
    return 0;
}

static int multiple(int *argc, char ***argv)
{
    int level = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &level) != MPI_SUCCESS)
        return bad("multiple", "MPI_Init_thread", -1, 0);
    if (level < MPI_THREAD_MULTIPLE) { /* this MPI cannot: nothing to test */
        printf("rank %d: multiple: ok (MPI gives level %d only)\n", rank_of_world(), level);
        MPI_Finalize();
        return 0;
    }
    int r = exec_mpi_main(argc, argv); /* the serving ranks stay in there */
    if (r != EXEC_OK)
        return bad("multiple", "exec_mpi_main", r, EXEC_OK);
    exec_config_t c = {.backend = EXEC_BACKEND_MPI, .workers = 2};
    exec_t *ex = NULL;
    if ((r = exec_create(&ex, &c)) != EXEC_OK)
        return bad("multiple", "exec_create", r, EXEC_OK);
    for (int64_t i = 0; i < 10; i++) {
        exec_future_t *f = NULL;
        const void *res = NULL;
        size_t n = 0;
        int64_t v = 0;
        if ((r = exec_submit(ex, twice, &i, sizeof i, &f)) != EXEC_OK)
            return bad("multiple", "exec_submit", r, EXEC_OK);
        exec_future_wait(f, EXEC_WAIT_FOREVER);
        if ((r = exec_future_result(f, &res, &n)) != EXEC_OK || n != sizeof v)
            return bad("multiple", "exec_future_result", r, EXEC_OK);
        memcpy(&v, res, sizeof v);
        exec_future_release(f);
        if (v != 2 * i)
            return bad("multiple", "a task's result", (int)v, (int)(2 * i));
    }
    if ((r = exec_destroy(ex)) != EXEC_OK)
        return bad("multiple", "exec_destroy", r, EXEC_OK);
    printf("rank 0: multiple: ok\n");
    fflush(stdout);
    MPI_Finalize(); /* the program initialised MPI: it finalises it */
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int level = -1, r;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "none") == 0) {
        if ((r = create_mpi(mode, EXEC_ENOTSUP)) != 0)
            return r;
        printf("rank ?: none: ok: %s\n", exec_strerror(EXEC_ENOTSUP));
        return 0;
    }
    if (strcmp(mode, "multiple") == 0)
        return multiple(&argc, &argv);
    if (strcmp(mode, "init") == 0)
        r = MPI_Init(&argc, &argv);
    else if (strcmp(mode, "single") == 0)
        r = MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &level);
    else if (strcmp(mode, "funneled") == 0)
        r = MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
    else if (strcmp(mode, "serialized") == 0)
        r = MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    else
        return fprintf(stderr, "mpi-guard: unknown mode '%s'\n", mode), 2;
    if (r != MPI_SUCCESS)
        return bad(mode, "MPI initialisation", r, MPI_SUCCESS);
    MPI_Query_thread(&level);
    int status = 0;
    if (level < MPI_THREAD_MULTIPLE) {
        r = exec_mpi_main(&argc, &argv);
        if (r != EXEC_ENOTSUP)
            status = bad(mode, "exec_mpi_main", r, EXEC_ENOTSUP);
        else if ((r = exec_mpi_main(&argc, &argv)) != EXEC_EBUSY) /* once only, even then */
            status = bad(mode, "a second exec_mpi_main", r, EXEC_EBUSY);
        else if ((status = create_mpi(mode, EXEC_ENOTSUP)) == 0)
            printf("rank %d: %s: ok: %s\n", rank_of_world(), mode, exec_strerror(EXEC_ENOTSUP));
    } else {
        printf("rank %d: %s: ok (MPI gave level %d)\n", rank_of_world(), mode, level);
    }
    MPI_Finalize();
    return status;
}
