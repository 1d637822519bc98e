#!/usr/bin/env bash
# Coverage-guided fuzzing of the SIP message parser, the stream framer and the digest parsers (cargo-fuzz with
# libFuzzer, on the stable toolchain: `-s none` builds without a sanitizer, which is what needs
# nightly; Rust's own bounds checks and the targets' assertions are the oracle).
#
#   bash tests/fuzz-sip.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 30 s, every target
#
# Seeds are the RFC 4475 torture messages (host/sip/tests/data/rfc4475); what the fuzzer finds
# new goes to host/sip/fuzz/corpus/<target> (not committed) and is reused by the next run.
# Exits 0 when no target found anything; 1 with the finding's path when one did (a crash, a
# leak, an input slower than 10 s or one that needs more than 2 GB); 2 when a build fails.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(message stream digest)

if ! command -v cargo-fuzz >/dev/null || [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz 0.13.2" ]; then
    cargo install --quiet --locked cargo-fuzz --version 0.13.2 || exit 2
fi

fuzz_dir=host/sip/fuzz
seeds=host/sip/tests/data/rfc4475
# The fuzz build gets a target dir of its own: its coverage flags would otherwise make cargo
# rebuild the switch's dependencies for the next `cargo test`.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasmswitch-target}/fuzz"

status=0
for target in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir "$fuzz_dir" -s none "$target" || exit 2
    corpus="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    cargo fuzz run --fuzz-dir "$fuzz_dir" -s none "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | grep -E '^(stat::number_of_executed_units|Done|==|SUMMARY|panicked|thread)|(ERROR|Test unit written)'
    rc=${PIPESTATUS[0]}
    findings=$(find "$artifacts" -type f ! -name 'slow-unit-*' 2>/dev/null)
    if [ -n "$findings" ]; then
        echo "fuzz-sip: $target found a failing input (reproduce: cargo fuzz run --fuzz-dir $fuzz_dir -s none $target FILE):" >&2
        echo "$findings" >&2
        status=1
    elif [ "$rc" -ne 0 ]; then
        echo "fuzz-sip: $target: the fuzzer exited $rc without saving an input" >&2
        status=1
    else
        echo "fuzz-sip: $target: nothing found in ${seconds}s"
    fi
done
exit $status
