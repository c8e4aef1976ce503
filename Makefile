# outrider build. Driven by ./build.sh; usable directly: make [BUILD=build-asan SAN=1]
#
#   build/outrider                 the agent (core/*.c)
#   build/modules/<name>.so        one per modules/<name>/module.mk
#   build/t/unit/<name>.t          C unit tests (TAP), one per t/unit/<name>.c
#   build/t/modules/<name>.so      test-only modules, one per t/modules/<name>.c
#
# Adding a module = adding a folder modules/<name>/ with a module.mk that sets
#   <name>_SRCS := modules/<name>/a.c modules/<name>/b.c
#   <name>_PKGS := libnghttp2          (pkg-config packages beyond core's)
#   <name>_LIBS := -lm                 (optional)

BUILD ?= build
SAN ?= 0
CC ?= cc

CORE_PKGS := libuv jansson lua5.4
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Icore/include -Icore -fno-strict-aliasing
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=address,undefined
endif
# Nothing here unwinds at run time (no C++ exceptions, pthread_cancel or backtrace()), so
# .eh_frame would only occupy mapped read-only pages: 11 pages of the binary and proxy.so
# resident at idle. With -g the same unwind information goes to .debug_frame, which is not
# loaded, and which packaging keeps when it strips, for gdb and perf on a core. Sanitizer
# builds keep .eh_frame: their reports unwind at run time.
ifneq ($(SAN),1)
CFLAGS_BASE += -fno-asynchronous-unwind-tables
endif
CFLAGS_BASE += $(EXTRA_CFLAGS)

pkg_cflags = $(shell pkg-config --cflags $(1))
pkg_libs = $(shell pkg-config --libs $(1))

CORE_CFLAGS := $(CFLAGS_BASE) $(call pkg_cflags,$(CORE_PKGS)) -fvisibility=hidden
CORE_LIBS := $(call pkg_libs,$(CORE_PKGS)) -ldl -lpthread -lm

CORE_SRCS := $(wildcard core/*.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/obj/%.o)
CORE_LIB_OBJS := $(filter-out $(BUILD)/obj/core/main.o,$(CORE_OBJS))

MODULE_MKS := $(wildcard modules/*/module.mk)
MODULES := $(patsubst modules/%/module.mk,%,$(MODULE_MKS))
include $(MODULE_MKS)

UNIT_SRCS := $(wildcard t/unit/*.c)
UNIT_TESTS := $(UNIT_SRCS:t/unit/%.c=$(BUILD)/t/unit/%.t)
TMOD_SRCS := $(wildcard t/modules/*.c)
TMODS := $(TMOD_SRCS:t/modules/%.c=$(BUILD)/t/modules/%.so)

MODULE_SOS := $(MODULES:%=$(BUILD)/modules/%.so)

.PHONY: all clean check-exports
all: $(BUILD)/outrider $(MODULE_SOS) $(UNIT_TESTS) $(TMODS) check-exports

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

$(BUILD)/obj/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -DOTR_VERSION='"$(VERSION)"' -MMD -MP -c $< -o $@

# -rdynamic is not used: modules reach the agent only through the host table.
$(BUILD)/outrider: $(CORE_OBJS)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(CORE_LIBS)

# --- modules -----------------------------------------------------------------
MOD_CFLAGS = $(CFLAGS_BASE) -fPIC -fvisibility=hidden $(call pkg_cflags,libuv lua5.4 $($(1)_PKGS))
MOD_LIBS = $(call pkg_libs,libuv lua5.4 $($(1)_PKGS)) $($(1)_LIBS) -lm

define module_rules
$(1)_OBJS := $$($(1)_SRCS:%.c=$(BUILD)/obj/%.pic.o)
$(BUILD)/obj/modules/$(1)/%.pic.o: modules/$(1)/%.c
	@mkdir -p $$(dir $$@)
	$(CC) $$(call MOD_CFLAGS,$(1)) -MMD -MP -c $$< -o $$@
$(BUILD)/modules/$(1).so: $$($(1)_OBJS)
	@mkdir -p $$(dir $$@)
	$(CC) $(LDFLAGS_SAN) -shared -Wl,-z,defs -o $$@ $$^ $$(call MOD_LIBS,$(1))
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

# Test-only modules: one .c each, same flags as real modules.
$(BUILD)/t/modules/%.so: t/modules/%.c core/include/outrider/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -fPIC -fvisibility=hidden $(call pkg_cflags,libuv lua5.4) -shared -Wl,-z,defs \
		$(LDFLAGS_SAN) -o $@ $< $(call pkg_libs,libuv lua5.4)

# A module exports its descriptor and nothing else; the ABI promises it.
check-exports: $(MODULE_SOS) $(BUILD)/t/modules/echo.so
	@for so in $(MODULE_SOS) $(BUILD)/t/modules/echo.so; do \
		n=$$(basename $$so .so); \
		extra=$$(nm -D --defined-only $$so | awk '{print $$3}' | grep -v -x "otr_module_$$n" | grep -v '^_' ); \
		if [ -n "$$extra" ]; then echo "$$so exports more than otr_module_$$n: $$extra" >&2; exit 1; fi; \
	done

# --- unit tests ----------------------------------------------------------------
# A unit test #includes the .c files it tests (to reach statics) and links
# against core's libraries; module unit tests add their module's packages via
# a "// pkgs: libnghttp2" first line.
unit_pkgs = $(shell sed -n '1s|^// pkgs: ||p' $(1))
$(BUILD)/t/unit/%.t: t/unit/%.c $(wildcard t/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Wno-missing-prototypes -It/lib $(call pkg_cflags,$(CORE_PKGS) $(call unit_pkgs,$<)) \
		-MMD -MP -o $@ $< $(LDFLAGS_SAN) $(CORE_LIBS) $(if $(call unit_pkgs,$<),$(call pkg_libs,$(call unit_pkgs,$<)))

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/t -name '*.d' 2>/dev/null)
