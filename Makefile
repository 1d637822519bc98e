# wasmswitch developer commands. `make test` is what CI runs.
CARGO ?= cargo

.PHONY: setup test check lint bench bench-sip bench-register bench-calls plugins run try-plugin fuzz-api fuzz-sip probe

setup:
	bash scripts/setup.sh

# The PostgreSQL the tests use besides SQLite (each test makes and drops its own database).
# Set it empty to run the SQLite half only: `make test WASMSWITCH_TEST_POSTGRES_URL=`.
WASMSWITCH_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
export WASMSWITCH_TEST_POSTGRES_URL
FUZZ_DB_DIR := $(shell mktemp -u /tmp/wasmswitch-fuzz.XXXXXX)
# The debug build of the host (wherever CARGO_TARGET_DIR puts it).
WASMSWITCH_BIN = $(shell $(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/wasmswitch

# Builds every example plugin (Rust, Python, JavaScript) from source, runs all tests on SQLite
# and PostgreSQL (among them calls end to end, tests/e2e: the binary between sipp peers), proves
# the sipp call scenarios against each other (tests/e2e/sipp/check-pairs.sh), then a bounded
# fuzz run of the SIP parser and framer (cargo-fuzz), the API's property-based pass
# (schemathesis) and the control plane's probe suite (tests/probe) on both.
# (The fuzz pass and the probes use the binary `cargo test` built: building it alone would pick
# other dependency features and recompile half the tree.)
# The probes' latency bound: another tenant's reads and /healthz keep a p99 under this many ms
# while one tenant runs 20 looping simulations (idle p99 is a few ms; 150 leaves room for a
# busy CI machine).
PROBE_LATENCY_BOUND_MS ?= 150
# Seconds the SIP fuzz targets run for in `make test` (each); `make fuzz-sip` for longer runs.
SIP_FUZZ_SECONDS ?= 30
test: setup lint
	$(CARGO) test --workspace --locked
	bash tests/e2e/sipp/check-pairs.sh
	bash tests/fuzz-sip.sh $(SIP_FUZZ_SECONDS)
	export FUZZ_PLUGIN="$$($(CARGO) run -q --locked -p wasmswitch-plugin-artifacts --example path -- router)"; \
	faulty="$$($(CARGO) run -q --locked -p wasmswitch-plugin-artifacts --example path -- faulty)"; \
	probe="--router $$FUZZ_PLUGIN --faulty $$faulty --latency-bound-ms $(PROBE_LATENCY_BOUND_MS)"; \
	bash tests/api-fuzz.sh "$(WASMSWITCH_BIN)" "sqlite://$(FUZZ_DB_DIR)/fuzz.db" && \
	python3 tests/probe/probe.py "$(WASMSWITCH_BIN)" "sqlite://$(FUZZ_DB_DIR)/probe.db" $$probe && \
	if [ -n "$(WASMSWITCH_TEST_POSTGRES_URL)" ]; then \
		bash tests/api-fuzz.sh "$(WASMSWITCH_BIN)" "$(WASMSWITCH_TEST_POSTGRES_URL)" && \
		python3 tests/probe/probe.py "$(WASMSWITCH_BIN)" "$(WASMSWITCH_TEST_POSTGRES_URL)" $$probe; \
	fi
	rm -rf $(FUZZ_DB_DIR)

# The control plane's probe suite alone, on SQLite.
probe:
	$(CARGO) test --workspace --locked --no-run
	python3 tests/probe/probe.py "$(WASMSWITCH_BIN)" "sqlite://$(FUZZ_DB_DIR)/probe.db" \
		--router "$$($(CARGO) run -q --locked -p wasmswitch-plugin-artifacts --example path -- router)" \
		--faulty "$$($(CARGO) run -q --locked -p wasmswitch-plugin-artifacts --example path -- faulty)"
	rm -rf $(FUZZ_DB_DIR)

# The API's property-based pass alone, on SQLite.
fuzz-api:
	$(CARGO) test --workspace --locked --no-run
	FUZZ_PLUGIN="$$($(CARGO) run -q --locked -p wasmswitch-plugin-artifacts --example path -- router)" \
	bash tests/api-fuzz.sh "$(WASMSWITCH_BIN)" "sqlite://$(FUZZ_DB_DIR)/fuzz.db"
	rm -rf $(FUZZ_DB_DIR)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The example plugins only (components in the cargo target dir; paths printed by `make plugins`).
plugins:
	$(CARGO) build -p wasmswitch-plugin-artifacts --locked

bench:
	$(CARGO) bench -p wasmswitch-plugins --bench plugins --locked

# The SIP message benchmark: wasmswitch-sip, rsip and rsipstack parsing and printing the same
# INVITE, 200 OK and REGISTER in one run.
bench-sip:
	$(CARGO) bench -p wasmswitch-sip-bench --bench messages --locked

# The registrar under load: sipp registering 1,000 users with digest at rising rates against
# wasmswitch (SQLite and PostgreSQL) and Kamailio in the same run (a few minutes). Needs sipp;
# installs Kamailio with apt-get when missing. Figures in BENCHMARKS.md.
bench-register:
	python3 tests/bench/register.py --postgres "$(WASMSWITCH_TEST_POSTGRES_URL)"

# Calls under load: sipp placing calls through wasmswitch (the example router plugin deciding
# each) at rising rates, with Kamailio as a stateful proxy and sipp alone in the same run (a few
# minutes); `make bench-calls CALLS_ARGS=--memory` holds 10,000 calls and reads the servers'
# memory instead. Builds the release binary and the plugin; needs sipp; installs Kamailio with
# apt-get when missing. Not part of `make test`.
CALLS_ARGS ?=
bench-calls:
	python3 tests/bench/calls.py $(CALLS_ARGS)

# Fuzzes the SIP parser and framer for longer: `make fuzz-sip SIP_FUZZ_SECONDS=3600`.
fuzz-sip:
	bash tests/fuzz-sip.sh $(SIP_FUZZ_SECONDS)

# Runs the switch with the embedded SQLite database in ./wasmswitch-data (created on first
# start, which prints an operator API key) and, on first start, a tenant "demo" with every
# example plugin active (its admin key is printed too). API on http://127.0.0.1:8080.
run: setup
	$(CARGO) run -q --release -p wasmswitch-plugin-artifacts --locked --example path -- --copy-to wasmswitch-data/demo-plugins
	$(CARGO) run --release -p wasmswitch --locked -- serve --seed-demo wasmswitch-data/demo-plugins

# Runs the IVR menu scenario against the Rust build of the example plugin.
try-plugin:
	$(CARGO) run --release -p wasmswitch -- plugin test \
		"$$($(CARGO) run -q --release -p wasmswitch-plugin-artifacts --example path -- ivr-menu)" \
		plugins/scenarios/ivr-menu.yaml
