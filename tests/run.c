/* SPDX-License-Identifier: MIT */
/*
 * run.c - the test runner.
 *
 *     run [-l] [-b threads|processes] [-x PREFIX]... [PREFIX]...
 *
 * Runs every test of tests/list.h whose name starts with one of the PREFIXes (all when none
 * is given) and with none of the -x PREFIXes, once per backend it is listed for (-b keeps
 * one backend). -l lists the tests and their flags instead. Prints one TAP-like line per
 * run, "ok N - name [threads]" or "not ok N - name [processes]: why", and finally exactly
 * "N passed, N failed"; exits 1 if any run failed, 2 on a usage error.
 *
 * Each run happens in a forked child, in its own process group, so that nothing a test does
 * (crash, leak, hang, stray process) can touch the runner or the next test:
 *   - the child gets a private /dev/shm when it can (a mount namespace; needs root), so
 *     concurrent test runs on one machine do not see each other's segments;
 *   - it records its fds, threads and /dev/shm/exec-* entries, runs the test, then checks
 *     that none is left over and that no child process (or zombie) remains, allowing about
 *     a second for things to settle;
 *   - the runner bounds the child with alarm(): 30 s, 300 s for SLOW tests, both times
 *     EXEC_TEST_TIMEOUT_SCALE; on timeout it kills the whole process group;
 *   - the runner is a child subreaper (Linux), so processes a test orphaned come back to it:
 *     it reaps them, and any still alive after the test fails the test and is killed;
 *   - under valgrind the child checks its own heap at the end (see child_exit()).
 * The runner stays single-threaded and never calls the library itself: even the probe of
 * whether the process backend is built happens in a child.
 *
 * Tests print to stderr freely; nothing is captured. A child reports why it failed through
 * a small shared page, so the "not ok" line can say it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "list.h"
#ifdef TEST_MPI
#include "executor_mpi.h"
#include "mpi_run.h" /* the MPI runner: one more backend, each run an MPI job */
#endif

/* Valgrind's client requests, to judge leaks of the test process itself (see leak_check()).
 * They cost nothing outside valgrind; without the header the check is simply off. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK 1
#endif
#endif

/* Flags of the TEST_LIST table (see list.h). */
enum {
    BOTH_BACKENDS = 1u << 0,
    SLOW = 1u << 1,
    THREADS_ONLY = 1u << 2,
    PROCESSES_ONLY = 1u << 3,
    NO_HYGIENE = 1u << 4,
    MPI_ONLY = 1u << 5,
    MPI_SELF = 1u << 6,
};

#define X(name, flags) void test_##name(void);
TEST_LIST(X)
#undef X

struct test {
    const char *name;
    void (*fn)(void);
    unsigned flags;
};

static const struct test tests[] = {
#define X(name, flags) {#name, test_##name, (flags)},
    TEST_LIST(X)
#undef X
};
#define NTESTS (sizeof tests / sizeof tests[0])

struct backend {
    const char *name;
    exec_backend_t id;
};

static const struct backend backends[] = {
    {"threads", EXEC_BACKEND_THREADS},
    {"processes", EXEC_BACKEND_PROCESSES},
#ifdef TEST_MPI
    {"mpi", EXEC_BACKEND_MPI},
#endif
};
#define NBACKENDS (sizeof backends / sizeof backends[0])

#define DEFAULT_TIMEOUT_S 30u
#define SLOW_TIMEOUT_S 300u
#define SETTLE_MS 1000u /* how long leftovers may take to go away */
#define WHY_SIZE 1024

/* ------------------------------------------------------------------------------------------ */
/* State shared by the runner and the test child                                                */
/* ------------------------------------------------------------------------------------------ */

exec_backend_t test_backend = EXEC_BACKEND_THREADS;

#define MAX_TMPDIRS 16

/* Shared (MAP_SHARED) between the runner and the test child: the child writes, the runner
 * reads after the child ended, even if it crashed or was killed. */
struct shared {
    char why[WHY_SIZE];               /* why the test failed, one line */
    int ntmpdirs;                     /* test_tmpdir() directories not removed yet */
    char tmpdirs[MAX_TMPDIRS][256];
};

static struct shared *sh;
static char *why;      /* sh->why */
static pid_t test_pid; /* in a test child: its pid; in the runner: 0 */
static const char *current_name = "";

static void set_why(const char *msg)
{
    if (why == NULL)
        return;
    size_t n = strlen(msg);
    if (n >= WHY_SIZE)
        n = WHY_SIZE - 1;
    memcpy(why, msg, n);
    why[n] = '\0';
    for (char *p = why; *p; p++) /* one line in the report */
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    remove(path);
    return 0;
}

/* Removes the test's directories: in the child at its end, and in the runner after a child
 * that could not (crash, timeout). */
static void cleanup_tmpdirs(void)
{
    for (int i = 0; i < sh->ntmpdirs && i < MAX_TMPDIRS; i++)
        nftw(sh->tmpdirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    sh->ntmpdirs = 0;
}

void test_fail_(const char *file, int line, const char *fmt, ...)
{
    char msg[WHY_SIZE];
    int n = snprintf(msg, sizeof msg, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (test_pid != 0 && getpid() != test_pid) {
        /* A worker process of the process backend: it alone ends. */
        fprintf(stderr, "%s [in process %d, forked by the test]\n", msg, (int)getpid());
        _exit(TEST_EXIT_FAIL);
    }
    fprintf(stderr, "%s\n", msg);
    set_why(msg);
    cleanup_tmpdirs();
    _exit(TEST_EXIT_FAIL);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers for tests (harness.h)                                                                */
/* ------------------------------------------------------------------------------------------ */

void test_config(exec_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backend = test_backend;
}

const char *test_backend_name(void)
{
    for (size_t i = 0; i < NBACKENDS; i++)
        if (backends[i].id == test_backend)
            return backends[i].name;
    return "unknown";
}

uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void test_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool is_number(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Calls fn(number, arg) for each numeric entry of @path (not counting the DIR's own fd). */
static int for_each_number(const char *path, void (*fn)(long, void *), void *arg)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int self = dirfd(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_number(e->d_name))
            continue;
        long v = strtol(e->d_name, NULL, 10);
        if (v == self && strcmp(path, "/proc/self/fd") == 0)
            continue;
        n++;
        if (fn)
            fn(v, arg);
    }
    closedir(d);
    return n;
}

int test_count_fds(void)
{
    return for_each_number("/proc/self/fd", NULL, NULL);
}

int test_count_threads(void)
{
    return for_each_number("/proc/self/task", NULL, NULL);
}

int test_proc_stat(pid_t pid, char *state, pid_t *ppid, pid_t *pgid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parens */
    char st;
    int pp, pg;
    if (p == NULL || sscanf(p + 1, " %c %d %d", &st, &pp, &pg) != 3)
        return -1;
    if (state)
        *state = st;
    if (ppid)
        *ppid = (pid_t)pp;
    if (pgid)
        *pgid = (pid_t)pg;
    return 0;
}

int test_each_process(void (*fn)(long pid, void *arg), void *arg)
{
    return for_each_number("/proc", fn, arg);
}

struct kids {
    pid_t parent;
    int n;
    pid_t pid[32];
    char state[32];
};

static void kid_visit(long pid, void *arg)
{
    struct kids *k = arg;
    char st;
    pid_t ppid;
    if (test_proc_stat((pid_t)pid, &st, &ppid, NULL) != 0 || ppid != k->parent)
        return;
    if (k->n < 32) {
        k->pid[k->n] = (pid_t)pid;
        k->state[k->n] = st;
    }
    k->n++;
}

/* Processes whose parent is @parent; the first 32 are listed in @k. */
static int list_children(pid_t parent, struct kids *k)
{
    k->parent = parent;
    k->n = 0;
    for_each_number("/proc", kid_visit, k);
    return k->n;
}

int test_count_children(void)
{
    struct kids k;
    return list_children(getpid(), &k);
}

int test_count_shm(const char *prefix)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return 0;
    size_t len = strlen(prefix);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, len) == 0)
            n++;
    closedir(d);
    return n;
}

const char *test_tmpdir(void)
{
    if (sh->ntmpdirs == MAX_TMPDIRS)
        TEST_FAIL("test_tmpdir: more than %d directories in one test", MAX_TMPDIRS);
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    char *dir = sh->tmpdirs[sh->ntmpdirs];
    if ((size_t)snprintf(dir, sizeof sh->tmpdirs[0], "%s/exec-test-XXXXXX", base) >=
        sizeof sh->tmpdirs[0])
        TEST_FAIL("test_tmpdir: TMPDIR too long");
    if (mkdtemp(dir) == NULL)
        TEST_FAIL("test_tmpdir: mkdtemp(%s): %s", dir, strerror(errno));
    sh->ntmpdirs++;
    return dir;
}

/* ------------------------------------------------------------------------------------------ */
/* The test child                                                                               */
/* ------------------------------------------------------------------------------------------ */

#define SHM_PREFIX "exec-"
#define FD_TRACKED 4096

#define TIDS_TRACKED 64

struct snapshot {
    unsigned char fd[FD_TRACKED / 8];
    int nfds;
    int threads;
    long tid[TIDS_TRACKED]; /* the first TIDS_TRACKED of them */
    char **shm;
    size_t nshm;
};

static void tid_visit(long tid, void *arg)
{
    struct snapshot *s = arg;
    if (s->threads < TIDS_TRACKED)
        s->tid[s->threads] = tid;
    s->threads++;
}

static bool had_tid(const struct snapshot *s, long tid)
{
    for (int i = 0; i < s->threads && i < TIDS_TRACKED; i++)
        if (s->tid[i] == tid)
            return true;
    return false;
}

static void fd_visit(long fd, void *arg)
{
    struct snapshot *s = arg;
    if (fd >= 0 && fd < FD_TRACKED)
        s->fd[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

static bool fd_isset(const struct snapshot *s, long fd)
{
    return fd >= 0 && fd < FD_TRACKED && (s->fd[fd / 8] & (1u << (fd % 8)));
}

static void snap_shm(struct snapshot *s)
{
    s->shm = NULL;
    s->nshm = 0;
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, SHM_PREFIX, strlen(SHM_PREFIX)) != 0)
            continue;
        char **grown = realloc(s->shm, (s->nshm + 1) * sizeof *s->shm);
        if (grown == NULL)
            break;
        s->shm = grown;
        if ((s->shm[s->nshm] = strdup(e->d_name)) == NULL)
            break;
        s->nshm++;
    }
    closedir(d);
}

static void snap_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->nshm; i++)
        free(s->shm[i]);
    free(s->shm);
    s->shm = NULL;
    s->nshm = 0;
}

static void snap(struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->nfds = for_each_number("/proc/self/fd", fd_visit, s);
    for_each_number("/proc/self/task", tid_visit, s);
    snap_shm(s);
}

/* Appends printf output to a fixed buffer, truncating. */
struct text {
    char buf[WHY_SIZE];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
}

static void describe_fd(struct text *t, long fd)
{
    char path[64], target[128];
    snprintf(path, sizeof path, "/proc/self/fd/%ld", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    add(t, " %ld(%s)", fd, target);
}

/* Describes what the test left behind compared with @before; empty when nothing. */
static void leftovers(const struct snapshot *before, struct text *t)
{
    t->len = 0;
    t->buf[0] = '\0';

    struct kids k;
    if (list_children(getpid(), &k) > 0) {
        add(t, "%d child process%s:", k.n, k.n == 1 ? "" : "es");
        for (int i = 0; i < k.n && i < 32; i++)
            add(t, " %d(%s)", (int)k.pid[i], k.state[i] == 'Z' ? "zombie" : "alive");
        add(t, "; ");
    }

    struct snapshot now;
    memset(&now, 0, sizeof now);
    for_each_number("/proc/self/task", tid_visit, &now);
    if (now.threads > before->threads) {
        add(t, "%d threads, want %d:", now.threads, before->threads);
        for (int i = 0; i < now.threads && i < TIDS_TRACKED; i++) {
            if (had_tid(before, now.tid[i]))
                continue;
            char path[64], comm[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%ld/comm", now.tid[i]);
            FILE *f = fopen(path, "re");
            if (f != NULL) {
                if (fgets(comm, sizeof comm, f) == NULL)
                    comm[0] = '\0';
                fclose(f);
            }
            comm[strcspn(comm, "\n")] = '\0';
            add(t, " %ld(%s)", now.tid[i], comm);
        }
        add(t, "; ");
    }

    now.nfds = for_each_number("/proc/self/fd", fd_visit, &now);
    bool fd_diff = now.nfds != before->nfds;
    for (long fd = 0; fd < FD_TRACKED && !fd_diff; fd++)
        fd_diff = fd_isset(&now, fd) != fd_isset(before, fd);
    if (fd_diff) {
        add(t, "fds %d -> %d:", before->nfds, now.nfds);
        for (long fd = 0; fd < FD_TRACKED; fd++) {
            if (fd_isset(&now, fd) && !fd_isset(before, fd))
                describe_fd(t, fd);
            else if (!fd_isset(&now, fd) && fd_isset(before, fd))
                add(t, " %ld(closed)", fd);
        }
        add(t, "; ");
    }

    snap_shm(&now);
    for (size_t i = 0; i < now.nshm; i++) {
        bool old = false;
        for (size_t j = 0; j < before->nshm && !old; j++)
            old = strcmp(now.shm[i], before->shm[j]) == 0;
        if (!old)
            add(t, "/dev/shm/%s; ", now.shm[i]);
    }
    snap_free(&now);

    if (t->len >= 2 && t->buf[t->len - 2] == ';')
        t->buf[t->len -= 2] = '\0';
}

static void check_hygiene(const struct snapshot *before)
{
    struct text t;
    uint64_t end = test_now_ms() + SETTLE_MS;
    for (;;) {
        leftovers(before, &t);
        if (t.len == 0)
            return;
        if (test_now_ms() >= end)
            break;
        test_sleep_ms(10);
    }
    char msg[WHY_SIZE + 32];
    snprintf(msg, sizeof msg, "left behind: %s", t.buf);
    fprintf(stderr, "%s: %s\n", current_name, msg);
    set_why(msg);
    cleanup_tmpdirs();
    _exit(TEST_EXIT_HYGIENE);
}

/*
 * Give this process a private, empty /dev/shm in a new mount namespace, so that only the
 * segments of this test are seen and any leftover vanishes with it. Needs CAP_SYS_ADMIN;
 * returns false (and changes nothing visible) without it. EXEC_TEST_SHARED_SHM=1 disables it.
 */
static bool private_shm(void)
{
    const char *e = getenv("EXEC_TEST_SHARED_SHM");
    if (e != NULL && *e != '\0' && strcmp(e, "0") != 0)
        return false;
    if (unshare(CLONE_NEWNS) != 0)
        return false;
    /* Make every mount private first, so that nothing below propagates to the host. */
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        return false;
    return mount("exec-test", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") == 0;
}

/* The common start of every child of the runner. */
static void child_setup(void)
{
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
#ifdef PR_SET_PDEATHSIG
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the runner died: do not go on alone */
#endif
    test_pid = getpid();
}

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif

#ifdef TSAN
static void *nothing(void *arg)
{
    return arg;
}

/* ThreadSanitizer starts helper threads of its own: one after fork(), one at the first
 * pthread_create(). Make them exist before the snapshot, so they count as the baseline. */
static void sanitizer_threads_warm_up(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
    test_sleep_ms(20);
}
#else
static void sanitizer_threads_warm_up(void)
{
}
#endif

#if defined(HAVE_MEMCHECK) && defined(__GLIBC__)
void __libc_freeres(void); /* glibc: free libc's own caches (valgrind calls it at exit) */
#define LEAK_CHECK 1
#endif

/* Under valgrind: heap bytes lost or still reachable in this process; 0 elsewhere. */
static unsigned long heap_bytes(void)
{
#ifdef LEAK_CHECK
    if (!RUNNING_ON_VALGRIND)
        return 0;
    unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
    VALGRIND_DO_QUICK_LEAK_CHECK;
    VALGRIND_COUNT_LEAKS(leaked, dubious, reachable, suppressed);
    (void)suppressed;
    return leaked + dubious + reachable;
#else
    return 0;
#endif
}

/*
 * The end of a test child that passed. Normally exit(): LeakSanitizer checks there.
 * Under valgrind, leaks are judged here instead. Valgrind's exit-time check would run in
 * every process, also in the ones a test or the process backend forks, which end with
 * _exit() still holding the heap they inherited (all "still reachable", or "lost" when only
 * a vanished thread's stack pointed to it), so the Makefile turns it off. The test process
 * is held to the strict rule here: once libc freed its own caches (as valgrind does at exit),
 * not one heap byte may be lost or still reachable beyond what was there before the test.
 * No stdio after __libc_freeres(), hence write() and _exit().
 */
static _Noreturn void child_exit(unsigned long heap_before)
{
    fflush(stdout);
    fflush(stderr);
#ifdef LEAK_CHECK
    if (RUNNING_ON_VALGRIND) {
        __libc_freeres();
        unsigned long after = heap_bytes();
        if (after > heap_before) {
            VALGRIND_MONITOR_COMMAND("leak_check full reachable any"); /* every kind */
            char msg[WHY_SIZE];
            int n = snprintf(msg, sizeof msg,
                             "valgrind: %lu heap bytes lost or still reachable at the end of "
                             "the test, %lu before it (leak report above)",
                             after, heap_before);
            set_why(msg);
            if (n < 0 || write(2, msg, strlen(msg)) < 0 || write(2, "\n", 1) < 0) {
                /* nothing more to say: the runner reports the exit status */
            }
            _exit(TEST_EXIT_TOOL);
        }
        _exit(0);
    }
#endif
    (void)heap_before;
    exit(0); /* exit(), not _exit(): LeakSanitizer checks at exit */
}

static _Noreturn void child_main(const struct test *t, const struct backend *b)
{
    child_setup();
    current_name = t->name;
    private_shm();
    sanitizer_threads_warm_up();
    struct snapshot before;
    snap(&before);
#ifndef TSAN
    if (before.threads != 1)
        fprintf(stderr, "%s: warning: %d threads before the test\n", t->name, before.threads);
#endif
    unsigned long heap_before = heap_bytes();
    test_backend = b->id;
    t->fn();
    if (!(t->flags & NO_HYGIENE))
        check_hygiene(&before);
    snap_free(&before);
    cleanup_tmpdirs();
    child_exit(heap_before);
}

/* ------------------------------------------------------------------------------------------ */
/* The runner                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static sigset_t waitset; /* SIGCHLD, SIGALRM and the termination signals, blocked */
static volatile sig_atomic_t interrupted;

static const char *signame(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
        {SIGSYS, "SIGSYS"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig)
            return names[i].name;
    static char buf[32];
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

/* Reap every child that has ended; note the status of @pid if it is one of them. */
static bool reap(pid_t pid, int *status)
{
    bool got = false;
    int st;
    pid_t r;
    while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
        if (r == pid) {
            *status = st;
            got = true;
        }
    }
    return got;
}

/*
 * Wait for @pid to end, at most @timeout_s seconds (alarm()). The signals are blocked and
 * taken with sigwaitinfo(), so there is no race between the check and the wait.
 * Returns true with *status when it ended, false on timeout.
 */
static bool wait_child(pid_t pid, unsigned timeout_s, int *status)
{
    bool done = false, timed_out = false;
    alarm(timeout_s);
    while (!done && !timed_out) {
        if (reap(pid, status)) {
            done = true;
            break;
        }
        int sig = sigwaitinfo(&waitset, NULL);
        if (sig == SIGALRM) {
            timed_out = true;
        } else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            interrupted = sig;
            timed_out = true;
        }
    }
    alarm(0);
    /* Drop a SIGALRM that fired just as the child ended, or it would end the next wait. */
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&alrm, NULL, &zero) == SIGALRM) {
    }
    return done;
}

/*
 * After a test child ended: make sure no process it started is still around. Processes of
 * its group, and orphans reparented to the runner (a subreaper), get SETTLE_MS to end on
 * their own (no time if @grace is false); then they are killed. Returns true if any had to
 * be killed, with their description in @t.
 */
static bool kill_leftovers(pid_t pgid, bool grace, struct text *t)
{
    uint64_t start = test_now_ms();
    uint64_t settle = grace ? SETTLE_MS : 0;
    bool killed = false;
    int dummy;
    t->len = 0;
    t->buf[0] = '\0';
    for (;;) {
        reap(-1, &dummy);
        struct kids k;
        bool group = kill(-pgid, 0) == 0;
        int n = list_children(getpid(), &k);
        if (!group && n == 0)
            return killed;
        uint64_t now = test_now_ms();
        if (now - start >= settle) {
            if (!killed) {
                if (group)
                    add(t, "processes in its group %d; ", (int)pgid);
                for (int i = 0; i < n && i < 32; i++)
                    add(t, "pid %d; ", (int)k.pid[i]);
                if (t->len >= 2)
                    t->buf[t->len -= 2] = '\0';
            }
            killed = true;
            kill(-pgid, SIGKILL);
            for (int i = 0; i < n && i < 32; i++)
                kill(k.pid[i], SIGKILL);
        }
        if (now - start > settle + 10000) {
            add(t, " (could not kill them all)");
            return killed;
        }
        test_sleep_ms(10);
    }
}

static int parse_scale(void)
{
    const char *s = getenv("EXEC_TEST_TIMEOUT_SCALE");
    if (s == NULL || *s == '\0')
        return 1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > 1000) {
        fprintf(stderr, "# ignoring EXEC_TEST_TIMEOUT_SCALE=%s (want an integer 1..1000)\n", s);
        return 1;
    }
    return (int)v;
}

static int scale = 1;

int test_timeout_scale(void)
{
    return scale;
}

/* Runs @t on @b as run number @num; returns true if it passed. */
static bool run_one(const struct test *t, const struct backend *b, int num)
{
    unsigned timeout = (t->flags & SLOW ? SLOW_TIMEOUT_S : DEFAULT_TIMEOUT_S) * (unsigned)scale;
#ifdef TEST_MPI
    if (b->id == EXEC_BACKEND_MPI)
        timeout *= 2; /* a whole MPI job: starting 3 ranks takes seconds on a loaded machine */
#endif
    why[0] = '\0';
    sh->ntmpdirs = 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("not ok %d - %s [%s]: fork: %s\n", num, t->name, b->name, strerror(errno));
        return false;
    }
    if (pid == 0) {
#ifdef TEST_MPI
        if (b->id == EXEC_BACKEND_MPI && !(t->flags & MPI_SELF)) {
            child_setup();
            private_shm(); /* the whole job sees this test's /dev/shm only */
            test_mpi_child(t->name, why, WHY_SIZE);
        }
#endif
        child_main(t, b);
    }
    setpgid(pid, pid); /* also done by the child: whichever runs first */

    int status = 0;
    bool ended = wait_child(pid, timeout, &status);
    if (!ended) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (!reap(pid, &status))
            test_sleep_ms(1);
    }
    struct text left;
    bool stray = kill_leftovers(pid, ended, &left);
    cleanup_tmpdirs(); /* what a crashed or killed child left */

    char reason[WHY_SIZE + 128];
    reason[0] = '\0';
    if (interrupted) {
        snprintf(reason, sizeof reason, "interrupted by %s", signame(interrupted));
    } else if (!ended) {
        snprintf(reason, sizeof reason, "timeout after %u s (process group killed)", timeout);
    } else if (WIFSIGNALED(status)) {
        snprintf(reason, sizeof reason, "killed by %s%s%s%s", signame(WTERMSIG(status)),
                 WCOREDUMP(status) ? " (core dumped)" : "", why[0] ? ": " : "", why);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        int code = WEXITSTATUS(status);
        if (why[0] && (code == TEST_EXIT_FAIL || code == TEST_EXIT_HYGIENE))
            snprintf(reason, sizeof reason, "%s", why);
        else if (code == TEST_EXIT_TOOL && strncmp(why, "valgrind:", 9) == 0)
            snprintf(reason, sizeof reason, "%s", why);
        else if (code == TEST_EXIT_TOOL)
            snprintf(reason, sizeof reason,
                     "exit status %d: valgrind or a sanitizer reported errors (see above)%s%s",
                     code, why[0] ? "; " : "", why);
        else
            snprintf(reason, sizeof reason, "exit status %d%s%s", code, why[0] ? ": " : "",
                     why);
    } else if (stray) {
        snprintf(reason, sizeof reason, "left processes behind (killed): %s", left.buf);
    }
    if (reason[0] == '\0') {
        printf("ok %d - %s [%s]\n", num, t->name, b->name);
        return true;
    }
    printf("not ok %d - %s [%s]: %s\n", num, t->name, b->name, reason);
    return false;
}

/*
 * Whether the process backend is built: a child tries exec_create() with it. Also learns
 * whether test children can have a private /dev/shm. The runner itself never calls the
 * library, so it stays single-threaded.
 */
static bool probe(bool *shm_private)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return true;
    if (pid == 0) {
        child_setup();
        int code = private_shm() ? 4 : 0;
        exec_config_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.backend = EXEC_BACKEND_PROCESSES;
        cfg.workers = 1;
        exec_t *ex = NULL;
        int r = exec_create(&ex, &cfg);
        if (r == EXEC_ENOTSUP)
            code |= 2;
        else if (r == 0)
            exec_destroy(ex);
        exit(code);
    }
    setpgid(pid, pid);
    int status = 0;
    bool ended = wait_child(pid, DEFAULT_TIMEOUT_S * (unsigned)scale, &status);
    if (!ended) {
        kill(-pid, SIGKILL);
        while (!reap(pid, &status))
            test_sleep_ms(1);
    }
    struct text left;
    kill_leftovers(pid, ended, &left);
    *shm_private = false;
    if (!ended || !WIFEXITED(status) || WEXITSTATUS(status) > 7) {
        printf("# process backend probe failed (%s); running process tests anyway\n",
               !ended ? "timeout" : "crash or tool error");
        return true;
    }
    *shm_private = (WEXITSTATUS(status) & 4) != 0;
    return (WEXITSTATUS(status) & 2) == 0;
}

static bool has_prefix(const char *name, char **prefixes, int n)
{
    for (int i = 0; i < n; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: run [-l] [-b threads|processes] [-x PREFIX]... [PREFIX]...\n"
               "  PREFIX   run only tests whose name starts with one of these\n"
               "  -x P     skip tests whose name starts with P\n"
               "  -b NAME  run on this backend only\n"
               "  -l       list the tests and their flags\n"
               "environment: EXEC_TEST_TIMEOUT_SCALE=N multiplies the per-test alarm;\n"
               "  EXEC_TEST_SHARED_SHM=1 keeps the real /dev/shm in test children\n");
}

static void list_tests(void)
{
    for (size_t i = 0; i < NTESTS; i++) {
        unsigned f = tests[i].flags;
        printf("%s%s%s%s%s%s%s%s\n", tests[i].name, f & BOTH_BACKENDS ? " BOTH_BACKENDS" : "",
               f & THREADS_ONLY ? " THREADS_ONLY" : "",
               f & PROCESSES_ONLY ? " PROCESSES_ONLY" : "", f & MPI_ONLY ? " MPI_ONLY" : "",
               f & SLOW ? " SLOW" : "", f & NO_HYGIENE ? " NO_HYGIENE" : "",
               f & MPI_SELF ? " MPI_SELF" : "");
    }
}

static bool check_table(void)
{
    bool ok = true;
    for (size_t i = 0; i < NTESTS; i++) {
        unsigned f = tests[i].flags;
        int where = !!(f & BOTH_BACKENDS) + !!(f & THREADS_ONLY) + !!(f & PROCESSES_ONLY) +
                    !!(f & MPI_ONLY);
        if (where > 1) {
            fprintf(stderr, "run: %s: BOTH_BACKENDS, THREADS_ONLY and PROCESSES_ONLY exclude "
                            "each other\n", tests[i].name);
            ok = false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(tests[i].name, tests[j].name) == 0) {
                fprintf(stderr, "run: %s listed twice\n", tests[i].name);
                ok = false;
            }
    }
    return ok;
}

/* Make sure fds 0-2 are open, so that no test or library fd lands on them. */
static void open_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
}

#ifdef TEST_MPI
/* One rank of an MPI job of test @name (tests/mpi_run.h): rank 0 runs the test on the mpi
 * backend, in this process (the job is the isolation); the other ranks serve. */
static int mpi_one(int *argc, char ***argv, const char *name)
{
    int r = exec_mpi_main(argc, argv);
    static struct shared mine; /* no runner to share with: test_tmpdir() and why need it */
    sh = &mine;
    why = sh->why;
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_mpi_main: %s\n", exec_strerror(r));
        return 1;
    }
    scale = parse_scale();
    for (size_t i = 0; i < NTESTS; i++)
        if (strcmp(tests[i].name, name) == 0) {
            test_backend = EXEC_BACKEND_MPI;
            current_name = name;
            tests[i].fn();
            test_mpi_mark_end();
            return 0;
        }
    fprintf(stderr, "run: no test %s\n", name);
    return 2;
}
#endif

int main(int argc, char **argv)
{
#ifdef TEST_MPI
    if (argc == 3 && strcmp(argv[1], "--mpi-one") == 0)
        return mpi_one(&argc, &argv, argv[2]);
#endif
    char *excludes[64];
    int nexcludes = 0;
    const char *only_backend = NULL;
    bool list = false;
    int opt;
    while ((opt = getopt(argc, argv, "lb:x:h")) != -1) {
        switch (opt) {
        case 'l':
            list = true;
            break;
        case 'b':
            only_backend = optarg;
            break;
        case 'x':
            if (nexcludes == 64) {
                fprintf(stderr, "run: too many -x\n");
                return 2;
            }
            excludes[nexcludes++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    char **prefixes = argv + optind;
    int nprefixes = argc - optind;
    if (only_backend != NULL && strcmp(only_backend, "threads") != 0 &&
        strcmp(only_backend, "processes") != 0 && strcmp(only_backend, "mpi") != 0) {
        fprintf(stderr, "run: -b wants threads or processes\n");
        return 2;
    }
    if (!check_table())
        return 2;
    if (list) {
        list_tests();
        return 0;
    }

    setvbuf(stdout, NULL, _IONBF, 0); /* no stdio buffer: none on the heap for leak checks */
    open_std_fds();
    scale = parse_scale();
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("run: mmap");
        return 2;
    }
    why = sh->why;
#ifdef PR_SET_CHILD_SUBREAPER
    prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    sigaddset(&waitset, SIGALRM);
    sigaddset(&waitset, SIGINT);
    sigaddset(&waitset, SIGTERM);
    sigaddset(&waitset, SIGHUP);
    sigprocmask(SIG_BLOCK, &waitset, NULL);

    /* Which (test, backend) runs are selected, before knowing what is built. */
    bool want[NTESTS][NBACKENDS];
    bool any_process = false;
    for (size_t i = 0; i < NTESTS; i++) {
        unsigned f = tests[i].flags;
        bool selected = (nprefixes == 0 || has_prefix(tests[i].name, prefixes, nprefixes)) &&
                        !has_prefix(tests[i].name, excludes, nexcludes);
        for (size_t b = 0; b < NBACKENDS; b++) {
            bool on = b == 0 ? !(f & (PROCESSES_ONLY | MPI_ONLY))
                             : (f & (BOTH_BACKENDS | PROCESSES_ONLY));
#ifdef TEST_MPI
            if (backends[b].id == EXEC_BACKEND_MPI)
                on = test_mpi_wanted(tests[i].name, f, MPI_ONLY);
#endif
            if (only_backend != NULL && strcmp(only_backend, backends[b].name) != 0)
                on = false;
            want[i][b] = selected && on;
            if (want[i][b] && backends[b].id == EXEC_BACKEND_PROCESSES)
                any_process = true;
        }
    }

    bool shm_private = false;
    bool processes_built = probe(&shm_private);
    if (!shm_private)
        printf("# /dev/shm is shared with the rest of the machine (no mount namespace): "
               "the leftover check may see other programs' %s* segments\n", SHM_PREFIX);
    /* The process backend is part of the library: if it cannot make a pool here, its
     * tests run anyway and fail with the reason, rather than being skipped quietly. */
    if (!processes_built && any_process)
        printf("# warning: exec_create(processes) failed in the probe; process runs will "
               "fail\n");

    int planned = 0;
    for (size_t i = 0; i < NTESTS; i++)
        for (size_t b = 0; b < NBACKENDS; b++)
            planned += want[i][b];
    if (planned > 0)
        printf("1..%d\n", planned);
    else
        printf("# no test selected\n");

    int num = 0, passed = 0, failed = 0;
    for (size_t i = 0; i < NTESTS && !interrupted; i++)
        for (size_t b = 0; b < NBACKENDS && !interrupted; b++) {
            if (!want[i][b])
                continue;
            if (run_one(&tests[i], &backends[b], ++num))
                passed++;
            else
                failed++;
        }
    if (interrupted)
        printf("# interrupted: %d of %d runs not done\n", planned - num, planned);
    printf("%d passed, %d failed\n", passed, failed);
    munmap(sh, sizeof *sh);
    return failed > 0 || interrupted || (planned == 0 && nprefixes > 0) ? 1 : 0;
}
