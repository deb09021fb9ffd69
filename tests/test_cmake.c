/* SPDX-License-Identifier: MIT */
/*
 * test_cmake.c - the CMake package that `make install` writes, used as a consumer uses it.
 *
 *   tooling_cmake_package  make install into a DESTDIR stage (PREFIX=/usr/local); a CMake
 *                          project finds the package there through CMAKE_PREFIX_PATH and
 *                          links executor::executor, shared (default) and static
 *                          (-DEXECUTOR_USE_STATIC_LIBS=ON), and both programs run; asking
 *                          for 1.0 or 0.2 fails at configure time; the same program built
 *                          with pkg-config from the stage runs too; make uninstall removes
 *                          the package's folder.
 *
 * Like test_tooling.c it runs the repository's Makefile (EXEC_SRC_DIR) with the suite's
 * compiler (EXEC_TEST_CC) into a BUILD directory of its own. cmake is required: without it
 * the test fails (.ci/run installs it). The shared program runs through the RUNPATH that
 * CMake gives a build-tree executable (the stage's lib/ directory), without LD_LIBRARY_PATH;
 * the one built with pkg-config has no RUNPATH and runs with LD_LIBRARY_PATH.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "shell.h"
#include "tasks.h"

#if !defined(EXEC_SRC_DIR) || !defined(EXEC_TEST_CC)
#error "EXEC_SRC_DIR and EXEC_TEST_CC come from the Makefile"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)
#define SONAME "libexecutor.so." STR(EXEC_VERSION_MAJOR)
#define CMAKE_PREFIX "/usr/local"

static const char consumer_cmake[] = "cmake_minimum_required(VERSION 3.5)\n"
                                     "project(consumer C)\n"
                                     "set(CMAKE_C_STANDARD 11)\n"
                                     "find_package(executor 0.1 REQUIRED)\n"
                                     "file(WRITE \"${CMAKE_BINARY_DIR}/found\"\n"
                                     "     \"${executor_VERSION} ${executor_DIR}\\n\")\n"
                                     "add_executable(app main.c)\n"
                                     "target_link_libraries(app PRIVATE executor::executor)\n";

static const char version_cmake[] = "cmake_minimum_required(VERSION 3.5)\n"
                                    "project(version NONE)\n"
                                    "find_package(executor ${WANT} REQUIRED)\n";

/* The consumer's source: the same program the install test builds with pkg-config. */
#define CONSUMER EXEC_SRC_DIR "/tests/tooling/consumer.c"

/* Runs program @bin (LD_LIBRARY_PATH=@libpath, or none) and checks what it prints. */
static void run_consumer(const char *log, const char *dir, const char *bin, const char *libpath)
{
    char cmd[4096], path[4096], text[256], want[64];
    if (libpath != NULL)
        fmt(cmd, "LD_LIBRARY_PATH='%s' '%s' > '%s/out'", libpath, bin, dir);
    else
        fmt(cmd, "env -u LD_LIBRARY_PATH '%s' > '%s/out'", bin, dir);
    SH_OK(log, cmd);
    snprintf(want, sizeof want, "version %d\nsquare 49\n", EXEC_VERSION_NUMBER);
    ASSERT_STR_EQ(read_file(fmt(path, "%s/out", dir), text, sizeof text), want);
}

/* readelf -d of @bin, in @buf. */
static char *dynamic_section(const char *log, const char *dir, const char *bin, char *buf,
                             size_t cap)
{
    char cmd[4096], path[4096];
    SH_OK(log, fmt(cmd, "readelf -d '%s' > '%s/dyn'", bin, dir));
    return read_file(fmt(path, "%s/dyn", dir), buf, cap);
}

/* Configures and builds the consumer @dir/app in @dir/@name against the tree @root, with
 * the cmake options @defs. */
static void cmake_build(const char *log, const char *dir, const char *root, const char *name,
                        const char *defs)
{
    char cmd[4096];
    SH_OK(log, fmt(cmd,
                   "cmake -S '%s/app' -B '%s/%s' -DCMAKE_C_COMPILER='%s' "
                   "-DCMAKE_PREFIX_PATH='%s' %s && cmake --build '%s/%s'",
                   dir, dir, name, EXEC_TEST_CC, root, defs, dir, name));
}

TEST(tooling_cmake_package)
{
    static const char *make_vars[] = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                                      "MAKE_TERMOUT", "MAKE_TERMERR", "GNUMAKEFLAGS"};
    for (size_t i = 0; i < sizeof make_vars / sizeof make_vars[0]; i++)
        unsetenv(make_vars[i]); /* the make and cmake started here are not the outer make's */
    const char *dir = test_tmpdir();
    char log[4096], cmd[4096], path[4096], root[4096], bin[4096], want[4096], text[8192];
    fmt(log, "%s/log", dir);
    fmt(root, "%s/stage" CMAKE_PREFIX, dir);

    if (sh(log, "command -v cmake") != 0)
        TEST_FAIL("cmake is required for the CMake package test and is not in PATH "
                  "(install it, e.g. apt-get install cmake; .ci/run does)");

    SH_OK(log, fmt(cmd,
                   "make -C '%s' --no-print-directory CC='%s' -j2 BUILD='%s/build' "
                   "PREFIX=" CMAKE_PREFIX " DESTDIR='%s/stage' install",
                   EXEC_SRC_DIR, EXEC_TEST_CC, dir, dir));
    fmt(path, "%s/app", dir);
    if (mkdir(path, 0700) != 0)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
    write_file(fmt(path, "%s/app/CMakeLists.txt", dir), consumer_cmake);
    SH_OK(log, fmt(cmd, "cp '%s' '%s/app/main.c'", CONSUMER, dir));

    /* Shared by default: found in the stage, NEEDED the soname, runs through its RUNPATH. */
    cmake_build(log, dir, root, "shared", "");
    fmt(want, "%s %s/lib/cmake/executor\n", EXEC_VERSION_STRING, root);
    ASSERT_STR_EQ(read_file(fmt(path, "%s/shared/found", dir), text, sizeof text), want);
    dynamic_section(log, dir, fmt(bin, "%s/shared/app", dir), text, sizeof text);
    ASSERT_TRUE(strstr(text, "[" SONAME "]") != NULL);
    ASSERT_TRUE(strstr(text, fmt(path, "[%s/lib]", root)) != NULL);
    run_consumer(log, dir, bin, NULL);

    /* Static on request: no libexecutor.so needed. */
    cmake_build(log, dir, root, "static", "-DEXECUTOR_USE_STATIC_LIBS=ON");
    dynamic_section(log, dir, fmt(bin, "%s/static/app", dir), text, sizeof text);
    ASSERT_TRUE(strstr(text, "(NEEDED)") != NULL);
    ASSERT_TRUE(strstr(text, "libexecutor") == NULL);
    run_consumer(log, dir, bin, NULL);

    /* Another major version, or a newer minor one, is refused at configure time. */
    fmt(path, "%s/version", dir);
    if (mkdir(path, 0700) != 0)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
    write_file(fmt(path, "%s/version/CMakeLists.txt", dir), version_cmake);
    static const char *const refused[] = {"1.0", "0.2"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char vlog[4096];
        fmt(vlog, "%s/version-%s.log", dir, refused[i]);
        fmt(cmd, "cmake -S '%s/version' -B '%s/version-%s' -DCMAKE_PREFIX_PATH='%s' -DWANT=%s",
            dir, dir, refused[i], root, refused[i]);
        ASSERT_NE(sh(vlog, cmd), 0);
        read_file(vlog, text, sizeof text);
        fmt(want, "compatible with requested version \"%s\"", refused[i]);
        if (strstr(text, want) == NULL || strstr(text, "version: " EXEC_VERSION_STRING) == NULL)
            TEST_FAIL("cmake refused version %s, but not for its version:\n%s", refused[i], text);
    }

    /* pkg-config, from the same stage (prefix redefined: the .pc file names /usr/local). */
    fmt(bin, "%s/pkgconfig-app", dir);
    SH_OK(log, fmt(cmd,
                   "%s -std=c11 -Wall -Wextra -Werror -o '%s' '%s/app/main.c' "
                   "$(PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --define-variable=prefix='%s' "
                   "--cflags --libs executor)",
                   EXEC_TEST_CC, bin, dir, root, root));
    dynamic_section(log, dir, bin, text, sizeof text);
    ASSERT_TRUE(strstr(text, "[" SONAME "]") != NULL);
    run_consumer(log, dir, bin, fmt(path, "%s/lib", root));

    SH_OK(log, fmt(cmd,
                   "make -C '%s' --no-print-directory CC='%s' BUILD='%s/build' "
                   "PREFIX=" CMAKE_PREFIX " DESTDIR='%s/stage' uninstall",
                   EXEC_SRC_DIR, EXEC_TEST_CC, dir, dir));
    struct stat st;
    if (lstat(fmt(path, "%s/lib/cmake/executor", root), &st) == 0 || errno != ENOENT)
        TEST_FAIL("%s: still there after make uninstall", path);
}
