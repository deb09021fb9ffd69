/* SPDX-License-Identifier: MIT */
/*
 * shell.h - what the tooling tests (test_tooling.c, test_cmake.c, test_docs.c) use to run
 * commands and read and write files: one copy of each.
 */
#ifndef EXEC_TEST_SHELL_H
#define EXEC_TEST_SHELL_H

#include <stddef.h>

/* The outer make (when `make test` runs us) exports its own state; a make started by a test
 * must not inherit its jobserver or command-line variables. */
void clean_make_env(void);
/* Runs @cmd with sh, its output appended to @log; its exit status (-1: no normal exit). */
int sh(const char *log, const char *cmd);
/* Prints @log to stderr (after a failure). */
void dump_log(const char *log);
/* Runs @cmd and fails the test, showing the log, if it does not exit with 0. */
#define SH_OK(log, cmd) sh_ok_((log), (cmd), __FILE__, __LINE__)
void sh_ok_(const char *log, const char *cmd, const char *file, int line);
/* Whole contents of a small file, NUL-terminated, in @buf (the test fails if it cannot be
 * read); returns @buf. */
char *read_file(const char *path, char *buf, size_t cap);
/* Writes @text to @path (the test fails if it cannot). */
void write_file(const char *path, const char *text);

#endif /* EXEC_TEST_SHELL_H */
