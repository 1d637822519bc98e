#!/usr/bin/env bash
# Installs what building and testing wasmswitch needs, on top of a Rust toolchain (rustup):
# the wasm32-wasip2 target (Rust plugins), componentize-py (Python plugins), Node.js/npm for
# the JavaScript plugins (whose own tools come from npm on first build), and schemathesis for
# the API's property-based test, and sipp for the SIP tests. Idempotent.
set -euo pipefail

rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

if ! command -v componentize-py >/dev/null || [ "$(componentize-py --version 2>/dev/null | awk '{print $2}')" != "0.25.1" ]; then
    python3 -m pip install --quiet "componentize-py==0.25.1"
fi

if ! command -v npm >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq nodejs npm
    else
        echo "error: install Node.js 20+ and npm (needed to build JavaScript plugins)" >&2
        exit 1
    fi
fi

# The API's property-based test (tests/api-fuzz.sh) and curl for its set-up. Hypothesis, which
# schemathesis generates with, is pinned too (schemathesis allows any 6.x from 6.130.12), so CI
# runs the pair the fuzz pass was tested with rather than whatever was released last. (grep -c
# reads all its input: `grep -q` exits at the first match, and under pipefail pip's broken pipe
# made the check fail, so it reinstalled every time.)
if [ "$(python3 -m pip list --format=freeze 2>/dev/null |
    grep -cxF -e schemathesis==4.32.5 -e hypothesis==6.170.17)" != 2 ]; then
    python3 -m pip install --quiet schemathesis==4.32.5 hypothesis==6.170.17
fi
# curl for the fuzz script's set-up, sqlite3 for a test that reads the schema.
for tool in curl sqlite3; do
    if ! command -v "$tool" >/dev/null && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq "$tool"
    fi
done

# sipp (Debian package sip-tester): the SIP stack's tests (host/sip/tests/peers.rs) run it as a
# real peer over real sockets; without it they fail rather than pass by not running.
if ! command -v sipp >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq sip-tester
    else
        echo "error: install sipp (Debian/Ubuntu package: sip-tester) for the SIP tests" >&2
        exit 1
    fi
fi

# openssl's command line: the TLS tests (host/sip/tests/tls.rs, host/tests/service.rs) use
# `openssl s_client` as a peer that is not our own code.
if ! command -v openssl >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq openssl
    else
        echo "error: install openssl (Debian/Ubuntu package: openssl) for the TLS tests" >&2
        exit 1
    fi
fi
