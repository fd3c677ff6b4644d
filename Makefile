# Weft. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export WEFT_CACHE ?= $(HOME)/.cache/weft
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
TEST_MODEL := $(WEFT_CACHE)/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: demo test deps assets build lint unit check-llama editors peer

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
