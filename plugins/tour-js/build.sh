#!/usr/bin/env bash
# Builds the JavaScript tour of contract 0.2 (world `switch`) into a component:
#   bash plugins/tour-js/build.sh OUT.wasm      (from any directory; OUT is relative to it)
# The steps, shared by the JavaScript examples, are in plugins/scripted/build-js.sh.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash $0 OUT.wasm" >&2
    exit 2
fi
here="$(dirname "${BASH_SOURCE[0]}")"
exec bash "$here/../scripted/build-js.sh" switch "$here" "$1"
