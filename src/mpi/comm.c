/* SPDX-License-Identifier: MIT */
/*
 * mpi/comm.c - what both sides of the MPI backend use: non-blocking sends that own their
 * buffers, receiving whatever message is there, and the spin-then-sleep backoff.
 *
 * Every send is non-blocking: a rank that blocked in a large send while its peer blocked in
 * another (rendezvous protocol both ways) would deadlock the two. Receives are a probe and a
 * receive of a message known to be there, so nothing ever blocks inside MPI, which would spin
 * a core in Open MPI's progress loop.
 */
#include "mpi/mpi.h"

#include <stdlib.h>
#include <string.h>

/* Spin (yielding now and then) this long after the last activity, then sleep
 * MPI__STEP_MIN_NS, doubling up to 1 ms (or the caller's cap). */
#define SPIN_NS 200000u
#define STEP_MAX_NS 1000000u

void exec__mpi_backoff_reset(struct mpi__backoff *b)
{
    b->quiet_since = exec__now_ns();
    b->step_ns = MPI__STEP_MIN_NS;
    b->spins = 0;
}

uint64_t exec__mpi_backoff_next(struct mpi__backoff *b, uint64_t cap_ns)
{
    if (exec__now_ns() - b->quiet_since < SPIN_NS) {
        /* Spinning, but politely: a rank sharing its CPU (mpirun --oversubscribe) runs. A
         * yield costs about 3 us here whenever another thread takes the CPU, so only every
         * 4th probe yields (round trip p50 17.5 -> 14.5 us; every probe between yields is
         * a pass of the caller's loop, about a microsecond). */
        if (++b->spins % 4 == 0)
            exec__yield();
        else
            exec__cpu_relax();
        return 0;
    }
    return exec__mpi_backoff_step(b, cap_ns);
}

uint64_t exec__mpi_backoff_step(struct mpi__backoff *b, uint64_t cap_ns)
{
    uint64_t s = b->step_ns;
    if (b->step_ns < STEP_MAX_NS)
        b->step_ns *= 2;
    return cap_ns && cap_ns < s ? cap_ns : s;
}

int exec__mpi_send(struct mpi__sends *s, MPI_Comm comm, int dest, int tag, void *buf,
                   size_t len)
{
    if (len > INT32_MAX) {
        free(buf);
        return EXEC_ETOOBIG;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        MPI_Request *r = realloc(s->req, cap * sizeof *r);
        if (r)
            s->req = r;
        void **b = r ? realloc(s->buf, cap * sizeof *b) : NULL;
        if (!b) {
            free(buf);
            return EXEC_ENOMEM;
        }
        s->buf = b;
        s->cap = cap;
    }
    if (MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, comm, &s->req[s->n]) != MPI_SUCCESS) {
        free(buf);
        return EXEC_ESYS;
    }
    s->buf[s->n++] = buf;
    return EXEC_OK;
}

bool exec__mpi_sends_reap(struct mpi__sends *s)
{
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        int done = 0;
        MPI_Test(&s->req[i], &done, MPI_STATUS_IGNORE);
        if (done) {
            free(s->buf[i]);
            continue;
        }
        s->req[j] = s->req[i];
        s->buf[j++] = s->buf[i];
    }
    s->n = j;
    return j == 0;
}

void exec__mpi_sends_finish(struct mpi__sends *s)
{
    if (s->n)
        MPI_Waitall((int)s->n, s->req, MPI_STATUSES_IGNORE);
    for (size_t i = 0; i < s->n; i++)
        free(s->buf[i]);
    free(s->req);
    free(s->buf);
    *s = (struct mpi__sends){0};
}

int exec__mpi_recv(MPI_Comm comm, int src, void **buf, size_t *cap, size_t *len, int *from,
                   int *tag)
{
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(src, MPI_ANY_TAG, comm, &flag, &st);
    if (!flag)
        return 0;
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    size_t need = count > 0 ? (size_t)count : 1;
    if (need > *cap) {
        void *b = realloc(*buf, need);
        if (!b)
            return EXEC_ENOMEM;
        *buf = b;
        *cap = need;
    }
    MPI_Recv(*buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
    *len = (size_t)count;
    *from = st.MPI_SOURCE;
    *tag = st.MPI_TAG;
    return 1;
}

int exec__mpi_round(MPI_Comm comm, int size, int tag, const void *msg, size_t len,
                    int reply_tag, void (*on_reply)(void *, int, const void *, size_t),
                    void *ctx)
{
    struct mpi__sends sends = {0};
    int r = EXEC_OK;
    for (int ri = 1; ri < size && !r; ri++) {
        void *b = malloc(len ? len : 1);
        if (!b)
            r = EXEC_ENOMEM;
        else if (len)
            memcpy(b, msg, len);
        if (b)
            r = exec__mpi_send(&sends, comm, ri, tag, b, len);
    }
    /* Every rank that was sent the message answers it, even after a failure here. */
    int left = (int)sends.n;
    void *buf = NULL;
    size_t cap = 0;
    struct mpi__backoff bo;
    _Atomic uint32_t never = 0;
    exec__mpi_backoff_reset(&bo);
    while (left) {
        size_t n = 0;
        int from = 0, t = 0;
        int got = exec__mpi_recv(comm, MPI_ANY_SOURCE, &buf, &cap, &n, &from, &t);
        if (got < 0) {
            r = got;
            break;
        }
        if (got == 0) {
            uint64_t ns = exec__mpi_backoff_next(&bo, 0);
            if (ns)
                exec__futex_wait(&never, 0, exec__now_ns() + ns);
            continue;
        }
        exec__mpi_backoff_reset(&bo);
        if (t != reply_tag || from < 1 || from >= size)
            continue; /* a straggler of an executor that is gone */
        if (on_reply)
            on_reply(ctx, from, buf, n);
        left--;
    }
    free(buf);
    exec__mpi_sends_finish(&sends);
    return r;
}
