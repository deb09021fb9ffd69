/* SPDX-License-Identifier: MIT */
/*
 * bench_shm.c - the shared-memory benchmark of issue 4, every figure measured in the same
 * run and printed as one table, with a column per backend:
 *
 *   1. serial: summing 80 MB of int64_t (10,000,000) in this thread, data already in memory;
 *   2. shm, attach: 2 workers each sum half of a *fresh* buffer through a ref: in a worker
 *      process that is exec_shm_map() (open + mmap) plus the first-touch page faults; on
 *      threads the ref resolves to the creator's own mapping;
 *   3. shm, mapped: the same again on the same buffer (the workers' mappings are cached);
 *   4. arguments: the same halves copied into each task as 40 MB of argument bytes;
 *   5. 1 GiB: exec_shm_create() (which reserves the space: the kernel allocates and zeroes
 *      the pages there), exec_shm_attach() (no page touched), then touching every page of the
 *      attachment; beside them, a raw shm_open + ftruncate + mmap without reservation and
 *      its first-touch time (where it pays the allocation instead);
 *   6. the cost of one exec_shm_map() call that hits the cache.
 *
 * Targets of issue 4 (PASS/MISS, never a failure): on 2 processes, row 2 within 2x of row 1,
 * row 3 faster than row 1; creating and attaching 1 GiB under 1 ms plus page-touch time.
 * Absolute figures drift by 20-40% between runs on a shared machine: compare within a run.
 *
 * Usage: bench_shm [--quick] [--threads-only]
 *   --quick          one run per figure and 128 MiB instead of 1 GiB (a smoke run)
 *   --threads-only   skip the process backend
 * Exit status: 0 when everything ran and every sum was right; 1 otherwise.
 */
#include "bench_common.h"

#include <executor.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define N 10000000u
#define WORKERS 2
#define HALF (N / 2)
#define MAX_RUNS 9

static int failures;

#define FAIL(...)                                                                         \
    do {                                                                                  \
        fprintf(stderr, "bench_shm: " __VA_ARGS__);                                       \
        fprintf(stderr, "\n");                                                            \
        failures++;                                                                       \
    } while (0)

static int64_t __attribute__((noinline)) sum_i64(const int64_t *v, size_t n)
{
    int64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += v[i];
    return t;
}

struct half {
    exec_shm_ref_t ref;
    uint64_t lo, hi;
};

static int put(void *out, size_t cap, size_t *out_size, int64_t t)
{
    if (cap < sizeof t)
        return 2;
    memcpy(out, &t, sizeof t);
    *out_size = sizeof t;
    return 0;
}

static int sum_shm_task(const void *arg, size_t n, void *out, size_t cap, size_t *out_size)
{
    struct half h;
    void *p;
    size_t size;
    if (n != sizeof h)
        return 1;
    memcpy(&h, arg, sizeof h);
    if (exec_shm_map(&h.ref, 0, &p, &size) != 0 || h.hi * sizeof(int64_t) > size)
        return 3;
    return put(out, cap, out_size, sum_i64((const int64_t *)p + h.lo, h.hi - h.lo));
}

static int sum_arg_task(const void *arg, size_t n, void *out, size_t cap, size_t *out_size)
{
    return put(out, cap, out_size, sum_i64(arg, n / sizeof(int64_t)));
}

static double ms_since(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e6;
}

/* Submit one task per half, wait, check the total; returns the milliseconds, or -1. */
static double two_halves(exec_t *ex, const exec_shm_t *buf, const int64_t *src)
{
    const int64_t want = (int64_t)N * (N - 1) / 2;
    exec_future_t *f[2] = {NULL, NULL};
    uint64_t t0 = bench_now_ns();
    for (int k = 0; k < 2; k++) {
        int r;
        if (buf != NULL) {
            struct half h = {.lo = (uint64_t)k * HALF, .hi = (uint64_t)(k + 1) * HALF};
            exec_shm_ref(buf, &h.ref);
            r = exec_submit(ex, sum_shm_task, &h, sizeof h, &f[k]);
        } else {
            r = exec_submit(ex, sum_arg_task, src + (size_t)k * HALF, HALF * sizeof *src, &f[k]);
        }
        if (r != 0) {
            FAIL("exec_submit: %s", exec_strerror(r));
            return -1;
        }
    }
    int64_t total = 0;
    bool ok = true;
    for (int k = 0; k < 2; k++) {
        const void *res;
        size_t size;
        int64_t t;
        exec_future_wait(f[k], EXEC_WAIT_FOREVER);
        int r = exec_future_result(f[k], &res, &size);
        if (r == 0 && size == sizeof t) {
            memcpy(&t, res, sizeof t);
            total += t;
        } else {
            FAIL("task: %s", exec_strerror(r));
            ok = false;
        }
        exec_future_release(f[k]);
    }
    double ms = ms_since(t0);
    if (ok && total != want)
        FAIL("wrong total %lld, want %lld", (long long)total, (long long)want);
    return ok && total == want ? ms : -1;
}

struct column {
    const char *name;
    exec_backend_t backend;
    char why[48]; /* why the column is empty */
    double attach_ms, mapped_ms, args_ms;
};

static void run_column(struct column *c, const int64_t *src, int runs)
{
    exec_config_t cfg = {0};
    cfg.backend = c->backend;
    cfg.workers = WORKERS;
    exec_t *ex = NULL, *exa = NULL;
    int r = exec_create(&ex, &cfg);
    if (r == 0) {
        cfg.max_arg_size = HALF * sizeof(int64_t);
        r = exec_create(&exa, &cfg);
    }
    if (r != 0) {
        snprintf(c->why, sizeof c->why, "n/a (%s)", exec_errname(r));
        exec_destroy(ex);
        return;
    }
    double attach[MAX_RUNS], mapped[MAX_RUNS], args[MAX_RUNS];
    /* Every repetition gets a fresh buffer, and all are closed only after the last one:
     * closing a buffer makes each worker unmap it when it next runs out of work (an 80 MB
     * populated mapping takes milliseconds to tear down), and that cost belongs to the
     * close, not to the sums being timed. */
    exec_shm_t *bufs[MAX_RUNS] = {NULL};
    for (int i = 0; i < runs; i++) {
        exec_shm_t *buf;
        r = exec_shm_create(&buf, NULL, (size_t)N * sizeof(int64_t), 0);
        if (r != 0) {
            FAIL("exec_shm_create: %s", exec_strerror(r));
            break;
        }
        bufs[i] = buf;
        memcpy(exec_shm_ptr(buf), src, (size_t)N * sizeof(int64_t));
        attach[i] = two_halves(ex, buf, NULL);
        mapped[i] = two_halves(ex, buf, NULL);
        args[i] = two_halves(exa, NULL, src);
    }
    for (int i = 0; i < runs; i++)
        exec_shm_close(bufs[i]);
    c->attach_ms = bench_median(attach, (size_t)runs);
    c->mapped_ms = bench_median(mapped, (size_t)runs);
    c->args_ms = bench_median(args, (size_t)runs);
    exec_destroy(exa);
    exec_destroy(ex);
}

/* Touch every page of [p, p+size): read one byte of each (or write one). */
static double touch_ms(void *p, size_t size, bool write)
{
    long page = sysconf(_SC_PAGESIZE);
    volatile unsigned char *b = p;
    unsigned sink = 0;
    uint64_t t0 = bench_now_ns();
    for (size_t off = 0; off < size; off += (size_t)page) {
        if (write)
            b[off] = 1;
        else
            sink += b[off];
    }
    double ms = ms_since(t0);
    (void)sink;
    return ms;
}

struct big {
    size_t size;
    double create_ms, attach_ms, touch_ms, anon_ms, raw_ms, raw_touch_ms, map_ns;
};

static void run_big(struct big *g)
{
    exec_shm_t *s = NULL, *a = NULL, *an = NULL;
    uint64_t t0 = bench_now_ns();
    int r = exec_shm_create(&s, NULL, g->size, 0);
    g->create_ms = ms_since(t0);
    if (r == 0) {
        t0 = bench_now_ns();
        r = exec_shm_attach(&a, exec_shm_name(s), EXEC_SHM_RDONLY);
        g->attach_ms = ms_since(t0);
    }
    if (r != 0) {
        FAIL("1 GiB create/attach: %s", exec_strerror(r));
        exec_shm_close(s);
        return;
    }
    g->touch_ms = touch_ms(exec_shm_ptr(a), g->size, false);

    /* exec_shm_map() on a cached ref: the per-task cost once a worker has the buffer. */
    exec_shm_ref_t ref;
    exec_shm_ref(s, &ref);
    void *p;
    size_t size;
    enum { CALLS = 1000000 };
    t0 = bench_now_ns();
    for (int i = 0; i < CALLS; i++)
        if (exec_shm_map(&ref, 0, &p, &size) != 0)
            FAIL("exec_shm_map");
    g->map_ns = (double)(bench_now_ns() - t0) / CALLS;
    exec_shm_close(a);
    exec_shm_close(s);

    t0 = bench_now_ns();
    r = exec_shm_create(&an, NULL, g->size, EXEC_SHM_ANONYMOUS);
    g->anon_ms = ms_since(t0);
    if (r != 0)
        FAIL("anonymous create: %s", exec_strerror(r));
    exec_shm_close(an);

    /* Raw, without reservation: fast to make, pays at first touch (and can SIGBUS there). */
    char name[64];
    snprintf(name, sizeof name, "exec-bench-%d", (int)getpid());
    t0 = bench_now_ns();
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    void *m = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)g->size) == 0)
        m = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    g->raw_ms = ms_since(t0);
    if (m == MAP_FAILED) {
        FAIL("raw shm_open/ftruncate/mmap failed");
    } else {
        g->raw_touch_ms = touch_ms(m, g->size, true);
        munmap(m, g->size);
    }
    if (fd >= 0) {
        close(fd);
        shm_unlink(name);
    }
}

static const char *ms_cell(char *buf, size_t cap, double ms, double base)
{
    if (ms < 0)
        return "error";
    if (base > 0)
        return bench_fmt(buf, cap, "%.1f ms (%.2fx)", ms, ms / base);
    return bench_fmt(buf, cap, "%.1f ms", ms);
}

int main(int argc, char **argv)
{
    bool quick = false, threads_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--threads-only") == 0)
            threads_only = true;
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads-only]\n", argv[0]);
            return 2;
        }
    }
    int runs = quick ? 1 : 5;
    int64_t *src = malloc((size_t)N * sizeof *src);
    if (src == NULL) {
        fprintf(stderr, "bench_shm: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < N; i++)
        src[i] = (int64_t)i;

    /* 1. serial, warm */
    double serial[MAX_RUNS];
    sum_i64(src, N);
    for (int i = 0; i < runs; i++) {
        uint64_t t0 = bench_now_ns();
        if (sum_i64(src, N) != (int64_t)N * (N - 1) / 2)
            FAIL("serial sum wrong");
        serial[i] = ms_since(t0);
    }
    double serial_ms = bench_median(serial, (size_t)runs);

    struct column cols[2] = {{"threads", EXEC_BACKEND_THREADS, "", 0, 0, 0},
                             {"processes", EXEC_BACKEND_PROCESSES, "", 0, 0, 0}};
    if (threads_only)
        snprintf(cols[1].why, sizeof cols[1].why, "skipped");
    for (int c = 0; c < 2; c++)
        if (cols[c].why[0] == '\0')
            run_column(&cols[c], src, runs);

    /* Twice, keeping the better figure of each: in a virtual machine the first touch of
     * guest memory the host has not backed yet costs several times more, and says nothing
     * about this library. */
    struct big g = {.size = quick ? (size_t)128 << 20 : (size_t)1 << 30};
    run_big(&g);
    for (int i = 1; i < (quick ? 1 : 2); i++) {
        struct big h = {.size = g.size};
        run_big(&h);
#define KEEP_MIN(f) g.f = h.f < g.f ? h.f : g.f
        KEEP_MIN(create_ms);
        KEEP_MIN(attach_ms);
        KEEP_MIN(touch_ms);
        KEEP_MIN(anon_ms);
        KEEP_MIN(raw_ms);
        KEEP_MIN(raw_touch_ms);
        KEEP_MIN(map_ns);
#undef KEEP_MIN
    }

    static const int w[] = {40, 22, 22, 26};
    char a[64], b[64], t[64];
    printf("shared-memory buffers: summing %u int64_t (%u MB), %d workers, median of %d\n", N,
           (unsigned)((size_t)N * 8 / 1000000), WORKERS, runs);
    bench_row(w, 4, (const char *[]){"", "threads", "processes", "target (issue 4)"});
    bench_row(w, 4, (const char *[]){"serial sum in this thread",
                                     ms_cell(a, sizeof a, serial_ms, 0), "", ""});
    const char *labels[3] = {"sum via shm, fresh buffer (attach)", "sum via shm, mapped already",
                             "sum via task arguments (2 x 40 MB)"};
    for (int row = 0; row < 3; row++) {
        const char *cell[2];
        char bufs[2][64];
        for (int c = 0; c < 2; c++) {
            const struct column *col = &cols[c];
            double v = row == 0 ? col->attach_ms : row == 1 ? col->mapped_ms : col->args_ms;
            cell[c] = col->why[0] ? col->why : ms_cell(bufs[c], sizeof bufs[c], v, serial_ms);
        }
        const char *target = "";
        if (row < 2 && !cols[1].why[0]) {
            double v = row == 0 ? cols[1].attach_ms : cols[1].mapped_ms;
            bool pass = row == 0 ? v <= 2 * serial_ms : v < serial_ms;
            target = bench_fmt(t, sizeof t, "%s %s", row == 0 ? "<= 2x serial" : "< serial",
                               pass ? "PASS" : "MISS");
        } else if (row < 2) {
            target = row == 0 ? "<= 2x serial (processes)" : "< serial (processes)";
        }
        bench_row(w, 4, (const char *[]){labels[row], cell[0], cell[1], target});
    }

    double gib = (double)g.size / (double)(1u << 30);
    long pages = (long)(g.size / (size_t)sysconf(_SC_PAGESIZE));
    printf("\n%.3g GiB buffer (%ld pages), in this process, best of %d\n", gib, pages,
           quick ? 1 : 2);
    bench_row(w, 3, (const char *[]){"exec_shm_create, named (reserves)",
                                     bench_fmt(a, sizeof a, "%.1f ms", g.create_ms),
                                     "the pages are allocated here"});
    bench_row(w, 3, (const char *[]){"exec_shm_create, anonymous (reserves)",
                                     bench_fmt(a, sizeof a, "%.1f ms", g.anon_ms), ""});
    bench_row(w, 4, (const char *[]){"exec_shm_attach, untouched",
                                     bench_fmt(a, sizeof a, "%.3f ms", g.attach_ms), "",
                                     bench_fmt(t, sizeof t, "< 1 ms %s",
                                               g.attach_ms < 1 ? "PASS" : "MISS")});
    bench_row(w, 3, (const char *[]){"touch every page of the attachment",
                                     bench_fmt(a, sizeof a, "%.1f ms", g.touch_ms),
                                     bench_fmt(b, sizeof b, "%.3f us/page",
                                               g.touch_ms * 1e3 / (double)pages)});
    bench_row(w, 3, (const char *[]){"raw shm_open+ftruncate+mmap (no reserve)",
                                     bench_fmt(a, sizeof a, "%.3f ms", g.raw_ms), ""});
    bench_row(w, 3, (const char *[]){"  then first write to every page",
                                     bench_fmt(a, sizeof a, "%.1f ms", g.raw_touch_ms),
                                     bench_fmt(b, sizeof b, "%.3f us/page",
                                               g.raw_touch_ms * 1e3 / (double)pages)});
    bench_row(w, 3, (const char *[]){"create+attach+touch: reserved vs raw",
                                     bench_fmt(a, sizeof a, "%.1f ms",
                                               g.create_ms + g.attach_ms + g.touch_ms),
                                     bench_fmt(b, sizeof b, "%.1f ms",
                                               g.raw_ms + g.raw_touch_ms)});
    bench_row(w, 3, (const char *[]){"exec_shm_map, cached ref",
                                     bench_fmt(a, sizeof a, "%.0f ns/call", g.map_ns), ""});
    free(src);
    return failures ? 1 : 0;
}
