/* SPDX-License-Identifier: MIT */
/*
 * core/budget.c - the default worker count: exec_cpu_budget() and exec__online_cpus().
 *
 * Three limits bound how many CPUs this process can really use:
 *   - the online CPUs of the machine (sysconf);
 *   - the CPU affinity mask (taskset, cpusets, a container runtime's --cpuset-cpus);
 *   - the cgroup CPU bandwidth quota (a container's --cpus): v2 cpu.max, or the v1 pair
 *     cpu.cfs_quota_us / cpu.cfs_period_us. A quota of 1.5 CPUs gives 2 workers.
 * The default is the smallest of them; EXEC_WORKERS overrides all three.
 *
 * Every file is read with open/read into bounded buffers, with O_CLOEXEC so that a fork+exec
 * in another thread never inherits the descriptor. Nothing here keeps state between calls,
 * so a change of affinity or quota is seen by the next call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* Where the cgroup hierarchies are mounted (v2 unified, and the v1 per-controller mounts). */
#define CGROUP_ROOT "/sys/fs/cgroup"
/* Upper bound of /proc/self/cgroup we are willing to read; real files are a few hundred
 * bytes (v2: one line; v1: about a dozen). */
#define CGROUP_FILE_MAX ((size_t)1 << 20)
/* Largest affinity set we try, in CPUs (the kernel's NR_CPUS tops out at 8192 today). */
#define AFFINITY_CPUS_MAX (1 << 16)

/* ---------------------------------------------------------------------------------------- */
/* Small parsers                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Parse exactly @n bytes at @s as an unsigned decimal number: digits only, at least one, no
 * sign, no space, no overflow. Returns false for anything else. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* CPUs granted by @quota per @period, rounded up and clamped to [1, INT_MAX]; 0 (no limit)
 * when @period is 0, which the kernel never writes but a broken file might hold. A quota of
 * 0 (also never written by the kernel) still gets one CPU: a worker count cannot be 0. */
static int quota_cpus(uint64_t quota, uint64_t period)
{
    if (period == 0)
        return 0;
    uint64_t n = quota / period + (quota % period != 0);
    if (n < 1)
        return 1;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* Length of @s without one trailing newline. */
static size_t chomp(const char *s, size_t n)
{
    return (n > 0 && s[n - 1] == '\n') ? n - 1 : n;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                     */
/* ---------------------------------------------------------------------------------------- */

enum { READ_MISSING = -2, READ_BAD = -1 };

/*
 * Read the whole of a small file into @buf (capacity @cap, NUL-terminated). Returns the
 * number of bytes, READ_MISSING if the file cannot be opened, READ_BAD on a read error or if
 * the file does not fit (a cgroup file bigger than our buffer is not one we understand).
 */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return READ_MISSING;
    size_t len = 0;
    ssize_t ret = READ_BAD;
    for (;;) {
        if (len == cap - 1)
            goto out; /* full: too big (or exactly cap-1 bytes; both are not ours) */
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    ret = (ssize_t)len;
out:
    close(fd);
    return ret;
}

/*
 * Read a whole file of unknown size (up to CGROUP_FILE_MAX) into a new heap buffer,
 * NUL-terminated. Returns the buffer (the caller frees it) and its length in *len, or NULL.
 * /proc files report size 0 to stat(), so the buffer grows by doubling.
 */
static char *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    size_t cap = 1024, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        goto fail;
    for (;;) {
        if (n == cap - 1) {
            if (cap >= CGROUP_FILE_MAX)
                goto fail;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* cgroup quota                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Which files quota_in_dir() looks at. */
enum { CG_V2 = 1, CG_V1 = 2 };

/*
 * The quota in one cgroup directory. @path holds the directory in its first @dirlen bytes
 * and has room for PATH_MAX bytes; the file names are written after the directory (the
 * directory part is left intact). With CG_V2 in @which, cgroup v2's cpu.max is read:
 * "max PERIOD" (no limit) or "QUOTA PERIOD"; if it can be opened, it alone decides. Else,
 * with CG_V1, the v1 pair is read: cpu.cfs_quota_us is -1 for no limit.
 * Returns CPUs >= 1, or 0 for no (readable) quota.
 */
static int quota_in_dir(char *path, size_t dirlen, int which)
{
    char buf[64];
    size_t room = PATH_MAX - dirlen;
    ssize_t n;

    if (which & CG_V2) {
        if ((size_t)snprintf(path + dirlen, room, "/cpu.max") >= room)
            return 0;
        n = read_small(path, buf, sizeof buf);
    } else {
        n = READ_MISSING;
    }
    if (n != READ_MISSING) {
        if (n < 0)
            return 0;
        size_t len = chomp(buf, (size_t)n);
        const char *sp = memchr(buf, ' ', len);
        if (!sp)
            return 0;
        size_t qlen = (size_t)(sp - buf);
        const char *per = sp + 1;
        size_t plen = len - qlen - 1;
        uint64_t quota, period;
        if (!parse_u64(per, plen, &period))
            return 0;
        if (qlen == 3 && memcmp(buf, "max", 3) == 0)
            return 0;
        if (!parse_u64(buf, qlen, &quota))
            return 0;
        return quota_cpus(quota, period);
    }

    if (!(which & CG_V1))
        return 0;
    if ((size_t)snprintf(path + dirlen, room, "/cpu.cfs_quota_us") >= room)
        return 0;
    n = read_small(path, buf, sizeof buf);
    if (n < 0)
        return 0;
    size_t len = chomp(buf, (size_t)n);
    uint64_t quota, period;
    /* "-1" is the kernel's "no limit"; any other negative value or text is no quota either,
     * and parse_u64() rejects them all. */
    if (!parse_u64(buf, len, &quota))
        return 0;

    if ((size_t)snprintf(path + dirlen, room, "/cpu.cfs_period_us") >= room)
        return 0;
    n = read_small(path, buf, sizeof buf);
    if (n < 0)
        return 0;
    if (!parse_u64(buf, chomp(buf, (size_t)n), &period))
        return 0;
    return quota_cpus(quota, period);
}

/* The smaller of two quotas, 0 meaning "none". */
static int min_quota(int a, int b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Whether the @n bytes at @s, a cgroup path, contain a ".." component. The kernel writes
 * one when our cgroup lies outside the root of our cgroup namespace: such a cgroup is not
 * under the mount point, and joining the path onto it would read some unrelated file. */
static bool has_dotdot(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == '.' && s[i + 1] == '.' && (i == 0 || s[i - 1] == '/') &&
            (i + 2 == n || s[i + 2] == '/'))
            return true;
    }
    return false;
}

/*
 * The smallest quota of the cgroup @cg (@cglen bytes, from /proc/self/cgroup) and of every
 * ancestor of it, under the hierarchy mounted at CGROUP_ROOT/@mount (@mount "" for v2),
 * reading the files of @which.
 *
 * Walking up matters twice: a parent's quota bounds its children, and inside a container
 * without a cgroup namespace /proc/self/cgroup names the host's path (e.g. /docker/<id>)
 * while the container's own cgroup is mounted at the root, which the walk reaches last.
 */
static int quota_walk(const char *mount, const char *cg, size_t cglen, int which)
{
    char path[PATH_MAX];
    if (cglen == 0 || cg[0] != '/' || has_dotdot(cg, cglen))
        return 0;
    int n = snprintf(path, sizeof path, "%s%s%s%.*s", CGROUP_ROOT, *mount ? "/" : "", mount,
                     (int)cglen, cg);
    if (n < 0 || (size_t)n >= sizeof path)
        return 0;
    size_t root = strlen(CGROUP_ROOT) + (*mount ? 1 + strlen(mount) : 0);
    size_t dirlen = (size_t)n;
    while (dirlen > root && path[dirlen - 1] == '/')
        dirlen--;

    int best = 0;
    for (;;) {
        best = min_quota(best, quota_in_dir(path, dirlen, which));
        if (dirlen <= root)
            break;
        /* Up one level: cut at the last '/' (the root part has been left intact). */
        while (dirlen > root && path[dirlen - 1] != '/')
            dirlen--;
        while (dirlen > root && path[dirlen - 1] == '/')
            dirlen--;
    }
    return best;
}

/* Whether the comma-separated controller list @s (@n bytes) names the "cpu" controller. */
static bool has_cpu_controller(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        if (j - i == 3 && memcmp(s + i, "cpu", 3) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/*
 * This process's quota from /proc/self/cgroup. Each line is "ID:CONTROLLERS:PATH" (the
 * path may itself contain ':'). "0::PATH" is the v2 unified hierarchy; a v1 line whose
 * controllers include "cpu" names the cpu hierarchy, mounted as cpu,cpuacct or cpu (or
 * under its own controller list, e.g. cpuacct,cpu). On hybrid systems both kinds appear;
 * the v2 files are then simply missing, and the smallest quota found counts.
 */
static int quota_self(void)
{
    size_t len;
    char *text = read_all("/proc/self/cgroup", &len);
    if (!text)
        return 0;

    int best = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *c1 = memchr(p, ':', (size_t)(eol - p));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2) {
            const char *ctl = c1 + 1, *cg = c2 + 1;
            size_t ctllen = (size_t)(c2 - ctl), cglen = (size_t)(eol - cg);
            if (c1 - p == 1 && p[0] == '0' && ctllen == 0) {
                best = min_quota(best, quota_walk("", cg, cglen, CG_V2));
            } else if (has_cpu_controller(ctl, ctllen)) {
                char own[64];
                best = min_quota(best, quota_walk("cpu,cpuacct", cg, cglen, CG_V1));
                best = min_quota(best, quota_walk("cpu", cg, cglen, CG_V1));
                /* The list as the kernel wrote it, if it is another name (and a sane one). */
                if (ctllen < sizeof own && !memchr(ctl, '/', ctllen)) {
                    memcpy(own, ctl, ctllen);
                    own[ctllen] = '\0';
                    if (strcmp(own, "cpu,cpuacct") != 0 && strcmp(own, "cpu") != 0)
                        best = min_quota(best, quota_walk(own, cg, cglen, CG_V1));
                }
            }
        }
        p = eol + 1;
    }
    free(text);
    return best;
}

/* The quota of @dir alone (exec_cpu_budget() with a cgroup_dir). */
static int quota_dir(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return 0;
    memcpy(path, dir, n + 1);
    return quota_in_dir(path, n, CG_V1 | CG_V2);
}

/* ---------------------------------------------------------------------------------------- */
/* CPUs                                                                                      */
/* ---------------------------------------------------------------------------------------- */

int exec__online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/*
 * CPUs in this thread's affinity mask, or 0 if unknown. The fixed cpu_set_t holds 1024
 * CPUs and sched_getaffinity() fails with EINVAL when the kernel's mask is larger, so the
 * set is allocated and doubled until it fits.
 */
static int affinity_cpus(void)
{
    for (int ncpu = 1024; ncpu <= AFFINITY_CPUS_MAX; ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set)
            return 0;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(size, set);
        int rc = sched_getaffinity(0, size, set);
        int err = errno;
        int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
        CPU_FREE(set);
        if (rc == 0)
            return count;
        if (err != EINVAL)
            return 0;
    }
    return 0;
}

/*
 * EXEC_WORKERS as a worker count, or 0 if unset or not exactly a decimal integer in
 * 1..EXEC_WORKERS_MAX. strtol alone would accept leading space, a sign and "0x"-free junk
 * after the digits, so the first character must be a digit and the end must be the end.
 *
 * getenv() is not thread-safe against setenv()/putenv()/unsetenv() in another thread (the
 * environment may be reallocated under us). Like every libc user of the environment we
 * assume the program does not modify it while executors are being created.
 */
static int env_workers(void)
{
    const char *s = getenv("EXEC_WORKERS");
    if (!s || s[0] < '0' || s[0] > '9')
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > EXEC_WORKERS_MAX)
        return 0;
    return (int)v;
}

int exec_cpu_budget(const char *cgroup_dir, exec_cpu_budget_t *b)
{
    if (!b)
        return EXEC_EINVAL;
    memset(b, 0, sizeof *b);

    int saved_errno = errno; /* we only probe; the caller's errno is left as it was */
    b->online = exec__online_cpus();
    b->affinity = affinity_cpus();
    if (b->affinity < 1)
        b->affinity = b->online;
    b->cgroup = cgroup_dir ? quota_dir(cgroup_dir) : quota_self();
    b->env = env_workers();
    errno = saved_errno;

    if (b->env > 0) {
        b->workers = b->env;
        b->limit = EXEC_LIMIT_ENV;
        return EXEC_OK;
    }
    /* The smallest wins; on a tie the most specific limit is named (cgroup, then affinity,
     * then online), which is why each later test uses <=. */
    b->workers = b->online;
    b->limit = EXEC_LIMIT_ONLINE;
    if (b->affinity <= b->workers) {
        b->workers = b->affinity;
        b->limit = EXEC_LIMIT_AFFINITY;
    }
    if (b->cgroup > 0 && b->cgroup <= b->workers) {
        b->workers = b->cgroup;
        b->limit = EXEC_LIMIT_CGROUP;
    }
    /* A valid config holds at most EXEC_WORKERS_MAX workers; bigger machines get that many. */
    if (b->workers > EXEC_WORKERS_MAX)
        b->workers = EXEC_WORKERS_MAX;
    return EXEC_OK;
}
