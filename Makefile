# shouwen - build, test, run.
#
#   make                 the common library, generated protobuf code, five services, the migrator
#   make test            install what is missing, build, unit tests (also under valgrind), integration
#   make run / stop      the whole stack in the background: private PostgreSQL + five services
#   make SANITIZER=address|undefined [test-unit]   instrumented build in build/<sanitizer>/
#   make lint            clang-format (check only), cppcheck, clang-tidy
#   make compose-check   docker-compose.yml parses and names every service
#   make bench-bus       the durable bus against a pgbench baseline (prints figures)
#   make clean
#
# Generated code and build output live in build/, runtime state in .run/.

CC        ?= cc
SANITIZER ?=
RUN_DIR   ?= $(CURDIR)/.run
MIGRATIONS_DIR ?= $(CURDIR)/deploy/migrations
SERVICES  := intake routing escalation notification audit

GEN := build/gen
ifeq ($(SANITIZER),)
B := build
SANFLAGS :=
else ifeq ($(SANITIZER),address)
B := build/address
SANFLAGS := -fsanitize=address -fno-omit-frame-pointer
else ifeq ($(SANITIZER),undefined)
B := build/undefined
SANFLAGS := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
$(error SANITIZER must be address or undefined, not "$(SANITIZER)")
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wpointer-arith -Wformat=2 \
            -Wno-format-nonliteral
CPPFLAGS += -D_DEFAULT_SOURCE -D_GNU_SOURCE -Icommon -I$(GEN) \
            -DSHOUWEN_DEFAULT_RUN_DIR='"$(RUN_DIR)"' \
            -DSHOUWEN_DEFAULT_MIGRATIONS_DIR='"$(MIGRATIONS_DIR)"' \
            -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) $(SANFLAGS) -MMD -MP -pthread
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   := -lnng -lprotobuf-c -lpq -lcurl -ljansson -lmbedtls -lmbedx509 -lmbedcrypto

PROTOS     := $(sort $(wildcard proto/shouwen/v1/*.proto))
PROTO_C    := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
COMMON_SRC := $(sort $(wildcard common/*.c))
LIB_OBJ    := $(patsubst %.c,$(B)/obj/%.o,$(COMMON_SRC)) \
              $(patsubst $(GEN)/%.c,$(B)/obj/gen/%.o,$(PROTO_C))
LIB        := $(B)/lib/libshouwen.a
BINS       := $(addprefix $(B)/bin/shouwen-,$(SERVICES)) $(B)/bin/shouwen-migrate \
              $(B)/bin/shouwen-bus

UNIT_SRC   := $(sort $(wildcard tests/unit/*/*_test.c))
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
INTEGRATION := $(sort $(wildcard tests/integration/*_test.sh))

.PHONY: bench-bus all bootstrap test test-unit test-valgrind test-sanitizers test-integration \
        run stop status lint format compose-check clean
.DEFAULT_GOAL := all

all: $(BINS)

bootstrap:
	@deploy/bootstrap.sh

# --- generated protobuf code ------------------------------------------------
# Made by a pattern rule and needed only by other pattern rules, they would
# count as intermediate and be deleted after each build (forcing the next
# build to start over); they are kept.
.SECONDARY: $(PROTO_C) $(PROTO_H)
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Iproto $<

# --- objects, library, binaries -----------------------------------------------
$(B)/obj/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/bin/shouwen-migrate: $(B)/obj/deploy/migrate.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(B)/bin/shouwen-bus: $(B)/obj/deploy/bus_tool.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# every .c in a service folder is part of that service
define service_rule
$(B)/bin/shouwen-$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard services/$(1)/*.c)) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$^ $$(LDLIBS) -o $$@
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(B)/tests/unit/%: $(B)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -lcmocka -o $@

$(B)/tests/bus_driver: $(B)/obj/tests/bus/bus_driver.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# --- tests --------------------------------------------------------------------
test: bootstrap
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory test-unit test-valgrind test-sanitizers test-integration

test-unit: $(UNIT_BINS)
	@tests/run_unit.sh $(UNIT_BINS)

test-valgrind: $(UNIT_BINS)
	@tests/run_unit.sh --valgrind $(UNIT_BINS)

# The unit tests again, built with each sanitizer.
test-sanitizers:
	@$(MAKE) --no-print-directory SANITIZER=address test-unit
	@$(MAKE) --no-print-directory SANITIZER=undefined test-unit

test-integration: all $(B)/tests/bus_driver
	@for t in $(INTEGRATION); do \
	    echo "== $$t"; SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	        bash $$t || exit 1; \
	done

# --- benchmarks (figures, not tests) ---------------------------------------
bench-bus: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/bus_driver
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests bash tests/bench/bus_bench.sh

# --- running ------------------------------------------------------------------
run: bootstrap
	@$(MAKE) --no-print-directory all
	@SHOUWEN_RUN_DIR=$(RUN_DIR) SHOUWEN_BIN=$(CURDIR)/$(B)/bin deploy/stack.sh start

stop:
	@SHOUWEN_RUN_DIR=$(RUN_DIR) deploy/stack.sh stop

status:
	@SHOUWEN_RUN_DIR=$(RUN_DIR) deploy/stack.sh status

# --- checks -------------------------------------------------------------------
C_FILES := $(shell git ls-files '*.c' '*.h' 2>/dev/null)

lint: all
	@echo "== clang-format (check only)"
	@clang-format --dry-run --Werror $(C_FILES)
	@echo "== cppcheck"
	@cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --std=c11 --inline-suppr --suppress=missingIncludeSystem -Icommon -I$(GEN) \
	    common services deploy tests/unit
	@echo "== clang-tidy"
	@clang-tidy --quiet --warnings-as-errors='*' $(filter %.c,$(C_FILES)) -- $(CPPFLAGS) -std=c11

format:
	clang-format -i $(C_FILES)

compose-check: all
	@python3 deploy/compose_check.py docker-compose.yml $(B)/bin

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
