/* SPDX-License-Identifier: MIT */
/*
 * process/ring.c - single-producer single-consumer message rings in shared memory (see ring.h).
 *
 * Memory orders. The producer writes a message, then stores tail with release; the consumer
 * loads tail with acquire before reading the message. The consumer releases bytes by storing
 * head with release after it finished reading them; the producer loads head with acquire
 * before overwriting them. The wait words use the store-then-load handshake of Dekker, all
 * four accesses seq_cst (no fences: ThreadSanitizer does not model them): a sleeper stores
 * its word and re-reads the other side's position; a waker publishes its position and reads
 * the word. In the single total order of seq_cst operations one of the two stores comes
 * first, so at least one side sees the other's store and no wake-up is lost. (Publishing
 * with seq_cst costs what release + a fence cost on x86, and less on Arm.)
 */
#include "process/ring.h"

#include <string.h>

#include "sys/sys.h"

void exec__ring_init(struct exec__ring *r, uint64_t cap)
{
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->cons_wait, 0, memory_order_relaxed);
    atomic_store_explicit(&r->prod_wait, 0, memory_order_relaxed);
    r->cap = cap;
}

void exec__rq_attach(struct exec__rq *q, struct exec__ring *r, unsigned char *data, bool producer)
{
    q->r = r;
    q->data = data;
    q->mask = r->cap - 1;
    q->own_lim = false;
    q->bad = false;
    q->msize = 0;
    if (producer) {
        q->pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        q->lim = atomic_load_explicit(&r->head, memory_order_acquire);
    } else {
        q->pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        q->lim = atomic_load_explicit(&r->tail, memory_order_acquire);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Producer                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct exec__msg *exec__rq_reserve(struct exec__rq *q, size_t size)
{
    uint64_t cap = q->mask + 1;
    size = exec__ring_round(size);
    if (size > cap / 2)
        return NULL;
    uint64_t off = q->pos & q->mask;
    uint64_t room_end = cap - off;
    uint64_t need = room_end < size ? room_end + size : size;
    if (q->pos + need - q->lim > cap) {
        if (q->own_lim)
            return NULL;
        q->lim = atomic_load_explicit(&q->r->head, memory_order_acquire);
        if (q->pos + need - q->lim > cap)
            return NULL;
    }
    if (room_end < size) {
        struct exec__msg *pad = (struct exec__msg *)(q->data + off);
        pad->size = (uint32_t)room_end;
        pad->kind = EXEC__MSG_PAD;
        pad->seq = 0;
        q->pos += room_end;
        off = 0;
    }
    struct exec__msg *m = (struct exec__msg *)(q->data + off);
    m->size = (uint32_t)size;
    q->pos += size;
    return m;
}

void exec__rq_shrink(struct exec__rq *q, struct exec__msg *m, size_t size)
{
    size = exec__ring_round(size);
    EXEC__ASSERT(size <= m->size);
    q->pos -= m->size - size;
    m->size = (uint32_t)size;
}

void exec__rq_publish(struct exec__rq *q)
{
    atomic_store_explicit(&q->r->tail, q->pos, memory_order_seq_cst);
}

bool exec__rq_wake_consumer(struct exec__rq *q)
{
    if (!atomic_load_explicit(&q->r->cons_wait, memory_order_seq_cst))
        return false;
    if (atomic_exchange_explicit(&q->r->cons_wait, 0, memory_order_relaxed))
        exec__sfutex_wake(&q->r->cons_wait, 1);
    return true;
}

uint64_t exec__rq_space(struct exec__rq *q)
{
    q->lim = atomic_load_explicit(&q->r->head, memory_order_acquire);
    return (q->mask + 1) - (q->pos - q->lim);
}

void exec__rq_wait_space(struct exec__rq *q, uint64_t want, uint64_t deadline_ns)
{
    struct exec__ring *r = q->r;
    atomic_store_explicit(&r->prod_wait, 1, memory_order_seq_cst);
    q->lim = atomic_load_explicit(&r->head, memory_order_seq_cst);
    if ((q->mask + 1) - (q->pos - q->lim) < want)
        (void)exec__sfutex_wait(&r->prod_wait, 1, deadline_ns);
    atomic_store_explicit(&r->prod_wait, 0, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------- */
/* Consumer                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct exec__msg *exec__rq_peek(struct exec__rq *q)
{
    uint64_t cap = q->mask + 1;
    while (!q->bad) {
        if (q->pos == q->lim) {
            q->lim = atomic_load_explicit(&q->r->tail, memory_order_acquire);
            if (q->pos == q->lim)
                return NULL;
        }
        /* Each word is read once: the producer may change it while we look. The position
         * is ours and a multiple of 16, so the header itself lies inside the data. */
        uint64_t avail = q->lim - q->pos, off = q->pos & q->mask;
        struct exec__msg *m = (struct exec__msg *)(q->data + off);
        uint32_t size = m->size, kind = m->kind;
        if (avail > cap || size < sizeof *m || size % EXEC__RING_ALIGN != 0 || size > avail ||
            size > cap - off) {
            q->bad = true;
            break;
        }
        if (kind != EXEC__MSG_PAD) {
            q->msize = size;
            return m;
        }
        q->pos += size;
    }
    return NULL;
}

void exec__rq_next(struct exec__rq *q, const struct exec__msg *m)
{
    (void)m; /* its size field may have changed since peek() checked it */
    q->pos += q->msize;
}

void exec__rq_release(struct exec__rq *q)
{
    struct exec__ring *r = q->r;
    atomic_store_explicit(&r->head, q->pos, memory_order_seq_cst);
    if (atomic_load_explicit(&r->prod_wait, memory_order_seq_cst) &&
        atomic_exchange_explicit(&r->prod_wait, 0, memory_order_relaxed))
        exec__sfutex_wake(&r->prod_wait, 1);
}

int exec__rq_wait_data(struct exec__rq *q, uint64_t deadline_ns, uint32_t spin_ns)
{
    struct exec__ring *r = q->r;
    if (spin_ns) {
        /* Yield between looks: on a CPU shared with the producer, it lets the producer run;
         * on a CPU of our own, it returns at once. */
        uint64_t until = exec__now_ns() + spin_ns;
        for (unsigned i = 0;; i++) {
            if (atomic_load_explicit(&r->tail, memory_order_relaxed) != q->pos)
                return 0;
            if (i & 15) {
                exec__cpu_relax();
                continue;
            }
            if (exec__now_ns() >= until)
                break;
            exec__yield();
        }
    }
    atomic_store_explicit(&r->cons_wait, 1, memory_order_seq_cst);
    int ret = 0;
    if (atomic_load_explicit(&r->tail, memory_order_seq_cst) == q->pos)
        ret = exec__sfutex_wait(&r->cons_wait, 1, deadline_ns);
    atomic_store_explicit(&r->cons_wait, 0, memory_order_relaxed);
    return ret;
}
