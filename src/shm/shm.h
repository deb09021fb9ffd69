/* SPDX-License-Identifier: MIT */
/*
 * shm/shm.h - what the shared-memory buffer helper offers the rest of the library (the
 * public part is in executor.h). Nothing here is API.
 */
#ifndef EXEC_SHM_SHM_H
#define EXEC_SHM_SHM_H

#include <stdbool.h>
#include <stdint.h>

#include "executor.h"

/* In a worker process, drop cached mappings of buffers that are gone (at most every 100 ms
 * unless @force). Returns how many were dropped. */
int exec__shmbuf_trim(bool force);
/* In a worker process, between tasks: the same, but only when the cache has grown to twice
 * what the last trim kept plus a few (so stale mappings stay few while buffers come and go
 * faster than the worker idles). Returns how many were dropped. */
int exec__shmbuf_trim_grown(void);

/* Hooks of the MPI backend (NULL everywhere else), set before the threads that map buffers
 * exist. remote: set in a process on another host than the creator of every ref it will
 * see; exec_shm_map() then never opens @ref itself: a read-only map asks remote() for a ref
 * to a local read-only copy (*local: same id and size, a memfd of this host) and maps that
 * (cached like any other), a read-write map is EXEC_ENOTSUP. closed: exec_shm_close() tells
 * it the id of every buffer it closes (the copies on other hosts go then). */
extern int (*_Atomic exec__shm_remote)(const exec_shm_ref_t *ref, exec_shm_ref_t *local);
extern void (*_Atomic exec__shm_closed)(uint64_t id);

/* A read-only copy of a buffer on this host, for the remote hook (shm_copy.c): a memfd of
 * @size bytes holding @data, named as anonymous buffer @id is. *local: a ref to it (id @id,
 * this process, the memfd), which exec_shm_map() resolves here and in every process of the
 * same user on this host. The copy lives until exec__shm_copy_drop() closes @local's fd (a
 * worker's cached mapping of it is dropped by its next trim). EXEC_OK, EXEC_ENOMEM,
 * EXEC_ENOTSUP (no memfd) or EXEC_ESYS. */
int exec__shm_copy_make(uint64_t id, const void *data, size_t size, exec_shm_ref_t *local);
void exec__shm_copy_drop(const exec_shm_ref_t *local);

#endif /* EXEC_SHM_SHM_H */
