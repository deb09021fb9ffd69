/* SPDX-License-Identifier: MIT */
/*
 * test_header.c - include/executor.h stands alone: it compiles by itself as strict C11 and
 * as C++, its version macros agree with the library, and every error code has a name and a
 * message (unknown codes too).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "tasks.h"

#ifndef EXEC_SRC_DIR
#error "EXEC_SRC_DIR (the source directory) is defined by the Makefile"
#endif

static bool have_tool(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Compiles a file that only includes executor.h, with @compiler and @flags; fails the test
 * if the compiler does not accept it. */
static void compile_header_alone(const char *compiler, const char *flags, const char *ext)
{
    const char *dir = test_tmpdir();
    char src[512], cmd[2048];
    snprintf(src, sizeof src, "%s/only_header.%s", dir, ext);
    FILE *f = fopen(src, "w");
    ASSERT_NOT_NULL(f);
    fputs("#include <executor.h>\n", f);
    ASSERT_EQ(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "%s %s -I'%s/include' -c -o '%s/only_header.o' '%s'", compiler,
             flags, EXEC_SRC_DIR, dir, src);
    fprintf(stderr, "# %s\n", cmd);
    int status = system(cmd);
    if (status != 0)
        TEST_FAIL("%s rejects executor.h on its own (status %d): %s", compiler, status, cmd);
}

#define C_FLAGS                                                                            \
    "-std=c11 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes "               \
    "-Wmissing-prototypes -Wundef"
#define CXX_FLAGS "-std=c++11 -pedantic -Wall -Wextra -Werror -Wundef"

/* compile_header_alone() with @gnu (which must exist) and with @clang if it exists. */
static void compile_with_both(const char *gnu, const char *clang, const char *flags,
                              const char *ext, const char *lang)
{
    ASSERT_TRUE(have_tool(gnu));
    compile_header_alone(gnu, flags, ext);
    if (have_tool(clang))
        compile_header_alone(clang, flags, ext);
    else
        fprintf(stderr, "# %s not found: %s checked with %s only\n", clang, lang, gnu);
}

TEST(header_c11_alone)
{
    compile_with_both("gcc", "clang", C_FLAGS, "c", "C11");
}

TEST(header_cxx)
{
    compile_with_both("g++", "clang++", CXX_FLAGS, "cc", "C++");
}

TEST(header_version)
{
    check_version();
}

TEST(header_errors)
{
    static const struct {
        int code;
        const char *name;
        const char *message;
    } known[] = {
#define KNOWN(name, value, message) {value, "EXEC_" #name, message},
        EXEC_ERRNO_MAP(KNOWN)
#undef KNOWN
    };
    size_t n = sizeof known / sizeof known[0];
    ASSERT_GE(n, 2);
    ASSERT_EQ(known[0].code, EXEC_OK);
    for (size_t i = 0; i < n; i++) {
        int code = known[i].code;
        ASSERT_NOT_NULL(exec_errname(code));
        ASSERT_NOT_NULL(exec_strerror(code));
        ASSERT_STR_EQ(exec_errname(code), known[i].name);
        ASSERT_STR_EQ(exec_strerror(code), known[i].message);
        ASSERT_LE(code, 0); /* errors are negative; only EXEC_OK is 0 */
        for (size_t j = 0; j < i; j++)
            ASSERT_NE(code, known[j].code);
    }

    const int unknown[] = {INT_MIN, INT_MIN + 1, -999, 1, 2, 12345, INT_MAX,
                           known[n - 1].code - 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ASSERT_NOT_NULL(exec_errname(unknown[i]));
        ASSERT_NOT_NULL(exec_strerror(unknown[i]));
        ASSERT_STR_EQ(exec_errname(unknown[i]), "EXEC_EUNKNOWN");
        ASSERT_STR_EQ(exec_strerror(unknown[i]), "unknown error");
    }
}
