/* SPDX-License-Identifier: MIT */
/*
 * shell.c - commands and small files for the tooling tests (see shell.h).
 */
#include "shell.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "tasks.h"

void clean_make_env(void)
{
    static const char *vars[] = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                                 "MAKE_TERMOUT", "MAKE_TERMERR", "GNUMAKEFLAGS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

int sh(const char *log, const char *cmd)
{
    char full[4608];
    if (snprintf(full, sizeof full, "( %s ) >>'%s' 2>&1", cmd, log) >= (int)sizeof full)
        TEST_FAIL("command too long: %s", cmd);
    fprintf(stderr, "# %s\n", cmd);
    int st = system(full);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void dump_log(const char *log)
{
    char cmd[4096];
    fprintf(stderr, "---- %s ----\n", log);
    fflush(stderr);
    if (system(fmt(cmd, "cat '%s' >&2", log)) != 0)
        fprintf(stderr, "(cannot show it)\n");
    fprintf(stderr, "---- end ----\n");
}

void sh_ok_(const char *log, const char *cmd, const char *file, int line)
{
    int st = sh(log, cmd);
    if (st != 0) {
        dump_log(log);
        test_fail_(file, line, "`%s`: exit status %d", cmd, st);
    }
}

char *read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        TEST_FAIL("open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        TEST_FAIL("create %s: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0)
        TEST_FAIL("write %s: %s", path, strerror(errno));
}
