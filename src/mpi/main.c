/* SPDX-License-Identifier: MIT */
/*
 * mpi/main.c - exec_mpi_main(), the guard at the top of main(): MPI's initialisation, the
 * registration of the backend with the core (core/registry.c), the serving ranks' turn off
 * into their loop, and rank 0's exit handler that lets every rank end cleanly.
 */
#include "mpi/mpi.h"

#include "executor_mpi.h"
#include "shm/shm.h"

#include <stdlib.h>

struct mpi__world exec__mpi_world = {.comm = MPI_COMM_NULL};
static _Atomic bool called;

/* Rank 0 is leaving, or finalising MPI: stop a live executor's comm thread and tell every
 * serving rank to end (once: the communicator is freed). */
static void release_ranks(void)
{
    struct mpi__world *w = &exec__mpi_world;
    if (w->rank != 0 || w->comm == MPI_COMM_NULL)
        return;
    exec__mpi_abandon();
    MPI_Request *req = calloc((size_t)w->size, sizeof *req);
    for (int r = 1; r < w->size && req; r++)
        MPI_Isend(NULL, 0, MPI_BYTE, r, MPI__TAG_FINAL, w->comm, &req[r - 1]);
    if (req)
        MPI_Waitall(w->size - 1, req, MPI_STATUSES_IGNORE);
    free(req);
    MPI_Comm_free(&w->comm);
}

/* Rank 0's exit: let every rank end cleanly, and finalise MPI if we initialised it. */
static void at_exit(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin)
        return; /* the program finalised MPI itself (it initialised it, too) */
    release_ranks();
    if (exec__mpi_world.we_init)
        PMPI_Finalize();
}

/* A program that initialised MPI itself finalises it on rank 0, while the serving ranks are
 * still in exec__mpi_serve(): MPI_Finalize() waits for every rank, so they must be told to
 * end first. MPI's profiling interface lets this library's MPI_Finalize() come first (the
 * program links it before libmpi) and call the real one, PMPI_Finalize(). */
__attribute__((visibility("default"))) int MPI_Finalize(void)
{
    release_ranks();
    return PMPI_Finalize();
}

/* How many of the serving ranks share rank 0's host (for the default local pool size). */
static int ranks_on_host0(MPI_Comm comm)
{
    MPI_Comm node;
    int me = 0, n = 0, root = 0, host0 = 0;
    MPI_Comm_rank(comm, &me);
    exec__mpi_world.on_host0 = true; /* unless the split below says otherwise */
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
        MPI_SUCCESS)
        return 1;
    MPI_Comm_size(node, &n);
    /* Whether this node has rank 0: rank 0's node-local size, broadcast to all. */
    root = me == 0 ? n : 0;
    MPI_Allreduce(&root, &host0, 1, MPI_INT, MPI_MAX, comm);
    int mine = me == 0, here = 0; /* whether rank 0 is on this rank's node */
    MPI_Allreduce(&mine, &here, 1, MPI_INT, MPI_MAX, node);
    exec__mpi_world.on_host0 = here;
    MPI_Comm_free(&node);
    return host0 > 1 ? host0 - 1 : 1;
}

EXEC_API int exec_mpi_main(int *argc, char ***argv)
{
    if (atomic_exchange(&called, true))
        return EXEC_EBUSY;
    struct mpi__world *w = &exec__mpi_world;
    int init = 0, level = 0;
    MPI_Initialized(&init);
    if (init) {
        MPI_Query_thread(&level);
        if (level < MPI_THREAD_MULTIPLE)
            return EXEC_ENOTSUP;
    } else {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &level) != MPI_SUCCESS)
            return EXEC_ESYS;
        w->we_init = true;
        if (level < MPI_THREAD_SERIALIZED) {
            MPI_Finalize();
            return EXEC_ENOTSUP;
        }
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &w->comm);
    MPI_Comm_rank(w->comm, &w->rank);
    MPI_Comm_size(w->comm, &w->size);
    w->host_ranks = ranks_on_host0(w->comm);
    if (w->rank != 0)
        exec__mpi_serve();
    exec__backend_register(EXEC_BACKEND_MPI, &exec__mpi_ops);
    atomic_store(&exec__shm_closed, exec__mpi_shm_closed); /* copies on other hosts (shm.c) */
    atexit(at_exit);
    return EXEC_OK;
}
