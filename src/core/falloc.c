/* SPDX-License-Identifier: MIT */
/*
 * core/falloc.c - the future allocator: arenas of EXEC__ARENA_BYTES, aligned to their size,
 * carved into 112-byte futures, and the cache of the futures' cold parts.
 *
 * Why arenas: a million outstanding futures used to cost a million mutex initialisations and
 * 100,000 page faults of small slabs. An arena is one private mapping the kernel can back
 * with huge pages (every arena but a core's first, so that a small program does not pay
 * 2 MiB for a few futures); its slots are handed out in address order from a bump index
 * (pages are touched only when used) and then from the arena's own free list. Its header,
 * in the first slot, names the owning core, so a future needs no pointer to it.
 *
 * Memory goes back: an arena whose last future is freed is unmapped, except one empty arena
 * per core kept for the next burst (windows of a few thousand futures would otherwise map and
 * unmap an arena each time). A core therefore holds at most one arena more than its
 * outstanding futures need, and exec_destroy() of a core that ran millions of tasks unmaps
 * a few arenas, not millions of slabs.
 *
 * Everything here is under core->alloc_lock, but unmapping, which happens after the lock
 * is dropped.
 */
#include "base/fault.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

/* An arena's header: the public part first (exec__future_core() reads it), alone on its
 * cache line. Every worker reads it as it ends a task and every alloc and free writes the
 * allocator's fields: on one line, each task moved the line between CPUs twice (on a VM
 * where that costs ~250 ns, submit-and-wait in windows ran at a third of the speed). */
struct arena {
    struct exec__arena pub;
    unsigned char pad[64 - sizeof(struct exec__arena)];
    struct exec__list all;       /* in core->arenas */
    struct exec__list avail;     /* in core->avail while it has a free slot */
    struct exec_future *free;    /* freed futures, linked by their `arg` */
    uint32_t live, bump;         /* futures handed out; slots carved so far */
};

#define SLOT sizeof(struct exec_future)
/* The header takes the first slot(s); the rest are futures. */
#define HDR_SLOTS ((sizeof(struct arena) + SLOT - 1) / SLOT)
#define ARENA_SLOTS ((uint32_t)(EXEC__ARENA_BYTES / SLOT - HDR_SLOTS))
/* Cold parts kept for reuse per core (each about 200 bytes, so at most ~1.6 MB). A traced
 * executor gives every future one: with windows of a few thousand futures, a smaller cache
 * made a malloc(), a mutex initialisation and a free() per task (bench_trace: traced
 * submit-and-wait 3-4x slower than untraced with 1,024). */
#define COLD_CACHE 8192

_Static_assert(sizeof(struct exec_future) % 16 == 0, "futures keep inl 16-byte aligned");
_Static_assert(sizeof(struct exec_future) <= 128, "a future is at most 128 bytes");
_Static_assert((EXEC__ARENA_BYTES & (EXEC__ARENA_BYTES - 1)) == 0, "arena size: power of 2");

static struct exec_future *slot_at(struct arena *a, uint32_t i)
{
    return (struct exec_future *)((unsigned char *)a + (HDR_SLOTS + i) * SLOT);
}

static struct arena *arena_of(const struct exec_future *f)
{
    return (struct arena *)((uintptr_t)f & ~(uintptr_t)(EXEC__ARENA_BYTES - 1));
}

void exec__falloc_init(struct exec *core)
{
    atomic_init(&core->alloc_lock.w, 0);
    exec__list_init(&core->arenas);
    exec__list_init(&core->avail);
}

/* A new arena, listed as available. alloc_lock held. */
static struct arena *arena_new(struct exec *core)
{
    if (EXEC__FAULT(EXEC__FAULT_ARENA))
        return NULL;
    bool huge = !exec__list_empty(&core->arenas);
    struct arena *a = exec__pages_map(EXEC__ARENA_BYTES, EXEC__ARENA_BYTES, huge);
    if (!a)
        return NULL;
    a->pub.core = core;
    a->free = NULL;
    a->live = 0;
    a->bump = 0;
    exec__list_push_back(&core->arenas, &a->all);
    exec__list_push_front(&core->avail, &a->avail);
    core->nempty++;
    return a;
}

struct exec_future *exec__future_alloc(struct exec *core)
{
    exec__lock(&core->alloc_lock);
    struct exec__list *n = exec__list_first(&core->avail);
    struct arena *a = n ? EXEC__CONTAINER_OF(n, struct arena, avail) : arena_new(core);
    if (EXEC__UNLIKELY(!a)) {
        exec__unlock(&core->alloc_lock);
        return NULL;
    }
    struct exec_future *f = a->free;
    if (f)
        a->free = f->arg;
    else
        f = slot_at(a, a->bump++);
    if (a->live++ == 0)
        core->nempty--;
    if (!a->free && a->bump == ARENA_SLOTS)
        exec__list_remove(&a->avail); /* full */
    atomic_fetch_add_explicit(&core->live, 1, memory_order_relaxed);
    exec__unlock(&core->alloc_lock);

    /* Every field of a previous life is reset; nothing needs initialising but these. */
    atomic_store_explicit(&f->state, EXEC_STATE_QUEUED, memory_order_relaxed);
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    f->fn = NULL;
    f->arg = NULL;
    f->arg_size = 0;
    f->res_size = 0;
    memset(&f->fault, 0, sizeof f->fault);
    f->fault.exit_status = -1;
    f->fault.worker_id = -1;
    f->timeout_ms = 0;
    f->tseq = 0;
    memset(&f->bk, 0, sizeof f->bk);
    atomic_store_explicit(&f->cold, NULL, memory_order_relaxed);
    return f;
}

/* ---------------------------------------------------------------------------------------- */
/* Cold parts                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void cold_reset(struct exec__fcold *c)
{
    exec__list_init(&c->listeners);
    c->cb0_used = false;
    c->cq_routed = false;
    c->cq_next = NULL;
    c->tsub = 0;
    c->targ = 0;
    c->next_free = NULL;
}

/* A cold part from the cache or a new one. NULL on ENOMEM. */
static struct exec__fcold *cold_get(struct exec *core)
{
    struct exec__fcold *c = NULL;
    bool forked = exec__core_forked(core);
    if (!forked) {
        /* A child of fork() must not take the allocator lock (its holder may not exist). */
        exec__lock(&core->alloc_lock);
        c = core->cold_free;
        if (c) {
            core->cold_free = c->next_free;
            core->ncold_free--;
        }
        exec__unlock(&core->alloc_lock);
    }
    if (!c) {
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
        pthread_mutex_init(&c->lock, NULL);
    }
    cold_reset(c);
    return c;
}

static void cold_put(struct exec *core, struct exec__fcold *c, bool locked)
{
    if (!locked)
        exec__lock(&core->alloc_lock);
    bool keep = core->ncold_free < COLD_CACHE;
    if (keep) {
        c->next_free = core->cold_free;
        core->cold_free = c;
        core->ncold_free++;
    }
    if (!locked)
        exec__unlock(&core->alloc_lock);
    if (!keep) {
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
}

struct exec__fcold *exec__future_cold(struct exec_future *f)
{
    struct exec__fcold *c = exec__future_cold_get(f);
    if (c)
        return c;
    struct exec *core = exec__future_core(f);
    c = cold_get(core);
    if (!c)
        return NULL;
    struct exec__fcold *had = NULL;
    /* acq_rel: the reset fields are published with the pointer; a loser sees the winner's. */
    if (atomic_compare_exchange_strong_explicit(&f->cold, &had, c, memory_order_acq_rel,
                                                memory_order_acquire))
        return c;
    if (exec__core_forked(core)) {
        free(c); /* never cached in a child: see cold_get() */
    } else {
        cold_put(core, c, false);
    }
    return had;
}

/* ---------------------------------------------------------------------------------------- */
/* Big argument copies                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* The class of a copy of @size bytes (its buffer holds 2^(class + EXEC__BIG_SHIFT) bytes),
 * or -1 when it is not cached: small ones are cheap for malloc, huge ones too rare. */
static int big_class(size_t size)
{
    if (size < EXEC__BIG_MIN)
        return -1;
    int c = (int)(64 - __builtin_clzll((unsigned long long)(size - 1))) - EXEC__BIG_SHIFT;
    return c < EXEC__BIG_CLASSES ? c : -1;
}

void *exec__arg_buf_get(struct exec *core, size_t size)
{
    int c = big_class(size);
    if (c < 0)
        return malloc(size);
    void *p = NULL;
    if (!exec__core_forked(core)) { /* a child of fork() never takes the lock (cold_get()) */
        exec__lock(&core->alloc_lock);
        p = core->big_free[c];
        if (p) {
            memcpy(&core->big_free[c], p, sizeof p);
            core->big_bytes -= EXEC__BIG_MIN << c;
        }
        exec__unlock(&core->alloc_lock);
    }
    return p ? p : malloc(EXEC__BIG_MIN << c);
}

void exec__arg_buf_put(struct exec *core, void *p, size_t size)
{
    int c = big_class(size);
    if (c >= 0 && !exec__core_forked(core)) {
        size_t cap = EXEC__BIG_MIN << c;
        exec__lock(&core->alloc_lock);
        bool keep = core->big_bytes + cap <= EXEC__BIG_KEEP &&
                    !atomic_load_explicit(&core->destroyed, memory_order_relaxed);
        if (keep) {
            memcpy(p, &core->big_free[c], sizeof p);
            core->big_free[c] = p;
            core->big_bytes += cap;
        }
        exec__unlock(&core->alloc_lock);
        if (keep)
            return;
    }
    free(p);
}

/* ---------------------------------------------------------------------------------------- */
/* Freeing                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void free_bytes(struct exec_future *f)
{
    /* arg and res share the pointer: whichever it holds, it is inl or one heap block. */
    exec__future_drop_arg(f);
    if (f->res && f->res != (void *)f->inl)
        free(f->res);
    f->arg = NULL;
    f->arg_size = 0;
    f->res_size = 0;
}

/* Put @f back into its arena. alloc_lock held. Returns an arena to unmap (after the lock
 * is dropped), or NULL. */
static struct arena *put_back(struct exec *core, struct exec_future *f)
{
    struct arena *a = arena_of(f);
    bool was_full = !a->free && a->bump == ARENA_SLOTS;
    f->arg = a->free;
    a->free = f;
    if (was_full)
        exec__list_push_front(&core->avail, &a->avail);
    if (--a->live != 0)
        return NULL;
    if (core->nempty == 0) {
        core->nempty++; /* kept for the next burst */
        return NULL;
    }
    exec__list_remove(&a->avail);
    exec__list_remove(&a->all);
    return a;
}

void exec__future_free(struct exec_future *f)
{
    struct exec *core = exec__future_core(f);
    free_bytes(f);
    struct exec__fcold *c = atomic_load_explicit(&f->cold, memory_order_relaxed);
    if (EXEC__UNLIKELY(exec__core_forked(core))) {
        /* The allocator lock may be held by a thread that does not exist in this child.
         * Never reuse the future; just count it out. */
        free(c);
        if (atomic_fetch_sub(&core->live, 1) == 1 && atomic_load(&core->destroyed))
            exec__core_maybe_free(core);
        return;
    }
    exec__lock(&core->alloc_lock);
    if (c)
        cold_put(core, c, true);
    struct arena *gone = put_back(core, f);
    bool dead = atomic_fetch_sub_explicit(&core->live, 1, memory_order_relaxed) == 1 &&
                atomic_load_explicit(&core->destroyed, memory_order_relaxed);
    exec__unlock(&core->alloc_lock);
    if (gone)
        exec__pages_unmap(gone, EXEC__ARENA_BYTES);
    if (dead)
        exec__core_maybe_free(core);
}

/* Called once: when the core is destroyed and its last future is gone. */
void exec__core_maybe_free(struct exec *core)
{
    bool forked = exec__core_forked(core);
    struct exec__list *n;
    while ((n = exec__list_first(&core->arenas))) {
        exec__list_remove(n);
        exec__pages_unmap(EXEC__CONTAINER_OF(n, struct arena, all), EXEC__ARENA_BYTES);
    }
    for (int i = 0; i < EXEC__BIG_CLASSES; i++) {
        void *p = core->big_free[i];
        while (p) {
            void *next;
            memcpy(&next, p, sizeof next);
            free(p);
            p = next;
        }
    }
    struct exec__fcold *c = core->cold_free;
    while (c) {
        struct exec__fcold *next = c->next_free;
        if (!forked)
            pthread_mutex_destroy(&c->lock);
        free(c);
        c = next;
    }
    if (!forked)
        pthread_mutex_destroy(&core->map_lock);
    free(core);
}
