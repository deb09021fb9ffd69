/* SPDX-License-Identifier: MIT */
/*
 * process/ring.h - the transport of the process backend: a single-producer single-consumer
 * byte queue in memory shared between processes. Nothing here is API.
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
#ifndef EXEC_PROCESS_RING_H
#define EXEC_PROCESS_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "executor.h"
#include "sys/sys.h"

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
    bool bad;     /* consumer: the producer broke the framing; peek() returns NULL for good */
    uint32_t msize; /* consumer: size of the message peek() returned last */
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

/* Consumer. peek: the next message (PADs skipped), or NULL. The producer is another process
 * that may run buggy code: peek() believes a position or a size only if it keeps every
 * message inside what was published and inside the data, and otherwise sets q->bad and
 * returns NULL from then on (the caller gives the peer up). The message's header and bytes
 * stay writable by the producer: copy what you check. next: step past the message the last
 * peek() returned (by the size peek() checked), without releasing its bytes. release: give
 * every byte before the read position back to the producer (and wake it if it sleeps). */
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

#endif /* EXEC_PROCESS_RING_H */
