/* SPDX-License-Identifier: MIT */
/*
 * core/trace_priv.h - the trace object, shared by core/trace.c (files, lanes, the trace thread)
 * and core/trace_json.c (the JSON lines). Nothing outside those two files includes it.
 */
#ifndef EXEC_CORE_TRACE_PRIV_H
#define EXEC_CORE_TRACE_PRIV_H

#include <pthread.h>
#include <stddef.h>

#include "core/trace.h"

#define EXEC__TRACE_FBUF ((size_t)64 * 1024) /* JSON written per write(2), at most */
#define EXEC__TRACE_LINE_MAX 512             /* the longest line one event makes */

struct exec__trace {
    char *path; /* the caller's string, copied */
    int fd;     /* O_APPEND | O_CLOEXEC */
    uint32_t id; /* "pid" of this executor in the JSON: its number in this program */
    const char *backend;
    int workers;
    int ospid;
    unsigned fork_gen;

    int nlanes; /* private lanes: workers + 1 */
    struct exec__tlane *lanes;
    struct exec__tlane shared; /* behind shared_lock */
    pthread_mutex_t shared_lock;
    pthread_mutex_t sync_lock; /* one exec__trace_sync() at a time */

    /* Writing. Formatters format without a lock, each in its own buffer; wlock is held
     * around each write(2). */
    pthread_mutex_t wlock;
    _Atomic bool werr;        /* a write failed: nothing more is written */
    uint64_t tick0, ns0;      /* calibration: exec__ticks() and CLOCK_MONOTONIC at open */
    _Atomic uint64_t dropped; /* events lost (no buffer, or the file failed) */

    /* The trace thread and its format buffer (also the header's and the footer's). */
    pthread_t thread;
    char *fbuf;
    _Atomic uint32_t bell; /* bumped to stop it */
    _Atomic bool stop;
};

/* A formatting pass: the clock calibration, and the start of the last span line (a lane's
 * events mostly share their track). */
struct exec__tfmt {
    const struct exec__trace *t;
    double scale; /* ns per tick */
    uint32_t tid;
    size_t plen;
    char prefix[64]; /* {"ph":"X","pid":P,"tid":T,"ts": */
    uint64_t ts_sec; /* the whole seconds of the last span's start, formatted: */
    size_t ts_len;   /* 0: none yet */
    char ts_digits[24];
};

/* trace.c */
int exec__trace_write_all(int fd, const char *p, size_t n);

/* trace_json.c */
/* A pair (ticks, *ns) taken at one moment. */
uint64_t exec__trace_clock_pair(uint64_t *ns);
/* Start a formatting pass (takes a fresh calibration pair). */
void exec__trace_fmt_begin(const struct exec__trace *t, struct exec__tfmt *fx);
/* Format one event (one or two lines) at @out; returns the bytes written
 * (<= EXEC__TRACE_LINE_MAX). */
size_t exec__trace_format(struct exec__tfmt *fx, const struct exec__tev *e, char *out);
/* The executor's own lines (its name), at open; 0 or -1 (errno). */
int exec__trace_header(struct exec__trace *t);
/* The last line (events lost, if any), at close. */
void exec__trace_footer(struct exec__trace *t);

#endif /* EXEC_CORE_TRACE_PRIV_H */
