#!/usr/bin/env bash
# Build the Python IVR menu into a WebAssembly component:  bash plugins/ivr-menu-py/build.sh OUT.wasm
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/v0.1.0"
out="$1"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if ! command -v componentize-py >/dev/null 2>&1; then
    echo "error: componentize-py not found on PATH; install it with: pip install componentize-py==0.25.1" >&2
    exit 1
fi

# Build from a copy so componentize-py's __pycache__ stays out of the source tree. The bindings
# (wit_world, componentize_py_types) are generated internally from the WIT. --stub-wasi: the app
# needs no WASI, so the component imports only wasmswitch:plugin/log, kv and metrics (and types).
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp "$here/app.py" "$src/"
componentize-py -q -d "$wit" -w ivr componentize --stub-wasi -p "$src" -o "$out" app
echo "built $out ($(wc -c <"$out") bytes)"
