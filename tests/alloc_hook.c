/* SPDX-License-Identifier: MIT */
/*
 * alloc_hook.c - the wrappers behind alloc_hook.h.
 *
 * The linker sends every reference to malloc (and the others, see alloc_hook.h) from the
 * runner's objects and libexecutor.a to __wrap_malloc here, and __real_malloc to the real
 * one: libc's, or the sanitizer's interceptor, or valgrind's replacement, whichever the build
 * has. So the hook works the same under `make test`, `asan`, `tsan`, `ubsan` and `valgrind`.
 *
 * Note: the Makefile compiles only tests/test_*.c and tests/run.c, so this file is compiled
 * as part of tests/test_alloc.c (which includes it); it must be linked exactly once.
 *
 * Off (the default), a wrapper costs one relaxed load. On, it also checks that it runs in the
 * process that started the hook (getpid(): a child of fork() may inherit the set's mutex
 * locked by a thread that does not exist in it, so it must never touch the set), counts, and
 * records the block in a set of live blocks.
 *
 * The set is an open-addressing hash table with linear probing, under one mutex. It stores
 * each address complemented (~p), so that LeakSanitizer and valgrind, which scan globals
 * for pointers, do not take a leaked block for a reachable one because we remember it.
 * Removal uses backward shifting (no tombstones), so the table never degrades.
 *
 * Order of set operations around the real calls: a block is removed from the set *before* it
 * is given back (free, or realloc that may move it), and added *after* it was obtained; so
 * an address that the allocator reuses at once for another thread is never in the set twice
 * or removed for the wrong owner.
 */
#include "alloc_hook.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "harness.h"

/* The real functions (resolved by the linker's --wrap) and our wrappers. */
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
int __real_posix_memalign(void **out, size_t align, size_t size);
void __real_free(void *p);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
pid_t __real_fork(void);
/* glibc >= 2.34 only (the shm guardian is started with it there): weak, so that the runner
 * still links where libc has no _Fork (the wrapper is then never called). */
pid_t __real__Fork(void) __attribute__((weak));

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
int __wrap_posix_memalign(void **out, size_t align, size_t size);
char *__wrap_strdup(const char *s);
void __wrap_free(void *p);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
pid_t __wrap_fork(void);
pid_t __wrap__Fork(void);

/* ---------------------------------------------------------------------------------------- */
/* State                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Whether the hook is on, and in which process. `ah_on` is set last by alloc_hook_start()
 * (release) and read first by the wrappers (acquire), so a wrapper that sees it on sees a
 * clean state. */
static atomic_bool ah_on;
static _Atomic pid_t ah_owner;

/* One plan and the counters of one kind. countdown > 0: the call that brings it from 1 to 0
 * fails. all: every call fails. armed_failed: failures since the plan was armed. */
struct ah_plan {
    _Atomic long countdown;
    atomic_bool all;
    _Atomic uint64_t calls, failed, armed_failed;
};
static struct ah_plan ah_plans[AH_KINDS];

static _Thread_local uint64_t ah_thread_calls;

/* The set of live blocks: addresses stored complemented, 0 = empty slot. */
#define SET_BITS 17
#define SET_SIZE ((size_t)1 << SET_BITS)
#define SET_MAX (SET_SIZE / 4 * 3) /* beyond this load the set refuses (overflow) */
static pthread_mutex_t ah_set_lock = PTHREAD_MUTEX_INITIALIZER; /* protects ah_set_* */
static uintptr_t ah_set_keys[SET_SIZE];
static size_t ah_set_n;
static atomic_bool ah_set_overflow; /* a block could not be remembered: live counts are off */

/* ---------------------------------------------------------------------------------------- */
/* The set of live blocks (ah_set_lock held)                                                    */
/* ---------------------------------------------------------------------------------------- */

static size_t ah_home(uintptr_t addr)
{
    uint64_t h = (uint64_t)addr * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> (64 - SET_BITS));
}

static void ah_set_add(void *p)
{
    uintptr_t key = ~(uintptr_t)p;
    if (ah_set_n >= SET_MAX) {
        atomic_store(&ah_set_overflow, true);
        return;
    }
    size_t i = ah_home((uintptr_t)p);
    while (ah_set_keys[i] != 0) {
        if (ah_set_keys[i] == key)
            return; /* cannot happen: the allocator handed out a live block twice */
        i = (i + 1) & (SET_SIZE - 1);
    }
    ah_set_keys[i] = key;
    ah_set_n++;
}

/* Whether @p was in the set (then it is removed). */
static bool ah_set_remove(void *p)
{
    uintptr_t key = ~(uintptr_t)p;
    size_t i = ah_home((uintptr_t)p);
    while (ah_set_keys[i] != key) {
        if (ah_set_keys[i] == 0)
            return false;
        i = (i + 1) & (SET_SIZE - 1);
    }
    /* Backward shift: move later members of the probe run into the hole when the hole lies
     * (cyclically) between their home slot and where they sit. */
    for (;;) {
        ah_set_keys[i] = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & (SET_SIZE - 1);
            if (ah_set_keys[j] == 0) {
                ah_set_n--;
                return true;
            }
            size_t k = ah_home(~ah_set_keys[j]);
            bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        ah_set_keys[i] = ah_set_keys[j];
        i = j;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Wrapper helpers                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Whether this call is to be counted and may be failed: the hook is on, in this process. */
static bool ah_active(void)
{
    if (!atomic_load_explicit(&ah_on, memory_order_acquire))
        return false;
    return getpid() == atomic_load_explicit(&ah_owner, memory_order_relaxed);
}

/* Count one call of @kind; true if it must fail. */
static bool ah_count_and_decide(int kind)
{
    struct ah_plan *pl = &ah_plans[kind];
    atomic_fetch_add_explicit(&pl->calls, 1, memory_order_relaxed);
    if (kind == AH_MALLOC)
        ah_thread_calls++;
    bool fail = atomic_load_explicit(&pl->all, memory_order_relaxed);
    if (!fail) {
        long c = atomic_load_explicit(&pl->countdown, memory_order_relaxed);
        while (c > 0 && !atomic_compare_exchange_weak_explicit(&pl->countdown, &c, c - 1,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed))
            ;
        fail = c == 1;
    }
    if (fail) {
        atomic_fetch_add_explicit(&pl->failed, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&pl->armed_failed, 1, memory_order_relaxed);
    }
    return fail;
}

/* Remember the block @p (if not NULL) as live; returns @p. */
static void *ah_remember(void *p)
{
    if (p == NULL)
        return NULL;
    pthread_mutex_lock(&ah_set_lock);
    ah_set_add(p);
    pthread_mutex_unlock(&ah_set_lock);
    return p;
}

static void ah_forget(void *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&ah_set_lock);
    (void)ah_set_remove(p);
    pthread_mutex_unlock(&ah_set_lock);
}

/* ---------------------------------------------------------------------------------------- */
/* The wrappers                                                                              */
/* ---------------------------------------------------------------------------------------- */

void *__wrap_malloc(size_t size)
{
    if (!ah_active())
        return __real_malloc(size);
    return ah_count_and_decide(AH_MALLOC) ? NULL : ah_remember(__real_malloc(size));
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (!ah_active())
        return __real_calloc(n, size);
    return ah_count_and_decide(AH_MALLOC) ? NULL : ah_remember(__real_calloc(n, size));
}

void *__wrap_realloc(void *p, size_t size)
{
    if (!ah_active())
        return __real_realloc(p, size);
    if (ah_count_and_decide(AH_MALLOC))
        return NULL; /* like a real failure: @p stays valid and ours */
    bool had = false;
    if (p != NULL) {
        pthread_mutex_lock(&ah_set_lock);
        had = ah_set_remove(p);
        pthread_mutex_unlock(&ah_set_lock);
    }
    void *q = __real_realloc(p, size);
    if (q != NULL)
        ah_remember(q);
    else if (had && size != 0)
        ah_remember(p); /* a real failure: @p is still live */
    return q;
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    if (!ah_active())
        return __real_aligned_alloc(align, size);
    return ah_count_and_decide(AH_MALLOC) ? NULL
                                          : ah_remember(__real_aligned_alloc(align, size));
}

int __wrap_posix_memalign(void **out, size_t align, size_t size)
{
    if (!ah_active())
        return __real_posix_memalign(out, align, size);
    if (ah_count_and_decide(AH_MALLOC))
        return ENOMEM;
    int r = __real_posix_memalign(out, align, size);
    if (r == 0)
        ah_remember(*out);
    return r;
}

/* strdup in terms of __real_malloc, so that the block is one free() can give back to the
 * same allocator (and is counted like the others). */
char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    bool act = ah_active();
    if (act && ah_count_and_decide(AH_MALLOC))
        return NULL;
    char *p = __real_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    if (act)
        ah_remember(p);
    return p;
}

void __wrap_free(void *p)
{
    if (p != NULL && ah_active())
        ah_forget(p);
    __real_free(p);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (ah_active() && ah_count_and_decide(AH_THREAD))
        return EAGAIN;
    return __real_pthread_create(t, attr, fn, arg);
}

pid_t __wrap_fork(void)
{
    if (ah_active() && ah_count_and_decide(AH_FORK)) {
        errno = EAGAIN;
        return -1;
    }
    return __real_fork();
}

pid_t __wrap__Fork(void)
{
    if (ah_active() && ah_count_and_decide(AH_FORK)) {
        errno = EAGAIN;
        return -1;
    }
    return __real__Fork != NULL ? __real__Fork() : __real_fork();
}

/* ---------------------------------------------------------------------------------------- */
/* API                                                                                       */
/* ---------------------------------------------------------------------------------------- */

void alloc_hook_start(void)
{
    atomic_store_explicit(&ah_on, false, memory_order_seq_cst);
    for (int k = 0; k < AH_KINDS; k++) {
        atomic_store(&ah_plans[k].countdown, 0);
        atomic_store(&ah_plans[k].all, false);
        atomic_store(&ah_plans[k].calls, 0);
        atomic_store(&ah_plans[k].failed, 0);
        atomic_store(&ah_plans[k].armed_failed, 0);
    }
    ah_thread_calls = 0;
    pthread_mutex_lock(&ah_set_lock);
    memset(ah_set_keys, 0, sizeof ah_set_keys);
    ah_set_n = 0;
    pthread_mutex_unlock(&ah_set_lock);
    atomic_store(&ah_set_overflow, false);
    atomic_store(&ah_owner, getpid());
    atomic_store_explicit(&ah_on, true, memory_order_release);
}

static struct ah_plan *ah_plan_of(int kind)
{
    if (kind < 0 || kind >= AH_KINDS)
        TEST_FAIL("alloc_hook: no kind %d", kind);
    return &ah_plans[kind];
}

uint64_t alloc_hook_calls(int kind)
{
    return atomic_load(&ah_plan_of(kind)->calls);
}

uint64_t alloc_hook_thread_calls(void)
{
    return ah_thread_calls;
}

long alloc_hook_live(void)
{
    if (!atomic_load(&ah_on))
        TEST_FAIL("alloc_hook_live: call alloc_hook_start() first");
    pthread_mutex_lock(&ah_set_lock);
    size_t n = ah_set_n;
    pthread_mutex_unlock(&ah_set_lock);
    if (atomic_load(&ah_set_overflow))
        TEST_FAIL("alloc_hook: more than %zu live blocks at once: counts unreliable",
                  (size_t)SET_MAX);
    return (long)n;
}

void alloc_hook_fail_nth(int kind, unsigned long n)
{
    struct ah_plan *pl = ah_plan_of(kind);
    if (n == 0)
        TEST_FAIL("alloc_hook_fail_nth: n must be >= 1");
    atomic_store(&pl->all, false);
    atomic_store(&pl->armed_failed, 0);
    atomic_store(&pl->countdown, (long)n);
}

void alloc_hook_fail_all(int kind)
{
    struct ah_plan *pl = ah_plan_of(kind);
    atomic_store(&pl->countdown, 0);
    atomic_store(&pl->armed_failed, 0);
    atomic_store(&pl->all, true);
}

uint64_t alloc_hook_disarm(int kind)
{
    struct ah_plan *pl = ah_plan_of(kind);
    atomic_store(&pl->all, false);
    atomic_store(&pl->countdown, 0);
    return atomic_load(&pl->armed_failed);
}

uint64_t alloc_hook_injected(int kind)
{
    return atomic_load(&ah_plan_of(kind)->failed);
}
