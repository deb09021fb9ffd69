/* SPDX-License-Identifier: MIT */
/*
 * test_budget.c - sizing: exec_cpu_budget() reads the cgroup quota (v2 cpu.max, v1 cfs
 * quota/period) from a fake cgroup directory, honours and validates EXEC_WORKERS, sees the
 * affinity mask, takes the smallest limit and names it; and an executor made with
 * workers = 0 runs exactly budget.workers workers.
 *
 * Every test but the last makes no executor, so they run once (THREADS_ONLY). Each test
 * runs in its own child, so setenv()/unsetenv() and sched_setaffinity() here cannot leak
 * into other tests.
 */
#include "harness.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The test's temporary directory: made once per test (each test is its own child, so the
 * static starts out NULL in every test) and removed by the runner when the test ends. */
static const char *base_dir(void)
{
    static const char *base;
    if (!base)
        base = test_tmpdir();
    return base;
}

/* A new empty directory inside the test's temporary directory. */
static const char *new_dir(void)
{
    static char path[PATH_MAX];
    static unsigned seq;
    int n = snprintf(path, sizeof path, "%s/cg%u", base_dir(), seq++);
    ASSERT_TRUE(n > 0 && (size_t)n < sizeof path);
    if (mkdir(path, 0700) != 0)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
    return path;
}

/* Write @content (exactly, no newline added) to @dir/@name. */
static void put_file(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    ASSERT_TRUE(n > 0 && (size_t)n < sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        TEST_FAIL("open %s: %s", path, strerror(errno));
    size_t len = strlen(content);
    ASSERT_EQ(write(fd, content, len), (ssize_t)len);
    ASSERT_OK(close(fd));
}

/* The budget with a fake v2 cgroup whose cpu.max holds @cpu_max. */
static exec_cpu_budget_t budget_v2(const char *cpu_max)
{
    const char *dir = new_dir();
    put_file(dir, "cpu.max", cpu_max);
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(dir, &b));
    return b;
}

/* The budget with a fake v1 cgroup; a NULL content leaves that file out. */
static exec_cpu_budget_t budget_v1(const char *quota, const char *period)
{
    const char *dir = new_dir();
    if (quota)
        put_file(dir, "cpu.cfs_quota_us", quota);
    if (period)
        put_file(dir, "cpu.cfs_period_us", period);
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(dir, &b));
    return b;
}

/*
 * The invariants of any budget computed without EXEC_WORKERS: every field in range, workers
 * the smallest limit, and limit naming it, ties going to the most specific limit (cgroup,
 * then affinity, then online). Written independently of budget.c's own order of tests.
 */
static void check_min_rule(const exec_cpu_budget_t *b)
{
    ASSERT_EQ(b->env, 0);
    ASSERT_GE(b->online, 1);
    ASSERT_GE(b->affinity, 1);
    ASSERT_GE(b->cgroup, 0);
    int want = b->online;
    if (b->affinity < want)
        want = b->affinity;
    if (b->cgroup > 0 && b->cgroup < want)
        want = b->cgroup;
    if (want > EXEC_WORKERS_MAX)
        want = EXEC_WORKERS_MAX;
    ASSERT_EQ(b->workers, want);

    exec_limit_t lim;
    if (b->cgroup > 0 && b->cgroup <= b->affinity && b->cgroup <= b->online)
        lim = EXEC_LIMIT_CGROUP;
    else if (b->affinity <= b->online)
        lim = EXEC_LIMIT_AFFINITY;
    else
        lim = EXEC_LIMIT_ONLINE;
    ASSERT_EQ(b->limit, lim);
    for (size_t i = 0; i < sizeof b->reserved / sizeof b->reserved[0]; i++)
        ASSERT_EQ(b->reserved[i], 0);
}

/* CPUs in this thread's affinity mask, counted here independently of the library. */
static int my_affinity(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        TEST_FAIL("sched_getaffinity: %s", strerror(errno));
    return CPU_COUNT(&set);
}

/* ---------------------------------------------------------------------------------------- */
/* Arguments and the struct                                                                  */
/* ---------------------------------------------------------------------------------------- */

TEST(budget_null_out)
{
    ASSERT_ERR(exec_cpu_budget(NULL, NULL), EXEC_EINVAL);
    ASSERT_ERR(exec_cpu_budget(new_dir(), NULL), EXEC_EINVAL);
}

/* The whole struct is written, reserved included, and the defaults obey the min rule. */
TEST(budget_fills_struct)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    exec_cpu_budget_t b;
    memset(&b, 0xa5, sizeof b);
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    check_min_rule(&b);
    ASSERT_EQ(b.online, sysconf(_SC_NPROCESSORS_ONLN) < 1 ? 1 : sysconf(_SC_NPROCESSORS_ONLN));
    ASSERT_EQ(b.affinity, my_affinity());

    /* A fake directory with no cgroup files at all: no quota. */
    memset(&b, 0xa5, sizeof b);
    ASSERT_OK(exec_cpu_budget(new_dir(), &b));
    ASSERT_EQ(b.cgroup, 0);
    check_min_rule(&b);
}

/* A directory that does not exist, or an empty path, is "no quota", not an error. */
TEST(budget_missing_dir)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    exec_cpu_budget_t b;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/does-not-exist", base_dir());
    ASSERT_OK(exec_cpu_budget(path, &b));
    ASSERT_EQ(b.cgroup, 0);
    check_min_rule(&b);
    ASSERT_OK(exec_cpu_budget("", &b));
    ASSERT_EQ(b.cgroup, 0);
    check_min_rule(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* cgroup v2: cpu.max                                                                        */
/* ---------------------------------------------------------------------------------------- */

TEST(budget_v2_quota)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    ASSERT_EQ(budget_v2("max 100000\n").cgroup, 0);
    ASSERT_EQ(budget_v2("150000 100000\n").cgroup, 2); /* 1.5 CPUs round up */
    ASSERT_EQ(budget_v2("50000 100000\n").cgroup, 1);  /* half a CPU is still one */
    ASSERT_EQ(budget_v2("200000 100000\n").cgroup, 2);
    ASSERT_EQ(budget_v2("200001 100000\n").cgroup, 3);
    ASSERT_EQ(budget_v2("1000 100000\n").cgroup, 1);   /* the kernel's smallest quota */
    ASSERT_EQ(budget_v2("300000 100000").cgroup, 3);   /* no newline is fine */
    ASSERT_EQ(budget_v2("700000 1000000\n").cgroup, 1);
    /* A quota of 2^64-1 CPUs is clamped, not wrapped. */
    ASSERT_EQ(budget_v2("18446744073709551615 1\n").cgroup, INT_MAX);
}

/* Anything that is not "max P" or "Q P" with decimal Q and P means no quota. */
TEST(budget_v2_garbage)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    static const char *const bad[] = {
        "abc",
        "",
        "\n",
        "150000",              /* no period */
        "max",                 /* no period */
        "150000 0\n",          /* period 0: no division by zero */
        "max 0\n",
        "150000  100000\n",    /* two spaces */
        " 150000 100000\n",
        "150000 100000 5\n",
        "150000 100000\n\n",
        "-150000 100000\n",
        "+150000 100000\n",
        "150000 -100000\n",
        "150000 +100000\n",
        "0x30000 100000\n",
        "150000 100000x\n",
        "150000\t100000\n",
        "99999999999999999999 100000\n", /* overflows uint64 */
        "150000 99999999999999999999\n",
        "MAX 100000\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        exec_cpu_budget_t b = budget_v2(bad[i]);
        if (b.cgroup != 0)
            TEST_FAIL("cpu.max \"%s\": cgroup %d, want 0", bad[i], b.cgroup);
        check_min_rule(&b);
    }
}

/* cpu.max present decides on its own, even when v1 files sit next to it. */
TEST(budget_v2_wins_over_v1)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    const char *dir = new_dir();
    put_file(dir, "cpu.max", "max 100000\n");
    put_file(dir, "cpu.cfs_quota_us", "100000\n");
    put_file(dir, "cpu.cfs_period_us", "100000\n");
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(dir, &b));
    ASSERT_EQ(b.cgroup, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* cgroup v1: cpu.cfs_quota_us and cpu.cfs_period_us                                         */
/* ---------------------------------------------------------------------------------------- */

TEST(budget_v1_quota)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    ASSERT_EQ(budget_v1("-1\n", "100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("250000\n", "100000\n").cgroup, 3);
    ASSERT_EQ(budget_v1("100000\n", "100000\n").cgroup, 1);
    ASSERT_EQ(budget_v1("50000", "100000").cgroup, 1);
    ASSERT_EQ(budget_v1("400000\n", "100000\n").cgroup, 4);
}

TEST(budget_v1_garbage)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    ASSERT_EQ(budget_v1("250000\n", "0\n").cgroup, 0); /* no division by zero */
    ASSERT_EQ(budget_v1("250000\n", NULL).cgroup, 0);  /* no period file */
    ASSERT_EQ(budget_v1(NULL, "100000\n").cgroup, 0);  /* no quota file */
    ASSERT_EQ(budget_v1("", "100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("abc\n", "100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("-5\n", "100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("250000\n", "").cgroup, 0);
    ASSERT_EQ(budget_v1("250000\n", "x100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("250000 \n", "100000\n").cgroup, 0);
    ASSERT_EQ(budget_v1("99999999999999999999\n", "100000\n").cgroup, 0);
    exec_cpu_budget_t b = budget_v1("250000\n", "0\n");
    check_min_rule(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* The smallest limit wins, and is named                                                     */
/* ---------------------------------------------------------------------------------------- */

TEST(budget_cgroup_limits_workers)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    /* A quota of one CPU: one worker, and the cgroup is the reason (on a one-CPU machine
     * it ties with affinity and online; the most specific limit is named). */
    exec_cpu_budget_t b = budget_v2("100000 100000\n");
    ASSERT_EQ(b.cgroup, 1);
    ASSERT_EQ(b.workers, 1);
    ASSERT_EQ(b.limit, EXEC_LIMIT_CGROUP);
    check_min_rule(&b);

    b = budget_v1("80000\n", "100000\n");
    ASSERT_EQ(b.workers, 1);
    ASSERT_EQ(b.limit, EXEC_LIMIT_CGROUP);

    /* A quota equal to the affinity set: a tie, named CGROUP. */
    char text[64];
    int aff = my_affinity();
    snprintf(text, sizeof text, "%d00000 100000\n", aff);
    b = budget_v2(text);
    ASSERT_EQ(b.cgroup, aff);
    ASSERT_EQ(b.workers, aff < b.online ? aff : b.online);
    ASSERT_EQ(b.limit, EXEC_LIMIT_CGROUP);
    check_min_rule(&b);

    /* A quota bigger than the machine does not raise the count. */
    b = budget_v2("100000000 100000\n"); /* 1000 CPUs */
    ASSERT_EQ(b.cgroup, 1000);
    ASSERT_NE(b.limit, EXEC_LIMIT_CGROUP);
    ASSERT_LE(b.workers, b.online);
    ASSERT_LE(b.workers, b.affinity);
    check_min_rule(&b);
}

/* Restricted to one CPU, the process reads an affinity of one and runs one worker. */
TEST(budget_affinity_one_cpu)
{
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_OK(sched_getaffinity(0, sizeof set, &set));
    int cpu = -1;
    for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
        if (CPU_ISSET(i, &set))
            cpu = i;
    ASSERT_GE(cpu, 0);
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ASSERT_OK(sched_setaffinity(0, sizeof set, &set));

    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    ASSERT_EQ(b.affinity, 1);
    ASSERT_EQ(b.workers, 1);
    /* Affinity, unless this process also has a quota of exactly one CPU (a tie). */
    ASSERT_EQ(b.limit, b.cgroup == 1 ? EXEC_LIMIT_CGROUP : EXEC_LIMIT_AFFINITY);
    check_min_rule(&b);

    /* With a fake directory without quota, affinity is the reason for certain. */
    ASSERT_OK(exec_cpu_budget(new_dir(), &b));
    ASSERT_EQ(b.affinity, 1);
    ASSERT_EQ(b.workers, 1);
    ASSERT_EQ(b.limit, EXEC_LIMIT_AFFINITY);
}

/* ---------------------------------------------------------------------------------------- */
/* EXEC_WORKERS                                                                              */
/* ---------------------------------------------------------------------------------------- */

TEST(budget_env_overrides)
{
    ASSERT_OK(setenv("EXEC_WORKERS", "3", 1));
    /* Even against a quota of one CPU. */
    exec_cpu_budget_t b = budget_v2("100000 100000\n");
    ASSERT_EQ(b.env, 3);
    ASSERT_EQ(b.workers, 3);
    ASSERT_EQ(b.limit, EXEC_LIMIT_ENV);
    ASSERT_EQ(b.cgroup, 1); /* the other limits are still reported */
    ASSERT_GE(b.online, 1);
    ASSERT_GE(b.affinity, 1);

    ASSERT_OK(setenv("EXEC_WORKERS", "1", 1));
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    ASSERT_EQ(b.workers, 1);
    ASSERT_EQ(b.limit, EXEC_LIMIT_ENV);

    char max[16];
    snprintf(max, sizeof max, "%d", EXEC_WORKERS_MAX);
    ASSERT_OK(setenv("EXEC_WORKERS", max, 1));
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    ASSERT_EQ(b.env, EXEC_WORKERS_MAX);
    ASSERT_EQ(b.workers, EXEC_WORKERS_MAX);
    ASSERT_EQ(b.limit, EXEC_LIMIT_ENV);
}

TEST(budget_env_invalid_ignored)
{
    char over[16];
    snprintf(over, sizeof over, "%d", EXEC_WORKERS_MAX + 1);
    const char *const bad[] = {
        "0", "-2", "abc", "3x", "99999999999999999999", "", over, "100000",
        " 3", "3 ", "+3", "-0", "3\n", "0x3", "3.0", "1e2", "\t3", "00",
        "-9223372036854775808", "9223372036854775807",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_OK(setenv("EXEC_WORKERS", bad[i], 1));
        exec_cpu_budget_t b = budget_v2("100000 100000\n");
        if (b.env != 0 || b.limit == EXEC_LIMIT_ENV)
            TEST_FAIL("EXEC_WORKERS=\"%s\": env %d, limit %d; want it ignored", bad[i], b.env,
                      (int)b.limit);
        /* Ignored means the quota rules again. */
        ASSERT_EQ(b.workers, 1);
        ASSERT_EQ(b.limit, EXEC_LIMIT_CGROUP);
        check_min_rule(&b);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* An executor with workers = 0 uses the budget                                              */
/* ---------------------------------------------------------------------------------------- */

/* Poll exec_stats() until workers_alive == @want or about 5 s pass; returns the last value. */
static long long alive_eventually(exec_t *ex, long long want)
{
    exec_stats_t st;
    for (int i = 0; i < 500; i++) {
        ASSERT_OK(exec_stats(ex, &st));
        if ((long long)st.workers_alive == want)
            break;
        test_sleep_ms(10);
    }
    return (long long)st.workers_alive;
}

TEST(budget_executor_default_workers)
{
    /* From the CPUs. */
    ASSERT_OK(unsetenv("EXEC_WORKERS"));
    exec_cpu_budget_t b;
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    exec_config_t cfg;
    test_config(&cfg);
    ASSERT_EQ(cfg.workers, 0);
    exec_t *ex = make_exec(&cfg);
    ASSERT_EQ(alive_eventually(ex, b.workers), b.workers);
    ASSERT_OK(exec_destroy(ex));

    /* From EXEC_WORKERS, which is read at exec_create() time. */
    ASSERT_OK(setenv("EXEC_WORKERS", "3", 1));
    ASSERT_OK(exec_cpu_budget(NULL, &b));
    ASSERT_EQ(b.workers, 3);
    ASSERT_OK(exec_create(&ex, &cfg));
    ASSERT_EQ(alive_eventually(ex, 3), 3);
    ASSERT_OK(exec_destroy(ex));

    /* An explicit count wins over EXEC_WORKERS. */
    cfg.workers = 2;
    ASSERT_OK(exec_create(&ex, &cfg));
    ASSERT_EQ(alive_eventually(ex, 2), 2);
    ASSERT_OK(exec_destroy(ex));
}
