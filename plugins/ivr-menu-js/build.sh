#!/usr/bin/env bash
# Build the JavaScript IVR menu into a wasmswitch component (world wasmswitch:plugin/ivr).
#   bash plugins/ivr-menu-js/build.sh OUT.wasm      (from any directory; OUT is relative to it)
#
# componentize-qjs (QuickJS) is the engine behind `jco componentize --backend quickjs`; calling it
# directly keeps node_modules at 2 packages (jco pulls in ~145, incl. SpiderMonkey and TypeScript)
# and reaches --opt-size, which jco does not pass through. The flags:
#   --sync       plain (non-async) component ABI, as the host calls it
#   --stub-wasi  WASI imports become trap stubs: the component imports only wasmswitch:plugin/*
#   --opt-size   the size-optimised QuickJS runtime (~1.1 MB instead of ~1.6 MB)
# Needs Node >= 20; the first run installs the pinned tools from the npm registry (npm ci).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash $0 OUT.wasm" >&2
    exit 2
fi
out=$1
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"

cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi

node_modules/.bin/componentize-qjs --wit ../../wit/v0.1.0 --js app.js --world ivr \
    --sync --stub-wasi --opt-size --output "$out"
