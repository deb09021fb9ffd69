/* SPDX-License-Identifier: MIT */
/*
 * shm/shm.c - the shared-memory buffer helper (exec_shm_*, see executor.h).
 *
 * A buffer is a file of a RAM file system mapped MAP_SHARED: a POSIX shm object
 * (/dev/shm/<name>) for a named buffer, a memfd for an anonymous one. Creation reserves the
 * whole size at once (ftruncate + fallocate), so a full /dev/shm fails the create with
 * EXEC_ENOMEM instead of killing a later writer with SIGBUS. A named buffer's fd is closed
 * once it is mapped; an anonymous buffer keeps its memfd, because that fd is how other
 * processes reach it: exec_shm_map() opens /proc/<owner_pid>/fd/<owner_fd> (same user), and
 * checks that what it opened is the memfd "exec-<id>" and not a reused fd number.
 *
 * Who unlinks. Only the creator, i.e. the process (pid) that created the handle: an attached
 * handle, or a handle inherited by a child of fork(), never removes the name. Non-persistent
 * names are also removed when the creator dies, by the guardian process of shm_sys.c. The
 * creator tells the guardian a name right after shm_open(O_EXCL) made it, and takes it back
 * (DROP) *before* removing it itself, so the guardian can never remove a name that was
 * removed and then re-created by someone else. The cost of that order: a creator killed in
 * the microseconds between the two steps leaves the name (the opposite order could remove a
 * stranger's buffer, which is worse); the guardian is running before shm_open() (guard_hold),
 * so that window is one message, not a fork. The guardian is started at the first guarded
 * create and stopped (QUIT, reaped) when the last guarded name goes, so the program has no
 * extra child and no extra fd while it guards nothing. If it dies while it guards something (killed
 * by hand), the next message notices the broken socket and a new guardian learns every name
 * still guarded from the table below.
 *
 * The table. One table per process maps a buffer id (random per process + a counter, so
 * unique across processes) to a mapping: the handles this process made (created or attached)
 * and the mappings exec_shm_map() made for refs (the cache). exec_shm_map() looks there
 * first: in the creating process (thread backend) a ref resolves to the creator's own
 * mapping; in a worker process the first task maps the buffer and later tasks reuse it.
 * A read-only request is served only by a read-only mapping, made on demand and cached, in
 * every process (so EXEC_SHM_RDONLY makes writes fault on both backends alike). Cached
 * mappings go away when this process closes a handle of the same buffer, when
 * exec__shmbuf_trim() finds the buffer gone (a worker calls it between tasks), or at exit.
 *
 * Global state, all of it: `maps` (the table, the id generator), `guard` (the guardian's
 * socket, pid and guarded-name count), the counter of generated names, and the
 * pthread_atfork() registration. Lock order: guard.lock, then maps.lock. fork(): the atfork
 * handlers hold both locks across the fork, so the child gets a consistent table (with the
 * parent's mappings, which fork() keeps), and the child drops its copy of the guardian socket
 * and guards nothing until it creates names of its own.
 */
#include "shm/shm.h"
#include "shm/shm_sys.h"
#include "executor.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A mapping this process holds, as an entry of the table. */
struct mapping {
    struct mapping *next; /* in its bucket; under maps.lock */
    uint64_t id;
    void *ptr;
    size_t size;
    bool rdonly;
    bool cached;      /* made by exec_shm_map(), owned by the table; else an exec_shm_t */
    uint64_t dev, ino; /* the object, for identity checks */
    char name[EXEC_SHM_NAME_MAX + 1]; /* "" when anonymous */
    pid_t owner_pid;  /* anonymous: the process holding the memfd ... */
    int owner_fd;     /* ... and its fd there */
};

struct exec_shm {
    struct mapping m; /* first: the table links handles through it */
    int fd;           /* anonymous: the memfd, kept for exec_shm_ref(); else -1 */
    pid_t creator;    /* the pid that created it; 0 for an attached handle */
    unsigned flags;   /* EXEC_SHM_* of the create or attach */
    bool guarded;     /* its name is registered with the guardian; under guard.lock */
    atomic_bool unlinked; /* the creator removed the name */
};

#define NBUCKETS 64u
#define TRIM_PERIOD_NS 100000000u /* exec__shmbuf_trim() looks at most this often */
#define TRIM_SLACK 8u /* exec__shmbuf_trim_grown(): new mappings allowed past twice the kept */

static struct {
    pthread_mutex_t lock; /* protects everything below */
    struct mapping *bucket[NBUCKETS];
    size_t ncached;
    size_t nkept;     /* ncached after the last trim */
    uint64_t trim_ns;
    uint64_t id_base; /* random, drawn again in a new process (see new_id) */
    uint64_t id_seq;
    bool id_set;      /* id_base drawn in this process: id_gen is its fork generation */
    unsigned id_gen;
} maps = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct {
    pthread_mutex_t lock; /* protects fd, pid, count and every exec_shm_t.guarded */
    int fd;               /* control socket of the guardian; -1 when none runs */
    pid_t pid;            /* the guardian, our child */
    size_t count;         /* guarded names of this process */
} guard = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0};

static atomic_uint name_seq; /* the <n> of generated names "exec-<pid>-<n>" */

int (*_Atomic exec__shm_remote)(const exec_shm_ref_t *ref, exec_shm_ref_t *local);
void (*_Atomic exec__shm_closed)(uint64_t id);

/* Set while this thread forks the guardian: the atfork handlers leave it alone (it holds
 * guard.lock, and the guardian child touches none of this state). */
static _Thread_local bool spawning;

/* ---------------------------------------------------------------------------------------- */
/* fork() and initialisation                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void on_prepare(void)
{
    if (spawning)
        return;
    pthread_mutex_lock(&guard.lock);
    pthread_mutex_lock(&maps.lock);
}

static void on_parent(void)
{
    if (spawning)
        return;
    pthread_mutex_unlock(&maps.lock);
    pthread_mutex_unlock(&guard.lock);
}

static void on_child(void)
{
    if (spawning)
        return;
    /* The guardian and the guarded names are the parent's: keeping this copy of the socket
     * would also delay the guardian's EOF until this child exits. */
    if (guard.fd >= 0)
        close(guard.fd);
    guard.fd = -1;
    guard.pid = 0;
    guard.count = 0;
    pthread_mutex_unlock(&maps.lock);
    pthread_mutex_unlock(&guard.lock);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_err;

static void init(void)
{
    exec__fork_init();
    if (pthread_atfork(on_prepare, on_parent, on_child) != 0)
        init_err = EXEC_ENOMEM;
}

static int ready(void)
{
    pthread_once(&once, init);
    return init_err;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The name given to an anonymous buffer's memfd (seen in /proc only). */
static void memfd_name(char *buf, size_t cap, uint64_t id)
{
    snprintf(buf, cap, EXEC__SHMSYS_MEMFD_NAME, id);
}

static int map_fd(int fd, size_t size, bool rdonly, void **ptr)
{
    int prot = rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return errno == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
    *ptr = p;
    return 0;
}

static void set_object(struct mapping *m, int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0) {
        m->dev = (uint64_t)st.st_dev;
        m->ino = (uint64_t)st.st_ino;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The table (maps.lock held)                                                                */
/* ---------------------------------------------------------------------------------------- */

static struct mapping **bucket_of(uint64_t id)
{
    return &maps.bucket[(id ^ (id >> 32)) % NBUCKETS];
}

static uint64_t new_id(void)
{
    /* First id of this process (a child of fork() included: the one fork check). */
    if (!maps.id_set || exec__forked_since(maps.id_gen)) {
        maps.id_base = exec__shmsys_random64();
        maps.id_seq = 0;
        maps.id_gen = exec__fork_gen();
        maps.id_set = true;
    }
    uint64_t id;
    do
        id = maps.id_base + ++maps.id_seq;
    while (id == 0);
    return id;
}

static void tab_insert(struct mapping *m)
{
    struct mapping **b = bucket_of(m->id);
    m->next = *b;
    *b = m;
    if (m->cached)
        maps.ncached++;
}

static void tab_remove(struct mapping *m)
{
    for (struct mapping **p = bucket_of(m->id); *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            if (m->cached)
                maps.ncached--;
            return;
        }
}

static struct mapping *tab_find(uint64_t id, bool rdonly, size_t size)
{
    for (struct mapping *m = *bucket_of(id); m; m = m->next)
        if (m->id == id && m->rdonly == rdonly && m->size == size)
            return m;
    return NULL;
}

/* Unlink from the table the cached mappings that @pred selects; returns them as a list. */
static struct mapping *tab_take(bool (*pred)(const struct mapping *, uint64_t), uint64_t arg)
{
    struct mapping *taken = NULL;
    for (unsigned i = 0; i < NBUCKETS; i++)
        for (struct mapping **p = &maps.bucket[i]; *p;) {
            struct mapping *m = *p;
            if (m->cached && pred(m, arg)) {
                *p = m->next;
                maps.ncached--;
                m->next = taken;
                taken = m;
            } else {
                p = &m->next;
            }
        }
    return taken;
}

static int free_taken(struct mapping *m)
{
    int n = 0;
    while (m) {
        struct mapping *next = m->next;
        munmap(m->ptr, m->size);
        free(m);
        m = next;
        n++;
    }
    return n;
}

static bool has_id(const struct mapping *m, uint64_t id)
{
    return m->id == id;
}

static bool is_gone(const struct mapping *m, uint64_t unused)
{
    (void)unused;
    int r = m->name[0] ? exec__shmsys_name_is(m->name, m->dev, m->ino)
                       : exec__shmsys_peer_is(m->owner_pid, m->owner_fd, m->dev, m->ino);
    return r == 0; /* unknown (< 0) keeps the mapping */
}

/* ---------------------------------------------------------------------------------------- */
/* The guardian, creator side                                                                */
/* ---------------------------------------------------------------------------------------- */

static void guard_msg(struct exec__shmg_msg *m, char op, const exec_shm_t *s)
{
    memset(m, 0, sizeof *m);
    m->op = op;
    memcpy(m->name, s->m.name, sizeof m->name);
    m->dev = s->m.dev;
    m->ino = s->m.ino;
}

/* Make sure a guardian runs and knows every guarded name. guard.lock held. */
static int guard_ensure(void)
{
    if (guard.fd >= 0)
        return 0;
    spawning = true;
    int e = exec__shmsys_guard_start(&guard.fd, &guard.pid);
    spawning = false;
    if (e != 0) {
        guard.fd = -1;
        guard.pid = 0;
        return e == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
    }
    if (guard.count == 0)
        return 0;
    /* A previous guardian died: tell the new one every name still guarded. */
    pid_t me = getpid();
    int r = 0;
    pthread_mutex_lock(&maps.lock);
    for (unsigned i = 0; i < NBUCKETS && r == 0; i++)
        for (struct mapping *m = maps.bucket[i]; m && r == 0; m = m->next) {
            const exec_shm_t *o = (const exec_shm_t *)m;
            if (m->cached || !o->guarded || o->creator != me)
                continue;
            struct exec__shmg_msg msg;
            guard_msg(&msg, EXEC__SHMG_ADD, o);
            if (exec__shmsys_guard_send(guard.fd, &msg) != 0)
                r = EXEC_ESYS;
        }
    pthread_mutex_unlock(&maps.lock);
    if (r != 0) {
        exec__shmsys_guard_kill(guard.fd, guard.pid);
        guard.fd = -1;
        guard.pid = 0;
    }
    return r;
}

/* Send one message, replacing a guardian that died. guard.lock held. */
static int guard_send(char op, const exec_shm_t *s)
{
    struct exec__shmg_msg m;
    guard_msg(&m, op, s);
    for (int attempt = 0; attempt < 2; attempt++) {
        int r = guard_ensure();
        if (r != 0)
            return r;
        if (exec__shmsys_guard_send(guard.fd, &m) == 0)
            return 0;
        exec__shmsys_guard_kill(guard.fd, guard.pid);
        guard.fd = -1;
        guard.pid = 0;
    }
    return EXEC_ESYS;
}

/* One guarded name fewer (a drop, or a hold given back); the last stops the guardian. */
static void guard_count_down(exec_shm_t *s)
{
    if (--guard.count == 0) {
        if (guard.fd >= 0)
            exec__shmsys_guard_stop(guard.fd, guard.pid);
        guard.fd = -1;
        guard.pid = 0;
    } else if (s) { /* if the guardian died, a new one learns the others, not this one */
        (void)guard_send(EXEC__SHMG_DROP, s);
    }
}

/* Before a guarded name is made (@hold), or when it was not (!@hold): start the guardian and
 * count the name already, so no other thread's last drop stops it meanwhile; a creator
 * killed before guard_add() then leaves its name for one message, not a guardian's fork. */
static int guard_hold(bool hold)
{
    pthread_mutex_lock(&guard.lock);
    int r = hold ? guard_ensure() : 0;
    if (hold && r == 0)
        guard.count++;
    else if (!hold)
        guard_count_down(NULL);
    pthread_mutex_unlock(&guard.lock);
    return r;
}

/* Tell the guardian @s's name (held by guard_hold()). On failure the hold is given back. */
static int guard_add(exec_shm_t *s)
{
    pthread_mutex_lock(&guard.lock);
    int r = guard_send(EXEC__SHMG_ADD, s);
    if (r == 0)
        s->guarded = true;
    else
        guard_count_down(NULL);
    pthread_mutex_unlock(&guard.lock);
    return r;
}

/* Take @s's name back from the guardian; stop the guardian if it was the last one. */
static void guard_drop(exec_shm_t *s)
{
    pthread_mutex_lock(&guard.lock);
    if (s->guarded) {
        s->guarded = false;
        guard_count_down(s);
    }
    pthread_mutex_unlock(&guard.lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Create, attach                                                                            */
/* ---------------------------------------------------------------------------------------- */

static int create_named(exec_shm_t *s, const char *name)
{
    bool guarded = !(s->flags & EXEC_SHM_PERSISTENT);
    if (guarded) {
        int r = guard_hold(true);
        if (r != 0)
            return r;
    }
    int fd = -1;
    for (unsigned tries = 0; fd < 0; tries++) {
        if (name != NULL)
            memcpy(s->m.name, name, strlen(name) + 1);
        else
            snprintf(s->m.name, sizeof s->m.name, "exec-%d-%u", (int)getpid(),
                     atomic_fetch_add_explicit(&name_seq, 1, memory_order_relaxed) + 1);
        fd = shm_open(s->m.name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            break;
        if (errno == EEXIST && name == NULL && tries < 64)
            continue; /* a name left by an earlier process with our pid */
        int e = errno;
        if (guarded)
            (void)guard_hold(false);
        if (e == EEXIST)
            return EXEC_EBUSY;
        return e == EINVAL || e == ENAMETOOLONG ? EXEC_EINVAL : exec__shmsys_code(e);
    }
    set_object(&s->m, fd);
    int r = 0;
    if (guarded)
        r = guard_add(s);
    if (r == 0) {
        int e = exec__shmsys_reserve(fd, s->m.size);
        r = e ? exec__shmsys_code(e) : 0;
    }
    if (r == 0)
        r = map_fd(fd, s->m.size, false, &s->m.ptr);
    close(fd);
    if (r != 0) {
        guard_drop(s);
        (void)exec__shmsys_unlink_if(s->m.name, s->m.dev, s->m.ino);
    }
    return r;
}

static int create_anon(exec_shm_t *s)
{
    char mname[32];
    memfd_name(mname, sizeof mname, s->m.id);
    int fd = exec__shmsys_memfd(mname);
    if (fd < 0)
        return exec__shmsys_code(-fd);
    set_object(&s->m, fd);
    int e = exec__shmsys_reserve(fd, s->m.size);
    int r = e ? exec__shmsys_code(e) : map_fd(fd, s->m.size, false, &s->m.ptr);
    if (r != 0) {
        close(fd);
        return r;
    }
    s->fd = fd;
    s->m.owner_pid = getpid();
    s->m.owner_fd = fd;
    return 0;
}

EXEC_API int exec_shm_create(exec_shm_t **shm, const char *name, size_t size, unsigned flags)
{
    bool anon = flags & EXEC_SHM_ANONYMOUS;
    if (shm == NULL || size == 0 || (flags & ~(EXEC_SHM_ANONYMOUS | EXEC_SHM_PERSISTENT)))
        return EXEC_EINVAL;
    if (anon && (name != NULL || (flags & EXEC_SHM_PERSISTENT)))
        return EXEC_EINVAL;
    if (name != NULL && !exec__shmsys_name_ok(name))
        return EXEC_EINVAL;
    long page = sysconf(_SC_PAGESIZE);
    if ((uint64_t)size > (uint64_t)INT64_MAX || size > SIZE_MAX - (size_t)(page > 0 ? page : 4096))
        return EXEC_ETOOBIG;
    uint64_t total = exec__shmsys_mem_total();
    if (total != 0 && (uint64_t)size > total)
        return EXEC_ENOMEM; /* never try: on an unlimited tmpfs (memfd) it would meet the OOM
                             * killer before ENOSPC */
    int r = ready();
    if (r != 0)
        return r;
    exec_shm_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return EXEC_ENOMEM;
    s->fd = -1;
    s->creator = getpid();
    s->flags = flags;
    s->m.size = size;
    s->m.owner_fd = -1;
    atomic_init(&s->unlinked, false);
    pthread_mutex_lock(&maps.lock);
    s->m.id = new_id();
    pthread_mutex_unlock(&maps.lock);

    r = anon ? create_anon(s) : create_named(s, name);
    if (r != 0) {
        free(s);
        return r;
    }
    pthread_mutex_lock(&maps.lock);
    tab_insert(&s->m);
    pthread_mutex_unlock(&maps.lock);
    *shm = s;
    return 0;
}

EXEC_API int exec_shm_attach(exec_shm_t **shm, const char *name, unsigned flags)
{
    if (shm == NULL || name == NULL || !exec__shmsys_name_ok(name) || (flags & ~EXEC_SHM_RDONLY))
        return EXEC_EINVAL;
    int r = ready();
    if (r != 0)
        return r;
    bool ro = flags & EXEC_SHM_RDONLY;
    int fd = shm_open(name, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
    exec_shm_t *s = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
        r = EXEC_ESYS; /* an object being created (size still 0) cannot be mapped */
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        r = EXEC_ENOMEM;
        goto out;
    }
    s->fd = -1;
    s->flags = flags;
    s->m.size = (size_t)st.st_size;
    s->m.rdonly = ro;
    s->m.owner_fd = -1;
    s->m.dev = (uint64_t)st.st_dev;
    s->m.ino = (uint64_t)st.st_ino;
    memcpy(s->m.name, name, strlen(name) + 1);
    atomic_init(&s->unlinked, false);
    r = map_fd(fd, s->m.size, ro, &s->m.ptr);
    if (r != 0)
        goto out;
    pthread_mutex_lock(&maps.lock);
    s->m.id = new_id();
    tab_insert(&s->m);
    pthread_mutex_unlock(&maps.lock);
    *shm = s;
out:
    close(fd);
    if (r != 0)
        free(s);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Accessors and refs                                                                        */
/* ---------------------------------------------------------------------------------------- */

EXEC_API void *exec_shm_ptr(const exec_shm_t *shm)
{
    return shm ? shm->m.ptr : NULL;
}

EXEC_API size_t exec_shm_size(const exec_shm_t *shm)
{
    return shm ? shm->m.size : 0;
}

EXEC_API const char *exec_shm_name(const exec_shm_t *shm)
{
    return shm ? shm->m.name : NULL;
}

EXEC_API int exec_shm_ref(const exec_shm_t *shm, exec_shm_ref_t *ref)
{
    if (shm == NULL || ref == NULL)
        return EXEC_EINVAL;
    memset(ref, 0, sizeof *ref);
    memcpy(ref->name, shm->m.name, sizeof ref->name);
    ref->size = shm->m.size;
    ref->id = shm->m.id;
    ref->owner_pid = (int32_t)shm->m.owner_pid;
    ref->owner_fd = shm->m.owner_fd;
    return 0;
}

static int ref_check(const exec_shm_ref_t *ref)
{
    if (ref->id == 0 || ref->size == 0 || ref->size > SIZE_MAX ||
        memchr(ref->name, '\0', sizeof ref->name) == NULL)
        return EXEC_EINVAL;
    for (size_t i = 0; i < sizeof ref->reserved / sizeof ref->reserved[0]; i++)
        if (ref->reserved[i] != 0)
            return EXEC_EINVAL;
    if (ref->name[0] == '\0')
        return ref->owner_pid > 0 && ref->owner_fd >= 0 ? 0 : EXEC_EINVAL;
    return exec__shmsys_name_ok(ref->name) ? 0 : EXEC_EINVAL;
}

/* Map what @ref names into the new cache entry @c (not in the table yet). */
static int map_ref(const exec_shm_ref_t *ref, bool ro, struct mapping *c)
{
    int fd;
    if (ref->name[0] != '\0') {
        fd = shm_open(ref->name, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
        if (fd < 0)
            return errno == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
    } else {
        char mname[32];
        memfd_name(mname, sizeof mname, ref->id);
        fd = exec__shmsys_open_peer((pid_t)ref->owner_pid, ref->owner_fd, ro, mname);
        if (fd < 0)
            return -fd == ENOSYS ? EXEC_ENOTSUP : -fd == ENOMEM ? EXEC_ENOMEM : EXEC_ESYS;
    }
    struct stat st;
    int r = EXEC_ESYS;
    if (fstat(fd, &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size >= ref->size)
        r = map_fd(fd, (size_t)ref->size, ro, &c->ptr);
    if (r == 0) {
        c->id = ref->id;
        c->size = (size_t)ref->size;
        c->rdonly = ro;
        c->cached = true;
        c->dev = (uint64_t)st.st_dev;
        c->ino = (uint64_t)st.st_ino;
        memcpy(c->name, ref->name, sizeof c->name);
        c->owner_pid = (pid_t)ref->owner_pid;
        c->owner_fd = ref->owner_fd;
    }
    close(fd);
    return r;
}

EXEC_API int exec_shm_map(const exec_shm_ref_t *ref, unsigned flags, void **ptr, size_t *size)
{
    if (ref == NULL || ptr == NULL || size == NULL || (flags & ~EXEC_SHM_RDONLY))
        return EXEC_EINVAL;
    int r = ref_check(ref);
    if (r == 0)
        r = ready();
    if (r != 0)
        return r;
    bool ro = flags & EXEC_SHM_RDONLY;
    size_t want = (size_t)ref->size;

    pthread_mutex_lock(&maps.lock);
    struct mapping *m = tab_find(ref->id, ro, want);
    void *p = m ? m->ptr : NULL;
    pthread_mutex_unlock(&maps.lock);
    if (p == NULL) {
        /* Map outside the lock (opening and mapping take a few microseconds, and other
         * threads may be resolving refs that are already cached), then insert unless another
         * thread was faster. */
        exec_shm_ref_t local; /* on another host than the creator: a local copy (shm.h) */
        int (*remote)(const exec_shm_ref_t *, exec_shm_ref_t *) = atomic_load(&exec__shm_remote);
        if (remote && (r = ro ? remote(ref, &local) : EXEC_ENOTSUP) != 0)
            return r;
        struct mapping *c = calloc(1, sizeof *c);
        if (c == NULL)
            return EXEC_ENOMEM;
        r = map_ref(remote ? &local : ref, ro, c);
        if (r != 0) {
            free(c);
            return r;
        }
        pthread_mutex_lock(&maps.lock);
        m = tab_find(ref->id, ro, want);
        if (m == NULL)
            tab_insert(c);
        p = m ? m->ptr : c->ptr;
        pthread_mutex_unlock(&maps.lock);
        if (m != NULL) {
            munmap(c->ptr, c->size);
            free(c);
        }
    }
    *ptr = p;
    *size = want;
    return 0;
}

/* Take the cached mappings of buffers that are gone (maps.lock held). */
static struct mapping *take_gone(uint64_t now)
{
    maps.trim_ns = now;
    struct mapping *dead = tab_take(is_gone, 0);
    maps.nkept = maps.ncached;
    return dead;
}

int exec__shmbuf_trim(bool force)
{
    pthread_mutex_lock(&maps.lock);
    struct mapping *dead = NULL;
    uint64_t now = exec__now_ns();
    if (maps.ncached > 0 && (force || now - maps.trim_ns >= TRIM_PERIOD_NS))
        dead = take_gone(now);
    pthread_mutex_unlock(&maps.lock);
    return free_taken(dead);
}

/* The cache doubled since the last look (plus some slack): look now, even between busy
 * tasks. Each look costs a check per cached mapping, so looking only when the count doubled
 * keeps the cost per new mapping constant, and the stale mappings fewer than the live ones
 * plus the slack, however fast buffers come and go. */
int exec__shmbuf_trim_grown(void)
{
    pthread_mutex_lock(&maps.lock);
    struct mapping *dead = NULL;
    if (maps.ncached >= 2 * maps.nkept + TRIM_SLACK)
        dead = take_gone(exec__now_ns());
    pthread_mutex_unlock(&maps.lock);
    return free_taken(dead);
}

/* ---------------------------------------------------------------------------------------- */
/* Unlink, close                                                                             */
/* ---------------------------------------------------------------------------------------- */

EXEC_API int exec_shm_unlink(exec_shm_t *shm)
{
    if (shm == NULL)
        return EXEC_EINVAL;
    if (shm->flags & EXEC_SHM_ANONYMOUS)
        return 0;
    if (shm->creator != getpid())
        return EXEC_EBUSY;
    if (atomic_exchange_explicit(&shm->unlinked, true, memory_order_acq_rel))
        return 0; /* already removed by us */
    guard_drop(shm); /* before the unlink: see the top of this file */
    return exec__shmsys_unlink_if(shm->m.name, shm->m.dev, shm->m.ino) ? EXEC_ESYS : 0;
}

EXEC_API int exec_shm_close(exec_shm_t *shm)
{
    if (shm == NULL)
        return 0;
    pid_t me = getpid();
    void (*closed)(uint64_t) = atomic_load(&exec__shm_closed);
    if (closed)
        closed(shm->m.id);
    pthread_mutex_lock(&maps.lock);
    tab_remove(&shm->m);
    struct mapping *dead = tab_take(has_id, shm->m.id); /* refs of it mapped here */
    pthread_mutex_unlock(&maps.lock);
    free_taken(dead);

    if (!(shm->flags & (EXEC_SHM_ANONYMOUS | EXEC_SHM_PERSISTENT)) && shm->creator == me &&
        !atomic_exchange_explicit(&shm->unlinked, true, memory_order_acq_rel)) {
        guard_drop(shm);
        (void)exec__shmsys_unlink_if(shm->m.name, shm->m.dev, shm->m.ino);
    }
    int r = munmap(shm->m.ptr, shm->m.size) == 0 ? 0 : EXEC_ESYS;
    /* A child of fork() closes its inherited memfd only if the fd is still that memfd (a
     * process worker may have closed every inherited fd, and the number reused). */
    if (shm->fd >= 0 &&
        (shm->creator == me || exec__shmsys_peer_is(0, shm->fd, shm->m.dev, shm->m.ino) == 1))
        close(shm->fd);
    free(shm);
    return r;
}
