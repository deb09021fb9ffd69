/* SPDX-License-Identifier: MIT */
/*
 * core/trace_json.c - the lines of a trace file: recorded events (core/trace.h) as Trace
 * Event JSON, the format Perfetto and chrome://tracing open
 * (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
 *
 * One event per line, each followed by a comma (the array may end without "]"). In the JSON,
 * "pid" is the executor (numbered from 1 in this program) and "tid" a worker: the OS thread id
 * of a worker thread, the pid of a worker process, 0 for the executor itself (cancels of
 * queued tasks). Metadata events ("ph":"M") name them. Task and chunk spans are complete
 * events ("ph":"X", ts and dur in microseconds of CLOCK_MONOTONIC); crashes, deadlines,
 * cancels and recycling are thread-scoped instants ("ph":"i", "s":"t").
 *
 * Numbers are formatted by hand: snprintf() would cost more than the task being traced.
 */
#include "core/trace_priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "executor.h"

/* ---------------------------------------------------------------------------------------- */
/* Time                                                                                      */
/* ---------------------------------------------------------------------------------------- */

uint64_t exec__trace_clock_pair(uint64_t *ns)
{
    /* The tightest of three tries: a preemption between the reads would skew the pair. */
    uint64_t best = UINT64_MAX, tick = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t a = exec__ticks(), n = exec__now_ns(), b = exec__ticks();
        if (b - a < best) {
            best = b - a;
            tick = a + (b - a) / 2;
            *ns = n;
        }
    }
    return tick;
}

void exec__trace_fmt_begin(const struct exec__trace *t, struct exec__tfmt *fx)
{
    fx->t = t;
    fx->scale = 1.0;
    fx->tid = UINT32_MAX;
    fx->plen = 0;
    fx->ts_len = 0;
    fx->ts_sec = 0;
    if (!exec__ticks_fast)
        return;
    uint64_t ns;
    uint64_t tick = exec__trace_clock_pair(&ns);
    if (tick > t->tick0 && ns > t->ns0)
        fx->scale = (double)(ns - t->ns0) / (double)(tick - t->tick0);
}

/* CLOCK_MONOTONIC ns of a recorded time. */
static uint64_t to_ns(const struct exec__tfmt *fx, uint64_t v, unsigned flags)
{
    if ((flags & EXEC__TEVF_NS) || !exec__ticks_fast)
        return v;
    const struct exec__trace *t = fx->t;
    int64_t off = (int64_t)((double)(int64_t)(v - t->tick0) * fx->scale);
    return off < 0 && (uint64_t)-off > t->ns0 ? 0 : t->ns0 + (uint64_t)off;
}

/* ---------------------------------------------------------------------------------------- */
/* Pieces of lines                                                                           */
/* ---------------------------------------------------------------------------------------- */

#define PUT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static const char digits2[] = "00010203040506070809101112131415161718192021222324252627282930"
                              "31323334353637383940414243444546474849505152535455565758596061"
                              "6263646566676869707172737475767778798081828384858687888990919293"
                              "949596979899";

/* Decimal digits, written in place (no memmove call for a few bytes: this runs for every
 * number of every event). The digit count comes from the bit length (log10(2) ~ 1233/4096)
 * and one comparison, not a loop over powers of ten. */
static char *put_u(char *p, uint64_t v)
{
    static const uint64_t pow10[] = {1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u,
                                     10000000u, 100000000u, 1000000000u, 10000000000u,
                                     100000000000u, 1000000000000u, 10000000000000u,
                                     100000000000000u, 1000000000000000u,
                                     10000000000000000u, 100000000000000000u,
                                     1000000000000000000u, 10000000000000000000u};
    if (v < 10) {
        *p = (char)('0' + v);
        return p + 1;
    }
    unsigned bits = 64u - (unsigned)__builtin_clzll(v); /* v >= 10: 4 .. 64 */
    unsigned t = bits * 1233u >> 12;                     /* 1 .. 19 */
    int n = (int)t + (v >= pow10[t]);                    /* digits: 2 .. 20 */
    char *q = p + n;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, digits2 + 2 * r, 2);
    }
    if (v >= 10)
        memcpy(q - 2, digits2 + 2 * v, 2);
    else
        q[-1] = (char)('0' + v);
    return p + n;
}

static char *put_i(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u(p, (uint64_t)v);
}

/* Microseconds with three decimals, from ns. */
static char *put_us(char *p, uint64_t ns)
{
    p = put_u(p, ns / 1000);
    unsigned r = (unsigned)(ns % 1000);
    p[0] = '.';
    p[1] = (char)('0' + r / 100);
    memcpy(p + 2, digits2 + 2 * (r % 100), 2);
    return p + 4;
}

/* A timestamp: microseconds with three decimals, from ns. Consecutive events of a pass
 * mostly fall in the same second, whose digits are kept formatted in @fx: then only the six
 * low digits of the microseconds are new (three pairs, 32-bit arithmetic). */
static char *put_ts(char *p, struct exec__tfmt *fx, uint64_t ns)
{
    uint64_t us = ns / 1000;
    uint64_t sec = us / 1000000;
    if (sec == 0)
        return put_us(p, ns);
    if (!fx->ts_len || sec != fx->ts_sec) {
        fx->ts_len = (size_t)(put_u(fx->ts_digits, sec) - fx->ts_digits);
        fx->ts_sec = sec;
    }
    memcpy(p, fx->ts_digits, sizeof fx->ts_digits); /* a constant size: no call */
    p += fx->ts_len;
    unsigned lo = (unsigned)(us % 1000000), r = (unsigned)(ns % 1000);
    memcpy(p, digits2 + 2 * (lo / 10000), 2);
    memcpy(p + 2, digits2 + 2 * (lo / 100 % 100), 2);
    memcpy(p + 4, digits2 + 2 * (lo % 100), 2);
    p[6] = '.';
    p[7] = (char)('0' + r / 100);
    memcpy(p + 8, digits2 + 2 * (r % 100), 2);
    return p + 10;
}

/* A string without anything to escape (names we make ourselves). */
static char *put_s(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* {"ph":"<ph>","pid":<id>,"tid":<tid>,"ts":<ts> */
static char *head(char *p, const struct exec__trace *t, char ph, uint32_t tid, uint64_t ts_ns)
{
    p = PUT(p, "{\"ph\":\"");
    *p++ = ph;
    p = PUT(p, "\",\"pid\":");
    p = put_u(p, t->id);
    p = PUT(p, ",\"tid\":");
    p = put_u(p, tid);
    p = PUT(p, ",\"ts\":");
    return put_us(p, ts_ns);
}

/* The same for a span, from the pass's cache when the track is the last one's. */
static char *span_head(char *p, struct exec__tfmt *fx, uint32_t tid, uint64_t ts_ns)
{
    if (tid != fx->tid) {
        char *q = PUT(fx->prefix, "{\"ph\":\"X\",\"pid\":");
        q = put_u(q, fx->t->id);
        q = PUT(q, ",\"tid\":");
        q = put_u(q, tid);
        q = PUT(q, ",\"ts\":");
        fx->plen = (size_t)(q - fx->prefix);
        fx->tid = tid;
    }
    memcpy(p, fx->prefix, sizeof fx->prefix); /* a constant size: no call */
    return put_ts(p + fx->plen, fx, ts_ns);
}

/* "<name>" of an outcome code. */
static char *put_code(char *p, int code)
{
    if (code == EXEC_OK)
        return PUT(p, "\"EXEC_OK\"");
    *p++ = '"';
    p = put_s(p, exec_errname(code));
    *p++ = '"';
    return p;
}

static char *end_line(char *p)
{
    return PUT(p, "}},\n");
}

/* A metadata line naming @tid (or the executor, for process_name): name and sort index. */
static char *meta(char *p, const struct exec__trace *t, uint32_t tid, const char *what,
                  const char *name, long sort)
{
    p = head(p, t, 'M', tid, t->ns0);
    p = PUT(p, ",\"name\":\"");
    p = put_s(p, what);
    p = PUT(p, "_name\",\"args\":{\"name\":\"");
    p = put_s(p, name);
    p = PUT(p, "\"}},\n");
    p = head(p, t, 'M', tid, t->ns0);
    p = PUT(p, ",\"name\":\"");
    p = put_s(p, what);
    p = PUT(p, "_sort_index\",\"args\":{\"sort_index\":");
    p = put_i(p, sort);
    return end_line(p);
}

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* The start of a span line, up to its args; *t0 gets its start in ns. */
static char *span(char *p, struct exec__tfmt *fx, const struct exec__tev *e, uint64_t *t0)
{
    uint64_t t1 = to_ns(fx, e->t1, e->flags);
    *t0 = to_ns(fx, e->t0, e->flags);
    p = span_head(p, fx, e->tid, *t0);
    p = PUT(p, ",\"dur\":");
    return put_us(p, t1 > *t0 ? t1 - *t0 : 0);
}

static char *task(char *p, struct exec__tfmt *fx, const struct exec__tev *e)
{
    uint64_t t0;
    p = span(p, fx, e, &t0);
    p = PUT(p, ",\"name\":\"task\",\"args\":{\"seq\":");
    p = put_u(p, e->a);
    p = PUT(p, ",\"status\":");
    p = put_code(p, e->code);
    p = PUT(p, ",\"arg_size\":");
    p = put_u(p, e->b);
    if (e->code == EXEC_ETASK) {
        p = PUT(p, ",\"task_status\":");
        p = put_i(p, e->c);
    }
    if (e->tsub) {
        uint64_t sub = to_ns(fx, e->tsub, 0);
        p = PUT(p, ",\"queued_us\":");
        p = put_us(p, t0 > sub ? t0 - sub : 0);
    }
    return end_line(p);
}

static char *chunk(char *p, struct exec__tfmt *fx, const struct exec__tev *e)
{
    uint64_t t0;
    p = span(p, fx, e, &t0);
    p = PUT(p, ",\"name\":\"map chunk\",\"args\":{\"lo\":");
    p = put_u(p, e->a);
    p = PUT(p, ",\"hi\":");
    p = put_u(p, e->b);
    p = PUT(p, ",\"failed\":");
    p = put_i(p, e->c);
    p = PUT(p, ",\"status\":");
    p = put_code(p, e->code);
    p = PUT(p, ",\"arg_size\":");
    p = put_i(p, e->d);
    return end_line(p);
}

static char *track(char *p, const struct exec__trace *t, const struct exec__tev *e)
{
    char name[128];
    if (e->c > 0) /* a worker of MPI rank c (pid b); its tid is just a number */
        snprintf(name, sizeof name, "%s worker %llu (rank %d, pid %llu)", t->backend,
                 (unsigned long long)e->a, (int)e->c, (unsigned long long)e->b);
    else
        snprintf(name, sizeof name, "%s worker %llu (%s %u)", t->backend,
                 (unsigned long long)e->a, e->d ? "pid" : "tid", e->tid);
    return meta(p, t, e->tid, "thread", name, (long)e->a);
}

static const char *const cancel_when[] = {"queued", "running", "shutdown"};
static const char *const recycle_why[] = {"max_tasks_per_child", "max_rss_per_child",
                                          "max_age_ms"};

static char *instant(char *p, const struct exec__tfmt *fx, const struct exec__tev *e)
{
    static const char *const names[] = {
        [EXEC__TEV_START] = "worker start", [EXEC__TEV_CRASH] = "crash",
        [EXEC__TEV_DEADLINE] = "deadline",  [EXEC__TEV_CANCEL] = "cancel",
        [EXEC__TEV_RECYCLE] = "recycle",    [EXEC__TEV_KILLED] = "killed",
    };
    p = head(p, fx->t, 'i', e->tid, to_ns(fx, e->t0, e->flags));
    p = PUT(p, ",\"s\":\"t\",\"name\":\"");
    p = put_s(p, names[e->kind]);
    p = PUT(p, "\",\"args\":{");
    switch (e->kind) {
    case EXEC__TEV_START:
        p = PUT(p, "\"slot\":");
        return end_line(put_u(p, e->a));
    case EXEC__TEV_CRASH:
        p = PUT(p, "\"signal\":");
        p = put_i(p, e->c);
        p = PUT(p, ",\"exit_status\":");
        p = put_i(p, e->d);
        p = PUT(p, ",\"seq\":");
        return end_line(put_u(p, e->a));
    case EXEC__TEV_DEADLINE:
        p = PUT(p, "\"seq\":");
        p = put_u(p, e->a);
        p = PUT(p, ",\"timeout_ms\":");
        return end_line(put_u(p, e->b));
    case EXEC__TEV_CANCEL:
        p = PUT(p, "\"seq\":");
        p = put_u(p, e->a);
        p = PUT(p, ",\"when\":\"");
        p = put_s(p, cancel_when[e->c >= 0 && e->c < 3 ? e->c : 0]);
        return PUT(p, "\"}},\n");
    case EXEC__TEV_RECYCLE:
        p = PUT(p, "\"reason\":\"");
        p = put_s(p, recycle_why[e->c >= 0 && e->c < 3 ? e->c : 0]);
        p = PUT(p, "\",\"tasks\":");
        return end_line(put_u(p, e->a));
    default: /* EXEC__TEV_KILLED */
        p = PUT(p, "\"seq\":");
        return end_line(put_u(p, e->a));
    }
}

size_t exec__trace_format(struct exec__tfmt *fx, const struct exec__tev *e, char *out)
{
    char *p = out;
    switch (e->kind) {
    case EXEC__TEV_TASK:
        p = task(p, fx, e);
        break;
    case EXEC__TEV_CHUNK:
        p = chunk(p, fx, e);
        break;
    case EXEC__TEV_TRACK:
        p = track(p, fx->t, e);
        break;
    case EXEC__TEV_START:
    case EXEC__TEV_CRASH:
    case EXEC__TEV_DEADLINE:
    case EXEC__TEV_CANCEL:
    case EXEC__TEV_RECYCLE:
    case EXEC__TEV_KILLED:
        p = instant(p, fx, e);
        break;
    default:
        break; /* not an event (cannot happen) */
    }
    return (size_t)(p - out);
}

int exec__trace_header(struct exec__trace *t)
{
    char name[160], q[64];
    snprintf(name, sizeof name, "executor %u: %s, %d workers (pid %d)", t->id, t->backend,
             t->workers, t->ospid);
    snprintf(q, sizeof q, "executor %u (queue)", t->id);
    char *p = meta(t->fbuf, t, 0, "process", name, (long)t->id);
    p = meta(p, t, 0, "thread", q, -1);
    return exec__trace_write_all(t->fd, t->fbuf, (size_t)(p - t->fbuf));
}

void exec__trace_footer(struct exec__trace *t)
{
    uint64_t lost = atomic_load_explicit(&t->dropped, memory_order_relaxed);
    if (!lost || atomic_load_explicit(&t->werr, memory_order_relaxed))
        return;
    char *p = head(t->fbuf, t, 'M', 0, t->ns0);
    p = PUT(p, ",\"name\":\"trace_dropped\",\"args\":{\"events\":");
    p = put_u(p, lost);
    p = end_line(p);
    (void)exec__trace_write_all(t->fd, t->fbuf, (size_t)(p - t->fbuf));
}
