/* SPDX-License-Identifier: MIT */
/*
 * mpi/shm.c - shared-memory buffers of rank 0 mapped by tasks on any rank.
 *
 * A serving rank on rank 0's host needs nothing: a ref names a /dev/shm object or a memfd
 * of rank 0 that exec_shm_map() opens there as in any worker process. A serving rank on
 * another host (or told to act so: EXEC_MPI_OTHER_HOST, the test knob) sets the shm layer's
 * remote hook (shm/shm.h) before its local pool exists, so that every process of that pool
 * inherits it. A read-only map in a task then asks the serving rank's main loop, over a
 * Unix socket of this host ("exec-mpi-shm-<pid>", abstract: no file), for a local copy:
 *
 *   task (thread or worker process)      serving rank's loop               rank 0's comm thread
 *   connect, send the ref  ------------> a copy of that id? answer it
 *                                        else (once per id) SHM_REQ ------> exec_shm_map(RDONLY)
 *                                        SHM_DATA: make the memfd copy <--- the bytes
 *   map the copy (cached) <------------- answer every waiter
 *
 * So each rank fetches a buffer once, whatever its tasks and workers do, and keeps the copy
 * (a memfd: never in /dev/shm, gone with the rank) until rank 0 closes the buffer (SHM_DROP;
 * workers drop their mappings of it at their next trim) or the executor ends (BYE). A
 * read-write map is EXEC_ENOTSUP there: the copy is read-only, and writes could reach
 * nobody else.
 *
 * Rank 0 remembers which rank got which buffer, so that exec_shm_close() (its hook
 * exec__shm_closed) leads to one SHM_DROP per copy, sent by the comm thread.
 */
#include "mpi/pool.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/shm.h"
#include "sys/sys.h"

#define SOCK_FMT "exec-mpi-shm-%ld"

struct answer {
    int32_t code;
    int32_t pad;
    exec_shm_ref_t local;
};

/* ---------------------------------------------------------------------------------------- */
/* A serving rank (its main thread only, but for `server_pid` and `ncopies`)                 */
/* ---------------------------------------------------------------------------------------- */

struct copy {
    uint64_t id;
    exec_shm_ref_t local;
};

struct fetch {
    uint64_t id;
    int *waiters; /* connections to answer */
    size_t n, cap;
};

static struct {
    int lfd; /* the listening socket; -1 */
    struct copy *copies;
    size_t ncopies_, copies_cap;
    struct fetch *fetches;
    size_t nfetches, fetches_cap;
    int *conns; /* accepted, request not read yet */
    size_t nconns, conns_cap;
} sv = {.lfd = -1};
static long server_pid; /* read by the tasks (in inherited memory, for worker processes) */
static _Atomic size_t ncopies;

/* The remote hook, in a task: ask the serving rank for a copy. */
static int ask(const exec_shm_ref_t *ref, exec_shm_ref_t *local)
{
    char name[64];
    snprintf(name, sizeof name, SOCK_FMT, server_pid);
    int fd = exec__seqpacket_connect(name);
    if (fd < 0)
        return EXEC_ESYS;
    struct answer a;
    int r = EXEC_ESYS; /* the rank ended under us */
    if (exec__dgram_send(fd, ref, sizeof *ref, false) == 0 &&
        exec__dgram_recv(fd, &a, sizeof a, false) == 1) {
        r = a.code;
        if (r == EXEC_OK)
            *local = a.local;
    }
    close(fd);
    return r;
}

static void answer(int fd, int code, const exec_shm_ref_t *local)
{
    struct answer a = {.code = code};
    if (local)
        a.local = *local;
    (void)exec__dgram_send(fd, &a, sizeof a, true);
    close(fd);
}

int exec__mpi_shm_serve(const struct mpi__hello *h)
{
    int r = exec__mpi_world.rank;
    bool remote = !exec__mpi_world.on_host0 || h->other_all ||
                  (r >= 1 && r <= 32 && (h->other_hosts >> (r - 1) & 1u));
    atomic_store(&exec__shm_remote, remote ? ask : NULL);
    if (!remote || sv.lfd >= 0)
        return EXEC_OK;
    char name[64];
    server_pid = (long)getpid();
    snprintf(name, sizeof name, SOCK_FMT, server_pid);
    sv.lfd = exec__seqpacket_listen(name);
    if (sv.lfd < 0) {
        atomic_store(&exec__shm_remote, NULL);
        return EXEC_ESYS;
    }
    return EXEC_OK;
}

static struct copy *find_copy(uint64_t id)
{
    for (size_t i = 0; i < sv.ncopies_; i++)
        if (sv.copies[i].id == id)
            return &sv.copies[i];
    return NULL;
}

static struct fetch *find_fetch(uint64_t id)
{
    for (size_t i = 0; i < sv.nfetches; i++)
        if (sv.fetches[i].id == id)
            return &sv.fetches[i];
    return NULL;
}

/* A task asks for @ref on connection @fd. */
static void request(MPI_Comm comm, struct mpi__sends *sends, int fd, const exec_shm_ref_t *ref)
{
    struct copy *c = find_copy(ref->id);
    if (c) {
        answer(fd, c->local.size == ref->size ? EXEC_OK : EXEC_EINVAL, &c->local);
        return;
    }
    struct fetch *f = find_fetch(ref->id);
    if (!f) {
        void *m = malloc(sizeof *ref);
        if (!m || !exec__mpi_grow((void **)&sv.fetches, &sv.fetches_cap, sv.nfetches,
                                  sizeof *sv.fetches)) {
            free(m);
            answer(fd, EXEC_ENOMEM, NULL);
            return;
        }
        memcpy(m, ref, sizeof *ref);
        int code = exec__mpi_send(sends, comm, 0, MPI__TAG_SHM_REQ, m, sizeof *ref);
        if (code != EXEC_OK) {
            answer(fd, code, NULL);
            return;
        }
        f = &sv.fetches[sv.nfetches++];
        *f = (struct fetch){.id = ref->id};
    }
    if (!exec__mpi_grow((void **)&f->waiters, &f->cap, f->n, sizeof *f->waiters)) {
        answer(fd, EXEC_ENOMEM, NULL);
        return;
    }
    f->waiters[f->n++] = fd;
}

bool exec__mpi_shm_poll(MPI_Comm comm, struct mpi__sends *sends)
{
    if (sv.lfd < 0)
        return false;
    bool any = false;
    int fd;
    while ((fd = exec__seqpacket_accept(sv.lfd)) >= 0) {
        any = true;
        if (!exec__mpi_grow((void **)&sv.conns, &sv.conns_cap, sv.nconns, sizeof *sv.conns))
            answer(fd, EXEC_ENOMEM, NULL);
        else
            sv.conns[sv.nconns++] = fd;
    }
    for (size_t i = 0; i < sv.nconns;) {
        exec_shm_ref_t ref;
        int r = exec__dgram_recv(sv.conns[i], &ref, sizeof ref, true);
        if (r == 0) {
            i++;
            continue;
        }
        any = true;
        fd = sv.conns[i];
        sv.conns[i] = sv.conns[--sv.nconns];
        if (r < 0)
            close(fd);
        else
            request(comm, sends, fd, &ref);
    }
    return any;
}

static void data(const void *msg, size_t len)
{
    struct mpi__shm_data h;
    if (len < sizeof h)
        return;
    memcpy(&h, msg, sizeof h);
    struct fetch *f = find_fetch(h.id);
    if (!f)
        return;
    int code = h.code;
    exec_shm_ref_t local;
    if (code == EXEC_OK && h.size != len - sizeof h)
        code = EXEC_ESYS;
    if (code == EXEC_OK)
        code = exec__shm_copy_make(h.id, (const unsigned char *)msg + sizeof h, h.size, &local);
    if (code == EXEC_OK && !exec__mpi_grow((void **)&sv.copies, &sv.copies_cap, sv.ncopies_,
                                           sizeof *sv.copies)) {
        exec__shm_copy_drop(&local);
        code = EXEC_ENOMEM;
    }
    if (code == EXEC_OK) {
        sv.copies[sv.ncopies_++] = (struct copy){h.id, local};
        atomic_fetch_add(&ncopies, 1);
    }
    for (size_t i = 0; i < f->n; i++)
        answer(f->waiters[i], code, code == EXEC_OK ? &local : NULL);
    free(f->waiters);
    *f = sv.fetches[--sv.nfetches];
}

static void drop_at(size_t i)
{
    exec__shm_copy_drop(&sv.copies[i].local);
    sv.copies[i] = sv.copies[--sv.ncopies_];
    atomic_fetch_sub(&ncopies, 1);
}

void exec__mpi_shm_on_msg(int tag, const void *msg, size_t len)
{
    uint64_t id;
    if (tag == MPI__TAG_SHM_DATA) {
        data(msg, len);
    } else if (tag == MPI__TAG_SHM_DROP && len >= sizeof id) {
        memcpy(&id, msg, sizeof id);
        struct copy *c = find_copy(id);
        if (c)
            drop_at((size_t)(c - sv.copies));
        exec__shmbuf_trim(true); /* this process's own mappings of it (a local thread pool) */
    }
}

void exec__mpi_shm_serve_end(void)
{
    while (sv.ncopies_)
        drop_at(sv.ncopies_ - 1);
    for (size_t i = 0; i < sv.nfetches; i++) {
        for (size_t j = 0; j < sv.fetches[i].n; j++)
            answer(sv.fetches[i].waiters[j], EXEC_ESHUTDOWN, NULL);
        free(sv.fetches[i].waiters);
    }
    sv.nfetches = 0;
    for (size_t i = 0; i < sv.nconns; i++)
        close(sv.conns[i]);
    sv.nconns = 0;
    exec__shmbuf_trim(true);
}

/* ---------------------------------------------------------------------------------------- */
/* Rank 0                                                                                    */
/* ---------------------------------------------------------------------------------------- */

struct given {
    uint64_t id;
    int rank;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* given[], drops[], fetches */
static struct given *given, *drops;
static size_t ngiven, given_cap, ndrops, drops_cap;
static uint64_t fetches;

int exec__mpi_shm_options(struct mpi__hello *h)
{
    const char *v = getenv("EXEC_MPI_OTHER_HOST");
    h->other_hosts = h->other_all = 0;
    if (!v || !*v)
        return EXEC_OK;
    if (strcmp(v, "all") == 0) {
        h->other_all = 1;
        return EXEC_OK;
    }
    for (const char *p = v; *p;) {
        char *end;
        long r = strtol(p, &end, 10);
        if (end == p || r < 1 || r > 32 || (*end && (*end != ',' || !end[1])))
            return EXEC_EINVAL;
        h->other_hosts |= 1u << (r - 1);
        p = *end ? end + 1 : end;
    }
    return EXEC_OK;
}

void exec__mpi_shm_answer(MPI_Comm comm, struct mpi__sends *sends, int from, const void *msg,
                          size_t len)
{
    exec_shm_ref_t ref;
    struct mpi__shm_data h = {0};
    void *ptr = NULL;
    size_t size = 0;
    if (len != sizeof ref)
        return;
    memcpy(&ref, msg, sizeof ref);
    h.id = ref.id;
    h.code = exec_shm_map(&ref, EXEC_SHM_RDONLY, &ptr, &size);
    if (h.code == EXEC_OK && size > (size_t)INT_MAX - sizeof h)
        h.code = EXEC_ETOOBIG; /* one MPI message */
    h.size = h.code == EXEC_OK ? size : 0;
    unsigned char *b = malloc(sizeof h + h.size);
    if (!b)
        return; /* the rank's tasks wait for it: nothing better to do without memory */
    memcpy(b, &h, sizeof h);
    if (h.size)
        memcpy(b + sizeof h, ptr, h.size);
    exec__mpi_send(sends, comm, from, MPI__TAG_SHM_DATA, b, sizeof h + h.size);
    if (h.code != EXEC_OK)
        return;
    pthread_mutex_lock(&lock);
    fetches++;
    if (exec__mpi_grow((void **)&given, &given_cap, ngiven, sizeof *given))
        given[ngiven++] = (struct given){ref.id, from};
    pthread_mutex_unlock(&lock);
}

void exec__mpi_shm_closed(uint64_t id)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ngiven;) {
        if (given[i].id != id) {
            i++;
            continue;
        }
        if (exec__mpi_grow((void **)&drops, &drops_cap, ndrops, sizeof *drops))
            drops[ndrops++] = given[i];
        given[i] = given[--ngiven];
    }
    pthread_mutex_unlock(&lock);
}

bool exec__mpi_shm_flush(MPI_Comm comm, struct mpi__sends *sends)
{
    pthread_mutex_lock(&lock);
    size_t n = ndrops;
    for (size_t i = 0; i < n; i++) {
        uint64_t *m = malloc(sizeof *m);
        if (m) {
            *m = drops[i].id;
            exec__mpi_send(sends, comm, drops[i].rank, MPI__TAG_SHM_DROP, m, sizeof *m);
        }
    }
    ndrops = 0;
    pthread_mutex_unlock(&lock);
    return n > 0;
}

void exec__mpi_shm_forget(void)
{
    pthread_mutex_lock(&lock);
    ngiven = ndrops = 0; /* every rank dropped its copies at BYE */
    pthread_mutex_unlock(&lock);
}

#ifdef EXEC_TEST_HOOKS
/* Tests: copies rank 0 sent (all executors), and the copies this serving rank holds. */
uint64_t exec__test_mpi_shm_fetches(void);
uint64_t exec__test_mpi_shm_fetches(void)
{
    pthread_mutex_lock(&lock);
    uint64_t n = fetches;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t exec__test_mpi_shm_copies(void);
size_t exec__test_mpi_shm_copies(void)
{
    return atomic_load(&ncopies);
}
#endif
