# Thin wrapper over CMake and the setup scripts. `make run` and `make test`
# take a fresh clone all the way; the others are their steps.
RAGD_CACHE ?= $(HOME)/.cache/ragd
RAGD_CPU ?= native
LLAMA_PREFIX ?= $(RAGD_CACHE)/llama.cpp-0.3.36-$(RAGD_CPU)
BUILD ?= build
BUILD_ASAN ?= build-asan
JOBS ?= $(shell nproc)
PORT ?= 8080
DATA_DIR ?= ./data
DOCS_ASSETS_DIR ?= $(shell RAGD_CACHE='$(RAGD_CACHE)' bash scripts/docs-assets.sh --print-dir)
CMAKE_FLAGS = -G Ninja -DCMAKE_PREFIX_PATH=$(LLAMA_PREFIX) -DRAGD_CPU=$(RAGD_CPU) \
	-DRAGD_DOCS_ASSETS_DIR=$(DOCS_ASSETS_DIR)

export RAGD_CACHE RAGD_CPU

.PHONY: all deps build build-asan models run test test-unit test-e2e test-asan fuzz valgrind bench clean

all: build

deps:
	bash scripts/deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$(JOBS)

$(BUILD_ASAN)/build.ninja:
	cmake -S . -B $(BUILD_ASAN) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DRAGD_SANITIZE=ON

build-asan: deps $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN) -j$(JOBS)

models:
	bash scripts/models.sh

run: build models
	./$(BUILD)/ragd serve --port $(PORT) --data-dir $(DATA_DIR)

# The whole suite: unit tests and end-to-end tests on the release build, then
# both again under AddressSanitizer + UndefinedBehaviorSanitizer.
test: build build-asan models
	bash scripts/test.sh

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-e2e: build models
	RAGD_BIN=$(BUILD)/ragd bash scripts/test.sh e2e

# libFuzzer targets (build-fuzz/, clang): FUZZ_SECONDS each.
FUZZ_SECONDS ?= 20
fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Part of the e2e suite under valgrind (build-valgrind/, x86-64-v3); slow.
valgrind: deps models
	bash scripts/valgrind.sh

bench: build models
	bash bench/run.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz build-valgrind
