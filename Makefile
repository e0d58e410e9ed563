# payd - build, run, test.
#
#   make            build bin and modules into build/
#   make run        build, start a private PostgreSQL under ./var, migrate, serve
#   make test       install what is missing, start private PostgreSQL + Redis, run
#                   unit and integration tests under ASan+UBSan
#   make bench      load benchmark (wrk) against a local payd
#   make deps       install the Debian packages payd needs (as root)
#
# The test build lives in build/san with -fsanitize=address,undefined.

CC      ?= cc
BUILD   ?= build
SAN     ?= 0

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(WARN) -Isdk/include -Iserver -I/usr/include/postgresql -I/usr/include/cairo
ifeq ($(SAN),1)
  CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DPAYD_KEEP_MODULES_MAPPED
  LDFLAGS_SAN := -fsanitize=address,undefined
else
  CFLAGS_OPT := -O2
  LDFLAGS_SAN :=
endif
CFLAGS  := $(CFLAGS_BASE) $(CFLAGS_OPT)
LIBS    := -lcivetweb -lpq -lcurl -lssl -lcrypto -lhiredis -ljansson -linih -ljwt -lcairo -ldl -lpthread -lm

SERVER_SRC := $(wildcard server/*.c)
SERVER_OBJ := $(patsubst server/%.c,$(BUILD)/obj/%.o,$(SERVER_SRC)) $(BUILD)/obj/migrations_gen.o
CORE_OBJ   := $(filter-out $(BUILD)/obj/main.o,$(SERVER_OBJ))
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))

GATEWAYS  := $(notdir $(wildcard modules/*))
MODULE_SO := $(patsubst %,$(BUILD)/modules/%.so,$(GATEWAYS))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))
TESTMOD_SRC := $(wildcard tests/modules/*.c)
TESTMOD_SO  := $(patsubst tests/modules/%.c,$(BUILD)/testmodules/%.so,$(TESTMOD_SRC))
FAKE_SRC  := $(wildcard tests/fakes/*.c)
FAKE_BIN  := $(patsubst tests/fakes/%.c,$(BUILD)/fakes/%,$(FAKE_SRC))
MODCHECK_SRC := $(wildcard sdk/modcheck/*.c)
MODCHECK  := $(if $(MODCHECK_SRC),$(BUILD)/payd-modcheck)

.PHONY: all build deps run test test-build bench clean install fmt FORCE
.DEFAULT_GOAL := all

all: deps build
build: $(BUILD)/payd $(MODULE_SO) $(MODCHECK)

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: server/%.c $(wildcard server/*.h) sdk/include/payd/module.h
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

# The list of migration files is itself a prerequisite: a new migration
# whose mtime is older than the generated file (a checkout, a copy) must
# still be embedded. The list file is rewritten only when the list changes.
$(BUILD)/gen/migrations.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(MIGRATIONS)" | cmp -s - $@ || echo "$(MIGRATIONS)" > $@

$(BUILD)/gen/migrations_gen.c: $(MIGRATIONS) $(BUILD)/gen/migrations.list scripts/embed-migrations.sh
	@mkdir -p $(dir $@)
	scripts/embed-migrations.sh $@ $(MIGRATIONS)

$(BUILD)/obj/migrations_gen.o: $(BUILD)/gen/migrations_gen.c server/migrate.h
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/payd: $(SERVER_OBJ)
	$(CC) $(LDFLAGS_SAN) -rdynamic $^ -o $@ $(LIBS)

# Modules: built exactly as a third party would, against sdk/include only.
# A module that needs a library names it here; files in modules/NAME/templates
# are installed beside the .so as BUILD/modules/NAME/templates.
MODULE_LIBS_smtp := -ljansson
MODULE_LIBS_stripe := -ljansson
MODULE_LIBS_paypal := -ljansson -lcrypto -lz
MODULE_LIBS_manual := -ljansson
.SECONDEXPANSION:
$(BUILD)/modules/%.so: $$(wildcard modules/%/*.c) $$(wildcard modules/%/*.h) $$(wildcard modules/%/templates/*) $(wildcard sdk/include/payd/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS_OPT) -fPIC -shared -fvisibility=hidden -Imodules/$* \
	    $(filter %.c,$^) -o $@ $(LDFLAGS_SAN) -lpthread $(MODULE_LIBS_$*)
	@if [ -d modules/$*/templates ]; then mkdir -p $(dir $@)$* && cp -r modules/$*/templates $(dir $@)$*/; fi

# payd-modcheck loads modules exactly as payd does: it links the loader.
$(BUILD)/payd-modcheck: $(MODCHECK_SRC) $(wildcard sdk/modcheck/*.h) $(CORE_OBJ)
	$(CC) $(CFLAGS) -Isdk/modcheck $(MODCHECK_SRC) $(CORE_OBJ) -o $@ $(LDFLAGS_SAN) -rdynamic $(LIBS)

# Local fakes of providers and receivers (one file each), for tests only.
$(BUILD)/fakes/%: tests/fakes/%.c $(wildcard tests/fakes/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/fakes $< -o $@ $(LDFLAGS_SAN) -lcivetweb -ljansson -lssl -lcrypto -lz -lpthread

$(BUILD)/testmodules/whole_capture_only.so: tests/modules/modcheck_bad.c
$(BUILD)/testmodules/%.so: tests/modules/%.c sdk/include/payd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS_OPT) -fPIC -shared -fvisibility=hidden $< -o $@ $(LDFLAGS_SAN)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJ) $(wildcard tests/unit/*.h) $(wildcard tests/unit/fake_*.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< $(wildcard tests/unit/fake_*.c) $(CORE_OBJ) -o $@ $(LDFLAGS_SAN) -lcmocka $(LIBS)

$(BUILD)/tests/test_%: tests/integration/test_%.c tests/integration/harness.c tests/integration/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/integration $< tests/integration/harness.c -o $@ $(LDFLAGS_SAN) -lcmocka -lcurl -ljansson -lpq -lcrypto -lz -lpthread

# The release build (-O2, what `make run` and `make install` use) is built
# too: optimization makes gcc see more (-Wformat-truncation, -Wstringop-*),
# and a warning there must fail `make test`, not a user's `make run`.
test-build: deps
	$(MAKE) -j$$(nproc) BUILD=build/san SAN=1 build/san/payd $(patsubst $(BUILD)/%,build/san/%,$(MODULE_SO)) \
	    $(patsubst $(BUILD)/%,build/san/%,$(UNIT_BIN) $(INTEG_BIN) $(TESTMOD_SO) $(FAKE_BIN) $(MODCHECK))
	$(MAKE) -j$$(nproc) build

test: test-build
	scripts/test.sh build/san

run: all
	scripts/run.sh $(BUILD)

bench: all
	scripts/bench.sh $(BUILD)

# Installs under PREFIX (default /usr/local): the binaries, the modules in
# lib/payd/modules (found there by default), the SDK headers and guide, an
# example config, and the invoice template in share/payd/templates (found
# there by default). DESTDIR works for packaging.
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/payd/modules \
	    $(DESTDIR)$(PREFIX)/include/payd $(DESTDIR)$(PREFIX)/share/payd
	install -m 755 $(BUILD)/payd $(DESTDIR)$(PREFIX)/bin/payd
	[ ! -f $(BUILD)/payd-modcheck ] || install -m 755 $(BUILD)/payd-modcheck $(DESTDIR)$(PREFIX)/bin/payd-modcheck
	install -m 644 $(MODULE_SO) $(DESTDIR)$(PREFIX)/lib/payd/modules/
	for d in modules/*/templates; do [ -d "$$d" ] || continue; n=$$(basename $$(dirname $$d)); \
	    install -d $(DESTDIR)$(PREFIX)/lib/payd/modules/$$n/templates; \
	    install -m 644 $$d/* $(DESTDIR)$(PREFIX)/lib/payd/modules/$$n/templates/; done
	install -m 644 sdk/include/payd/module.h sdk/include/payd/module_support.h $(DESTDIR)$(PREFIX)/include/payd/
	install -m 644 sdk/README.md conf/payd.conf $(DESTDIR)$(PREFIX)/share/payd/
	install -d $(DESTDIR)$(PREFIX)/share/payd/templates
	install -m 644 templates/invoice.html $(DESTDIR)$(PREFIX)/share/payd/templates/

clean:
	rm -rf build

fmt:
	clang-format -i server/*.c server/*.h modules/*/*.c sdk/include/payd/module.h

# Fuzzing (libFuzzer + ASan + UBSan, clang): `make fuzz` builds every
# tests/fuzz/fuzz_*.c into build/fuzz/ and runs each for PAYD_FUZZ_SECONDS
# (default 20) with scripts/fuzz.sh; it fails if any target crashes. Not part
# of `make test`. A target named fuzz_<module>_* links modules/<module>/*.c
# with the fuzzing host (tests/fuzz/host.c over tests/unit/fake_host.c); any
# other links the core, compiled again by clang into build/fuzz/obj and kept
# in an archive, so a target may #include the server file it tests.
# PAYD_FUZZ_TARGETS="fuzz_money fuzz_config" runs a subset.
FUZZ_CC     ?= clang
FUZZ_DIR    := build/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CFLAGS_BASE) -O1 -DPAYD_FUZZ -DPAYD_SRCDIR='"$(CURDIR)"'
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
FUZZ_CORE   := $(FUZZ_DIR)/libpayd_core.a
FUZZ_CORE_OBJ := $(patsubst $(BUILD)/obj/%,$(FUZZ_DIR)/obj/%,$(CORE_OBJ))
fuzz_mod    = $(firstword $(subst _, ,$(1)))
fuzz_modsrc = $(wildcard modules/$(call fuzz_mod,$(1))/*.c)
fuzz_inputs = $(if $(call fuzz_modsrc,$(1)),$(call fuzz_modsrc,$(1)) tests/fuzz/host.c tests/unit/fake_host.c,$(FUZZ_CORE))
fuzz_flags  = $(if $(call fuzz_modsrc,$(1)),-Imodules/$(call fuzz_mod,$(1)) -Itests/unit,-Iserver)
fuzz_libs   = $(if $(call fuzz_modsrc,$(1)),-ljansson -lcrypto -lz -lpthread,$(LIBS))

.PHONY: fuzz fuzz-build
fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_DIR)

fuzz-build:
	@PAYD_FUZZ=1 scripts/deps.sh
	$(MAKE) -j$$(nproc) $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: server/%.c $(wildcard server/*.h) sdk/include/payd/module.h
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/migrations_gen.o: $(BUILD)/gen/migrations_gen.c server/migrate.h
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -c $< -o $@

$(FUZZ_CORE): $(FUZZ_CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $$(call fuzz_inputs,$$*) $(wildcard modules/*/*.h) $(wildcard server/*.h) \
                    tests/unit/fake_host.h $(wildcard sdk/include/payd/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $(call fuzz_flags,$*) \
	    $(filter %.c %.a,$^) -o $@ $(call fuzz_libs,$*)
