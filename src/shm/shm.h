/* SPDX-License-Identifier: MIT */
/*
 * shm/shm.h - what the shared-memory buffer helper offers the rest of the library (the
 * public part is in executor.h). Nothing here is API.
 */
#ifndef EXEC_SHM_SHM_H
#define EXEC_SHM_SHM_H

#include <stdbool.h>

/* In a worker process, drop cached mappings of buffers that are gone (at most every 100 ms
 * unless @force). Returns how many were dropped. */
int exec__shmbuf_trim(bool force);
/* In a worker process, between tasks: the same, but only when the cache has grown to twice
 * what the last trim kept plus a few (so stale mappings stay few while buffers come and go
 * faster than the worker idles). Returns how many were dropped. */
int exec__shmbuf_trim_grown(void);

#endif /* EXEC_SHM_SHM_H */
