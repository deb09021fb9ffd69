/* SPDX-License-Identifier: MIT */
/*
 * sys/fd.c - file descriptors: the one event-fd wrapper (eventfd, or a pipe elsewhere) behind
 * completion queues and the process backend's doorbell, pipes and socket pairs made
 * close-on-exec from birth, datagrams that retry on EINTR, and fd clean-up in children.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys/sys.h"

#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif

/* ---------------------------------------------------------------------------------------- */
/* File descriptors                                                                          */
/* ---------------------------------------------------------------------------------------- */

int exec__event_open(int fds[2])
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

void exec__event_signal(int wfd)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(wfd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

void exec__event_drain(int rfd)
{
    uint64_t buf[8];
    ssize_t r;
    do
        r = read(rfd, buf, sizeof buf);
    while (r > 0 || (r < 0 && errno == EINTR));
}

void exec__event_close(int fds[2])
{
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0 && fds[1] != fds[0])
        close(fds[1]);
    fds[0] = fds[1] = -1;
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

/* An abstract address (Linux): sun_path starts with a NUL, then @name; nothing in the file
 * system, gone with the last fd. */
static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strnlen(name, sizeof a->sun_path - 2);
    memcpy(a->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int exec__seqpacket_listen(const char *name)
{
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int exec__seqpacket_accept(int lfd)
{
    int fd;
    do
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    return fd;
}

int exec__seqpacket_connect(const char *name)
{
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int r;
    do
        r = connect(fd, (struct sockaddr *)&a, len);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int exec__dgram_send(int fd, const void *buf, size_t len, bool nonblock)
{
    ssize_t r;
    do
        r = send(fd, buf, len, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)len ? 0 : -1;
}

/* MSG_TRUNC makes recv() return the datagram's real length (Unix datagram and seqpacket
 * sockets, Linux 3.4 on), so a longer one is seen as the error it is, not cut to fit. */
int exec__dgram_recv(int fd, void *buf, size_t len, bool nonblock)
{
    ssize_t r;
    do
        r = recv(fd, buf, len, MSG_TRUNC | (nonblock ? MSG_DONTWAIT : 0));
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)len)
        return 1;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return -1;
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
