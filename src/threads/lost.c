/* SPDX-License-Identifier: MIT */
/*
 * threads/lost.c - when a worker thread does not end the normal way: the initializer of each
 * new worker thread, the pool it breaks when it fails, and a thread that ends inside a task
 * (pthread_exit(), pthread_cancel()): its frames of work, what they owe, and its replacement.
 * See "Initializer" and "Threads that end inside a task" in threads/threads.h.
 */
#include <stdlib.h>

#include "threads/threads.h"

/* End @f (RUNNING, ours) as failed with @code, unless a deadline or a cancel ended it. */
void exec__tp_fail_running(struct exec_future *f, int code, int cause, int worker)
{
    if (exec__future_claim(f, 1u << EXEC_STATE_RUNNING)) {
        f->fault.code = code;
        f->fault.cause = cause;
        f->fault.worker_id = worker;
        exec__future_drop_arg(f);
        exec__future_finish(f, EXEC_STATE_FAILED);
    } else {
        exec__future_drop_arg(f);
    }
}

/* The thread ends inside task @fr->f (see threads.h): it fails EXEC_ECRASHED. */
static void task_lost(struct slot *s, struct tframe *fr)
{
    struct exec_future *f = fr->f;
    if (f->timeout_ms)
        exec__tp_timer_del(s->tp, f);
    exec__tp_fail_running(f, EXEC_ECRASHED, EXEC_CAUSE_THREAD_EXIT, s->id);
    exec__tp_count_ran(s);
    exec_future_release(f);
}

/* The thread ends inside a map item: the items it finished keep their results, the one it
 * was running fails EXEC_ECRASHED, the rest is left to the replacement (the first chunk cut
 * so; a second one, nested deeper, fails EXEC_ECRASHED too). Order matters: while a later
 * piece is still out, none of these calls can end the map. */
static void chunk_lost(struct slot *s, struct tframe *fr)
{
    struct exec__map *m = fr->m;
    size_t k = fr->lo + fr->done;
    if (fr->done)
        exec__map_ran(m, fr->lo, k, fr->nfail, fr->first);
    if (k + 1 < fr->hi && !s->resume_m) {
        s->resume_m = m;
        s->resume_lo = k + 1;
        s->resume_hi = fr->hi;
        exec__map_fail(m, k, k + 1, EXEC_ECRASHED);
    } else {
        exec__map_fail(m, k, fr->hi, EXEC_ECRASHED);
    }
}

/* Fail what a thread left for a replacement that will not come (@code). */
void exec__tp_drop_resume(struct slot *s, int code)
{
    struct exec__map *m = s->resume_m;
    if (m) {
        s->resume_m = NULL;
        exec__map_fail(m, s->resume_lo, s->resume_hi, code); /* may be its last touch */
    }
}

/* Start a thread in slots whose thread ended and could not be replaced then. tp->lock held.
 * Returns whether every slot has a thread again. */
bool exec__tp_fill_vacant(struct tp *tp)
{
    for (int i = 0; i < tp->nslots && tp->vacant; i++) {
        struct slot *v = &tp->slots[i];
        if (v->vacant && exec__tp_spawn(tp, v, v->has_thread) == 0) {
            v->vacant = false;
            tp->vacant--;
        }
    }
    atomic_store_explicit(&tp->any_vacant, tp->vacant > 0, memory_order_relaxed);
    return tp->vacant == 0;
}

/* The cleanup handler of a worker thread, run when it ends anywhere but at the end of
 * worker_main(): pthread_exit() or pthread_cancel() in a task, a callback or the initializer
 * (see threads.h). The stack above worker_main() is gone; the slot says what was running. */
void exec__tp_on_thread_end(void *p)
{
    struct slot *s = p;
    struct tp *tp = s->tp;
    for (struct tframe *fr = s->frame, *up; fr; fr = up) {
        up = fr->up;
        if (fr->f)
            task_lost(s, fr);
        else if (fr->m)
            chunk_lost(s, fr);
        if (fr->deep)
            free(fr);
    }
    s->frame = NULL;
    s->depth = 0;
    if (s->in_init)
        exec__tp_break(tp, EXEC_CAUSE_INITIALIZER, 0);
    pthread_mutex_lock(&tp->lock);
    if (s->idle)
        exec__tp_idle_remove(tp, s);
    tp->alive--;
    /* The replacement joins this thread, unless a shutdown took it to join already. A
     * broken pool starts no thread. */
    bool broken = atomic_load_explicit(&tp->broken, memory_order_relaxed);
    if (!broken && exec__tp_spawn(tp, s, s->has_thread) != 0) {
        s->vacant = true; /* the next task or submit tries again */
        tp->vacant++;
        atomic_store_explicit(&tp->any_vacant, true, memory_order_relaxed);
    }
    /* No replacement now: nobody runs the rest of the chunk. */
    if (broken || s->vacant)
        exec__tp_drop_resume(s, broken ? EXEC_EBROKEN : EXEC_ECRASHED);
    if (tp->inside_waiters) /* a thread left: exec_shutdown() from inside may wait for that */
        pthread_cond_broadcast(&tp->gone);
    pthread_mutex_unlock(&tp->lock);
}

/* Run the initializer in this new worker thread; false if the pool is (now) broken. */
bool exec__tp_run_init(struct slot *s)
{
    struct tp *tp = s->tp;
    if (atomic_load_explicit(&tp->broken, memory_order_acquire))
        return false;
    const exec_config_t *c = &tp->core->cfg;
    size_t n = 0;
    s->in_init = true;
    int st = tp->init(c->init_arg_size ? c->init_arg : NULL, c->init_arg_size, s->scratch,
                      tp->max_result, &n);
    s->in_init = false;
    if (st)
        exec__tp_break(tp, EXEC_CAUSE_INITIALIZER, st);
    return st == 0;
}

/* Take every queued future out of the queue, as a list (tp->lock held). */
struct exec_future *exec__tp_take_queued(struct tp *tp)
{
    exec__tp_q_collect(tp);
    struct exec_future *list = tp->head;
    tp->head = tp->tail = NULL;
    uint64_t n = 0;
    for (struct exec_future *c = list; c; c = c->bk.threads.next)
        n++;
    atomic_store_explicit(&tp->popped, atomic_load(&tp->popped) + n, memory_order_release);
    return list;
}

/* The initializer failed (@status its return, 0 if its thread ended): the pool breaks. The
 * queue closes, what waits in it and the maps' unclaimed items fail EXEC_EBROKEN, running
 * tasks finish, the workers leave (as at a shutdown) and no thread starts again. */
void exec__tp_break(struct tp *tp, int cause, int status)
{
    pthread_mutex_lock(&tp->lock);
    if (atomic_load_explicit(&tp->broken, memory_order_relaxed)) {
        pthread_mutex_unlock(&tp->lock);
        return;
    }
    tp->broken_cause = cause;
    tp->broken_status = status;
    atomic_store_explicit(&tp->broken, true, memory_order_seq_cst);
    atomic_fetch_or_explicit(&tp->incoming, CLOSED, memory_order_seq_cst);
    atomic_store_explicit(&tp->stopping, true, memory_order_seq_cst);
    struct exec_future *q = exec__tp_take_queued(tp);
    struct exec__list *l;
    while ((l = exec__list_first(&tp->maps))) {
        exec__list_remove(l); /* before: failing may be the map's last touch */
        exec__map_fail_unclaimed(EXEC__CONTAINER_OF(l, struct exec__map, link), EXEC_EBROKEN);
    }
    exec__tp_wake_all(tp);
    pthread_mutex_unlock(&tp->lock);
    while (q) {
        struct exec_future *next = q->bk.threads.next;
        q->bk.threads.next = NULL;
        if (exec__future_claim(q, 1u << EXEC_STATE_QUEUED)) {
            q->fault.code = EXEC_EBROKEN;
            q->fault.cause = cause;
            q->fault.task_status = status;
            q->fault.worker_id = -1;
            exec__future_drop_arg(q);
            exec__future_finish(q, EXEC_STATE_FAILED);
        } else {
            atomic_fetch_sub_explicit(&tp->lazy_cancelled, 1, memory_order_relaxed);
        }
        exec_future_release(q);
        q = next;
    }
}

