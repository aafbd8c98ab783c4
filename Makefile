# VetPMS CQRS — build, local stack and tests.
#   make            build bin/cmd-writer bin/projector bin/query-reader bin/vetctl
#   make run|stop   the local stack (PostgreSQL, Kafka, the three daemons)
#   make test       unit tests, then end-to-end tests on their own isolated stack
#   make asan test  the same, built with AddressSanitizer + UBSan into build/asan/
#   make valgrind-unit  the writer's unit tests under Valgrind (uninitialised reads, leaks)
#   make property   the command property test alone, longer (PROPERTY_EXAMPLES per command)
#   make fuzz       every libFuzzer target of fuzz/ for FUZZ_SECONDS each (docs/fuzzing.md);
#                   make fuzz-smoke, their short run over the checked-in corpus, is in make test
#   make bench      benchmarks (own isolated stack; BENCH_ARGS="--quick" or
#                   "--only commands", see docs/bench.md); make bench-smoke, every
#                   bench tool built and the in-process one run briefly, is in make test

CC      ?= cc
PKGS    := rdkafka libpq libevent libevent_pthreads libcjson libsodium
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-missing-field-initializers
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -Icommon -MMD -MP \
               -I/usr/include/postgresql

ifneq ($(filter asan,$(MAKECMDGOALS)),)
VARIANT ?= asan
endif
VARIANT ?= release
ifeq ($(VARIANT),asan)
BUILD   := build/asan
BIN     := build/asan/bin
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build/release
BIN     := bin
SAN     :=
endif

CFLAGS  := $(CFLAGS_BASE) $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN) -Wl,--export-dynamic-symbol=evhttp_send_error
LIBS    := -lrdkafka -lpq -levent_pthreads -levent -lcjson -lsodium -lpthread -lm

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
COMMON_LIB := $(BUILD)/libvpcommon.a

DAEMONS := cmd-writer projector query-reader vetctl
PROGS   := $(DAEMONS:%=$(BIN)/%)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

PYTEST := /usr/bin/python3 -m pytest

.PHONY: all asan deps test unit e2e run stop demo bench bench-tools bench-smoke clean format distclean \
        valgrind-unit property fuzz fuzz-smoke fuzz-build
all: $(PROGS)
# `make asan` alone builds the sanitized binaries; `make asan test` tests them.
asan:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory VARIANT=asan all

# The projector's event handlers (the apply tables, their runner and
# dispatcher, the statement helpers) as a library of their own: the projector
# and the query-reader's history folds (query-reader/as_of.c,
# docs/history.md) run the very same code.
APPLY_SRC := $(wildcard projector/apply_*.c) projector/statements.c
APPLY_OBJ := $(APPLY_SRC:%.c=$(BUILD)/%.o)
APPLY_LIB := $(BUILD)/libvpapply.a
projector_LIBS    := $(APPLY_LIB)
query-reader_LIBS := $(APPLY_LIB)
$(BUILD)/query-reader/as_of.o $(BUILD)/query-reader/main.o: CFLAGS += -Iprojector

# Each program is every .c of its folder (but what a library of its own has)
# linked with its libraries and the common library.
define program_rule
$(1)_OBJ := $$(filter-out $(APPLY_OBJ),$$(patsubst %.c,$(BUILD)/%.o,$$(wildcard $(1)/*.c)))
$(BIN)/$(1): $$($(1)_OBJ) $$($(1)_LIBS) $(COMMON_LIB)
	@mkdir -p $$(@D)
	$(CC) $(LDFLAGS) -o $$@ $$($(1)_OBJ) $$($(1)_LIBS) $(COMMON_LIB) $(LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call program_rule,$(d))))

$(APPLY_LIB): $(APPLY_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Writer unit tests link the writer's modules (all but main.o) too.
WRITER_MODULES = $(filter-out %/main.o,$(cmd-writer_OBJ))
$(BUILD)/tests/test_wr_%: tests/unit/test_wr_%.c $(WRITER_MODULES) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Icmd-writer $(LDFLAGS) -o $@ $< $(WRITER_MODULES) $(COMMON_LIB) $(LIBS) -lcmocka

# Reader unit tests (test_rd_*) link the reader's modules (all but main.o).
READER_MODULES = $(filter-out %/main.o,$(query-reader_OBJ))
$(BUILD)/tests/test_rd_%: tests/unit/test_rd_%.c $(READER_MODULES) $(APPLY_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iquery-reader $(LDFLAGS) -o $@ $< $(READER_MODULES) $(APPLY_LIB) \
	  $(COMMON_LIB) $(LIBS) -lcmocka

# Projector unit tests (test_pj_*) link the apply library (apply_*.c).
$(BUILD)/tests/test_pj_%: tests/unit/test_pj_%.c $(APPLY_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iprojector $(LDFLAGS) -o $@ $< $(APPLY_LIB) $(COMMON_LIB) $(LIBS) -lcmocka

# vetctl unit tests (test_vc_*) link its key-record modules (no main).
VETCTL_KEYS_MODULES = $(BUILD)/vetctl/tenant_keys.o $(BUILD)/vetctl/import_plan.o $(BUILD)/vetctl/keys_status.o
$(BUILD)/tests/test_vc_%: tests/unit/test_vc_%.c $(VETCTL_KEYS_MODULES) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Ivetctl $(LDFLAGS) -o $@ $< $(VETCTL_KEYS_MODULES) $(COMMON_LIB) $(LIBS) -lcmocka

$(BUILD)/tests/%: tests/unit/%.c $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(COMMON_LIB) $(LIBS) -lcmocka

deps:
	@scripts/install-deps.sh
	@scripts/kafka.sh fetch
	@scripts/venv.sh

unit: $(UNIT_BINS)
	@scripts/run-unit-tests.sh $(UNIT_BINS)

e2e: $(PROGS)
	VETPMS_BIN_DIR=$(CURDIR)/$(BIN) $(PYTEST) -q --durations=15 tests/e2e $(PYTEST_ARGS)

# The writer's unit tests once under Valgrind: it sees reads of uninitialised
# memory, which ASan does not. Release build only (Valgrind and ASan do not mix).
WR_UNIT_BINS := $(filter $(BUILD)/tests/test_wr_%,$(UNIT_BINS))
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --track-origins=yes
valgrind-unit: $(WR_UNIT_BINS)
	@test "$(VARIANT)" = release || { echo "valgrind-unit: use the release build"; exit 2; }
	@failed=0; for t in $(WR_UNIT_BINS); do \
	  echo "valgrind $$t"; $(VALGRIND) $$t >/dev/null || failed=1; \
	done; test $$failed -eq 0 && echo "valgrind-unit: no errors"

# The property test of every command (tests/e2e/test_property_commands.py) with
# more examples than `make test` gives it; VETPMS_PROPERTY_SEED=N replays a run.
PROPERTY_EXAMPLES ?= 300
property: $(PROGS)
	VETPMS_BIN_DIR=$(CURDIR)/$(BIN) VETPMS_PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) \
	  $(PYTEST) -q -s tests/e2e/test_property_commands.py $(PYTEST_ARGS)

# deps first (a fresh machine has no compiler nor libraries yet), then build in a
# second make so the wildcards and pkg headers are seen after the install.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory VARIANT=$(VARIANT) unit fuzz-smoke bench-smoke e2e

run:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@scripts/stack.sh start

stop:
	@scripts/stack.sh stop

# Benchmark tools (bench/*.c, one program each) with the daemons' flags.
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BIN)/bench/%)
$(BIN)/bench/%: bench/%.c $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(COMMON_LIB) $(LIBS)

bench-tools: $(BENCH_BINS)

# Part of make test (seconds): every bench tool builds, the in-process one
# (sealing's cost, bench/seal_cost.c) runs a few hundred operations (under
# ASan too with make asan test), and bench/run.py loads. A run against a
# stack is make bench.
bench-smoke: bench-tools
	$(BIN)/bench/seal_cost 300 >/dev/null
	/usr/bin/python3 bench/run.py --help >/dev/null
	@echo "bench smoke: $(words $(BENCH_BINS)) tools built, seal_cost and bench/run.py ran"

# BENCH_ARGS: --quick (smoke run), --only <scenario> (see docs/bench.md).
bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all bench-tools
	@/usr/bin/python3 bench/run.py $(BENCH_ARGS)

# libFuzzer targets (fuzz/fuzz_*.c), built by Debian's clang into build/fuzz/
# whatever CC and VARIANT say: every source they reach is compiled with the
# fuzzer's coverage and ASan + UBSan (an UBSan report is a crash). Each target
# links the common sources and both daemons' modules but their main.c, so it
# can reach the writer's command tables and the reader's routes.
FUZZ_CC     := clang
FUZZ_BUILD  := build/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CFLAGS_BASE) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB_SRC := $(COMMON_SRC) $(filter-out %/main.c,$(wildcard cmd-writer/*.c query-reader/*.c)) \
                $(APPLY_SRC)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/bin/%)
FUZZ_SECONDS ?= 60
# Objects reached only through the pattern rules below: keep them between builds.
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/fuzz/%.o)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iprojector -c -o $@ $<

$(FUZZ_BUILD)/bin/%: $(FUZZ_BUILD)/fuzz/%.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LIBS)

$(FUZZ_BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icmd-writer -Iquery-reader -c -o $@ $<

fuzz-build: $(FUZZ_BINS)

# Each target for FUZZ_SECONDS over a scratch corpus (build/fuzz/corpus/, kept
# between runs) seeded from fuzz/corpus/<target>/, which stays as checked in.
fuzz:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_BINS)

# Part of make test: every checked-in corpus file once, then a few thousand
# mutations from a fixed seed (seconds in all).
fuzz-smoke: fuzz-build
	@scripts/fuzz.sh smoke 0 $(FUZZ_BINS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

distclean: clean
	rm -rf .cache var

-include $(shell find build -name '*.d' 2>/dev/null)
