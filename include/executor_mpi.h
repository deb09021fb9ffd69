/* SPDX-License-Identifier: MIT -- libexecutor, an embeddable C executor library. */
/*
 * executor_mpi.h - the MPI backend's one extra call. Programs that use EXEC_BACKEND_MPI
 * include this header, link libexecutor-mpi instead of libexecutor
 * (`pkg-config --cflags --libs executor-mpi`) and start under mpirun or srun:
 *
 *     int main(int argc, char **argv)
 *     {
 *         int r = exec_mpi_main(&argc, &argv);  // serving ranks never return from here
 *         if (r != EXEC_OK)
 *             return fprintf(stderr, "mpi: %s\n", exec_strerror(r)), 1;
 *         exec_config_t cfg = {.backend = EXEC_BACKEND_MPI};
 *         exec_t *ex;
 *         exec_create(&ex, &cfg);               // rank 0: the program, as on one machine
 *         ...
 *     }
 *
 *     mpirun -np 3 ./prog          # rank 0 runs main, ranks 1 and 2 serve tasks
 *     srun -n 3 ./prog
 *
 * It is a header of its own so that the core header, and every program that does not use
 * MPI, stays free of it; it declares no MPI type, so it needs no <mpi.h> either.
 */
#ifndef EXECUTOR_MPI_H
#define EXECUTOR_MPI_H

#include "executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * exec_mpi_main() - the guard at the top of main() of a program that uses EXEC_BACKEND_MPI
 * (Python's `if __name__ == "__main__"`).
 * @argc, @argv: main()'s, passed to MPI_Init_thread() (may be NULL).
 * Initialises MPI (thread level MPI_THREAD_MULTIPLE asked, MPI_THREAD_SERIALIZED at least
 * needed) unless the program did already, in which case it must have asked for
 * MPI_THREAD_MULTIPLE: the executor's thread calls MPI while the program may too (on a
 * communicator of its own). Then on rank 0 it registers the MPI backend and returns; on
 * every other rank it serves tasks and never returns: the process ends with exit status 0
 * when rank 0's program exits (its main returns or it calls exit()), whether or not it
 * destroyed its executor; MPI is finalised on every rank at that moment (by an atexit
 * handler on rank 0, so the program must not call MPI_Finalize() itself unless it
 * initialised MPI before this call). Call it once, before any thread is started.
 * A program that initialised MPI itself (MPI_THREAD_MULTIPLE) finalises it on rank 0 as
 * usual, after exec_destroy(): this library's MPI_Finalize() (MPI's profiling interface;
 * link libexecutor-mpi before libmpi, as pkg-config does) first ends every serving rank,
 * which finalises MPI and exits 0 on its own, then calls PMPI_Finalize(). Finalising with
 * an MPI executor alive abandons it (as at exit): its unfinished futures never end.
 * Too little thread support is refused on EVERY rank, so nothing hangs: each rank gets
 * EXEC_ENOTSUP (exec_strerror(): "not supported by this backend or platform"), no rank
 * serves, the backend is not registered (exec_create() with EXEC_BACKEND_MPI returns
 * EXEC_ENOTSUP too) and MPI stays the program's to finalise.
 * A program started without mpirun is a job of one rank: this returns EXEC_OK, and
 * exec_create() with EXEC_BACKEND_MPI returns EXEC_ENOTSUP (no rank to serve). Under mpirun
 * without this call, exec_create() with EXEC_BACKEND_MPI returns EXEC_ENOTSUP on every rank.
 * Return: EXEC_OK (rank 0); EXEC_ENOTSUP (MPI initialised before with a thread level below
 *         MPI_THREAD_MULTIPLE: MPI_Init(), MPI_THREAD_SINGLE, _FUNNELED or _SERIALIZED; or
 *         MPI gives less than MPI_THREAD_SERIALIZED); EXEC_ESYS (MPI_Init_thread() failed);
 *         EXEC_EBUSY (called a second time, whatever the first call returned).
 * Thread-safety: call once, from main(), before other threads exist.
 */
EXEC_API int exec_mpi_main(int *argc, char ***argv);

#ifdef __cplusplus
}
#endif

#endif /* EXECUTOR_MPI_H */
