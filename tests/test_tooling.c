/* SPDX-License-Identifier: MIT */
/*
 * test_tooling.c - the build and the docs, checked from the outside.
 *
 * These tests run the repository's own Makefile from its source directory (EXEC_SRC_DIR) with
 * the compiler that built the suite (EXEC_TEST_CC), always into a temporary BUILD directory,
 * so they work from a fresh clone and never touch the caller's build tree.
 *   tooling_install         make install, pkg-config, a program against the shared library,
 *                           check-symbols on that build, make uninstall, DESTDIR staging
 *   tooling_check_symbols   the export checker passes the library and catches bad exports
 *   tooling_readme_example  the first ```c block of README.md compiles (and runs, if it has
 *                           a main)
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shell.h"
#include "tasks.h"

#if !defined(EXEC_SRC_DIR) || !defined(EXEC_BUILD_DIR) || !defined(EXEC_TEST_CC) ||           \
    !defined(EXEC_TEST_SANFLAGS)
#error "EXEC_SRC_DIR, EXEC_BUILD_DIR, EXEC_TEST_CC and EXEC_TEST_SANFLAGS come from the Makefile"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)
#define SHARED_REAL "libexecutor.so." STR(EXEC_VERSION_MAJOR) "." STR(EXEC_VERSION_MINOR)
#define SONAME "libexecutor.so." STR(EXEC_VERSION_MAJOR)

static void make(const char *log, const char *args)
{
    char cmd[4096];
    fmt(cmd, "make -C '%s' --no-print-directory CC='%s' %s", EXEC_SRC_DIR, EXEC_TEST_CC, args);
    SH_OK(log, cmd);
}

static void assert_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        TEST_FAIL("%s: %s, want an installed file", path, strerror(errno));
    ASSERT_TRUE(S_ISREG(st.st_mode));
}

static void assert_link(const char *path, const char *target)
{
    char got[512];
    ssize_t n = readlink(path, got, sizeof got - 1);
    if (n < 0)
        TEST_FAIL("readlink %s: %s, want a symlink to %s", path, strerror(errno), target);
    got[n] = '\0';
    ASSERT_STR_EQ(got, target);
    assert_file(path); /* and it resolves */
}

static void assert_gone(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        TEST_FAIL("%s still exists after make uninstall", path);
    ASSERT_EQ(errno, ENOENT);
}

/* The files `make install` puts under @root (DESTDIR + PREFIX), man pages included. */
static size_t installed_files(const char *root, char paths[][512], size_t cap)
{
    static const char *fixed[] = {"include/executor.h", "lib/libexecutor.a", "lib/" SHARED_REAL,
                                  "lib/" SONAME, "lib/libexecutor.so",
                                  "lib/pkgconfig/executor.pc"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && n < cap; i++)
        snprintf(paths[n++], 512, "%s/%s", root, fixed[i]);
    glob_t g;
    if (glob(EXEC_SRC_DIR "/docs/man3/*.3", 0, NULL, &g) == 0) {
        if (n + g.gl_pathc > cap)
            TEST_FAIL("%zu installed files, more than the %zu this test can check",
                      n + g.gl_pathc, cap);
        for (size_t i = 0; i < g.gl_pathc && n < cap; i++)
            snprintf(paths[n++], 512, "%s/share/man/man3/%s", root,
                     strrchr(g.gl_pathv[i], '/') + 1);
        globfree(&g);
    }
    return n;
}

/* The program the install test builds against the installed tree. */
#define CONSUMER EXEC_SRC_DIR "/tests/tooling/consumer.c"

TEST(tooling_install)
{
    clean_make_env();
    const char *dir = test_tmpdir();
    char build[4096], prefix[4096], log[4096], args[4096], cmd[4096], path[4096];
    char text[4096], want[256], pc[4096];
    fmt(build, "%s/build", dir);
    fmt(prefix, "%s/prefix", dir);
    fmt(log, "%s/log", dir);
    fmt(pc, "PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config", prefix);

    make(log, fmt(args, "-j2 BUILD='%s' PREFIX='%s' install", build, prefix));

    char files[64][512];
    size_t nfiles = installed_files(prefix, files, 64);
    for (size_t i = 0; i < nfiles; i++)
        assert_file(files[i]);
    assert_link(fmt(path, "%s/lib/" SONAME, prefix), SHARED_REAL);
    assert_link(fmt(path, "%s/lib/libexecutor.so", prefix), SONAME);

    /* The .pc file: right version and paths. */
    SH_OK(log, fmt(cmd, "%s --modversion executor > '%s/version'", pc, dir));
    read_file(fmt(path, "%s/version", dir), text, sizeof text);
    ASSERT_STR_EQ(text, EXEC_VERSION_STRING "\n");
    SH_OK(log, fmt(cmd, "%s --variable=libdir executor > '%s/libdir'", pc, dir));
    read_file(fmt(path, "%s/libdir", dir), text, sizeof text);
    ASSERT_STR_EQ(text, fmt(path, "%s/lib\n", prefix));

    /* A program built with pkg-config against the shared library runs and works. */
    SH_OK(log, fmt(cmd,
                   "cd '%s' && %s -std=c11 -pedantic -Wall -Wextra -Werror -o prog '%s' "
                   "$(%s --cflags --libs executor)",
                   dir, EXEC_TEST_CC, CONSUMER, pc));
    SH_OK(log, fmt(cmd, "readelf -d '%s/prog' | grep -q 'NEEDED.*\\[" SONAME "\\]'", dir));
    SH_OK(log, fmt(cmd, "LD_LIBRARY_PATH='%s/lib' '%s/prog' > '%s/out'", prefix, dir, dir));
    read_file(fmt(path, "%s/out", dir), text, sizeof text);
    snprintf(want, sizeof want, "version %d\nsquare 49\n", EXEC_VERSION_NUMBER);
    ASSERT_STR_EQ(text, want);

    /* check-symbols on that build (nothing is rebuilt). */
    make(log, fmt(args, "BUILD='%s' check-symbols", build));

    make(log, fmt(args, "BUILD='%s' PREFIX='%s' uninstall", build, prefix));
    for (size_t i = 0; i < nfiles; i++)
        assert_gone(files[i]);

    /* DESTDIR stages under another root; the .pc file names the final prefix. */
    char stage[4096], root[4096];
    fmt(stage, "%s/stage", dir);
    fmt(root, "%s/opt/exec", stage);
    make(log, fmt(args, "BUILD='%s' PREFIX=/opt/exec DESTDIR='%s' install", build, stage));
    nfiles = installed_files(root, files, 64);
    for (size_t i = 0; i < nfiles; i++)
        assert_file(files[i]);
    read_file(fmt(path, "%s/lib/pkgconfig/executor.pc", root), text, sizeof text);
    ASSERT_TRUE(strstr(text, "prefix=/opt/exec\n") != NULL);
    ASSERT_TRUE(strstr(text, "Libs: -L${libdir} -lexecutor") != NULL);
    make(log, fmt(args, "BUILD='%s' PREFIX=/opt/exec DESTDIR='%s' uninstall", build, stage));
    for (size_t i = 0; i < nfiles; i++)
        assert_gone(files[i]);
}

/* Builds a small shared library exporting @exports (C definitions) into @dir/@name. */
static void tiny_lib(const char *dir, const char *log, const char *name, const char *code)
{
    char path[4096], cmd[4096];
    write_file(fmt(path, "%s/%s.c", dir, name), code);
    SH_OK(log, fmt(cmd, "cd '%s' && %s -shared -fPIC -fvisibility=hidden -o %s.so %s.c", dir,
                   EXEC_TEST_CC, name, name));
}

static int check_symbols(const char *log, const char *lib)
{
    char cmd[4096];
    return sh(log, fmt(cmd, "sh '%s/tests/tooling/check-symbols.sh' '%s'", EXEC_SRC_DIR, lib));
}

TEST(tooling_check_symbols)
{
    const char *dir = test_tmpdir();
    char log[4096], path[4096];
    fmt(log, "%s/log", dir);

    /* The library this suite was built with (`make test` builds it first). */
    fmt(path, "%s/" SHARED_REAL, EXEC_BUILD_DIR);
    if (access(path, R_OK) != 0)
        TEST_FAIL("%s: %s (build it with `make shared`)", path, strerror(errno));
    if (check_symbols(log, path) != 0) {
        dump_log(log);
        TEST_FAIL("%s exports symbols outside exec_*", path);
    }

#define PUBLIC "__attribute__((visibility(\"default\"))) "
#define DEFINE(decl, body) PUBLIC decl ";\n" PUBLIC decl " { " body " }\n"
    tiny_lib(dir, log, "good",
             DEFINE("int exec_fine(void)", "return 1;") "int helper(void);\n"
                                                       "int helper(void) { return 2; }\n");
    tiny_lib(dir, log, "stray",
             DEFINE("int stray(void)", "return 1;") DEFINE("int exec_ok(void)", "return 2;"));
    tiny_lib(dir, log, "internal", DEFINE("int exec__internal(void)", "return 1;"));
#undef DEFINE
#undef PUBLIC
    ASSERT_EQ(check_symbols(log, fmt(path, "%s/good.so", dir)), 0);
    ASSERT_NE(check_symbols(log, fmt(path, "%s/stray.so", dir)), 0);
    ASSERT_NE(check_symbols(log, fmt(path, "%s/internal.so", dir)), 0);
}

/* Test-only fault hooks live in the test build of the library only: the shipped static and
 * shared libraries carry none (not even hidden), the test build does (so the check can fail). */
TEST(tooling_no_test_hooks)
{
    const char *dir = test_tmpdir();
    char log[4096], path[4096];
    fmt(log, "%s/log", dir);
    ASSERT_EQ(check_symbols(log, fmt(path, "%s/" SHARED_REAL, EXEC_BUILD_DIR)), 0);
    ASSERT_EQ(check_symbols(log, fmt(path, "%s/libexecutor.a", EXEC_BUILD_DIR)), 0);
    ASSERT_NE(check_symbols(log, fmt(path, "%s/libexecutor-test.a", EXEC_BUILD_DIR)), 0);
}

/* Run tests/tooling/@script on the tree @src (its src/ folder); its exit status. */
static int run_check(const char *log, const char *script, const char *src)
{
    char cmd[4096];
    return sh(log, fmt(cmd, "sh '%s/tests/tooling/%s' '%s/src'", EXEC_SRC_DIR, script, src));
}

/* Plant @file (relative to @dir/src, its folder made) with the output of shell @body. */
static void plant(const char *log, const char *dir, const char *file, const char *body)
{
    char cmd[4096];
    SH_OK(log, fmt(cmd, "rm -rf '%s/src' && mkdir -p \"$(dirname '%s/src/%s')\" && { %s; } > "
                        "'%s/src/%s'",
                   dir, dir, file, body, dir, file));
}

/* No file of src/ over 800 lines, no function over 100; the checker catches both. */
TEST(tooling_sizes)
{
    const char *dir = test_tmpdir();
    char log[4096];
    fmt(log, "%s/log", dir);
    ASSERT_EQ(run_check(log, "check-sizes.sh", EXEC_SRC_DIR), 0);
    plant(log, dir, "core/long.c",
          "echo 'int f(void)'; echo '{'; i=0; while [ $i -lt 100 ]; do echo '    (void)0;'; "
          "i=$((i+1)); done; echo '}'");
    ASSERT_NE(run_check(log, "check-sizes.sh", dir), 0);
    plant(log, dir, "core/big.c", "i=0; while [ $i -lt 801 ]; do echo '/* */'; i=$((i+1)); done");
    ASSERT_NE(run_check(log, "check-sizes.sh", dir), 0);
}

/* The include arrows between the parts of src/ hold (docs/internals.md), and the checker
 * catches a core file that includes a backend, a backend that includes another, and a
 * platform file that includes the core. */
TEST(tooling_layers)
{
    const char *dir = test_tmpdir();
    char log[4096], body[256];
    fmt(log, "%s/log", dir);
    ASSERT_EQ(run_check(log, "check-layers.sh", EXEC_SRC_DIR), 0);
    static const char *const bad[][2] = {
        {"core/x.c", "threads/threads.h"},
        {"threads/x.c", "process/proto.h"},
        {"sys/x.c", "core/core.h"},
        {"mpi/x.c", "threads/threads.h"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        plant(log, dir, bad[i][0], fmt(body, "echo '#include \"%s\"'", bad[i][1]));
        ASSERT_NE(run_check(log, "check-layers.sh", dir), 0);
    }
}

TEST(tooling_readme_example)
{
    const char *dir = test_tmpdir();
    char log[4096], cmd[4096], path[4096], block[4096], text[4096];
    fmt(log, "%s/log", dir);
    fmt(path, "%s/blocks", dir);
    int st = sh(log, fmt(cmd,
                         "sh '%s/tests/tooling/extract-c-blocks.sh' -1 '%s/README.md' '%s' "
                         "> '%s'",
                         EXEC_SRC_DIR, EXEC_SRC_DIR, dir, path));
    if (st != 0) {
        dump_log(log);
        TEST_FAIL("README.md: no usable ```c block (extract-c-blocks.sh: %d)", st);
    }
    read_file(path, block, sizeof block);
    block[strcspn(block, "\n")] = '\0';
    ASSERT_TRUE(block[0] != '\0');

    SH_OK(log, fmt(cmd,
                   "%s %s -std=c11 -pedantic -Wall -Wextra -Werror -I'%s/include' "
                   "-c -o '%s/readme.o' '%s'",
                   EXEC_TEST_CC, EXEC_TEST_SANFLAGS, EXEC_SRC_DIR, dir, block));
    read_file(block, text, sizeof text);
    if (strstr(text, "main(") == NULL)
        return; /* a fragment: compiling it is the check */
    SH_OK(log, fmt(cmd, "%s %s -o '%s/readme' '%s/readme.o' '%s/libexecutor.a' -pthread -lm",
                   EXEC_TEST_CC, EXEC_TEST_SANFLAGS, dir, dir, EXEC_BUILD_DIR));
    SH_OK(log, fmt(cmd, "cd '%s' && ./readme", dir));
}
