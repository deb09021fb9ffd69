/* SPDX-License-Identifier: MIT */
/*
 * core/registry.c - which backends this build has. The only place in the core that names a
 * backend: one line per backend folder (docs/internals.md, "How to add a backend").
 */
#include "core/backend.h"

extern const struct exec__backend_ops exec__thread_ops;
extern const struct exec__backend_ops exec__process_ops;

const struct exec__backend_ops *exec__backend_find(exec_backend_t b)
{
    switch (b) {
    case EXEC_BACKEND_THREADS:
        return &exec__thread_ops;
    case EXEC_BACKEND_PROCESSES:
        return &exec__process_ops;
    }
    return NULL;
}
