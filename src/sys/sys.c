/* SPDX-License-Identifier: MIT */
/*
 * sys/sys.c - clocks, futex waits (private and shared), the fork generation counter, signal
 * masks, thread creation with signals blocked, and mutex and condition variable set-up.
 */
#include "sys/sys.h"

#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

uint64_t exec__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t exec__deadline_ns(int timeout_ms)
{
    if (timeout_ms < 0)
        return 0;
    return exec__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Written once, before any executor that traces exists (pthread_once); read by exec__ticks(). */
bool exec__ticks_fast;
static pthread_once_t ticks_once = PTHREAD_ONCE_INIT;

static void ticks_decide(void)
{
#if defined(__x86_64__)
    /* CPUID 0x80000007, EDX bit 8: the TSC runs at a constant rate in every power state. */
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000007u &&
        __get_cpuid(0x80000007u, &a, &b, &c, &d))
        exec__ticks_fast = (d >> 8) & 1u;
#elif defined(__aarch64__)
    exec__ticks_fast = true; /* the virtual counter: constant rate, readable from user space */
#endif
}

void exec__ticks_init(void)
{
    pthread_once(&ticks_once, ticks_decide);
}

#ifdef __linux__
/*
 * The futex word must be a naturally aligned 32-bit int; _Atomic uint32_t is (checked below).
 * FUTEX_PRIVATE_FLAG: our words never live in memory shared with other processes (the ring
 * code of the process backend uses its own shared futexes).
 */
_Static_assert(sizeof(_Atomic uint32_t) == 4, "futex words are 32 bits");

/* @op: FUTEX_WAIT_PRIVATE for words in this process's memory, FUTEX_WAIT for words in
 * memory shared with other processes (the process backend's rings). */
static int futex_wait_op(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns,
                         int op)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns) {
        uint64_t now = exec__now_ns();
        if (now >= deadline_ns)
            return EXEC_ETIMEDOUT;
        uint64_t left = deadline_ns - now;
        ts.tv_sec = (time_t)(left / 1000000000u);
        ts.tv_nsec = (long)(left % 1000000000u);
        tsp = &ts;
    }
    /* Relative timeout with FUTEX_WAIT; EINTR and EAGAIN are ordinary spurious returns. */
    long r = syscall(SYS_futex, (uint32_t *)word, op, expected, tsp, NULL, 0);
    if (r == -1 && errno == ETIMEDOUT)
        return EXEC_ETIMEDOUT;
    return 0;
}

int exec__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    return futex_wait_op(word, expected, deadline_ns, FUTEX_WAIT_PRIVATE);
}

void exec__futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void exec__lock_slow(exec__lock_t *l)
{
    /* Holders keep it for a few dozen instructions: look a little before sleeping. */
    for (int i = 0; i < 100; i++) {
        exec__cpu_relax();
        uint32_t free_ = 0;
        if (atomic_load_explicit(&l->w, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->w, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    /* Mark it waited for; whoever unlocks a 2 wakes one sleeper, which marks it 2 again
     * (it cannot know whether others sleep too). */
    while (atomic_exchange_explicit(&l->w, 2, memory_order_acquire) != 0)
        (void)exec__futex_wait(&l->w, 2, 0);
}

int exec__sfutex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    return futex_wait_op(word, expected, deadline_ns, FUTEX_WAIT);
}

void exec__sfutex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}
#else
#error "libexecutor needs a futex-like primitive on this platform (port sys.c)"
#endif

/*
 * The fork generation. It is the only process-wide state of the library, and it is needed:
 * after fork() the child has copies of executors whose threads do not exist, and whose locks
 * may be held by those vanished threads. Each executor remembers the generation it was born
 * in; a mismatch tells a call that it runs in a child, so it must not wait for workers or take
 * locks (see exec_destroy()). The handler is registered once, with pthread_once.
 */
/* Read on every submit and free: keep it alone on its cache line, so that no application
 * variable the linker places next to it can make those reads miss. */
static struct {
    _Atomic unsigned v;
    char pad[EXEC__CACHELINE - sizeof(unsigned)];
} fork_gen __attribute__((aligned(EXEC__CACHELINE)));
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen.v, 1, memory_order_relaxed);
}

static void fork_register(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

void exec__fork_init(void)
{
    pthread_once(&fork_once, fork_register);
}

unsigned exec__fork_gen(void)
{
    return atomic_load_explicit(&fork_gen.v, memory_order_relaxed);
}

void exec__block_signals(void *old)
{
    sigset_t all;
    sigfillset(&all);
    /* Synchronous signals stay deliverable: blocking them makes a fault kill the process
     * silently instead of running the application's handler. */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGTRAP);
    sigdelset(&all, SIGSYS);
    pthread_sigmask(SIG_BLOCK, &all, (sigset_t *)old);
}

void exec__restore_signals(const void *old)
{
    pthread_sigmask(SIG_SETMASK, (const sigset_t *)old, NULL);
}

int exec__thread_start(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err)
        return err;
    if (stack_size) {
        size_t min = (size_t)PTHREAD_STACK_MIN;
        if (stack_size < min)
            stack_size = min;
        err = pthread_attr_setstacksize(&attr, stack_size);
    }
    if (!err) {
        /* The new thread inherits the creator's mask: block, create, restore. */
        sigset_t old;
        exec__block_signals(&old);
        err = pthread_create(t, &attr, fn, arg);
        exec__restore_signals(&old);
    }
    pthread_attr_destroy(&attr);
    return err;
}

void exec__mutex_init_hot(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
#ifdef PTHREAD_MUTEX_ADAPTIVE_NP
    /* Held for a few dozen instructions by several threads at once: spin a little before
     * sleeping in the kernel, which would cost two system calls per hand-over. */
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

void exec__cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

/*
 * Workers run under SCHED_BATCH. Under SCHED_OTHER, a worker woken for new work preempts the
 * thread running on the CPU it is woken on, which on a machine with fewer CPUs than busy
 * threads is often the very thread submitting that work: the submitter then loses its CPU
 * for each wake-up, workers drain the queue faster than it can refill it, park, and are woken
 * again (on 2 CPUs, windows of no-op tasks ran at 5 M/s in that state instead of 13-15 M/s,
 * with a preemption every few hundred tasks). A SCHED_BATCH thread does not preempt on
 * wake-up: it runs on an idle CPU at once, else at the running thread's next tick. Nice values
 * are unchanged, and a program that wants otherwise sets the policy it wants in its
 * initializer, which runs on the worker thread.
 */
void exec__sched_batch(void)
{
#ifdef SCHED_BATCH
    int policy;
    struct sched_param sp;
    if (pthread_getschedparam(pthread_self(), &policy, &sp) != 0 || policy != SCHED_OTHER)
        return;
    sp.sched_priority = 0;
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp); /* a hint: may be refused */
#endif
}

void exec__yield(void)
{
    sched_yield();
}
