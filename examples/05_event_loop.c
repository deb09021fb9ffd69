/* SPDX-License-Identifier: MIT */
/*
 * 05_event_loop.c - an epoll server that offloads CPU work to a process pool without ever
 * blocking.
 *
 * The server listens on 127.0.0.1 (a port the kernel picks). Each request is a line with a
 * number N; the answer is the count of primes below N, which takes a while to compute. The
 * loop never computes it itself: it submits a task routed to a completion queue, and the
 * queue's file descriptor sits in the same epoll set as the sockets. When it becomes
 * readable, finished futures are popped and their answers written back. A 10 ms timerfd
 * also sits in the set: its ticks keep arriving while the pool works, which shows that the
 * loop stays responsive (the C counterpart of asyncio's run_in_executor).
 *
 * The pool is a process pool (a request that crashed its task would cost one worker, not
 * the server); `05_event_loop threads` runs the same program on a thread pool. The loop's
 * code is the same for both.
 *
 * Four client threads send five requests each. Output (the tick count varies):
 *   answered 20 requests from 4 clients; the loop saw 15 timer ticks meanwhile
 *
 * Usage: 05_event_loop [processes|threads]        (default: processes)
 */
#include <executor.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define CLIENTS 4
#define REQUESTS 5

/* What travels to the task and back: plain bytes, no pointers (a worker may be a process). */
struct job {
    int fd;      /* the client's socket in the server: only echoed back, never used by the task */
    int64_t n;   /* count primes below n */
    int64_t primes;
};

static int count_primes(const void *arg, size_t arg_size, void *out, size_t cap, size_t *len)
{
    (void)arg_size, (void)cap;
    struct job j;
    memcpy(&j, arg, sizeof j);
    j.primes = 0;
    for (int64_t k = 2; k < j.n; k++) {
        int64_t d = 2;
        while (d * d <= k && k % d)
            d++;
        j.primes += d * d > k;
    }
    memcpy(out, &j, sizeof j);
    *len = sizeof j;
    return 0;
}

static uint16_t port;

/* A client: connect, send REQUESTS numbers, read as many answers. */
static void *client(void *p)
{
    long id = (long)p;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        return (void *)1;
    char line[64];
    for (int r = 0; r < REQUESTS; r++) {
        int len = snprintf(line, sizeof line, "%ld\n", 100000 + 20000 * id + 1000 * r);
        if (write(s, line, (size_t)len) != len)
            return (void *)1;
    }
    /* Answers come back as "n primes\n" lines; count them. */
    int got = 0;
    char buf[512];
    while (got < REQUESTS) {
        ssize_t k = read(s, buf, sizeof buf);
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++)
            got += buf[i] == '\n';
    }
    close(s);
    return got == REQUESTS ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    exec_config_t cfg = {0};
    cfg.backend = EXEC_BACKEND_PROCESSES;
    if (argc > 1 && strcmp(argv[1], "threads") == 0) {
        cfg.backend = EXEC_BACKEND_THREADS;
    } else if (argc > 1 && strcmp(argv[1], "processes") != 0) {
        fprintf(stderr, "usage: %s [processes|threads]\n", argv[0]);
        return 2;
    }
    exec_t *ex;
    exec_cq_t *cq;
    int r = exec_create(&ex, &cfg);
    if (r != 0) {
        fprintf(stderr, "exec_create: %s\n", exec_strerror(r));
        return 1;
    }
    if (exec_cq_create(&cq) != 0)
        return 1;

    /* The listening socket, on a port the kernel chooses. */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
        return 1;
    port = ntohs(a.sin_port);

    /* One epoll set: the listener, the completion queue, a 10 ms ticker, the clients. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tick = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec its = {{0, 10000000}, {0, 10000000}};
    timerfd_settime(tick, 0, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = exec_cq_fd(cq);
    epoll_ctl(ep, EPOLL_CTL_ADD, exec_cq_fd(cq), &ev);
    ev.data.fd = tick;
    epoll_ctl(ep, EPOLL_CTL_ADD, tick, &ev);

    pthread_t th[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client, (void *)i);

    int answered = 0, ticks = 0, clients[CLIENTS], nclients = 0;
    while (answered < CLIENTS * REQUESTS) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, 5000);
        if (n <= 0)
            break; /* nothing for 5 s: something is wrong */
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == tick) {
                uint64_t t;
                if (read(tick, &t, sizeof t) == sizeof t)
                    ticks += (int)t;
            } else if (fd == ls) {
                int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0 && nclients < CLIENTS) {
                    clients[nclients++] = c;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
            } else if (fd == exec_cq_fd(cq)) {
                /* Finished futures: write each answer to its client. Never blocks. */
                exec_future_t *f;
                while (exec_cq_pop(cq, 0, &f) == 0) {
                    const void *res;
                    if (exec_future_result(f, &res, NULL) == 0) {
                        struct job j;
                        memcpy(&j, res, sizeof j);
                        char line[64];
                        int len = snprintf(line, sizeof line, "%lld %lld\n", (long long)j.n,
                                           (long long)j.primes);
                        if (write(j.fd, line, (size_t)len) == len)
                            answered++;
                    }
                    exec_future_release(f); /* the reference exec_cq_pop handed over */
                }
            } else {
                /* A client sent numbers: submit one task per line, routed to the cq. */
                char buf[256];
                ssize_t k = read(fd, buf, sizeof buf - 1);
                if (k <= 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    continue;
                }
                buf[k] = 0; /* a real server would keep partial lines between reads */
                for (char *save, *tok = strtok_r(buf, "\n", &save); tok;
                     tok = strtok_r(NULL, "\n", &save)) {
                    struct job j = {.fd = fd, .n = atoll(tok)};
                    exec_submit_opts_t o = {.cq = cq};
                    if (exec_submit_ex(ex, count_primes, &j, sizeof j, &o, NULL) != 0)
                        fprintf(stderr, "submit failed\n");
                }
            }
        }
    }

    int bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        bad += ret != NULL;
    }
    printf("answered %d requests from %d clients; the loop saw %d timer ticks meanwhile\n",
           answered, CLIENTS, ticks);
    for (int i = 0; i < nclients; i++)
        close(clients[i]);
    close(ls);
    close(tick);
    close(ep);
    exec_destroy(ex);
    exec_cq_destroy(cq);
    return bad || answered != CLIENTS * REQUESTS;
}
