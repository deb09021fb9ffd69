/* SPDX-License-Identifier: MIT */
/*
 * fuzz_shm_ref.c - libFuzzer target: exec_shm_map() on an exec_shm_ref_t made of junk. A ref
 * travels in a task's argument bytes, so a worker may be handed anything; mapping it must
 * return a code or a mapping of exactly the size the ref says that can be read from end to
 * end, and never block, crash or open something that is not a buffer of this library.
 *
 * The target owns two real buffers, one anonymous and one named, so that junk can be mixed
 * with real parts: the first input byte says which fields come from a real ref (owner pid
 * and fd, name, id) and whether to map read-only; the next 128 bytes are the ref. Every 512
 * runs the buffers are closed and made again, and the cache of mappings is trimmed (it only
 * ever holds refs that mapped).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "shm/shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_SIZE 8192u

static exec_shm_t *anon, *named;
static exec_shm_ref_t anon_ref, named_ref;
static unsigned runs;

static void buffers(void)
{
    if (anon && runs % 512 != 0)
        return;
    exec_shm_close(anon);
    exec_shm_close(named);
    (void)exec__shmbuf_trim(true);
    char name[64];
    snprintf(name, sizeof name, "exec-fuzz-%d", (int)getpid());
    if (exec_shm_create(&anon, NULL, BUF_SIZE, EXEC_SHM_ANONYMOUS) != 0 ||
        exec_shm_create(&named, name, BUF_SIZE, 0) != 0 || exec_shm_ref(anon, &anon_ref) != 0 ||
        exec_shm_ref(named, &named_ref) != 0)
        abort();
}

static volatile unsigned char sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    runs++;
    buffers();
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    exec_shm_ref_t ref;
    memset(&ref, 0, sizeof ref);
    memcpy(&ref, data + 1, size - 1 < sizeof ref ? size - 1 : sizeof ref);
    const exec_shm_ref_t *real = mode & 2 ? &named_ref : &anon_ref;
    if (mode & 4) {
        ref.owner_pid = real->owner_pid;
        ref.owner_fd = real->owner_fd;
    }
    if (mode & 8)
        memcpy(ref.name, real->name, sizeof ref.name);
    if (mode & 16)
        ref.id = real->id;
    if (mode & 32)
        ref.size %= 2 * BUF_SIZE;
    unsigned flags = mode & 1 ? EXEC_SHM_RDONLY : 0;
    void *p = NULL;
    size_t n = 0;
    int r = exec_shm_map(&ref, flags, &p, &n);
    if (r == 0) {
        if (!p || n != ref.size)
            abort();
        /* Every byte of what it returned is mapped by an object at least that big. */
        const volatile unsigned char *b = p;
        for (size_t i = 0; i < n; i += 4096)
            sink = b[i];
        sink = b[n - 1];
    } else if (p || n || r >= 0 || exec_errname(r) == NULL) {
        abort();
    }
    return 0;
}
