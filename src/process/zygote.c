/* SPDX-License-Identifier: MIT */
/*
 * process/zygote.c - the zygote (forkserver): a single-threaded process forked once, when the
 * executor is created, that forks every worker on request.
 *
 * Why. fork() copies only the calling thread; every lock held by another thread at that
 * moment (in malloc, stdio, the application) stays held forever in the child. The zygote is
 * forked while the program is as clean as it gets (glibc's fork() makes malloc consistent in
 * the child), and from then on it runs nothing but this loop: no threads, no locks, so the
 * workers it forks are always clean, however many threads the parent has grown since. It is
 * also small: forking it costs the same whether the parent holds 1 MiB or 10 GiB later.
 *
 * What it does. It polls three fds: the control socket (commands from the parent's
 * supervisor thread: SPAWN, KILL, QUIT), the parent's death pipe (whose write end only the
 * parent holds: readable/hang-up means the parent is gone, however it died and whichever of
 * its threads created the executor), and a self-pipe written by its own SIGCHLD handler.
 * Every 200 ms it also checks that its parent is still the process that made it: a child the
 * application forked (without exec) keeps a copy of the death pipe's write end, and would
 * otherwise keep the zygote alive after the parent's death. It
 * reaps its children and reports each exit status to the parent, and it is the only process
 * that signals a worker by pid: it does so only while the worker is its unreaped child, so a
 * recycled pid can never be hit. If the parent dies it SIGKILLs every worker and exits; the
 * workers also hold PR_SET_PDEATHSIG(SIGKILL) on the zygote (a single-threaded process, so
 * the per-thread semantics of that flag is exactly per process here).
 *
 * Never blocking both ways. The supervisor sends commands and reads events on the same
 * socket pair; if both sides could block in send() on a full socket, a burst of spawns (a pool
 * of several hundred workers starting at once) would leave each waiting for the other to read.
 * So the zygote never blocks in send(): its events go into a queue of its own, written out
 * whenever the socket takes them (poll() watches POLLOUT while the queue is not empty), and it
 * keeps reading commands meanwhile. The supervisor may then block in send() only while the
 * zygote is busy forking, never while the zygote waits for it. The queue stays small (every
 * event answers a SPAWN or reports one of at most 2 * nslots children, and the supervisor
 * re-uses a worker slot only after it read its events) but grows rather than drop an event.
 *
 * Everything in this file runs in the zygote, after fork(), and uses only system calls.
 */
#include "process/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"

struct kid {
    pid_t pid; /* 0 = free entry */
    int slot;
    uint32_t gen;
};

static int sig_wfd = -1;

static void on_chld(int sig)
{
    (void)sig;
    int e = errno;
    char c = 0;
    ssize_t r = write(sig_wfd, &c, 1);
    (void)r;
    errno = e;
}

struct zy {
    const struct exec__zygote_cfg *z;
    struct kid *kids;
    int nkids;
    int sig_rfd;
    pid_t self;
    /* Events not sent yet: a ring of qcap entries (mmap'ed), the oldest at qhead. */
    struct exec__zmsg *q;
    size_t qhead, qn, qcap;
};

_Noreturn static void die(struct zy *y)
{
    for (int i = 0; i < y->nkids; i++)
        if (y->kids[i].pid > 0)
            kill(y->kids[i].pid, SIGKILL);
    for (;;) {
        pid_t p = waitpid(-1, NULL, 0);
        if (p < 0 && errno != EINTR)
            break;
    }
    _exit(0);
}

/* Write out queued events while the socket takes them; never blocks. EPIPE (or any error
 * but a full socket) means the parent is gone. */
static void flush_events(struct zy *y)
{
    while (y->qn) {
        if (exec__zsend(y->z->ctl_fd, &y->q[y->qhead], true) != 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                return; /* poll() says when there is room */
            die(y);
        }
        y->qhead = (y->qhead + 1) % y->qcap;
        y->qn--;
        /* A supervisor that is awake reads the socket only when this count moved (no system
         * call per loop); one that sleeps polls the socket itself. */
        atomic_fetch_add_explicit(&y->z->hub->zevents, 1, memory_order_release);
    }
}

/* Room for one more queued event: double the ring (mmap: no malloc in the zygote). */
static void grow_queue(struct zy *y)
{
    size_t cap = y->qcap ? y->qcap * 2 : 64;
    struct exec__zmsg *q = mmap(NULL, cap * sizeof *q, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        die(y); /* the parent sees the pool broken, never a lost event */
    for (size_t i = 0; i < y->qn; i++)
        q[i] = y->q[(y->qhead + i) % y->qcap];
    if (y->q)
        munmap(y->q, y->qcap * sizeof *y->q);
    y->q = q;
    y->qcap = cap;
    y->qhead = 0;
}

static void send_event(struct zy *y, const struct exec__zmsg *m)
{
    if (y->qn == y->qcap)
        grow_queue(y);
    y->q[(y->qhead + y->qn++) % y->qcap] = *m;
    flush_events(y);
}

static void reap(struct zy *y)
{
    for (;;) {
        int st = 0;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
            return;
        for (int i = 0; i < y->nkids; i++) {
            if (y->kids[i].pid != p)
                continue;
            struct exec__zmsg m = {EXEC__Z_EXITED, y->kids[i].slot, 0, p, st, y->kids[i].gen};
            y->kids[i].pid = 0;
            send_event(y, &m);
            break;
        }
    }
}

static void spawn(struct zy *y, const struct exec__zmsg *cmd)
{
    const struct exec__zygote_cfg *z = y->z;
    reap(y); /* a burst of commands must not keep the dead waiting: no zombie piles up */
    struct exec__zmsg ev = {EXEC__Z_SPAWNFAIL, cmd->slot, cmd->rix, 0, 0, cmd->gen};
    int free_i = -1;
    for (int i = 0; i < y->nkids; i++)
        if (y->kids[i].pid == 0) {
            free_i = i;
            break;
        }
    if (!exec__zmsg_ok(cmd, false, z->nslots) || free_i < 0) {
        ev.arg = EINVAL;
        send_event(y, &ev);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* The worker. Die with the zygote; and if it is already gone, do not start. */
        exec__set_pdeathsig(SIGKILL);
        if (getppid() != y->self)
            _exit(EXEC__WEXIT_SETUP);
        int keep = z->bell_fd;
        exec__close_fds_except(&keep, 1);
        exec__worker_main(&z->wctx[cmd->slot * 2 + cmd->rix]);
    }
    if (pid < 0) {
        ev.arg = errno;
        send_event(y, &ev);
        return;
    }
    y->kids[free_i].pid = pid;
    y->kids[free_i].slot = cmd->slot;
    y->kids[free_i].gen = cmd->gen;
    ev.op = EXEC__Z_SPAWNED;
    ev.pid = pid;
    send_event(y, &ev);
}

static void kill_kid(struct zy *y, const struct exec__zmsg *cmd)
{
    for (int i = 0; i < y->nkids; i++)
        if (y->kids[i].pid == cmd->pid && cmd->pid > 0) {
            kill(cmd->pid, cmd->arg);
            return;
        }
}

/* The zygote cannot run: tell exec_create() why (it waits for the first word) and leave. */
_Noreturn static void setup_failed(const struct exec__zygote_cfg *z)
{
    struct exec__zmsg m = {EXEC__Z_READY, 0, 0, 0, errno ? errno : ENOMEM, 0};
    (void)exec__zsend(z->ctl_fd, &m, false);
    _exit(EXEC__WEXIT_SETUP);
}

_Noreturn void exec__zygote_main(const struct exec__zygote_cfg *z)
{
    struct zy y;
    memset(&y, 0, sizeof y);
    y.z = z;
    y.self = getpid();
    exec__stdio_forget();
    exec__child_signals();

    /* Anything the parent had open (sockets, files) is not ours to keep alive. Closed first,
     * so that a parent that used up its fds still gets a zygote that can make its pipe. */
    int keep[3] = {z->ctl_fd, z->death_fd, z->bell_fd};
    exec__close_fds_except(keep, 3);
    int sp[2];
    if (exec__pipe_cloexec(sp) != 0)
        setup_failed(z);
    fcntl(sp[0], F_SETFL, O_NONBLOCK);
    fcntl(sp[1], F_SETFL, O_NONBLOCK);
    sig_wfd = sp[1];
    y.sig_rfd = sp[0];

    /* At most two workers per slot are alive (a retiring one and its replacement). */
    y.nkids = z->nslots * 2;
    y.kids = mmap(NULL, (size_t)y.nkids * sizeof *y.kids, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (y.kids == MAP_FAILED)
        setup_failed(z);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Every event answers a command or reports a child: 2 per kid entry is the usual most. */
    y.qcap = (size_t)y.nkids * 2 + 16;
    y.q = mmap(NULL, y.qcap * sizeof *y.q, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
    if (y.q == MAP_FAILED)
        setup_failed(z);

    /* exec_create() waits for this word: it returns only a pool that can make workers. */
    struct exec__zmsg ready = {EXEC__Z_READY, 0, 0, 0, 0, 0};
    if (exec__zsend(z->ctl_fd, &ready, false) != 0)
        die(&y);

    pid_t parent = getppid();
    struct pollfd pf[3] = {
        {z->ctl_fd, POLLIN, 0},
        {z->death_fd, POLLIN, 0},
        {y.sig_rfd, POLLIN, 0},
    };
    for (;;) {
        pf[0].events = (short)(POLLIN | (y.qn ? POLLOUT : 0));
        int r = poll(pf, 3, 200);
        if (getppid() != parent)
            die(&y); /* reparented: the parent is gone */
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die(&y);
        }
        if (pf[1].revents)
            die(&y); /* the parent is gone */
        if (pf[2].revents) {
            char buf[64];
            while (read(y.sig_rfd, buf, sizeof buf) > 0)
                ;
        }
        /* Reap at every wake-up: cheap, and immune to a coalesced or lost self-pipe byte. */
        reap(&y);
        flush_events(&y);
        if (pf[0].revents & ~POLLOUT) {
            for (;;) {
                struct exec__zmsg cmd;
                int got = exec__zrecv(z->ctl_fd, &cmd, true);
                if (got == 0)
                    break;
                if (got < 0)
                    die(&y); /* the parent closed the socket */
                switch (cmd.op) {
                case EXEC__Z_SPAWN:
                    spawn(&y, &cmd);
                    break;
                case EXEC__Z_KILL:
                    kill_kid(&y, &cmd);
                    break;
                default: /* EXEC__Z_QUIT */
                    die(&y);
                }
            }
        }
    }
}
