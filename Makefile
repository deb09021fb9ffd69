# SPDX-License-Identifier: MIT
#
# Makefile of libexecutor: plain GNU make, run from the source directory (or with make -C).
# `make help` lists the targets.
#
# Everything is written under $(BUILD) (default build/), so several trees can be built at once
# from one checkout: `make BUILD=/tmp/x test`. Sanitizer trees go to $(BUILD)/asan, /tsan and
# /ubsan. Output is quiet unless V=1. Changing CC or the flags rebuilds what they affect.
#
# Variables: CC, CFLAGS (appended), CPPFLAGS, LDFLAGS, OPT (default -g -O2), DEBUG=1 (adds
# -DEXEC_DEBUG: internal assertions), PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR,
# CMAKEDIR, TESTS (test name prefixes for `make test`), RUN_ARGS (more runner options), V=1.

.DEFAULT_GOAL := all
.SUFFIXES:
.DELETE_ON_ERROR:

BUILD      ?= build
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR   ?= $(LIBDIR)/cmake/executor
DESTDIR    ?=

NM         ?= nm
INSTALL    ?= install
VALGRIND   ?= valgrind

OPT        ?= -g -O2
SANFLAGS   ?=
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASEFLAGS  := -std=c11 $(WARN) $(OPT) -D_GNU_SOURCE -pthread $(SANFLAGS) \
              $(if $(filter 1,$(DEBUG)),-DEXEC_DEBUG)
LIB_CFLAGS := $(BASEFLAGS) -fvisibility=hidden -Iinclude -Isrc $(CPPFLAGS) $(CFLAGS)
PIC_CFLAGS := $(LIB_CFLAGS) -fPIC
# Tests learn where they are, which compiler built them and with which sanitizer, so that
# tooling tests can run this Makefile again the same way.
TEST_DEFS  := -DEXEC_SRC_DIR='"$(CURDIR)"' -DEXEC_BUILD_DIR='"$(abspath $(BUILD))"' \
              -DEXEC_TEST_CC='"$(CC)"' -DEXEC_TEST_SANFLAGS='"$(SANFLAGS)"'
TEST_CFLAGS := $(BASEFLAGS) -Iinclude -Isrc -Itests $(TEST_DEFS) -DEXEC_TEST_HOOKS $(CPPFLAGS) \
               $(CFLAGS)
EXE_LDFLAGS := $(OPT) $(SANFLAGS) -pthread $(LDFLAGS)
EXE_LIBS   := -lm

# ---------------------------------------------------------------------------------------------
# Version: read from include/executor.h, the one place it is written.

# "#define EXEC_VERSION_MAJOR 0" gives 0 ("." matches the "#", which make reads as a comment).
exec_version = $(shell sed -n \
    's/^.define[[:space:]]*EXEC_VERSION_$(1)[[:space:]]*\([0-9][0-9]*\).*/\1/p' include/executor.h)
VERSION_MAJOR := $(call exec_version,MAJOR)
VERSION_MINOR := $(call exec_version,MINOR)
VERSION_PATCH := $(call exec_version,PATCH)
ifeq ($(VERSION_MAJOR),)
$(error cannot read EXEC_VERSION_MAJOR from include/executor.h)
endif
ifeq ($(VERSION_MINOR)$(VERSION_PATCH),)
$(error cannot read EXEC_VERSION_MINOR/PATCH from include/executor.h)
endif
VERSION    := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

SONAME     := libexecutor.so.$(VERSION_MAJOR)
SHARED_REAL := libexecutor.so.$(VERSION_MAJOR).$(VERSION_MINOR)

# ---------------------------------------------------------------------------------------------
# Files

# src/ is organised by parts, one folder each (see docs/internals.md).
# src/mpi/ is not part of it: the MPI backend goes into libexecutor-mpi (src/mpi/mpi.mk).
LIB_SRCS   := $(sort $(filter-out src/mpi/%,$(wildcard src/*/*.c)))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
PIC_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/pic/%.o)
# The test build of the library: the same sources with the test-only fault hooks
# (src/base/fault.h). Only the test runner links it; nothing installed carries them.
TLIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/tobj/%.o)
TEST_SRCS  := $(sort $(wildcard tests/test_*.c)) tests/run.c tests/alloc_hook.c tests/gate.c \
              tests/tasks.c tests/shell.c
TEST_OBJS  := $(TEST_SRCS:%.c=$(BUILD)/%.o)
EXAMPLE_BINS := $(patsubst examples/%.c,$(BUILD)/examples/%,\
                $(sort $(filter-out examples/13_mpi.c,$(wildcard examples/*.c))))
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(sort $(wildcard tests/bench/*.c)))
MAN3       := $(sort $(wildcard docs/man3/*.3))

# bench_futures compares with libuv and GLib when their development packages are installed
# (found with pkg-config); the library itself depends on neither. Their headers are system
# headers here (-isystem), so our warning flags do not judge them.
PKG_CONFIG ?= pkg-config
bench_pkg = $(if $(shell $(PKG_CONFIG) --exists $(1) 2>/dev/null && echo y),\
    -D$(2) $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags $(1))) \
    $(shell $(PKG_CONFIG) --libs $(1)))
$(BUILD)/bench/bench_futures: BENCH_EXTRA = $(call bench_pkg,libuv,BENCH_HAVE_UV) \
    $(call bench_pkg,glib-2.0,BENCH_HAVE_GLIB)

STATIC     := $(BUILD)/libexecutor.a
TEST_STATIC := $(BUILD)/libexecutor-test.a
SHARED     := $(BUILD)/$(SHARED_REAL)
SHARED_LINKS := $(BUILD)/$(SONAME) $(BUILD)/libexecutor.so
RUNNER     := $(BUILD)/tests/run
PCFILE     := $(BUILD)/executor.pc
CMAKE_FILES := $(BUILD)/executor-config.cmake $(BUILD)/executor-config-version.cmake

# ---------------------------------------------------------------------------------------------
# Quiet output

ifeq ($(V),1)
Q   :=
msg  =
else
Q   := @
msg  = @printf '  %-8s %s\n' '$(1)' '$(2)';
endif

quote = '$(subst ','\'',$(1))'

# A stamp per kind of object holding the command line it was built with: when CC or a flag
# changes, the stamp changes and what depends on it is rebuilt.
define flags_stamp
	@mkdir -p $(@D)
	@printf '%s\n' $(call quote,$(1)) | cmp -s - $@ 2>/dev/null || \
	    printf '%s\n' $(call quote,$(1)) > $@
endef

# ---------------------------------------------------------------------------------------------
# Targets

.PHONY: all lib shared examples demo bench test run-tests check-symbols asan ubsan tsan \
        valgrind install uninstall clean help FORCE

all: lib shared examples mpi

lib: $(STATIC)

shared: $(SHARED) $(SHARED_LINKS)

examples: $(EXAMPLE_BINS)

$(BUILD)/.flags-lib: FORCE
	$(call flags_stamp,$(CC) $(PIC_CFLAGS) | $(LDFLAGS))

$(BUILD)/.flags-test: FORCE
	$(call flags_stamp,$(CC) $(TEST_CFLAGS) | $(EXE_LDFLAGS))

$(BUILD)/obj/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LIB_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/pic/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(PIC_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tobj/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LIB_CFLAGS) -DEXEC_TEST_HOOKS -MMD -MP -c -o $@ $<

$(TEST_STATIC): $(TLIB_OBJS)
	$(call msg,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(TLIB_OBJS)

$(STATIC): $(LIB_OBJS)
	$(call msg,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(LIB_OBJS)

$(SHARED): $(PIC_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs -pthread $(SANFLAGS) $(LDFLAGS) \
	    -o $@ $(PIC_OBJS)

$(BUILD)/$(SONAME): $(SHARED)
	$(Q)ln -sf $(SHARED_REAL) $@

$(BUILD)/libexecutor.so: $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $@

# Examples and benchmarks are single-file programs linked against the static library.
$(BUILD)/examples/%: examples/%.c $(STATIC) $(BUILD)/.flags-test
	$(call msg,CCLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -MF $@.d -o $@ $< $(STATIC) $(EXE_LDFLAGS) $(EXE_LIBS)

$(BUILD)/bench/%: tests/bench/%.c $(STATIC) $(BUILD)/.flags-test
	$(call msg,CCLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -MF $@.d -o $@ $< $(STATIC) $(EXE_LDFLAGS) $(EXE_LIBS) \
	    $(BENCH_EXTRA)

# The demonstration: serial vs threads vs processes, then the shared-memory comparison.
demo: $(BUILD)/examples/demo $(BUILD)/examples/06_shared_memory
	$(call msg,RUN,$<)
	$(Q)$(BUILD)/examples/demo
	$(Q)echo
	$(Q)$(BUILD)/examples/06_shared_memory processes

bench: $(BENCH_BINS)
	$(Q)for b in $(BENCH_BINS); do \
	    printf '  %-8s %s\n' RUN "$$b"; "$$b" || exit 1; \
	done
	+$(Q)$(MAKE) --no-print-directory mpi-bench

# --- tests ------------------------------------------------------------------------------------

$(BUILD)/tests/%.o: tests/%.c $(BUILD)/.flags-test
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

$(RUNNER): $(TEST_OBJS) $(TEST_STATIC)
	$(call msg,CCLD,$@)
	$(Q)$(CC) -o $@ $(TEST_OBJS) $(TEST_STATIC) $(EXE_LDFLAGS) $(EXE_LIBS) \
	    $(foreach f,malloc calloc realloc aligned_alloc posix_memalign strdup free \
	        pthread_create fork _Fork,-Wl,--wrap=$(f))

# RUN_ENV and RUN_WRAP are set by the sanitizer and valgrind targets; TESTS and RUN_ARGS by
# the user (e.g. `make test TESTS=future_` or `make test RUN_ARGS='-b threads'`).
RUN_CMD = $(RUN_ENV) $(RUN_WRAP) $(RUNNER) $(RUN_ARGS) $(TESTS)

test: $(RUNNER) check-symbols examples
	$(call msg,RUN,$(RUNNER))
	$(Q)$(RUN_CMD)
	+$(Q)$(MAKE) --no-print-directory mpi-test

run-tests: $(RUNNER) $(STATIC)
	$(call msg,RUN,$(RUNNER))
	$(Q)$(RUN_CMD)

check-symbols: $(SHARED) $(STATIC)
	$(call msg,NM,$<)
	$(Q)NM=$(call quote,$(NM)) sh tests/tooling/check-symbols.sh $(SHARED) $(STATIC)
	$(Q)sh tests/tooling/check-layers.sh src
	$(Q)sh tests/tooling/check-sizes.sh src

# --- sanitizers and valgrind ------------------------------------------------------------------
# Each sanitizer gets its own tree under $(BUILD) (library + runner), built with DEBUG=1, and
# runs the suite with a longer per-test alarm. Any report fails the test it happened in: the
# tools abort or exit with 99, which the runner reports as a failure of that test.
# The tooling tests (which rebuild this project with make) are left out there: they test the
# build, not memory safety, and `make test` already runs them.

SAN_OPT    := -O1 -g -fno-omit-frame-pointer
SAN_ARGS   ?= -x tooling_
empty      :=
space      := $(empty) $(empty)
san_opts   = $(subst $(space),:,$(strip $(1)))
ASAN_ENV   := ASAN_OPTIONS=$(call san_opts,detect_leaks=1 abort_on_error=1 \
                  detect_stack_use_after_return=1 strict_string_checks=1)
UBSAN_ENV  := UBSAN_OPTIONS=$(call san_opts,print_stacktrace=1 halt_on_error=1 exitcode=99)
TSAN_ENV   := TSAN_OPTIONS=$(call san_opts,halt_on_error=1 exitcode=99 second_deadlock_stack=1)

san_make = $(MAKE) --no-print-directory BUILD=$(BUILD)/$(1) OPT=$(call quote,$(SAN_OPT)) DEBUG=1 \
           SANFLAGS=$(call quote,$(2) -fno-sanitize-recover=all) \
           RUN_ENV=$(call quote,$(3) EXEC_TEST_TIMEOUT_SCALE=$(4)) \
           RUN_ARGS=$(call quote,$(SAN_ARGS) $(5) $(RUN_ARGS)) run-tests

asan:
	+$(Q)$(call san_make,asan,-fsanitize=address,$(ASAN_ENV),3)

ubsan:
	+$(Q)$(call san_make,ubsan,-fsanitize=undefined,$(UBSAN_ENV),2)

# TSan leaves out the largest-pool tests (scale_): 1024 forked workers, each with TSan's
# shadow memory, take minutes on two CPUs, and the races TSan looks for are the supervisor's,
# which every other process test exercises; gcc, clang, ASan and UBSan run them.
tsan:
	+$(Q)$(call san_make,tsan,-fsanitize=thread,$(TSAN_ENV),5,-x scale_)

# Valgrind runs the plain runner. Test children are fork()ed, so valgrind follows them without
# --trace-children; that option (with the skip list) is for programs a test runs itself: the
# shell, compilers and make are not traced, programs the tests build are. Valgrind makes a
# process that had errors exit with 99, and the runner fails the test whose child exited so.
#
# Leaks are judged by the runner, not by valgrind's exit-time check. That check runs in every
# process, also in those a test or the process backend forks, which end with _exit() holding
# the heap they inherited: in such a child everything is "still reachable", and what only
# another thread's stack pointed to is "definitely lost", although nothing leaked. Valgrind
# cannot scope its leak options to one process, so the runner asks valgrind itself at the end
# of each test process (client requests, see child_exit() in tests/run.c) and fails the test
# if any byte is lost or still reachable that was not there before: that is
# --errors-for-leak-kinds=all for the test, with a full report of every kind when it fails.
# Invalid reads/writes, uninitialised values and bad frees stay errors in every process.
VALGRIND_FLAGS := -q --leak-check=no --error-exitcode=99 --trace-children=yes \
                  --trace-children-skip='/bin/*,/usr/bin/*,/usr/local/bin/*,/sbin/*,/usr/sbin/*' \
                  --num-callers=30

# The stress tests are left out too: valgrind runs threads one at a time, ~50 times slower,
# so they would take most of the CI budget and find nothing the sanitizers miss. So is the
# malloc-storm recycling test: its point is 8 threads really racing fork(), which valgrind's
# one-thread-at-a-time scheduler cannot produce (and 200 traced forks under 8 spinning
# threads do not fit its alarm).
# The 100 M-item streaming test too: its point is memory staying flat over a long input,
# which the sanitizers check; under valgrind even a tenth of it would take many minutes.
# The largest-pool tests too (scale_): their point is 1024 workers at once, which is more
# threads than valgrind handles by default (--max-threads=500), or 1024 processes each under
# its own valgrind instance plus 1088 traced forks for the recycling burst; the sanitizers
# run them.
VALGRIND_ARGS ?= $(SAN_ARGS) -x stress_ -x process_recycle_under_malloc_storm \
                 -x stream_memory_flat -x scale_

valgrind: $(RUNNER) $(STATIC)
	$(call msg,VALGRIND,$(RUNNER))
	$(Q)EXEC_TEST_TIMEOUT_SCALE=10 $(VALGRIND) $(VALGRIND_FLAGS) $(RUNNER) $(VALGRIND_ARGS) \
	    $(RUN_ARGS) $(TESTS)

# --- soak -------------------------------------------------------------------------------------
# The soak test (tests/test_soak.c) at full size: SOAK_TASKS mixed tasks per backend (crashes,
# deadlines, slow tasks, cancels, recycling, shared memory, four submitting threads), then
# the runner's leftover checks. `make test` runs it small (a few seconds). The alarm of the
# test grows with SOAK_SCALE (times 30 s).

SOAK_TASKS ?= 1000000
SOAK_SCALE ?= 100

.PHONY: soak

soak: $(RUNNER)
	$(call msg,SOAK,$(SOAK_TASKS) tasks per backend)
	$(Q)EXEC_SOAK_TASKS=$(SOAK_TASKS) EXEC_TEST_TIMEOUT_SCALE=$(SOAK_SCALE) $(RUNNER) \
	    $(RUN_ARGS) soak_

# --- fuzzing ----------------------------------------------------------------------------------
# libFuzzer targets (tests/fuzz/fuzz_<name>.c) for every decoder of bytes that come from
# another process. They need clang (FUZZ_CC) with its runtime (Debian: libclang-rt-14-dev).
# The library is built again under $(BUILD)/fuzz with ASan, UBSan and the fuzzer's coverage;
# `make fuzz` runs each target for FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/<name>,
# read only) plus what it found before ($(BUILD)/fuzz/corpus/<name>); a crash is written to
# $(BUILD)/fuzz/<name>-crash-* and fails the target. FUZZ_ARGS adds libFuzzer options.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 10
FUZZ_ARGS    ?=
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 $(WARN) -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -pthread \
                -Iinclude -Isrc $(FUZZ_SAN)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB     := $(FUZZ_DIR)/libexecutor-fuzz.a
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)

.PHONY: fuzz fuzz-build

$(FUZZ_DIR)/.flags: FORCE
	$(call flags_stamp,$(FUZZ_CC) $(FUZZ_CFLAGS))

$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_DIR)/.flags
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fvisibility=hidden -fsanitize=fuzzer-no-link -MMD -MP \
	    -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	$(call msg,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(FUZZ_OBJS)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(FUZZ_DIR)/.flags
	$(call msg,CCLD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -o $@ $< $(FUZZ_LIB) \
	    -lm

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	$(Q)for t in $(FUZZ_NAMES); do \
	    printf '  %-8s %s (%s s)\n' FUZZ "$$t" '$(FUZZ_SECONDS)'; \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t || exit 1; \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/$$t-crash- $(FUZZ_ARGS) \
	        $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t \
	        > $(FUZZ_DIR)/$$t.log 2>&1 || { tail -n 60 $(FUZZ_DIR)/$$t.log; exit 1; }; \
	    grep -E '^(stat::number_of_executed_units|stat::new_units_added)' \
	        $(FUZZ_DIR)/$$t.log | tr '\n' ' '; echo; \
	done

# --- install ----------------------------------------------------------------------------------

# pkg-config paths are written relative to ${prefix} when they lie under it.
pc_path = $(patsubst $(PREFIX)%,$${prefix}%,$(1))

# The CMake package finds the prefix from its own place: CMAKEDIR's depth below PREFIX in /..
# (${CMAKE_CURRENT_LIST_DIR}/../../.. for lib/cmake/executor), and the other paths under it,
# so the installed tree also works from a DESTDIR stage or after a move. A CMAKEDIR outside
# PREFIX gets the absolute PREFIX, a LIBDIR or INCLUDEDIR outside it its absolute path.
under_prefix = $(filter $(PREFIX)/%,$(1))
cmake_rel    = $(patsubst $(PREFIX)/%,%,$(CMAKEDIR))
cmake_up     = $(subst $(space),,$(foreach d,$(subst /, ,$(cmake_rel)),/..))
cmake_here   = $${CMAKE_CURRENT_LIST_DIR}$(cmake_up)
cmake_prefix = $(if $(call under_prefix,$(CMAKEDIR)),$(cmake_here),$(PREFIX))
cmake_sub    = $${_executor_prefix}/$(patsubst $(PREFIX)/%,%,$(1))
cmake_path   = $(if $(call under_prefix,$(1)),$(call cmake_sub,$(1)),$(1))
# The pointer size of the libraries: the version file refuses consumers of another one.
sizeof_void_p = $(shell $(CC) $(PIC_CFLAGS) -dM -E -x c /dev/null 2>/dev/null | \
    sed -n 's/^.define __SIZEOF_POINTER__ \([0-9]*\)$$/\1/p')
CMAKE_SED     = -e 's|@PREFIX@|$(cmake_prefix)|g' -e 's|@CMAKEDIR_REL@|$(cmake_rel)|g' \
    -e 's|@LIBDIR@|$(call cmake_path,$(LIBDIR))|g' \
    -e 's|@INCLUDEDIR@|$(call cmake_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
    -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
    -e 's|@SHARED_REAL@|$(SHARED_REAL)|g' -e 's|@SIZEOF_VOID_P@|$(sizeof_void_p)|g'

install: $(STATIC) $(SHARED) $(SHARED_LINKS) mpi-install
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	@mkdir -p $(BUILD)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
	    src/executor.pc.in > $(PCFILE)
	$(Q)for f in $(notdir $(CMAKE_FILES)); do \
	    sed $(CMAKE_SED) src/$$f.in > $(BUILD)/$$f || exit 1; \
	done
	$(Q)$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(CMAKEDIR)
	$(Q)$(INSTALL) -m 644 include/executor.h $(DESTDIR)$(INCLUDEDIR)/executor.h
	$(Q)$(INSTALL) -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libexecutor.a
	$(Q)$(INSTALL) -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/$(SHARED_REAL)
	$(Q)ln -sf $(SHARED_REAL) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libexecutor.so
	$(Q)$(INSTALL) -m 644 $(PCFILE) $(DESTDIR)$(PKGCONFIGDIR)/executor.pc
	$(Q)$(INSTALL) -m 644 $(CMAKE_FILES) $(DESTDIR)$(CMAKEDIR)/
ifneq ($(MAN3),)
	$(Q)$(INSTALL) -d $(DESTDIR)$(MANDIR)/man3
	$(Q)$(INSTALL) -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
endif

# The CMake package's folder goes too when nothing else is left in it.
uninstall: mpi-uninstall
	$(call msg,UNINST,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(DESTDIR)$(INCLUDEDIR)/executor.h $(DESTDIR)$(LIBDIR)/libexecutor.a \
	    $(DESTDIR)$(LIBDIR)/$(SHARED_REAL) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libexecutor.so $(DESTDIR)$(PKGCONFIGDIR)/executor.pc \
	    $(addprefix $(DESTDIR)$(CMAKEDIR)/,$(notdir $(CMAKE_FILES))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))
	$(Q)if [ -d $(DESTDIR)$(CMAKEDIR) ]; then rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || :; fi

# --- misc -------------------------------------------------------------------------------------

clean:
	$(if $(filter / . ./ $(CURDIR) $(CURDIR)/,$(BUILD) $(abspath $(BUILD))),\
	    $(error refusing to clean BUILD=$(BUILD)))
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

help:
	@echo 'targets (output under BUILD=$(BUILD)):'
	@echo '  all            lib + shared + examples (default)'
	@echo '  lib            $(STATIC)'
	@echo '  shared         $(SHARED) (soname $(SONAME)) and its symlinks'
	@echo '  examples       one program per examples/*.c in $(BUILD)/examples/'
	@echo '  demo           build and run $(BUILD)/examples/demo'
	@echo '  bench          build and run tests/bench/*.c in order'
	@echo '  test           build and run the test suite, and check-symbols'
	@echo '                 (TESTS="prefix ..." filters, RUN_ARGS="-b threads" etc.)'
	@echo '  check-symbols  the shared library exports exec_* symbols only'
	@echo '  asan ubsan tsan  the suite under a sanitizer, in $(BUILD)/<san>/'
	@echo '  valgrind       the suite under valgrind memcheck'
	@echo '  soak           the soak test with SOAK_TASKS=$(SOAK_TASKS) tasks per backend'
	@echo '  fuzz           build tests/fuzz/ with clang (FUZZ_CC) and run each target'
	@echo '                 FUZZ_SECONDS=$(FUZZ_SECONDS) s (FUZZ_ARGS: more libFuzzer options)'
	@echo '  install uninstall  PREFIX=$(PREFIX) DESTDIR=$(DESTDIR): header, libraries, man pages,'
	@echo '                 pkg-config file (PKGCONFIGDIR) and CMake package executor::executor'
	@echo '                 (CMAKEDIR=$(CMAKEDIR))'
	@echo '  clean          remove $(BUILD)'

FORCE:

include src/mpi/mpi.mk

-include $(wildcard $(BUILD)/obj/src/*/*.d $(BUILD)/pic/src/*/*.d $(BUILD)/tobj/src/*/*.d \
                    $(BUILD)/tests/*.d $(BUILD)/fuzz/obj/src/*/*.d $(BUILD)/fuzz/*.d \
                    $(BUILD)/examples/*.d $(BUILD)/bench/*.d)
