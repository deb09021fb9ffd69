/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the transport of the process backend and what its four files share
 * (process_pool.c parent side, worker.c child side, forkserver.c zygote, ring.c, proc_sys.c).
 * Nothing here is API.
 *
 * A ring is a single-producer single-consumer byte queue in shared memory. Its control block
 * (struct exec__ring) is kept apart from its data, and the producer's and the consumer's
 * words sit on different cache lines (Concurrency Kit style). Positions are 64-bit byte
 * counters that only grow; the data offset of a position is pos & (cap - 1). Messages are
 * contiguous: one that does not fit before the end of the data is preceded by a PAD message
 * that fills the end, so a ring of cap bytes always accepts a message of up to cap / 2.
 *
 * Each side keeps a private view (struct exec__rq) with its own position and a cached copy of
 * the other side's position, so a burst of messages costs one shared load per refill and one
 * release store per publish, not one per message. Sleeping is opt-in per side: a side that
 * found nothing to do sets its wait word (cons_wait or prod_wait), re-checks, and sleeps on a
 * shared futex; the other side wakes it only when that word is set (Dekker handshake with
 * seq_cst fences on both sides: one of the two always sees the other's store).
 */
#ifndef EXEC_RING_H
#define EXEC_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "executor.h"

#define EXEC__RING_ALIGN 16u

/* Shared control block of one ring. */
struct exec__ring {
    _Alignas(64) _Atomic uint64_t tail; /* producer: bytes published (release) */
    _Atomic uint32_t cons_wait;         /* consumer sleeps (futex word): 1 = wake me */
    _Alignas(64) _Atomic uint64_t head; /* consumer: bytes released (release) */
    _Atomic uint32_t prod_wait;         /* producer sleeps waiting for space */
    _Alignas(64) uint64_t cap;          /* data bytes, a power of two; set before sharing */
};

/* Header of every message: size counts the header and is a multiple of 16. */
struct exec__msg {
    uint32_t size;
    uint32_t kind;
    uint64_t seq;
};
_Static_assert(sizeof(struct exec__msg) == 16, "message header layout");

#define EXEC__MSG_PAD 0u /* filler up to the end of the data */

/* A process-local view of one side of a ring. */
struct exec__rq {
    struct exec__ring *r;
    unsigned char *data;
    uint64_t mask;
    uint64_t pos; /* producer: next write (>= published tail); consumer: next read */
    uint64_t lim; /* producer: cached head; consumer: cached tail */
    bool own_lim; /* producer: lim is advanced by the owner, never loaded from head */
};

void exec__ring_init(struct exec__ring *r, uint64_t cap);
void exec__rq_attach(struct exec__rq *q, struct exec__ring *r, unsigned char *data, bool producer);

/* Producer. reserve: room for a message of @size bytes (header included; rounded up to 16),
 * or NULL when the ring is too full. The message is private until publish(); several may be
 * reserved before one publish. shrink: make the last reserved message @size bytes. */
struct exec__msg *exec__rq_reserve(struct exec__rq *q, size_t size);
void exec__rq_shrink(struct exec__rq *q, struct exec__msg *m, size_t size);
void exec__rq_publish(struct exec__rq *q);
/* After publish: wake the consumer if it sleeps on cons_wait. True if it was asleep. */
bool exec__rq_wake_consumer(struct exec__rq *q);
/* Bytes free for the producer (refreshing the cached head). */
uint64_t exec__rq_space(struct exec__rq *q);
/* Sleep until the consumer released space or @deadline_ns (0 = none); spurious returns. */
void exec__rq_wait_space(struct exec__rq *q, uint64_t want, uint64_t deadline_ns);

/* Consumer. peek: the next message (PADs skipped), or NULL. next: step past it without
 * releasing its bytes. release: give every byte before the read position back to the
 * producer (and wake it if it sleeps). */
struct exec__msg *exec__rq_peek(struct exec__rq *q);
void exec__rq_next(struct exec__rq *q, const struct exec__msg *m);
void exec__rq_release(struct exec__rq *q);
/* Poll for up to @spin_ns, then sleep until a message may be there or @deadline_ns (0 =
 * none). Returns EXEC_ETIMEDOUT at the deadline, else 0 (maybe spurious, e.g. a signal). */
int exec__rq_wait_data(struct exec__rq *q, uint64_t deadline_ns, uint32_t spin_ns);

static inline size_t exec__ring_round(size_t n)
{
    return (n + EXEC__RING_ALIGN - 1) & ~(size_t)(EXEC__RING_ALIGN - 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Messages of the process backend                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Request kinds (parent -> worker). */
enum { EXEC__REQ_TASK = 1, EXEC__REQ_MAP = 2, EXEC__REQ_EXIT = 3 };
/* Request states: the worker takes an entry with CAS QUEUED -> RUNNING; the parent may take
 * back an entry not yet started with CAS QUEUED -> CANCELLED (cancel) or STOLEN (re-dispatch
 * elsewhere). Exactly one side wins, so a task never runs twice and a cancelled one never
 * starts. */
enum { EXEC__RS_QUEUED = 0, EXEC__RS_RUNNING = 1, EXEC__RS_CANCELLED = 2, EXEC__RS_STOLEN = 3 };
/* Request flags. */
#define EXEC__RF_LAST 1u  /* max_tasks_per_child reached: exit after this one */
#define EXEC__RF_TIMED 2u /* has a deadline: tell the parent when it starts */

struct exec__req {
    struct exec__msg h;     /* seq: per-worker request number, from 1 */
    _Atomic uint32_t state; /* EXEC__RS_* */
    uint32_t flags;         /* EXEC__RF_* */
    exec_task_fn *fn;       /* same program image: valid in the worker as is */
    uint64_t arg_size;      /* task: argument bytes; map: element size */
    uint64_t out_size;      /* map: result element size */
    uint64_t count;         /* map: items in the chunk */
    uint64_t pad;
    /* payload: the argument, or count * arg_size input bytes */
};
_Static_assert(sizeof(struct exec__req) == 64, "request header layout");

/* Completion kinds (worker -> parent). */
enum {
    EXEC__CMP_DONE = 1,     /* a task or map chunk ran; seq says which */
    EXEC__CMP_SKIP = 2,     /* an entry was cancelled or stolen before it started */
    EXEC__CMP_RETIRE = 3,   /* the worker exits now (flags: reason) */
    EXEC__CMP_INITFAIL = 4, /* the initializer returned status; the worker exits */
};
/* Retirement reasons, also in DONE completions (the worker exits right after). */
#define EXEC__CF_TASKS 1u
#define EXEC__CF_MEMORY 2u
#define EXEC__CF_AGE 4u

struct exec__cmp {
    struct exec__msg h;
    int32_t code;     /* EXEC_OK, EXEC_ETASK, EXEC_ETOOBIG */
    int32_t status;   /* the task's return value (or the initializer's) */
    uint32_t flags;   /* EXEC__CF_* */
    uint32_t nfailed; /* map: items that returned non-zero (their statuses follow) */
    uint64_t size;    /* task: result bytes; map: items */
    uint64_t pad;
    /* payload: the result; map: count * out_size bytes, padded to 16, then (only when
     * nfailed > 0) count int32 statuses */
};
_Static_assert(sizeof(struct exec__cmp) == 48, "completion header layout");

/*
 * The shared memory of one worker instance: two rings, parameters written by the parent
 * before the spawn, and the worker's progress words. The rings' data follow the header.
 */
struct exec__wregion {
    struct exec__ring req;
    struct exec__ring cmp;
    /* Written by the parent before the worker starts; read-only afterwards. */
    _Alignas(64) uint64_t max_rss;    /* bytes; 0 = none */
    uint64_t max_age_ns;              /* 0 = none */
    int32_t slot;
    uint32_t gen;
    /* Written by the worker. */
    _Alignas(64) _Atomic uint64_t cur_seq; /* request being run (or last one started) */
    _Atomic int32_t pid;                   /* the worker's pid, as soon as it runs */
    _Atomic uint64_t cur_start_ns;         /* when it started (CLOCK_MONOTONIC) */
    _Atomic uint64_t done_seq;             /* last request finished */
};
#define EXEC__WREGION_HDR ((size_t)((sizeof(struct exec__wregion) + 63) & ~(size_t)63))

static inline unsigned char *exec__wregion_req_data(struct exec__wregion *w)
{
    return (unsigned char *)w + EXEC__WREGION_HDR;
}

static inline unsigned char *exec__wregion_cmp_data(struct exec__wregion *w)
{
    return (unsigned char *)w + EXEC__WREGION_HDR + w->req.cap;
}

/* The part of the shared mapping every process of a pool sees: the doorbell of the parent's
 * supervisor thread. */
struct exec__hub {
    _Alignas(64) _Atomic uint32_t sleeping; /* supervisor sleeps in poll: ring bell_fd */
    _Alignas(64) _Atomic uint32_t zevents;  /* bumped by the zygote after each event sent */
};

/* What a worker needs to run; filled by the parent (or zygote) before fork. */
struct exec__wctx {
    struct exec__hub *hub;
    struct exec__wregion *rg;
    int bell_fd;           /* eventfd/pipe write side: wakes the supervisor */
    size_t max_result;     /* capacity of a task's result buffer */
    exec_task_fn *init;    /* initializer, or NULL */
    const void *init_arg;
    size_t init_arg_size;
};

/* worker.c: the worker loop; never returns. */
_Noreturn void exec__worker_main(const struct exec__wctx *c);
/* Ring the supervisor's doorbell if it sleeps. */
void exec__hub_ring(struct exec__hub *hub, int bell_fd);
/* Exit statuses of a worker that failed before its loop (the parent reads them). */
#define EXEC__WEXIT_SETUP 120

/* ---------------------------------------------------------------------------------------- */
/* forkserver.c: the zygote                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Commands (parent -> zygote) and events (zygote -> parent), one datagram each. */
enum {
    EXEC__Z_SPAWN = 1,     /* slot, gen, rix: fork a worker on wctx[slot * 2 + rix] */
    EXEC__Z_KILL = 2,      /* pid, arg = signal: only if pid is still an unreaped child */
    EXEC__Z_QUIT = 3,      /* kill what is left, reap everything, exit */
    EXEC__Z_SPAWNED = 11,  /* slot, gen, pid */
    EXEC__Z_SPAWNFAIL = 12, /* slot, gen, arg = errno */
    EXEC__Z_EXITED = 13,   /* slot, gen, pid, arg = wait status */
};
struct exec__zmsg {
    int32_t op, slot, rix, pid, arg;
    uint32_t gen;
};

struct exec__zygote_cfg {
    struct exec__hub *hub;
    int ctl_fd;                   /* our end of the control socket */
    int death_fd;                 /* read end of the parent's death pipe */
    int bell_fd;
    int nslots;
    const struct exec__wctx *wctx; /* 2 per slot (two regions per slot) */
};
/* Runs in the freshly forked zygote; never returns. */
_Noreturn void exec__zygote_main(const struct exec__zygote_cfg *z);

/* ---------------------------------------------------------------------------------------- */
/* proc_sys.c: raw system interfaces of the process backend (every Linux #ifdef lives there) */
/* ---------------------------------------------------------------------------------------- */

/* Shared anonymous memory inherited by every later fork() child; never in /dev/shm. */
void *exec__shm_map(size_t size);
void exec__shm_unmap(void *p, size_t size);
/* Give back the pages of [p, p+size) (inside an exec__shm_map region) to the system. */
void exec__shm_discard(void *p, size_t size);
/* Doorbell: fds[0] read side (non-blocking), fds[1] write side; close-on-exec. */
int exec__bell_open(int fds[2]);
void exec__bell_ring(int wfd);
void exec__bell_drain(int rfd);
/* Close-on-exec pipe; SOCK_SEQPACKET socket pair (close-on-exec). 0 or -1 (errno). */
int exec__pipe_cloexec(int fds[2]);
int exec__seqpacket_pair(int sv[2]);
/* In a child: close every fd >= 3 except the @n ones in @keep. */
void exec__close_fds_except(const int *keep, int n);
/* Ask for @sig when the parent dies (thread-based on Linux); no-op elsewhere. */
void exec__set_pdeathsig(int sig);
/* pidfd of a child (close-on-exec), or -1 where unsupported. */
int exec__pidfd_open(pid_t pid);
/* Signal through a pidfd (no pid reuse race); -1 with errno on failure. */
int exec__pidfd_kill(int pidfd, int sig);
/* Resident set of the calling process in bytes; @fd: a cached descriptor (-1 to open). */
uint64_t exec__rss_bytes(int *fd);
/* Throw away what the inherited stdio buffers hold (parent's unflushed output). */
void exec__stdio_forget(void);
/* One control datagram, retrying on EINTR. 0 or -1 (errno). */
int exec__zsend(int fd, const struct exec__zmsg *m, bool nonblock);
/* 1 message received, 0 none (EAGAIN), -1 EOF or error. */
int exec__zrecv(int fd, struct exec__zmsg *m, bool nonblock);
/* A brief pause inside spin loops; giving the CPU to another runnable thread. */
void exec__cpu_relax(void);
void exec__yield(void);
/* Reset every signal disposition to default, then ignore SIGINT and SIGPIPE. */
void exec__child_signals(void);

/* Test hook (fault injection): the next this-many worker spawns fail with EAGAIN. */
extern _Atomic int exec__test_spawn_fail;

#endif /* EXEC_RING_H */
