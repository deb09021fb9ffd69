/* SPDX-License-Identifier: MIT */
/*
 * base/compiler.h - the macros every part of libexecutor uses: branch hints, the cache-line
 * size, and the internal assertion (compiled only into debug and test builds). It knows no
 * executor and includes nothing of the project.
 */
#ifndef EXEC_BASE_COMPILER_H
#define EXEC_BASE_COMPILER_H

#include <stddef.h>

#if defined(EXEC_DEBUG)
#include <stdio.h>
#include <stdlib.h>
#define EXEC__ASSERT(c)                                                                  \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                     \
        }                                                                                \
    } while (0)
#else
#define EXEC__ASSERT(c) ((void)0)
#endif

#define EXEC__LIKELY(x) __builtin_expect(!!(x), 1)
#define EXEC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EXEC__CACHELINE 64

/* The struct that holds @ptr as its member @member. */
#define EXEC__CONTAINER_OF(ptr, type, member)                                             \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif /* EXEC_BASE_COMPILER_H */
