/* SPDX-License-Identifier: MIT */
/*
 * core/trace.c - the trace of a run: the file, the lanes of recorded events, the trace thread
 * that writes them, and the hand-over between them (see core/trace.h). The JSON itself is
 * written by core/trace_json.c.
 *
 * The file. One trace file may hold several executors of one program (each its own "pid" in
 * the JSON, numbered from 1 in the order they were created): the first executor of this
 * process that opens a path starts it afresh with the opening "[", later ones append. The
 * Trace Event format lets an array end without its "]", and every line is one complete event
 * followed by a comma, so a file cut after any complete line (a crash, a kill) still opens.
 */
#include "core/trace_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backend.h"

/* ---------------------------------------------------------------------------------------- */
/* Files this process started                                                                */
/* ---------------------------------------------------------------------------------------- */

/* The files (by device and inode) this process truncated and opened with "[": a later
 * executor tracing to one of them appends. A small ring: a program with more than this many
 * trace files starts the oldest again, which only costs the older events of that file. */
#define STARTED_MAX 32
static pthread_mutex_t started_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dev_t dev;
    ino_t ino;
} started[STARTED_MAX];
static unsigned nstarted;
static _Atomic uint32_t next_id; /* executors traced by this process */

static bool started_has(dev_t dev, ino_t ino)
{
    unsigned n = nstarted < STARTED_MAX ? nstarted : STARTED_MAX;
    for (unsigned i = 0; i < n; i++)
        if (started[i].dev == dev && started[i].ino == ino)
            return true;
    return false;
}

/* Open @path to append to it: as it is if this process started it already, else afresh
 * with its "[" line. The fd, or -1 with errno. A non-empty regular file is replaced rather
 * than truncated: ext4 writes a file truncated to zero back to disk when it is closed
 * (auto_da_alloc), which would stall exec_destroy() on a big trace. */
static int open_file(const char *path)
{
    pthread_mutex_lock(&started_lock);
    struct stat st;
    bool known = stat(path, &st) == 0 && started_has(st.st_dev, st.st_ino);
    if (!known && lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        (void)unlink(path); /* if that fails, it is truncated below */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = errno;
    if (fd >= 0 && !known) {
        if (fstat(fd, &st) != 0 || (S_ISREG(st.st_mode) && st.st_size > 0 &&
                                    ftruncate(fd, 0) != 0) ||
            exec__trace_write_all(fd, "[\n", 2) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        } else {
            started[nstarted % STARTED_MAX].dev = st.st_dev;
            started[nstarted % STARTED_MAX].ino = st.st_ino;
            nstarted++;
        }
    }
    pthread_mutex_unlock(&started_lock);
    errno = err;
    return fd;
}

int exec__trace_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing buffers                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Write @len bytes of whole lines from @fbuf, holding @cnt events. Writes of several
 * formatters do not interleave: each is one write(2) on an O_APPEND fd, and wlock keeps them
 * whole on a pipe too. */
static void flush(struct exec__trace *t, const char *fbuf, size_t len, uint32_t cnt)
{
    if (!len)
        return;
    pthread_mutex_lock(&t->wlock);
    bool ok = !atomic_load_explicit(&t->werr, memory_order_relaxed) &&
              exec__trace_write_all(t->fd, fbuf, len) == 0;
    if (!ok)
        atomic_store_explicit(&t->werr, true, memory_order_relaxed);
    pthread_mutex_unlock(&t->wlock);
    if (!ok)
        atomic_fetch_add_explicit(&t->dropped, cnt, memory_order_relaxed);
}

/* Format and write the @n events at @ev in @fbuf (whoever holds their buffer BUSY). No lock
 * while formatting: every formatter has its own @fbuf. */
static void write_events(struct exec__trace *t, char *fbuf, const struct exec__tev *ev,
                         uint32_t n)
{
    if (atomic_load_explicit(&t->werr, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&t->dropped, n, memory_order_relaxed);
        return;
    }
    struct exec__tfmt fx;
    exec__trace_fmt_begin(t, &fx);
    size_t len = 0;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (EXEC__TRACE_FBUF - len < EXEC__TRACE_LINE_MAX) {
            flush(t, fbuf, len, cnt);
            len = 0;
            cnt = 0;
        }
        len += exec__trace_format(&fx, &ev[i], fbuf + len);
        cnt++;
    }
    flush(t, fbuf, len, cnt);
}

/* Make @b (of a lane whose format buffer is @fbuf) free for its writer: write it now if it
 * is full, wait if the trace thread is writing it. */
static void make_free(struct exec__trace *t, char *fbuf, struct exec__tbuf *b)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(&b->state, memory_order_acquire);
        if (s == EXEC__TBUF_FREE)
            return;
        if (s == EXEC__TBUF_FULL &&
            atomic_compare_exchange_strong_explicit(&b->state, &s, EXEC__TBUF_BUSY,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            write_events(t, fbuf, b->ev, b->n);
            atomic_store_explicit(&b->state, EXEC__TBUF_FREE, memory_order_release);
            return; /* nobody waits for a buffer its writer writes */
        }
        if (s == EXEC__TBUF_BUSY)
            (void)exec__futex_wait(&b->state, EXEC__TBUF_BUSY, 0);
    }
}

/* The trace thread: write @b if it is full; never waits. */
static void write_if_full(struct exec__trace *t, struct exec__tbuf *b)
{
    uint32_t s = EXEC__TBUF_FULL;
    if (atomic_load_explicit(&b->state, memory_order_relaxed) != EXEC__TBUF_FULL ||
        !atomic_compare_exchange_strong_explicit(&b->state, &s, EXEC__TBUF_BUSY,
                                                 memory_order_acquire, memory_order_relaxed))
        return;
    write_events(t, t->fbuf, b->ev, b->n);
    atomic_store_explicit(&b->state, EXEC__TBUF_FREE, memory_order_release);
    exec__futex_wake(&b->state, INT_MAX);
}

/* ---------------------------------------------------------------------------------------- */
/* Lanes                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void ring_bell(struct exec__trace *t)
{
    atomic_fetch_add_explicit(&t->bell, 1, memory_order_release);
    exec__futex_wake(&t->bell, 1);
}

/* The writer hands its buffer over, if it holds any event; an empty one it keeps. */
static void handover(struct exec__tlane *l)
{
    if (!l->ev || l->pos == 0)
        return;
    struct exec__tbuf *b = &l->buf[l->cur];
    b->n = l->pos;
    atomic_store_explicit(&b->state, EXEC__TBUF_FULL, memory_order_release);
    l->cur ^= 1;
    l->ev = NULL;
    l->pos = EXEC__TLANE_EVENTS;
    if (l->offload)
        ring_bell(l->t);
}

/* The writer takes buf[cur] to fill: allocated at first use, written out first if it still
 * waits for the trace thread. False when it cannot be allocated. */
static bool take(struct exec__tlane *l)
{
    struct exec__tbuf *b = &l->buf[l->cur];
    if (!l->fbuf) {
        l->fbuf = malloc(EXEC__TRACE_FBUF);
        if (!l->fbuf)
            return false;
    }
    if (!b->ev) {
        b->ev = malloc(EXEC__TLANE_EVENTS * sizeof *b->ev);
        if (!b->ev)
            return false;
    }
    make_free(l->t, l->fbuf, b);
    l->ev = b->ev;
    l->pos = 0;
    return true;
}

struct exec__tev *exec__tlane_slow(struct exec__tlane *l)
{
    if (atomic_load_explicit(&l->want, memory_order_relaxed))
        atomic_store_explicit(&l->want, 0, memory_order_relaxed);
    handover(l);
    if (!l->ev && !take(l)) {
        atomic_fetch_add_explicit(&l->t->dropped, 1, memory_order_relaxed);
        return &l->spare;
    }
    return &l->ev[l->pos++];
}

void exec__tlane_idle(struct exec__tlane *l)
{
    if (l->pos && l->ev)
        handover(l);
}

struct exec__tlane *exec__trace_lane(struct exec__trace *t, int i, bool offload)
{
    if (!t)
        return NULL;
    t->lanes[i].offload = offload;
    return &t->lanes[i];
}

struct exec__tev *exec__trace_shared_begin(struct exec__trace *t)
{
    pthread_mutex_lock(&t->shared_lock);
    return exec__tlane_ev(&t->shared);
}

void exec__trace_shared_end(struct exec__trace *t)
{
    pthread_mutex_unlock(&t->shared_lock);
}

void exec__trace_shared_instant(struct exec__trace *t, int kind, uint32_t tid, uint64_t a,
                                uint64_t b, int32_t c, int32_t d)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->shared_lock);
    exec__trace_instant(&t->shared, kind, tid, a, b, c, d);
    pthread_mutex_unlock(&t->shared_lock);
}

static void lane_init(struct exec__trace *t, struct exec__tlane *l)
{
    memset(l, 0, sizeof *l);
    l->t = t;
    l->pos = EXEC__TLANE_EVENTS;
}

static void lane_free(struct exec__tlane *l)
{
    free(l->fbuf);
    free(l->buf[0].ev);
    free(l->buf[1].ev);
}

/* ---------------------------------------------------------------------------------------- */
/* The trace thread                                                                          */
/* ---------------------------------------------------------------------------------------- */

static void write_all_full(struct exec__trace *t)
{
    for (int i = 0; i < t->nlanes; i++) {
        write_if_full(t, &t->lanes[i].buf[0]);
        write_if_full(t, &t->lanes[i].buf[1]);
    }
    write_if_full(t, &t->shared.buf[0]);
    write_if_full(t, &t->shared.buf[1]);
}

/* Ask every lane for what it holds: private ones at their next event, the shared one now
 * (its lock makes us its writer for a moment). */
static void ask_all(struct exec__trace *t)
{
    for (int i = 0; i < t->nlanes; i++)
        atomic_store_explicit(&t->lanes[i].want, 1, memory_order_relaxed);
    if (pthread_mutex_trylock(&t->shared_lock) == 0) {
        handover(&t->shared);
        pthread_mutex_unlock(&t->shared_lock);
    }
}

static void *trace_main(void *arg)
{
    struct exec__trace *t = arg;
    uint64_t next = exec__now_ns() + EXEC__TRACE_PERIOD_NS;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&t->bell, memory_order_acquire);
        write_all_full(t);
        if (atomic_load_explicit(&t->stop, memory_order_acquire))
            break;
        uint64_t now = exec__now_ns();
        if (now >= next) {
            ask_all(t);
            next = now + EXEC__TRACE_PERIOD_NS;
            continue;
        }
        (void)exec__futex_wait(&t->bell, seen, next);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Open, sync, close                                                                         */
/* ---------------------------------------------------------------------------------------- */

static void trace_free(struct exec__trace *t, bool destroy_locks)
{
    if (t->lanes)
        for (int i = 0; i < t->nlanes; i++)
            lane_free(&t->lanes[i]);
    lane_free(&t->shared);
    free(t->lanes);
    free(t->fbuf);
    free(t->path);
    if (destroy_locks) {
        pthread_mutex_destroy(&t->wlock);
        pthread_mutex_destroy(&t->shared_lock);
        pthread_mutex_destroy(&t->sync_lock);
    }
    free(t);
}

/* Everything but the file and the thread. */
static struct exec__trace *trace_alloc(const char *path, int nlanes)
{
    /* aligned_alloc: the shared lane inside is cache-line aligned. */
    size_t size = (sizeof(struct exec__trace) + EXEC__CACHELINE - 1) / EXEC__CACHELINE *
                  EXEC__CACHELINE;
    struct exec__trace *t = aligned_alloc(EXEC__CACHELINE, size);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->nlanes = nlanes;
    pthread_mutex_init(&t->wlock, NULL);
    pthread_mutex_init(&t->shared_lock, NULL);
    pthread_mutex_init(&t->sync_lock, NULL);
    lane_init(t, &t->shared);
    t->path = strdup(path);
    t->lanes = aligned_alloc(EXEC__CACHELINE, (size_t)nlanes * sizeof *t->lanes);
    if (t->lanes)
        for (int i = 0; i < nlanes; i++)
            lane_init(t, &t->lanes[i]);
    t->fbuf = malloc(EXEC__TRACE_FBUF);
    if (!t->path || !t->lanes || !t->fbuf) {
        trace_free(t, true);
        return NULL;
    }
    return t;
}

int exec__trace_open(struct exec *core, const char *path)
{
    exec__ticks_init();
    struct exec__trace *t = trace_alloc(path, core->cfg.workers + 1);
    if (!t)
        return EXEC_ENOMEM;
    t->backend = core->ops->name;
    t->workers = core->cfg.workers;
    t->ospid = (int)getpid();
    t->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) + 1;
    t->fork_gen = exec__fork_gen();
    t->tick0 = exec__trace_clock_pair(&t->ns0);
    t->fd = open_file(path);
    int err = errno;
    if (t->fd < 0 || exec__trace_header(t) != 0) {
        err = errno;
        if (t->fd >= 0)
            close(t->fd);
        trace_free(t, true);
        errno = err;
        return EXEC_ESYS;
    }
    err = exec__thread_start(&t->thread, 0, trace_main, t);
    if (err) {
        close(t->fd);
        trace_free(t, true);
        errno = err;
        return EXEC_ESYS;
    }
    core->trace = t;
    return EXEC_OK;
}

const char *exec__trace_path(const struct exec__trace *t)
{
    return t->path;
}

void exec__trace_sync(struct exec__trace *t)
{
    pthread_mutex_lock(&t->sync_lock);
    for (int i = 0; i < t->nlanes; i++) {
        struct exec__tlane *l = &t->lanes[i];
        handover(l); /* its writer is gone: we are it */
        make_free(t, l->fbuf, &l->buf[0]);
        make_free(t, l->fbuf, &l->buf[1]);
    }
    pthread_mutex_lock(&t->shared_lock);
    handover(&t->shared);
    make_free(t, t->shared.fbuf, &t->shared.buf[0]);
    make_free(t, t->shared.fbuf, &t->shared.buf[1]);
    pthread_mutex_unlock(&t->shared_lock);
    pthread_mutex_unlock(&t->sync_lock);
}

void exec__trace_close(struct exec__trace *t)
{
    atomic_store_explicit(&t->stop, true, memory_order_release);
    ring_bell(t);
    pthread_join(t->thread, NULL);
    exec__trace_sync(t);
    exec__trace_footer(t);
    close(t->fd);
    trace_free(t, true);
}

void exec__trace_forget(struct exec__trace *t)
{
    /* The trace thread and the writers are the parent's; so is what they did not write. */
    close(t->fd);
    trace_free(t, false);
}
