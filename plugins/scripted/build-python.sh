#!/usr/bin/env bash
# Builds a Python example plugin (a folder holding app.py) into a component with componentize-py,
# against contract 0.2 (wit/v0.2.0). Each Python example's own build.sh calls it:
#   bash plugins/scripted/build-python.sh WORLD PLUGIN_DIR OUT.wasm
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 WORLD PLUGIN_DIR OUT.wasm" >&2
    exit 2
fi
world=$1
app="$(cd "$2" && pwd)/app.py"
wit="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../wit/v0.2.0" && pwd)"
out="$3"
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
cp "$app" "$src/"
componentize-py -q -d "$wit" -w "$world" componentize --stub-wasi -p "$src" -o "$out" app
echo "built $out ($(wc -c <"$out") bytes)"
