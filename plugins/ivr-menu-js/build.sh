#!/usr/bin/env bash
# Builds the JavaScript IVR menu (world `ivr`) into a component:
#   bash plugins/ivr-menu-js/build.sh OUT.wasm      (from any directory; OUT is relative to it)
# The steps, shared by the JavaScript examples, are in plugins/scripted/build-js.sh.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash $0 OUT.wasm" >&2
    exit 2
fi
here="$(dirname "${BASH_SOURCE[0]}")"
exec bash "$here/../scripted/build-js.sh" ivr "$here" "$1"
