/* SPDX-License-Identifier: MIT */
/*
 * core/error.c - exec_strerror() and exec_errname(), both generated from EXEC_ERRNO_MAP so that a
 * code, its name and its message can never drift apart. Static strings only: these must be
 * callable from any thread, from signal-unsafe contexts and after an allocation failure.
 */
#include "core/core.h"

EXEC_API const char *exec_strerror(int err)
{
    switch (err) {
#define EXEC__ERR_MSG(name, value, msg) \
    case (value):                       \
        return msg;
        EXEC_ERRNO_MAP(EXEC__ERR_MSG)
#undef EXEC__ERR_MSG
    default:
        return "unknown error";
    }
}

EXEC_API const char *exec_errname(int err)
{
    switch (err) {
#define EXEC__ERR_NAME(name, value, msg) \
    case (value):                        \
        return "EXEC_" #name;
        EXEC_ERRNO_MAP(EXEC__ERR_NAME)
#undef EXEC__ERR_NAME
    default:
        return "EXEC_EUNKNOWN";
    }
}

EXEC_API unsigned exec_version(void)
{
    return EXEC_VERSION_NUMBER;
}
