# wasmswitch developer commands. `make test` is what CI runs.
CARGO ?= cargo

.PHONY: setup test check lint bench plugins run

setup:
	bash scripts/setup.sh

# Builds every example plugin (Rust, Python, JavaScript) from source and runs all tests.
test: lint
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The example plugins only (components in the cargo target dir; paths printed by `make plugins`).
plugins:
	$(CARGO) build -p wasmswitch-plugin-artifacts --locked

bench:
	$(CARGO) bench -p wasmswitch --bench plugins --locked

# Runs the IVR menu scenario against the Rust build of the example plugin.
run:
	$(CARGO) run --release -p wasmswitch -- plugin test \
		"$$($(CARGO) run -q --release -p wasmswitch-plugin-artifacts --example path -- ivr-menu)" \
		plugins/scenarios/ivr-menu.yaml
