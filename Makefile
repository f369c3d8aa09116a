# shouwen - build, test, run.
#
#   make                 the common library, generated protobuf code, five services, the migrator
#   make test            install what is missing, build, unit tests (also under valgrind and
#                        sanitizers), fuzzing, integration, end to end, the browser tests
#   make test-e2e        the end-to-end tests alone (tests/e2e: DOMAIN.md's stories, the kill test)
#   make test-browser    the web console in Debian's Chromium, driven by playwright-core
#                        (tests/browser; screenshots of each step in build/browser/)
#   make test-ops        the operations tests alone (tests/ops: replicas and failover behind
#                        HAProxy, TLS between sites, the Kubernetes/systemd manifests, the
#                        Grafana dashboard and alert rules against the real /metrics)
#   make run / stop      the whole stack in the background: private PostgreSQL + five services
#                        (make run REPLICAS=2: two of each, the intakes behind HAProxy)
#   make certs           a development CA and certificates for tls+tcp:// and PostgreSQL TLS,
#                        in CERTS_DIR (default .run/certs); kept if there
#   make SANITIZER=address|undefined [test-unit]   instrumented build in build/<sanitizer>/
#   make fuzz            libFuzzer drivers of the parsers that see outside input (clang, build/fuzz/)
#   make test-fuzz       run each driver for FUZZ_TIME (20) seconds on its seed corpus; a crash fails
#   make lint            clang-format (check only), cppcheck, clang-tidy
#   make compose-check   docker-compose.yml parses and names every service
#   make bench           the whole pipeline for 60 s: cases registered over HTTP, routed, given
#                        deadlines, notified to a loopback webhook and audited, against a pgbench
#                        baseline (prints figures; BENCHMARKS.md has every benchmark's)
#   make bench-bus       the durable bus against a pgbench baseline (prints figures)
#   make bench-intake    cases registered over HTTP against a pgbench baseline (prints figures)
#   make bench-routing   routing decisions per second (1,000 rules, against a strstr baseline),
#                        and registered-to-routed latency at 1,000 cases/s
#   make bench-escalation  at 1,000,000 open cases: start to ready, memory, firing delay,
#                        breaches per second (against PostgreSQL doing the same rows alone)
#   make bench-audit     audit appends per second (against a one-INSERT baseline) and the
#                        QA report's time at 1,000,000 cases
#   make bench-notify    webhook deliveries per second to a loopback receiver, and
#                        event-to-delivered latency at 500 events/s (against plain HTTP)
#   make bench-budget    the CPU one case of make bench costs when each of the five services does
#                        its part alone, and the rate end to end that allows here
#   make clean
#
# Generated code and build output live in build/, runtime state in .run/.

CC        ?= cc
SANITIZER ?=
RUN_DIR   ?= $(CURDIR)/.run
MIGRATIONS_DIR ?= $(CURDIR)/deploy/migrations
CONSOLE_DIR ?= $(CURDIR)/services/intake/console
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
            -DSHOUWEN_DEFAULT_CONSOLE_DIR='"$(CONSOLE_DIR)"' \
            -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) $(SANFLAGS) -MMD -MP -pthread
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   := -lnng -lprotobuf-c -lpq -lcurl -ljansson -lmbedtls -lmbedx509 -lmbedcrypto -lcrypt

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
E2E        := $(sort $(wildcard tests/e2e/*_test.sh))
OPS        := $(sort $(wildcard tests/ops/*_test.sh))
REPLICAS   ?= 1
CERTS_DIR  ?= $(RUN_DIR)/certs

.PHONY: bench bench-bus bench-intake bench-routing bench-escalation bench-notify bench-audit bench-budget all bootstrap test test-unit test-valgrind test-sanitizers test-integration test-e2e \
        test-ops test-browser certs fuzz test-fuzz run stop status lint format compose-check clean
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

$(B)/tests/rep_client: $(B)/obj/tests/intake/rep_client.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(B)/tests/audit_gen: $(B)/obj/tests/bench/audit_gen.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(B)/tests/route_bench: $(B)/obj/tests/bench/route_bench.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(B)/tests/http_load: $(B)/obj/tests/bench/http_load.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@

$(B)/tests/http_sink: $(B)/obj/tests/bench/http_sink.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@

# --- tests --------------------------------------------------------------------
test: bootstrap
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory test-unit test-valgrind test-sanitizers test-fuzz test-integration \
	    test-e2e test-ops test-browser

test-unit: $(UNIT_BINS)
	@tests/run_unit.sh $(UNIT_BINS)

test-valgrind: $(UNIT_BINS)
	@tests/run_unit.sh --valgrind $(UNIT_BINS)

# The unit tests again, built with each sanitizer.
test-sanitizers:
	@$(MAKE) --no-print-directory SANITIZER=address test-unit
	@$(MAKE) --no-print-directory SANITIZER=undefined test-unit

test-integration: all $(B)/tests/bus_driver $(B)/tests/rep_client $(B)/tests/http_load \
                  $(B)/tests/audit_gen
	@for t in $(INTEGRATION); do \
	    echo "== $$t"; SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	        bash $$t || exit 1; \
	done

# All five services, the webhook receiver and an SMTP server, through the
# public interfaces only.
test-e2e: all $(B)/tests/rep_client $(B)/tests/http_load
	@for t in $(E2E); do \
	    echo "== $$t"; SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	        bash $$t || exit 1; \
	done

# Operations (tests/ops): two replicas of every service behind HAProxy with
# failover, TLS between a remote site and the centre, the deployment
# manifests and the observability files checked against the binaries.
test-ops: all $(B)/tests/rep_client $(B)/tests/http_load
	@for t in $(OPS); do \
	    echo "== $$t"; SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	        bash $$t || exit 1; \
	done

# The web console in Debian's Chromium (headless), driven by playwright-core
# from npm against all five services: tests/browser/console_test.sh.  npm ci
# runs when node_modules is missing or older than the lockfile.
BROWSER_NPM := tests/browser/node_modules/.package-lock.json
test-browser: all $(BROWSER_NPM)
	@echo "== tests/browser/console_test.sh"; SHOUWEN_BIN=$(CURDIR)/$(B)/bin \
	    bash tests/browser/console_test.sh

$(BROWSER_NPM): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "test-browser: no npm: run make bootstrap" >&2; exit 1; }
	cd tests/browser && npm ci --no-audit --no-fund
	@touch $@

# --- fuzzing (libFuzzer) -------------------------------------------------------
# Every object the drivers link is instrumented, so they are built again
# with clang in their own folder: intake's sources but main.c, the common
# sources and the generated protobuf code.
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 20
FZ         := $(B)/fuzz
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS    := $(patsubst tests/fuzz/%.c,$(FZ)/%,$(FUZZ_SRC))
FUZZ_OBJ   := $(patsubst %.c,$(FZ)/obj/%.o,$(filter-out services/intake/main.c,\
                  $(sort $(wildcard services/intake/*.c))) $(COMMON_SRC)) \
              $(patsubst $(GEN)/%.c,$(FZ)/obj/gen/%.o,$(PROTO_C))
FUZZ_CFLAGS = -O1 -g -std=c11 $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
              -MMD -MP -pthread

$(FZ)/obj/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FZ)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZERS): $(FZ)/%: $(FZ)/obj/tests/fuzz/%.o $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread $^ $(LDLIBS) -o $@

fuzz: $(FUZZERS)

# New inputs go to $(FZ)/corpus/<driver>; the committed seeds are only read.
test-fuzz: fuzz
	@for f in $(FUZZERS); do \
	    n=$$(basename $$f); mkdir -p $(FZ)/corpus/$$n; echo "== $$n ($(FUZZ_TIME) s)"; \
	    d=tests/fuzz/$$n.dict; [ -f $$d ] && d=-dict=$$d || d=; \
	    if ! $$f -max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1 $$d \
	        -artifact_prefix=$(FZ)/$$n- $(FZ)/corpus/$$n tests/fuzz/corpus/$$n >$(FZ)/$$n.log 2>&1; \
	    then tail -n 40 $(FZ)/$$n.log; echo "FAIL $$n: the input is in $(FZ)/$$n-*"; exit 1; fi; \
	    grep -E '^(Done|stat::average_exec_per_sec|stat::peak_rss_mb)' $(FZ)/$$n.log; \
	done

# --- benchmarks (figures, not tests) ---------------------------------------
# The five services together, end to end (BENCH_SECONDS, 60, of load).  The
# pipe hides the script's exit status: it fails unless its last line says
# that nothing was lost.
bench: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/http_load $(B)/tests/http_sink
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	    bash tests/bench/pipeline_bench.sh | tee $(B)/pipeline_bench.out; \
	    tail -n 1 $(B)/pipeline_bench.out | grep -q '^RESULT bench .* lost=0$$'

bench-bus: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/bus_driver
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests bash tests/bench/bus_bench.sh

bench-intake: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/http_load
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests bash tests/bench/intake_bench.sh

# Decisions in process against a strstr baseline, then registered-to-routed
# latency end to end at 1,000 cases/s with the real intake and routing.
bench-routing: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/route_bench $(B)/tests/http_load
	@$(B)/tests/route_bench $${BENCH_DECISION_SECONDS:-3} | tee $(B)/route_bench.out
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	    bash tests/bench/routing_bench.sh | tee $(B)/routing_bench.out
	@d=$$(sed -n 's/^decisions_per_s=\([0-9]*\).*/\1/p' $(B)/route_bench.out); \
	 p=$$(sed -n 's/^p99_ms_at_rate=//p' $(B)/routing_bench.out); \
	 echo "RESULT bench-routing decisions_per_s=$$d p99_ms_at_1000=$$p"

bench-escalation: bootstrap
	@$(MAKE) --no-print-directory all
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin bash tests/bench/escalation_bench.sh | tee $(B)/escalation_bench.out

bench-notify: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/bus_driver $(B)/tests/http_load $(B)/tests/http_sink
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	    bash tests/bench/notify_bench.sh | tee $(B)/notify_bench.out

bench-audit: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/audit_gen
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	    bash tests/bench/audit_bench.sh | tee $(B)/audit_bench.out

# What one case of make bench costs when each of the five services does its
# part alone (the cpu: lines of bench-intake, bench-routing with escalation
# after it, bench-notify and bench-audit), and the rate end to end that cost
# allows on this machine
bench-budget: bootstrap
	@$(MAKE) --no-print-directory all $(B)/tests/http_load $(B)/tests/http_sink $(B)/tests/bus_driver $(B)/tests/audit_gen
	@SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_TEST_BIN=$(CURDIR)/$(B)/tests \
	    bash tests/bench/budget.sh | tee $(B)/budget.out; \
	    tail -n 1 $(B)/budget.out | grep -q '^RESULT bench-budget '

# --- running ------------------------------------------------------------------
run: bootstrap
	@$(MAKE) --no-print-directory all
	@SHOUWEN_RUN_DIR=$(RUN_DIR) SHOUWEN_BIN=$(CURDIR)/$(B)/bin SHOUWEN_REPLICAS=$(REPLICAS) \
	    deploy/stack.sh start

stop:
	@SHOUWEN_RUN_DIR=$(RUN_DIR) deploy/stack.sh stop

status:
	@SHOUWEN_RUN_DIR=$(RUN_DIR) deploy/stack.sh status

certs:
	@deploy/certs.sh $(CERTS_DIR)

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
