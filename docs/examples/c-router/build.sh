#!/usr/bin/env bash
# Builds the C router into a wasmswitch plugin component: router.wasm.
#
#   ./build.sh             build; if a tool is missing, say which and how to install it
#   ./build.sh --install   install what is missing first (Debian/Ubuntu: apt-get, and cargo
#                          for wit-bindgen and wasm-tools), then build
#
# Environment: WIT (the contract's WIT folder; default: this repository's wit/v0.2.0),
# CC (default: clang). Tested on Debian 12 with clang 14, wit-bindgen 0.63.0, wasm-tools 1.263.0.
set -euo pipefail
cd "$(dirname "$0")"

WIT=${WIT:-../../../wit/v0.2.0}
CC=${CC:-clang}
INSTALL=0
[ "${1:-}" = --install ] && INSTALL=1
export PATH="$HOME/.cargo/bin:$PATH"

# The Debian packages: for CC=clang, bookworm's default clang (14); for CC=clang-N, version N.
case "$CC" in
    clang) APT_PACKAGES="clang lld wasi-libc libclang-rt-14-dev-wasm32" ;;
    clang-[0-9]*) N=${CC#clang-}
        APT_PACKAGES="clang-$N lld-$N wasi-libc libclang-rt-$N-dev-wasm32" ;;
    *) APT_PACKAGES="" ;;
esac

missing=()

# clang that can compile and link for wasm32-wasi: needs lld (wasm-ld), wasi-libc (headers and
# malloc) and compiler-rt's wasm32 builtins. A two-line program tells whether all are there.
cc_works() {
    local dir
    dir=$(mktemp -d)
    printf '#include <stdlib.h>\nint f(int n) { return *(int *)malloc(n); }\n' > "$dir/t.c"
    "$CC" --target=wasm32-wasi -mexec-model=reactor -o "$dir/t.wasm" "$dir/t.c" \
        > "$dir/log" 2>&1
    local ok=$?
    [ $ok -ne 0 ] && sed 's/^/    /' "$dir/log" >&2
    rm -rf "$dir"
    return $ok
}

if ! command -v "$CC" > /dev/null || ! cc_works; then
    if [ $INSTALL = 1 ] && [ -n "$APT_PACKAGES" ]; then
        echo "installing $APT_PACKAGES (apt-get)"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends $APT_PACKAGES
        cc_works || { echo "error: $CC still cannot build for wasm32-wasi" >&2; exit 1; }
    else
        missing+=("a C compiler for wasm32-wasi ($CC with wasm-ld, wasi-libc and the wasm32 builtins):
    apt-get install ${APT_PACKAGES:-<clang, lld, wasi-libc and compiler-rt for wasm32>}")
    fi
fi

for tool in wit-bindgen:wit-bindgen-cli wasm-tools:wasm-tools; do
    bin=${tool%%:*} crate=${tool#*:}
    if ! command -v "$bin" > /dev/null; then
        if [ $INSTALL = 1 ]; then
            command -v cargo > /dev/null ||
                { echo "error: cargo is needed to install $crate (https://rustup.rs)" >&2; exit 1; }
            echo "installing $crate (cargo install: it compiles, 10 to 20 minutes on 2 cores)"
            cargo install --locked "$crate"
        else
            missing+=("$bin:
    cargo install --locked $crate")
        fi
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing tools (or run ./build.sh --install):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
[ -d "$WIT" ] || { echo "error: no WIT folder at $WIT (set WIT=path/to/wit/v0.2.0)" >&2; exit 1; }

run() { echo "+ $*"; "$@"; }

# 1. C bindings for the `router` world: gen/router.h, gen/router.c, gen/router_component_type.o
run wit-bindgen c "$WIT" --world router --out-dir gen
# 2. A core wasm module: a reactor (no main), exports on-event, cabi_realloc and the post-return.
run "$CC" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Igen -Wl,--strip-debug \
    -o router.core.wasm plugin.c gen/router.c gen/router_component_type.o
# A WASI import means a libc function that does I/O slipped in (any of stdio, even snprintf,
# brings fd_write, fd_seek and fd_close); `component new` would then fail without the adapter.
if wasm-tools print router.core.wasm | grep -E '^\s*\(import "wasi_snapshot_preview1"'; then
    echo "error: router.core.wasm imports WASI (above): remove what brings it in, or build the" \
        "component with --adapt (see docs/plugins-in-c.md)" >&2
    exit 1
fi
# 3. The component: the type information in router_component_type.o says what the imports and
#    exports are. No --adapt: the module imports nothing from WASI.
run wasm-tools component new router.core.wasm -o router.wasm

# What it imports and exports: wasmswitch:plugin/* only.
wasm-tools component wit router.wasm | grep -E '^\s*(import|export) '
echo "built $(pwd)/router.wasm ($(wc -c < router.wasm) bytes)"
