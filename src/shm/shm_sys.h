/* SPDX-License-Identifier: MIT */
/*
 * shm/shm_sys.h - what shm.c (the shared-memory buffer helper) and shm_sys.c (its system layer:
 * memfd, space reservation, peer fds, the guardian process) share. Nothing here is API.
 *
 * Conventions: the exec__shmsys_* functions return 0 or a positive errno value (or an fd >= 0
 * / a negative errno value where they make one); shm.c turns errno values into EXEC_E* codes.
 */
#ifndef EXEC_SHM_SYS_H
#define EXEC_SHM_SYS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "executor.h"

/*
 * One message to the guardian. The creator sends ADD right after shm_open(O_EXCL) made the
 * name, DROP before it removes the name itself (so that the guardian can never unlink a name
 * the creator already removed and someone else re-created), and QUIT when it has no guarded
 * name left. dev/ino identify the object: the guardian unlinks a name only while it still
 * names that object.
 */
enum { EXEC__SHMG_ADD = 'A', EXEC__SHMG_DROP = 'D', EXEC__SHMG_QUIT = 'Q' };

struct exec__shmg_msg {
    char op;
    char name[EXEC_SHM_NAME_MAX + 1];
    uint64_t dev;
    uint64_t ino;
};

/*
 * Start a guardian for the calling process (the "creator"): a child process that reads
 * messages from the returned control socket and, when the creator dies (EOF on the socket,
 * or the creator's pidfd fires), unlinks every name it was told to guard and exits.
 * *fd: the creator's end, close-on-exec; *pid: the guardian, a child of the caller.
 * Return: 0 or an errno value (nothing is left behind on failure).
 */
int exec__shmsys_guard_start(int *fd, pid_t *pid);
/* Send one message. 0, or an errno value (EPIPE/ECONNRESET: the guardian is gone). */
int exec__shmsys_guard_send(int fd, const struct exec__shmg_msg *m);
/* Stop a guardian: QUIT (it exits without unlinking anything), close @fd, reap @pid. If it
 * has not exited after about 2 s (stopped, stuck), it is killed. Never blocks for long. */
void exec__shmsys_guard_stop(int fd, pid_t pid);
/* Kill and reap a guardian that failed (its socket broke); closes @fd. */
void exec__shmsys_guard_kill(int fd, pid_t pid);

/* An anonymous memory file (memfd), close-on-exec, named @name in /proc only.
 * Return: the fd, or a negative errno value (-ENOSYS where there is no memfd). */
int exec__shmsys_memfd(const char *name);
/* The memfd name of anonymous buffer (or copy) with id @id, a printf format of one uint64_t;
 * exec_shm_map() checks it on what it opened through /proc. */
#define EXEC__SHMSYS_MEMFD_NAME "exec-%016" PRIx64

/* Give @fd the size @size and reserve its space now (ftruncate, then fallocate in chunks
 * that survive EINTR). 0 or an errno value (ENOSPC: the file system is full). */
int exec__shmsys_reserve(int fd, uint64_t size);

/* RAM plus swap in bytes, the most a reservation can ever get; 0 when unknown. */
uint64_t exec__shmsys_mem_total(void);

/* 64 random bits (getrandom, else a mix of the clock, the pid and an address). */
uint64_t exec__shmsys_random64(void);

/*
 * Open the fd @fd of process @pid (through /proc/<pid>/fd), read-only or read-write, close-on-
 * exec, and check that it is the memfd named @memfd_name (so that a reused fd number is not
 * taken for the buffer). Return: the new fd, or a negative errno value.
 */
int exec__shmsys_open_peer(pid_t pid, int fd, bool rdonly, const char *memfd_name);

/* Whether fd @fd of process @pid (pid 0: this process) is still the object (@dev, @ino).
 * Return: 1 yes, 0 no (closed, gone, another object), a negative errno when unknown. */
int exec__shmsys_peer_is(pid_t pid, int fd, uint64_t dev, uint64_t ino);

/* Whether the name @name still names the object (@dev, @ino).
 * Return: 1 yes, 0 no (no such name, or another object), a negative errno when unknown. */
int exec__shmsys_name_is(const char *name, uint64_t dev, uint64_t ino);

/* Remove @name if it still names the object (@dev, @ino). 0 when removed or when the name no
 * longer names it (someone else's object is never removed); else an errno value. */
int exec__shmsys_unlink_if(const char *name, uint64_t dev, uint64_t ino);

/*
 * shm.c: drop this process's cached exec_shm_map() mappings of buffers that are gone (named:
 * unlinked; anonymous: closed by their creator), at most every 100 ms unless @force. Meant to
 * be called by a worker process between two tasks, when no task can hold such a pointer.
 * Return: the number of mappings dropped.
 */
int exec__shmbuf_trim(bool force);

/* The EXEC_* code of errno value @e (ENOMEM, ENOSPC, EDQUOT: EXEC_ENOMEM; EFBIG, EOVERFLOW:
 * EXEC_ETOOBIG; ENOSYS: EXEC_ENOTSUP; else EXEC_ESYS). Not of the errno-returning family. */
int exec__shmsys_code(int e);
/* Whether @name is a valid buffer name: [A-Za-z0-9._-]+, at most EXEC_SHM_NAME_MAX, not
 * starting with '.'. */
bool exec__shmsys_name_ok(const char *name);

#endif /* EXEC_SHM_SYS_H */
