/* SPDX-License-Identifier: MIT */
/*
 * proc_sys.c - the raw system interfaces of the process backend: shared futexes, shared
 * anonymous memory, the doorbell, pipes and socket pairs made close-on-exec from birth, fd
 * clean-up in children, parent-death signals, pidfds, the resident set size. Every platform
 * #ifdef of the process backend lives in this file.
 */
#include "ring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifdef __linux__
#include <linux/futex.h>
#include <stdio_ext.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

_Atomic int exec__test_spawn_fail;

/* ---------------------------------------------------------------------------------------- */
/* Shared memory                                                                             */
/* ---------------------------------------------------------------------------------------- */

void *exec__shm_map(size_t size)
{
    /* MAP_SHARED|MAP_ANONYMOUS: shmem pages shared with every process forked later (the
     * zygote, the workers), no name anywhere, gone with the last mapping. NORESERVE: the
     * rings are sized for the largest message but mostly never touched. */
    int flags = MAP_SHARED | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
    flags |= MAP_NORESERVE;
#endif
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void exec__shm_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

void exec__shm_discard(void *p, size_t size)
{
#ifdef MADV_REMOVE
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t b = ((uintptr_t)p + size) & ~((uintptr_t)pg - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_REMOVE);
#else
    (void)p;
    (void)size;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* File descriptors                                                                          */
/* ---------------------------------------------------------------------------------------- */

int exec__bell_open(int fds[2])
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0) {
        fds[0] = fds[1] = fd;
        return 0;
    }
#endif
    if (exec__pipe_cloexec(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return 0;
}

void exec__bell_ring(int wfd)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(wfd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

void exec__bell_drain(int rfd)
{
    uint64_t buf[8];
    ssize_t r;
    do
        r = read(rfd, buf, sizeof buf);
    while (r > 0 || (r < 0 && errno == EINTR));
}

int exec__pipe_cloexec(int fds[2])
{
#ifdef __linux__
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int exec__seqpacket_pair(int sv[2])
{
#ifdef SOCK_CLOEXEC
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
#else
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
        return -1;
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    fcntl(sv[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void close_range_slow(int lo, int hi)
{
    /* Only the fds that exist: /proc/self/fd on Linux, else every number up to the limit. */
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int dfd = dirfd(d);
        struct dirent *e;
        int found[256];
        int n;
        /* Collect first, close after: closing while reading a directory is unspecified. */
        do {
            n = 0;
            rewinddir(d);
            while ((e = readdir(d)) && n < 256) {
                int fd = atoi(e->d_name);
                if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= lo && fd <= hi &&
                    fd != dfd)
                    found[n++] = fd;
            }
            for (int i = 0; i < n; i++)
                close(found[i]);
        } while (n == 256);
        closedir(d);
        return;
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (long fd = lo; fd <= hi && fd < max; fd++)
        close((int)fd);
}

static void close_range_fds(int lo, int hi)
{
    if (lo > hi)
        return;
#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0)
        return;
#endif
    close_range_slow(lo, hi);
}

void exec__close_fds_except(const int *keep, int n)
{
    int k[16];
    int m = 0;
    for (int i = 0; i < n && m < 16; i++)
        if (keep[i] >= 3)
            k[m++] = keep[i];
    qsort(k, (size_t)m, sizeof k[0], cmp_int);
    int lo = 3;
    for (int i = 0; i < m; i++) {
        close_range_fds(lo, k[i] - 1);
        lo = k[i] + 1;
    }
    close_range_fds(lo, 0x7fffffff);
}

/* ---------------------------------------------------------------------------------------- */
/* Processes                                                                                 */
/* ---------------------------------------------------------------------------------------- */

void exec__set_pdeathsig(int sig)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, sig);
#else
    (void)sig;
#endif
}

int exec__pidfd_open(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    /* pidfds are always close-on-exec. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int exec__pidfd_kill(int pidfd, int sig)
{
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd;
    (void)sig;
    errno = ENOSYS;
    return -1;
#endif
}

uint64_t exec__rss_bytes(int *fd)
{
#ifdef __linux__
    if (*fd < 0)
        *fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (*fd >= 0) {
        char buf[128];
        ssize_t r;
        do
            r = pread(*fd, buf, sizeof buf - 1, 0);
        while (r < 0 && errno == EINTR);
        if (r > 0) {
            buf[r] = 0;
            unsigned long long size = 0, res = 0;
            if (sscanf(buf, "%llu %llu", &size, &res) == 2)
                return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
        }
    }
#else
    (void)fd;
#endif
    /* Fallback: the peak, which only over-estimates (retires early, never late). */
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        return (uint64_t)ru.ru_maxrss * 1024u;
    return 0;
}

void exec__stdio_forget(void)
{
#ifdef __linux__
    __fpurge(stdout);
    __fpurge(stderr);
#endif
}

int exec__zsend(int fd, const struct exec__zmsg *m, bool nonblock)
{
    ssize_t r;
    do
        r = send(fd, m, sizeof *m, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)sizeof *m ? 0 : -1;
}

int exec__zrecv(int fd, struct exec__zmsg *m, bool nonblock)
{
    ssize_t r;
    do
        r = recv(fd, m, sizeof *m, nonblock ? MSG_DONTWAIT : 0);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)sizeof *m)
        return 1;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return -1;
}

void exec__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void exec__yield(void)
{
    sched_yield();
}

void exec__child_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        sa.sa_handler = (s == SIGINT || s == SIGPIPE) ? SIG_IGN : SIG_DFL;
        (void)sigaction(s, &sa, NULL);
    }
}
