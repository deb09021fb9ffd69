/* SPDX-License-Identifier: MIT */
/*
 * 04_io_fanout.c - I/O-bound fan-out: 50 tasks that each wait 50 ms for an answer.
 *
 * A "slow service" runs in this program: a thread listening on a local socket that answers
 * each request 50 ms after it arrived (think of a database or a remote API and its
 * latency). Each task connects, sends a number and blocks in read() until the answer (the
 * number doubled) comes back: real blocking I/O, the task itself does not sleep.
 *
 * The 50 requests go through pools of 2 and of 20 workers, threads then processes:
 *
 *   50 requests, each answered 50 ms after it arrives (serial: 2.5 s)
 *                          seconds   speedup over 2 workers
 *   threads, 2 workers        1.26
 *   threads, 20 workers       0.15      8.2x
 *   processes, 2 workers      1.26
 *   processes, 20 workers     0.16      8.0x
 *
 * (times vary.) A worker blocked in read() uses no CPU, so the worker count, not the core
 * count, sets the pace: 2 workers need 25 rounds of 50 ms, 20 workers need 3. When tasks
 * wait, have many workers; threads are the cheap way to have many (a thread costs a stack,
 * a process costs a whole address space and a fork). Processes are for isolation, not for
 * waiting.
 *
 * The socket lives in Linux's abstract namespace (its name starts with a NUL byte): there is
 * no file to clean up, and a worker process can connect to it because the name travels in
 * the task's argument bytes. A file descriptor number would mean nothing in another process.
 */
#include <executor.h>

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQUESTS 50
#define DELAY_MS 50

/* ---- the slow service ----------------------------------------------------------------- */

static socklen_t service_addr(const char *name, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa->sun_path + 1, name, len); /* sun_path[0] = '\0': the abstract namespace */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

/* One connection: read the request, wait DELAY_MS, answer, hang up. */
static void *answer_later(void *p)
{
    int fd = (int)(intptr_t)p;
    int64_t v;
    if (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
        struct timespec delay = {0, DELAY_MS * 1000000L};
        nanosleep(&delay, NULL);
        v *= 2;
        if (write(fd, &v, sizeof v) != (ssize_t)sizeof v)
            perror("service: write");
    }
    close(fd);
    return NULL;
}

/* The service: one thread per connection, so that every request waits the same 50 ms. */
static void *serve(void *p)
{
    int listen_fd = (int)(intptr_t)p;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL; /* shutdown() of the listening socket: the service stops */
        }
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, answer_later, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&attr);
    }
}

/* ---- the task ------------------------------------------------------------------------- */

/* Its argument: where the service is (a name, not an fd) and what to ask. */
struct request {
    char service[32];
    int64_t value;
};

static int ask(const void *arg, size_t arg_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)arg_size, (void)out_cap;
    struct request rq;
    memcpy(&rq, arg, sizeof rq);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno; /* a non-zero return fails the future with EXEC_ETASK */
    struct sockaddr_un sa;
    socklen_t len = service_addr(rq.service, &sa);
    int64_t answer = 0;
    int status = 0;
    if (connect(fd, (struct sockaddr *)&sa, len) != 0 ||
        write(fd, &rq.value, sizeof rq.value) != (ssize_t)sizeof rq.value ||
        read(fd, &answer, sizeof answer) != (ssize_t)sizeof answer) /* blocks ~50 ms */
        status = errno ? errno : EIO;
    close(fd);
    memcpy(out, &answer, sizeof answer);
    *out_size = sizeof answer;
    return status;
}

/* ---- the program ---------------------------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Sends every request through a fresh pool; returns the seconds taken, or -1 if an answer
 * was missing or wrong. */
static double fan_out(exec_backend_t backend, int workers, const struct request *rq)
{
    exec_config_t cfg = {0};
    cfg.backend = backend;
    cfg.workers = workers; /* more workers than cores: they mostly wait */
    double t0 = now();
    exec_t *ex;
    int r = exec_create(&ex, &cfg);
    if (r != EXEC_OK) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return -1;
    }
    exec_future_t *fs[REQUESTS];
    int submitted = 0, right = 0;
    while (submitted < REQUESTS &&
           exec_submit(ex, ask, &rq[submitted], sizeof rq[0], &fs[submitted]) == EXEC_OK)
        submitted++;
    for (int i = 0; i < submitted; i++) {
        const void *res;
        exec_future_wait(fs[i], EXEC_WAIT_FOREVER);
        r = exec_future_result(fs[i], &res, NULL);
        if (r == EXEC_OK && *(const int64_t *)res == 2 * rq[i].value)
            right++;
        else if (r != EXEC_OK)
            fprintf(stderr, "request %d: %s\n", i, exec_strerror(r));
        exec_future_release(fs[i]);
    }
    exec_destroy(ex);
    return right == REQUESTS ? now() - t0 : -1;
}

int main(void)
{
    char name[32];
    snprintf(name, sizeof name, "libexecutor-04-%ld", (long)getpid());
    struct sockaddr_un sa;
    socklen_t len = service_addr(name, &sa);
    int listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pthread_t service;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, len) != 0 ||
        listen(listen_fd, 64) != 0 ||
        pthread_create(&service, NULL, serve, (void *)(intptr_t)listen_fd) != 0) {
        perror("cannot start the service");
        return 1;
    }

    struct request rq[REQUESTS];
    for (int i = 0; i < REQUESTS; i++) {
        memset(&rq[i], 0, sizeof rq[i]);
        snprintf(rq[i].service, sizeof rq[i].service, "%s", name);
        rq[i].value = i;
    }

    printf("%d requests, each answered %d ms after it arrives (serial: %.1f s)\n", REQUESTS,
           DELAY_MS, REQUESTS * DELAY_MS / 1000.0);
    printf("                       seconds   speedup over 2 workers\n");
    static const struct {
        exec_backend_t backend;
        const char *name;
    } pools[] = {{EXEC_BACKEND_THREADS, "threads"}, {EXEC_BACKEND_PROCESSES, "processes"}};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        double two = fan_out(pools[k].backend, 2, rq);
        double twenty = fan_out(pools[k].backend, 20, rq);
        char label[32];
        snprintf(label, sizeof label, "%s, 2 workers", pools[k].name);
        if (two < 0)
            printf("%-22s failed\n", label);
        else
            printf("%-22s %7.2f\n", label, two);
        snprintf(label, sizeof label, "%s, 20 workers", pools[k].name);
        if (twenty < 0)
            printf("%-22s failed\n", label);
        else if (two < 0)
            printf("%-22s %7.2f\n", label, twenty);
        else
            printf("%-22s %7.2f   %6.1fx\n", label, twenty, two / twenty);
        bad |= two < 0 || twenty < 0;
    }

    shutdown(listen_fd, SHUT_RDWR); /* wakes the service's accept(): it returns */
    pthread_join(service, NULL);
    close(listen_fd);
    return bad;
}
