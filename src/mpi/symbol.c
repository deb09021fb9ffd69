/* SPDX-License-Identifier: MIT */
/*
 * mpi/symbol.c - task pointers between ranks. Every rank runs the same program, but address
 * space randomisation loads it (and each shared library) at another address on each rank,
 * so a pointer travels as (module, offset): the module is a hash of its file's base name
 * (the program itself has the empty name) and the offset is from its load address. Only
 * an address inside an executable segment of a loaded module is accepted.
 */
#include "mpi/mpi.h"

#include <link.h>
#include <pthread.h>
#include <string.h>

/* FNV-1a of the base name: the same library may sit under another directory elsewhere. */
static uint64_t name_hash(const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : (path ? path : "");
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)base; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* A small cache of modules seen (both directions), so that a submit does not walk the
 * module list each time. Protected by lock. */
#define NCACHE 16
struct mod {
    uint64_t hash;
    uintptr_t base, lo, hi; /* load address; one executable segment [lo, hi) */
};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mod cache[NCACHE];
static unsigned ncache, next_victim;

static void remember(const struct mod *m)
{
    if (ncache < NCACHE) {
        cache[ncache++] = *m;
    } else {
        cache[next_victim] = *m;
        next_victim = (next_victim + 1) % NCACHE;
    }
}

struct find {
    uintptr_t addr;   /* encode: the address to place */
    uint64_t hash;    /* decode: the module to find */
    bool by_hash, found;
    struct mod m;
};

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find *q = data;
    uint64_t h = name_hash(info->dlpi_name);
    if (q->by_hash && h != q->hash)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (q->by_hash || (q->addr >= lo && q->addr < hi)) {
            q->m = (struct mod){h, info->dlpi_addr, lo, hi};
            q->found = true;
            return 1;
        }
    }
    return 0;
}

int exec__mpi_fn_encode(void (*fn)(void), struct mpi__fnref *ref)
{
    uintptr_t a = (uintptr_t)fn;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < ncache; i++) {
        if (a >= cache[i].lo && a < cache[i].hi) {
            ref->module = cache[i].hash;
            ref->offset = a - cache[i].base;
            pthread_mutex_unlock(&lock);
            return EXEC_OK;
        }
    }
    struct find q = {.addr = a};
    dl_iterate_phdr(visit, &q);
    if (q.found)
        remember(&q.m);
    pthread_mutex_unlock(&lock);
    if (!q.found)
        return EXEC_EINVAL;
    ref->module = q.m.hash;
    ref->offset = a - q.m.base;
    return EXEC_OK;
}

void (*exec__mpi_fn_decode(const struct mpi__fnref *ref))(void)
{
    uintptr_t base = 0;
    bool found = false;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < ncache && !found; i++) {
        if (cache[i].hash == ref->module) {
            base = cache[i].base;
            found = true;
        }
    }
    if (!found) {
        struct find q = {.hash = ref->module, .by_hash = true};
        dl_iterate_phdr(visit, &q);
        if (q.found) {
            remember(&q.m);
            base = q.m.base;
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!found)
        return NULL;
    /* A function pointer from an integer: the only way to rebuild one (POSIX dlsym()
     * makes the same conversion). */
    return (void (*)(void))(base + (uintptr_t)ref->offset);
}
