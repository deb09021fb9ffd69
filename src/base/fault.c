/* SPDX-License-Identifier: MIT */
/*
 * base/fault.c - the counters behind EXEC__FAULT() (base/fault.h); compiled into the test
 * build of the library only.
 */
#include "base/fault.h"

#ifdef EXEC_TEST_HOOKS
#include <stdatomic.h>

/* Armed failures per site; any thread may consume one. */
static _Atomic int armed[EXEC__FAULT_NSITES];

int exec__fault_sim(int site)
{
    if (site < 0 || site >= EXEC__FAULT_NSITES)
        return 0;
    int n = atomic_load(&armed[site]);
    while (n > 0 && !atomic_compare_exchange_weak(&armed[site], &n, n - 1))
        ;
    return n > 0;
}

int exec__fault_arm(int site, int n)
{
    if (site < 0 || site >= EXEC__FAULT_NSITES)
        return 0;
    return atomic_exchange(&armed[site], n);
}
#else
typedef int exec__fault_unused; /* a translation unit must declare something */
#endif
