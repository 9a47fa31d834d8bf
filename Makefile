# Quick start: `make run` (single broker on 127.0.0.1:9092, data in ./data) and `make test`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: build run test unit deps test-deps fuzz clean format bench

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

run: build
	mkdir -p data
	$(BUILD_DIR)/varve broker config/server.properties

# Every test: the fuzzers for a bounded time, then (ctest) unit tests, generated protocol
# round trips, and the cross-process tests with real clients.
test: test-deps build
	@fuzz/run.sh $${FUZZ_SECONDS:-30}
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900 -j 2

unit: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS)

# Varve against Apache Kafka 4.x on this machine (bench/run.sh --quick; BENCH=--full for the
# long run). Prints a table; see docs/benchmarks.md.
bench: deps
	@bench/run.sh $${BENCH:---quick}

fuzz: test-deps
	@fuzz/run.sh $${FUZZ_SECONDS:-60}

format:
	@find src tests fuzz -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-fuzz
