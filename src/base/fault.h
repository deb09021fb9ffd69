/* SPDX-License-Identifier: MIT */
/*
 * base/fault.h - test-only fault injection (SQLite's sqlite3FaultSim idea): one function that
 * a code path asks "should this call fail now?". It exists only in the test build of the
 * library (compiled with -DEXEC_TEST_HOOKS, see the Makefile); in the installed library
 * EXEC__FAULT() is the constant 0 and no symbol is left (check-symbols and a test prove it).
 */
#ifndef EXEC_BASE_FAULT_H
#define EXEC_BASE_FAULT_H

/* The places that can be made to fail. */
enum exec__fault_site {
    EXEC__FAULT_SPAWN = 0, /* process backend: a worker spawn fails with EAGAIN */
    EXEC__FAULT_ARENA = 1, /* core: mapping a new arena of futures fails (ENOMEM) */
    EXEC__FAULT_NSITES
};

#ifdef EXEC_TEST_HOOKS
/* Non-zero when the call at @site must fail now (consumes one armed failure). */
int exec__fault_sim(int site);
/* Test side: make the next @n calls at @site fail; returns how many were still armed. */
int exec__fault_arm(int site, int n);
#define EXEC__FAULT(site) exec__fault_sim(site)
#else
#define EXEC__FAULT(site) 0
#endif

#endif /* EXEC_BASE_FAULT_H */
