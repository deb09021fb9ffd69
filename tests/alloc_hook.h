/* SPDX-License-Identifier: MIT */
/*
 * alloc_hook.h - count and fail the allocations, thread starts and forks of the library, for
 * tests (SQLite-style fault injection).
 *
 * The test runner is linked with -Wl,--wrap=SYMBOL for malloc, calloc, realloc,
 * aligned_alloc, posix_memalign, strdup, free, pthread_create, fork and _Fork (see the
 * $(RUNNER) rule of the Makefile). Every call of those made by the library (linked
 * statically) or by the tests then goes through the __wrap_* functions of alloc_hook.c;
 * calls made inside libc itself (opendir, fopen, pthread_atfork...) do not, which is what we
 * want: the library's own calls are the ones whose failure it must handle.
 *
 * Off by default: until a test calls alloc_hook_start(), every wrapper only forwards the call
 * (one relaxed atomic load), so other tests are unaffected. Once started, in this process
 * only (a child of fork() is never counted or failed unless it starts the hook itself):
 *   - every call is counted, per kind, and malloc-family calls also per thread;
 *   - every block allocated since the start and not yet freed is remembered, so
 *     alloc_hook_live() is exact (frees of blocks from before the start are ignored);
 *   - a failure plan, if armed, makes calls of one kind fail: the N-th call from now (of any
 *     thread), or every call until disarmed. A failed allocation returns NULL
 *     (posix_memalign: ENOMEM), a failed pthread_create returns EAGAIN, a failed fork
 *     returns -1 with errno EAGAIN.
 * Each test runs in its own process, so counting is per test.
 *
 * Thread-safety: every function may be called from any thread; counters are atomics, the
 * set of live blocks is under a mutex.
 */
#ifndef EXEC_TEST_ALLOC_HOOK_H
#define EXEC_TEST_ALLOC_HOOK_H

#include <stdbool.h>
#include <stdint.h>

/** What a plan or a counter is about. */
enum alloc_hook_kind {
    AH_MALLOC = 0, /* malloc, calloc, realloc, aligned_alloc, posix_memalign, strdup */
    AH_THREAD = 1, /* pthread_create */
    AH_FORK = 2,   /* fork, _Fork */
    AH_KINDS = 3,
};

/**
 * alloc_hook_start() - start counting in this process: zero every counter, forget the
 * blocks seen so far, disarm every plan. Call it at the start of a test (or in a forked child,
 * provided no other thread of the parent was allocating at the fork).
 */
void alloc_hook_start(void);

/** alloc_hook_calls() - calls of @kind made by this process since alloc_hook_start(),
 *  failed ones included. */
uint64_t alloc_hook_calls(int kind);

/** alloc_hook_thread_calls() - malloc-family calls made by the calling thread since the
 *  start (its own running total: take differences). */
uint64_t alloc_hook_thread_calls(void);

/** alloc_hook_live() - blocks allocated since the start and not freed yet. Fails the test if
 *  more blocks were live at once than the hook can remember. */
long alloc_hook_live(void);

/** alloc_hook_fail_nth() - the @n-th call of @kind from now (n >= 1; any thread) fails; the
 *  plan is then spent. Replaces the plan of that kind. */
void alloc_hook_fail_nth(int kind, unsigned long n);

/** alloc_hook_fail_all() - every call of @kind from now fails, until alloc_hook_disarm(). */
void alloc_hook_fail_all(int kind);

/** alloc_hook_disarm() - stop failing calls of @kind.
 *  Return: how many calls of @kind failed since the plan was armed. */
uint64_t alloc_hook_disarm(int kind);

/** alloc_hook_injected() - calls of @kind failed on purpose since the start. */
uint64_t alloc_hook_injected(int kind);

#endif /* EXEC_TEST_ALLOC_HOOK_H */
