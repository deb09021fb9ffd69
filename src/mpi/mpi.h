/* SPDX-License-Identifier: MIT */
/*
 * mpi/mpi.h - the MPI backend's private header: the messages between rank 0 and the
 * serving ranks, how task pointers travel, and the pieces the files of src/mpi/ share.
 *
 * The shape. Rank 0 runs the program. Its executor (pool.c) keeps submitted futures in a
 * FIFO; one communication thread ("comm") does every MPI call of the executor: it sends
 * tasks to serving ranks that have room (flow control: see exec__mpi_rank_cap()), all the
 * tasks of a round for one rank in one message, receives results and ends the futures. A
 * serving rank (serve.c) never returns into main: its main thread is a loop that receives
 * tasks, runs them in a LOCAL executor made with the public API (threads or processes), and
 * sends results back as its local futures end (a done-callback tells it), those ended
 * meanwhile in one message. So a task that crashes fails its local future only.
 *
 * Nothing waits by spinning for long: rank 0's comm thread and the serving loops probe MPI,
 * spin (yielding every 4th probe) 200 us after each message, then sleep in growing steps
 * (20 us up to 1 ms) on a futex, woken at once by a submission (rank 0) or a local end (a
 * serving rank).
 * An MPI message wakes nothing (it is only seen by probing), so the steps stay short where a
 * message is due soon: on rank 0 while results are out, up to an eighth of the recent send-
 * to-result time (tiny tasks: polled every 20 us, a 10 ms task every 1 ms); on a serving rank
 * with an idle worker, for 2 ms after its last message (the next task follows a result).
 * Either side answering fast is enough to bring both back to spinning after a hiccup (when
 * both slept 1 ms steps, each round trip took a step and neither spun long enough to see the
 * other's answer). A serving rank whose workers are all busy does not spin: it sleeps until
 * its last local task ends or 32 of them did (or the next step). Rank 0's comm thread with
 * nothing out sleeps until a request comes.
 */
#ifndef EXEC_MPI_MPI_H
#define EXEC_MPI_MPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "core/backend.h"

/* Message tags, on the executor's own communicator (a dup of MPI_COMM_WORLD). */
enum {
    MPI__TAG_HELLO = 1, /* 0 -> rank: make your local pool (struct mpi__hello + init arg) */
    MPI__TAG_READY,     /* rank -> 0: struct mpi__ready */
    MPI__TAG_TASK,      /* 0 -> rank: struct mpi__task + argument */
    MPI__TAG_CHUNK,     /* 0 -> rank: struct mpi__task (a map chunk) + items */
    MPI__TAG_RESULT,    /* rank -> 0: struct mpi__result + result bytes */
    MPI__TAG_CANCEL,    /* 0 -> rank: struct mpi__cancel */
    MPI__TAG_STATS_REQ, /* 0 -> rank: empty */
    MPI__TAG_STATS,     /* rank -> 0: exec_stats_t of the local pool */
    MPI__TAG_BYE,       /* 0 -> rank: destroy the local pool (every task has ended) */
    MPI__TAG_BYE_ACK,   /* rank -> 0: done */
    MPI__TAG_FINAL,     /* 0 -> rank: rank 0 is leaving: end the process */
    MPI__TAG_SHM_REQ,   /* rank -> 0: exec_shm_ref_t: send me a copy (shm.c) */
    MPI__TAG_SHM_DATA,  /* 0 -> rank: struct mpi__shm_data + the buffer's bytes */
    MPI__TAG_SHM_DROP,  /* 0 -> rank: uint64_t id: the buffer was closed, drop the copy */
};

/* A function pointer as it travels: its module (a hash of the file's base name; the
 * program itself is "") and its offset from the module's load address. */
struct mpi__fnref {
    uint64_t module;
    uint64_t offset;
};

struct mpi__hello {
    struct mpi__fnref init;
    uint64_t max_arg_size, max_result_size, stack_size, max_rss_per_child, init_arg_size;
    uint32_t local_backend, workers /* all ranks' */, max_tasks_per_child, start_method;
    uint32_t kill_grace_ms;
    uint32_t max_age_ms, recycle_jitter_pct, crash_limit, crash_window_ms, has_init;
    /* Ranks that act as on another host than rank 0 (EXEC_MPI_OTHER_HOST, shm.c): bit r-1
     * for rank r <= 32; all of them. */
    uint32_t other_hosts, other_all;
};

struct mpi__shm_data {
    uint64_t id, size; /* size bytes follow */
    int32_t code;      /* EXEC_OK, or why rank 0 cannot give it (nothing follows) */
    int32_t pad;
};

struct mpi__ready {
    int32_t code;    /* EXEC_OK or the local exec_create()'s code */
    int32_t workers; /* the local pool's worker count */
    int32_t pid;     /* the rank's process */
    int32_t pad;
};

/* A task (TAG_TASK) or a map chunk (TAG_CHUNK; items lo..hi of in_size bytes follow, and
 * the result is hi-lo int statuses then hi-lo results of out_size bytes). */
struct mpi__task {
    uint64_t id; /* the slot at rank 0 */
    struct mpi__fnref fn;
    uint64_t size; /* argument bytes that follow */
    uint64_t in_size, out_size, count; /* chunks */
    uint32_t timeout_ms;
    uint32_t pad;
};

struct mpi__result {
    uint64_t id;
    uint64_t size; /* result bytes that follow */
    exec_fault_t fault;
    int32_t state; /* exec_state_t of the local future */
    int32_t flags; /* MPI__RESULT_ITEMS: a chunk that reports item by item (chunk.c) */
};
#define MPI__RESULT_ITEMS 1

struct mpi__cancel {
    uint64_t id;
    uint32_t flags;
    uint32_t pad;
};

/* Largest map chunk, in input bytes and in result bytes (statuses included). */
#define MPI__CHUNK_BYTES ((size_t)1 << 20)

/* symbol.c: a function pointer to (module, offset) and back. encode: EXEC_OK, EXEC_EINVAL
 * when @fn is in no loaded module's executable segment. decode: NULL when the module is not
 * loaded here. Both thread-safe. */
int exec__mpi_fn_encode(void (*fn)(void), struct mpi__fnref *ref);
void (*exec__mpi_fn_decode(const struct mpi__fnref *ref))(void);

/* comm.c: spinning a little, then sleeping in growing steps. */
struct mpi__backoff {
    uint64_t quiet_since; /* exec__now_ns() of the last activity */
    uint64_t step_ns;     /* the next sleep */
    unsigned spins;       /* probes while spinning (every 4th yields) */
};
#define MPI__STEP_MIN_NS 20000u
void exec__mpi_backoff_reset(struct mpi__backoff *b);
/* How long to sleep now, at most @cap_ns (0: no cap): 0 while still spinning. */
uint64_t exec__mpi_backoff_next(struct mpi__backoff *b, uint64_t cap_ns);
/* The same without spinning first. */
uint64_t exec__mpi_backoff_step(struct mpi__backoff *b, uint64_t cap_ns);

/* Non-blocking sends whose buffers are freed when MPI is done with them. */
struct mpi__sends {
    MPI_Request *req;
    void **buf;
    size_t n, cap;
};
int exec__mpi_send(struct mpi__sends *s, MPI_Comm comm, int dest, int tag, void *buf,
                   size_t len);
/* Free the buffers of finished sends; true when none is left. */
bool exec__mpi_sends_reap(struct mpi__sends *s);
/* Wait (MPI_Waitall) for every send and free everything. */
void exec__mpi_sends_finish(struct mpi__sends *s);
/* Receive the next message from @src (or MPI_ANY_SOURCE) if one is there: 1 and *buf (grown
 * as needed, owned by the caller), *len, *from, *tag; 0 when none; EXEC_ENOMEM. */
int exec__mpi_recv(MPI_Comm comm, int src, void **buf, size_t *cap, size_t *len, int *from,
                   int *tag);

/* Rank 0, while no comm thread runs: send @tag with @len bytes of @msg to every serving
 * rank and wait for one @reply_tag from each, given to @on_reply (may be NULL). */
int exec__mpi_round(MPI_Comm comm, int size, int tag, const void *msg, size_t len,
                    int reply_tag, void (*on_reply)(void *, int, const void *, size_t),
                    void *ctx);

/* main.c: the state of this process's MPI use (set by exec_mpi_main()). */
struct mpi__world {
    MPI_Comm comm;  /* the executor's communicator */
    int rank, size; /* in it */
    int host_ranks; /* serving ranks on rank 0's host */
    bool on_host0;  /* this rank runs on rank 0's host */
    bool we_init;   /* exec_mpi_main() initialised MPI (and finalises it) */
};
extern struct mpi__world exec__mpi_world;

/* The local worker count of serving rank @rank when the executor has @total workers in a
 * job of @size ranks (spread evenly, the first ranks get one more), and the most tasks in
 * flight to it (flow control: bounded whatever the caller submits, yet deep enough that a
 * rank busy with tiny tasks never runs dry while its results travel; rank 0 sends a rank
 * work beyond its workers only while a long queue waits, about 4 ms of it and at most
 * MPI__AHEAD_BYTES of arguments, see dispatch.c). A rank with no worker gets nothing. */
static inline int exec__mpi_rank_workers(int total, int size, int rank)
{
    int n = size - 1;
    return total / n + (rank - 1 < total % n ? 1 : 0);
}
static inline uint32_t exec__mpi_rank_cap(int workers)
{
    uint32_t n = 1024u * ((uint32_t)workers + 1u); /* slots: ~100 bytes each, both sides */
    return workers ? (n < 16384u ? n : 16384u) : 0;
}
#define MPI__AHEAD_BYTES ((size_t)4 << 20)

/* A task as it runs on a serving rank: the local pool runs this header + the argument with
 * exec__mpi_run_task(), which calls fn with out_cap and reports a result over it as
 * out_cap + 1 bytes (rank 0 turns that into EXEC_ETOOBIG). */
struct mpi__task_arg {
    exec_task_fn *fn;
    uint64_t out_cap;
};
_Static_assert(sizeof(struct mpi__task_arg) % _Alignof(max_align_t) == 0,
               "the argument after the header stays aligned for any type");
int exec__mpi_run_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size);

/* The map chunk runner: a local task that runs a chunk's items (serve.c, pool.c). */
struct mpi__chunk_arg {
    exec_task_fn *fn;
    uint64_t in_size, out_size, count;
};
int exec__mpi_run_chunk(const void *arg, size_t arg_size, void *out, size_t out_cap,
                        size_t *out_size);

/* chunk.c: map chunks run as local maps on a serving rank's local process pool, so that a
 * crash fails only the item it hit. add: queue chunk @t (items follow) with slot @id (the
 * map threads start at the first one, which also fixes @ended: called on a map thread after
 * each chunk ends, to wake the loop); EXEC_OK or a code. reap: hand each ended chunk's reply
 * to @emit; how many. close: join and free (NULL ok). run_item: the local task of one item.
 * chunk_ended: rank 0 accounts for a reply. */
struct mpi__chunks;
struct exec__map;
int exec__mpi_chunks_add(struct mpi__chunks **c, exec_t *ex, int workers, uint64_t id,
                         exec_task_fn *fn, const struct mpi__task *t, const void *items,
                         void (*ended)(void *data), void *data);
size_t exec__mpi_chunks_reap(struct mpi__chunks *c,
                             void (*emit)(void *ctx, const struct mpi__result *r,
                                          const void *data),
                             void *ctx);
void exec__mpi_chunks_close(struct mpi__chunks *c);
int exec__mpi_run_item(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size);
void exec__mpi_chunk_ended(struct exec__map *m, size_t lo, size_t hi, const void *data,
                           size_t size);

/* shm.c: shared-memory buffers across hosts. A serving rank on another host than rank 0
 * (or told to act so) serves local read-only copies of rank 0's buffers to its tasks.
 *   serving rank: serve() at HELLO (before the local pool exists) with the hello's
 *   other-host fields; poll() every turn of the loop (true if it did something); on_msg()
 *   for SHM_DATA and SHM_DROP; serve_end() at BYE (every copy dropped).
 *   rank 0: options() fills the hello's fields from EXEC_MPI_OTHER_HOST (EXEC_EINVAL if it
 *   is malformed); answer() a SHM_REQ (comm thread); flush() sends the DROPs of buffers
 *   closed since (comm thread; true if it sent any); closed() is exec__shm_closed;
 *   forget() at the executor's end. */
struct mpi__hello;
int exec__mpi_shm_serve(const struct mpi__hello *h);
bool exec__mpi_shm_poll(MPI_Comm comm, struct mpi__sends *sends);
void exec__mpi_shm_on_msg(int tag, const void *msg, size_t len);
void exec__mpi_shm_serve_end(void);
int exec__mpi_shm_options(struct mpi__hello *h);
void exec__mpi_shm_answer(MPI_Comm comm, struct mpi__sends *sends, int from, const void *msg,
                          size_t len);
bool exec__mpi_shm_flush(MPI_Comm comm, struct mpi__sends *sends);
void exec__mpi_shm_closed(uint64_t id);
void exec__mpi_shm_forget(void);

/* serve.c: the loop of a serving rank; never returns. */
_Noreturn void exec__mpi_serve(void);
/* pool.c: rank 0 is leaving (atexit): end a live executor's comm thread without waiting
 * for its tasks. */
void exec__mpi_abandon(void);

extern const struct exec__backend_ops exec__mpi_ops;

#endif /* EXEC_MPI_MPI_H */
