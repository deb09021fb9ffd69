/* SPDX-License-Identifier: MIT */
/*
 * test_decode.c - bytes that come from another process (issue 13, "Fuzzing and soak"): the
 * regression tests of what the fuzz targets of tests/fuzz/ look for, one per thing found.
 *
 *   - ring framing (exec__rq_peek): a PAD of size 0 made the supervisor loop forever; a
 *     message size past the published bytes or the end of the data, or a producer position
 *     more than a ring ahead, made it read (and MADV_REMOVE) outside the ring;
 *   - completions (exec__pp_cmp_ok): one for a request not in flight popped an empty FIFO;
 *     a result larger than its message was copied from outside the ring;
 *   - a dead worker's map progress (exec__pp_chunk_done): an offset not 16-aligned was read
 *     as int32 statuses (undefined behaviour);
 *   - zygote datagrams (exec__zrecv): a longer datagram was taken, cut to fit;
 *   - exec_shm_map() of a ref naming a FIFO blocked forever in open();
 *   - end to end, on the process backend: a task that overwrites its worker's completion
 *     ring in each of these ways fails with EXEC_ECRASHED (its worker is killed), and the
 *     pool keeps working with its counters right.
 */
#include "harness.h"
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/map.h"
#include "process/pool.h"

/* ---------------------------------------------------------------------------------------- */
/* A ring in private memory, as the parent's consumer side sees it                          */
/* ---------------------------------------------------------------------------------------- */

#define CAP 256u

struct tring {
    struct exec__ring r;
    _Alignas(64) unsigned char data[CAP];
    struct exec__rq q;
};

static void tring_init(struct tring *t, uint64_t head, uint64_t tail)
{
    memset(t, 0, sizeof *t);
    exec__ring_init(&t->r, CAP);
    atomic_store(&t->r.head, head);
    atomic_store(&t->r.tail, tail);
    exec__rq_attach(&t->q, &t->r, t->data, false);
}

static struct exec__msg *put(struct tring *t, uint64_t pos, uint32_t size, uint32_t kind,
                             uint64_t seq)
{
    struct exec__msg *m = (struct exec__msg *)(t->data + (pos & (CAP - 1)));
    m->size = size;
    m->kind = kind;
    m->seq = seq;
    return m;
}

/* The ring gives nothing and says it is broken. */
static void expect_bad(struct tring *t)
{
    ASSERT_NULL(exec__rq_peek(&t->q));
    ASSERT_TRUE(t->q.bad);
    ASSERT_NULL(exec__rq_peek(&t->q)); /* for good */
}

TEST(decode_ring_framing)
{
    struct tring t;
    /* Well-formed: a PAD to the end of the data, then a message at the start. */
    tring_init(&t, CAP - 32, CAP + 64);
    put(&t, CAP - 32, 32, EXEC__MSG_PAD, 0);
    put(&t, CAP, 64, EXEC__CMP_DONE, 1);
    struct exec__msg *m = exec__rq_peek(&t.q);
    ASSERT_NOT_NULL(m);
    ASSERT_EQ(m->seq, 1);
    ASSERT_EQ(t.q.msize, 64);
    m->size = 4096; /* the producer changes it after the check: next() does not follow */
    exec__rq_next(&t.q, m);
    ASSERT_NULL(exec__rq_peek(&t.q));
    ASSERT_FALSE(t.q.bad);

    tring_init(&t, 0, 16); /* a PAD of size 0: the consumer looped on it forever */
    put(&t, 0, 0, EXEC__MSG_PAD, 0);
    expect_bad(&t);
    tring_init(&t, 0, 64); /* a size that is not a multiple of 16 */
    put(&t, 0, 40, EXEC__CMP_DONE, 1);
    expect_bad(&t);
    tring_init(&t, 0, 64); /* larger than what was published */
    put(&t, 0, 128, EXEC__CMP_DONE, 1);
    expect_bad(&t);
    tring_init(&t, CAP - 64, CAP + 128); /* past the end of the data */
    put(&t, CAP - 64, 128, EXEC__CMP_DONE, 1);
    expect_bad(&t);
    tring_init(&t, 0, 1u << 30); /* a producer position far more than a ring ahead */
    put(&t, 0, 1u << 20, EXEC__CMP_DONE, 1);
    expect_bad(&t);
    tring_init(&t, 128, 64); /* behind the consumer */
    expect_bad(&t);

    /* A completion message shorter than a completion header. */
    tring_init(&t, 0, 16);
    put(&t, 0, 16, EXEC__CMP_DONE, 1);
    struct exec__cmpv cv[2];
    ASSERT_EQ(exec__pp_cmp_read(&t.q, cv, 2), 0);
    ASSERT_TRUE(t.q.bad);
}

/* ---------------------------------------------------------------------------------------- */
/* Completions                                                                               */
/* ---------------------------------------------------------------------------------------- */

static struct exec__cmpv cmpv(uint32_t kind, uint64_t seq, int32_t code, uint64_t size,
                              uint32_t nfailed, uint32_t msize)
{
    struct exec__cmpv v;
    memset(&v, 0, sizeof v);
    v.h.h.size = msize;
    v.h.h.kind = kind;
    v.h.h.seq = seq;
    v.h.code = code;
    v.h.size = size;
    v.h.nfailed = nfailed;
    v.msize = msize;
    return v;
}

TEST(decode_completion_checks)
{
    struct ent task = {.seq = 5, .kind = EXEC__REQ_TASK};
    struct exec__map map;
    memset(&map, 0, sizeof map);
    map.out_size = 8;
    struct ent chunk = {.seq = 9, .kind = EXEC__REQ_MAP, .map = &map, .lo = 10, .hi = 14};
    struct exec__cmpv v;

    /* What workers write. */
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_OK, 8, 0, 64 + 16);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_ETASK, 0, 0, 64);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_SKIP, 5, 0, 0, 0, 64);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_DONE, 9, EXEC_OK, 4, 0, 64 + 32);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, &chunk, 64));
    v = cmpv(EXEC__CMP_DONE, 9, EXEC_OK, 4, 1, 64 + 32 + 16);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, &chunk, 64));
    v = cmpv(EXEC__CMP_RETIRE, 0, 0, 0, 0, 64);
    v.h.flags = EXEC__CF_AGE;
    ASSERT_TRUE(exec__pp_cmp_ok(&v, NULL, 64));
    v = cmpv(EXEC__CMP_INITFAIL, 0, 0, 0, 0, 64);
    ASSERT_TRUE(exec__pp_cmp_ok(&v, NULL, 64));

    /* Found: a completion with no request in flight, or for another one (the FIFO was
     * popped empty). */
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_OK, 0, 0, 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, NULL, 64));
    v = cmpv(EXEC__CMP_DONE, 6, EXEC_OK, 0, 0, 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_SKIP, 4, 0, 0, 0, 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    /* Found: a result larger than its message (copied from past it), or than any result. */
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_OK, 17, 0, 64 + 16);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_OK, 1u << 20, 0, 64 + (1u << 20));
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    /* A chunk whose results or statuses do not fit, or do not match its items. */
    v = cmpv(EXEC__CMP_DONE, 9, EXEC_OK, 4, 1, 64 + 32);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &chunk, 64));
    v = cmpv(EXEC__CMP_DONE, 9, EXEC_OK, 5, 0, 64 + 48);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &chunk, 64));
    v = cmpv(EXEC__CMP_DONE, 9, EXEC_OK, 4, 5, 64 + 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &chunk, 64));
    /* Unknown kinds, flags and codes. */
    v = cmpv(99, 5, EXEC_OK, 0, 0, 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_OK, 0, 0, 64);
    v.h.flags = 64;
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
    v = cmpv(EXEC__CMP_DONE, 5, EXEC_ENOMEM, 0, 0, 64);
    ASSERT_FALSE(exec__pp_cmp_ok(&v, &task, 64));
}

TEST(decode_chunk_progress)
{
    struct ent e = {.seq = 3, .kind = EXEC__REQ_MAP, .lo = 0, .hi = 4};
    uint64_t cap = 4096;
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 2, 128, cap), 2);
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 4, 0, cap), 4);
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 2, 2, 128, cap), 0);          /* another chunk */
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 5, 128, cap), 0);          /* more than it has */
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 2, cap - 32, cap), 0);     /* does not fit */
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 2, UINT64_MAX - 8, cap), 0);
    /* Found: an offset that is not 16-aligned (its int32 statuses were read misaligned). */
    ASSERT_EQ(exec__pp_chunk_done(&e, 8, 3, 2, 130, cap), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Zygote datagrams                                                                          */
/* ---------------------------------------------------------------------------------------- */

TEST(decode_zygote_datagrams)
{
    int sv[2];
    ASSERT_OK(exec__seqpacket_pair(sv));
    struct exec__zmsg m = {EXEC__Z_SPAWNED, 1, 0, 1234, 0, 7}, got;
    unsigned char big[sizeof m + 8];
    memset(big, 0, sizeof big);
    memcpy(big, &m, sizeof m);
    /* Found: a longer datagram was taken, cut to fit. */
    ASSERT_OK(exec__dgram_send(sv[1], big, sizeof big, true));
    ASSERT_EQ(exec__zrecv(sv[0], &got, true), -1);
    ASSERT_OK(exec__dgram_send(sv[1], big, sizeof m - 4, true));
    ASSERT_EQ(exec__zrecv(sv[0], &got, true), -1);
    ASSERT_OK(exec__zsend(sv[1], &m, true));
    ASSERT_EQ(exec__zrecv(sv[0], &got, true), 1);
    ASSERT_MEM_EQ(&got, &m, sizeof m);
    ASSERT_EQ(exec__zrecv(sv[0], &got, true), 0);
    close(sv[0]);
    close(sv[1]);

    ASSERT_TRUE(exec__zmsg_ok(&m, true, 2));
    ASSERT_FALSE(exec__zmsg_ok(&m, false, 2)); /* an event is no command */
    ASSERT_FALSE(exec__zmsg_ok(&m, true, 1));  /* slot out of range */
    m.pid = 0;
    ASSERT_FALSE(exec__zmsg_ok(&m, true, 2));
    struct exec__zmsg c = {EXEC__Z_SPAWN, 1, 1, 0, 0, 7};
    ASSERT_TRUE(exec__zmsg_ok(&c, false, 2));
    c.rix = 2;
    ASSERT_FALSE(exec__zmsg_ok(&c, false, 2));
    c = (struct exec__zmsg){EXEC__Z_KILL, 0, 0, 99, SIGKILL, 0};
    ASSERT_TRUE(exec__zmsg_ok(&c, false, 2));
    c.arg = 1000;
    ASSERT_FALSE(exec__zmsg_ok(&c, false, 2));
    c.op = 77;
    ASSERT_FALSE(exec__zmsg_ok(&c, false, 2));
}

/* ---------------------------------------------------------------------------------------- */
/* exec_shm_ref_t                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* Found: a ref whose owner fd is a FIFO without a writer blocked exec_shm_map() in open()
 * for ever. It and a regular file are refused at once. */
TEST(decode_shm_ref_not_a_memfd)
{
    char dir[] = "/tmp/exec-decode-XXXXXX", path[4096];
    ASSERT_NOT_NULL(mkdtemp(dir));
    fmt(path, "%s/fifo", dir);
    ASSERT_OK(mkfifo(path, 0600));
    int fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fifo, 0);
    fmt(path, "%s/file", dir);
    int file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(file, 0);
    ASSERT_OK(ftruncate(file, 4096));
    int fds[2] = {fifo, file};
    for (int i = 0; i < 2; i++)
        for (unsigned ro = 0; ro < 2; ro++) {
            exec_shm_ref_t ref;
            memset(&ref, 0, sizeof ref);
            ref.size = 1;
            ref.id = 42;
            ref.owner_pid = (int32_t)getpid();
            ref.owner_fd = fds[i];
            void *p = SENTINEL;
            size_t n = 7;
            uint64_t t0 = test_now_ms();
            ASSERT_ERR(exec_shm_map(&ref, ro ? EXEC_SHM_RDONLY : 0, &p, &n), EXEC_ESYS);
            ASSERT_LT(test_now_ms() - t0, 5000);
            ASSERT_TRUE(p == SENTINEL || p == NULL);
        }
    close(fifo);
    close(file);
    fmt(path, "%s/fifo", dir);
    unlink(path);
    fmt(path, "%s/file", dir);
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* End to end: a task that overwrites its worker's completion ring                           */
/* ---------------------------------------------------------------------------------------- */

enum { SC_PAD0, SC_HUGE, SC_FAR, SC_SEQ, SC_RESULT, SC_N };

/* Writes junk of kind *arg at the producer end of its worker's completion ring, publishes
 * it, and waits to be killed for it (returns after 20 s if it is not: the test then fails
 * on the outcome instead of hanging). */
static int t_scribble(const void *arg, size_t arg_size, void *out, size_t out_cap,
                      size_t *out_size)
{
    (void)out, (void)out_cap, (void)out_size;
    int how;
    if (!task_arg(&how, sizeof how, arg, arg_size) || !exec__test_wregion)
        return BAD_CALL;
    struct exec__wregion *rg = exec__test_wregion;
    struct exec__ring *r = &rg->cmp;
    uint64_t tail = atomic_load(&r->tail), cap = r->cap;
    unsigned char *data = exec__wregion_cmp_data(rg);
    uint64_t off = tail & (cap - 1);
    if (cap - off < 128)
        return BAD_CALL; /* cannot happen: the ring is empty and MiBs large */
    struct exec__cmp *c = (struct exec__cmp *)(data + off);
    memset(c, 0, sizeof *c);
    c->h.size = sizeof *c;
    c->h.kind = EXEC__CMP_DONE;
    c->h.seq = atomic_load(&rg->cur_seq);
    uint64_t end = tail + sizeof *c;
    switch (how) {
    case SC_PAD0:
        c->h.size = 0;
        c->h.kind = EXEC__MSG_PAD;
        break;
    case SC_HUGE:
        c->h.size = 1u << 30;
        break;
    case SC_FAR:
        end = tail + 4 * cap;
        break;
    case SC_SEQ:
        c->h.seq += 1000;
        break;
    default: /* SC_RESULT */
        c->size = 1u << 20;
        break;
    }
    atomic_store(&r->tail, end);
    for (int i = 0; i < 2000; i++)
        usleep(10000);
    return 0;
}

TEST(decode_worker_scribbles_ring)
{
    exec_t *ex = make_workers(2);
    uint64_t crashed_before = 0;
    for (int how = 0; how < SC_N; how++) {
        exec_future_t *f;
        ASSERT_OK(exec_submit(ex, t_scribble, &how, sizeof how, &f));
        /* Other work keeps the supervisor awake (a scribble rings no doorbell). */
        uint64_t end = test_now_ms() + 20000u * (uint64_t)test_timeout_scale();
        while (exec_future_wait(f, 5) == EXEC_ETIMEDOUT && test_now_ms() < end) {
            exec_future_t *g = submit_echo_i64(ex, how);
            ASSERT_EQ(wait_i64(g), how);
            exec_future_release(g);
        }
        ASSERT_EQ(exec_future_state(f), EXEC_STATE_FAILED);
        exec_fault_t ft;
        ASSERT_OK(exec_future_fault(f, &ft));
        ASSERT_EQ(ft.code, EXEC_ECRASHED);
        ASSERT_EQ(ft.signal, SIGKILL);
        exec_future_release(f);
        exec_stats_t st = stats_of(ex);
        ASSERT_GT(st.retired_crash, crashed_before);
        crashed_before = st.retired_crash;
    }
    /* The pool works on, and its counters add up. */
    for (int i = 0; i < 100; i++) {
        exec_future_t *g = submit_echo_i64(ex, i);
        ASSERT_EQ(wait_i64(g), i);
        exec_future_release(g);
    }
    exec_stats_t st = stats_of(ex);
    ASSERT_EQ(st.completed + st.failed + st.cancelled, st.submitted);
    ASSERT_EQ(st.failed, SC_N);
    ASSERT_OK(exec_destroy(ex));
}

/* Overwrites the header of the request queued after its own in its worker's request ring
 * (argument size, message size), then crashes. */
static int t_scribble_next(const void *arg, size_t arg_size, void *out, size_t out_cap,
                           size_t *out_size)
{
    (void)arg_size, (void)out, (void)out_cap, (void)out_size;
    struct exec__req *own = (struct exec__req *)arg - 1; /* the argument lies in the ring */
    volatile struct exec__req *next =
        (struct exec__req *)((unsigned char *)own + own->h.size);
    for (int i = 0; i < 5000 && !(next->h.kind == EXEC__REQ_TASK &&
                                  next->h.seq == own->h.seq + 1); i++)
        usleep(1000); /* until the test's next submit is in the ring */
    if (next->h.kind == EXEC__REQ_TASK) {
        next->arg_size = (uint64_t)64 << 20;
        next->h.size = 1u << 30;
    }
    abort();
}

/* Found by review while writing fuzz_ring: when a worker died, the parent took back the
 * requests it had not started with the argument size and message size read from the ring,
 * which the dead worker's task could have overwritten (a 64 MiB copy out of a 1 MiB ring; a
 * MADV_REMOVE past it). The parent now keeps both from when it wrote the request. */
TEST(decode_worker_scribbles_request)
{
    exec_t *ex = make_workers(1);
    int64_t x = 7;
    exec_future_t *a, *b;
    /* One worker: b waits in the ring behind a. */
    ASSERT_OK(exec_submit(ex, t_scribble_next, &x, sizeof x, &a));
    ASSERT_OK(exec_submit(ex, task_echo, &x, sizeof x, &b));
    ASSERT_OK(exec_future_wait(a, EXEC_WAIT_FOREVER));
    ASSERT_EQ(exec_future_state(a), EXEC_STATE_FAILED);
    ASSERT_EQ(wait_i64(b), 7);
    RELEASE_ALL(a, b);
    ASSERT_OK(exec_destroy(ex));
}
