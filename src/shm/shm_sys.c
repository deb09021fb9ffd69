/* SPDX-License-Identifier: MIT */
/*
 * shm/shm_sys.c - the system layer of the shared-memory buffer helper: memfd, space reservation,
 * opening another process's memfd, identity checks of names and fds, and the guardian
 * process. Every platform #ifdef of the helper lives here; shm.c is plain POSIX.
 *
 * The guardian. POSIX shared-memory names outlive their creator: nothing in the kernel
 * removes /dev/shm/<name> when the process that made it dies by SIGKILL. So the first named,
 * non-persistent exec_shm_create() of a process forks a guardian: a tiny child that learns the
 * names over a SOCK_SEQPACKET socket and removes those still registered when the creator is
 * gone. shm.c stops it (QUIT, then reaps it) as soon as no guarded name is left, so it never
 * lingers as a child of the program, and starts a new one at the next guarded create.
 *
 * How the guardian learns that the creator died, whatever the way:
 *   - EOF on its socket: the kernel closes the creator's end when the creator exits, is
 *     killed, or calls execve() (the end is close-on-exec). Messages sent before are still
 *     read first, so no ADD or DROP is lost.
 *   - A pidfd of the creator, polled beside the socket. This covers fork(): a child of the
 *     creator inherits the creator's end of the socket and would keep EOF from coming while it
 *     lives. shm.c closes that copy in its pthread_atfork() child handler, which covers every
 *     fork() through libc; the pidfd also covers raw clone() and a child that raced the
 *     handler. The pidfd is opened by the guardian itself, then getppid() is checked: if it
 *     is no longer the creator, the creator died before the pidfd existed (and the pid may
 *     already be reused), so the guardian cleans up at once. Without pidfds (Linux < 5.3) the
 *     guardian polls getppid() every 200 ms instead: it is the creator's child, so the value
 *     changes when the creator dies.
 *   - Not PR_SET_PDEATHSIG: it fires when the *thread* that forked exits, and the first
 *     create may well happen in a short-lived thread.
 *
 * What the guardian holds: right after the fork it closes every fd but its socket (fd 0) and
 * the pidfd (so it keeps no pipe, socket or file of the program open), unmaps every shared
 * mapping it inherited (so it pins no buffer's memory, and a full /dev/shm is freed when the
 * program frees it), resets every signal handler and ignores the job-control and termination
 * signals a terminal or a service manager sends to the whole group (Ctrl-C must kill the
 * program, not the process that cleans up after it). Its private memory is a copy-on-write
 * copy of the creator's: pages the creator writes while the guardian lives get copied. It
 * uses only system calls (it is made with _Fork() where libc has it, so no atfork handler of
 * anyone runs in it), and no malloc: its table of names grows with mmap.
 */
#include "shm/shm_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#endif

/* ---------------------------------------------------------------------------------------- */
/* Memory files and reservation                                                              */
/* ---------------------------------------------------------------------------------------- */

int exec__shmsys_memfd(const char *name)
{
#ifdef __linux__
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
#else
    (void)name;
    return -ENOSYS;
#endif
}

/* Reserve in chunks: a signal interrupts a fallocate() of 1 GiB after it did part of the work,
 * and the kernel undoes that part; a periodic signal (a profiler's SIGPROF) would then make a
 * single big call restart forever. Chunks bound the work lost to one interruption. */
#define RESERVE_CHUNK ((uint64_t)64 << 20)

int exec__shmsys_reserve(int fd, uint64_t size)
{
    while (ftruncate(fd, (off_t)size) != 0)
        if (errno != EINTR)
            return errno;
    uint64_t off = 0;
    while (off < size) {
        uint64_t len = size - off < RESERVE_CHUNK ? size - off : RESERVE_CHUNK;
#ifdef __linux__
        if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0) {
            off += len;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EOPNOTSUPP && e != ENOSYS)
            return e;
#endif
        /* posix_fallocate() emulates what the file system lacks (by writing). */
        int r = posix_fallocate(fd, (off_t)off, (off_t)len);
        if (r == EINTR)
            continue;
        if (r != 0)
            return r;
        off += len;
    }
    return 0;
}

uint64_t exec__shmsys_mem_total(void)
{
#ifdef __linux__
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    uint64_t unit = si.mem_unit ? si.mem_unit : 1;
    return ((uint64_t)si.totalram + (uint64_t)si.totalswap) * unit;
#else
    return 0;
#endif
}

uint64_t exec__shmsys_random64(void)
{
    uint64_t v = 0;
#ifdef __linux__
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v && v != 0)
        return v;
#endif
    /* splitmix64 over the clock, the pid and a stack address: unique enough per process. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    v ^= (uint64_t)getpid() << 40 ^ (uint64_t)(uintptr_t)&ts;
    v += 0x9e3779b97f4a7c15u;
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9u;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebu;
    return v ^ (v >> 31);
}

/* ---------------------------------------------------------------------------------------- */
/* Identity of names and fds                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Whether the fd link at @path names the memfd @memfd_name ("/memfd:<name> (deleted)"). */
static bool link_is_memfd(const char *path, const char *memfd_name)
{
    char want[EXEC_SHM_NAME_MAX + 16], link[EXEC_SHM_NAME_MAX + 64];
    snprintf(want, sizeof want, "/memfd:%s", memfd_name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    size_t wn = strlen(want);
    return n >= 0 && (size_t)n >= wn && memcmp(link, want, wn) == 0 &&
           ((size_t)n == wn || link[wn] == ' ');
}

int exec__shmsys_open_peer(pid_t pid, int fd, bool rdonly, const char *memfd_name)
{
#ifdef __linux__
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
    /* The pid and fd come from a ref, which is bytes anyone may have written: open only what
     * is our memfd. Opening another kind of file may block (a FIFO without a writer) or act
     * (a device), so look at the link first; O_NONBLOCK covers an fd the owner swapped in
     * between; then check what we opened, not what the owner's fd is now (no race with the
     * owner closing it). */
    if (!link_is_memfd(path, memfd_name))
        return -ENOENT;
    int nfd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
    if (nfd < 0)
        return -errno;
    snprintf(path, sizeof path, "/proc/self/fd/%d", nfd);
    if (!link_is_memfd(path, memfd_name)) {
        close(nfd);
        return -ENOENT;
    }
    return nfd;
#else
    (void)pid, (void)fd, (void)rdonly, (void)memfd_name;
    return -ENOSYS;
#endif
}

int exec__shmsys_peer_is(pid_t pid, int fd, uint64_t dev, uint64_t ino)
{
    struct stat st;
#ifdef __linux__
    char path[64];
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    else
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ESRCH ? 0 : -errno;
#else
    if (pid != 0)
        return -ENOSYS;
    if (fstat(fd, &st) != 0)
        return errno == EBADF ? 0 : -errno;
#endif
    return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int exec__shmsys_name_is(const char *name, uint64_t dev, uint64_t ino)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    int r = fstat(fd, &st) == 0 ? ((uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino)
                                : -errno;
    close(fd);
    return r;
}

int exec__shmsys_unlink_if(const char *name, uint64_t dev, uint64_t ino)
{
    int same = exec__shmsys_name_is(name, dev, ino);
    if (same == 0)
        return 0;
    /* Same object, or unknown (no read permission any more: we made it, so remove it). */
    if (shm_unlink(name) != 0 && errno != ENOENT)
        return errno;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The guardian: creator side                                                                */
/* ---------------------------------------------------------------------------------------- */

_Noreturn static void guard_main(int ctl, pid_t creator);

int exec__shmsys_guard_start(int *fd, pid_t *pid)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return errno;
    pid_t creator = getpid();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    pid_t p = _Fork(); /* no atfork handler runs: the child only makes system calls */
#else
    pid_t p = fork(); /* shm.c's handlers see that this thread is spawning and stand aside */
#endif
    if (p < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return e;
    }
    if (p == 0)
        guard_main(sv[1], creator);
    close(sv[1]);
    *fd = sv[0];
    *pid = p;
    return 0;
}

int exec__shmsys_guard_send(int fd, const struct exec__shmg_msg *m)
{
    for (;;) {
        ssize_t n = send(fd, m, sizeof *m, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof *m)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? errno : EIO;
    }
}

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reap @pid, our child, giving it about @grace_ms to exit before it is killed. While
 * waitpid(WNOHANG) returns 0 the child is ours and unreaped, so its pid cannot be reused and
 * kill() hits the right process. ECHILD: someone else reaped it (a waitpid(-1) loop of the
 * program, or SIGCHLD ignored): nothing left to do. */
static void reap(pid_t pid, unsigned grace_ms)
{
    long nap = 20000, waited = 0;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (r == 0 && waited >= (long)grace_ms * 1000000L) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            return;
        }
        if (r == 0) {
            sleep_ns(nap);
            waited += nap;
            if (nap < 5000000)
                nap *= 2;
        }
    }
}

void exec__shmsys_guard_stop(int fd, pid_t pid)
{
    struct exec__shmg_msg m;
    memset(&m, 0, sizeof m);
    m.op = EXEC__SHMG_QUIT;
    (void)exec__shmsys_guard_send(fd, &m);
    close(fd);
    reap(pid, 2000);
}

void exec__shmsys_guard_kill(int fd, pid_t pid)
{
    close(fd);
    reap(pid, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* The guardian: its own side (runs after _Fork(): system calls only)                        */
/* ---------------------------------------------------------------------------------------- */

/* The names to remove, in an array that grows by mmap (no malloc after the fork). */
struct gtab {
    struct exec__shmg_msg *v;
    size_t n, cap;
};

static void gtab_add(struct gtab *t, const struct exec__shmg_msg *m)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096 / sizeof *t->v;
        void *p = mmap(NULL, cap * sizeof *t->v, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return; /* cannot happen in practice; the name would not be removed */
        if (t->n)
            memcpy(p, t->v, t->n * sizeof *t->v);
        if (t->v)
            munmap(t->v, t->cap * sizeof *t->v);
        t->v = p;
        t->cap = cap;
    }
    t->v[t->n++] = *m;
}

static void gtab_drop(struct gtab *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0) {
            t->v[i] = t->v[--t->n];
            return;
        }
}

_Noreturn static void clean_and_exit(const struct gtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        (void)exec__shmsys_unlink_if(t->v[i].name, t->v[i].dev, t->v[i].ino);
    _exit(0);
}

/* Handle one message; false when it was QUIT. */
static bool handle(struct gtab *t, struct exec__shmg_msg *m)
{
    m->name[EXEC_SHM_NAME_MAX] = '\0';
    switch (m->op) {
    case EXEC__SHMG_ADD:
        gtab_add(t, m);
        return true;
    case EXEC__SHMG_DROP:
        gtab_drop(t, m->name);
        return true;
    case EXEC__SHMG_QUIT:
        return false;
    default:
        return true;
    }
}

/* Read every message already queued; returns 1 at EOF or on an error, 0 when the queue is
 * empty, and exits at QUIT (without unlinking: the creator is alive and took them back). */
static int drain(struct gtab *t)
{
    for (;;) {
        struct exec__shmg_msg m;
        ssize_t n = recv(0, &m, sizeof m, MSG_DONTWAIT);
        if (n == (ssize_t)sizeof m) {
            if (!handle(t, &m))
                _exit(0);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n > 0)
            continue; /* a short message: not ours, ignore */
        return 1;
    }
}

static bool parse_hex(const char **p, uintptr_t *out)
{
    uintptr_t v = 0;
    const char *s = *p;
    int digits = 0;
    for (;; s++, digits++) {
        char c = *s;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            break;
        v = v << 4 | d;
    }
    *p = s;
    *out = v;
    return digits > 0;
}

/* The whole of /proc/self/maps in a private mapping (*cap bytes, *len used); NULL on failure. */
static char *read_maps(size_t *len, size_t *cap)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    *len = *cap = 0;
    for (;;) {
        if (*len == *cap) {
            size_t ncap = *cap ? *cap * 2 : 65536;
            char *nbuf = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
            if (nbuf == MAP_FAILED)
                break;
            if (buf != NULL) {
                memcpy(nbuf, buf, *len);
                munmap(buf, *cap);
            }
            buf = nbuf;
            *cap = ncap;
        }
        ssize_t n = read(fd, buf + *len, *cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    close(fd);
    return buf;
}

/* Whether a line of /proc/self/maps (from its path field on) is shared memory: a POSIX shm
 * object, a memfd, a SysV segment, or shared anonymous memory (seen as /dev/zero, or named).
 * Shared mappings of ordinary files only hold page cache, and are left alone (as are a
 * debugging tool's, which it would refuse to let go anyway). */
static bool memory_path(const char *p, const char *end)
{
    static const char *const prefixes[] = {"/dev/shm/", "/memfd:", "/SYSV", "/dev/zero",
                                           "[anon_shmem"};
    while (p < end && *p != '/' && *p != '[')
        p++;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if ((size_t)(end - p) >= n && memcmp(p, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

/* Unmap the shared memory inherited from the creator (its buffers, rings, memfds), so that
 * the guardian pins none of it. Lines of /proc/self/maps read "start-end perms offset dev
 * inode path", perms[3] being 's' for a shared mapping. The file is read whole before
 * anything is unmapped, and again until a pass unmaps nothing. */
static void unmap_shared(void)
{
    uintptr_t here = (uintptr_t)&here;
    for (int pass = 0; pass < 4; pass++) {
        size_t len, cap;
        char *buf = read_maps(&len, &cap);
        if (buf == NULL)
            return;
        int done = 0;
        for (size_t start = 0, i = 0; i < len; i++) {
            if (buf[i] != '\n')
                continue;
            const char *p = buf + start;
            uintptr_t a, b;
            if (parse_hex(&p, &a) && *p++ == '-' && parse_hex(&p, &b) && *p++ == ' ' &&
                (size_t)(p - buf) + 4 <= i && p[3] == 's' && memory_path(p + 4, buf + i) &&
                !(here >= a && here < b) && a < b)
                done += munmap((void *)a, b - a) == 0;
            start = i + 1;
        }
        munmap(buf, cap);
        if (done == 0)
            return;
    }
}

/* Close every fd from @lo up. */
static void close_from(int lo)
{
#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lo; fd < max; fd++)
        close(fd);
}

static int pidfd_of(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0u);
#else
    (void)pid;
    return -1;
#endif
}

static void guard_signals(void)
{
    struct sigaction dfl, ign, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP || sigaction(s, NULL, &old) != 0)
            continue;
        bool handler = (old.sa_flags & SA_SIGINFO) ||
                       (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
        if (handler)
            sigaction(s, &dfl, NULL); /* no handler of the program runs in here */
    }
    static const int ignored[] = {SIGINT,  SIGQUIT, SIGTERM, SIGHUP,  SIGPIPE, SIGUSR1,
                                  SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        sigaction(ignored[i], &ign, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

_Noreturn static void guard_main(int ctl, pid_t creator)
{
    /* fd 0: the socket; fd 1: the creator's pidfd; nothing else. */
    if (ctl != 0 && dup2(ctl, 0) != 0)
        _exit(1);
    close_from(1);
    guard_signals();
#ifdef __linux__
    prctl(PR_SET_NAME, "exec-shm-guard", 0, 0, 0);
#endif
    struct gtab t = {NULL, 0, 0};
    int pidfd = pidfd_of(creator);
    if (getppid() != creator) { /* the creator already died: read what it sent, clean up */
        drain(&t);
        clean_and_exit(&t);
    }
    unmap_shared();
    for (;;) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {pidfd, POLLIN, 0}};
        int r = poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 200);
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && drain(&t))
            break; /* EOF: the creator is gone (exit, kill, execve) */
        if ((pidfd >= 0 && r > 0 && p[1].revents) || (pidfd < 0 && getppid() != creator)) {
            drain(&t); /* what it sent before it died */
            break;
        }
    }
    clean_and_exit(&t);
}

/* ---------------------------------------------------------------------------------------- */
/* Codes and names                                                                           */
/* ---------------------------------------------------------------------------------------- */

int exec__shmsys_code(int e)
{
    switch (e) {
    case ENOMEM:
    case ENOSPC:
    case EDQUOT:
        return EXEC_ENOMEM;
    case EFBIG:
    case EOVERFLOW:
        return EXEC_ETOOBIG;
    case ENOSYS:
        return EXEC_ENOTSUP;
    default:
        return EXEC_ESYS;
    }
}

bool exec__shmsys_name_ok(const char *name)
{
    size_t n = strnlen(name, EXEC_SHM_NAME_MAX + 1);
    if (n == 0 || n > EXEC_SHM_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}
