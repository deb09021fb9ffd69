/* SPDX-License-Identifier: MIT */
/*
 * test_seam.c - the seam between the core and a backend (src/core/backend.h,
 * docs/internals.md). A third backend written here against core/backend.h alone, "inline"
 * (it runs each task at once on the submitting thread), drives the whole public API through
 * the core: that is what "a backend is one folder behind a versioned operations table"
 * promises. The core reads operations by version and refuses tables it cannot drive.
 *
 * Needs the test build of the library (exec__test_backend_set() stands the table in for
 * every backend).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "harness.h"
#include "tasks.h"

/* ---------------------------------------------------------------------------------------- */
/* The inline backend                                                                        */
/* ---------------------------------------------------------------------------------------- */

struct inl {
    struct exec *core;
    _Atomic uint64_t submitted;
    _Atomic bool shut;
};

static int checked_configs;

static int inl_check_config(exec_config_t *cfg)
{
    checked_configs++;
    if (cfg->max_tasks_per_child)
        return EXEC_EINVAL; /* this backend does not recycle */
    return EXEC_OK;
}

static int inl_create(struct exec *core, void **impl)
{
    struct inl *b = calloc(1, sizeof *b);
    if (!b)
        return EXEC_ENOMEM;
    b->core = core;
    *impl = b;
    return EXEC_OK;
}

static int inl_submit(void *impl, struct exec_future *f, const void *arg, uint32_t flags)
{
    (void)flags;
    struct inl *b = impl;
    if (atomic_load(&b->shut))
        return EXEC_ESHUTDOWN;
    unsigned char out[64];
    size_t n = 0;
    int st = f->fn(arg, f->arg_size, out, sizeof out, &n);
    atomic_fetch_add(&b->submitted, 1);
    if (exec__future_claim(f, 1u << EXEC_STATE_QUEUED)) {
        f->fault.code = st ? EXEC_ETASK : EXEC_OK;
        f->fault.task_status = st;
        if (!st && exec__future_set_result(f, out, n) != 0)
            f->fault.code = EXEC_ENOMEM;
        exec__future_finish(f, f->fault.code ? EXEC_STATE_FAILED : EXEC_STATE_DONE);
    }
    exec_future_release(f); /* the backend's reference */
    return EXEC_OK;
}

static int inl_cancel(void *impl, struct exec_future *f, unsigned flags)
{
    (void)impl, (void)f, (void)flags;
    return EXEC_EBUSY; /* every task ended inside submit */
}

static int inl_shutdown(void *impl, unsigned flags)
{
    (void)flags;
    atomic_store(&((struct inl *)impl)->shut, true);
    return EXEC_OK;
}

static void inl_stats(void *impl, exec_stats_t *st)
{
    st->submitted = atomic_load(&((struct inl *)impl)->submitted);
}

static void inl_destroy(void *impl)
{
    free(impl);
}

static const struct exec__backend_ops inline_ops = {
    .version = 1,
    .name = "inline",
    .check_config = inl_check_config,
    .create = inl_create,
    .submit = inl_submit,
    .cancel = inl_cancel,
    .shutdown = inl_shutdown,
    .stats = inl_stats,
    .destroy = inl_destroy,
};

static exec_t *create_with(const struct exec__backend_ops *ops, int *r)
{
    exec__test_backend_set(ops);
    exec_config_t cfg = {0};
    cfg.workers = 1;
    exec_t *ex = NULL;
    *r = exec_create(&ex, &cfg);
    exec__test_backend_set(NULL);
    return ex;
}

/* The core drives a backend it has never seen: submit, futures, callbacks, stats, shutdown;
 * what the table does not offer (exec_map) is EXEC_ENOTSUP, not a crash. */
TEST(seam_third_backend)
{
    checked_configs = 0;
    int r;
    exec_t *ex = create_with(&inline_ops, &r);
    ASSERT_OK(r);
    ASSERT_EQ(checked_configs, 1);
    for (int64_t i = 0; i < 100; i++) {
        exec_future_t *f = NULL;
        ASSERT_OK(exec_submit(ex, task_triple_submit, &i, sizeof i, &f));
        ASSERT_EQ(wait_i64(f), 3 * i + 1);
        ASSERT_ERR(exec_future_cancel(f, 0), EXEC_EBUSY);
        exec_future_release(f);
    }
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    ASSERT_ERR(exec_map(ex, task_triple, in, sizeof in[0], out, sizeof out[0], 4, NULL),
               EXEC_ENOTSUP);
    exec_stats_t st;
    ASSERT_OK(exec_stats(ex, &st));
    ASSERT_EQ(st.submitted, 100);
    ASSERT_EQ(st.completed, 100);
    ASSERT_OK(exec_shutdown(ex, 0));
    int64_t one = 1;
    ASSERT_ERR(exec_submit(ex, task_triple_submit, &one, sizeof one, NULL), EXEC_ESHUTDOWN);
    ASSERT_OK(exec_destroy(ex));
}

/* The backend's check_config decides on its own fields: the front does not know them. */
TEST(seam_backend_checks_its_config)
{
    exec__test_backend_set(&inline_ops);
    exec_config_t cfg = {0};
    cfg.max_tasks_per_child = 3;
    exec_t *ex = NULL;
    ASSERT_ERR(exec_create(&ex, &cfg), EXEC_EINVAL);
    ASSERT_NULL(ex);
    exec__test_backend_set(NULL);
}

/* A table the core cannot drive is refused at exec_create(): a version newer than the core
 * knows, or a required operation missing. */
TEST(seam_refuses_bad_tables)
{
    struct exec__backend_ops newer = inline_ops;
    newer.version = EXEC__OPS_VERSION + 1;
    struct exec__backend_ops zero = inline_ops;
    zero.version = 0;
    struct exec__backend_ops no_submit = inline_ops;
    no_submit.submit = NULL;
    struct exec__backend_ops no_check = inline_ops;
    no_check.check_config = NULL;
    const struct exec__backend_ops *bad[] = {&newer, &zero, &no_submit, &no_check};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r;
        exec_t *ex = create_with(bad[i], &r);
        ASSERT_ERR(r, EXEC_ENOTSUP);
        ASSERT_NULL(ex);
    }
}
