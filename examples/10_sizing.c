/* SPDX-License-Identifier: MIT */
/*
 * 10_sizing.c - how many workers does the library choose, and why?
 *
 * The default worker count is the smallest of: the CPUs this process may run on (its
 * affinity mask, e.g. `taskset -c 0`), the cgroup CPU quota rounded up (a container started
 * with `--cpus=1.5` gets 2), and the online CPUs. The environment variable EXEC_WORKERS
 * overrides all three, and an explicit exec_config_t.workers overrides everything.
 *
 * Try:  ./10_sizing          EXEC_WORKERS=5 ./10_sizing          taskset -c 0 ./10_sizing
 */
#include <executor.h>
#include <stdio.h>
#include <stdlib.h>

static const char *limit_name(exec_limit_t l)
{
    switch (l) {
    case EXEC_LIMIT_ONLINE:
        return "online CPUs";
    case EXEC_LIMIT_AFFINITY:
        return "CPU affinity mask";
    case EXEC_LIMIT_CGROUP:
        return "cgroup CPU quota";
    case EXEC_LIMIT_ENV:
        return "EXEC_WORKERS variable";
    }
    return "?";
}

static int workers_of(const exec_config_t *cfg)
{
    exec_t *ex;
    exec_stats_t st;
    if (exec_create(&ex, cfg) != 0)
        return -1;
    exec_stats(ex, &st);
    exec_destroy(ex);
    return (int)st.workers_alive;
}

int main(void)
{
    exec_cpu_budget_t b;
    if (exec_cpu_budget(NULL, &b) != 0)
        return 1;
    printf("online CPUs:        %d\n", b.online);
    printf("affinity mask:      %d\n", b.affinity);
    if (b.cgroup)
        printf("cgroup quota:       %d\n", b.cgroup);
    else
        printf("cgroup quota:       none\n");
    if (b.env)
        printf("EXEC_WORKERS:       %d\n", b.env);
    else
        printf("EXEC_WORKERS:       unset\n");
    printf("default workers:    %d (chosen by the %s)\n", b.workers, limit_name(b.limit));

    exec_config_t cfg = {0}; /* workers = 0: use the default above */
    printf("executor with {0}:  %d workers\n", workers_of(&cfg));
    cfg.workers = 3; /* an explicit count wins over everything */
    printf("executor with 3:    %d workers\n", workers_of(&cfg));

    /* The environment variable, as if the program had been started with EXEC_WORKERS=5 in
     * its environment. (setenv() is not thread-safe: no pool exists at this point.) */
    setenv("EXEC_WORKERS", "5", 1);
    if (exec_cpu_budget(NULL, &b) != 0)
        return 1;
    cfg.workers = 0;
    printf("EXEC_WORKERS=5:     %d workers (chosen by the %s); executor with {0}: %d\n",
           b.workers, limit_name(b.limit), workers_of(&cfg));
    return 0;
}
