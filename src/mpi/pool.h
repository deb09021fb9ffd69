/* SPDX-License-Identifier: MIT */
/*
 * mpi/pool.h - rank 0's executor of the MPI backend: the object the operations (pool.c) and
 * the communication thread (dispatch.c) share.
 *
 * Locking: p->lock protects the FIFO, the map list, the slots, the counters and the flags.
 * Futures are ended, and their references dropped, outside it: a done-callback may submit.
 */
#ifndef EXEC_MPI_POOL_H
#define EXEC_MPI_POOL_H

#include "mpi/mpi.h"

struct slot {
    struct exec_future *f; /* a task, or */
    struct exec__map *m;   /* a map chunk [lo, hi) */
    size_t lo, hi;
    size_t bytes;  /* argument bytes it took to the rank */
    uint64_t sent_ns; /* when */
    int next_free; /* free list; -1 ends it */
    uint64_t t_sent; /* exec__ticks() when sent, when tracing (trace.c) */
};

struct rank {
    uint32_t cap, busy;
    size_t bytes; /* argument bytes in flight there */
    uint32_t ended, ahead; /* results in this window; in the last one (dispatch.c) */
    uint64_t window_ns;    /* when this window began */
    int free_head;
    struct slot *slots;
    int workers; /* its local pool's */
    int base;    /* worker_id of its first local worker */
    int pid;     /* its process */
};

struct cancel {
    int rank;
    uint32_t slot, flags;
};

struct mp {
    struct exec *core;
    MPI_Comm comm;
    int size; /* ranks in the job; 1..size-1 serve */
    struct rank *ranks;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* idle (shutdown), space (queue_max), stats answered */
    struct exec__list fifo;
    size_t waiting, inflight, tasks_inflight;
    struct exec__list maps;
    struct cancel *cancels;
    size_t ncancels, cancels_cap;
    uint64_t submitted;
    bool shut, stop, abandon;
    uint64_t stats_want, stats_sent, stats_done;
    int stats_pending;
    exec_stats_t stats_sum, stats_last;
    int hello_code; /* the first failure a rank reported at creation */

    _Atomic uint32_t wake;    /* bumped at every request for the comm thread */
    _Atomic bool sleeping;    /* the comm thread sleeps on wake */
    pthread_t thread;
    struct mpi__sends sends;  /* the comm thread's */
    uint64_t rtt_ns;          /* its average time from a send to the result (EWMA) */
    void *buf;
    size_t bufcap;

    struct exec__tlane *tl; /* the trace's lane of the comm thread; NULL: not tracing */
    int32_t *track_pid;     /* per worker id: the pid its track was named with (trace.c) */
};

/* dispatch.c */
extern _Thread_local bool exec__mpi_on_comm_thread;
/* Work sent to ranks beyond their workers (it waits there). p->lock held. */
size_t exec__mpi_waiting_remote(const struct mp *p);
/* Wake the comm thread for a request. */
void exec__mpi_poke(struct mp *p);
/* Grow array *@a of *@cap elements of @el bytes to hold more than @n. */
bool exec__mpi_grow(void **a, size_t *cap, size_t n, size_t el);
/* The comm thread. */
void *exec__mpi_comm_main(void *arg);

/* trace.c: open (at create: the lane, if tracing), free; result: record the span of the
 * work in slot @s of rank @ri that reply @r ended (before the work is ended); idle: the
 * comm thread goes to sleep (hand what it recorded over). */
int exec__mpi_trace_open(struct mp *p);
void exec__mpi_trace_free(struct mp *p);
void exec__mpi_trace_result(struct mp *p, int ri, const struct slot *s,
                            const struct mpi__result *r, const void *data);
void exec__mpi_trace_idle(struct mp *p);

#endif /* EXEC_MPI_POOL_H */
