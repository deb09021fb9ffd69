/* SPDX-License-Identifier: MIT */
/*
 * sys/sys.h - the platform layer: every raw system interface libexecutor uses (clocks,
 * futexes, event fds, pipes and sockets, fork detection, signals, threads, shared anonymous
 * memory, pidfds, process facts). Every platform #ifdef of the library lives in src/sys/ (and
 * in the shared-memory helper's own system file). This layer knows no executor: it includes
 * nothing of the project but base/, and returns 0 / -1 with errno, or EXEC_ETIMEDOUT where a
 * wait can time out.
 */
#ifndef EXEC_SYS_SYS_H
#define EXEC_SYS_SYS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/compiler.h"

/* --- time (sys.c) ------------------------------------------------------------------------ */

uint64_t exec__now_ns(void); /* CLOCK_MONOTONIC */
/* Deadline from a timeout in ms: 0 for "forever" (a negative timeout). */
uint64_t exec__deadline_ns(int timeout_ms);

/* --- the trace clock (sys.c) ------------------------------------------------------------- */

/* A cheap timestamp for traces (a few ns instead of a clock_gettime()): the CPU's time-stamp
 * counter where it runs at a constant rate (x86-64 with an invariant TSC, arm64's virtual
 * counter), else CLOCK_MONOTONIC in ns. exec__ticks_init() decides once per process (call it
 * before the first exec__ticks()); exec__ticks_fast says which it chose. Ticks are converted to
 * ns by whoever reads them, from pairs (exec__ticks(), exec__now_ns()) taken apart in time. */
void exec__ticks_init(void);
extern bool exec__ticks_fast;
static inline uint64_t exec__ticks(void)
{
#if defined(__x86_64__)
    if (EXEC__LIKELY(exec__ticks_fast))
        return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    if (EXEC__LIKELY(exec__ticks_fast)) {
        uint64_t v;
        __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
        return v;
    }
#endif
    return exec__now_ns();
}

/* --- futexes (sys.c) --------------------------------------------------------------------- */

/* Wait while *word == expected, until woken or @deadline_ns (0 = none). Returns 0 when woken
 * or the value differs, EXEC_ETIMEDOUT at the deadline. Spurious returns are allowed. */
int exec__futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
void exec__futex_wake(_Atomic uint32_t *word, int n);
/* The same on a word in memory shared between processes (not FUTEX_PRIVATE). */
int exec__sfutex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns);
void exec__sfutex_wake(_Atomic uint32_t *word, int n);

/* --- CPU (sys.c) ------------------------------------------------------------------------- */

/* The pause instruction of spin loops (tells the core a spin is going on). */
static inline void exec__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
/* Give the CPU to another runnable thread. */
void exec__yield(void);

/* --- a one-word lock (sys.c) ------------------------------------------------------------- */

/* For short critical sections taken on every task (the future allocator): a lock and unlock
 * pair is two atomic instructions and a dozen others, where a pthread mutex's costs ~55 more
 * (callgrind, issue 11). The word is 0 free, 1 held, 2 held and maybe waited for (the third
 * mutex of U. Drepper's "Futexes Are Tricky"). Not recursive, no error checking, no
 * robustness; zero-initialised means free, and nothing needs destroying. */
typedef struct exec__lock {
    _Atomic uint32_t w;
} exec__lock_t;

void exec__lock_slow(exec__lock_t *l);

static inline void exec__lock(exec__lock_t *l)
{
    uint32_t free_ = 0;
    if (EXEC__UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &l->w, &free_, 1, memory_order_acquire, memory_order_relaxed)))
        exec__lock_slow(l);
}

static inline void exec__unlock(exec__lock_t *l)
{
    if (EXEC__UNLIKELY(atomic_exchange_explicit(&l->w, 0, memory_order_release) == 2))
        exec__futex_wake(&l->w, 1);
}

/* --- threads and signals (sys.c) --------------------------------------------------------- */

/* Block every asynchronous signal in the calling thread; old mask into *old (sigset_t). */
void exec__block_signals(void *old);
void exec__restore_signals(const void *old);
/* pthread_create with signals blocked and an optional stack size. 0 or an errno value. */
int exec__thread_start(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg);
/* Move the calling thread from SCHED_OTHER to SCHED_BATCH (a worker: see sys.c); any other
 * policy is left as it is, and so is the thread when the system refuses. */
void exec__sched_batch(void);
/* Make the calling thread's waits on a condition variable no cancellation points, and back:
 * a task thread cancelled (pthread_cancel) inside the library must not unwind holding one of
 * its mutexes. Returns the state to give back. */
static inline int exec__cancel_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}
static inline void exec__cancel_restore(int old)
{
    pthread_setcancelstate(old, NULL);
}
/* A mutex for short, contended critical sections (adaptive where available). */
void exec__mutex_init_hot(pthread_mutex_t *m);
/* A condition variable on CLOCK_MONOTONIC. */
void exec__cond_init_mono(pthread_cond_t *c);

/* --- fork detection (sys.c) -------------------------------------------------------------- */

/* A counter incremented in every child of fork(). exec__fork_init() registers the handler
 * (once per process). An object that recorded exec__fork_gen() at birth is in a child of
 * fork() exactly when exec__forked_since() says so: its threads do not exist there. */
void exec__fork_init(void);
unsigned exec__fork_gen(void);
static inline bool exec__forked_since(unsigned gen)
{
    return gen != exec__fork_gen();
}

/* --- event fds (fd.c) -------------------------------------------------------------------- */

/* An event fd: readable while signalled. fds[0] is the read side, fds[1] the write side (the
 * same eventfd, or a pipe elsewhere); both close-on-exec and non-blocking. 0 or -1 (errno). */
int exec__event_open(int fds[2]);
void exec__event_signal(int wfd);
/* Read until empty: the fd is no longer readable afterwards. */
void exec__event_drain(int rfd);
void exec__event_close(int fds[2]);

/* --- pipes, sockets, fds (fd.c) ---------------------------------------------------------- */

/* Close-on-exec pipe; SOCK_SEQPACKET socket pair (close-on-exec). 0 or -1 (errno). */
int exec__pipe_cloexec(int fds[2]);
int exec__seqpacket_pair(int sv[2]);
/* SOCK_SEQPACKET on the abstract Unix address @name (Linux: no file, gone with the last fd;
 * one network namespace): a listening socket (non-blocking), a connection accepted from it
 * (non-blocking; -1 with EAGAIN when none waits), a connection to it (blocking). All
 * close-on-exec. An fd or -1 (errno). */
int exec__seqpacket_listen(const char *name);
int exec__seqpacket_accept(int lfd);
int exec__seqpacket_connect(const char *name);
/* One datagram of exactly @len bytes, retrying on EINTR. 0 or -1 (errno). */
int exec__dgram_send(int fd, const void *buf, size_t len, bool nonblock);
/* 1 datagram of @len bytes received, 0 none (EAGAIN), -1 EOF, error or a datagram of another
 * size (shorter, or longer: never taken truncated). */
int exec__dgram_recv(int fd, void *buf, size_t len, bool nonblock);
/* In a child: close every fd >= 3 except the @n ones in @keep. */
void exec__close_fds_except(const int *keep, int n);

/* --- processes (proc.c) ------------------------------------------------------------------ */

/* Shared anonymous memory inherited by every later fork() child; never in /dev/shm. */
void *exec__shm_map(size_t size);
void exec__shm_unmap(void *p, size_t size);
/* Give back the pages of [p, p+size) (inside an exec__shm_map region) to the system. */
void exec__shm_discard(void *p, size_t size);
/* Private anonymous memory of @size bytes aligned to @align (a power of two, a multiple of
 * the page size), untouched until used; @huge asks the kernel for huge pages where it can
 * (a hint). NULL on failure. Freed with exec__pages_unmap(). */
void *exec__pages_map(size_t size, size_t align, bool huge);
void exec__pages_unmap(void *p, size_t size);
/* Ask for @sig when the parent dies (thread-based on Linux); no-op elsewhere. */
void exec__set_pdeathsig(int sig);
/* pidfd of a child (close-on-exec), or -1 where unsupported. */
int exec__pidfd_open(pid_t pid);
/* Signal through a pidfd (no pid reuse race); -1 with errno on failure. */
int exec__pidfd_kill(int pidfd, int sig);
/* Resident set of the calling process in bytes; @fd: a cached descriptor (-1 to open). */
uint64_t exec__rss_bytes(int *fd);
/* Throw away what the inherited stdio buffers hold (parent's unflushed output). */
void exec__stdio_forget(void);
/* Reset every signal disposition to default, then ignore SIGINT and SIGPIPE. */
void exec__child_signals(void);
/* The kernel's id of the calling thread (its pid for a single-threaded process). */
int exec__gettid(void);
/* getenv(), but NULL in a set-user-ID or set-group-ID program (secure_getenv where there is
 * one): a variable that names a file to write must not be trusted there. */
const char *exec__getenv_secure(const char *name);

#endif /* EXEC_SYS_SYS_H */
