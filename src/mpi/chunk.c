/* SPDX-License-Identifier: MIT */
/*
 * mpi/chunk.c - map chunks whose items end one by one: a serving rank with a local PROCESS
 * pool runs a chunk as a map of its own on that pool (the one map driver there), so a worker
 * that dies under an item fails that item only; the items it had finished keep their results
 * and the ones it had not started run on another local worker, exactly once. Rank 0 then
 * accounts for the chunk item by item (core/map.h allows a range in pieces).
 *
 * The local map blocks its caller, and a serving rank's main thread must keep receiving, so
 * chunks go to a few map threads (one per two local workers, at least one, at most four);
 * an ended chunk goes onto a done list, and the loop's callback wakes it. On a local
 * THREAD pool a crash ends the rank whatever we do, so chunks stay one local task there.
 *
 * Each item runs through exec__mpi_run_item(): its argument is a header (the function and
 * the sizes) then the item, its result the item's status then its result, and it always
 * returns 0. So in the local map's statuses, 0 means "ran" (the status is in the result) and
 * anything else is the local driver's code for an item that never ran to its end
 * (EXEC_ECRASHED, EXEC_ECANCELLED, EXEC_EBROKEN).
 *
 * The reply (struct mpi__result, flags MPI__RESULT_ITEMS): count int statuses, count int
 * codes (0: ran), then count results of out_size bytes.
 */
#include "mpi/mpi.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "sys/sys.h"

#define ALIGN_UP(n) (((n) + _Alignof(max_align_t) - 1) & ~(size_t)(_Alignof(max_align_t) - 1))

struct item_hdr {
    exec_task_fn *fn;
    uint64_t in_size, out_size;
};
#define IN_HDR ALIGN_UP(sizeof(struct item_hdr))
#define OUT_HDR ALIGN_UP(sizeof(int))

struct job {
    struct job *next;
    struct mpi__result r; /* id set; the rest when it ends */
    exec_task_fn *fn;
    size_t in_size, out_size, count;
    unsigned char *items; /* count * in_size; then the reply (statuses, codes, results) */
};

struct mpi__chunks {
    exec_t *ex;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *todo, **todo_tail, *done;
    bool stop;
    int nthreads;
    pthread_t threads[4];
    void (*ended)(void *data); /* after each chunk, outside the lock */
    void *data;
};

int exec__mpi_run_item(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    struct item_hdr h;
    if (arg_size < IN_HDR || out_cap < OUT_HDR)
        return EXEC_EINVAL;
    memcpy(&h, arg, sizeof h);
    size_t n = (size_t)h.out_size;
    int st = h.fn((const unsigned char *)arg + IN_HDR, (size_t)h.in_size,
                  h.out_size ? (unsigned char *)out + OUT_HDR : NULL, (size_t)h.out_size, &n);
    memcpy(out, &st, sizeof st);
    *out_size = out_cap;
    return 0;
}

/* Run one chunk as a local map; the reply replaces job->items. */
static void run(exec_t *ex, struct job *j)
{
    size_t n = j->count, in_stride = IN_HDR + ALIGN_UP(j->in_size);
    size_t out_stride = OUT_HDR + ALIGN_UP(j->out_size);
    size_t reply_len = n * (2 * sizeof(int) + j->out_size);
    unsigned char *in = calloc(n ? n : 1, in_stride), *out = calloc(n ? n : 1, out_stride);
    unsigned char *reply = malloc(reply_len ? reply_len : 1);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    j->r.state = EXEC_STATE_DONE;
    if (!in || !out || !reply || !codes) {
        j->r.state = EXEC_STATE_FAILED;
        j->r.fault.code = EXEC_ENOMEM;
        free(reply);
        reply = NULL;
        reply_len = 0;
        goto out;
    }
    struct item_hdr h = {j->fn, j->in_size, j->out_size};
    for (size_t i = 0; i < n; i++) {
        memcpy(in + i * in_stride, &h, sizeof h);
        memcpy(in + i * in_stride + IN_HDR, j->items + i * j->in_size, j->in_size);
    }
    for (size_t i = 0; i < n; i++)
        codes[i] = INT_MIN; /* the local map writes every item's status it accounts for */
    exec_map_opts_t o = {.chunk_size = 0, .status = codes};
    int r = exec_map(ex, exec__mpi_run_item, in, in_stride, out, out_stride, n, &o);
    for (size_t i = 0; i < n; i++) {
        int st = 0;
        if (codes[i] == INT_MIN) /* the map did not start (its code) */
            codes[i] = r ? r : EXEC_ECRASHED;
        if (!codes[i])
            memcpy(&st, out + i * out_stride, sizeof st);
        memcpy(reply + i * sizeof(int), &st, sizeof st);
        memcpy(reply + (n + i) * sizeof(int), &codes[i], sizeof codes[i]);
        if (j->out_size)
            memcpy(reply + 2 * n * sizeof(int) + i * j->out_size, out + i * out_stride + OUT_HDR,
                   j->out_size);
    }
    j->r.flags = MPI__RESULT_ITEMS;
out:
    free(in);
    free(out);
    free(codes);
    free(j->items);
    j->items = reply;
    j->r.size = reply_len;
}

static void *map_thread(void *arg)
{
    struct mpi__chunks *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->todo && !c->stop)
            pthread_cond_wait(&c->cond, &c->lock);
        if (!c->todo)
            break;
        struct job *j = c->todo;
        c->todo = j->next;
        if (!c->todo)
            c->todo_tail = &c->todo;
        pthread_mutex_unlock(&c->lock);
        run(c->ex, j);
        pthread_mutex_lock(&c->lock);
        j->next = c->done;
        c->done = j;
        pthread_mutex_unlock(&c->lock);
        c->ended(c->data);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static int chunks_open(struct mpi__chunks **cp, exec_t *ex, int workers,
                       void (*ended)(void *data), void *data)
{
    struct mpi__chunks *c = calloc(1, sizeof *c);
    if (!c)
        return EXEC_ENOMEM;
    c->ex = ex;
    c->ended = ended;
    c->data = data;
    c->todo_tail = &c->todo;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    int want = workers / 2 < 1 ? 1 : workers / 2 > 4 ? 4 : workers / 2;
    while (c->nthreads < want &&
           exec__thread_start(&c->threads[c->nthreads], 0, map_thread, c) == 0)
        c->nthreads++;
    if (!c->nthreads) {
        exec__mpi_chunks_close(c);
        return EXEC_ESYS;
    }
    *cp = c;
    return EXEC_OK;
}

int exec__mpi_chunks_add(struct mpi__chunks **cp, exec_t *ex, int workers, uint64_t id,
                         exec_task_fn *fn, const struct mpi__task *t, const void *items,
                         void (*ended)(void *data), void *data)
{
    if (!*cp) {
        int r = chunks_open(cp, ex, workers, ended, data);
        if (r != EXEC_OK)
            return r;
    }
    struct mpi__chunks *c = *cp;
    struct job *j = calloc(1, sizeof *j);
    unsigned char *copy = malloc(t->size ? t->size : 1);
    if (!j || !copy || t->size != t->count * t->in_size) {
        free(j);
        free(copy);
        return j && copy ? EXEC_EINVAL : EXEC_ENOMEM;
    }
    memcpy(copy, items, t->size);
    *j = (struct job){.r = {.id = id}, .fn = fn, .in_size = t->in_size,
                      .out_size = t->out_size, .count = t->count, .items = copy};
    pthread_mutex_lock(&c->lock);
    *c->todo_tail = j;
    c->todo_tail = &j->next;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return EXEC_OK;
}

size_t exec__mpi_chunks_reap(struct mpi__chunks *c,
                             void (*emit)(void *ctx, const struct mpi__result *r,
                                          const void *data),
                             void *ctx)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    struct job *j = c->done;
    c->done = NULL;
    pthread_mutex_unlock(&c->lock);
    size_t n = 0;
    while (j) {
        struct job *next = j->next;
        emit(ctx, &j->r, j->items);
        free(j->items);
        free(j);
        j = next;
        n++;
    }
    return n;
}

void exec__mpi_chunks_close(struct mpi__chunks *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL);
    for (struct job *j = c->todo, *next; j; j = next) { /* none: rank 0 waited for all */
        next = j->next;
        free(j->items);
        free(j);
    }
    for (struct job *j = c->done, *next; j; j = next) {
        next = j->next;
        free(j->items);
        free(j);
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Rank 0: a chunk's reply of MPI__RESULT_ITEMS. Every item's result and status is written
 * first, then the chunk is accounted for in pieces (runs of items that ran, runs of items
 * with one code); the piece that accounts for the map's last item is our last touch of @m. */
void exec__mpi_chunk_ended(struct exec__map *m, size_t lo, size_t hi, const void *data,
                           size_t size)
{
    size_t n = hi - lo, osz = m->out_size;
    if (size != n * (2 * sizeof(int) + osz)) {
        exec__map_fail(m, lo, hi, EXEC_ECRASHED);
        return;
    }
    const unsigned char *sts = data, *codes = sts + n * sizeof(int);
    const unsigned char *res = codes + n * sizeof(int);
    int *st = exec__map_status(m, lo);
    unsigned char *out = exec__map_out(m, lo);
#define GET(a, i) (memcpy(&v, (a) + (i) * sizeof(int), sizeof v), v)
    int v;
    for (size_t i = 0; i < n; i++) {
        if (GET(codes, i))
            continue;
        if (st)
            st[i] = GET(sts, i);
        if (out)
            memcpy(out + i * osz, res + i * osz, osz);
    }
    for (size_t a = 0, b; a < n; a = b) {
        int code = GET(codes, a);
        size_t nfailed = 0, first = hi;
        for (b = a; b < n && GET(codes, b) == code; b++)
            if (!code && GET(sts, b) && !nfailed++)
                first = lo + b;
        if (code)
            exec__map_fail(m, lo + a, lo + b, code);
        else
            exec__map_ran(m, lo + a, lo + b, nfailed, first);
    }
#undef GET
}
