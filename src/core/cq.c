/* SPDX-License-Identifier: MIT */
/*
 * core/cq.c - completion queues. A future routed to a queue is appended when it finishes, so the
 * queue yields futures in completion order (Python's as_completed). An event fd mirrors
 * "not empty" for poll/epoll loops: it is set when the queue goes from empty to non-empty
 * and drained when it becomes empty again, both under the queue lock, so the fd is readable
 * exactly while a future waits (level-triggered).
 *
 * Lifetime: the user holds one reference, every routed-but-unfinished future holds one. The
 * queue is freed when the last goes; exec_cq_destroy() closes it so that late completions
 * are released instead of queued.
 */
#include "core/core.h"

#include <stdlib.h>
#include <time.h>

struct exec_cq {
    pthread_mutex_t lock; /* protects head, tail, count, closed */
    pthread_cond_t cond;  /* signalled on push; CLOCK_MONOTONIC */
    struct exec_future *head, *tail;
    size_t count;
    bool closed;
    int fds[2];
    _Atomic uint32_t refs;
};

EXEC_API int exec_cq_create(exec_cq_t **out)
{
    if (!out)
        return EXEC_EINVAL;
    struct exec_cq *cq = calloc(1, sizeof *cq);
    if (!cq)
        return EXEC_ENOMEM;
    if (exec__event_open(cq->fds) != 0) {
        free(cq);
        return EXEC_ESYS;
    }
    exec__cond_init_mono(&cq->cond);
    pthread_mutex_init(&cq->lock, NULL);
    atomic_init(&cq->refs, 1);
    *out = cq;
    return EXEC_OK;
}

void exec__cq_unref(struct exec_cq *cq)
{
    if (atomic_fetch_sub_explicit(&cq->refs, 1, memory_order_acq_rel) != 1)
        return;
    exec__event_close(cq->fds);
    pthread_cond_destroy(&cq->cond);
    pthread_mutex_destroy(&cq->lock);
    free(cq);
}

/* The listener of a routed future: it ended, deliver it. Takes over the route's reference
 * of the future (and of the queue). */
static void cq_push(exec_future_t *f, void *data)
{
    struct exec_cq *cq = data;
    pthread_mutex_lock(&cq->lock);
    if (cq->closed) {
        pthread_mutex_unlock(&cq->lock);
        exec_future_release(f);
    } else {
        f->cq_next = NULL;
        if (cq->tail)
            cq->tail->cq_next = f;
        else
            cq->head = f;
        cq->tail = f;
        if (cq->count++ == 0)
            exec__event_signal(cq->fds[1]);
        pthread_cond_signal(&cq->cond);
        pthread_mutex_unlock(&cq->lock);
    }
    exec__cq_unref(cq); /* the route is done */
}

EXEC_API void exec_cq_destroy(exec_cq_t *cq)
{
    if (!cq)
        return;
    pthread_mutex_lock(&cq->lock);
    cq->closed = true;
    struct exec_future *f = cq->head;
    cq->head = cq->tail = NULL;
    cq->count = 0;
    pthread_mutex_unlock(&cq->lock);
    while (f) {
        struct exec_future *next = f->cq_next;
        exec_future_release(f);
        f = next;
    }
    exec__cq_unref(cq);
}

EXEC_API int exec_cq_add(exec_cq_t *cq, exec_future_t *f)
{
    if (!cq || !f)
        return EXEC_EINVAL;
    pthread_mutex_lock(&f->lock);
    bool taken = f->cq_routed;
    f->cq_routed = true;
    pthread_mutex_unlock(&f->lock);
    if (taken)
        return EXEC_EINVAL;
    exec_future_retain(f);
    atomic_fetch_add_explicit(&cq->refs, 1, memory_order_relaxed);
    f->cqnode.kind = EXEC__L_CALLBACK;
    f->cqnode.u.cb.fn = cq_push;
    f->cqnode.u.cb.user_data = cq;
    f->cqnode.u.cb.heap = false;
    if (!exec__future_listen(f, &f->cqnode))
        cq_push(f, cq); /* already finished */
    return EXEC_OK;
}

EXEC_API int exec_cq_pop(exec_cq_t *cq, int timeout_ms, exec_future_t **out)
{
    if (!cq || !out || timeout_ms < EXEC_WAIT_FOREVER)
        return EXEC_EINVAL;
    struct timespec ts;
    if (timeout_ms > 0) {
        uint64_t d = exec__deadline_ns(timeout_ms);
        ts.tv_sec = (time_t)(d / 1000000000u);
        ts.tv_nsec = (long)(d % 1000000000u);
    }
    int cs = exec__cancel_off();
    pthread_mutex_lock(&cq->lock);
    while (!cq->head) {
        if (timeout_ms == 0)
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&cq->cond, &cq->lock);
        else if (pthread_cond_timedwait(&cq->cond, &cq->lock, &ts) != 0 && !cq->head)
            break;
    }
    struct exec_future *f = cq->head;
    if (f) {
        cq->head = f->cq_next;
        if (!cq->head)
            cq->tail = NULL;
        if (--cq->count == 0)
            exec__event_drain(cq->fds[0]);
    }
    pthread_mutex_unlock(&cq->lock);
    exec__cancel_restore(cs);
    if (!f)
        return EXEC_ETIMEDOUT;
    f->cq_next = NULL;
    *out = f;
    return EXEC_OK;
}

EXEC_API int exec_cq_fd(const exec_cq_t *cq)
{
    if (!cq)
        return EXEC_EINVAL;
    return cq->fds[0];
}
