/* SPDX-License-Identifier: MIT */
/*
 * mpi_run.h - the MPI backend's runs of the suite (tests/mpi_run.c), in the MPI runner only
 * (build/tests/run-mpi: tests/run.c built with -DTEST_MPI and linked with libexecutor-mpi).
 *
 * A test child cannot use MPI itself (MPI does not survive fork()), so a run on the mpi
 * backend is one job: the test child starts `$EXEC_TEST_MPIRUN <run-mpi> --mpi-one NAME`
 * (default `mpirun -np 3`), where rank 0 runs the test and the other ranks serve. The job
 * must exit 0, and every rank must be gone soon after rank 0's test returned.
 */
#ifndef EXEC_TEST_MPI_RUN_H
#define EXEC_TEST_MPI_RUN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether test @name (with list.h @flags) runs on the mpi backend (tests/mpi_list.h). */
bool test_mpi_wanted(const char *name, unsigned flags, unsigned mpi_only_flag);
/* In a test child: run @name as an MPI job; its outcome is the child's exit status, the
 * reason goes to @why. */
_Noreturn void test_mpi_child(const char *name, char *why, size_t why_size);
/* Rank 0 of the job, after the test returned: note the time for test_mpi_child(). */
void test_mpi_mark_end(void);

#endif /* EXEC_TEST_MPI_RUN_H */
