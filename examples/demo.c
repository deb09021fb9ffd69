/* SPDX-License-Identifier: MIT */
/*
 * demo.c - threads or processes? The classic comparison, in C, with libexecutor.
 *
 * `make demo` builds and runs this program. It runs the same three workloads serially, on a
 * thread pool and on a process pool, and prints how long each took:
 *
 *   1. CPU-bound work (counting primes). C has no global interpreter lock, so threads
 *      scale with the cores, and so do processes.
 *   2. I/O-bound work: requests to a slow local service that answers after 50 ms. The
 *      workers spend their time blocked in read(), so more workers than cores pay off;
 *      threads are the cheap way to have many.
 *   3. A library that is not thread-safe and guards every call with one global mutex (C's
 *      own "GIL"). Threads queue up on the lock and gain nothing; each worker process has its
 *      own copy of the library and its lock, so processes run in parallel.
 *
 * How the library is used, in four calls (all in run_tasks() below):
 *
 *   exec_create(&ex, &cfg)                  a pool; cfg.backend picks threads or processes
 *   exec_submit(ex, fn, &arg, sizeof arg, &f)  run fn on a copy of arg's bytes; f: a future
 *   exec_future_wait(f, ...) + exec_future_result(f, &bytes, &size)   collect the result
 *   exec_destroy(ex)                        wait for the workers and free everything
 *
 * A task is a plain function: it gets its argument as bytes and writes its result as bytes.
 * It never shares pointers with the caller, so the same task runs unchanged in a worker
 * process, where the caller's pointers would mean nothing.
 *
 * The numbered examples (01_hello.c to 12_progress.c) take these cases one at a time:
 * 02_cpu_bound.c, 04_io_fanout.c and 03_c_gil.c are the three tables below, each on its own.
 * The whole run takes well under 15 seconds on 2 cores.
 */
#include <executor.h>

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Trial division: deliberately slow, so that there is CPU work to share out. */
static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Running a batch of tasks on a pool                                                        */
/* ---------------------------------------------------------------------------------------- */

/*
 * Run @n tasks fn(args[i]) on a fresh pool of @workers workers of @backend, add up their
 * int64 results into *@sum and return the seconds it took, pool start-up included (that is
 * part of the price of a pool). Returns a negative exec_err_t code if something failed
 * (EXEC_ENOTSUP: this backend is not built).
 *
 * @args is an array of @n arguments of @arg_size bytes each. exec_submit() copies each
 * argument before it returns, so the array could be reused at once.
 */
static double run_tasks(exec_backend_t backend, int workers, exec_task_fn *fn,
                        const void *args, size_t arg_size, int n, int64_t *sum, int *err)
{
    exec_config_t cfg = {0}; /* all zero = all defaults */
    cfg.backend = backend;
    cfg.workers = workers; /* 0 would mean "one per CPU this process may use" */

    double t0 = now_s();
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        *err = r;
        return -1;
    }

    /* Submit everything first: the pool starts working on the first task at once. */
    exec_future_t *futures[64];
    int submitted = 0;
    for (; submitted < n; submitted++) {
        const char *arg = (const char *)args + (size_t)submitted * arg_size;
        r = exec_submit(ex, fn, arg, arg_size, &futures[submitted]);
        if (r != EXEC_OK)
            break;
    }

    /* Then collect the results, in submission order. */
    *sum = 0;
    for (int i = 0; i < submitted; i++) {
        exec_future_wait(futures[i], EXEC_WAIT_FOREVER);
        const void *result;
        size_t size;
        int status = exec_future_result(futures[i], &result, &size);
        if (status == EXEC_OK && size == sizeof(int64_t)) {
            int64_t v;
            memcpy(&v, result, sizeof v); /* result bytes belong to the future */
            *sum += v;
        } else if (r == EXEC_OK) {
            r = status != EXEC_OK ? status : EXEC_EINVAL;
        }
        exec_future_release(futures[i]); /* frees the future and its result */
    }
    exec_destroy(ex); /* waits for the workers; no thread or process is left */
    *err = r;
    return r == EXEC_OK ? now_s() - t0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Printing                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* "1.23 s" or why there is no figure. */
static const char *fmt_time(char *buf, size_t cap, double s, int err)
{
    if (err == EXEC_ENOTSUP)
        snprintf(buf, cap, "n/a (process backend not built)");
    else if (err != EXEC_OK)
        snprintf(buf, cap, "failed: %s", exec_strerror(err));
    else
        snprintf(buf, cap, "%.2f s", s);
    return buf;
}

/* One line of a table: label, time, and the speedup over @baseline if there is one. */
static void print_row(const char *label, double s, int err, double baseline)
{
    char t[64];
    if (err == EXEC_OK && baseline > 0)
        printf("   %-26s %-10s %5.2fx\n", label, fmt_time(t, sizeof t, s, err), baseline / s);
    else
        printf("   %-26s %s\n", label, fmt_time(t, sizeof t, s, err));
    fflush(stdout);
}

/* ---------------------------------------------------------------------------------------- */
/* 1. CPU-bound: counting primes                                                             */
/* ---------------------------------------------------------------------------------------- */

#define PRIMES_BELOW 7000000u
#define PRIME_TASKS 16
#define PRIME_BLOCK 1000u

/* The argument of one prime-counting task: which share of the range to count. */
struct primes_arg {
    uint64_t below;      /* count primes in [0, below) */
    uint32_t part, parts; /* this task counts blocks part, part + parts, part + 2*parts... */
};

/*
 * The task. Bigger numbers cost more to test, so instead of giving each task one contiguous
 * slice (the last task would get the hardest numbers) the range is dealt out in blocks of
 * 1000 numbers, round-robin, like cards.
 */
static int count_primes_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                             size_t *out_size)
{
    (void)arg_size;
    (void)out_cap;
    struct primes_arg a;
    memcpy(&a, arg, sizeof a); /* arg is our private copy of the caller's bytes */
    int64_t count = 0;
    for (uint64_t b = (uint64_t)a.part * PRIME_BLOCK; b < a.below;
         b += (uint64_t)a.parts * PRIME_BLOCK)
        for (uint64_t n = b; n < b + PRIME_BLOCK && n < a.below; n++)
            count += is_prime(n);
    memcpy(out, &count, sizeof count);
    *out_size = sizeof count; /* the future keeps these 8 bytes for the caller */
    return 0;                 /* 0 = success */
}

static void demo_cpu_bound(int workers)
{
    printf("1. CPU-bound: count the primes below %u by trial division, in %d tasks\n",
           PRIMES_BELOW, PRIME_TASKS);

    /* The serial loop: one task that covers the whole range, called directly. */
    struct primes_arg whole = {PRIMES_BELOW, 0, 1};
    int64_t serial_count;
    size_t size;
    double t0 = now_s();
    count_primes_task(&whole, sizeof whole, &serial_count, sizeof serial_count, &size);
    double serial = now_s() - t0;

    struct primes_arg args[PRIME_TASKS];
    for (int i = 0; i < PRIME_TASKS; i++)
        args[i] = (struct primes_arg){PRIMES_BELOW, (uint32_t)i, PRIME_TASKS};

    char label[64];
    printf("   %-26s %-10s %s\n", "", "time", "speedup");
    print_row("serial loop", serial, EXEC_OK, serial);
    const exec_backend_t backends[] = {EXEC_BACKEND_THREADS, EXEC_BACKEND_PROCESSES};
    for (int k = 0; k < 2; k++) {
        int64_t count = 0;
        int err;
        double s = run_tasks(backends[k], workers, count_primes_task, args, sizeof args[0],
                             PRIME_TASKS, &count, &err);
        if (err == EXEC_OK && count != serial_count)
            err = EXEC_ETASK; /* cannot happen; a demo that lied would be worse */
        snprintf(label, sizeof label, "%s (%d workers)", k ? "processes" : "threads", workers);
        print_row(label, s, err, serial);
    }
    printf("   (%lld primes. C has no GIL: threads use every core, like processes.)\n\n",
           (long long)serial_count);
}

/* ---------------------------------------------------------------------------------------- */
/* 2. I/O-bound: requests to a slow local service                                            */
/* ---------------------------------------------------------------------------------------- */

/*
 * The "slow service" is a thread of this program listening on a Unix socket. It answers
 * each request 50 ms after it arrived, like a database or a remote API would after its own
 * latency. A task connects, sends a number, and blocks in read() until the answer (the
 * number doubled) comes back: real blocking I/O, nothing is sleeping.
 *
 * The socket lives in Linux's abstract namespace (its name starts with a NUL byte): no file
 * to clean up, and worker processes can connect to it by name, because the name travels in
 * the task's argument bytes (a file descriptor number would mean nothing in another process).
 */
#define IO_TASKS 50
#define IO_DELAY_MS 50
#define MAX_PENDING 64

struct service {
    int listen_fd;
    char name[40]; /* abstract socket name, without the leading NUL */
    pthread_t thread;
    _Atomic bool stop;
};

struct request_arg {
    char service[40];
    int64_t value;
};

static socklen_t service_addr(const char *name, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa->sun_path + 1, name, len); /* sun_path[0] = '\0': abstract namespace */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

static void *service_main(void *p)
{
    struct service *svc = p;
    struct {
        int fd;
        double due;
    } pending[MAX_PENDING];
    int npending = 0;

    while (!atomic_load(&svc->stop)) {
        /* Sleep in poll() until a new connection arrives or the next answer is due. */
        double now = now_s();
        int timeout_ms = 20;
        for (int i = 0; i < npending; i++) {
            int ms = (int)((pending[i].due - now) * 1000.0) + 1;
            if (ms < timeout_ms)
                timeout_ms = ms < 0 ? 0 : ms;
        }
        struct pollfd pfd = {.fd = svc->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) > 0 && npending < MAX_PENDING) {
            int fd = accept(svc->listen_fd, NULL, NULL);
            if (fd >= 0) {
                pending[npending].fd = fd;
                pending[npending].due = now_s() + IO_DELAY_MS / 1000.0;
                npending++;
            }
        }
        /* Answer every request whose 50 ms are up. */
        now = now_s();
        for (int i = 0; i < npending;) {
            if (pending[i].due > now) {
                i++;
                continue;
            }
            int64_t v = 0;
            if (read(pending[i].fd, &v, sizeof v) == (ssize_t)sizeof v) {
                v *= 2;
                if (write(pending[i].fd, &v, sizeof v) != (ssize_t)sizeof v)
                    perror("demo: service write");
            }
            close(pending[i].fd);
            pending[i] = pending[--npending];
        }
    }
    for (int i = 0; i < npending; i++)
        close(pending[i].fd);
    return NULL;
}

static int service_start(struct service *svc)
{
    snprintf(svc->name, sizeof svc->name, "libexecutor-demo-%ld", (long)getpid());
    atomic_init(&svc->stop, false);
    svc->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (svc->listen_fd < 0)
        return -1;
    struct sockaddr_un sa;
    socklen_t len = service_addr(svc->name, &sa);
    if (bind(svc->listen_fd, (struct sockaddr *)&sa, len) != 0 ||
        listen(svc->listen_fd, MAX_PENDING) != 0 ||
        pthread_create(&svc->thread, NULL, service_main, svc) != 0) {
        close(svc->listen_fd);
        return -1;
    }
    return 0;
}

static void service_stop(struct service *svc)
{
    atomic_store(&svc->stop, true);
    pthread_join(svc->thread, NULL);
    close(svc->listen_fd);
}

/* The task: one request to the service; blocks about 50 ms in read(). */
static int request_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                        size_t *out_size)
{
    (void)arg_size;
    (void)out_cap;
    struct request_arg a;
    memcpy(&a, arg, sizeof a);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno; /* a non-zero return fails the future with EXEC_ETASK */
    struct sockaddr_un sa;
    socklen_t len = service_addr(a.service, &sa);
    int64_t reply = 0;
    int status = 0;
    if (connect(fd, (struct sockaddr *)&sa, len) != 0 ||
        write(fd, &a.value, sizeof a.value) != (ssize_t)sizeof a.value ||
        read(fd, &reply, sizeof reply) != (ssize_t)sizeof reply) /* blocks here */
        status = errno ? errno : EIO;
    close(fd);
    memcpy(out, &reply, sizeof reply);
    *out_size = sizeof reply;
    return status;
}

static void demo_io_bound(void)
{
    printf("2. I/O-bound: %d requests to a slow local service (each answer comes %d ms "
           "later)\n",
           IO_TASKS, IO_DELAY_MS);
    struct service svc;
    if (service_start(&svc) != 0) {
        perror("demo: cannot start the local service");
        return;
    }
    struct request_arg args[IO_TASKS];
    int64_t expect = 0;
    for (int i = 0; i < IO_TASKS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        snprintf(args[i].service, sizeof args[i].service, "%s", svc.name);
        args[i].value = i;
        expect += 2 * i;
    }

    printf("   %-26s %-10s %s\n", "", "time", "speedup over 2 workers");
    printf("   %-26s %.2f s     (not run: %d x %d ms)\n", "serial loop",
           IO_TASKS * IO_DELAY_MS / 1000.0, IO_TASKS, IO_DELAY_MS);
    const exec_backend_t backends[] = {EXEC_BACKEND_THREADS, EXEC_BACKEND_PROCESSES};
    const int sizes[] = {2, 20};
    for (int k = 0; k < 2; k++) {
        double two = 0;
        for (int j = 0; j < 2; j++) {
            int64_t sum = 0;
            int err;
            double s = run_tasks(backends[k], sizes[j], request_task, args, sizeof args[0],
                                 IO_TASKS, &sum, &err);
            if (err == EXEC_OK && sum != expect)
                err = EXEC_ETASK;
            if (j == 0)
                two = err == EXEC_OK ? s : 0;
            char label[64];
            snprintf(label, sizeof label, "%s (%d workers)", k ? "processes" : "threads",
                     sizes[j]);
            print_row(label, s, err, j ? two : 0);
        }
    }
    service_stop(&svc);
    printf("   (A worker blocked in read() uses no CPU: 20 workers overlap the 50 waits in 3\n"
           "   rounds instead of 25, whatever the number of cores. Threads are the cheap way to\n"
           "   have many waiting workers.)\n\n");
}

/* ---------------------------------------------------------------------------------------- */
/* 3. A non-thread-safe library: C's own "GIL"                                               */
/* ---------------------------------------------------------------------------------------- */

/*
 * Pretend this is a third-party library with global state and no thread safety. Its
 * authors made it safe to call from several threads the simplest way: one global mutex
 * around every call. Each call then runs alone, whatever the number of threads: that is a
 * global interpreter lock in all but name.
 *
 * In a worker process the library (this code and its mutex) is the process's own copy, so
 * two processes run two calls at the same time.
 */
static pthread_mutex_t legacy_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t legacy_calls; /* global state the lock protects */

static int64_t legacy_count_primes(uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&legacy_lock);
    legacy_calls++;
    int64_t count = 0;
    for (uint64_t n = lo; n < hi; n++)
        count += is_prime(n);
    pthread_mutex_unlock(&legacy_lock);
    return count;
}

#define LEGACY_CALLS 16
#define LEGACY_SPAN 250000u /* numbers per call */

static int legacy_task(const void *arg, size_t arg_size, void *out, size_t out_cap,
                       size_t *out_size)
{
    (void)arg_size;
    (void)out_cap;
    uint64_t lo;
    memcpy(&lo, arg, sizeof lo);
    int64_t c = legacy_count_primes(lo, lo + LEGACY_SPAN);
    memcpy(out, &c, sizeof c);
    *out_size = sizeof c;
    return 0;
}

static void demo_global_lock(int workers)
{
    printf("3. A non-thread-safe library (one global mutex around every call): %d calls\n",
           LEGACY_CALLS);
    /* Every call covers the same amount of work: numbers from 4,000,000 up. */
    uint64_t args[LEGACY_CALLS];
    for (int i = 0; i < LEGACY_CALLS; i++)
        args[i] = 4000000u + (uint64_t)i * LEGACY_SPAN;

    double t0 = now_s();
    int64_t serial_count = 0;
    for (int i = 0; i < LEGACY_CALLS; i++)
        serial_count += legacy_count_primes(args[i], args[i] + LEGACY_SPAN);
    double serial = now_s() - t0;

    printf("   %-26s %-10s %s\n", "", "time", "speedup");
    print_row("serial loop", serial, EXEC_OK, serial);
    const exec_backend_t backends[] = {EXEC_BACKEND_THREADS, EXEC_BACKEND_PROCESSES};
    for (int k = 0; k < 2; k++) {
        int64_t count = 0;
        int err;
        double s = run_tasks(backends[k], workers, legacy_task, args, sizeof args[0],
                             LEGACY_CALLS, &count, &err);
        if (err == EXEC_OK && count != serial_count)
            err = EXEC_ETASK;
        char label[64];
        snprintf(label, sizeof label, "%s (%d workers)", k ? "processes" : "threads", workers);
        print_row(label, s, err, serial);
    }
    printf("   (Threads wait for the lock in turn: no gain. Each process has its own copy of\n"
           "   the library and its lock, so processes run the calls in parallel.)\n");
}

/* ---------------------------------------------------------------------------------------- */

int main(void)
{
    /* The default worker count: the CPUs this process may use (affinity, cgroup quota),
     * or the EXEC_WORKERS environment variable. */
    exec_cpu_budget_t budget;
    exec_cpu_budget(NULL, &budget);
    int workers = budget.workers;
    printf("libexecutor %s demo: threads vs processes. %d CPU%s usable here, so pools of %d "
           "workers\n(I/O case: 2 and 20). Times include starting and stopping each pool.\n\n",
           EXEC_VERSION_STRING, workers, workers == 1 ? "" : "s", workers);
    fflush(stdout);

    demo_cpu_bound(workers);
    demo_io_bound();
    demo_global_lock(workers);
    return 0;
}
