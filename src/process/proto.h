/* SPDX-License-Identifier: MIT */
/*
 * process/proto.h - what the three kinds of process of the process backend say to each other:
 * the parent (pool.c and its parts), a worker (worker.c) and the zygote (zygote.c). Request
 * and completion messages in the rings, the shared region of a worker, the doorbell, and the
 * zygote's datagrams. Nothing here is API; nothing outside src/process/ includes it.
 */
#ifndef EXEC_PROCESS_PROTO_H
#define EXEC_PROCESS_PROTO_H

#include "process/ring.h"

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
    /* DONE: when the task or chunk started and ended (CLOCK_MONOTONIC ns), for the trace;
     * t_end is 0 when the pool does not trace. */
    uint64_t t_start, t_end;
    uint64_t pad;
    /* payload: the result; map: count * out_size bytes, padded to 16, then (only when
     * nfailed > 0) count int32 statuses */
};
_Static_assert(sizeof(struct exec__cmp) == 64, "completion header layout");

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
    uint32_t trace; /* the pool traces: put end times in completions */
    /* Written by the worker. */
    _Alignas(64) _Atomic uint64_t cur_seq; /* request being run (or last one started) */
    _Atomic int32_t pid;                   /* the worker's pid, as soon as it runs */
    _Atomic uint64_t cur_start_ns;         /* when it started (CLOCK_MONOTONIC) */
    _Atomic uint64_t done_seq;             /* last request finished */
    /* Progress inside the map chunk being run, for the parent to recover the finished
     * items if the worker dies: the chunk's request number, items finished, and where in
     * the completion ring the (unpublished) completion with their results lies. */
    _Atomic uint64_t map_seq;
    _Atomic uint64_t map_done;
    uint64_t map_cmp;
    /* How far the worker got before its loop (EXEC__WPHASE_*): a worker that dies before
     * READY failed its set-up (errno in setup_errno) or its initializer, not a task. */
    _Atomic uint32_t phase;
    _Atomic int32_t setup_errno;
    /* Written by the parent before it sends SIGTERM: the request it means to stop
     * (UINT64_MAX: whatever runs). A worker that finished that request already and runs the
     * next one ignores the signal: the parent looked just before the task ended. */
    _Atomic uint64_t stop_seq;
};
enum { EXEC__WPHASE_SETUP = 0, EXEC__WPHASE_INIT = 1, EXEC__WPHASE_READY = 2 };
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
#ifdef EXEC_TEST_HOOKS
/* In a worker process of the test build: its region, for tests that play a task that
 * overwrites what its worker shares with the parent (tests/test_decode.c). */
extern struct exec__wregion *exec__test_wregion;
#endif
/* Exit statuses of a worker that failed before its loop (the parent reads them). */
#define EXEC__WEXIT_SETUP 120

/* ---------------------------------------------------------------------------------------- */
/* zygote.c: the forkserver                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Commands (parent -> zygote) and events (zygote -> parent), one datagram each. */
enum {
    EXEC__Z_SPAWN = 1,     /* slot, gen, rix: fork a worker on wctx[slot * 2 + rix] */
    EXEC__Z_KILL = 2,      /* pid, arg = signal: only if pid is still an unreaped child */
    EXEC__Z_QUIT = 3,      /* kill what is left, reap everything, exit */
    EXEC__Z_READY = 10,    /* the zygote's first word: arg = 0, or the errno of its set-up */
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

/* decode.c: whether @m is a well-formed event (@event: zygote -> parent) or command (parent ->
 * zygote) for a pool of @nslots slots. Pure; the receiver ignores what fails it. */
bool exec__zmsg_ok(const struct exec__zmsg *m, bool event, int nslots);

/* One datagram to or from the zygote (see exec__dgram_send/recv). */
static inline int exec__zsend(int fd, const struct exec__zmsg *m, bool nonblock)
{
    return exec__dgram_send(fd, m, sizeof *m, nonblock);
}

static inline int exec__zrecv(int fd, struct exec__zmsg *m, bool nonblock)
{
    return exec__dgram_recv(fd, m, sizeof *m, nonblock);
}

#endif /* EXEC_PROCESS_PROTO_H */
