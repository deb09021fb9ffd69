/* SPDX-License-Identifier: MIT */
/*
 * test_sys.c - the platform layer's own primitives that the library builds on where a bug
 * would show only as a rare wrong count: the one-word lock (sys/sys.h, exec__lock()).
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sys/sys.h"

enum { LOCK_THREADS = 4, LOCK_ROUNDS = 50000 };

struct lock_run {
    exec__lock_t lock;
    uint64_t count;      /* plain: only ever changed under the lock */
    _Atomic int inside;  /* threads inside at once: must never exceed 1 */
    _Atomic int overlap; /* times it did */
};

static void *lock_worker(void *p)
{
    struct lock_run *r = p;
    for (int i = 0; i < LOCK_ROUNDS; i++) {
        exec__lock(&r->lock);
        if (atomic_fetch_add_explicit(&r->inside, 1, memory_order_relaxed) != 0)
            atomic_fetch_add_explicit(&r->overlap, 1, memory_order_relaxed);
        r->count++;
        if (i % 1000 == 0)
            exec__yield(); /* a holder that loses its CPU: the others must sleep, then wake */
        atomic_fetch_sub_explicit(&r->inside, 1, memory_order_relaxed);
        exec__unlock(&r->lock);
    }
    return NULL;
}

/* Four threads on (usually) fewer CPUs: every increment under the lock counts, no two
 * holders ever overlap, and the word is free at the end (no sleeper left marked). */
TEST(sys_lock_excludes)
{
    struct lock_run r = {.count = 0};
    atomic_init(&r.lock.w, 0);
    atomic_init(&r.inside, 0);
    atomic_init(&r.overlap, 0);
    pthread_t t[LOCK_THREADS];
    for (int i = 0; i < LOCK_THREADS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, lock_worker, &r), 0);
    for (int i = 0; i < LOCK_THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_EQ(r.count, (uint64_t)LOCK_THREADS * LOCK_ROUNDS);
    ASSERT_EQ(atomic_load(&r.overlap), 0);
    ASSERT_EQ(atomic_load(&r.lock.w), 0u);
}
