/* SPDX-License-Identifier: MIT */
/*
 * test_examples.c - the example programs run and print what they promise.
 *
 * Each example is built by `make examples` into EXEC_BUILD_DIR/examples/<name> (`make test`
 * builds them first). A test runs one binary with a time limit, stdin from /dev/null and
 * stdout into a file (so stdout is not a terminal), and checks that it exits with status 0,
 * prints every expected line and none of the forbidden ones, and leaves no process behind.
 *
 * The tests are named tooling_example_*: the sanitizer and valgrind targets skip tooling_*
 * (SAN_ARGS in the Makefile), because they build only the runner, not the examples.
 *
 * The checks are lines that hold on any machine: labels, counts and totals, never a time
 * or a speedup (speed is for `make bench`). A row that runs a process pool is listed
 * PROCESSES_ONLY in list.h, so that `-b threads` leaves it out; the others run once, on the
 * thread pass. Each example must exit 0, which it does only when its own results were right.
 *
 *   tooling_example_all_listed   every examples/<name>.c has a row in the table below, every
 *                                row names an existing example and has its line in list.h
 *   tooling_example_<row>        one per row of the table
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "list.h"

#if !defined(EXEC_SRC_DIR) || !defined(EXEC_BUILD_DIR)
#error "EXEC_SRC_DIR and EXEC_BUILD_DIR come from the Makefile"
#endif

/* Time limits (seconds, times EXEC_TEST_TIMEOUT_SCALE): liveness only, never speed. An
 * example should finish in well under 10 s on 2 cores; the limit leaves room for a loaded
 * machine and stays below the runner's alarm (30 s, SLOW 300 s). */
#define LIMIT_S 25
#define LIMIT_SLOW_S 120
/* How long processes an example started may take to end after it exited. */
#define SETTLE_MS 3000

#define MAX_ARGS 4
#define MAX_LINES 6

struct example {
    const char *id;                /* the test is tooling_example_<id> */
    const char *binary;            /* examples/<binary>.c, built into BUILD/examples/ */
    const char *args[MAX_ARGS];    /* argv[1..], NULL-terminated */
    const char *expect[MAX_LINES]; /* substrings that must appear in stdout */
    const char *absent[MAX_LINES]; /* substrings that must not appear in stdout */
    bool processes;                /* needs the process backend: PROCESSES_ONLY in list.h */
    bool slow;                     /* LIMIT_SLOW_S instead of LIMIT_S: SLOW in list.h */
    bool mpi;                      /* run as `mpirun -np 3 binary` (skipped without mpirun) */
};

/*
 * The table: one row per test, and one EXAMPLE_TEST() and one list.h line per row (with
 * the flags the row says; tooling_example_all_listed checks that).
 */
static const struct example examples[] = {
    {.id = "01_hello", .binary = "01_hello", .expect = {"hello, world\n"}},
    {.id = "02_cpu_bound",
     .binary = "02_cpu_bound",
     .expect = {"counting the primes below 5000000 (348513 of them) in 16 tasks",
                "\nserial loop ", "\nthreads ", "\nprocesses "},
     .absent = {"failed"},
     .processes = true},
    {.id = "03_c_gil",
     .binary = "03_c_gil",
     .expect = {"16 calls of a library that holds one global mutex per call", "\nserial loop ",
                "\nthreads ", "\nprocesses ",
                "calls the library counted in this process: serial 16, threads 16, "
                "processes 0\n"},
     .absent = {"failed"},
     .processes = true},
    {.id = "04_io_fanout",
     .binary = "04_io_fanout",
     .expect = {"50 requests, each answered 50 ms after it arrives", "\nthreads, 2 workers ",
                "\nthreads, 20 workers ", "\nprocesses, 2 workers ",
                "\nprocesses, 20 workers "},
     .absent = {"failed"},
     .processes = true},
    {.id = "05_event_loop",
     .binary = "05_event_loop",
     .expect = {"answered 20 requests from 4 clients"},
     .processes = true},
    {.id = "05_event_loop_threads",
     .binary = "05_event_loop",
     .args = {"threads"},
     .expect = {"answered 20 requests from 4 clients"}},
    {.id = "06_shared_memory",
     .binary = "06_shared_memory",
     .expect = {"summing 10000000 int64_t (80 MB) in 8 slices on processes",
                "shared memory, first pass", "shared memory, mapped already",
                "copied through task arguments", "49999995000000 ok\n"},
     .absent = {"WRONG"},
     .processes = true},
    {.id = "06_shared_memory_threads",
     .binary = "06_shared_memory",
     .args = {"threads"},
     .expect = {"summing 10000000 int64_t (80 MB) in 8 slices on threads",
                "shared memory, first pass", "shared memory, mapped already",
                "copied through task arguments", "49999995000000 ok\n"},
     .absent = {"WRONG"}},
    {.id = "07_crash",
     .binary = "07_crash",
     .expect = {"square(7) = 49\n", "bad task: EXEC_ECRASHED", "killed by signal 11)\n",
                "after the crash: 100 of 100 tasks ok\n"},
     .processes = true},
    {.id = "08_deadline",
     .binary = "08_deadline",
     .expect = {"stuck task: EXEC_ETIMEDOUT after ", "polite task: EXEC_ETIMEDOUT after ",
                "the pool still works: 6 * 7 = 42\n"},
     .processes = true},
    {.id = "09_leaky",
     .binary = "09_leaky",
     .expect = {"200 calls of a task that leaks 1 MiB per call, on 2 worker processes",
                "\nwithout recycling ", "\nmax_tasks_per_child = 20 ",
                "\nmax_rss_per_child = 32 MiB ", "recycling bounded the workers' memory: yes\n"},
     .absent = {"failed"},
     .processes = true},
    {.id = "10_sizing",
     .binary = "10_sizing",
     .expect = {"online CPUs:", "affinity mask:", "default workers:",
                "executor with 3:    3 workers\n",
                "EXEC_WORKERS=5:     5 workers (chosen by the EXEC_WORKERS variable); "
                "executor with {0}: 5\n"}},
    {.id = "11_nested",
     .binary = "11_nested",
     .expect = {"sorted 10000000 ints: yes\n"},
     .absent = {"NO"}},
    /* stdout is a file here, so no progress bar: one plain line. */
    {.id = "12_progress",
     .binary = "12_progress",
     .expect = {"mapped 4000000 items: success, 0 failed\n"},
     .absent = {"\r"}},
    /* A generated file of 400,000 lines counted line by line through a window. */
    {.id = "15_word_count",
     .binary = "15_word_count",
     .expect = {"400000 lines, 3599965 words\n", "expected 3599965 words: ok\n"},
     .absent = {"WRONG"},
     .processes = true},
    /* The run behind the timeline picture of docs/guide.md; its trace goes nowhere here. */
    {.id = "14_timeline",
     .binary = "14_timeline",
     .args = {"/dev/null"},
     .expect = {"1. a slow task and 16 short ones\n", "  task 3: EXEC_ECRASHED (signal 11)\n",
                "  the late task: EXEC_ETIMEDOUT\n",
                "all scenes ran as expected; trace: /dev/null\n"},
     .absent = {"unexpected"},
     .processes = true},
    /* Primes across the ranks of an MPI job (built and run when Open MPI is installed). */
    {.id = "13_mpi",
     .binary = "13_mpi",
     .expect = {"(216816 of them) in 32 tasks on 2 workers\n", "mpi (threads)"},
     .mpi = true},
    /* `make demo`'s program: the three classic tables, serial vs threads vs processes. */
    {.id = "demo",
     .binary = "demo",
     .expect = {"1. CPU-bound:", "(476648 primes.", "2. I/O-bound:", "threads (20 workers)",
                "3. A non-thread-safe library", "processes (2 workers)"},
     .absent = {"n/a", "failed"},
     .processes = true,
     .slow = true},
};

#define NEXAMPLES (sizeof examples / sizeof examples[0])

static const struct example *find_example(const char *id)
{
    for (size_t i = 0; i < NEXAMPLES; i++)
        if (strcmp(examples[i].id, id) == 0)
            return &examples[i];
    TEST_FAIL("no row \"%s\" in the examples table of %s", id, __FILE__);
}

/* Up to @cap - 1 bytes of @path, NUL-terminated; "" if it cannot be read. */
static void read_text(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
}

/* In the forked child: become a group of one, wire stdio to files, run @argv. Never returns. */
static _Noreturn void exec_child(const char *const argv[], const char *out, const char *err)
{
    setpgid(0, 0);
#ifdef PR_SET_PDEATHSIG
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test child died: do not run on alone */
#endif
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
        _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/*
 * Runs @argv with a limit of @limit_s seconds; stdout into @out, stderr into @err. Returns
 * its wait status, and in *@pgid its process group (its pid); fails the test on a timeout
 * (after killing that group).
 */
static int run_limited(const char *const argv[], unsigned limit_s, const char *out,
                       const char *err, pid_t *pgid)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        TEST_FAIL("fork: %s", strerror(errno));
    if (pid == 0)
        exec_child(argv, out, err);
    setpgid(pid, pid); /* also done by the child: whichever runs first */
    *pgid = pid;
    uint64_t deadline = test_now_ms() + (uint64_t)limit_s * 1000;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            TEST_FAIL("waitpid: %s", strerror(errno));
        if (test_now_ms() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            char text[4096];
            read_text(out, text, sizeof text);
            TEST_FAIL("%s did not finish within %u s (killed); its output so far:\n%s",
                      argv[0], limit_s, text);
        }
        test_sleep_ms(10);
    }
}

/* After the example exited: processes it left in its group get SETTLE_MS to end. */
static void assert_group_ends(pid_t pgid, const char *name)
{
    uint64_t deadline = test_now_ms() + SETTLE_MS;
    while (kill(-pgid, 0) == 0) {
        if (test_now_ms() >= deadline) {
            kill(-pgid, SIGKILL);
            TEST_FAIL("%s left processes in its group %d running %d ms after it exited "
                      "(killed)",
                      name, (int)pgid, SETTLE_MS);
        }
        test_sleep_ms(10);
    }
}

/* @s for a message: a final newline shown as "\\n". */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '\n')
        snprintf(buf, cap, "%.*s\\n", (int)(n - 1), s);
    else
        snprintf(buf, cap, "%s", s);
    return buf;
}

/* The full path of mpirun from PATH into @buf, or NULL when there is none. */
static const char *find_mpirun(char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    while (path != NULL && *path) {
        const char *end = strchr(path, ':');
        int n = end ? (int)(end - path) : (int)strlen(path);
        snprintf(buf, cap, "%.*s/mpirun", n, path);
        if (access(buf, X_OK) == 0)
            return buf;
        path = end ? end + 1 : NULL;
    }
    return NULL;
}

static void check_example(const char *id)
{
    const struct example *ex = find_example(id);
    char path[4096], out[4096], err[4096], mpirun[4096];
    snprintf(path, sizeof path, "%s/examples/%s", EXEC_BUILD_DIR, ex->binary);
    const char *argv[MAX_ARGS + 10] = {path};
    size_t argc = 1;
    if (ex->mpi) {
        if (find_mpirun(mpirun, sizeof mpirun) == NULL) {
            fprintf(stderr, "# skip %s: no mpirun on PATH (Open MPI not installed)\n", id);
            return;
        }
        argc = 0;
        argv[argc++] = mpirun;
        argv[argc++] = "--oversubscribe";
        if (geteuid() == 0)
            argv[argc++] = "--allow-run-as-root";
        argv[argc++] = "-np";
        argv[argc++] = "3";
        argv[argc++] = path;
    }
    if (access(path, X_OK) != 0)
        TEST_FAIL("%s: %s (build the examples first: `make examples`)", path, strerror(errno));
    const char *dir = test_tmpdir();
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);

    for (size_t i = 0; i < MAX_ARGS && ex->args[i] != NULL; i++)
        argv[argc++] = ex->args[i];
    argv[argc] = NULL;

    unsigned limit = (ex->slow ? LIMIT_SLOW_S : LIMIT_S) * (unsigned)test_timeout_scale();
    uint64_t start = test_now_ms();
    pid_t pgid;
    int status = run_limited(argv, limit, out, err, &pgid);
    uint64_t took = test_now_ms() - start;

    static char text[1 << 16], errtext[1 << 14];
    char line[256];
    read_text(out, text, sizeof text);
    read_text(err, errtext, sizeof errtext);
    fprintf(stderr, "# %s%s%s: %llu ms\n", ex->binary, argc > 1 ? " " : "",
            argc > 1 ? argv[1] : "", (unsigned long long)took);

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const char *hint = strstr(errtext, exec_strerror(EXEC_ENOTSUP)) != NULL
                               ? "\n(EXEC_ENOTSUP: the example has no process backend although "
                                 "this suite has one; is it linked into programs built "
                                 "against libexecutor.a?)"
                               : "";
        if (WIFSIGNALED(status))
            TEST_FAIL("%s killed by signal %d\nstdout:\n%s\nstderr:\n%s", ex->binary,
                      WTERMSIG(status), text, errtext);
        TEST_FAIL("%s exited with status %d, want 0\nstdout:\n%s\nstderr:\n%s%s", ex->binary,
                  WEXITSTATUS(status), text, errtext, hint);
    }
    for (size_t i = 0; i < MAX_LINES && ex->expect[i] != NULL; i++)
        if (strstr(text, ex->expect[i]) == NULL)
            TEST_FAIL("%s: stdout lacks \"%s\"\nstdout:\n%s\nstderr:\n%s", ex->binary,
                      shown(ex->expect[i], line, sizeof line), text, errtext);
    for (size_t i = 0; i < MAX_LINES && ex->absent[i] != NULL; i++)
        if (strstr(text, ex->absent[i]) != NULL)
            TEST_FAIL("%s: stdout has \"%s\", which it must not\nstdout:\n%s", ex->binary,
                      shown(ex->absent[i], line, sizeof line), text);
    assert_group_ends(pgid, ex->binary);
}

/* The tests of list.h with their flags, as written there. */
static const struct {
    const char *name, *flags;
} listed[] = {
#define X(name, flags) {#name, #flags},
    TEST_LIST(X)
#undef X
};

/* Whether the list.h flags text @flags names @flag (e.g. "PROCESSES_ONLY | SLOW", "SLOW"). */
static bool has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = strstr(flags, flag); p != NULL; p = strstr(p + 1, flag)) {
        bool start = p == flags || !(p[-1] == '_' || (p[-1] >= 'A' && p[-1] <= 'Z'));
        bool end = !(p[n] == '_' || (p[n] >= 'A' && p[n] <= 'Z'));
        if (start && end)
            return true;
    }
    return false;
}

TEST(tooling_example_all_listed)
{
    /* Every example has a row... */
    glob_t g;
    ASSERT_EQ(glob(EXEC_SRC_DIR "/examples/*.c", 0, NULL, &g), 0);
    ASSERT_GT(g.gl_pathc, 0);
    int missing = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s", strrchr(g.gl_pathv[i], '/') + 1);
        name[strlen(name) - 2] = '\0'; /* drop ".c" */
        bool found = false;
        for (size_t j = 0; j < NEXAMPLES && !found; j++)
            found = strcmp(examples[j].binary, name) == 0;
        if (!found) {
            fprintf(stderr, "examples/%s.c: no row in the table of %s\n", name, __FILE__);
            missing++;
        }
    }
    globfree(&g);
    /* ...and every row an example. */
    for (size_t j = 0; j < NEXAMPLES; j++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/examples/%s.c", EXEC_SRC_DIR, examples[j].binary);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "row %s: %s: %s\n", examples[j].id, path, strerror(errno));
            missing++;
        }
    }
    /* ...and every row a list.h line with matching flags. */
    for (size_t j = 0; j < NEXAMPLES; j++) {
        char name[256];
        snprintf(name, sizeof name, "tooling_example_%s", examples[j].id);
        const char *flags = NULL;
        for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
            if (strcmp(listed[i].name, name) == 0)
                flags = listed[i].flags;
        if (flags == NULL) {
            fprintf(stderr, "%s: not in tests/list.h\n", name);
            missing++;
        } else if (has_flag(flags, "PROCESSES_ONLY") != examples[j].processes ||
                   has_flag(flags, "SLOW") != examples[j].slow) {
            fprintf(stderr, "%s: list.h says \"%s\"; the table says%s%s\n", name, flags,
                    examples[j].processes ? " PROCESSES_ONLY" : "",
                    examples[j].slow ? " SLOW" : "");
            missing++;
        }
    }
    ASSERT_EQ(missing, 0);
}

/* One test per row, so that each is listed, filtered and reported on its own. */
#define EXAMPLE_TEST(id)                                                                   \
    TEST(tooling_example_##id)                                                             \
    {                                                                                      \
        check_example(#id);                                                                \
    }

EXAMPLE_TEST(01_hello)
EXAMPLE_TEST(02_cpu_bound)
EXAMPLE_TEST(03_c_gil)
EXAMPLE_TEST(04_io_fanout)
EXAMPLE_TEST(05_event_loop)
EXAMPLE_TEST(05_event_loop_threads)
EXAMPLE_TEST(06_shared_memory)
EXAMPLE_TEST(06_shared_memory_threads)
EXAMPLE_TEST(07_crash)
EXAMPLE_TEST(08_deadline)
EXAMPLE_TEST(09_leaky)
EXAMPLE_TEST(10_sizing)
EXAMPLE_TEST(11_nested)
EXAMPLE_TEST(12_progress)
EXAMPLE_TEST(15_word_count)
EXAMPLE_TEST(14_timeline)
EXAMPLE_TEST(13_mpi)
EXAMPLE_TEST(demo)
