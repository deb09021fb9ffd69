/* SPDX-License-Identifier: MIT */
/*
 * test_map_faults.c - the one failure semantics of exec_map on every backend (core/map.c):
 * an item that ran keeps its status and result, an item a cancelling shutdown caught before
 * it ran is EXEC_ECANCELLED, and on processes a worker that dies in the middle of a chunk
 * fails only the item it was running: the items it had finished keep their results and the
 * ones it had not started run on another worker, exactly once.
 *
 * Items count their runs in memory shared with worker processes: a file of the test's
 * directory, mapped before the executor is created (so every local worker inherits it) and
 * mapped by an item itself where it is not (the serving ranks of the mpi backend, which run
 * the crash tests on local process pools: tests/mpi_list.h).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gate.h"
#include "harness.h"
#include "tasks.h"

enum { N = 1000 };

struct shared {
    _Atomic int runs[N];
};
static struct shared *_Atomic sh;
static char sh_path[GATE_PATH];

static struct shared *sh_open(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static void sh_map(void)
{
    snprintf(sh_path, sizeof sh_path, "%s/runs", test_tmpdir());
    int fd = open(sh_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(ftruncate(fd, sizeof(struct shared)), 0);
    close(fd);
    sh = sh_open(sh_path);
    ASSERT_TRUE(sh != NULL);
}

static void sh_unmap(void)
{
    munmap(sh, sizeof(struct shared));
    sh = NULL;
}

/* The counters, in any process: a serving rank maps them at its first item. */
static struct shared *counters(const char *path)
{
    struct shared *s = atomic_load(&sh), *none = NULL;
    if (s)
        return s;
    s = sh_open(path);
    if (!s)
        return NULL;
    if (!atomic_compare_exchange_strong(&sh, &none, s)) {
        munmap(s, sizeof *s);
        s = none;
    }
    return s;
}

/* Workers of a process pool (on the mpi backend: local process pools on the ranks). */
static exec_t *make_process_workers(int workers)
{
    exec_config_t c = config_workers(workers);
    c.mpi_local_backend = test_backend == EXEC_BACKEND_MPI ? EXEC_BACKEND_PROCESSES : 0;
    return make_exec(&c);
}

/* An item: its index; items below `block_below` say they started on one gate and wait on
 * another. */
struct item {
    int64_t idx;
    int64_t block_below;
    char started[GATE_PATH];
    char go[GATE_PATH];
    char runs[GATE_PATH]; /* the counters' file */
};

/* Result idx * 3 + 1. Items whose index is in crash_at[] die by SIGSEGV... once: a rerun
 * would count twice and fail the test. */
static const int64_t crash_at[] = {550, 600, 699};

static int item_fn(const void *arg, size_t n, void *out, size_t cap, size_t *osz)
{
    (void)n, (void)cap;
    const struct item *it = arg;
    struct shared *s = counters(it->runs);
    if (!s)
        return 3;
    atomic_fetch_add(&s->runs[it->idx], 1);
    if (it->idx < it->block_below) {
        if (task_gate_post(it->started, 's') != 0 || task_gate_wait(it->go) != 0)
            return 2;
    }
    if (it->block_below < 0)
        for (size_t i = 0; i < sizeof crash_at / sizeof crash_at[0]; i++)
            if (it->idx == crash_at[i])
                raise(SIGSEGV);
    int64_t r = it->idx * 3 + 1;
    memcpy(out, &r, sizeof r);
    *osz = sizeof r;
    return 0;
}

static struct item *items(int64_t block_below, const struct gate *started,
                          const struct gate *go)
{
    static struct item in[N];
    for (int i = 0; i < N; i++) {
        memset(&in[i], 0, sizeof in[i]);
        in[i].idx = i;
        in[i].block_below = block_below;
        memcpy(in[i].runs, sh_path, sizeof sh_path);
        if (started) {
            gate_path(in[i].started, started);
            gate_path(in[i].go, go);
        }
    }
    return in;
}

struct call {
    exec_t *ex;
    struct item *in;
    int64_t *out;
    int *status;
    exec_map_opts_t opts;
    int r;
};

static void *map_thread(void *p)
{
    struct call *c = p;
    c->r = exec_map(c->ex, item_fn, c->in, sizeof *c->in, c->out, sizeof *c->out, N, &c->opts);
    return NULL;
}

/* A cancelling shutdown in the middle of a map: the two items running keep their results,
 * every other item is EXEC_ECANCELLED and never ran; the map says EXEC_ECANCELLED. */
TEST(map_cancel_keeps_ran)
{
    sh_map();
    struct gate started, go;
    gate_open(&started);
    gate_open(&go);
    static int64_t out[N];
    static int status[N];
    memset(out, 0, sizeof out);
    exec_t *ex = make_workers(2);
    struct call c = {ex, items(2, &started, &go), out, status, {0}, 0};
    c.opts.chunk_size = 1;
    c.opts.status = status;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, map_thread, &c), 0);
    ASSERT_EQ(gate_read_within(&started, 5000), 's'); /* items 0 and 1 run, and wait */
    ASSERT_EQ(gate_read_within(&started, 5000), 's');
    ASSERT_OK(exec_shutdown(ex, EXEC_SHUTDOWN_CANCEL | EXEC_SHUTDOWN_NOWAIT));
    gate_release(&go, 2);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_ERR(c.r, EXEC_ECANCELLED);
    ASSERT_EQ(c.opts.failed, N - 2);
    ASSERT_EQ(c.opts.first_failed, 2);
    for (int i = 0; i < N; i++) {
        if (i < 2) {
            ASSERT_EQ(status[i], 0);
            ASSERT_EQ(out[i], 3 * (int64_t)i + 1);
            ASSERT_EQ(atomic_load(&sh->runs[i]), 1);
        } else {
            ASSERT_EQ(status[i], EXEC_ECANCELLED);
            ASSERT_EQ(atomic_load(&sh->runs[i]), 0);
        }
    }
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.map_items, 2); /* items that ran */
    ASSERT_OK(exec_destroy(ex));
    gate_close(&started);
    gate_close(&go);
    sh_unmap();
}

static bool crashes(int i)
{
    for (size_t k = 0; k < sizeof crash_at / sizeof crash_at[0]; k++)
        if (crash_at[k] == i)
            return true;
    return false;
}

static void check_crash_outcome(const int *status, const int64_t *out)
{
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(atomic_load(&sh->runs[i]), 1); /* every item ran once, no more */
        if (crashes(i)) {
            ASSERT_EQ(status[i], EXEC_ECRASHED);
        } else {
            ASSERT_EQ(status[i], 0);
            ASSERT_EQ(out[i], 3 * (int64_t)i + 1);
        }
    }
}

/* Workers die in the middle of a chunk (550), at its first item (600) and at its last (699):
 * exactly those items fail; the rest of each chunk runs elsewhere, once. */
TEST(process_map_crash_keeps_finished)
{
    sh_map();
    static int64_t out[N];
    static int status[N];
    exec_t *ex = make_process_workers(2);
    exec_map_opts_t o = {0};
    o.chunk_size = 100;
    o.status = status;
    struct item *in = items(-1, NULL, NULL);
    ASSERT_ERR(exec_map(ex, item_fn, in, sizeof *in, out, sizeof *out, N, &o), EXEC_ECRASHED);
    ASSERT_EQ(o.failed, 3);
    ASSERT_EQ(o.first_failed, 550);
    check_crash_outcome(status, out);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.map_items, N - 3);
    ASSERT_EQ(st.retired_crash, 3);
    ASSERT_OK(exec_destroy(ex));
    sh_unmap();
}

struct seen {
    int count[N];
    int status[N];
    int64_t result[N];
};

static void on_item(size_t index, int status, const void *result, void *user_data)
{
    struct seen *s = user_data;
    s->count[index]++;
    s->status[index] = status;
    if (result)
        memcpy(&s->result[index], result, sizeof(int64_t));
}

/* The same through exec_map_unordered(): each item is handed over exactly once, the crashed
 * ones with EXEC_ECRASHED, even though their chunks completed in pieces. */
TEST(process_map_unordered_crash)
{
    sh_map();
    static int64_t out[N];
    static struct seen s;
    memset(&s, 0, sizeof s);
    exec_t *ex = make_process_workers(2);
    exec_map_opts_t o = {0};
    o.chunk_size = 100;
    struct item *in = items(-1, NULL, NULL);
    ASSERT_ERR(exec_map_unordered(ex, item_fn, in, sizeof *in, out, sizeof *out, N, on_item,
                                  &s, &o),
               EXEC_ECRASHED);
    ASSERT_EQ(o.failed, 3);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(s.count[i], 1);
    check_crash_outcome(s.status, s.result);
    ASSERT_OK(exec_destroy(ex));
    sh_unmap();
}
