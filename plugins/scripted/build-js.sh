#!/usr/bin/env bash
# Builds a JavaScript example plugin (a folder holding app.js and a package.json that pins
# componentize-qjs) into a component, against contract 0.2 (wit/v0.2.0). Each JavaScript
# example's own build.sh calls it:
#   bash plugins/scripted/build-js.sh WORLD PLUGIN_DIR OUT.wasm
#
# componentize-qjs (QuickJS) is the engine behind `jco componentize --backend quickjs`; calling it
# directly keeps node_modules at 2 packages (jco pulls in ~145, incl. SpiderMonkey and TypeScript)
# and reaches --opt-size, which jco does not pass through. The flags:
#   --sync       plain (non-async) component ABI, as the host calls it
#   --stub-wasi  WASI imports become trap stubs: the component imports only wasmswitch:plugin/*
#   --opt-size   the size-optimised QuickJS runtime (~1.1 MB instead of ~1.6 MB)
# Needs Node >= 20; the first run in a folder installs its pinned tools from the npm registry
# (npm ci).
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: bash $0 WORLD PLUGIN_DIR OUT.wasm" >&2
    exit 2
fi
world=$1
wit="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../wit/v0.2.0" && pwd)"
out=$3
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"

cd "$2"
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi

node_modules/.bin/componentize-qjs --wit "$wit" --js app.js --world "$world" \
    --sync --stub-wasi --opt-size --output "$out"
