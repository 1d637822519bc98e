#!/usr/bin/env bash
# Instructions per parse + read + print, for each contestant and message (callgrind; see
# examples/profile.rs). Usage: bash host/sip/bench/count.sh   (from the repository root)
set -euo pipefail
cargo build -q --release --locked -p wasmswitch-sip-bench --example profile
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/profile"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 | awk '/refs:/ {gsub(",", "", $4); print $4}'; }
printf '%-10s %-9s %s\n' message who instructions
for msg in invite ok register; do
    for who in ours rsip rsipstack; do
        a=$(count "$who" "$msg" 2000); b=$(count "$who" "$msg" 4000)
        printf '%-10s %-9s %d\n' "$msg" "$who" $(( (b - a) / 2000 ))
    done
done
