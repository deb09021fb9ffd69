# SPDX-License-Identifier: MIT
#
# src/mpi/mpi.mk - the MPI backend's part of the build, included by the Makefile. Built only
# when an MPI compiler wrapper is found (MPICC, default mpicc; Debian: openmpi-bin
# libopenmpi-dev). The core library never links MPI: the backend goes into a second library,
# libexecutor-mpi.{a,so} (the whole library plus src/mpi/), with its own pkg-config file.
#
# Targets: mpi (the libraries), mpi-test (the MPI checks under mpirun, twice: Open MPI's
# default transports, then --mca btl tcp,self), mpi-bench (beside mpi4py.futures).

MPICC      ?= mpicc
HAVE_MPI   := $(if $(shell command -v $(MPICC) 2>/dev/null),1,)

ifeq ($(HAVE_MPI),1)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
MPIRUN     ?= mpirun
# As root Open MPI wants --allow-run-as-root; --oversubscribe lets 3 ranks share 2 CPUs.
MPIRUN_FLAGS ?= --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root) \
                --mca btl_base_warn_component_unused 0
MPI_NP     ?= 3

MPI_SRCS   := $(sort $(wildcard src/mpi/*.c))
MPI_OBJS   := $(MPI_SRCS:%.c=$(BUILD)/obj/%.o)
MPI_PIC    := $(MPI_SRCS:%.c=$(BUILD)/pic/%.o)
MPI_TOBJS  := $(MPI_SRCS:%.c=$(BUILD)/tobj/%.o)
MPI_STATIC := $(BUILD)/libexecutor-mpi.a
MPI_TEST_STATIC := $(BUILD)/libexecutor-mpi-test.a
MPI_SONAME := libexecutor-mpi.so.$(VERSION_MAJOR)
MPI_REAL   := libexecutor-mpi.so.$(VERSION_MAJOR).$(VERSION_MINOR)
MPI_SHARED := $(BUILD)/$(MPI_REAL)
MPI_PCFILE := $(BUILD)/executor-mpi.pc
MPI_CHECK  := $(BUILD)/tests/mpi_check
MPI_EXAMPLE := $(BUILD)/examples/13_mpi
MPI_BENCH  := $(BUILD)/bench-mpi/mpi_bench

$(MPI_OBJS): $(BUILD)/obj/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LIB_CFLAGS) $(MPI_CFLAGS) -MMD -MP -c -o $@ $<

$(MPI_PIC): $(BUILD)/pic/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(PIC_CFLAGS) $(MPI_CFLAGS) -MMD -MP -c -o $@ $<

$(MPI_TOBJS): $(BUILD)/tobj/%.o: %.c $(BUILD)/.flags-lib
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LIB_CFLAGS) $(MPI_CFLAGS) -DEXEC_TEST_HOOKS -MMD -MP -c -o $@ $<

$(MPI_STATIC): $(LIB_OBJS) $(MPI_OBJS)
	$(call msg,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(LIB_OBJS) $(MPI_OBJS)

$(MPI_TEST_STATIC): $(TLIB_OBJS) $(MPI_TOBJS)
	$(call msg,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(TLIB_OBJS) $(MPI_TOBJS)

$(MPI_SHARED): $(PIC_OBJS) $(MPI_PIC)
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(MPI_SONAME) -Wl,-z,defs -pthread $(SANFLAGS) $(LDFLAGS) \
	    -o $@ $(PIC_OBJS) $(MPI_PIC) $(MPI_LIBS)
	$(Q)ln -sf $(MPI_REAL) $(BUILD)/$(MPI_SONAME)
	$(Q)ln -sf $(MPI_SONAME) $(BUILD)/libexecutor-mpi.so

# The MPI programs link the MPI static library (the examples link the plain one).
$(MPI_EXAMPLE): examples/13_mpi.c $(MPI_STATIC) $(BUILD)/.flags-test
	$(call msg,CCLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) $(MPI_CFLAGS) -MMD -MP -MF $@.d -o $@ $< $(MPI_STATIC) \
	    $(EXE_LDFLAGS) $(EXE_LIBS) $(MPI_LIBS)

$(MPI_CHECK): tests/mpi/check.c tests/mpi/cases.c tests/mpi/check.h $(MPI_TEST_STATIC) \
              $(BUILD)/.flags-test
	$(call msg,CCLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) $(MPI_CFLAGS) -MMD -MP -MF $@.d -o $@ tests/mpi/check.c \
	    tests/mpi/cases.c $(MPI_TEST_STATIC) $(EXE_LDFLAGS) $(EXE_LIBS) $(MPI_LIBS)

$(MPI_BENCH): tests/bench-mpi/mpi_bench.c $(MPI_STATIC) $(BUILD)/.flags-test
	$(call msg,CCLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(TEST_CFLAGS) $(MPI_CFLAGS) -MMD -MP -MF $@.d -o $@ $< $(MPI_STATIC) \
	    $(EXE_LDFLAGS) $(EXE_LIBS) $(MPI_LIBS)

mpi: $(MPI_STATIC) $(MPI_SHARED) $(MPI_EXAMPLE)

# The MPI checks: tests/mpi/run.sh starts each case under mpirun, with each transport.
mpi-test: $(MPI_CHECK) $(MPI_EXAMPLE)
	$(call msg,MPIRUN,$(MPI_CHECK))
	$(Q)MPIRUN=$(call quote,$(MPIRUN) $(MPIRUN_FLAGS)) MPI_NP=$(MPI_NP) \
	    sh tests/mpi/run.sh $(MPI_CHECK) $(MPI_EXAMPLE) '' 'tcp,self'

mpi-bench: $(MPI_BENCH)
	$(Q)MPIRUN=$(call quote,$(MPIRUN) $(MPIRUN_FLAGS)) sh tests/bench-mpi/run.sh $(MPI_BENCH)

mpi-install: $(MPI_STATIC) $(MPI_SHARED)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@MPI_CFLAGS@|$(MPI_CFLAGS)|g' -e 's|@MPI_LIBS@|$(MPI_LIBS)|g' \
	    src/executor-mpi.pc.in > $(MPI_PCFILE)
	$(Q)$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(Q)$(INSTALL) -m 644 include/executor_mpi.h $(DESTDIR)$(INCLUDEDIR)/executor_mpi.h
	$(Q)$(INSTALL) -m 644 $(MPI_STATIC) $(DESTDIR)$(LIBDIR)/libexecutor-mpi.a
	$(Q)$(INSTALL) -m 755 $(MPI_SHARED) $(DESTDIR)$(LIBDIR)/$(MPI_REAL)
	$(Q)ln -sf $(MPI_REAL) $(DESTDIR)$(LIBDIR)/$(MPI_SONAME)
	$(Q)ln -sf $(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libexecutor-mpi.so
	$(Q)$(INSTALL) -m 644 $(MPI_PCFILE) $(DESTDIR)$(PKGCONFIGDIR)/executor-mpi.pc

mpi-uninstall:
	$(Q)rm -f $(DESTDIR)$(INCLUDEDIR)/executor_mpi.h $(DESTDIR)$(LIBDIR)/libexecutor-mpi.a \
	    $(DESTDIR)$(LIBDIR)/$(MPI_REAL) $(DESTDIR)$(LIBDIR)/$(MPI_SONAME) \
	    $(DESTDIR)$(LIBDIR)/libexecutor-mpi.so $(DESTDIR)$(PKGCONFIGDIR)/executor-mpi.pc

-include $(wildcard $(BUILD)/tests/mpi_check.d $(BUILD)/examples/13_mpi.d \
                    $(BUILD)/bench-mpi/*.d)
else
mpi mpi-test mpi-bench mpi-install mpi-uninstall:
	@echo "  SKIP     $@: no MPI compiler wrapper ($(MPICC)); Debian: openmpi-bin libopenmpi-dev"
endif

.PHONY: mpi mpi-test mpi-bench mpi-install mpi-uninstall
