/* SPDX-License-Identifier: MIT */
/*
 * core/trace.h - the trace of a run (exec_config_t.trace_path, EXEC_TRACE): what backends
 * record, and how it reaches the file. Nothing here is API.
 *
 * Recording is cheap and formatting is not, so they are apart. A thread that records owns a
 * lane: two buffers of EXEC__TLANE_EVENTS fixed-size binary events. It fills one (a few
 * stores, no lock, no system call) and hands it over when it is full, when the trace thread
 * asks (every EXEC__TRACE_PERIOD_NS), or when the thread goes idle; then it fills the other.
 * A handed-over buffer is formatted as JSON lines and written with write(2) on an O_APPEND
 * fd, whole lines only, by whoever comes first: the trace thread of the executor, which looks
 * every EXEC__TRACE_PERIOD_NS (or at each hand-over of an offloading lane, see
 * exec__trace_lane()), or the writer itself when it needs that buffer again (backpressure,
 * never a drop). So the memory is bounded by two buffers and a format buffer
 * per lane, whatever the rate of events.
 *
 * Lanes: one per worker slot (0 .. workers-1) and one for the backend's own thread (index
 * `workers`: the thread backend's deadline timer, the process backend's supervisor), each
 * written by one thread at a time (a thread that takes over a slot must be ordered after the
 * one that leaves it, e.g. by a lock); and a shared lane behind a mutex for the rare events of
 * other threads (cancels). Buffers are allocated at a lane's first event.
 *
 * Time: exec__ticks() in recorded events (converted to CLOCK_MONOTONIC at formatting, from
 * calibration pairs), or CLOCK_MONOTONIC ns with EXEC__TEVF_NS (a worker process's clock).
 */
#ifndef EXEC_CORE_TRACE_H
#define EXEC_CORE_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/compiler.h"
#include "core/future.h"
#include "sys/sys.h"

struct exec;
struct exec__trace;

/* Kinds of events, and what their fields hold. */
enum {
    EXEC__TEV_TASK = 1, /* span of a task: a = seq, b = argument bytes, c = task status */
    EXEC__TEV_CHUNK,    /* span of a map chunk: items [a, b), c = failed items, d = item bytes */
    EXEC__TEV_TRACK,    /* a worker's track (its name): a = slot, d = tid is a pid; on MPI
                           c = rank, b = pid */
    EXEC__TEV_START,    /* instant: a worker started: a = slot */
    EXEC__TEV_CRASH,    /* instant: a worker died by itself: a = seq (0: none), c = signal,
                           d = exit status (-1: killed by a signal) */
    EXEC__TEV_DEADLINE, /* instant: a task passed its deadline: a = seq, b = timeout_ms */
    EXEC__TEV_CANCEL,   /* instant: a task was cancelled: a = seq, c = EXEC__TCANCEL_* */
    EXEC__TEV_RECYCLE,  /* instant: a worker retires: a = tasks it ran, c = EXEC__TRECYCLE_* */
    EXEC__TEV_KILLED,   /* instant: a worker was killed (deadline or cancel): a = seq */
};
enum { EXEC__TCANCEL_QUEUED, EXEC__TCANCEL_RUNNING, EXEC__TCANCEL_SHUTDOWN };
enum { EXEC__TRECYCLE_TASKS, EXEC__TRECYCLE_MEMORY, EXEC__TRECYCLE_AGE };

#define EXEC__TEVF_NS 1u /* t0 and t1 are CLOCK_MONOTONIC ns, not exec__ticks() */

struct exec__tev {
    uint64_t t0, t1; /* span: start and end; instant: t0 */
    uint64_t tsub;   /* task: exec__ticks() at submit; 0 = unknown */
    uint64_t a, b;
    uint32_t tid; /* the track: an OS thread id (threads), a worker pid (processes), 0 */
    int32_t c, d;
    int16_t code; /* spans: the outcome (EXEC_OK, EXEC_E*) */
    uint8_t kind, flags;
};

#define EXEC__TLANE_EVENTS 512u
#define EXEC__TRACE_PERIOD_NS 100000000u /* the trace thread asks every lane this often */

enum { EXEC__TBUF_FREE = 0, EXEC__TBUF_FULL = 1, EXEC__TBUF_BUSY = 2 };
struct exec__tbuf {
    struct exec__tev *ev; /* EXEC__TLANE_EVENTS events, allocated at first use */
    uint32_t n;           /* events handed over (set before FULL) */
    _Atomic uint32_t state;
};

struct exec__tlane {
    /* The writer's: the buffer being filled (NULL, with pos == EXEC__TLANE_EVENTS, when it
     * has none), where the next event goes, and which of buf[] it is. */
    struct exec__tev *ev;
    uint32_t pos;
    int cur;
    _Atomic uint32_t want; /* set by the trace thread: hand over what you have */
    bool offload;          /* wake the trace thread at each hand-over (see below) */
    struct exec__trace *t;
    struct exec__tbuf buf[2];
    char *fbuf; /* where its writer formats a buffer it writes itself */
    struct exec__tev spare; /* where an event goes when no buffer could be allocated */
} __attribute__((aligned(EXEC__CACHELINE)));

/* Open the trace of @core (core->cfg final, core->ops set) at @path: the file, the lanes and
 * the trace thread; sets core->trace. EXEC_OK, EXEC_ENOMEM, EXEC_ESYS (errno kept). */
int exec__trace_open(struct exec *core, const char *path);
/* The writers of the private lanes are gone (a waiting shutdown returned): write everything
 * recorded so far. Any thread; concurrent calls are serialised. */
void exec__trace_sync(struct exec__trace *t);
/* Write what is left, stop the trace thread, close the file, free. */
void exec__trace_close(struct exec__trace *t);
/* In a child of fork(): free this copy without writing, joining or locking. */
void exec__trace_forget(struct exec__trace *t);
/* The copy of the path. */
const char *exec__trace_path(const struct exec__trace *t);

/* Lane @i (0 .. workers) of @t, or NULL when @t is NULL (not tracing). With @offload, the
 * trace thread is woken at each hand-over, so that it formats while the writer goes on: for a
 * writer that is the bottleneck of its pool while CPUs are left (the process backend's
 * supervisor). Without, the trace thread only looks every EXEC__TRACE_PERIOD_NS and a busy
 * writer formats its own buffers: on a loaded machine a wake-up per buffer costs more. */
struct exec__tlane *exec__trace_lane(struct exec__trace *t, int i, bool offload);
/* The writer's slow path: hand over, take the other buffer. */
struct exec__tev *exec__tlane_slow(struct exec__tlane *l);
/* The writer goes idle: hand over what it recorded (never blocks). */
void exec__tlane_idle(struct exec__tlane *l);
/* The shared lane, from any thread: begin returns the event to fill, end publishes it. */
struct exec__tev *exec__trace_shared_begin(struct exec__trace *t);
void exec__trace_shared_end(struct exec__trace *t);

/* The next event of lane @l to fill (every field). */
static inline struct exec__tev *exec__tlane_ev(struct exec__tlane *l)
{
    if (EXEC__UNLIKELY(l->pos >= EXEC__TLANE_EVENTS ||
                       atomic_load_explicit(&l->want, memory_order_relaxed)))
        return exec__tlane_slow(l);
    return &l->ev[l->pos++];
}

static inline void exec__tev_set(struct exec__tev *e, int kind, uint32_t tid, uint64_t t0,
                                 uint64_t t1, unsigned flags)
{
    e->kind = (uint8_t)kind;
    e->flags = (uint8_t)flags;
    e->tid = tid;
    e->t0 = t0;
    e->t1 = t1;
    e->tsub = 0;
    e->a = e->b = 0;
    e->c = e->d = 0;
    e->code = 0;
}

/* A task's span on lane @l: @f ran on track @tid from @t0 to @t1 and ended with @code. */
static inline void exec__trace_task(struct exec__tlane *l, const struct exec_future *f,
                                    uint32_t tid, uint64_t t0, uint64_t t1, unsigned flags,
                                    int code, int task_status)
{
    struct exec__tev *e = exec__tlane_ev(l);
    exec__tev_set(e, EXEC__TEV_TASK, tid, t0, t1, flags);
    const struct exec__fcold *c = exec__future_cold_get(f); /* the front made it */
    e->tsub = c ? c->tsub : 0;
    e->a = f->tseq;
    e->b = c ? c->targ : 0;
    e->c = task_status;
    e->code = (int16_t)code;
}

/* A map chunk's span: items [lo, hi) of @item_size bytes, @failed of them non-zero. */
static inline void exec__trace_chunk(struct exec__tlane *l, uint32_t tid, uint64_t t0,
                                     uint64_t t1, unsigned flags, uint64_t lo, uint64_t hi,
                                     int32_t failed, int code, int32_t item_size)
{
    struct exec__tev *e = exec__tlane_ev(l);
    exec__tev_set(e, EXEC__TEV_CHUNK, tid, t0, t1, flags);
    e->a = lo;
    e->b = hi;
    e->c = failed;
    e->d = item_size;
    e->code = (int16_t)code;
}

/* An instant (or a track's name) now, on lane @l. */
static inline void exec__trace_instant(struct exec__tlane *l, int kind, uint32_t tid,
                                       uint64_t a, uint64_t b, int32_t c, int32_t d)
{
    struct exec__tev *e = exec__tlane_ev(l);
    uint64_t now = exec__ticks();
    exec__tev_set(e, kind, tid, now, now, 0);
    e->a = a;
    e->b = b;
    e->c = c;
    e->d = d;
}

/* The same from any thread, on the shared lane of @t (NULL: nothing). */
void exec__trace_shared_instant(struct exec__trace *t, int kind, uint32_t tid, uint64_t a,
                                uint64_t b, int32_t c, int32_t d);

#endif /* EXEC_CORE_TRACE_H */
