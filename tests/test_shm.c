/* SPDX-License-Identifier: MIT */
/*
 * test_shm.c - the shared-memory buffer helper (exec_shm_*).
 *
 * What is checked, as executor.h and issue 4 promise it:
 *   - create / attach / ptr / size / name; generated names; anonymous buffers never appear in
 *     /dev/shm; bad names, size 0, huge sizes, unknown flags, an existing name, a missing name,
 *     a full /dev/shm (EXEC_ENOMEM at create, no SIGBUS later);
 *   - refs: a task maps a buffer by ref, named and anonymous, reads what the parent wrote and
 *     writes what the parent reads; mappings are cached per process (the creator's own mapping
 *     in the creating process); read-only attach and read-only maps fault on write (SIGSEGV,
 *     checked in a forked child); unlink while a task maps the buffer leaves its mapping valid;
 *   - cleanup: 1,000 create/close cycles leave no fd, mapping or name; a creator killed by
 *     SIGKILL (even with a forked child holding its guardian socket) or exec()ing has its names
 *     removed within 1 s; persistent buffers survive; attachers and inheritors never unlink;
 *     the guardian runs only while there is something to guard, holds nothing of the program,
 *     ignores terminal signals and is replaced if it is killed;
 *   - a worker that crashes while it maps a buffer fails only its task; the buffer is intact.
 *
 * Process-specific behaviour is also tested directly with fork(): a forked child that drops
 * its inherited handles resolves refs exactly as a fresh worker process does.
 * Names used here start with "exec-" so that the runner's /dev/shm hygiene check sees them.
 */
#include "harness.h"
#include "tasks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/shm.h" /* exec__shmbuf_trim(), the between-tasks hook of worker processes */

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

#define NAME_CAP (EXEC_SHM_NAME_MAX + 1)

/* "exec-t<pid>-<tag>": unique per test run, and seen by the runner's hygiene check. */
static const char *tname(char *buf, const char *tag)
{
    snprintf(buf, NAME_CAP, "exec-t%d-%s", (int)getpid(), tag);
    return buf;
}

static bool shm_exists(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

/* Wait up to @ms for none of @names to exist; returns the milliseconds it took, or -1. */
static long wait_gone(const char *const *names, int n, unsigned ms)
{
    uint64_t t0 = test_now_ms();
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += shm_exists(names[i]);
        uint64_t dt = test_now_ms() - t0;
        if (left == 0)
            return (long)dt;
        if (dt > ms)
            return -1;
        test_sleep_ms(2);
    }
}

/* Buffer mappings listed in @path (a /proc/<pid>/maps file): shared mappings (permissions
 * like "rw-s") of a /dev/shm object or a memfd. The allocator's mappings (and a sanitizer's)
 * are private; valgrind's own shared ones are files elsewhere. */
static int count_shared_maps(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[512], perms[8];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's' &&
             (strstr(line, " /dev/shm/") || strstr(line, " /memfd:"));
    fclose(f);
    return n;
}

static int count_maps(void)
{
    return count_shared_maps("/proc/self/maps");
}

/* The children of this process; returns how many, the first in *first. */
static int children(pid_t *first)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')');
        char st;
        int ppid;
        if (p && sscanf(p + 1, " %c %d", &st, &ppid) == 2 && ppid == (int)getpid()) {
            if (n++ == 0 && first)
                *first = (pid_t)atoi(e->d_name);
        }
    }
    closedir(d);
    return n;
}

/* Fill @n uint64_t words with seed + i. */
static void fill(void *p, size_t n, uint64_t seed)
{
    uint64_t *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = seed + i;
}

static uint64_t expected_sum(uint64_t seed, uint64_t lo, uint64_t hi)
{
    uint64_t s = 0;
    for (uint64_t i = lo; i < hi; i++)
        s += seed + i;
    return s;
}

static void read_pipe_byte(int fd)
{
    char c;
    ssize_t r;
    while ((r = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    ASSERT_EQ(r, 1);
}

static void write_pipe_byte(int fd)
{
    char c = 'x';
    ASSERT_EQ(write(fd, &c, 1), 1);
}

/* fork() with a pipe up (child to parent) and, if @down is not NULL, one down (parent to
 * child). Each process closes the ends that are not its own (the child keeps up[1] and
 * down[0], the parent up[0] and down[1]), so a read sees end-of-file once the other side
 * is gone. Returns fork()'s value. */
static pid_t fork_piped(int up[2], int down[2])
{
    ASSERT_EQ(pipe(up), 0);
    if (down)
        ASSERT_EQ(pipe(down), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    close(up[pid == 0 ? 0 : 1]);
    if (down)
        close(down[pid == 0 ? 1 : 0]);
    return pid;
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* What every task here receives: a ref, a range of uint64_t words, a few parameters and
 * what to do with them. */
enum job_op {
    JOB_SUM,      /* result: the sum of words [lo, hi) */
    JOB_FILL,     /* write seed + i into words [lo, hi); result 0 */
    JOB_WHERE,    /* result: the mapping's address and the pid of the process holding it */
    JOB_WAIT_SUM, /* word 1 := 1 (mapped), wait for word 0 != 0 (at most 10 s), then sum */
    JOB_CRASH,    /* write seed into word lo, then die of SIGSEGV (process backend only) */
};

struct job {
    exec_shm_ref_t ref;
    uint64_t lo, hi;
    uint64_t seed;
    unsigned flags; /* for exec_shm_map() */
    int op;         /* enum job_op */
};

/* Task errors: 200 + -EXEC_E* for a failed exec_shm_map(), 190.. for bad input. */
#define MAP_FAIL(r) (200 - (r))

static uint64_t sum_words(const uint64_t *v, uint64_t lo, uint64_t hi)
{
    uint64_t s = 0;
    for (uint64_t i = lo; i < hi; i++)
        s += v[i];
    return s;
}

/* The one task of this file: map the job's buffer, then do its op. */
static int task_job(const void *arg, size_t n, void *out, size_t cap, size_t *out_size)
{
    struct job j;
    if (n != sizeof j)
        return 190;
    memcpy(&j, arg, sizeof j);
    void *p;
    size_t size;
    int r = exec_shm_map(&j.ref, j.flags, &p, &size);
    if (r != 0)
        return MAP_FAIL(r);
    if (size != j.ref.size || j.hi * sizeof(uint64_t) > size)
        return 191;
    uint64_t *v = p;
    switch (j.op) {
    case JOB_SUM:
        return task_put_i64(out, cap, out_size, (int64_t)sum_words(v, j.lo, j.hi));
    case JOB_FILL:
        for (uint64_t i = j.lo; i < j.hi; i++)
            v[i] = j.seed + i;
        return task_put_i64(out, cap, out_size, 0);
    case JOB_WHERE: {
        uint64_t w[2] = {(uint64_t)(uintptr_t)p, (uint64_t)getpid()};
        if (cap < sizeof w)
            return 192;
        memcpy(out, w, sizeof w);
        *out_size = sizeof w;
        return 0;
    }
    case JOB_WAIT_SUM: {
        __atomic_store_n(&v[1], 1, __ATOMIC_RELEASE);
        uint64_t t0 = test_now_ms();
        while (__atomic_load_n(&v[0], __ATOMIC_ACQUIRE) == 0) {
            if (test_now_ms() - t0 > 10000)
                return 193;
            test_sleep_ms(1);
        }
        return task_put_i64(out, cap, out_size, (int64_t)sum_words(v, j.lo, j.hi));
    }
    case JOB_CRASH:
        v[j.lo] = j.seed;
        raise(SIGSEGV);
        return 194;
    }
    return 195;
}

/* Submit @j with @op; returns its future. */
static exec_future_t *submit_job(exec_t *ex, int op, const struct job *j)
{
    struct job c = *j;
    c.op = op;
    exec_future_t *f = NULL;
    ASSERT_OK(exec_submit(ex, task_job, &c, sizeof c, &f));
    return f;
}

/* Wait for @f and return its 8-byte result; fails the test with the task's status. */
static uint64_t result_u64(exec_future_t *f)
{
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    const void *r = NULL;
    size_t size = 0;
    int code = exec_future_result(f, &r, &size);
    if (code != 0) {
        exec_fault_t fault;
        exec_future_fault(f, &fault);
        TEST_FAIL("task failed: %s, task_status %d, signal %d", exec_errname(code),
                  fault.task_status, fault.signal);
    }
    ASSERT_EQ(size, sizeof(uint64_t));
    uint64_t v;
    memcpy(&v, r, sizeof v);
    exec_future_release(f);
    return v;
}

static uint64_t run_job(exec_t *ex, int op, const struct job *j)
{
    return result_u64(submit_job(ex, op, j));
}

static void job_for(struct job *j, const exec_shm_t *s, uint64_t lo, uint64_t hi, uint64_t seed,
                    unsigned flags)
{
    memset(j, 0, sizeof *j);
    ASSERT_OK(exec_shm_ref(s, &j->ref));
    j->lo = lo;
    j->hi = hi;
    j->seed = seed;
    j->flags = flags;
}

/* ---------------------------------------------------------------------------------------- */
/* Create, attach, accessors                                                                 */
/* ---------------------------------------------------------------------------------------- */

TEST(shm_create_named_basic)
{
    char name[NAME_CAP];
    tname(name, "basic");
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, name, 10000, 0));
    ASSERT_NOT_NULL(s);
    ASSERT_STR_EQ(exec_shm_name(s), name);
    ASSERT_EQ(exec_shm_size(s), 10000);
    unsigned char *p = exec_shm_ptr(s);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ((uintptr_t)p % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    for (size_t i = 0; i < 10000; i++)
        if (p[i] != 0)
            TEST_FAIL("byte %zu is %u, want 0", i, p[i]);
    memset(p, 0xab, 10000);
    ASSERT_TRUE(shm_exists(name));

    /* The space is reserved: the object has its size and its blocks already. */
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_size, 10000);
    ASSERT_GE((long long)st.st_blocks * 512, 10000);
    ASSERT_EQ(st.st_mode & 0777, 0600);

    ASSERT_OK(exec_shm_close(s));
    ASSERT_FALSE(shm_exists(name));
    ASSERT_OK(exec_shm_close(NULL));
    ASSERT_NULL(exec_shm_ptr(NULL));
    ASSERT_EQ(exec_shm_size(NULL), 0);
    ASSERT_NULL(exec_shm_name(NULL));
}

TEST(shm_generated_names)
{
    exec_shm_t *a = NULL, *b = NULL;
    ASSERT_OK(exec_shm_create(&a, NULL, 1, 0));
    ASSERT_OK(exec_shm_create(&b, NULL, 1, 0));
    char prefix[32];
    snprintf(prefix, sizeof prefix, "exec-%d-", (int)getpid());
    ASSERT_EQ(strncmp(exec_shm_name(a), prefix, strlen(prefix)), 0);
    ASSERT_EQ(strncmp(exec_shm_name(b), prefix, strlen(prefix)), 0);
    ASSERT_NE(strcmp(exec_shm_name(a), exec_shm_name(b)), 0);
    ASSERT_TRUE(shm_exists(exec_shm_name(a)));
    ASSERT_TRUE(shm_exists(exec_shm_name(b)));

    /* A generated name taken by someone else is skipped, not an error. */
    unsigned n = (unsigned)atoi(exec_shm_name(b) + strlen(prefix));
    char next[NAME_CAP];
    snprintf(next, sizeof next, "%s%u", prefix, n + 1);
    int fd = shm_open(next, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    exec_shm_t *c = NULL;
    ASSERT_OK(exec_shm_create(&c, NULL, 1, 0));
    ASSERT_NE(strcmp(exec_shm_name(c), next), 0);
    ASSERT_TRUE(shm_exists(next)); /* and left alone */
    ASSERT_EQ(shm_unlink(next), 0);

    char na[NAME_CAP];
    snprintf(na, sizeof na, "%s", exec_shm_name(a));
    ASSERT_OK(exec_shm_close(a));
    ASSERT_OK(exec_shm_close(b));
    ASSERT_OK(exec_shm_close(c));
    ASSERT_FALSE(shm_exists(na));
}

TEST(shm_anonymous_invisible)
{
    int before = test_count_shm("");
    int fds = test_count_fds();
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, NULL, 3 * 4096 + 5, EXEC_SHM_ANONYMOUS));
    ASSERT_EQ(test_count_shm(""), before);
    ASSERT_STR_EQ(exec_shm_name(s), "");
    ASSERT_EQ(exec_shm_size(s), 3 * 4096 + 5);
    ASSERT_EQ(test_count_fds(), fds + 1); /* the memfd, kept for refs */
    ASSERT_EQ(children(NULL), 0);         /* no guardian for anonymous buffers */
    unsigned char *p = exec_shm_ptr(s);
    ASSERT_EQ(p[3 * 4096 + 4], 0);
    p[3 * 4096 + 4] = 7;

    exec_shm_ref_t ref;
    ASSERT_OK(exec_shm_ref(s, &ref));
    ASSERT_STR_EQ(ref.name, "");
    ASSERT_EQ(ref.owner_pid, getpid());
    ASSERT_GE(ref.owner_fd, 0);
    ASSERT_EQ(ref.size, 3 * 4096 + 5);
    ASSERT_NE(ref.id, 0);

    ASSERT_OK(exec_shm_unlink(s)); /* nothing to remove: OK */
    ASSERT_OK(exec_shm_close(s));
    ASSERT_EQ(test_count_fds(), fds);
}

TEST(shm_attach_shares_bytes)
{
    char name[NAME_CAP];
    tname(name, "attach");
    exec_shm_t *s = NULL, *a = NULL, *r = NULL;
    ASSERT_OK(exec_shm_create(&s, name, 8192, 0));
    ASSERT_OK(exec_shm_attach(&a, name, 0));
    ASSERT_OK(exec_shm_attach(&r, name, EXEC_SHM_RDONLY));
    ASSERT_EQ(exec_shm_size(a), 8192);
    ASSERT_STR_EQ(exec_shm_name(a), name);
    ASSERT_NE(exec_shm_ptr(a), exec_shm_ptr(s)); /* a mapping of its own */
    memcpy(exec_shm_ptr(s), "hello", 6);
    ASSERT_STR_EQ((char *)exec_shm_ptr(a), "hello");
    memcpy((char *)exec_shm_ptr(a) + 8000, "world", 6);
    ASSERT_STR_EQ((char *)exec_shm_ptr(s) + 8000, "world");
    ASSERT_STR_EQ((char *)exec_shm_ptr(r) + 8000, "world");

    /* Only the creator unlinks. */
    ASSERT_ERR(exec_shm_unlink(a), EXEC_EBUSY);
    ASSERT_OK(exec_shm_close(a));
    ASSERT_OK(exec_shm_close(r));
    ASSERT_TRUE(shm_exists(name));
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "hello");

    /* The creator unlinks; its mapping stays; a second unlink is a no-op. */
    ASSERT_OK(exec_shm_unlink(s));
    ASSERT_FALSE(shm_exists(name));
    ASSERT_ERR(exec_shm_attach(&a, name, 0), EXEC_ESYS);
    ASSERT_OK(exec_shm_unlink(s));
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "hello");
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_bad_names)
{
    static const char *const bad[] = {
        "",       ".hidden", "a/b", "/abs",   "a b", "tab\tx", "star*", "dollar$",
        "semi;x", "é",       "..",  "new\nl", "q\"", "back\\", "%s",
    };
    exec_shm_t *s = (exec_shm_t *)&s; /* must stay untouched on failure */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (exec_shm_create(&s, bad[i], 100, 0) != EXEC_EINVAL)
            TEST_FAIL("create \"%s\": want EXEC_EINVAL", bad[i]);
        if (exec_shm_attach(&s, bad[i], 0) != EXEC_EINVAL)
            TEST_FAIL("attach \"%s\": want EXEC_EINVAL", bad[i]);
    }
    ASSERT_EQ(s, (exec_shm_t *)&s);

    char longest[EXEC_SHM_NAME_MAX + 2];
    int n = snprintf(longest, sizeof longest, "exec-t%d-", (int)getpid());
    memset(longest + n, 'x', sizeof longest - (size_t)n);
    longest[EXEC_SHM_NAME_MAX + 1] = '\0'; /* 64 characters: one too many */
    ASSERT_ERR(exec_shm_create(&s, longest, 100, 0), EXEC_EINVAL);
    longest[EXEC_SHM_NAME_MAX] = '\0'; /* 63: the longest allowed */
    ASSERT_OK(exec_shm_create(&s, longest, 100, 0));
    ASSERT_STR_EQ(exec_shm_name(s), longest);
    ASSERT_OK(exec_shm_close(s));

    /* Every allowed character. */
    char all[NAME_CAP];
    snprintf(all, sizeof all, "exec-t%d-Az09._-", (int)getpid());
    ASSERT_OK(exec_shm_create(&s, all, 1, 0));
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_bad_arguments)
{
    char name[NAME_CAP];
    tname(name, "args");
    exec_shm_t *s = NULL;
    ASSERT_ERR(exec_shm_create(NULL, name, 100, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, name, 0, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, NULL, 0, EXEC_SHM_ANONYMOUS), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, name, 100, 64), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, name, 100, EXEC_SHM_RDONLY), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, name, 100, EXEC_SHM_ANONYMOUS), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_create(&s, NULL, 100, EXEC_SHM_ANONYMOUS | EXEC_SHM_PERSISTENT),
               EXEC_EINVAL);
    ASSERT_NULL(s);
    ASSERT_FALSE(shm_exists(name));

    ASSERT_OK(exec_shm_create(&s, name, 100, 0));
    exec_shm_t *a = NULL;
    ASSERT_ERR(exec_shm_attach(NULL, name, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_attach(&a, NULL, 0), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_attach(&a, name, EXEC_SHM_PERSISTENT), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_attach(&a, name, EXEC_SHM_ANONYMOUS), EXEC_EINVAL);
    ASSERT_NULL(a);

    exec_shm_ref_t ref;
    ASSERT_ERR(exec_shm_ref(NULL, &ref), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_ref(s, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_unlink(NULL), EXEC_EINVAL);
    ASSERT_OK(exec_shm_ref(s, &ref));
    void *p = NULL;
    size_t size = 0;
    ASSERT_ERR(exec_shm_map(NULL, 0, &p, &size), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_map(&ref, 0, NULL, &size), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_map(&ref, 0, &p, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_shm_map(&ref, EXEC_SHM_ANONYMOUS, &p, &size), EXEC_EINVAL);
    ASSERT_NULL(p);
    ASSERT_EQ(size, 0);
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_huge_sizes)
{
    char name[NAME_CAP];
    tname(name, "huge");
    exec_shm_t *s = NULL;
    int fds = test_count_fds();
    /* Beyond any address space or file offset. */
    ASSERT_ERR(exec_shm_create(&s, name, SIZE_MAX, 0), EXEC_ETOOBIG);
    ASSERT_ERR(exec_shm_create(&s, NULL, SIZE_MAX - 100, EXEC_SHM_ANONYMOUS), EXEC_ETOOBIG);
    ASSERT_ERR(exec_shm_create(&s, name, (size_t)1 << 63, 0), EXEC_ETOOBIG);
    /* Representable, but more than this machine's memory: refused before any allocation. */
    ASSERT_ERR(exec_shm_create(&s, name, (size_t)1 << 50, 0), EXEC_ENOMEM);
    ASSERT_ERR(exec_shm_create(&s, NULL, (size_t)1 << 50, EXEC_SHM_ANONYMOUS), EXEC_ENOMEM);
    ASSERT_NULL(s);
    ASSERT_FALSE(shm_exists(name));
    ASSERT_EQ(test_count_fds(), fds);
    ASSERT_EQ(children(NULL), 0);
}

/* Whether /dev/shm is the runner's private tmpfs (a mount namespace of this test). */
static bool private_devshm(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strstr(line, " /dev/shm ") && strstr(line, " - tmpfs exec-test "))
            found = true;
    fclose(f);
    return found;
}

TEST(shm_full_devshm)
{
    char name[NAME_CAP], other[NAME_CAP];
    tname(name, "full");
    tname(other, "fits");
    exec_shm_t *s = NULL, *fits = NULL;
    if (private_devshm() && mount("exec-test", "/dev/shm", "tmpfs", MS_REMOUNT, "size=1m") == 0) {
        /* A 1 MiB /dev/shm of our own. */
        ASSERT_ERR(exec_shm_create(&s, name, 2 << 20, 0), EXEC_ENOMEM);
        ASSERT_OK(exec_shm_create(&fits, other, 768 << 10, 0));
        memset(exec_shm_ptr(fits), 1, 768 << 10); /* reserved: no SIGBUS */
        /* Room for part of it only: the reservation fails midway and is undone. */
        ASSERT_ERR(exec_shm_create(&s, name, 512 << 10, 0), EXEC_ENOMEM);
        ASSERT_FALSE(shm_exists(name));
        ASSERT_OK(exec_shm_close(fits));
        ASSERT_OK(exec_shm_create(&s, name, 512 << 10, 0)); /* the space came back */
        ASSERT_OK(exec_shm_close(s));
    } else {
        fprintf(stderr, "shm_full_devshm: no private /dev/shm: only the whole-size case\n");
    }
    /* More than the whole file system holds. */
    s = NULL;
    struct statvfs vfs;
    ASSERT_EQ(statvfs("/dev/shm", &vfs), 0);
    uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    ASSERT_ERR(exec_shm_create(&s, name, (size_t)total + 4096, 0), EXEC_ENOMEM);
    ASSERT_NULL(s);
    ASSERT_FALSE(shm_exists(name));
    ASSERT_EQ(children(NULL), 0);
}

TEST(shm_create_existing_busy)
{
    char name[NAME_CAP];
    tname(name, "busy");
    exec_shm_t *s = NULL, *t = NULL;
    ASSERT_OK(exec_shm_create(&s, name, 100, 0));
    memcpy(exec_shm_ptr(s), "mine", 5);
    ASSERT_ERR(exec_shm_create(&t, name, 100, 0), EXEC_EBUSY);
    ASSERT_ERR(exec_shm_create(&t, name, 100, EXEC_SHM_PERSISTENT), EXEC_EBUSY);
    ASSERT_NULL(t);
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "mine"); /* untouched */
    ASSERT_OK(exec_shm_close(s));

    /* An object made by someone else is just as busy, and is never removed by us. */
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_ERR(exec_shm_create(&t, name, 100, 0), EXEC_EBUSY);
    ASSERT_TRUE(shm_exists(name));
    /* Size 0 (still being made): attach refuses to map it. */
    ASSERT_ERR(exec_shm_attach(&t, name, 0), EXEC_ESYS);
    ASSERT_EQ(shm_unlink(name), 0);
}

TEST(shm_attach_missing)
{
    char name[NAME_CAP];
    tname(name, "missing");
    exec_shm_t *s = NULL;
    ASSERT_ERR(exec_shm_attach(&s, name, 0), EXEC_ESYS);
    ASSERT_ERR(exec_shm_attach(&s, name, EXEC_SHM_RDONLY), EXEC_ESYS);
    ASSERT_NULL(s);
    ASSERT_FALSE(shm_exists(name));
}

/* ---------------------------------------------------------------------------------------- */
/* Read-only mappings                                                                        */
/* ---------------------------------------------------------------------------------------- */

TEST(shm_rdonly_attach_segv)
{
    char name[NAME_CAP];
    tname(name, "ro");
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, name, 4096, 0));
    memcpy(exec_shm_ptr(s), "ro", 3);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        exec_shm_t *a = NULL;
        ASSERT_OK(exec_shm_attach(&a, name, EXEC_SHM_RDONLY));
        volatile char *p = exec_shm_ptr(a);
        ASSERT_EQ(p[0], 'r'); /* reading works */
        p[0] = 'X';           /* writing faults */
        _exit(0);
    }
    EXPECT_CHILD_END(pid, SIGSEGV, 10000);
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "ro");
    ASSERT_TRUE(shm_exists(name)); /* the attacher's death removed nothing */
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_rdonly_map_segv)
{
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, NULL, 4096, 0));
    memcpy(exec_shm_ptr(s), "ro", 3);
    exec_shm_ref_t ref;
    ASSERT_OK(exec_shm_ref(s, &ref));
    /* In the creating process too, a read-only map is a read-only mapping. */
    void *ro = NULL, *ro2 = NULL;
    size_t size = 0;
    ASSERT_OK(exec_shm_map(&ref, EXEC_SHM_RDONLY, &ro, &size));
    ASSERT_NE(ro, exec_shm_ptr(s));
    ASSERT_OK(exec_shm_map(&ref, EXEC_SHM_RDONLY, &ro2, &size));
    ASSERT_EQ(ro2, ro); /* cached */
    ASSERT_STR_EQ((char *)ro, "ro");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile char *)ro = 'X';
        _exit(0);
    }
    EXPECT_CHILD_END(pid, SIGSEGV, 10000);
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "ro");
    int maps = count_maps();
    ASSERT_OK(exec_shm_close(s)); /* also drops the read-only mapping made for its ref */
    ASSERT_EQ(count_maps(), maps - 2);
}

/* ---------------------------------------------------------------------------------------- */
/* Refs through tasks (both backends)                                                        */
/* ---------------------------------------------------------------------------------------- */

#define WORDS 200000u /* 1.6 MB */

/* A new buffer of WORDS words (@flags for exec_shm_create()), filled by fill(@seed). */
static exec_shm_t *filled(unsigned flags, uint64_t seed)
{
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, NULL, WORDS * 8, flags));
    fill(exec_shm_ptr(s), WORDS, seed);
    return s;
}

/* Submit @op on each quarter of the WORDS words of @s, into fs[0..3]. */
static void submit_quarters(exec_t *ex, const exec_shm_t *s, int op, uint64_t seed,
                            unsigned flags, exec_future_t *fs[4])
{
    struct job j;
    for (int k = 0; k < 4; k++) {
        job_for(&j, s, WORDS / 4 * (uint64_t)k, WORDS / 4 * (uint64_t)(k + 1), seed, flags);
        fs[k] = submit_job(ex, op, &j);
    }
}

/* Sum a buffer in 4 slices through tasks and compare with the expected total. */
static void sum_through_tasks(exec_t *ex, const exec_shm_t *s, uint64_t seed, unsigned flags)
{
    exec_future_t *fs[4];
    submit_quarters(ex, s, JOB_SUM, 0, flags, fs);
    uint64_t total = 0;
    for (int k = 0; k < 4; k++)
        total += result_u64(fs[k]);
    ASSERT_EQ(total, expected_sum(seed, 0, WORDS));
}

/* A buffer made after the pool (a real mapping), filled with @seed, summed through tasks
 * read-write and read-only; then the parent refills it with @seed2 and the workers see it
 * (same pages, not copies). */
static void ref_in_task(unsigned create_flags, uint64_t seed, uint64_t seed2)
{
    exec_t *ex = make_workers(2);
    exec_shm_t *s = filled(create_flags, seed);
    sum_through_tasks(ex, s, seed, 0);
    sum_through_tasks(ex, s, seed, EXEC_SHM_RDONLY);
    fill(exec_shm_ptr(s), WORDS, seed2);
    sum_through_tasks(ex, s, seed2, 0);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_ref_named_in_task)
{
    ref_in_task(0, 11, 5000);
}

TEST(shm_ref_anonymous_in_task)
{
    ref_in_task(EXEC_SHM_ANONYMOUS, 3, 77);
}

TEST(shm_buffer_before_executor)
{
    /* Made before the pool: process workers inherit its mapping (and the table) at fork. */
    exec_shm_t *n = filled(0, 8), *a = filled(EXEC_SHM_ANONYMOUS, 9);
    exec_t *ex = make_workers(2);
    sum_through_tasks(ex, n, 8, 0);
    sum_through_tasks(ex, a, 9, 0);
    sum_through_tasks(ex, a, 9, EXEC_SHM_RDONLY);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_OK(exec_shm_close(n));
    ASSERT_OK(exec_shm_close(a));
}

TEST(shm_task_writes_parent_reads)
{
    exec_t *ex = make_workers(2);
    for (int anon = 0; anon < 2; anon++) {
        exec_shm_t *s = filled(anon ? EXEC_SHM_ANONYMOUS : 0, 0); /* not yet 1000 + i */
        exec_future_t *fs[4];
        submit_quarters(ex, s, JOB_FILL, 1000, 0, fs);
        for (int k = 0; k < 4; k++)
            ASSERT_EQ(result_u64(fs[k]), 0);
        const uint64_t *v = exec_shm_ptr(s);
        for (uint64_t i = 0; i < WORDS; i++)
            if (v[i] != 1000 + i)
                TEST_FAIL("%s: word %llu is %llu, want %llu", anon ? "anonymous" : "named",
                          (unsigned long long)i, (unsigned long long)v[i],
                          (unsigned long long)(1000 + i));
        ASSERT_OK(exec_shm_close(s));
    }
    ASSERT_OK(exec_destroy(ex));
}

TEST(shm_map_cached_per_worker)
{
    exec_t *ex = make_workers(1);
    for (int anon = 0; anon < 2; anon++) {
        exec_shm_t *s = NULL;
        ASSERT_OK(exec_shm_create(&s, NULL, 4096, anon ? EXEC_SHM_ANONYMOUS : 0));
        struct job j;
        job_for(&j, s, 0, 1, 0, 0);
        uint64_t first[2] = {0, 0};
        for (int k = 0; k < 20; k++) {
            exec_future_t *f = submit_job(ex, JOB_WHERE, &j);
            ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
            const void *r = NULL;
            size_t size = 0;
            ASSERT_OK(exec_future_result(f, &r, &size));
            ASSERT_EQ(size, sizeof first);
            uint64_t w[2];
            memcpy(w, r, sizeof w);
            exec_future_release(f);
            if (k == 0)
                memcpy(first, w, sizeof w);
            ASSERT_EQ(w[1], first[1]); /* the same worker (one) ... */
            ASSERT_EQ(w[0], first[0]); /* ... maps the buffer once */
        }
        if (test_backend == EXEC_BACKEND_THREADS) {
            ASSERT_EQ(first[0], (uint64_t)(uintptr_t)exec_shm_ptr(s)); /* the creator's own */
            ASSERT_EQ(first[1], (uint64_t)getpid());
        } else {
            ASSERT_NE(first[1], (uint64_t)getpid());
        }
        ASSERT_OK(exec_shm_close(s));
    }
    ASSERT_OK(exec_destroy(ex));
}

TEST(shm_unlink_while_task_maps)
{
    exec_t *ex = make_workers(1);
    exec_shm_t *s = filled(0, 40);
    char name[NAME_CAP];
    snprintf(name, sizeof name, "%s", exec_shm_name(s));
    uint64_t *v = exec_shm_ptr(s);
    v[0] = 0; /* go flag */
    v[1] = 0; /* mapped flag */
    struct job j;
    job_for(&j, s, 2, WORDS, 0, 0);
    exec_future_t *f = submit_job(ex, JOB_WAIT_SUM, &j);
    uint64_t t0 = test_now_ms();
    while (__atomic_load_n(&v[1], __ATOMIC_ACQUIRE) == 0) {
        ASSERT_LT(test_now_ms() - t0, 10000);
        test_sleep_ms(1);
    }
    ASSERT_OK(exec_shm_unlink(s)); /* the task holds a mapping now */
    ASSERT_FALSE(shm_exists(name));
    __atomic_store_n(&v[0], 1, __ATOMIC_RELEASE);
    ASSERT_EQ(result_u64(f), expected_sum(40, 2, WORDS));

    /* In the creating process the creator's mapping serves the ref (same pages). A worker
     * process drops its cached mapping of a buffer that is gone between tasks (documented
     * in exec_shm_map()), so there the ref may or may not still map: not asserted. In a
     * fresh process the name is gone, so a ref can no longer be mapped there. */
    job_for(&j, s, 2, WORDS, 0, 0);
    v[0] = 1;
    if (test_backend == EXEC_BACKEND_THREADS)
        ASSERT_EQ(run_job(ex, JOB_SUM, &j), expected_sum(40, 2, WORDS));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        exec_shm_ref_t ref = j.ref;
        exec_shm_close(s); /* drop the inherited handle: resolve like a fresh worker */
        void *p = NULL;
        size_t size = 0;
        ASSERT_ERR(exec_shm_map(&ref, 0, &p, &size), EXEC_ESYS);
        _exit(0);
    }
    EXPECT_CHILD_END(pid, 0, 10000);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_worker_crash_holding_mapping)
{
    exec_t *ex = make_workers(1);
    exec_shm_t *s = filled(0, 0);
    struct job j;
    job_for(&j, s, 0, 1, 999, 0);
    exec_future_t *f = submit_job(ex, JOB_CRASH, &j);
    ASSERT_OK(exec_future_wait(f, EXEC_WAIT_FOREVER));
    ASSERT_ERR(exec_future_result(f, NULL, NULL), EXEC_ECRASHED);
    exec_fault_t fault;
    ASSERT_OK(exec_future_fault(f, &fault));
    ASSERT_EQ(fault.signal, SIGSEGV);
    exec_future_release(f);

    /* The pool goes on, the buffer is intact (with the write made before the crash). */
    ASSERT_TRUE(shm_exists(exec_shm_name(s)));
    ASSERT_EQ(((uint64_t *)exec_shm_ptr(s))[0], 999);
    job_for(&j, s, 1, WORDS, 0, 0);
    ASSERT_EQ(run_job(ex, JOB_SUM, &j), expected_sum(0, 1, WORDS));
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.crashed, 1);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_OK(exec_shm_close(s));
}

/* ---------------------------------------------------------------------------------------- */
/* The cross-process path, directly with fork()                                              */
/* ---------------------------------------------------------------------------------------- */

TEST(shm_fork_child_maps_ref)
{
    exec_shm_t *n = filled(0, 1), *a = filled(EXEC_SHM_ANONYMOUS, 2);
    exec_shm_ref_t rn, ra;
    ASSERT_OK(exec_shm_ref(n, &rn));
    ASSERT_OK(exec_shm_ref(a, &ra));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* Drop what fork() gave us: from here on, as in a fresh worker process. */
        ASSERT_OK(exec_shm_close(n));
        ASSERT_OK(exec_shm_close(a));
        const exec_shm_ref_t *refs[2] = {&rn, &ra};
        for (int k = 0; k < 2; k++) {
            void *p = NULL, *again = NULL, *ro = NULL;
            size_t size = 0;
            ASSERT_OK(exec_shm_map(refs[k], 0, &p, &size));
            ASSERT_EQ(size, WORDS * 8);
            uint64_t *v = p;
            ASSERT_EQ(v[WORDS - 1], (uint64_t)(k + 1) + WORDS - 1);
            v[0] = 4242 + (uint64_t)k;
            ASSERT_OK(exec_shm_map(refs[k], 0, &again, &size));
            ASSERT_EQ(again, p);
            ASSERT_OK(exec_shm_map(refs[k], EXEC_SHM_RDONLY, &ro, &size));
            ASSERT_NE(ro, p);
            ASSERT_EQ(((uint64_t *)ro)[0], 4242 + (uint64_t)k);
        }
        _exit(0);
    }
    EXPECT_CHILD_END(pid, 0, 10000);
    ASSERT_EQ(((uint64_t *)exec_shm_ptr(n))[0], 4242);
    ASSERT_EQ(((uint64_t *)exec_shm_ptr(a))[0], 4243);
    ASSERT_TRUE(shm_exists(exec_shm_name(n))); /* the child's close removed nothing */
    ASSERT_OK(exec_shm_close(n));
    ASSERT_OK(exec_shm_close(a));
}

TEST(shm_fork_child_crash_holding_mapping)
{
    exec_shm_t *s = filled(0, 0);
    exec_shm_ref_t ref;
    ASSERT_OK(exec_shm_ref(s, &ref));
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            signal(SIGSEGV, SIG_DFL);
            exec_shm_close(s);
            void *p = NULL;
            size_t size = 0;
            ASSERT_OK(exec_shm_map(&ref, 0, &p, &size));
            ((uint64_t *)p)[round] = 777;
            raise(SIGSEGV);
            _exit(0);
        }
        EXPECT_CHILD_END(pid, SIGSEGV, 10000);
    }
    const uint64_t *v = exec_shm_ptr(s);
    ASSERT_EQ(v[0], 777);
    ASSERT_EQ(v[1], 777);
    ASSERT_EQ(v[2], 2);
    ASSERT_EQ(v[WORDS - 1], WORDS - 1);
    ASSERT_TRUE(shm_exists(exec_shm_name(s)));
    ASSERT_OK(exec_shm_close(s));
}

TEST(shm_trim_drops_unlinked)
{
    exec_shm_t *n = NULL, *a = NULL, *k = NULL;
    ASSERT_OK(exec_shm_create(&n, NULL, 3 * 4096, 0));
    ASSERT_OK(exec_shm_create(&a, NULL, 3 * 4096, EXEC_SHM_ANONYMOUS));
    ASSERT_OK(exec_shm_create(&k, NULL, 3 * 4096, 0));
    exec_shm_ref_t refs[3];
    ASSERT_OK(exec_shm_ref(n, &refs[0]));
    ASSERT_OK(exec_shm_ref(a, &refs[1]));
    ASSERT_OK(exec_shm_ref(k, &refs[2]));
    int to_child[2], to_parent[2];
    pid_t pid = fork_piped(to_parent, to_child);
    if (pid == 0) {
        exec_shm_close(n);
        exec_shm_close(a);
        exec_shm_close(k);
        void *p[3];
        size_t size;
        int maps0 = count_maps();
        for (int i = 0; i < 3; i++)
            ASSERT_OK(exec_shm_map(&refs[i], 0, &p[i], &size));
        ASSERT_EQ(count_maps(), maps0 + 3);
        ASSERT_EQ(exec__shmbuf_trim(true), 0); /* all three still there */
        write_pipe_byte(to_parent[1]);
        read_pipe_byte(to_child[0]); /* the parent removed n's name and closed a */
        ASSERT_EQ(exec__shmbuf_trim(true), 2);
        ASSERT_EQ(count_maps(), maps0 + 1);
        void *again = NULL;
        ASSERT_OK(exec_shm_map(&refs[2], 0, &again, &size));
        ASSERT_EQ(again, p[2]);
        ASSERT_ERR(exec_shm_map(&refs[0], 0, &again, &size), EXEC_ESYS);
        ASSERT_ERR(exec_shm_map(&refs[1], 0, &again, &size), EXEC_ESYS);
        _exit(0);
    }
    read_pipe_byte(to_parent[0]); /* fails at once (EOF) if the child failed */
    ASSERT_OK(exec_shm_unlink(n));
    ASSERT_OK(exec_shm_close(a));
    write_pipe_byte(to_child[1]);
    EXPECT_CHILD_END(pid, 0, 10000);
    close(to_child[1]);
    close(to_parent[0]);
    ASSERT_OK(exec_shm_close(n));
    ASSERT_OK(exec_shm_close(k));
}

TEST(shm_map_bad_refs)
{
    exec_shm_t *s = NULL, *a = NULL;
    ASSERT_OK(exec_shm_create(&s, NULL, 8192, 0));
    ASSERT_OK(exec_shm_create(&a, NULL, 8192, EXEC_SHM_ANONYMOUS));
    exec_shm_ref_t good, anon, r;
    ASSERT_OK(exec_shm_ref(s, &good));
    ASSERT_OK(exec_shm_ref(a, &anon));
    void *p = (void *)&p;
    size_t size = 12345;

    memset(&r, 0, sizeof r);
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL); /* all zero */
    r = good;
    r.id = 0;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = good;
    r.size = 0;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = good;
    r.reserved[4] = 1;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = good;
    memset(r.name, 'a', sizeof r.name); /* no terminating NUL */
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = good;
    r.name[3] = '/';
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = anon;
    r.owner_pid = 0;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    r = anon;
    r.owner_fd = -1;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_EINVAL);
    ASSERT_EQ(p, (void *)&p); /* out-parameters untouched on failure */
    ASSERT_EQ(size, 12345);

    /* Well formed, but nothing (or something else) behind it: EXEC_ESYS. Fresh ids, so that
     * the creator's own mappings do not answer. */
    r = good;
    r.id ^= 0x5555;
    tname(r.name, "nobody");
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_ESYS);
    r = good;
    r.id ^= 0x5555;
    r.size = 3 * 8192; /* bigger than the object */
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_ESYS);
    r = anon;
    r.id ^= 0x5555; /* the memfd's name says which buffer it is: not this one */
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_ESYS);
    r = anon;
    r.id ^= 0x5555;
    r.owner_fd = 0; /* not a memfd at all */
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_ESYS);
    pid_t dead = fork();
    ASSERT_GE(dead, 0);
    if (dead == 0)
        _exit(0);
    EXPECT_CHILD_END(dead, 0, 10000);
    r = anon;
    r.id ^= 0x5555;
    r.owner_pid = dead;
    ASSERT_ERR(exec_shm_map(&r, 0, &p, &size), EXEC_ESYS);
    ASSERT_EQ(p, (void *)&p);

    /* The genuine refs work (the anonymous one through /proc, read-only). */
    ASSERT_OK(exec_shm_map(&anon, EXEC_SHM_RDONLY, &p, &size));
    ASSERT_EQ(size, 8192);
    ASSERT_OK(exec_shm_close(s));
    ASSERT_OK(exec_shm_close(a));
}

/* ---------------------------------------------------------------------------------------- */
/* Cleanup and ownership                                                                     */
/* ---------------------------------------------------------------------------------------- */

TEST(shm_create_close_cycles)
{
    int fds = test_count_fds();
    int maps = count_maps();
    int names = test_count_shm("exec-");
    for (int i = 0; i < 1000; i++) {
        unsigned flags = i % 3 == 2 ? EXEC_SHM_ANONYMOUS : 0;
        exec_shm_t *s = NULL;
        char name[NAME_CAP];
        const char *nm = NULL;
        if (i % 3 == 1)
            nm = tname(name, "cycle");
        ASSERT_OK(exec_shm_create(&s, nm, 4096 * (size_t)(1 + i % 4), flags));
        exec_shm_ref_t ref;
        ASSERT_OK(exec_shm_ref(s, &ref));
        void *p = NULL, *ro = NULL;
        size_t size = 0;
        ASSERT_OK(exec_shm_map(&ref, 0, &p, &size));
        ASSERT_EQ(p, exec_shm_ptr(s));
        ASSERT_OK(exec_shm_map(&ref, EXEC_SHM_RDONLY, &ro, &size));
        ((char *)p)[0] = (char)i;
        ASSERT_EQ(((char *)ro)[0], (char)i);
        if (i % 5 == 0)
            ASSERT_OK(exec_shm_unlink(s));
        ASSERT_OK(exec_shm_close(s));
        if (i % 100 == 99) {
            ASSERT_EQ(test_count_fds(), fds);
            ASSERT_EQ(count_maps(), maps);
            ASSERT_EQ(test_count_shm("exec-"), names);
            ASSERT_EQ(children(NULL), 0);
        }
    }
}

/* How many fds of @pid link to something starting with @prefix. */
static int count_links(pid_t pid, const char *prefix)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[384], link[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len > 0) {
            link[len] = '\0';
            n += strncmp(link, prefix, strlen(prefix)) == 0;
        }
    }
    closedir(d);
    return n;
}

/* A child creates three named buffers, says so, and waits to be killed. With @grandkids, it
 * also forks two children first (one with fork(), one with _Fork() which runs no atfork
 * handler, so it keeps the guardian socket open) whose pids it writes to the pipe. */
static pid_t creator_child(const char *names[3], int fd, bool grandkids)
{
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid != 0)
        return pid;
    exec_shm_t *s[3];
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(exec_shm_create(&s[i], names[i], 4096, 0));
        memset(exec_shm_ptr(s[i]), i, 4096);
    }
    pid_t kids[2] = {0, 0};
    if (grandkids) {
        for (int i = 0; i < 2; i++) {
            kids[i] = i == 0 ? fork() : _Fork();
            ASSERT_GE(kids[i], 0);
            if (kids[i] == 0) {
                for (;;)
                    pause();
            }
        }
    }
    ASSERT_EQ(write(fd, kids, sizeof kids), (ssize_t)sizeof kids);
    for (;;)
        pause();
}

static void sigkill_test(bool grandkids)
{
    char n0[NAME_CAP], n1[NAME_CAP], n2[NAME_CAP];
    const char *names[3] = {tname(n0, "k0"), tname(n1, "k1"), tname(n2, "k2")};
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = creator_child(names, p[1], grandkids);
    close(p[1]);
    pid_t kids[2];
    ASSERT_EQ(read(p[0], kids, sizeof kids), (ssize_t)sizeof kids);
    close(p[0]);
    for (int i = 0; i < 3; i++)
        ASSERT_TRUE(shm_exists(names[i]));
    if (grandkids) /* the case that matters: the _Fork() child holds the guardian socket */
        ASSERT_GE(count_links(kids[1], "socket:"), 1);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_CHILD_END(pid, SIGKILL, 10000);
    long ms = wait_gone(names, 3, 1000);
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGKILL); /* orphans: the runner (a subreaper) reaps them */
    if (ms < 0)
        TEST_FAIL("names still in /dev/shm 1 s after the creator was killed");
    fprintf(stderr, "%s: names removed %ld ms after SIGKILL\n", __func__, ms);
}

TEST(shm_sigkill_creator_cleans)
{
    sigkill_test(false);
}

TEST(shm_sigkill_creator_with_forked_children)
{
    sigkill_test(true);
}

TEST(shm_exit_and_exec_clean_persistent_stays)
{
    char n0[NAME_CAP], n1[NAME_CAP], pers[NAME_CAP];
    const char *names[2] = {tname(n0, "exit"), tname(n1, "exec")};
    tname(pers, "persist");
    for (int how = 0; how < 2; how++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            exec_shm_t *s = NULL, *keep = NULL;
            ASSERT_OK(exec_shm_create(&s, names[how], 4096, 0));
            if (how == 0) {
                ASSERT_OK(exec_shm_create(&keep, pers, 4096, EXEC_SHM_PERSISTENT));
                memcpy(exec_shm_ptr(keep), "kept", 5);
                _exit(0); /* no close: the end of the process alone must clean up */
            }
            execl("/bin/true", "true", (char *)NULL); /* the image goes, the pid stays */
            _exit(127);
        }
        EXPECT_CHILD_END(pid, 0, 10000);
        if (wait_gone(&names[how], 1, 1000) < 0)
            TEST_FAIL("%s still in /dev/shm 1 s after its creator %s", names[how],
                      how ? "called execve" : "exited");
    }
    ASSERT_TRUE(shm_exists(pers));
    exec_shm_t *a = NULL;
    ASSERT_OK(exec_shm_attach(&a, pers, EXEC_SHM_RDONLY));
    ASSERT_STR_EQ((char *)exec_shm_ptr(a), "kept");
    ASSERT_OK(exec_shm_close(a));
    ASSERT_TRUE(shm_exists(pers));
    ASSERT_EQ(shm_unlink(pers), 0);
}

TEST(shm_attacher_never_unlinks)
{
    char name[NAME_CAP];
    tname(name, "owner");
    exec_shm_t *s = NULL;
    ASSERT_OK(exec_shm_create(&s, name, 4096, 0));
    for (int how = 0; how < 4; how++) {
        int p[2];
        pid_t pid = fork_piped(p, NULL);
        if (pid == 0) {
            exec_shm_t *a = NULL;
            switch (how) {
            case 0: /* attach, write, close, exit */
                ASSERT_OK(exec_shm_attach(&a, name, 0));
                memcpy(exec_shm_ptr(a), "child", 6);
                ASSERT_OK(exec_shm_close(a));
                write_pipe_byte(p[1]);
                _exit(0);
            case 1: /* attach and get killed */
                ASSERT_OK(exec_shm_attach(&a, name, 0));
                write_pipe_byte(p[1]);
                for (;;)
                    pause();
            case 2: /* the inherited handle is not ours to unlink */
                ASSERT_ERR(exec_shm_unlink(s), EXEC_EBUSY);
                ASSERT_OK(exec_shm_close(s));
                write_pipe_byte(p[1]);
                _exit(0);
            default: /* exit with the inherited handle open */
                write_pipe_byte(p[1]);
                _exit(0);
            }
        }
        read_pipe_byte(p[0]);
        close(p[0]);
        if (how == 1) {
            kill(pid, SIGKILL);
            EXPECT_CHILD_END(pid, SIGKILL, 10000);
        } else {
            EXPECT_CHILD_END(pid, 0, 10000);
        }
        test_sleep_ms(50); /* time for anything that would wrongly remove it */
        if (!shm_exists(name))
            TEST_FAIL("case %d removed the creator's buffer", how);
    }
    ASSERT_STR_EQ((char *)exec_shm_ptr(s), "child");
    exec_shm_t *a = NULL;
    ASSERT_OK(exec_shm_attach(&a, name, 0));
    ASSERT_OK(exec_shm_close(s));
    ASSERT_FALSE(shm_exists(name));
    ASSERT_STR_EQ((char *)exec_shm_ptr(a), "child"); /* mappings outlive the name */
    ASSERT_OK(exec_shm_close(a));
}

/* ---------------------------------------------------------------------------------------- */
/* The guardian                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int count_in(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Open fds of @pid below 1024 (valgrind keeps its own near the hard limit, out of sight). */
static int count_low_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' && atoi(e->d_name) < 1024;
    closedir(d);
    return n;
}

/* The signal mask of ignored signals of @pid, from /proc/<pid>/status. */
static unsigned long long sig_ignored(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    ASSERT_NOT_NULL(f);
    unsigned long long mask = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SigIgn: %llx", &mask) == 1)
            break;
    fclose(f);
    return mask;
}

TEST(shm_guardian_lifecycle)
{
    char np[NAME_CAP], n1[NAME_CAP], n2[NAME_CAP];
    tname(np, "gp");
    tname(n1, "g1");
    tname(n2, "g2");
    int fds = test_count_fds();
    exec_shm_t *p = NULL, *a = NULL, *s1 = NULL, *s2 = NULL;
    /* Nothing to guard: no guardian. */
    ASSERT_OK(exec_shm_create(&p, np, 4096, EXEC_SHM_PERSISTENT));
    ASSERT_OK(exec_shm_create(&a, NULL, 1 << 20, EXEC_SHM_ANONYMOUS));
    ASSERT_EQ(children(NULL), 0);
    /* The first guarded name starts one (a child of ours, one fd: its socket). */
    ASSERT_OK(exec_shm_create(&s1, n1, 1 << 20, 0));
    pid_t g = 0;
    ASSERT_EQ(children(&g), 1);
    ASSERT_EQ(test_count_fds(), fds + 2); /* the memfd of a, the guardian socket */
    ASSERT_OK(exec_shm_create(&s2, n2, 4096, 0));
    ASSERT_EQ(children(NULL), 1); /* the same one */

    /* It holds nothing of ours: fds 0 (socket) and 1 (our pidfd) only, no shared mapping
     * (it drops them right after it starts), and it ignores terminal signals. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)g);
    uint64_t t0 = test_now_ms();
    while (count_shared_maps(path) > 0 && test_now_ms() - t0 < 2000)
        test_sleep_ms(5);
    ASSERT_EQ(count_shared_maps(path), 0);
    ASSERT_EQ(count_links(g, "socket:"), 1); /* the others were closed before that */
    ASSERT_LE(count_low_fds(g), 2);
    unsigned long long ign = sig_ignored(g);
    ASSERT_TRUE(ign & (1ull << (SIGINT - 1)));
    ASSERT_TRUE(ign & (1ull << (SIGTERM - 1)));
    ASSERT_TRUE(ign & (1ull << (SIGHUP - 1)));
    ASSERT_EQ(kill(g, SIGINT), 0);
    ASSERT_EQ(kill(g, SIGTERM), 0);
    ASSERT_EQ(kill(g, SIGHUP), 0);
    test_sleep_ms(50);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)g);
    ASSERT_EQ(count_in(path, ") Z "), 0); /* alive, not a zombie */

    /* The last guarded name gone (close or unlink): the guardian is stopped and reaped. */
    ASSERT_OK(exec_shm_close(s1));
    ASSERT_EQ(children(NULL), 1);
    ASSERT_FALSE(shm_exists(n1));
    ASSERT_OK(exec_shm_unlink(s2));
    ASSERT_EQ(children(NULL), 0);
    ASSERT_EQ(test_count_fds(), fds + 1);
    ASSERT_OK(exec_shm_close(s2));
    ASSERT_OK(exec_shm_close(a));
    ASSERT_OK(exec_shm_close(p));
    ASSERT_TRUE(shm_exists(np)); /* persistent */
    ASSERT_EQ(shm_unlink(np), 0);
    ASSERT_EQ(test_count_fds(), fds);
}

TEST(shm_guardian_replaced_after_kill)
{
    char n0[NAME_CAP], n1[NAME_CAP];
    const char *names[2] = {tname(n0, "r0"), tname(n1, "r1")};
    int p[2];
    pid_t pid = fork_piped(p, NULL);
    if (pid == 0) {
        exec_shm_t *s0 = NULL, *s1 = NULL;
        ASSERT_OK(exec_shm_create(&s0, names[0], 4096, 0));
        pid_t g = 0;
        ASSERT_EQ(children(&g), 1);
        ASSERT_EQ(kill(g, SIGKILL), 0);
        /* Wait until it is a zombie (its socket closed); the library reaps it. */
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)g);
        uint64_t t0 = test_now_ms();
        while (count_in(path, ") Z ") != 1) {
            ASSERT_LT(test_now_ms() - t0, 5000);
            test_sleep_ms(1);
        }
        /* The next guarded create notices, and a new guardian learns both names. */
        ASSERT_OK(exec_shm_create(&s1, names[1], 4096, 0));
        pid_t g2 = 0;
        ASSERT_EQ(children(&g2), 1);
        ASSERT_NE(g2, g);
        write_pipe_byte(p[1]);
        for (;;)
            pause();
    }
    read_pipe_byte(p[0]);
    close(p[0]);
    ASSERT_TRUE(shm_exists(names[0]));
    ASSERT_TRUE(shm_exists(names[1]));
    kill(pid, SIGKILL);
    EXPECT_CHILD_END(pid, SIGKILL, 10000);
    if (wait_gone(names, 2, 1000) < 0)
        TEST_FAIL("names left 1 s after the creator died (replaced guardian)");
}

TEST(shm_guardian_spares_recreated_names)
{
    /* The guardian removes a name only while it is still the creator's object: a name the
     * creator removed itself, or one replaced behind its back, belongs to someone else. */
    char na[NAME_CAP], nb[NAME_CAP], nc[NAME_CAP];
    const char *names[3] = {tname(na, "sa"), tname(nb, "sb"), tname(nc, "sc")};
    int p[2], q[2];
    pid_t pid = fork_piped(p, q);
    if (pid == 0) {
        exec_shm_t *s[3];
        for (int i = 0; i < 3; i++)
            ASSERT_OK(exec_shm_create(&s[i], names[i], 4096, 0));
        ASSERT_OK(exec_shm_unlink(s[0])); /* a: taken back from the guardian */
        write_pipe_byte(p[1]);
        read_pipe_byte(q[0]);
        for (;;)
            pause();
    }
    read_pipe_byte(p[0]);
    /* A stranger makes a new a, and replaces b. */
    int fa = shm_open(names[0], O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fa, 0);
    ASSERT_EQ(shm_unlink(names[1]), 0);
    int fb = shm_open(names[1], O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fb, 0);
    close(fa);
    close(fb);
    write_pipe_byte(q[1]);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_CHILD_END(pid, SIGKILL, 10000);
    if (wait_gone(&names[2], 1, 1000) < 0) /* c: still the creator's, removed */
        TEST_FAIL("%s left after its creator died", names[2]);
    test_sleep_ms(100); /* the guardian has handled every name by now */
    ASSERT_TRUE(shm_exists(names[0]));
    ASSERT_TRUE(shm_exists(names[1]));
    ASSERT_EQ(shm_unlink(names[0]), 0);
    ASSERT_EQ(shm_unlink(names[1]), 0);
    close(p[0]);
    close(q[1]);
}

/* ---------------------------------------------------------------------------------------- */
/* Threads and fork                                                                          */
/* ---------------------------------------------------------------------------------------- */

static atomic_bool churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        exec_shm_t *n = NULL, *a = NULL;
        ASSERT_OK(exec_shm_create(&n, NULL, 4096, 0));
        ASSERT_OK(exec_shm_create(&a, NULL, 4096, EXEC_SHM_ANONYMOUS));
        exec_shm_ref_t ref;
        void *p;
        size_t size;
        ASSERT_OK(exec_shm_ref(n, &ref));
        ASSERT_OK(exec_shm_map(&ref, EXEC_SHM_RDONLY, &p, &size));
        ASSERT_OK(exec_shm_ref(a, &ref));
        ASSERT_OK(exec_shm_map(&ref, 0, &p, &size));
        ASSERT_OK(exec_shm_close(n));
        ASSERT_OK(exec_shm_close(a));
    }
    return NULL;
}

/* AddressSanitizer's allocator (GCC 12) is not fork-safe: a child forked while another
 * thread allocates may inherit its lock held and hang in calloc() (seen: the child stuck in
 * SizeClassAllocator64::GetFromAllocator under exec_shm_create). Under it the children of
 * shm_threads_and_fork skip the part that allocates; the parent side still runs. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

TEST(shm_threads_and_fork)
{
    /* Threads create, map and close while the main thread forks: no child may inherit a
     * held lock (it would hang) and every child can use the helper at once. */
    int fds = test_count_fds();
    atomic_store(&churn_stop, false);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (int i = 0; i < 40; i++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            if (UNDER_ASAN)
                _exit(0);
            exec_shm_t *n = NULL;
            ASSERT_OK(exec_shm_create(&n, NULL, 4096, 0));
            exec_shm_ref_t ref;
            void *p;
            size_t size;
            ASSERT_OK(exec_shm_ref(n, &ref));
            ASSERT_OK(exec_shm_map(&ref, 0, &p, &size));
            ASSERT_OK(exec_shm_close(n));
            ASSERT_EQ(children(NULL), 0); /* its own guardian came and went */
            _exit(0);
        }
        EXPECT_CHILD_END(pid, 0, 10000);
    }
    atomic_store(&churn_stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(children(NULL), 0);
    ASSERT_EQ(test_count_fds(), fds);
}
