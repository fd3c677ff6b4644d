# Weft. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export WEFT_CACHE ?= $(HOME)/.cache/weft
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
TEST_MODEL := $(WEFT_CACHE)/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: demo test deps assets build lint editors peer vulkan

## demo: build, fetch the tiny model, and show a completion through `weft lsp`.
# The binaries are built for the whole workspace at once and run directly:
# building one package alone unifies features differently and would compile
# llama.cpp a second time.
demo: deps assets build
	$(TARGET_DIR)/debug/weft-demo

## test: everything: lints, unit tests, end-to-end tests with the real model.
test: deps assets lint
	$(CARGO) build --workspace --all-targets
	url=$$(telemetry-api/scripts/test-db.sh); \
	status=0; DATABASE_URL="$$url" $(CARGO) test --workspace --no-fail-fast || status=$$?; \
	telemetry-api/scripts/test-db.sh stop >/dev/null 2>&1 || true; \
	exit $$status
	$(MAKE) editors

## editors: the editor clients' tests, each a real client against `weft lsp`.
editors: deps assets
	$(CARGO) build --workspace --all-targets
	WEFT_BIN=$(TARGET_DIR)/debug/weft WEFT_MODEL=$(TEST_MODEL) editors/test.sh

build: deps
	$(CARGO) build --workspace --all-targets

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

assets:
	models/fetch-test-assets.sh

## peer: llama.cpp's llama-server, llama-bench and llama-batched-bench, the
# reference `weft bench keystrokes|concurrency` compare against, built from
# the pinned llama.cpp source into $(WEFT_CACHE)/peer (docs/performance.md).
peer:
	models/build-llama-server.sh

## vulkan: the GPU build through Vulkan, compiled and run here. llama.cpp
# is built with its Vulkan backend (its own target directory: a second
# llama.cpp compile, 20-30 minutes on 2 cores), then one completion runs
# with every layer offloaded to the Vulkan device: Mesa's lavapipe (a
# Vulkan driver on the CPU) on a machine without a GPU, a real GPU where
# there is one. Not part of `make test`: it compiles llama.cpp again.
# `weft doctor` lists the devices llama.cpp found, and llama.cpp's own log
# must show the layers offloaded (`offloaded 31/31 layers to GPU`).
# llama.cpp's Vulkan backend skips CPU devices such as lavapipe unless
# GGML_VK_VISIBLE_DEVICES names them: without a GPU it is set to 0. The
# time budget is raised: lavapipe compiles its shaders at the first
# decode (seconds).
# Debian 12's Vulkan headers (1.3.239) lack VK_EXT_layer_settings, which
# llama.cpp's ggml-vulkan.cpp uses; the headers of Debian 13's
# libvulkan-dev (pinned, SHA-256 checked) are unpacked into the cache and
# put first on the C++ include path. Debian 12's loader, glslc and
# SPIR-V headers do the rest.
VULKAN_TARGET_DIR := $(WEFT_CACHE)/target-vulkan
VULKAN_HEADERS_DEB := libvulkan-dev_1.4.309.0-1_amd64.deb
VULKAN_HEADERS_SHA := 8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a
VULKAN_HEADERS := $(WEFT_CACHE)/vulkan-headers
vulkan: deps assets
	@missing=(); \
	[ -f /usr/include/vulkan/vulkan.h ] || missing+=(libvulkan-dev); \
	command -v glslc >/dev/null || missing+=(glslc); \
	[ -f /usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake ] || missing+=(spirv-headers); \
	ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing $${missing[*]}" >&2; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq "$${missing[@]}" >/dev/null; \
	fi
	@if [ ! -f $(VULKAN_HEADERS)/usr/include/vulkan/vulkan.hpp ]; then \
	  deb=$(WEFT_CACHE)/pip/$(VULKAN_HEADERS_DEB); mkdir -p $(WEFT_CACHE)/pip; \
	  curl --fail --silent --show-error --location --retry 3 -o "$$deb" \
	    http://deb.debian.org/debian/pool/main/v/vulkan-loader/$(VULKAN_HEADERS_DEB); \
	  echo "$(VULKAN_HEADERS_SHA)  $$deb" | sha256sum --check --quiet; \
	  mkdir -p $(VULKAN_HEADERS) && dpkg-deb -x "$$deb" $(VULKAN_HEADERS); \
	fi
	CPLUS_INCLUDE_PATH=$(VULKAN_HEADERS)/usr/include CARGO_TARGET_DIR=$(VULKAN_TARGET_DIR) \
	  $(CARGO) build --workspace --features weft/vulkan --bin weft
	@doctor=$$(WEFT_N_GPU_LAYERS=99 $(VULKAN_TARGET_DIR)/debug/weft doctor --model $(TEST_MODEL)); \
	if [ -z "$${GGML_VK_VISIBLE_DEVICES:-}" ] && ! grep -qE '^\[ok *\] gpu' <<<"$$doctor"; then \
	  echo "no Vulkan GPU: device 0 instead, a CPU device such as Mesa's lavapipe (GGML_VK_VISIBLE_DEVICES=0)"; \
	  export GGML_VK_VISIBLE_DEVICES=0; \
	fi; \
	set -x; \
	WEFT_N_GPU_LAYERS=99 $(VULKAN_TARGET_DIR)/debug/weft doctor --model $(TEST_MODEL) | grep -E 'devices|gpu'; \
	printf '[completion]\ntime_budget_ms = 120000\n' >$(VULKAN_TARGET_DIR)/vulkan.toml; \
	WEFT_LOG=warn,llama-cpp-2=info WEFT_N_GPU_LAYERS=99 WEFT_N_THREADS=1 $(VULKAN_TARGET_DIR)/debug/weft complete --model $(TEST_MODEL) \
	  --config $(VULKAN_TARGET_DIR)/vulkan.toml --max-tokens 8 --json tests/fixtures/demo/greeting.py:7:5 2>$(VULKAN_TARGET_DIR)/complete.log
	@grep -E 'offloaded|model buffer size' $(VULKAN_TARGET_DIR)/complete.log
	@grep -qE 'offloaded [1-9][0-9]*/' $(VULKAN_TARGET_DIR)/complete.log || \
	  { echo "no layer went to the Vulkan device (log: $(VULKAN_TARGET_DIR)/complete.log)" >&2; exit 1; }

# System packages llama.cpp's build needs: cmake, and libclang with its
# headers for bindgen (without libclang-common, bindgen fails on stdbool.h).
deps:
	@missing=(); \
	command -v cmake >/dev/null || missing+=(cmake); \
	ls /usr/lib/llvm-14/lib/libclang.so.1 >/dev/null 2>&1 || missing+=(libclang1-14); \
	ls /usr/lib/llvm-14/lib/clang/*/include/stdbool.h >/dev/null 2>&1 || missing+=(libclang-common-14-dev); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing $${missing[*]}" >&2; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq "$${missing[@]}" >/dev/null; \
	fi
