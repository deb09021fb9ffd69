/* SPDX-License-Identifier: MIT */
/*
 * mpi_run.c - running a test of the suite as an MPI job (see mpi_run.h).
 */
#include "mpi_run.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mpi_list.h"

/* How long the ranks may take to be gone after rank 0's test returned: a second, plus what
 * mpirun itself takes to notice and report (measured ~0.1-0.3 s here), times the scale. */
#define END_MS 1500u

bool test_mpi_wanted(const char *name, unsigned flags, unsigned mpi_only_flag)
{
    if (flags & mpi_only_flag)
        return true;
#define X(n) if (strcmp(name, #n) == 0) return true;
    TEST_MPI_LIST(X)
#undef X
    return false;
}

void test_mpi_mark_end(void)
{
    const char *path = getenv("EXEC_TEST_MPI_END");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%llu\n", (unsigned long long)test_now_ms());
        fclose(f);
    }
}

static _Noreturn void fail(char *why, size_t size, const char *fmt, long a, long b)
{
    snprintf(why, size, fmt, a, b);
    fprintf(stderr, "%s\n", why);
    exit(TEST_EXIT_FAIL);
}

_Noreturn void test_mpi_child(const char *name, char *why, size_t why_size)
{
    char self[4096], end[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        fail(why, why_size, "readlink /proc/self/exe: errno %ld%ld", errno, 0);
    self[n] = '\0';
    snprintf(end, sizeof end, "%s/end", test_tmpdir());
    setenv("EXEC_TEST_MPI_END", end, 1);
    /* The launcher: words of $EXEC_TEST_MPIRUN, then the program and the test. */
    const char *cmd = getenv("EXEC_TEST_MPIRUN");
    char *words = strdup(cmd && *cmd ? cmd : "mpirun -np 3");
    char *argv[64];
    int argc = 0;
    for (char *w = strtok(words, " "); w && argc < 60; w = strtok(NULL, " "))
        argv[argc++] = w;
    argv[argc++] = self;
    argv[argc++] = "--mpi-one";
    argv[argc++] = (char *)name;
    argv[argc] = NULL;
    int shm_before = test_count_shm("exec-");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    uint64_t t_exit = test_now_ms();
    FILE *f = fopen(end, "r");
    unsigned long long t_end = 0;
    bool got = f && fscanf(f, "%llu", &t_end) == 1;
    if (f)
        fclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail(why, why_size, "the MPI job failed (exit status %ld, signal %ld): see above",
             WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (!got)
        fail(why, why_size, "rank 0 did not finish the test (%ld%ld)", 0, 0);
    long late = (long)(t_exit - t_end), limit = (long)END_MS * test_timeout_scale();
    if (late > limit)
        fail(why, why_size, "the ranks took %ld ms to end after rank 0's test (limit %ld)",
             late, limit);
    /* What the job left in /dev/shm (the ranks' leftover processes are the runner's check). */
    int shm_after = test_count_shm("exec-");
    if (shm_after > shm_before)
        fail(why, why_size, "%ld /dev/shm/exec-* entries left (%ld before)", shm_after,
             shm_before);
    free(words);
    exit(0);
}
