/* SPDX-License-Identifier: MIT */
/*
 * threads/timer.c - deadlines on the thread backend: a min-heap of running tasks ordered by
 * deadline and the thread that fails them (EXEC_ETIMEDOUT) when it passes; the task sees
 * exec_task_should_stop() become true. A thread cannot be killed safely; processes can.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threads/threads.h"

/* Set in the timer thread: a done-callback it runs (at a deadline) must not shut down or
 * destroy its own executor, which would join or free the thread running it. */
static _Thread_local struct tp *tls_timer;

bool exec__tp_is_timer(const struct tp *tp)
{
    return tls_timer == tp;
}

static void heap_swap(struct tp *tp, size_t a, size_t b)
{
    struct exec_future *t = tp->heap[a];
    tp->heap[a] = tp->heap[b];
    tp->heap[b] = t;
    tp->heap[a]->bk.threads.heap_idx = (uint32_t)a;
    tp->heap[b]->bk.threads.heap_idx = (uint32_t)b;
}

static void heap_up(struct tp *tp, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (tp->heap[p]->bk.threads.deadline_ns <= tp->heap[i]->bk.threads.deadline_ns)
            break;
        heap_swap(tp, i, p);
        i = p;
    }
}

static void heap_down(struct tp *tp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tp->hn && tp->heap[l]->bk.threads.deadline_ns < tp->heap[m]->bk.threads.deadline_ns)
            m = l;
        if (r < tp->hn && tp->heap[r]->bk.threads.deadline_ns < tp->heap[m]->bk.threads.deadline_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(tp, i, m);
        i = m;
    }
}

static void heap_remove(struct tp *tp, size_t i)
{
    tp->heap[i]->bk.threads.heap_idx = UINT32_MAX;
    tp->hn--;
    if (i == tp->hn)
        return;
    tp->heap[i] = tp->heap[tp->hn];
    tp->heap[i]->bk.threads.heap_idx = (uint32_t)i;
    heap_down(tp, i);
    heap_up(tp, i);
}

static void timeout_expired(struct tp *tp, struct exec_future *f)
{
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        f->fault.code = EXEC_ETIMEDOUT;
        if (tp->timer_tl)
            exec__trace_instant(tp->timer_tl, EXEC__TEV_DEADLINE, f->bk.threads.ttid, f->tseq,
                                f->timeout_ms, 0, 0);
        exec__future_finish(f, EXEC_STATE_FAILED);
    }
}

/* Fail every task whose deadline has passed; the next deadline (0 = none). tp->tlock held,
 * released around each expiry (its done-callbacks run then). */
static uint64_t fire_due(struct tp *tp)
{
    while (tp->hn) {
        struct exec_future *f = tp->heap[0];
        if (f->bk.threads.deadline_ns > exec__now_ns())
            return f->bk.threads.deadline_ns;
        heap_remove(tp, 0);
        /* The worker may finish and drop its reference as soon as we unlock. */
        exec_future_retain(f);
        pthread_mutex_unlock(&tp->tlock);
        timeout_expired(tp, f);
        exec_future_release(f);
        pthread_mutex_lock(&tp->tlock);
    }
    return 0;
}

uint64_t exec__tp_timer_run_due(struct tp *tp)
{
    pthread_mutex_lock(&tp->tlock);
    uint64_t next = fire_due(tp);
    pthread_mutex_unlock(&tp->tlock);
    return next;
}

static void *timer_main(void *p)
{
    struct tp *tp = p;
    tls_timer = tp;
    pthread_mutex_lock(&tp->tlock);
    while (!tp->timer_stop) {
        if (tp->timer_tl)
            exec__tlane_idle(tp->timer_tl); /* about to sleep: what it recorded goes out */
        uint64_t next = fire_due(tp);
        if (tp->timer_stop)
            break;
        if (!next) {
            pthread_cond_wait(&tp->tcond, &tp->tlock);
            continue;
        }
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        pthread_cond_timedwait(&tp->tcond, &tp->tlock, &ts);
    }
    pthread_mutex_unlock(&tp->tlock);
    return NULL;
}

int exec__tp_timer_ensure(struct tp *tp)
{
    int r = 0;
    pthread_mutex_lock(&tp->tlock);
    if (!tp->timer_running && !tp->timer_stop) {
        if (exec__thread_start(&tp->timer, 0, timer_main, tp) == 0)
            tp->timer_running = true;
        else
            r = EXEC_ESYS;
    }
    pthread_mutex_unlock(&tp->tlock);
    return r;
}

void exec__tp_timer_add(struct tp *tp, struct exec_future *f)
{
    pthread_mutex_lock(&tp->tlock);
    if (tp->hn == tp->hcap) {
        size_t cap = tp->hcap ? tp->hcap * 2 : 16;
        struct exec_future **h = realloc(tp->heap, cap * sizeof *h);
        if (!h) {
            /* Out of memory: the deadline cannot be watched, and running past it silently
             * would break its promise. Fail the future now (the task sees its stop flag and
             * its result is discarded). */
            pthread_mutex_unlock(&tp->tlock);
            if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
                f->fault.code = EXEC_ENOMEM;
                exec__future_finish(f, EXEC_STATE_FAILED);
            }
            return;
        }
        tp->heap = h;
        tp->hcap = cap;
    }
    f->bk.threads.deadline_ns = exec__now_ns() + (uint64_t)f->timeout_ms * 1000000u;
    f->bk.threads.heap_idx = (uint32_t)tp->hn;
    tp->heap[tp->hn++] = f;
    heap_up(tp, f->bk.threads.heap_idx);
    if (f->bk.threads.heap_idx == 0)
        pthread_cond_signal(&tp->tcond);
    pthread_mutex_unlock(&tp->tlock);
}

void exec__tp_timer_del(struct tp *tp, struct exec_future *f)
{
    pthread_mutex_lock(&tp->tlock);
    if (f->bk.threads.heap_idx != UINT32_MAX)
        heap_remove(tp, f->bk.threads.heap_idx);
    pthread_mutex_unlock(&tp->tlock);
}
