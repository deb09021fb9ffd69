/* SPDX-License-Identifier: MIT -- libexecutor, an embeddable C executor library. */
/*
 * libexecutor runs C functions ("tasks") on a pool of workers and hands their results back
 * through futures. The pool is a thread pool or a process pool, chosen by one field of
 * exec_config_t; task code and calling code are the same for both.
 *
 *   - Threads share memory and start fast; C has no global interpreter lock, so CPU-bound
 *     work scales on threads.
 *   - Processes isolate: a task that crashes, hangs past its deadline or leaks only costs
 *     its worker, which is replaced. They also run non-thread-safe libraries in parallel.
 *
 * Value semantics, on every backend: a task receives a private copy of its argument bytes,
 * made before exec_submit() returns, and produces result bytes that the future owns.
 * Pointers inside an argument mean nothing in a process worker: share big data through a
 * shared-memory buffer instead.
 *
 * Reading order of this header: errors, types, configuration, the executor, submitting and
 * mapping, futures, completion queues, statistics and sizing.
 *
 * Conventions. Every fallible call returns int: 0 (or a count/index >= 0) on success and a
 * negative EXEC_E* code on failure. Out-parameters are written on success only (the one
 * exception, exec_future_result(), says so). Time is in integer milliseconds; a timeout_ms
 * of 0 polls, EXEC_WAIT_FOREVER (-1) blocks, other negatives are EXEC_EINVAL. Sizes are
 * size_t. Release and destroy functions accept NULL.
 *
 * Example:
 *
 *     static int square(const void *arg, size_t arg_size, void *out, size_t out_cap,
 *                       size_t *out_size)
 *     {
 *         int64_t x;
 *         (void)arg_size; (void)out_cap;
 *         memcpy(&x, arg, sizeof x);
 *         x *= x;
 *         memcpy(out, &x, sizeof x);
 *         *out_size = sizeof x;
 *         return 0;
 *     }
 *
 *     exec_t *ex;
 *     exec_future_t *f;
 *     int64_t v = 7;
 *     exec_create(&ex, NULL);                       // thread pool, one worker per CPU
 *     exec_submit(ex, square, &v, sizeof v, &f);    // v is copied here
 *     exec_future_wait(f, EXEC_WAIT_FOREVER);
 *     const void *r; size_t n;
 *     if (exec_future_result(f, &r, &n) == 0)       // r: 8 bytes owned by f
 *         printf("%lld\n", (long long)*(const int64_t *)r);
 *     exec_future_release(f);
 *     exec_destroy(ex);
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EXEC_API __attribute__((visibility("default")))
#else
#define EXEC_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Version                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define EXEC_VERSION_MAJOR 0
#define EXEC_VERSION_MINOR 1
#define EXEC_VERSION_PATCH 0
#define EXEC_VERSION_NUMBER \
    (EXEC_VERSION_MAJOR * 10000 + EXEC_VERSION_MINOR * 100 + EXEC_VERSION_PATCH)
#define EXEC_VERSION_STRING "0.1.0"

/**
 * exec_version() - the version of the linked library.
 * Return: EXEC_VERSION_NUMBER of the library actually linked (may differ from the header's).
 * Thread-safety: any thread.
 */
EXEC_API unsigned exec_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/*
 * EXEC_ERRNO_MAP(X) - the one list of error codes: X(NAME, value, "message").
 * Values are fixed forever; new codes are appended, never renumbered.
 */
#define EXEC_ERRNO_MAP(X)                                                        \
    X(OK, 0, "success")                                                          \
    X(EINVAL, -1, "invalid argument")                                            \
    X(ENOMEM, -2, "out of memory")                                               \
    X(ESHUTDOWN, -3, "executor is shut down")                                    \
    X(ETOOBIG, -4, "argument or result larger than the configured maximum")      \
    X(ETIMEDOUT, -5, "timed out")                                                \
    X(ECANCELLED, -6, "cancelled")                                               \
    X(ECRASHED, -7, "worker died while running the task (signal or exit)")       \
    X(ETASK, -8, "task returned a non-zero status")                              \
    X(EAGAIN, -9, "try again: queue full or not ready yet")                      \
    X(EDEADLK, -10, "operation would deadlock")                                  \
    X(ESYS, -11, "system call failed (see sys_errno)")                           \
    X(ENOTSUP, -12, "not supported by this backend or platform")                 \
    X(EBUSY, -13, "busy: already running or finished, or in use")                \
    X(EBROKEN, -14, "executor is broken: its workers cannot run tasks (see fault.cause)")

/** exec_err_t - every code a call of this library can return. */
typedef enum exec_err {
#define EXEC__ERR_ENUM(name, value, msg) EXEC_##name = (value),
    EXEC_ERRNO_MAP(EXEC__ERR_ENUM)
#undef EXEC__ERR_ENUM
} exec_err_t;

/**
 * exec_strerror() - a message for an error code.
 * @err: any int; unknown values give "unknown error".
 * Return: a static string; never NULL, never allocated.
 * Thread-safety: any thread.
 */
EXEC_API const char *exec_strerror(int err);

/**
 * exec_errname() - the symbolic name of an error code, e.g. "EXEC_EINVAL".
 * @err: any int; unknown values give "EXEC_EUNKNOWN".
 * Return: a static string; never NULL, never allocated.
 * Thread-safety: any thread.
 */
EXEC_API const char *exec_errname(int err);

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** exec_t - an executor: a pool of workers and its queue. Opaque. */
typedef struct exec exec_t;

/** exec_future_t - the handle of one submitted task. Opaque, reference counted. */
typedef struct exec_future exec_future_t;

/** exec_cq_t - a completion queue: futures come out in the order they finish. Opaque. */
typedef struct exec_cq exec_cq_t;

/**
 * exec_task_fn - the function a worker runs.
 * @arg:      the task's private copy of the argument bytes, aligned for any type
 *            (max_align_t); valid until the function returns. NULL when @arg_size is 0.
 * @arg_size: number of argument bytes.
 * @out:      buffer for the result bytes, aligned for any type; valid until return.
 * @out_cap:  capacity of @out: the executor's max_result_size for exec_submit(), the
 *            element size for exec_map().
 * @out_size: the task stores the number of result bytes it wrote (<= @out_cap). It starts
 *            at 0 for exec_submit() and at the element size for exec_map() (where it is
 *            ignored: every result element is @out_cap bytes).
 * Return: 0 for success; any other value is the task's own error code: the future fails
 *         with EXEC_ETASK and exec_fault_t.task_status holds the value. A task that returns 0
 *         but stores *out_size > out_cap fails with EXEC_ETOOBIG.
 *
 * A task runs in a worker thread or a worker process. It may call exec_task_should_stop()
 * and, on the thread backend, submit to and wait on its own executor. A thread task that
 * ends its thread (pthread_exit(), or pthread_cancel() reaching a cancellation point) fails
 * with EXEC_ECRASHED and fault.cause EXEC_CAUSE_THREAD_EXIT, like a crash on processes: so
 * do the tasks it was waiting in (nested waits), and of a map chunk the item it was running
 * (the items it finished keep their results, the rest run on its replacement). The worker
 * thread is replaced, so the pool keeps its size. The library's waits (for a future, for
 * room in a queue, for a shutdown, in exec_cq_pop()) are not cancellation points. Not
 * supported: ending the thread inside an exec_map*() the task itself called (the map's
 * state lives on the task's stack, which other workers still use).
 */
typedef int exec_task_fn(const void *arg, size_t arg_size, void *out, size_t out_cap,
                         size_t *out_size);

/**
 * exec_done_fn - a done-callback (see exec_future_on_done()).
 * @f:         the finished future; borrowed: exec_future_retain() it to keep it.
 * @user_data: the pointer given with the callback.
 * Runs exactly once, in the thread that finished the future or, if it was already finished,
 * in the thread that added the callback. It must not block for long.
 */
typedef void exec_done_fn(exec_future_t *f, void *user_data);

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                               */
/* ------------------------------------------------------------------------------------------ */

/**
 * exec_backend_t - where tasks run.
 *
 * On EXEC_BACKEND_THREADS (and in an MPI rank's local thread pool), worker threads block
 * asynchronous signals, and on Linux run under the scheduling policy SCHED_BATCH when they
 * would otherwise run under SCHED_OTHER (the default, inherited from the thread calling
 * exec_create()): a worker woken for new work then takes an idle CPU, or waits for the
 * running thread's next scheduler tick, instead of preempting the thread that submitted the
 * work (on a machine with fewer CPUs than busy threads, that preemption at every wake-up
 * halved the rate of small tasks). Their nice value is not changed; other policies (real-time,
 * SCHED_IDLE) are kept as inherited; threads a task creates inherit SCHED_BATCH. A program
 * that wants its workers under another policy sets it in its initializer, which runs on each
 * worker thread before its first task.
 *
 * What differs on EXEC_BACKEND_PROCESSES (everything else is the same):
 *  - A task runs in a worker process. It sees the program's globals as they were when the
 *    worker's image was taken (at exec_create() with forkserver, at the worker's start with
 *    fork), never the parent's later writes; its own writes stay in the worker.
 *  - A task cannot submit to, wait on or shut down the parent's executor (it holds a copy:
 *    exec_submit*() and exec_map*() on it return EXEC_ESHUTDOWN).
 *  - Forkserver workers keep only fds 0-2 of the parent; fork workers inherit every fd.
 *    Workers ignore SIGINT and SIGPIPE, flush stdio and _exit() when they retire.
 *  - A crash (signal or exit) fails only the running task with EXEC_ECRASHED (fault.signal
 *    or fault.exit_status, fault.worker_pid) and the worker is replaced. At a deadline the
 *    worker gets SIGTERM, then SIGKILL after kill_grace_ms; the future fails at once with
 *    EXEC_ETIMEDOUT and fault.signal = SIGTERM.
 *  - Done-callbacks run on the executor's supervisor thread; from there, waiting on or
 *    mapping over the same executor returns EXEC_EDEADLK, exec_destroy() too, and
 *    exec_shutdown() waits while the pool keeps moving (see exec_shutdown()).
 *  - The pool becomes broken (see "A broken pool" below) when the crash-loop breaker trips
 *    (fault.cause EXEC_CAUSE_CRASH_LOOP) or when the zygote dies (EXEC_CAUSE_ZYGOTE), and,
 *    as on threads, when the initializer fails: here also when it calls _exit() (exit_status)
 *    or dies of a signal (signal). When workers cannot be started (fork, or a new worker's
 *    own set-up, fails 5 times in a row, retried 2 ms to 1 s apart) with none alive, waiting
 *    tasks fail with EXEC_ESYS, fault.sys_errno and EXEC_CAUSE_SPAWN.
 *
 * A broken pool (both backends). Tasks waiting when the pool learns it is broken end with
 * EXEC_EBROKEN at once (fault.cause says why, and for the initializer how it ended); later
 * submits and maps return EXEC_EBROKEN; tasks already running finish; then every worker
 * leaves and none is started again (no respawn loop). exec_shutdown() and exec_destroy()
 * work as usual.
 *
 * EXEC_BACKEND_MPI runs tasks on the other ranks of an MPI job (Open MPI; started with
 * `mpirun -np N ./prog` or `srun`). It lives in a second library, libexecutor-mpi
 * (pkg-config executor-mpi; it contains the whole library, link it instead of -lexecutor),
 * and needs the guard exec_mpi_main() of <executor_mpi.h> at the top of main(): rank 0 runs
 * the program, every other rank serves tasks. Without that call (or in a build without
 * Open MPI) exec_create() with this backend returns EXEC_ENOTSUP. What differs:
 *  - Each serving rank runs its tasks in a local pool, threads (mpi_local_backend 0) or
 *    processes; the process-only fields apply to those local pools. `workers` is the
 *    executor's total, spread evenly over the serving ranks (0 = per serving rank, rank 0's
 *    CPU budget shared among the serving ranks on rank 0's host).
 *  - Task and initializer pointers travel as (loaded module, offset): they must point into
 *    the program or a shared library loaded on every rank (EXEC_EINVAL at submit if not).
 *  - A crash fails only its task, as on the local backend (fault.rank says which rank,
 *    fault.worker_pid the process there). Losing a whole rank ends the MPI job (Open MPI).
 *  - A task is sent to a rank when one of its workers is free; only while more than
 *    64 + 2 per worker tasks wait does a rank get up to 4 per worker + 4 in advance (the
 *    bound on work in flight per rank). A sent task is RUNNING (in advance: maybe still
 *    waiting there): EXEC_CANCEL_RUNNING cancels it on its rank (on a local process pool
 *    its worker is killed); without the flag cancel returns EXEC_EBUSY.
 *  - Map chunks go to ranks whole. On a local process pool a rank runs a chunk as a map of
 *    its own, so a crash fails only the item it hit (EXEC_ECRASHED), the items that ended
 *    keep their results and the rest run once on another local worker, as on processes. On
 *    a local thread pool a crash ends the rank, and so the MPI job.
 *  - Done-callbacks run on the executor's communication thread (waiting, mapping or
 *    shutting down from there: EXEC_EDEADLK).
 *  - One MPI executor exists at a time in a program: from its exec_create() until its
 *    exec_destroy() returns (also while it is shut down), exec_create() of another with
 *    EXEC_BACKEND_MPI returns EXEC_EBUSY ("busy: already running or finished, or in use")
 *    and leaves the first one undisturbed; after exec_destroy() a new one works. (The
 *    serving ranks run one local pool for it; executors of other backends are not limited.)
 *    After rank 0 finalised MPI (see exec_mpi_main()) it returns EXEC_ENOTSUP.
 *  - The trace (trace_path) is rank 0's: each task and map chunk a rank ran is a span from
 *    its sending to its result's arrival, on rank 0's clock, on the track of the worker
 *    that ran it ("mpi worker <id> (rank <r>, pid <pid>)"), with the outcome it reported.
 *  - Shared-memory buffers created on rank 0 reach tasks on every rank through the same
 *    exec_shm_ref_t (see exec_shm_map()). exec_create() reads the test knob
 *    EXEC_MPI_OTHER_HOST: "all" or a list of ranks ("2" or "1,3"; ranks 1..32) that act as
 *    on another host than rank 0 (anything else: EXEC_EINVAL).
 */
typedef enum exec_backend {
    EXEC_BACKEND_THREADS = 0,   /* a pool of threads in this process (default) */
    EXEC_BACKEND_PROCESSES = 1, /* a pool of worker processes */
    EXEC_BACKEND_MPI = 2,       /* the serving ranks of an MPI job (see below) */
} exec_backend_t;

/**
 * exec_start_method_t - how the process backend makes its workers.
 * Forkserver forks a single-threaded zygote at exec_create(), and the zygote forks every
 * worker: no worker is ever forked from a process whose other threads may hold locks
 * (malloc's, stdio's, the application's). Fork forks each worker from the calling process:
 * workers see later globals, but a lock held by another thread at that moment stays held
 * forever in the worker. With SIGCHLD ignored by the application, fork workers' crash
 * detail is unknown (signal 0, exit_status -1).
 */
typedef enum exec_start_method {
    EXEC_START_FORKSERVER = 0, /* forked from a clean single-threaded zygote (default) */
    EXEC_START_FORK = 1,       /* forked directly from the calling process */
} exec_start_method_t;

/** Largest worker count a config may ask for. */
#define EXEC_WORKERS_MAX 1024
/** Default and largest values of max_arg_size and max_result_size. */
#define EXEC_DEFAULT_MAX_ARG_SIZE ((size_t)64 * 1024)
#define EXEC_DEFAULT_MAX_RESULT_SIZE ((size_t)64 * 1024)
#define EXEC_SIZE_LIMIT ((size_t)256 * 1024 * 1024)

/**
 * exec_config_t - how to build an executor. `exec_config_t cfg = {0};` means "all defaults";
 * each field says what its zero means. exec_create() copies it.
 */
typedef struct exec_config {
    /** Backend: EXEC_BACKEND_THREADS (0) or EXEC_BACKEND_PROCESSES. */
    exec_backend_t backend;
    /** Worker count, 1..EXEC_WORKERS_MAX; 0 = exec_cpu_budget() (EXEC_WORKERS or the CPUs). */
    int workers;
    /** Largest argument in bytes, 1..EXEC_SIZE_LIMIT; 0 = EXEC_DEFAULT_MAX_ARG_SIZE. */
    size_t max_arg_size;
    /** Largest task result in bytes, 1..EXEC_SIZE_LIMIT; 0 = EXEC_DEFAULT_MAX_RESULT_SIZE. */
    size_t max_result_size;
    /** Most tasks waiting in the queue (on processes: waiting in the workers' rings too); a
     *  full queue blocks exec_submit() (or returns EXEC_EAGAIN with EXEC_SUBMIT_TRY);
     *  0 = unbounded. Tasks submitted from inside a worker are never blocked by this bound
     *  (that could deadlock the pool). */
    size_t queue_max;
    /** A worker (thread or process) retires after running this many tasks and a fresh one
     *  replaces it; 0 = never. Threads count the tasks they take from the queue; tasks run
     *  nested inside a waiting task do not count (a thread cannot retire in mid-task).
     *  Processes count each map chunk as one task; a worker that retires for this reason
     *  ran exactly this many, one still alive at shutdown may have run fewer. */
    uint32_t max_tasks_per_child;
    /** Default run-time limit of each task, counted from when it starts; 0 = none.
     *  Threads: the future fails with EXEC_ETIMEDOUT at the deadline and the task's stop
     *  flag is set (a thread cannot be killed). Processes: the worker is killed. */
    uint32_t timeout_ms;
    /** Stack size of worker threads in bytes; 0 = the system default; values below
     *  PTHREAD_STACK_MIN are raised to it. */
    size_t stack_size;

    /* -- process backend only (must be 0 on the thread backend, else EXEC_EINVAL) -- */

    /** Start method: EXEC_START_FORKSERVER (0) or EXEC_START_FORK. */
    exec_start_method_t start_method;
    /** After SIGTERM at a deadline, wait this long before SIGKILL; 0 = 100 ms. */
    uint32_t kill_grace_ms;
    /** Retire a worker whose resident memory exceeds this after a task; 0 = no limit. */
    size_t max_rss_per_child;
    /** Retire a worker older than this (checked between tasks, and while idle: an idle
     *  pool keeps recycling); 0 = no limit. */
    uint32_t max_age_ms;
    /** Spread each worker's limits randomly by up to this percent (0..100); 0 = none. */
    uint32_t recycle_jitter_pct;
    /** Crash-loop breaker: this many crashes within crash_window_ms break the executor
     *  (EXEC_EBROKEN, fault.cause EXEC_CAUSE_CRASH_LOOP); 0 = off. */
    uint32_t crash_limit;
    /** Window of the crash-loop breaker; 0 = 10000 ms. */
    uint32_t crash_window_ms;

    /* -- both backends -- */

    /** Per-worker initializer (Python's initializer/initargs); NULL = none. It runs once in
     *  each new worker, thread or process, recycled ones too, before that worker's first
     *  task (e.g. to open a per-worker connection, or fill a table in a worker process), with
     *  the init_arg bytes and an output buffer whose contents are ignored. It returns 0 for
     *  success. Any other end breaks the executor (EXEC_EBROKEN, fault.cause
     *  EXEC_CAUSE_INITIALIZER, see "A broken pool" at exec_backend_t), and the fault says how
     *  it ended: fault.task_status = its non-zero return; on processes exit_status = the
     *  status it passed to _exit()/exit(), or signal = the signal that killed it; on threads
     *  all three unset when it ended its thread (pthread_exit(), pthread_cancel()). */
    exec_task_fn *initializer;
    /** Argument bytes of the initializer, copied by exec_create() (the caller's buffer is
     *  free when it returns); at most max_arg_size (else EXEC_ETOOBIG); may be NULL if size
     *  0. */
    const void *init_arg;
    size_t init_arg_size;

    /** Trace file: write a timeline of the executor's run to this path, in the Trace Event
     *  JSON format that Perfetto (ui.perfetto.dev) and chrome://tracing open; NULL = no
     *  trace. The string is copied by exec_create() (the caller keeps its own). A file that
     *  cannot be opened fails exec_create() with EXEC_ESYS; a later write error only ends
     *  the trace. The first executor of a program to open a path starts the file afresh,
     *  later ones append. The file opens after any complete line (a crash loses only what
     *  was not written yet); its memory is bounded: about 120 KiB per worker thread and
     *  240 KiB per process pool. The environment variable EXEC_TRACE, read by each
     *  exec_create(), overrides this field without recompiling: EXEC_TRACE=path traces to
     *  path, EXEC_TRACE= (empty) traces nothing; it is ignored in set-user-ID programs.
     *  See docs/guide.md, "A timeline of a run", for the events and what they cost. */
    const char *trace_path;

    /* -- MPI backend only (must be 0 on the others) -- */

    /** Backend of each serving rank's local pool: EXEC_BACKEND_THREADS (0) or
     *  EXEC_BACKEND_PROCESSES. */
    exec_backend_t mpi_local_backend;

    /** Must be zero (else EXEC_EINVAL); future fields come out of it. */
    uint32_t reserved[(32 - sizeof(const char *) - sizeof(exec_backend_t)) / sizeof(uint32_t)];
} exec_config_t;

/* ------------------------------------------------------------------------------------------ */
/* The executor                                                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * exec_create() - make an executor and start its workers.
 * @ex:  out: the new executor; written on success only.
 * @cfg: configuration, copied; NULL means all defaults.
 * Return: EXEC_OK; EXEC_EINVAL (NULL @ex, a field out of range, a backend or start method
 *         that is not one of the enum's values, reserved not zero, a process-only field on
 *         the thread backend, init_arg_size without init_arg); EXEC_ETOOBIG (init_arg_size
 *         > max_arg_size); EXEC_ENOMEM; EXEC_ESYS (threads, processes or fds could not be
 *         made, e.g. errno EMFILE, or the trace file could not be opened or written: errno
 *         says why); EXEC_ENOTSUP (backend not built). An executor it returns can run
 *         tasks: on processes its zygote has said it is ready.
 * Thread-safety: any thread.
 */
EXEC_API int exec_create(exec_t **ex, const exec_config_t *cfg);

/** Flags of exec_shutdown(). */
#define EXEC_SHUTDOWN_CANCEL 1u /* cancel tasks still queued instead of running them */
#define EXEC_SHUTDOWN_NOWAIT 2u /* begin the shutdown but do not wait for workers to end */

/**
 * exec_shutdown() - stop accepting tasks, then finish or cancel the queued ones.
 * @ex:    the executor; borrowed.
 * @flags: 0 runs every queued task and waits; EXEC_SHUTDOWN_CANCEL cancels queued tasks
 *         (their futures end EXEC_ECANCELLED; running tasks finish); EXEC_SHUTDOWN_NOWAIT
 *         returns at once, the wait being left to exec_destroy().
 * After it, exec_submit() and exec_map() return EXEC_ESHUTDOWN. Calling it again is safe
 * (it waits again unless NOWAIT). Futures stay valid and keep their results.
 * From inside one of @ex's own tasks, or a done-callback run by one of @ex's own threads
 * (a worker thread, the thread backend's deadline timer, the process backend's supervisor),
 * it cannot wait for the threads to end (the caller is one of them): it refuses new tasks at
 * once, runs or cancels the queued ones as @flags say, and returns once every task has ended
 * but the caller's own (and those waiting on its thread's stack); the caller keeps the pool
 * moving meanwhile (a worker runs queued tasks, the timer fails deadlines, the supervisor
 * does its rounds). Whatever waits for the caller's own task deadlocks there, as anywhere.
 * exec_destroy(), from outside, joins the rest later.
 * Return: EXEC_OK; EXEC_EINVAL (NULL @ex or unknown flags).
 * Thread-safety: any thread, concurrently with submits.
 */
EXEC_API int exec_shutdown(exec_t *ex, unsigned flags);

/**
 * exec_destroy() - shut down (waiting for every queued and running task), then free.
 * @ex: the executor, or NULL (then nothing happens). Its handle is invalid afterwards.
 * No thread, process, zombie, fd or shared-memory object of @ex is left when it returns.
 * Futures that are still referenced stay valid until their last exec_future_release().
 * Return: EXEC_OK; EXEC_EDEADLK when called from inside one of @ex's own tasks or from a
 *         done-callback run by one of @ex's own threads (nothing is done; the handle stays
 *         valid).
 * Thread-safety: must not race with other calls on @ex.
 */
EXEC_API int exec_destroy(exec_t *ex);

/* ------------------------------------------------------------------------------------------ */
/* Submitting tasks                                                                            */
/* ------------------------------------------------------------------------------------------ */

/** Flags of exec_submit_opts_t. */
#define EXEC_SUBMIT_TRY 1u /* return EXEC_EAGAIN instead of blocking on a full queue (or, on
                              processes, on a full queue of big arguments: exec_submit()) */

/** Value of exec_submit_opts_t.timeout_ms that disables the executor's default timeout. */
#define EXEC_NO_TIMEOUT UINT32_MAX

/** exec_submit_opts_t - per-task options; `= {0}` means the executor's defaults. */
typedef struct exec_submit_opts {
    /** Run-time limit of this task; 0 = the executor's timeout_ms; EXEC_NO_TIMEOUT = none. */
    uint32_t timeout_ms;
    /** EXEC_SUBMIT_TRY or 0. */
    uint32_t flags;
    /** If not NULL, the future is also put into this completion queue when it finishes
     *  (as if by exec_cq_add()). */
    exec_cq_t *cq;
    /** Must be zero. */
    uint32_t reserved[4];
} exec_submit_opts_t;

/**
 * exec_submit() - queue @fn to run on a worker with a copy of @arg.
 * @ex:       the executor; borrowed.
 * @fn:       the task; in a worker process the same function of the same program image.
 * @arg:      argument bytes, copied before return; may be NULL when @arg_size is 0.
 * @arg_size: 0..max_arg_size.
 * @f:        out: a new reference to the task's future (release it with
 *            exec_future_release()); NULL to fire and forget (the result is discarded).
 * Allocates at most once (only for an argument of more than 16 bytes, which does not sit
 * inside the future; futures themselves come from arenas the executor maps). Copies of
 * 64 KiB and more are kept for the next big argument (up to 64 MiB per executor, freed by
 * exec_destroy()), so a steady stream of big arguments touches no fresh memory. On
 * processes the argument is copied once, straight into a worker's shared-memory ring, when a
 * ring has room; a task that must wait for one keeps its copy in the future until a ring has
 * room (the caller's buffer is free as soon as this returns, so the wait needs a copy).
 * Big arguments (64 KiB and more) wait so only while such copies total under 4 MiB: beyond,
 * exec_submit() blocks until a ring takes the argument directly (bounded memory, one copy;
 * EXEC_EAGAIN with EXEC_SUBMIT_TRY). Never from the supervisor thread (done-callbacks).
 * Return: EXEC_OK; EXEC_EINVAL (NULL @ex or @fn, NULL @arg with @arg_size > 0);
 *         EXEC_ETOOBIG (@arg_size > max_arg_size); EXEC_ESHUTDOWN; EXEC_ENOMEM;
 *         EXEC_ESYS (threads: the timer thread for the first task with a timeout could not
 *         start); EXEC_EBROKEN (the pool is broken, see exec_backend_t).
 * Thread-safety: any thread, including from inside a task of @ex (thread backend).
 */
EXEC_API int exec_submit(exec_t *ex, exec_task_fn *fn, const void *arg, size_t arg_size,
                         exec_future_t **f);

/**
 * exec_submit_ex() - exec_submit() with per-task options.
 * @opts: options, copied; NULL is the same as exec_submit().
 * Return: as exec_submit(), plus EXEC_EAGAIN (queue full with EXEC_SUBMIT_TRY: queue_max,
 *         or on processes the bound on queued big arguments) and
 *         EXEC_EINVAL (unknown flags, reserved not zero).
 * Thread-safety: any thread.
 */
EXEC_API int exec_submit_ex(exec_t *ex, exec_task_fn *fn, const void *arg, size_t arg_size,
                            const exec_submit_opts_t *opts, exec_future_t **f);

/**
 * exec_task_should_stop() - whether the running task has been asked to stop.
 * True once the task's deadline passed or it was cancelled while running (its future has
 * already failed; its result will be discarded). Long tasks should poll it.
 * Return: true or false; false outside a task.
 * Thread-safety: call from inside a task.
 */
EXEC_API bool exec_task_should_stop(void);

/* ------------------------------------------------------------------------------------------ */
/* Mapping over arrays                                                                         */
/* ------------------------------------------------------------------------------------------ */

/**
 * exec_progress_fn - progress of an exec_map(), called from the thread that called it.
 * @done: items finished so far; @total: all items; @user_data: from the options.
 */
typedef void exec_progress_fn(size_t done, size_t total, void *user_data);

/**
 * exec_item_fn - receives one result of exec_map_unordered(), on the calling thread.
 * @index:  the item's position in the input; @status: the task's return value (0 = ok) or
 *          EXEC_ECANCELLED; @result: the item's result, inside the caller's @out array
 *          (NULL when out_size is 0).
 */
typedef void exec_item_fn(size_t index, int status, const void *result, void *user_data);

/** exec_map_opts_t - options of exec_map(); `= {0}` means defaults. */
typedef struct exec_map_opts {
    /** Items per chunk (one worker runs a chunk at a time); 0 = automatic. On processes it
     *  is capped so that a chunk's bytes fit half a ring. */
    size_t chunk_size;
    /** If not NULL, an array of n ints receiving each item's task status (0 = ok, the
     *  task's non-zero return, or EXEC_ECANCELLED for an item that never ran). */
    int *status;
    /** Progress callback, or NULL. Called at most once per progress_interval_ms while the
     *  map runs, plus one final call with done == total when every item ran (that one is
     *  not rate limited). */
    exec_progress_fn *progress;
    void *progress_data;
    /** Least time between progress calls; 0 = 100 ms. */
    uint32_t progress_interval_ms;
    /** Must be zero. */
    uint32_t reserved[5];
    /* -- written by exec_map() on return (also when it fails) -- */
    /** How many items returned non-zero (or were cancelled). */
    size_t failed;
    /** Index of the first (lowest) failed item; n when none failed. */
    size_t first_failed;
} exec_map_opts_t;

/**
 * exec_map() - run @fn over @n input elements into @n result elements, in order.
 * @ex:       the executor; borrowed.
 * @fn:       called once per item with @in_size argument bytes and @out_size result bytes.
 * @in:       n * in_size bytes; borrowed until return (threads read it in place; processes
 *            copy it in chunks). Must not overlap @out.
 * @in_size:  element size, 1..max_arg_size.
 * @out:      n * out_size bytes receiving results in input order; may be NULL if
 *            @out_size is 0.
 * @out_size: result element size, 0..max_result_size.
 * @n:        number of items, >= 1.
 * @opts:     options or NULL; its output fields are written.
 * Blocks until every item ran (inside a worker of @ex it runs queued work while waiting).
 * Makes no allocation per item. Items keep running after one fails. Items count in
 * exec_stats_t.map_items (those that ran), not in submitted/completed.
 * Failures, the same on every backend: an item that ran keeps its status and result; an
 * item that a cancelling exec_shutdown() caught before it ran gets EXEC_ECANCELLED; on
 * processes, when a worker dies in the middle of a chunk, only the item it was running
 * fails (EXEC_ECRASHED): the items it had finished keep their results and the ones it had
 * not started run on another worker, once. opts->failed counts every failed item.
 * Return: EXEC_OK; EXEC_ETASK when an item returned non-zero (see opts->status,
 *         opts->first_failed); when items failed otherwise, the gravest of their codes:
 *         EXEC_ECRASHED, EXEC_EBROKEN, EXEC_ESYS, EXEC_ENOMEM, EXEC_ECANCELLED; EXEC_EINVAL
 *         (NULL @ex, @fn, @in; @n or @in_size 0; NULL @out with @out_size > 0; n * size
 *         overflows; reserved not zero); EXEC_ETOOBIG; EXEC_ESHUTDOWN; EXEC_ENOMEM;
 *         EXEC_EDEADLK (processes: from a done-callback, i.e. on the supervisor thread).
 * Thread-safety: any thread; several maps may run at once.
 */
EXEC_API int exec_map(exec_t *ex, exec_task_fn *fn, const void *in, size_t in_size, void *out,
                      size_t out_size, size_t n, exec_map_opts_t *opts);

/**
 * exec_map_unordered() - exec_map() that hands each result over as soon as it is ready.
 * @on_item:   called on the calling thread once per item, in completion order, with the
 *             item's index, status and result (which already sits at out + index*out_size).
 * @user_data: passed to @on_item.
 * Other parameters, blocking and return values: as exec_map(). If it fails before any item
 * started, @on_item is never called.
 * Thread-safety: any thread.
 */
EXEC_API int exec_map_unordered(exec_t *ex, exec_task_fn *fn, const void *in, size_t in_size,
                                void *out, size_t out_size, size_t n, exec_item_fn *on_item,
                                void *user_data, exec_map_opts_t *opts);

/**
 * exec_producer_fn - the next input items of exec_map_stream(), called on the calling thread
 * (in batches, like read(): no call per item).
 * @items:     where to write up to @max items, @in_size bytes each, one after the other
 *             (valid only during the call).
 * @max:       how many items fit (at least 1).
 * @in_size:   the element size given to exec_map_stream().
 * @count:     out: how many items were written; 0 means the input ended.
 * @user_data: as given to exec_map_stream().
 * Return: 0; or a negative value (an EXEC_E* code of the caller's choice) to stop the map:
 * the items already produced (those of this call too) still run and reach the consumer,
 * then exec_map_stream() returns that value.
 */
typedef int exec_producer_fn(void *items, size_t max, size_t in_size, size_t *count,
                             void *user_data);

/**
 * exec_consumer_fn - results of exec_map_stream(), called on the calling thread, in batches.
 * @first:     the input position of the first item of the batch (0 for the first item
 *             produced); the batch holds items @first .. @first + @count - 1.
 * @count:     items in the batch (at least 1).
 * @status:    @count statuses: 0, the task's non-zero return, or the code of an item that
 *             did not run to its end (as in exec_map(): EXEC_ECANCELLED, EXEC_ECRASHED, ...).
 * @results:   @count results of out_size bytes each, one after the other (NULL when
 *             out_size is 0); valid only during the call.
 * @user_data: as given to exec_map_stream().
 * Return: 0 to go on; non-zero to stop the map: items not started are cancelled, running
 * ones finish, nothing more is delivered, and exec_map_stream() returns EXEC_ECANCELLED.
 */
typedef int exec_consumer_fn(size_t first, size_t count, const int *status,
                             const void *results, void *user_data);

/** exec_stream_opts_t.flags: deliver results in completion order, not input order. */
#define EXEC_STREAM_UNORDERED 1u

/** exec_stream_opts_t - options of exec_map_stream(); `= {0}` means defaults. */
typedef struct exec_stream_opts {
    /** Items held in memory at once (produced and not yet consumed); 0 = 16384. Rounded up
     *  to whole chunks. Memory is about window * (in_size + out_size + 4) bytes, whatever
     *  the length of the input. */
    size_t window;
    /** Items per chunk; 0 = automatic (an eighth of the window per worker, capped as in
     *  exec_map()). */
    size_t chunk_size;
    /** 0 or EXEC_STREAM_UNORDERED. */
    unsigned flags;
    /** Progress callback, or NULL: done so far and, once the producer said the input
     *  ended, the total (0 before). Rate limited like exec_map()'s. */
    exec_progress_fn *progress;
    void *progress_data;
    /** Least time between progress calls; 0 = 100 ms. */
    uint32_t progress_interval_ms;
    /** Must be zero. */
    uint32_t reserved[6];
    /* -- written by exec_map_stream() on return (also when it fails) -- */
    /** Items produced (and handed to workers). */
    size_t items;
    /** Items that failed (non-zero status), as in exec_map_opts_t. */
    size_t failed;
    /** Index of the first failed item; items when none failed. */
    size_t first_failed;
} exec_stream_opts_t;

/**
 * exec_map_stream() - run @fn over items from @produce, handing results to @consume, with at
 * most a window of items in memory (Python's Executor.map(buffersize=...)).
 * @ex:        the executor; borrowed.
 * @fn:        the task, called once per item as in exec_map().
 * @in_size:   item size, 1..max_arg_size.
 * @out_size:  result size, 0..max_result_size.
 * @produce:   called on the calling thread whenever the window has room for a chunk; see
 *             exec_producer_fn.
 * @consume:   called on the calling thread with batches of results, each result once, in
 *             input order (or completion order with EXEC_STREAM_UNORDERED, where a batch is
 *             a chunk); see exec_consumer_fn.
 * @user_data: passed to @produce and @consume.
 * @opts:      options or NULL; its output fields are written.
 * Blocks until the input ended and every result was consumed (inside a worker of @ex it runs
 * queued work while waiting). Same task signature, chunking, per-item statuses and failure
 * semantics as exec_map(); allocates its window once, nothing per item. Items count in
 * exec_stats_t.map_items. A cancelling exec_shutdown() fails the items not started (they
 * reach @consume as EXEC_ECANCELLED); a plain one lets the items produced so far finish and
 * refuses new ones (they reach @consume as EXEC_ESHUTDOWN).
 * Return: EXEC_OK; EXEC_ETASK when an item returned non-zero; the gravest code of items
 *         that failed otherwise (as exec_map()); EXEC_ECANCELLED (the consumer stopped, or a
 *         cancelling shutdown); EXEC_ESHUTDOWN; the producer's negative value; EXEC_EINVAL
 *         (NULL @ex, @fn, @produce or @consume; @in_size 0; unknown flags; reserved not
 *         zero; a window too large to address); EXEC_ETOOBIG; EXEC_ENOMEM; EXEC_ENOTSUP (a
 *         backend without maps); EXEC_EDEADLK (processes: from a done-callback).
 * Thread-safety: any thread; several maps may run at once. @produce and @consume are never
 * called concurrently with each other.
 */
EXEC_API int exec_map_stream(exec_t *ex, exec_task_fn *fn, size_t in_size, size_t out_size,
                             exec_producer_fn *produce, exec_consumer_fn *consume,
                             void *user_data, exec_stream_opts_t *opts);

/* ------------------------------------------------------------------------------------------ */
/* Futures                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** exec_state_t - where a task is. The last three are terminal: a future enters exactly one. */
typedef enum exec_state {
    EXEC_STATE_QUEUED = 0,    /* waiting for a worker */
    EXEC_STATE_RUNNING = 1,   /* a worker runs it */
    EXEC_STATE_DONE = 2,      /* finished with status 0; the result is available */
    EXEC_STATE_FAILED = 3,    /* task error, crash or timeout; see exec_future_fault() */
    EXEC_STATE_CANCELLED = 4, /* cancelled; it never ran or its result was discarded */
} exec_state_t;

/** Wait without a time limit. */
#define EXEC_WAIT_FOREVER (-1)

/**
 * exec_cause_t - what a failure came from, beyond its code (exec_fault_t.cause). A cause is
 * set only when it happened; 0 when the code says it all.
 */
typedef enum exec_cause {
    EXEC_CAUSE_NONE = 0,        /* nothing more to say */
    EXEC_CAUSE_INITIALIZER = 1, /* EXEC_EBROKEN: the initializer failed in a worker; how: in
                                   task_status, exit_status or signal (see initializer) */
    EXEC_CAUSE_CRASH_LOOP = 2,  /* EXEC_EBROKEN: crash_limit crashes within crash_window_ms */
    EXEC_CAUSE_ZYGOTE = 3,      /* EXEC_EBROKEN: the zygote (forkserver) died */
    EXEC_CAUSE_THREAD_EXIT = 4, /* EXEC_ECRASHED on threads: the task ended its worker thread
                                   (pthread_exit(), or pthread_cancel() by anyone) */
    EXEC_CAUSE_SPAWN = 5,       /* EXEC_ESYS: no worker could be started (sys_errno says why) */
} exec_cause_t;

/**
 * exec_fault_t - why a future failed. Plain data, filled by exec_future_fault().
 */
typedef struct exec_fault {
    int code;         /* EXEC_OK, EXEC_ETASK, EXEC_ETIMEDOUT, EXEC_ECRASHED, EXEC_ECANCELLED... */
    int task_status;  /* the task's non-zero return for EXEC_ETASK (the initializer's for
                         EXEC_CAUSE_INITIALIZER), else 0 */
    int sys_errno;    /* errno for EXEC_ESYS, else 0 */
    int signal;       /* signal that killed the worker (EXEC_ECRASHED, timeouts, a broken
                         pool's initializer), else 0 */
    int exit_status;  /* exit status of a worker that exited (EXEC_ECRASHED, a broken pool's
                         initializer), else -1 */
    int worker_pid;   /* pid of the worker process that ran it; 0 on threads */
    int worker_id;    /* index of the worker slot that ran it; -1 if it never ran */
    int cause;        /* an exec_cause_t: what the failure came from; EXEC_CAUSE_NONE else */
    int rank;         /* MPI backend: the rank that ran it (>= 1); 0 on the others */
    int reserved[3];
} exec_fault_t;

/**
 * exec_future_wait() - wait until @f reaches a terminal state or @timeout_ms passes.
 * @f:          borrowed.
 * @timeout_ms: 0 polls; EXEC_WAIT_FOREVER blocks; other negatives are invalid.
 * Inside a thread worker of the same executor, the wait runs queued tasks meanwhile, so a
 * task may wait on tasks it submitted without deadlocking the pool.
 * Return: EXEC_OK (terminal; look at the result or fault); EXEC_ETIMEDOUT; EXEC_EINVAL;
 *         EXEC_ESHUTDOWN (in a fork()ed child, for a future the child can never see end).
 * Thread-safety: any thread; many waiters allowed.
 */
EXEC_API int exec_future_wait(exec_future_t *f, int timeout_ms);

/**
 * exec_future_wait_any() - wait until at least one of @fs is terminal.
 * @fs: array of @n futures, borrowed; NULL entries are invalid. @n >= 1 (and <= INT_MAX).
 * @timeout_ms: as exec_future_wait(). Inside a thread worker it runs queued tasks meanwhile.
 * Return: the index (>= 0) of the lowest-indexed terminal future; EXEC_ETIMEDOUT;
 *         EXEC_EINVAL; EXEC_ENOMEM (no memory for the wait: the first wait-any or
 *         done-callback on a future gives it a small block, kept until it is freed);
 *         EXEC_ESHUTDOWN (in a fork()ed child, see the end of this header).
 * Thread-safety: any thread.
 */
EXEC_API int exec_future_wait_any(exec_future_t *const *fs, size_t n, int timeout_ms);

/**
 * exec_future_wait_all() - wait until every one of @fs is terminal (the timeout covers all).
 * @fs, @n, @timeout_ms: as exec_future_wait_any().
 * Return: EXEC_OK; EXEC_ETIMEDOUT; EXEC_EINVAL; EXEC_ESHUTDOWN (fork()ed child).
 * Thread-safety: any thread.
 */
EXEC_API int exec_future_wait_all(exec_future_t *const *fs, size_t n, int timeout_ms);

/**
 * exec_future_state() - the future's state now.
 * Return: an exec_state_t (>= 0), or EXEC_EINVAL for NULL. Thread-safety: any thread.
 */
EXEC_API int exec_future_state(const exec_future_t *f);

/**
 * exec_future_result() - the outcome of a terminal future and its result bytes.
 * @f:    borrowed.
 * @data: out, may be NULL: the result bytes, owned by @f (valid until its last release),
 *        aligned for any type; NULL when the size is 0. For a terminal future that failed
 *        it is written too: NULL (the exception to "written on success only").
 * @size: out, may be NULL: the number of result bytes (0 for a failed task).
 * Return: EXEC_OK (the task returned 0); for a failed future its fault code: EXEC_ETASK,
 *         EXEC_ETIMEDOUT, EXEC_ECRASHED, EXEC_ECANCELLED, EXEC_ETOOBIG (result larger than
 *         max_result_size), EXEC_ENOMEM, EXEC_EBROKEN (see exec_future_fault()); EXEC_EAGAIN
 *         when @f is not terminal yet (nothing written); EXEC_EINVAL.
 * Thread-safety: any thread.
 */
EXEC_API int exec_future_result(const exec_future_t *f, const void **data, size_t *size);

/**
 * exec_future_fault() - detail of how @f ended.
 * @fault: out: filled. For a success: code EXEC_OK; task_status, sys_errno, signal 0;
 *         exit_status -1; worker_pid the worker process (0 on threads); worker_id the slot.
 * Return: EXEC_OK; EXEC_EAGAIN when @f is not terminal yet; EXEC_EINVAL.
 * Thread-safety: any thread.
 */
EXEC_API int exec_future_fault(const exec_future_t *f, exec_fault_t *fault);

/** Flags of exec_future_cancel(). */
#define EXEC_CANCEL_RUNNING 1u /* also cancel a running task (see below) */

/**
 * exec_future_cancel() - cancel a task.
 * @flags: 0 cancels only a task still queued (other bits: EXEC_EINVAL). EXEC_CANCEL_RUNNING
 *         also cancels a running task: on processes its worker is killed and replaced; on
 *         threads the future ends at once and the task's stop flag is set (it keeps its
 *         thread until it returns).
 * The future ends EXEC_STATE_CANCELLED (callbacks run) if this returns EXEC_OK.
 * Return: EXEC_OK; EXEC_EBUSY (already running without the flag; already terminal; or,
 *         on processes, already finished with its result on the way: it ends DONE or
 *         FAILED as it ran); EXEC_EINVAL.
 * Thread-safety: any thread; races with completion end in exactly one terminal state.
 */
EXEC_API int exec_future_cancel(exec_future_t *f, unsigned flags);

/**
 * exec_future_on_done() - call @cb once when @f reaches a terminal state.
 * If @f is already terminal, @cb runs now, in this thread, before this returns (after any
 * earlier callbacks still running in the finishing thread have returned). Several callbacks
 * may be added; they run in the order added. A future's counters (exec_stats) are updated
 * before it becomes terminal; waiters may wake before its callbacks have run.
 * Return: EXEC_OK; EXEC_EINVAL (NULL @f or @cb); EXEC_ENOMEM (the callback will never run).
 * Thread-safety: any thread.
 */
EXEC_API int exec_future_on_done(exec_future_t *f, exec_done_fn *cb, void *user_data);

/**
 * exec_future_retain() - take another reference to @f.
 * Return: @f (NULL for NULL). Thread-safety: any thread.
 */
EXEC_API exec_future_t *exec_future_retain(exec_future_t *f);

/**
 * exec_future_release() - drop a reference; the last one frees the future and its result.
 * @f: the future or NULL. A task still queued or running is not cancelled by this.
 * Thread-safety: any thread; also from inside its own done-callback (for a reference the
 * caller owns).
 */
EXEC_API void exec_future_release(exec_future_t *f);

/* ------------------------------------------------------------------------------------------ */
/* Completion queues                                                                           */
/* ------------------------------------------------------------------------------------------ */

/**
 * exec_cq_create() - make a completion queue: futures added to it come out of
 * exec_cq_pop() in the order they finish, and exec_cq_fd() is readable while one is ready.
 * @cq: out: the queue.
 * Return: EXEC_OK; EXEC_EINVAL; EXEC_ENOMEM; EXEC_ESYS (no fd).
 * Thread-safety: any thread.
 */
EXEC_API int exec_cq_create(exec_cq_t **cq);

/**
 * exec_cq_destroy() - free a completion queue.
 * Futures still inside are released; futures added but not finished are dropped from it
 * when they finish. NULL is accepted.
 * Thread-safety: must not race with exec_cq_pop() on @cq.
 */
EXEC_API void exec_cq_destroy(exec_cq_t *cq);

/**
 * exec_cq_add() - route @f into @cq when it finishes (at once if it already has).
 * @f: borrowed; the queue takes its own reference, which exec_cq_pop() hands over.
 * A future can be in one queue only.
 * Return: EXEC_OK; EXEC_EINVAL (NULL, or @f already routed); EXEC_ENOMEM.
 * Thread-safety: any thread.
 */
EXEC_API int exec_cq_add(exec_cq_t *cq, exec_future_t *f);

/**
 * exec_cq_pop() - take the next finished future.
 * @timeout_ms: 0 polls, EXEC_WAIT_FOREVER blocks.
 * @f:          out: a reference the caller now owns (release it).
 * Return: EXEC_OK; EXEC_ETIMEDOUT (nothing finished in time); EXEC_EINVAL.
 * Thread-safety: any thread; several poppers allowed.
 */
EXEC_API int exec_cq_pop(exec_cq_t *cq, int timeout_ms, exec_future_t **f);

/**
 * exec_cq_fd() - a file descriptor for poll/epoll/select: readable (level-triggered)
 * while at least one finished future waits in @cq. Owned by @cq; do not read or close it.
 * It is close-on-exec.
 * Return: the fd (>= 0); EXEC_EINVAL.
 * Thread-safety: any thread.
 */
EXEC_API int exec_cq_fd(const exec_cq_t *cq);

/* ------------------------------------------------------------------------------------------ */
/* Shared-memory buffers                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * A shared-memory buffer holds big data once for every worker, thread or process: the
 * parent fills it, tasks receive a small exec_shm_ref_t in their argument bytes and map the
 * same bytes with exec_shm_map(). Named buffers appear as /dev/shm/<name>; anonymous ones
 * (memfd) never appear anywhere and are reachable only through a ref.
 *
 * Ownership: only the creator unlinks. A process that created non-persistent named buffers
 * has them removed when it exits, even by SIGKILL: while it has any, one small guardian
 * child process and one close-on-exec fd exist for that (both go with the last such name).
 * Attaching, closing or exiting never removes a buffer someone else created.
 */

/** exec_shm_t - a mapping of a shared-memory buffer in this process. Opaque. */
typedef struct exec_shm exec_shm_t;

/** Longest name, without the terminating NUL. Names match [A-Za-z0-9._-]+ and do not start
 *  with '.'; the library adds no prefix ("exec-" is the prefix of generated names). */
#define EXEC_SHM_NAME_MAX 63

/** Flags of exec_shm_create() and exec_shm_attach(). */
#define EXEC_SHM_ANONYMOUS 1u  /* create: no name (memfd); share it by exec_shm_ref() only */
#define EXEC_SHM_PERSISTENT 2u /* create: keep the name after this process exits */
#define EXEC_SHM_RDONLY 4u     /* attach/map: map read-only (writes fault with SIGSEGV) */

/**
 * exec_shm_ref_t - a handle that travels inside a task's argument bytes. Plain data, 128
 * bytes; filled by exec_shm_ref(), consumed by exec_shm_map().
 */
typedef struct exec_shm_ref {
    char name[EXEC_SHM_NAME_MAX + 1]; /* named buffer; "" for an anonymous one */
    uint64_t size;                    /* bytes */
    int32_t owner_pid;                /* anonymous: the creating process */
    int32_t owner_fd;                 /* anonymous: its memfd in that process */
    uint64_t id;                      /* unique per buffer, keys the workers' map cache */
    uint64_t reserved[5];
} exec_shm_ref_t;

/**
 * exec_shm_create() - create a buffer of @size bytes and map it read-write.
 * @shm:   out: the new mapping.
 * @name:  the name, or NULL for a generated unique one ("exec-<pid>-<n>"); ignored (must be
 *         NULL) with EXEC_SHM_ANONYMOUS.
 * @size:  bytes, >= 1. The space is reserved now (a full /dev/shm fails here with
 *         EXEC_ENOMEM, never with SIGBUS later). Contents start zeroed.
 * @flags: EXEC_SHM_ANONYMOUS, EXEC_SHM_PERSISTENT (not both).
 * Named buffers are created with mode 0600. The reservation allocates the pages now (about
 * 0.25 s per GiB on a small VM), so later first touches only map them.
 * Return: EXEC_OK; EXEC_EINVAL (bad name, size 0, unknown flags, name with ANONYMOUS,
 *         ANONYMOUS with PERSISTENT); EXEC_EBUSY (the name exists); EXEC_ENOMEM (no space or
 *         memory); EXEC_ETOOBIG (@size overflows the address space); EXEC_ENOTSUP (no memfd
 *         on this kernel, for ANONYMOUS); EXEC_ESYS.
 * Thread-safety: any thread.
 */
EXEC_API int exec_shm_create(exec_shm_t **shm, const char *name, size_t size, unsigned flags);

/**
 * exec_shm_attach() - map an existing named buffer (whole size).
 * @flags: 0 for read-write, EXEC_SHM_RDONLY.
 * Return: EXEC_OK; EXEC_EINVAL (bad name or flags); EXEC_ESYS with no such name (ENOENT) or
 *         no permission; EXEC_ENOMEM.
 * Thread-safety: any thread.
 */
EXEC_API int exec_shm_attach(exec_shm_t **shm, const char *name, unsigned flags);

/** exec_shm_ptr() - first byte of the mapping (page aligned); NULL for NULL. */
EXEC_API void *exec_shm_ptr(const exec_shm_t *shm);
/** exec_shm_size() - size in bytes; 0 for NULL. */
EXEC_API size_t exec_shm_size(const exec_shm_t *shm);
/** exec_shm_name() - the name ("" when anonymous, NULL for NULL); owned by @shm. */
EXEC_API const char *exec_shm_name(const exec_shm_t *shm);

/**
 * exec_shm_ref() - describe @shm in a handle a task can map (by name, or by the creator's
 * memfd for an anonymous buffer, which stays mappable while the creator keeps it open).
 * Return: EXEC_OK; EXEC_EINVAL. Thread-safety: any thread.
 */
EXEC_API int exec_shm_ref(const exec_shm_t *shm, exec_shm_ref_t *ref);

/**
 * exec_shm_map() - map the buffer a handle names, from inside a task (or anywhere).
 * In the creating process (thread backend) a read-write map returns the creator's own
 * mapping, valid until exec_shm_close(). Elsewhere the mapping is cached per buffer id and
 * reused by later tasks: valid at least until the running task returns; when it runs out of
 * queued work a worker drops mappings of buffers that are gone (unlinked, or anonymous and
 * closed by their creator), others stay until the worker exits. With EXEC_SHM_RDONLY it is always a
 * read-only mapping (cached), also in the creating process. Anonymous refs are opened
 * through /proc/<pid>/fd, so the worker must run as the owner's user.
 * On EXEC_BACKEND_MPI, for a buffer rank 0 created: a task on a rank of rank 0's host maps
 * it as above. A task on another host gets a read-only copy: the rank fetches it from rank
 * 0 once (its first map; rank 0's communication thread sends it, at most 2 GiB - 1) and
 * keeps it, for all its tasks and local workers, until rank 0 closes the buffer or destroys
 * the executor; a read-write map there is refused with EXEC_ENOTSUP (writes would reach no
 * other rank). Such a rank maps only rank 0's buffers by ref (EXEC_ESYS once rank 0 closed
 * or unlinked it; EXEC_ESHUTDOWN when the executor ends during the fetch).
 * @ref:   borrowed. @flags: 0 or EXEC_SHM_RDONLY.
 * @ptr, @size: out: the mapping (do not unmap it).
 * Return: EXEC_OK; EXEC_EINVAL; EXEC_ESYS (gone, no permission); EXEC_ENOMEM;
 *         EXEC_ENOTSUP (read-write, on an MPI rank of another host); EXEC_ETOOBIG (MPI,
 *         another host: the buffer is 2 GiB or more).
 * Thread-safety: any thread.
 */
EXEC_API int exec_shm_map(const exec_shm_ref_t *ref, unsigned flags, void **ptr, size_t *size);

/**
 * exec_shm_unlink() - remove the buffer's name now (creator only). Existing mappings stay
 * valid; new attaches fail. Anonymous buffers have no name: EXEC_OK, nothing done.
 * Calling it again returns EXEC_OK.
 * Return: EXEC_OK; EXEC_EINVAL (NULL); EXEC_EBUSY (not the creator, including a handle
 *         inherited by a fork() child: only the creator unlinks); EXEC_ESYS.
 * Thread-safety: any thread.
 */
EXEC_API int exec_shm_unlink(exec_shm_t *shm);

/**
 * exec_shm_close() - unmap and free @shm. A non-persistent buffer created by this process
 * is unlinked too (a persistent one keeps its name); a handle inherited through fork() is
 * only unmapped. Closing also drops this process's exec_shm_map() mappings of the buffer.
 * NULL is accepted.
 * Return: EXEC_OK; EXEC_ESYS (the unmap failed; @shm is freed anyway).
 * Thread-safety: must not race with other uses of @shm.
 */
EXEC_API int exec_shm_close(exec_shm_t *shm);

/* ------------------------------------------------------------------------------------------ */
/* Statistics and sizing                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** exec_stats_t - a snapshot of an executor's counters. Plain data. */
typedef struct exec_stats {
    uint64_t submitted;       /* tasks accepted by exec_submit*() */
    uint64_t queued;          /* now waiting for a worker */
    uint64_t running;         /* now running */
    uint64_t completed;       /* ended EXEC_STATE_DONE */
    uint64_t failed;          /* ended EXEC_STATE_FAILED (includes timed_out and crashed) */
    uint64_t cancelled;       /* ended EXEC_STATE_CANCELLED */
    uint64_t timed_out;       /* failed by their deadline */
    uint64_t crashed;         /* failed because their worker died */
    uint64_t map_items;       /* items processed by exec_map*() */
    uint64_t workers_alive;   /* workers now running (processes: may briefly exceed
                                 workers while a replacement starts) */
    uint64_t workers_retired; /* workers replaced, all reasons */
    uint64_t retired_tasks;   /* ... for max_tasks_per_child */
    uint64_t retired_memory;  /* ... for max_rss_per_child */
    uint64_t retired_age;     /* ... for max_age_ms */
    uint64_t retired_timeout; /* ... killed at a deadline or by EXEC_CANCEL_RUNNING */
    uint64_t retired_crash;   /* ... died on their own */
    uint64_t reserved[8];
} exec_stats_t;

/**
 * exec_stats() - read the counters.
 * Counters are read one by one without stopping the pool: each is exact, the set is not a
 * single atomic snapshot while tasks run, and a counter may lag a moment behind the futures
 * (a worker counts its retirement after it ended the future of its last task).
 * Return: EXEC_OK; EXEC_EINVAL. Thread-safety: any thread.
 */
EXEC_API int exec_stats(exec_t *ex, exec_stats_t *st);

/** exec_limit_t - which limit chose the default worker count. */
typedef enum exec_limit {
    EXEC_LIMIT_ONLINE = 0,   /* the number of online CPUs */
    EXEC_LIMIT_AFFINITY = 1, /* the CPU affinity mask of the process */
    EXEC_LIMIT_CGROUP = 2,   /* the cgroup CPU quota (v2 cpu.max or v1 cfs quota/period) */
    EXEC_LIMIT_ENV = 3,      /* the EXEC_WORKERS environment variable */
} exec_limit_t;

/** exec_cpu_budget_t - the default worker count and the limits it came from. */
typedef struct exec_cpu_budget {
    int workers;        /* the default worker count, >= 1 */
    exec_limit_t limit; /* which limit chose it */
    int online;         /* online CPUs */
    int affinity;       /* CPUs in the affinity mask (online if unknown) */
    int cgroup;         /* quota / period rounded up; 0 when there is no quota */
    int env;            /* EXEC_WORKERS value; 0 when unset or invalid */
    int reserved[4];
} exec_cpu_budget_t;

/**
 * exec_cpu_budget() - compute the default worker count.
 * EXEC_WORKERS (an integer 1..EXEC_WORKERS_MAX) wins if set; otherwise the smallest of the
 * affinity set, the cgroup CPU quota rounded up, and the online CPUs.
 * @cgroup_dir: NULL to read this process's cgroup (from /proc/self/cgroup, the quota of
 *              every ancestor counting); or a directory holding cpu.max (v2) or
 *              cpu.cfs_quota_us and cpu.cfs_period_us (v1), read as this process's cgroup
 *              (for tests and containers with unusual mounts).
 * @b:          out.
 * Return: EXEC_OK; EXEC_EINVAL (NULL @b). Unreadable cgroup files mean "no quota".
 * Thread-safety: any thread.
 */
EXEC_API int exec_cpu_budget(const char *cgroup_dir, exec_cpu_budget_t *b);

/*
 * fork() and the library. An executor belongs to the process that created it. In a child
 * made by fork() while executors exist, the child may: read and release futures (terminal
 * ones keep their results), call exec_destroy() on inherited executors (it frees the
 * child's copy without touching the parent's workers) and create new executors.
 * exec_submit*() and exec_map*() on an inherited executor return EXEC_ESHUTDOWN, and
 * exec_future_wait*() on a future that was not terminal at the fork returns EXEC_ESHUTDOWN
 * instead of blocking forever.
 *
 * Signals. The library installs no signal handler and never changes the disposition of
 * SIGCHLD or any other signal. Its threads (workers, timers) block every asynchronous
 * signal, so the application's handlers run in the application's own threads.
 */

#ifdef __cplusplus
}
#endif

#endif /* EXECUTOR_H */
