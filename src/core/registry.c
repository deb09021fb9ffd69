/* SPDX-License-Identifier: MIT */
/*
 * core/registry.c - which backends this build has. The only place in the core that names a
 * backend: one line per backend folder (docs/internals.md, "How to add a backend").
 */
#include "core/backend.h"

extern const struct exec__backend_ops exec__thread_ops;
extern const struct exec__backend_ops exec__process_ops;

#ifdef EXEC_TEST_HOOKS
/* Test build only: a table that stands in for every backend while set (tests/test_seam.c
 * drives the core with a backend of its own, written against core/backend.h alone). */
static const struct exec__backend_ops *_Atomic test_ops;

void exec__test_backend_set(const struct exec__backend_ops *ops)
{
    atomic_store(&test_ops, ops);
}
#endif

/* The MPI backend lives in a second library (libexecutor-mpi, src/mpi/): its guard call,
 * exec_mpi_main(), registers its table here. The core itself never links MPI. */
static const struct exec__backend_ops *_Atomic mpi_ops;

void exec__backend_register(exec_backend_t b, const struct exec__backend_ops *ops)
{
    if (b == EXEC_BACKEND_MPI)
        atomic_store(&mpi_ops, ops);
}

int exec__backend_missing(exec_backend_t b)
{
    /* A backend of the enum that this program has not registered: not supported here. */
    return b == EXEC_BACKEND_MPI ? EXEC_ENOTSUP : EXEC_EINVAL;
}

const struct exec__backend_ops *exec__backend_find(exec_backend_t b)
{
#ifdef EXEC_TEST_HOOKS
    const struct exec__backend_ops *t = atomic_load(&test_ops);
    if (t)
        return t;
#endif
    switch (b) {
    case EXEC_BACKEND_THREADS:
        return &exec__thread_ops;
    case EXEC_BACKEND_PROCESSES:
        return &exec__process_ops;
    case EXEC_BACKEND_MPI:
        return atomic_load(&mpi_ops);
    }
    return NULL;
}
