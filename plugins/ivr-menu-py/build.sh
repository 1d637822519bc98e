#!/usr/bin/env bash
# Builds the Python IVR menu (world `ivr`) into a component:
#   bash plugins/ivr-menu-py/build.sh OUT.wasm      (from any directory; OUT is relative to it)
# The steps, shared by the Python examples, are in plugins/scripted/build-python.sh.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash $0 OUT.wasm" >&2
    exit 2
fi
here="$(dirname "${BASH_SOURCE[0]}")"
exec bash "$here/../scripted/build-python.sh" ivr "$here" "$1"
