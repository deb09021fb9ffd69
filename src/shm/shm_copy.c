/* SPDX-License-Identifier: MIT */
/*
 * shm/shm_copy.c - read-only copies of buffers made on another host (see shm.h): a memfd
 * named as the buffer's own anonymous memfd would be, so that a ref to it resolves through
 * the one path of exec_shm_map() for anonymous buffers (/proc/<pid>/fd/<fd>, name checked).
 */
#include "shm/shm.h"
#include "shm/shm_sys.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int exec__shm_copy_make(uint64_t id, const void *data, size_t size, exec_shm_ref_t *local)
{
    char name[32];
    snprintf(name, sizeof name, EXEC__SHMSYS_MEMFD_NAME, id);
    int fd = exec__shmsys_memfd(name);
    if (fd < 0)
        return exec__shmsys_code(-fd);
    int e = exec__shmsys_reserve(fd, size);
    for (size_t off = 0; !e && off < size;) {
        ssize_t n = pwrite(fd, (const char *)data + off, size - off, (off_t)off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EINTR)
            e = errno;
        else if (n == 0)
            e = EIO;
    }
    if (e) {
        close(fd);
        return exec__shmsys_code(e);
    }
    memset(local, 0, sizeof *local);
    local->size = size;
    local->id = id;
    local->owner_pid = (int32_t)getpid();
    local->owner_fd = fd;
    return EXEC_OK;
}

void exec__shm_copy_drop(const exec_shm_ref_t *local)
{
    if (local->owner_fd >= 0 && local->owner_pid == (int32_t)getpid())
        close(local->owner_fd);
}
