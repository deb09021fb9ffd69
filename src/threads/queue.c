/* SPDX-License-Identifier: MIT */
/*
 * threads/queue.c - the thread backend's queues: the lock-free submission stack, the ready
 * FIFO it is moved into in order, and the stack of idle workers. See threads/threads.h.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads/threads.h"

/* Lock-free push of a submitted future (any thread). False once the queue is closed. */
bool exec__tp_q_push(struct tp *tp, struct exec_future *f)
{
    uintptr_t top = atomic_load_explicit(&tp->incoming, memory_order_relaxed);
    do {
        if (EXEC__UNLIKELY(top & CLOSED))
            return false;
        f->bk.threads.next = (struct exec_future *)top;
    } while (!atomic_compare_exchange_weak_explicit(&tp->incoming, &top, (uintptr_t)f,
                                                    memory_order_seq_cst, memory_order_relaxed));
    return true;
}

/* Move everything pushed so far to the ready FIFO, oldest first. tp->lock held. */
bool exec__tp_q_collect(struct tp *tp)
{
    uintptr_t old = atomic_load_explicit(&tp->incoming, memory_order_relaxed);
    do {
        if (!(old & ~CLOSED))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&tp->incoming, &old, old & CLOSED,
                                                    memory_order_acquire, memory_order_relaxed));
    struct exec_future *f = (struct exec_future *)(old & ~CLOSED);
    struct exec_future *rev = NULL, *last = f;
    while (f) {
        struct exec_future *next = f->bk.threads.next;
        f->bk.threads.next = rev;
        rev = f;
        f = next;
    }
    if (tp->tail)
        tp->tail->bk.threads.next = rev;
    else
        tp->head = rev;
    tp->tail = last;
    return true;
}

bool exec__tp_q_nonempty(struct tp *tp)
{
    return tp->head || (atomic_load_explicit(&tp->incoming, memory_order_seq_cst) & ~CLOSED);
}

/* Take the oldest queued future and mark it RUNNING. tp->lock held. A future cancelled while
 * queued lost its QUEUED state to the canceller's CAS: drop the queue's reference and skip
 * it. The CAS below can race only with such a cancel and with waiters setting flag bits. */
struct exec_future *exec__tp_q_pop(struct tp *tp, int worker_id)
{
    for (;;) {
        struct exec_future *f = tp->head;
        if (!f) {
            if (!exec__tp_q_collect(tp))
                return NULL;
            continue;
        }
        tp->head = f->bk.threads.next;
        if (!tp->head)
            tp->tail = NULL;
        f->bk.threads.next = NULL;
        atomic_store_explicit(&tp->popped,
                              atomic_load_explicit(&tp->popped, memory_order_relaxed) + 1,
                              memory_order_release);
        if (tp->space_waiters)
            pthread_cond_signal(&tp->space);
        uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
        bool run = false;
        /* Written before the release CAS: whoever ends the future later (the worker, the
         * timer, a cancel) publishes it with the outcome. */
        f->fault.worker_id = worker_id;
        f->ttid = tp->slots[worker_id].ttid; /* the caller is that slot's thread */
        while ((s & EXEC__ST_MASK) == EXEC_STATE_QUEUED) {
            if (atomic_compare_exchange_weak_explicit(
                    &f->state, &s, (s & ~EXEC__ST_MASK) | EXEC_STATE_RUNNING,
                    memory_order_acq_rel, memory_order_relaxed)) {
                run = true;
                break;
            }
        }
        if (run) {
            tp->started++;
            return f;
        }
        atomic_fetch_sub_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        exec_future_release(f);
    }
}

struct slot *exec__tp_idle_pop(struct tp *tp)
{
    struct slot *s = tp->idle;
    if (s) {
        tp->idle = s->idle_next;
        s->idle = false;
        atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
    }
    return s;
}

/* Go on the idle stack. Dekker pairing with tp_submit: we raise nidle, then look at the
 * queue; a submitter pushes, then looks at nidle (all seq_cst). One of the two sees the
 * other, so a push never goes unnoticed by a parking worker. Returns false (and stays off
 * the stack) when work arrived meanwhile. tp->lock held. */
bool exec__tp_idle_push(struct tp *tp, struct slot *s)
{
    atomic_store_explicit(&s->park, 0, memory_order_relaxed);
    s->idle = true;
    s->idle_next = tp->idle;
    tp->idle = s;
    atomic_fetch_add_explicit(&tp->nidle, 1, memory_order_seq_cst);
    if (exec__tp_q_nonempty(tp) || !exec__list_empty(&tp->maps) ||
        atomic_load_explicit(&tp->stopping, memory_order_relaxed)) {
        tp->idle = s->idle_next;
        s->idle = false;
        atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

void exec__tp_idle_remove(struct tp *tp, struct slot *s)
{
    for (struct slot **pp = &tp->idle; *pp; pp = &(*pp)->idle_next)
        if (*pp == s) {
            *pp = s->idle_next;
            s->idle = false;
            atomic_fetch_sub_explicit(&tp->nidle, 1, memory_order_relaxed);
            return;
        }
}

void exec__tp_wake(struct slot *s)
{
    atomic_store_explicit(&s->park, 1, memory_order_release);
    exec__futex_wake(&s->park, 1);
}

/* Wake every idle worker and every submitter waiting for room (a shutdown, a broken pool). */
void exec__tp_wake_all(struct tp *tp)
{
    pthread_cond_broadcast(&tp->space);
    struct slot *s;
    while ((s = exec__tp_idle_pop(tp)))
        exec__tp_wake(s);
}
