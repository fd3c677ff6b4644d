# Weft. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export WEFT_CACHE ?= $(HOME)/.cache/weft

.PHONY: demo test deps assets build lint unit check-llama

## demo: build, fetch the tiny model, and show a completion through `weft lsp`.
demo: deps assets build
	$(CARGO) run --quiet -p weft-e2e --bin weft-demo

## test: everything: lints, unit tests, end-to-end tests with the real model.
test: deps assets lint
	$(CARGO) build -p weft --bins
	url=$$(telemetry-api/scripts/test-db.sh); \
	status=0; DATABASE_URL="$$url" $(CARGO) test --workspace --no-fail-fast || status=$$?; \
	telemetry-api/scripts/test-db.sh stop >/dev/null 2>&1 || true; \
	exit $$status

build: deps
	$(CARGO) build --workspace --bins

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

assets:
	models/fetch-test-assets.sh

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
