/* SPDX-License-Identifier: MIT */
/*
 * test_trace.c - the trace of a run (exec_config_t.trace_path, EXEC_TRACE): the file is
 * Trace Event JSON that opens as it is (a "[" line, then one complete event per line
 * followed by a comma), and its events match what happened: one span per task with its
 * number, outcome and argument size, chunks of maps, named tracks, instants for crashes,
 * deadlines, cancels and recycling. Also: the environment overrides the config, a bad path
 * fails exec_create(), a program killed in the middle leaves a file whose complete lines all
 * parse, events reach the file while the pool runs, and the memory does not grow with the
 * number of tasks.
 *
 * The file is read back with a small JSON reader of our own (each event is one line).
 */
#include "harness.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc_hook.h"
#include "gate.h"

/* ---------------------------------------------------------------------------------------- */
/* The layout of exec_config_t: trace_path came out of reserved[], nothing else moved         */
/* ---------------------------------------------------------------------------------------- */

/* exec_config_t as it was before trace_path. */
struct old_config {
    exec_backend_t backend;
    int workers;
    size_t max_arg_size, max_result_size, queue_max;
    uint32_t max_tasks_per_child, timeout_ms;
    size_t stack_size;
    exec_start_method_t start_method;
    uint32_t kill_grace_ms;
    size_t max_rss_per_child;
    uint32_t max_age_ms, recycle_jitter_pct, crash_limit, crash_window_ms;
    exec_task_fn *initializer;
    const void *init_arg;
    size_t init_arg_size;
    uint32_t reserved[8];
};

#define SAME_FIELD(f) offsetof(exec_config_t, f) == offsetof(struct old_config, f)
_Static_assert(sizeof(exec_config_t) == sizeof(struct old_config), "exec_config_t grew");
_Static_assert(SAME_FIELD(backend) && SAME_FIELD(workers) && SAME_FIELD(max_arg_size) &&
                   SAME_FIELD(max_result_size) && SAME_FIELD(queue_max) &&
                   SAME_FIELD(max_tasks_per_child) && SAME_FIELD(timeout_ms) &&
                   SAME_FIELD(stack_size) && SAME_FIELD(start_method) &&
                   SAME_FIELD(kill_grace_ms) && SAME_FIELD(max_rss_per_child) &&
                   SAME_FIELD(max_age_ms) && SAME_FIELD(recycle_jitter_pct) &&
                   SAME_FIELD(crash_limit) && SAME_FIELD(crash_window_ms) &&
                   SAME_FIELD(initializer) && SAME_FIELD(init_arg) && SAME_FIELD(init_arg_size),
               "a field of exec_config_t moved");
_Static_assert(offsetof(exec_config_t, trace_path) == offsetof(struct old_config, reserved),
               "trace_path is not where reserved[] began");
_Static_assert(offsetof(struct old_config, reserved) % _Alignof(const char *) == 0,
               "reserved[] was not aligned for a pointer");
_Static_assert(offsetof(exec_config_t, reserved) + sizeof(((exec_config_t *)0)->reserved) ==
                   sizeof(exec_config_t),
               "reserved[] does not end the struct");

/* ---------------------------------------------------------------------------------------- */
/* Reading a trace file                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* One event: its members flattened to "key" / "args.key" -> value (strings unquoted). */
#define EV_KEYS 32
struct ev {
    int n;
    struct {
        char key[40];
        char val[160];
    } kv[EV_KEYS];
};

struct trace {
    int n;
    struct ev *ev;
    bool partial; /* the file ended in the middle of a line */
};

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static void ev_add(struct ev *e, const char *key, const char *val)
{
    if (e->n == EV_KEYS)
        TEST_FAIL("an event with more than %d members", EV_KEYS);
    snprintf(e->kv[e->n].key, sizeof e->kv[e->n].key, "%s", key);
    snprintf(e->kv[e->n].val, sizeof e->kv[e->n].val, "%s", val);
    e->n++;
}

static const char *json_string(const char *p, char *out, size_t cap)
{
    if (*p++ != '"')
        return NULL;
    size_t n = 0;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return NULL; /* control characters (and the end of the line) are not allowed */
        if (c == '\\') {
            char x = *p++;
            if (x == 'u') {
                for (int i = 0; i < 4; i++, p++)
                    if (!strchr("0123456789abcdefABCDEF", *p) || !*p)
                        return NULL;
                c = '?';
            } else if (strchr("\"\\/", x) && x) {
                c = (unsigned char)x;
            } else if (strchr("bfnrt", x) && x) {
                c = ' ';
            } else {
                return NULL;
            }
        }
        if (n + 1 < cap)
            out[n++] = (char)c;
    }
    out[n] = '\0';
    return p;
}

static const char *json_number(const char *p, char *out, size_t cap)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    snprintf(out, cap, "%.*s", (int)(p - s), s);
    return p;
}

static const char *json_object(const char *p, struct ev *e, const char *prefix, int depth);

static const char *json_value(const char *p, struct ev *e, const char *key, int depth)
{
    char v[160];
    if (depth > 8)
        return NULL;
    if (*p == '{')
        return json_object(p, e, key, depth + 1);
    if (*p == '[') {
        p = skip_ws(p + 1);
        if (*p == ']')
            return p + 1;
        for (;;) {
            p = json_value(p, e, key, depth + 1);
            if (!p)
                return NULL;
            p = skip_ws(p);
            if (*p == ']')
                return p + 1;
            if (*p++ != ',')
                return NULL;
            p = skip_ws(p);
        }
    }
    if (*p == '"')
        p = json_string(p, v, sizeof v);
    else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
        p = (snprintf(v, sizeof v, "%.4s", p), p + 4);
    else if (!strncmp(p, "false", 5))
        p = (snprintf(v, sizeof v, "false"), p + 5);
    else
        p = json_number(p, v, sizeof v);
    if (p)
        ev_add(e, key, v);
    return p;
}

static const char *json_object(const char *p, struct ev *e, const char *prefix, int depth)
{
    if (*p++ != '{')
        return NULL;
    p = skip_ws(p);
    if (*p == '}')
        return p + 1;
    for (;;) {
        char k[40], full[96];
        p = json_string(p, k, sizeof k);
        if (!p)
            return NULL;
        p = skip_ws(p);
        if (*p++ != ':')
            return NULL;
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", k);
        p = json_value(skip_ws(p), e, full, depth);
        if (!p)
            return NULL;
        p = skip_ws(p);
        if (*p == '}')
            return p + 1;
        if (*p++ != ',')
            return NULL;
        p = skip_ws(p);
    }
}

static const char *get(const struct ev *e, const char *key)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->kv[i].key, key))
            return e->kv[i].val;
    return NULL;
}

static bool is(const struct ev *e, const char *key, const char *val)
{
    const char *v = get(e, key);
    return v && !strcmp(v, val);
}

static double num(const struct ev *e, const char *key)
{
    const char *v = get(e, key);
    if (!v)
        TEST_FAIL("an event without %s", key);
    return strtod(v, NULL);
}

static long long inum(const struct ev *e, const char *key)
{
    return (long long)num(e, key);
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        TEST_FAIL("open %s: %s", path, strerror(errno));
    struct stat st;
    ASSERT_OK(fstat(fd, &st));
    char *buf = malloc((size_t)st.st_size + 1);
    ASSERT_NOT_NULL(buf);
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        ASSERT_GT(r, 0);
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * Read and check a trace file: "[" on the first line, then every line one complete JSON
 * object followed by a comma, each with ph, ts, pid, tid and name. With @partial_ok, a last
 * line without its newline (a writer killed in mid-write) is left out; otherwise it fails.
 */
static void trace_load(struct trace *t, const char *path, bool partial_ok)
{
    size_t len;
    char *buf = slurp(path, &len);
    if (strncmp(buf, "[\n", 2) != 0)
        TEST_FAIL("%s does not start with a \"[\" line", path);
    memset(t, 0, sizeof *t);
    int cap = 0, line = 1;
    for (char *p = buf + 2; *p; line++) {
        char *nl = strchr(p, '\n');
        if (!nl) {
            if (!partial_ok)
                TEST_FAIL("%s: line %d has no end: %.60s", path, line + 1, p);
            t->partial = true;
            break;
        }
        *nl = '\0';
        size_t n = strlen(p);
        if (n < 3 || p[n - 1] != ',')
            TEST_FAIL("%s: line %d is not an event and a comma: %.80s", path, line + 1, p);
        p[n - 1] = '\0';
        if (t->n == cap) {
            cap = cap ? cap * 2 : 256;
            t->ev = realloc(t->ev, (size_t)cap * sizeof *t->ev);
            ASSERT_NOT_NULL(t->ev);
        }
        struct ev *e = &t->ev[t->n];
        memset(e, 0, sizeof *e);
        const char *end = json_object(p, e, "", 0);
        if (!end || *skip_ws(end))
            TEST_FAIL("%s: line %d is not one JSON object: %.120s", path, line + 1, p);
        static const char *const need[] = {"ph", "ts", "pid", "tid", "name"};
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            if (!get(e, need[k]))
                TEST_FAIL("%s: line %d has no \"%s\": %.120s", path, line + 1, need[k], p);
        ASSERT_GE(num(e, "ts"), 0);
        if (is(e, "ph", "X"))
            ASSERT_GE(num(e, "dur"), 0);
        t->n++;
        p = nl + 1;
    }
    free(buf);
}

static void trace_free(struct trace *t)
{
    free(t->ev);
    memset(t, 0, sizeof *t);
}

/* The span of task number @seq (NULL if none); fails if there are two. */
static const struct ev *task_span(const struct trace *t, long long seq)
{
    const struct ev *found = NULL;
    for (int i = 0; i < t->n; i++) {
        const struct ev *e = &t->ev[i];
        if (is(e, "ph", "X") && is(e, "name", "task") && inum(e, "args.seq") == seq) {
            if (found)
                TEST_FAIL("two spans for task %lld", seq);
            found = e;
        }
    }
    return found;
}

/* The first instant named @name with args.@key == @val (any, if @key is NULL). */
static const struct ev *instant(const struct trace *t, const char *name, const char *key,
                                long long val)
{
    for (int i = 0; i < t->n; i++) {
        const struct ev *e = &t->ev[i];
        if (is(e, "ph", "i") && is(e, "name", name) && (!key || inum(e, key) == val))
            return e;
    }
    return NULL;
}

static int count(const struct trace *t, const char *ph, const char *name)
{
    int n = 0;
    for (int i = 0; i < t->n; i++)
        if (is(&t->ev[i], "ph", ph) && is(&t->ev[i], "name", name))
            n++;
    return n;
}

/* The name of the track (pid, tid), from its thread_name metadata; fails if it has none. */
static const char *track_name(const struct trace *t, long long pid, long long tid)
{
    for (int i = 0; i < t->n; i++) {
        const struct ev *e = &t->ev[i];
        if (is(e, "ph", "M") && is(e, "name", "thread_name") && inum(e, "pid") == pid &&
            inum(e, "tid") == tid)
            return get(e, "args.name");
    }
    TEST_FAIL("track %lld/%lld has no name", pid, tid);
}

/* The track of a worker is "<backend> worker <slot> (tid|pid <tid>)". */
static void assert_worker_track(const struct trace *t, const struct ev *e)
{
    char want[64];
    snprintf(want, sizeof want, "(%s %lld)", test_backend == EXEC_BACKEND_PROCESSES ? "pid" : "tid",
             inum(e, "tid"));
    const char *name = track_name(t, inum(e, "pid"), inum(e, "tid"));
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%s worker ", test_backend_name());
    if (strncmp(name, prefix, strlen(prefix)) != 0 || !strstr(name, want))
        TEST_FAIL("track \"%s\": want \"%s<slot> %s\"", name, prefix, want);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* The head of a job's argument (any size from 8 bytes up): fail with this status, sleep. */
struct job {
    int32_t fail;
    int32_t sleep_ms;
};

static void nap(int ms)
{
    for (int i = 0; i < ms && !exec_task_should_stop(); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static int t_job(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)out;
    (void)cap;
    (void)osz;
    struct job j = {0, 0};
    if (n >= sizeof j)
        memcpy(&j, arg, sizeof j);
    nap(j.sleep_ms);
    return j.fail;
}

static int t_segv(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)arg, (void)n, (void)out, (void)cap, (void)osz;
    raise(SIGSEGV);
    return 0;
}

static int t_gate(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)out, (void)cap, (void)osz;
    return task_gate_wait(arg);
}

/* Open @g and start a task on @ex that blocks on it; returns its future, RUNNING. */
static exec_future_t *start_blocker(exec_t *ex, struct gate *g)
{
    gate_open(g);
    char gp[GATE_PATH];
    gate_path(gp, g);
    exec_future_t *run = NULL;
    ASSERT_OK(exec_submit(ex, t_gate, gp, sizeof gp, &run));
    WAIT_STATE(run, EXEC_STATE_RUNNING);
    return run;
}

/* map: int64 x -> x + 1; status 5 when x % 7 == 3. */
static int t_inc(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n;
    (void)cap;
    (void)osz;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x % 7 == 3)
        return 5;
    x++;
    memcpy(out, &x, sizeof x);
    return 0;
}

static exec_t *traced(const char *path, int workers)
{
    exec_config_t cfg;
    test_config(&cfg);
    cfg.workers = workers;
    cfg.trace_path = path;
    exec_t *ex;
    ASSERT_OK(exec_create(&ex, &cfg));
    return ex;
}

static void submit_wait(exec_t *ex, exec_task_fn *fn, const void *arg, size_t n)
{
    exec_future_t *f;
    ASSERT_OK(exec_submit(ex, fn, arg, n, &f));
    ASSERT_OK(exec_future_wait(f, 10000));
    exec_future_release(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* 300 tasks of various argument sizes, some failing: one span each, with its number (the
 * order of submission), outcome and argument size, on a named worker track (on processes,
 * the pid of the worker that ran it); the executor's own track is named too. */
TEST(trace_task_spans)
{
    enum { N = 300 };
    const char *path = tmp_path("t.json");
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    exec_t *ex = traced(path, 2);
    exec_future_t *fs[N];
    unsigned char arg[256];
    memset(arg, 0, sizeof arg);
    for (int i = 0; i < N; i++) {
        struct job j = {i % 7 == 3 ? 3 : 0, 0};
        memcpy(arg, &j, sizeof j);
        ASSERT_OK(exec_submit(ex, t_job, arg, 8 + (size_t)(i % 5) * 40, &fs[i]));
    }
    int pids[N];
    for (int i = 0; i < N; i++) {
        ASSERT_OK(exec_future_wait(fs[i], 10000));
        exec_fault_t ft;
        ASSERT_OK(exec_future_fault(fs[i], &ft));
        pids[i] = ft.worker_pid;
        exec_future_release(fs[i]);
    }
    ASSERT_OK(exec_destroy(ex));
    clock_gettime(CLOCK_MONOTONIC, &after);

    struct trace t;
    trace_load(&t, path, false);
    ASSERT_EQ(count(&t, "M", "process_name"), 1);
    /* Every time is CLOCK_MONOTONIC in microseconds, inside the run (digits formatted by
     * hand: a wrong carry or a missing leading zero would land outside). */
    double lo = (double)before.tv_sec * 1e6 + (double)before.tv_nsec / 1e3;
    double hi = (double)after.tv_sec * 1e6 + (double)after.tv_nsec / 1e3;
    for (int i = 0; i < t.n; i++) {
        ASSERT_GE(num(&t.ev[i], "ts"), lo - 1);
        ASSERT_LE(num(&t.ev[i], "ts"), hi + 1);
    }
    char want[96];
    snprintf(want, sizeof want, "executor 1: %s, 2 workers (pid %d)", test_backend_name(),
             (int)getpid());
    for (int i = 0; i < t.n; i++)
        if (is(&t.ev[i], "name", "process_name"))
            ASSERT_STR_EQ(get(&t.ev[i], "args.name"), want);
    ASSERT_STR_EQ(track_name(&t, 1, 0), "executor 1 (queue)");
    ASSERT_EQ(count(&t, "X", "task"), N);
    for (int i = 0; i < N; i++) {
        const struct ev *e = task_span(&t, i + 1);
        if (!e)
            TEST_FAIL("no span for task %d", i + 1);
        ASSERT_EQ(inum(e, "pid"), 1);
        ASSERT_EQ(inum(e, "args.arg_size"), 8 + (i % 5) * 40);
        ASSERT_STR_EQ(get(e, "args.status"), i % 7 == 3 ? "EXEC_ETASK" : "EXEC_OK");
        if (i % 7 == 3)
            ASSERT_EQ(inum(e, "args.task_status"), 3);
        ASSERT_GE(num(e, "args.queued_us"), 0);
        ASSERT_NE(inum(e, "tid"), 0);
        if (test_backend == EXEC_BACKEND_PROCESSES)
            ASSERT_EQ(inum(e, "tid"), pids[i]);
        assert_worker_track(&t, e);
    }
    ASSERT_EQ(count(&t, "M", "trace_dropped"), 0);
    trace_free(&t);
}

/* exec_map of t_inc over items 0..n-1 in chunks of @chunk (some items fail: EXEC_ETASK),
 * then exec_destroy(), which writes the rest of the trace. */
static void map_and_destroy(exec_t *ex, int n, size_t chunk)
{
    static int64_t in[10000], out[10000];
    ASSERT_LE(n, 10000);
    for (int i = 0; i < n; i++)
        in[i] = i;
    exec_map_opts_t o = {0};
    o.chunk_size = chunk;
    ASSERT_ERR(exec_map(ex, t_inc, in, sizeof in[0], out, sizeof out[0], (size_t)n, &o),
               EXEC_ETASK);
    ASSERT_OK(exec_destroy(ex));
}

/* exec_map over 10,000 items in chunks of 100: one "map chunk" span per chunk, covering
 * every item once, with the number of items that failed in it. */
TEST(trace_map_chunks)
{
    enum { N = 10000, CHUNK = 100 };
    const char *path = tmp_path("t.json");
    map_and_destroy(traced(path, 2), N, CHUNK);

    struct trace t;
    trace_load(&t, path, false);
    /* A range taken back from a slow worker before it started runs again, maybe in
     * pieces: at least one span per chunk, and every item in exactly one. */
    ASSERT_GE(count(&t, "X", "map chunk"), N / CHUNK);
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < t.n; i++) {
        const struct ev *e = &t.ev[i];
        if (!is(e, "name", "map chunk"))
            continue;
        long long lo = inum(e, "args.lo"), hi = inum(e, "args.hi"), failed = 0;
        ASSERT_TRUE(lo >= 0 && lo < hi && hi <= N && hi - lo <= CHUNK);
        for (long long k = lo; k < hi; k++) {
            ASSERT_EQ(seen[k]++, 0);
            failed += k % 7 == 3;
        }
        ASSERT_EQ(inum(e, "args.failed"), failed);
        ASSERT_STR_EQ(get(e, "args.status"), failed ? "EXEC_ETASK" : "EXEC_OK");
        ASSERT_EQ(inum(e, "args.arg_size"), sizeof(int64_t));
        assert_worker_track(&t, e);
    }
    for (int k = 0; k < N; k++)
        ASSERT_EQ(seen[k], 1);
    trace_free(&t);
}

/* The mpi backend: every task and map chunk the serving ranks ran is a span of rank 0's
 * trace with its outcome, on the track of the worker that ran it: tid = its worker id + 1,
 * named "mpi worker <id> (rank <r>, pid <pid>)"; the tasks ran on both serving ranks. */
TEST(trace_mpi_ranks)
{
    enum { N = 200, M = 2000, CHUNK = 100 };
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 4);
    exec_future_t *fs[N];
    exec_fault_t ft[N];
    for (int i = 0; i < N; i++) {
        struct job j = {i % 7 == 3 ? 3 : 0, 0};
        ASSERT_OK(exec_submit(ex, t_job, &j, sizeof j, &fs[i]));
    }
    for (int i = 0; i < N; i++) {
        ASSERT_OK(exec_future_wait(fs[i], EXEC_WAIT_FOREVER));
        ASSERT_OK(exec_future_fault(fs[i], &ft[i]));
        exec_future_release(fs[i]);
    }
    map_and_destroy(ex, M, CHUNK);

    struct trace t;
    trace_load(&t, path, false);
    ASSERT_EQ(count(&t, "X", "task"), N);
    bool rank_seen[3] = {false, false, false};
    for (int i = 0; i < N; i++) {
        const struct ev *e = task_span(&t, i + 1);
        if (!e)
            TEST_FAIL("no span for task %d", i + 1);
        ASSERT_STR_EQ(get(e, "args.status"), i % 7 == 3 ? "EXEC_ETASK" : "EXEC_OK");
        if (i % 7 == 3)
            ASSERT_EQ(inum(e, "args.task_status"), 3);
        ASSERT_EQ(inum(e, "tid"), ft[i].worker_id + 1);
        ASSERT_TRUE(ft[i].rank == 1 || ft[i].rank == 2);
        rank_seen[ft[i].rank] = true;
        char want[96];
        snprintf(want, sizeof want, "mpi worker %d (rank %d, pid %d)", ft[i].worker_id,
                 ft[i].rank, ft[i].worker_pid);
        ASSERT_STR_EQ(track_name(&t, inum(e, "pid"), inum(e, "tid")), want);
    }
    ASSERT_TRUE(rank_seen[1] && rank_seen[2]);
    static unsigned char seen[M];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < t.n; i++) {
        const struct ev *e = &t.ev[i];
        if (!is(e, "name", "map chunk"))
            continue;
        long long lo = inum(e, "args.lo"), hi = inum(e, "args.hi"), failed = 0;
        ASSERT_TRUE(lo >= 0 && lo < hi && hi <= M);
        for (long long k = lo; k < hi; k++) {
            ASSERT_EQ(seen[k]++, 0);
            failed += k % 7 == 3;
        }
        ASSERT_EQ(inum(e, "args.failed"), failed);
        ASSERT_STR_EQ(get(e, "args.status"), failed ? "EXEC_ETASK" : "EXEC_OK");
        ASSERT_TRUE(strstr(track_name(&t, inum(e, "pid"), inum(e, "tid")), "(rank ") != NULL);
    }
    for (int k = 0; k < M; k++)
        ASSERT_EQ(seen[k], 1);
    ASSERT_EQ(count(&t, "M", "trace_dropped"), 0);
    trace_free(&t);
}

/* A task that raises SIGSEGV: its span ends EXEC_ECRASHED, a "crash" instant on the same
 * track says signal 11 and the task's number, and the replacement worker is a new track of
 * the same slot whose start comes after the crash; the next task runs there. */
TEST(trace_crash)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct job j = {0, 0};
    submit_wait(ex, t_job, &j, sizeof j);
    exec_future_t *f;
    ASSERT_OK(exec_submit(ex, t_segv, NULL, 0, &f));
    ASSERT_OK(exec_future_wait(f, 10000));
    ASSERT_ERR(exec_future_result(f, NULL, NULL), EXEC_ECRASHED);
    exec_future_release(f);
    submit_wait(ex, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(ex));

    struct trace t;
    trace_load(&t, path, false);
    const struct ev *first = task_span(&t, 1), *bad = task_span(&t, 2), *next = task_span(&t, 3);
    ASSERT_TRUE(first && bad && next);
    ASSERT_STR_EQ(get(bad, "args.status"), "EXEC_ECRASHED");
    ASSERT_EQ(inum(bad, "tid"), inum(first, "tid"));
    const struct ev *crash = instant(&t, "crash", "args.seq", 2);
    ASSERT_NOT_NULL(crash);
    ASSERT_EQ(inum(crash, "tid"), inum(bad, "tid"));
    ASSERT_EQ(inum(crash, "args.signal"), SIGSEGV);
    ASSERT_EQ(inum(crash, "args.exit_status"), -1);
    ASSERT_NE(inum(next, "tid"), inum(bad, "tid"));
    ASSERT_STR_EQ(get(next, "args.status"), "EXEC_OK");
    assert_worker_track(&t, next);
    ASSERT_TRUE(strstr(track_name(&t, 1, inum(next, "tid")), "worker 0 ") != NULL);
    ASSERT_TRUE(strstr(track_name(&t, 1, inum(bad, "tid")), "worker 0 ") != NULL);
    const struct ev *start = NULL;
    for (int i = 0; i < t.n; i++)
        if (is(&t.ev[i], "name", "worker start") && inum(&t.ev[i], "tid") == inum(next, "tid"))
            start = &t.ev[i];
    ASSERT_NOT_NULL(start);
    ASSERT_EQ(inum(start, "args.slot"), 0);
    ASSERT_GE(num(start, "ts"), num(crash, "ts"));
    ASSERT_GE(num(next, "ts"), num(start, "ts"));
    trace_free(&t);
}

/* A task past its timeout_ms: a "deadline" instant with its number and limit, about the
 * limit after its start, on its track; its span ends EXEC_ETIMEDOUT (on processes the
 * worker is killed: a "killed" instant too). */
TEST(trace_deadline)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct job j = {0, 5000};
    exec_submit_opts_t o = {0};
    o.timeout_ms = 50;
    exec_future_t *f;
    ASSERT_OK(exec_submit_ex(ex, t_job, &j, sizeof j, &o, &f));
    ASSERT_OK(exec_future_wait(f, 10000));
    ASSERT_ERR(exec_future_result(f, NULL, NULL), EXEC_ETIMEDOUT);
    exec_future_release(f);
    ASSERT_OK(exec_destroy(ex));

    struct trace t;
    trace_load(&t, path, false);
    const struct ev *span = task_span(&t, 1), *dl = instant(&t, "deadline", "args.seq", 1);
    ASSERT_TRUE(span && dl);
    ASSERT_STR_EQ(get(span, "args.status"), "EXEC_ETIMEDOUT");
    ASSERT_EQ(inum(dl, "args.timeout_ms"), 50);
    ASSERT_EQ(inum(dl, "tid"), inum(span, "tid"));
    double late = num(dl, "ts") - num(span, "ts");
    ASSERT_TRUE(late >= 45000 && late < 5000000);
    if (test_backend == EXEC_BACKEND_PROCESSES) {
        const struct ev *k = instant(&t, "killed", "args.seq", 1);
        ASSERT_NOT_NULL(k);
        ASSERT_EQ(inum(k, "tid"), inum(span, "tid"));
    }
    trace_free(&t);
}

/* A task cancelled while queued: a "cancel" instant ("queued") on the executor's track, no
 * span. A running one cancelled with EXEC_CANCEL_RUNNING: a "cancel" instant ("running")
 * on its worker's track, and its span ends EXEC_ECANCELLED. */
TEST(trace_cancel)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct gate g;
    exec_future_t *run = start_blocker(ex, &g), *queued;
    struct job j = {0, 0};
    ASSERT_OK(exec_submit(ex, t_job, &j, sizeof j, &queued));
    ASSERT_OK(exec_future_cancel(queued, 0));
    ASSERT_OK(exec_future_cancel(run, EXEC_CANCEL_RUNNING));
    gate_release(&g, 1); /* a thread keeps running its task until it returns */
    exec_future_release(run);
    exec_future_release(queued);
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);

    struct trace t;
    trace_load(&t, path, false);
    ASSERT_NULL(task_span(&t, 2));
    const struct ev *cq = instant(&t, "cancel", "args.seq", 2);
    ASSERT_NOT_NULL(cq);
    ASSERT_STR_EQ(get(cq, "args.when"), "queued");
    ASSERT_EQ(inum(cq, "tid"), 0);
    const struct ev *span = task_span(&t, 1), *cr = instant(&t, "cancel", "args.seq", 1);
    ASSERT_TRUE(span && cr);
    ASSERT_STR_EQ(get(cr, "args.when"), "running");
    ASSERT_EQ(inum(cr, "tid"), inum(span, "tid"));
    ASSERT_STR_EQ(get(span, "args.status"), "EXEC_ECANCELLED");
    trace_free(&t);
}

/* A cancelling shutdown: the tasks it cancels get a "cancel" instant ("shutdown"). */
TEST(trace_cancel_at_shutdown)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct gate g;
    exec_future_t *run = start_blocker(ex, &g), *fs[5];
    struct job j = {0, 0};
    for (int i = 0; i < 5; i++)
        ASSERT_OK(exec_submit(ex, t_job, &j, sizeof j, &fs[i]));
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT));
    gate_release(&g, 1);
    ASSERT_OK(exec_shutdown(ex, 0));
    for (int i = 0; i < 5; i++) {
        ASSERT_ERR(exec_future_result(fs[i], NULL, NULL), EXEC_ECANCELLED);
        exec_future_release(fs[i]);
    }
    exec_future_release(run);

    /* After a waiting shutdown the file holds everything, before exec_destroy(). */
    struct trace t;
    trace_load(&t, path, false);
    for (int i = 0; i < 5; i++) {
        const struct ev *c = instant(&t, "cancel", "args.seq", i + 2);
        ASSERT_NOT_NULL(c);
        ASSERT_STR_EQ(get(c, "args.when"), "shutdown");
        ASSERT_NULL(task_span(&t, i + 2));
    }
    ASSERT_NOT_NULL(task_span(&t, 1));
    trace_free(&t);
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);
}

/* max_tasks_per_child = 1: every worker runs one task on its own track and retires with a
 * "recycle" instant (reason max_tasks_per_child) on that track. */
TEST(trace_recycle)
{
    enum { N = 5 };
    const char *path = tmp_path("t.json");
    exec_config_t cfg;
    test_config(&cfg);
    cfg.workers = 1;
    cfg.max_tasks_per_child = 1;
    cfg.trace_path = path;
    exec_t *ex;
    ASSERT_OK(exec_create(&ex, &cfg));
    struct job j = {0, 0};
    for (int i = 0; i < N; i++)
        submit_wait(ex, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(ex));

    struct trace t;
    trace_load(&t, path, false);
    long long tids[N];
    for (int i = 0; i < N; i++) {
        const struct ev *e = task_span(&t, i + 1);
        ASSERT_NOT_NULL(e);
        tids[i] = inum(e, "tid");
        for (int k = 0; k < i; k++)
            ASSERT_NE(tids[k], tids[i]);
        assert_worker_track(&t, e);
    }
    int recycles = 0;
    for (int i = 0; i < t.n; i++) {
        const struct ev *e = &t.ev[i];
        if (!is(e, "ph", "i") || !is(e, "name", "recycle"))
            continue;
        recycles++;
        ASSERT_STR_EQ(get(e, "args.reason"), "max_tasks_per_child");
        ASSERT_EQ(inum(e, "args.tasks"), 1);
        bool known = false;
        for (int k = 0; k < N; k++)
            known |= tids[k] == inum(e, "tid");
        ASSERT_TRUE(known);
    }
    ASSERT_GE(recycles, N - 1);
    trace_free(&t);
}

/* EXEC_TRACE wins over trace_path: a path traces there, empty traces nothing; unset, the
 * config counts. The path is copied: the caller's string may change after exec_create(). */
TEST(trace_env_overrides)
{
    char a[256], b[256];
    snprintf(a, sizeof a, "%s", tmp_path("env.json"));
    snprintf(b, sizeof b, "%s", tmp_path("cfg.json"));
    struct job j = {0, 0};

    ASSERT_OK(setenv("EXEC_TRACE", a, 1));
    exec_t *ex = traced(b, 1);
    submit_wait(ex, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_FALSE(exists(b));
    struct trace t;
    trace_load(&t, a, false);
    ASSERT_NOT_NULL(task_span(&t, 1));
    trace_free(&t);

    ASSERT_OK(setenv("EXEC_TRACE", "", 1));
    ex = traced(b, 1);
    submit_wait(ex, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(ex));
    ASSERT_FALSE(exists(b));

    ASSERT_OK(unsetenv("EXEC_TRACE"));
    char mine[256];
    snprintf(mine, sizeof mine, "%s", b);
    ex = traced(mine, 1);
    memset(mine, 'x', sizeof mine - 1); /* exec_create() copied it */
    submit_wait(ex, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(ex));
    trace_load(&t, b, false);
    ASSERT_NOT_NULL(task_span(&t, 1));
    trace_free(&t);
}

/* A trace file that cannot be opened fails exec_create() with EXEC_ESYS (errno says why),
 * from the config or from EXEC_TRACE, and leaves nothing behind. */
TEST(trace_bad_path)
{
    exec_config_t cfg;
    test_config(&cfg);
    cfg.workers = 1;
    cfg.trace_path = tmp_path("no/such/dir/t.json");
    exec_t *ex = NULL;
    errno = 0;
    ASSERT_ERR(exec_create(&ex, &cfg), EXEC_ESYS);
    ASSERT_EQ(errno, ENOENT);
    ASSERT_NULL(ex);

    cfg.trace_path = NULL;
    ASSERT_OK(setenv("EXEC_TRACE", test_tmpdir(), 1)); /* a directory */
    errno = 0;
    ASSERT_ERR(exec_create(&ex, &cfg), EXEC_ESYS);
    ASSERT_EQ(errno, EISDIR);
    ASSERT_NULL(ex);
    ASSERT_OK(unsetenv("EXEC_TRACE"));
}

/* Events reach the file while the pool runs (the worker hands its buffer over when it goes
 * idle, the trace thread writes it), not only at the end. */
TEST(trace_written_while_running)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct job j = {0, 0};
    submit_wait(ex, t_job, &j, sizeof j);
    bool seen = false;
    for (uint64_t t0 = test_now_ms(); !seen && test_now_ms() - t0 < 3000;) {
        struct trace t;
        trace_load(&t, path, false);
        seen = task_span(&t, 1) != NULL;
        trace_free(&t);
        if (!seen)
            test_sleep_ms(10);
    }
    ASSERT_TRUE(seen);
    ASSERT_OK(exec_destroy(ex));
}

/* Several executors of one program share a file: one "[" line (the first one truncates it,
 * the others append), each executor its own "pid" and name. */
TEST(trace_executors_share_a_file)
{
    const char *path = tmp_path("t.json");
    FILE *old = fopen(path, "w");
    ASSERT_NOT_NULL(old);
    fputs("stale content of an older run\n", old);
    fclose(old);
    struct job j = {0, 0};
    exec_t *a = traced(path, 1);
    exec_t *b = traced(path, 2);
    submit_wait(a, t_job, &j, sizeof j);
    submit_wait(b, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(a));
    ASSERT_OK(exec_destroy(b));
    exec_t *c = traced(path, 1);
    submit_wait(c, t_job, &j, sizeof j);
    ASSERT_OK(exec_destroy(c));

    struct trace t;
    trace_load(&t, path, false); /* the stale line is gone, or this fails */
    ASSERT_EQ(count(&t, "M", "process_name"), 3);
    for (int pid = 1; pid <= 3; pid++) {
        int spans = 0;
        for (int i = 0; i < t.n; i++)
            if (is(&t.ev[i], "name", "task") && inum(&t.ev[i], "pid") == pid)
                spans++;
        ASSERT_EQ(spans, 1);
    }
    trace_free(&t);
}

/* A program killed with SIGKILL in the middle of a traced run leaves a file whose complete
 * lines all parse (only a last line cut in mid-write may be incomplete). */
TEST(trace_survives_sigkill)
{
    const char *path = tmp_path("t.json");
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        exec_config_t cfg;
        test_config(&cfg);
        cfg.workers = 2;
        cfg.trace_path = path;
        exec_t *ex;
        if (exec_create(&ex, &cfg) != 0)
            _exit(2);
        exec_future_t *fs[64];
        for (;;) {
            for (int i = 0; i < 64; i++)
                if (exec_submit(ex, task_noop, NULL, 0, &fs[i]) != 0)
                    _exit(3);
            for (int i = 0; i < 64; i++) {
                exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
                exec_future_release(fs[i]);
            }
        }
    }
    struct stat st = {0};
    uint64_t t0 = test_now_ms();
    while ((stat(path, &st) != 0 || st.st_size < 400000) && test_now_ms() - t0 < 20000)
        test_sleep_ms(5);
    ASSERT_OK(kill(child, SIGKILL));
    int ws;
    ASSERT_EQ(waitpid(child, &ws, 0), child);
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    ASSERT_GE(st.st_size, 400000);
    struct trace t;
    trace_load(&t, path, true);
    ASSERT_GE(count(&t, "X", "task"), 1000);
    trace_free(&t);
}

/* The trace allocates a bounded amount whatever the number of tasks (its buffers at their
 * first use, nothing per event), gives it all back, and drops nothing meanwhile. */
static uint64_t traced_run(const char *path, int tasks)
{
    uint64_t before = alloc_hook_calls(AH_MALLOC);
    long live = alloc_hook_live();
    exec_t *ex = traced(path, 2);
    exec_future_t *fs[64];
    for (int done = 0; done < tasks; done += 64) {
        for (int i = 0; i < 64; i++)
            ASSERT_OK(exec_submit(ex, task_noop, NULL, 0, &fs[i]));
        for (int i = 0; i < 64; i++) {
            ASSERT_OK(exec_future_wait(fs[i], 10000));
            exec_future_release(fs[i]);
        }
    }
    ASSERT_OK(exec_destroy(ex));
    ASSERT_EQ(alloc_hook_live(), live);
    uint64_t calls = alloc_hook_calls(AH_MALLOC) - before;
    struct trace t;
    trace_load(&t, path, false);
    ASSERT_EQ(count(&t, "X", "task"), tasks);
    ASSERT_EQ(count(&t, "M", "trace_dropped"), 0);
    trace_free(&t);
    unlink(path);
    return calls;
}

TEST(trace_memory_bounded)
{
    int big = 64 * 1000 / test_timeout_scale();
    alloc_hook_start();
    uint64_t small = traced_run(tmp_path("small.json"), 64 * 20);
    uint64_t large = traced_run(tmp_path("large.json"), big - big % 64);
    /* The same allocations for 50 times the tasks, give or take a few of the pool's own
     * (a worker thread that was not needed for the small run). */
    ASSERT_LE(large, small + 8);
}

/* Every allocation and thread start of a traced exec_create() failing in turn: each failure
 * is EXEC_ENOMEM or EXEC_ESYS (nothing left behind), or is absorbed (a worker whose trace
 * buffer could not be allocated loses its events and says how many in a trace_dropped
 * line); the pool works, and the file, when there is one, opens. */
static void fail_in_turn(int kind)
{
    const char *path = tmp_path("t.json");
    alloc_hook_start();
    long live0 = alloc_hook_live();
    int threads0 = test_count_threads(), fds0 = test_count_fds();
    struct job j = {0, 0};
    for (unsigned long n = 1;; n++) {
        ASSERT_LT(n, 200);
        exec_config_t cfg;
        test_config(&cfg);
        cfg.workers = 2;
        cfg.trace_path = path;
        exec_t *ex = NULL;
        alloc_hook_fail_nth(kind, n);
        int r = exec_create(&ex, &cfg);
        uint64_t hit = alloc_hook_disarm(kind);
        if (r == EXEC_OK) {
            submit_wait(ex, t_job, &j, sizeof j);
            ASSERT_OK(exec_destroy(ex));
            struct trace t;
            trace_load(&t, path, false);
            ASSERT_NOT_NULL(task_span(&t, 1));
            trace_free(&t);
        } else if (r != EXEC_ENOMEM && r != EXEC_ESYS) {
            TEST_FAIL("failing call #%lu of kind %d: %s", n, kind, exec_errname(r));
        }
        for (uint64_t t0 = test_now_ms(); test_count_threads() > threads0 &&
                                          test_now_ms() - t0 < 2000;)
            test_sleep_ms(1);
        ASSERT_EQ(alloc_hook_live(), live0);
        ASSERT_EQ(test_count_threads(), threads0);
        ASSERT_EQ(test_count_fds(), fds0);
        unlink(path);
        if (!hit)
            break; /* the n-th call was never made: every one has failed once */
    }
}

TEST(trace_alloc_fails)
{
    fail_in_turn(AH_MALLOC);
}

TEST(trace_thread_create_fails)
{
    fail_in_turn(AH_THREAD);
}

/* An event that finds no memory for its buffer is lost, counted, and the count is written
 * at the end (a trace_dropped metadata line); the pool is not affected. Here: the first
 * cancel, whose shared buffer cannot be allocated. */
TEST(trace_dropped_counted)
{
    const char *path = tmp_path("t.json");
    exec_t *ex = traced(path, 1);
    struct gate g;
    exec_future_t *run = start_blocker(ex, &g), *queued;
    struct job j = {0, 0};
    ASSERT_OK(exec_submit(ex, t_job, &j, sizeof j, &queued));
    alloc_hook_start();
    alloc_hook_fail_all(AH_MALLOC);
    ASSERT_OK(exec_future_cancel(queued, 0));
    ASSERT_GE(alloc_hook_disarm(AH_MALLOC), 1);
    gate_release(&g, 1);
    ASSERT_OK(exec_future_wait(run, 10000));
    ASSERT_OK(exec_future_result(run, NULL, NULL));
    exec_future_release(run);
    exec_future_release(queued);
    ASSERT_OK(exec_destroy(ex));
    gate_close(&g);

    struct trace t;
    trace_load(&t, path, false);
    ASSERT_NULL(instant(&t, "cancel", NULL, 0));
    ASSERT_NOT_NULL(task_span(&t, 1));
    ASSERT_EQ(count(&t, "M", "trace_dropped"), 1);
    for (int i = 0; i < t.n; i++)
        if (is(&t.ev[i], "name", "trace_dropped"))
            ASSERT_EQ(inum(&t.ev[i], "args.events"), 1);
    trace_free(&t);
}
