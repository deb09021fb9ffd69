/* SPDX-License-Identifier: MIT */
/*
 * sys/proc.c - process-level system interfaces: shared anonymous memory, parent-death
 * signals, pidfds, the resident set size, stdio and signal resets in a fresh child.
 */

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

#include "sys/sys.h"

#ifdef __linux__
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

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

void *exec__pages_map(size_t size, size_t align, bool huge)
{
    /* Map size + align and trim both ends: the kernel aligns to pages only. */
    size_t len = size + align;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = a - (uintptr_t)p, tail = len - head - size;
    if (head)
        munmap(p, head);
    if (tail)
        munmap((void *)(a + size), tail);
#ifdef MADV_HUGEPAGE
    if (huge)
        (void)madvise((void *)a, size, MADV_HUGEPAGE);
#else
    (void)huge;
#endif
    return (void *)a;
}

void exec__pages_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
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

int exec__gettid(void)
{
#ifdef __linux__
    return (int)syscall(SYS_gettid);
#else
    return (int)getpid();
#endif
}

const char *exec__getenv_secure(const char *name)
{
#if defined(__GLIBC__)
    return secure_getenv(name);
#else
    if (getuid() != geteuid() || getgid() != getegid())
        return NULL;
    return getenv(name);
#endif
}
