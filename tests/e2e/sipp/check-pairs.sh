#!/usr/bin/env bash
# Proves the call scenarios in this folder valid without the switch: each caller against its
# callee, sipp to sipp on 127.0.0.1, over UDP and TCP (sipp's -t u1 and -t t1), every call
# expected to succeed on both sides. Then it breaks a caller on purpose in the ways the callees
# check for (no audio offer, a CANCEL or ACK on a branch of its own, the wrong user, no hold in
# a re-INVITE, an unexpected status) and expects the checking side to fail: a check that cannot
# fail proves nothing. All runs go at once, each on ports of its own; a few seconds in all.
#
#   bash tests/e2e/sipp/check-pairs.sh        (`make test` runs it)
#
# Needs sipp (scripts/setup.sh installs it) and python3 (to find free ports).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/wasmswitch-pairs.XXXXXX)"
trap 'rm -rf "$work"' EXIT

command -v sipp >/dev/null || { echo "check-pairs: sipp is not installed (scripts/setup.sh)" >&2; exit 1; }

# Seconds either side may run before sipp gives up and fails (a lost message would otherwise
# leave a side waiting for ever). Each pair needs well under one.
TIMEOUT=10

# COUNT distinct ports, each free for both UDP and TCP on 127.0.0.1, chosen at once (all held
# open until every one is chosen, so no two runs share a port).
free_ports() {
    python3 -c '
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        u.close()
        continue
    held += [u, t]
    ports.append(port)
print(" ".join(map(str, ports)))
' "$1"
}

# Waits (up to 5 s) until something listens on 127.0.0.1:PORT over TRANSPORT (u1 or t1).
wait_bound() {
    local port=$1 transport=$2 flag=-lun
    [ "$transport" = t1 ] && flag=-ltn
    for _ in $(seq 50); do
        ss -H "$flag" "sport = :$port" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# Fills response="[key]" attributes, which sipp reads as numbers before any -key applies
# (uac-refused.xml's [status]): copy FILE with KEY replaced by VALUE, print the copy's path.
render() {
    local file=$1 key=$2 value=$3 out
    out="$work/$(basename "$file" .xml)-$key-$value.xml"
    sed "s/response=\"\[$key\]\"/response=\"$value\"/g" "$file" >"$out"
    echo "$out"
}

# run NAME TRANSPORT EXPECT CALLEE "CALLEE ARGS" CALLER "CALLER ARGS" [WHY]
# (on the next two ports of $ports, taken by the caller of `run` before it goes to the background)
# EXPECT: ok (both sides succeed), callee-fails or caller-fails (that side must fail, and its
# error log must contain WHY: failing for another reason, a port taken say, proves nothing).
# Writes NAME.result (PASS or FAIL: why) and keeps both sides' logs beside it.
run() {
    local name=$1 transport=$2 expect=$3 callee=$4 callee_args=$5 caller=$6 caller_args=$7
    local why=${8:-}
    local dir="$work/$name" uas_port=${ports[$next]} uac_port=${ports[$((next + 1))]}
    local uas_rc=0 uac_rc=0 uas_pid
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # the argument strings are word lists on purpose
    sipp -sf "$callee" -i 127.0.0.1 -p "$uas_port" -t "$transport" -m 1 \
        -timeout "${TIMEOUT}s" -timeout_error -nostdin \
        -trace_msg -message_file "$dir/callee-messages.log" \
        -trace_err -error_file "$dir/callee-errors.log" \
        $callee_args >"$dir/callee-screen.log" 2>"$dir/callee-stderr.log" &
    uas_pid=$!
    if ! wait_bound "$uas_port" "$transport"; then
        kill "$uas_pid" 2>/dev/null || true
        echo "FAIL: the callee never listened on $uas_port" >"$dir.result"
        return
    fi
    # shellcheck disable=SC2086
    sipp -sf "$caller" -i 127.0.0.1 -p "$uac_port" -t "$transport" -m 1 \
        -s 15550100 "127.0.0.1:$uas_port" \
        -timeout "${TIMEOUT}s" -timeout_error -nostdin \
        -trace_msg -message_file "$dir/caller-messages.log" \
        -trace_err -error_file "$dir/caller-errors.log" \
        $caller_args >"$dir/caller-screen.log" 2>"$dir/caller-stderr.log" || uac_rc=$?
    wait "$uas_pid" || uas_rc=$?
    local verdict
    case "$expect" in
        ok) [ "$uas_rc" = 0 ] && [ "$uac_rc" = 0 ] && verdict=PASS ;;
        callee-fails) [ "$uas_rc" != 0 ] && grep -qsF -- "$why" "$dir/callee-errors.log" "$dir/callee-stderr.log" && verdict=PASS ;;
        caller-fails) [ "$uac_rc" != 0 ] && grep -qsF -- "$why" "$dir/caller-errors.log" "$dir/caller-stderr.log" && verdict=PASS ;;
    esac
    echo "${verdict:-FAIL: expected $expect${why:+ ($why)}, callee exited $uas_rc, caller $uac_rc}" >"$dir.result"
}

caller="-key caller +14155550100"
refused_486=$(render "$here/uac-refused.xml" status 486)
refused_404=$(render "$here/uac-refused.xml" status 404)

# Broken callers for the negative runs, derived from the real ones so they stay in step.
sed 's/m=audio/m=video/' "$here/uac.xml" >"$work/uac-no-audio.xml"
python3 - "$here/uac-cancel.xml" "$work/uac-cancel-new-branch.xml" "$refused_486" \
    "$work/uac-refused-ack-new-branch.xml" <<'EOF'
import sys
own = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
def rebranch(src, dst, method):
    text = open(src).read()
    at = text.index(method + " sip:")
    via = text.index("[last_Via:]", at)
    open(dst, "w").write(text[:via] + own + text[via + len("[last_Via:]"):])
rebranch(sys.argv[1], sys.argv[2], "CANCEL")
rebranch(sys.argv[3], sys.argv[4], "ACK")
EOF
sed 's/a=sendonly/a=sendrecv/' "$here/uac-reinvite.xml" >"$work/uac-reinvite-no-hold.xml"

# Two ports per run: 12 runs that must pass, 6 that must fail.
read -r -a ports <<<"$(free_ports 36)"
next=0
# Runs `run` in the background on the next two ports.
start() {
    run "$@" &
    next=$((next + 2))
}

for t in u1 t1; do
    start "answered-$t" $t ok "$here/uas.xml" "" "$here/uac.xml" "$caller -key hold 200"
    start "cancelled-$t" $t ok "$here/uas-no-answer.xml" "" "$here/uac-cancel.xml" "$caller -key ring 200"
    start "callee-hangs-up-$t" $t ok "$here/uas-hangs-up.xml" "-key hold 200" \
        "$here/uac-callee-hangs-up.xml" "$caller"
    start "busy-$t" $t ok "$here/uas-busy.xml" "" "$refused_486" "$caller -key status 486"
    start "reinvite-$t" $t ok "$here/uas-reinvite.xml" "" "$here/uac-reinvite.xml" "$caller -key hold 200"
    start "auth-$t" $t ok "$here/uas-auth.xml" "-key user acme-trunk -key password trunk-secret" \
        "$here/pairs/uac-auth.xml" "$caller -key hold 200 -au acme-trunk -ap trunk-secret"
done
start neg-no-audio-offer u1 callee-fails "$here/uas.xml" "" "$work/uac-no-audio.xml" "$caller -key hold 0" \
    "with regexp 'm=audio'"
start neg-cancel-new-branch u1 callee-fails "$here/uas-no-answer.xml" "" \
    "$work/uac-cancel-new-branch.xml" "$caller -key ring 0" "strcmp cancel_branch"
start neg-ack-new-branch u1 callee-fails "$here/uas-busy.xml" "" \
    "$work/uac-refused-ack-new-branch.xml" "$caller -key status 486" "strcmp ack_branch"
start neg-wrong-user u1 callee-fails "$here/uas-auth.xml" "-key user acme-trunk -key password trunk-secret" \
    "$here/pairs/uac-auth.xml" "$caller -key hold 0 -au someone-else -ap trunk-secret" "strcmp got_user"
start neg-reinvite-no-hold u1 callee-fails "$here/uas-reinvite.xml" "" \
    "$work/uac-reinvite-no-hold.xml" "$caller -key hold 0" "with regexp 'a=sendonly'"
start neg-unexpected-status u1 caller-fails "$here/uas-busy.xml" "" "$refused_404" "$caller -key status 404" \
    "received 'SIP/2.0 486 Busy Here"
wait

failed=0
runs=$(find "$work" -maxdepth 1 -name '*.result' | wc -l)
if [ "$runs" != $((next / 2)) ]; then
    echo "check-pairs: $((next / 2)) runs started, $runs reported" >&2
    failed=1
fi
for result in "$work"/*.result; do
    name="$(basename "$result" .result)"
    verdict="$(cat "$result")"
    printf '%-28s %s\n' "$name" "$verdict"
    if [ "$verdict" != PASS ]; then
        failed=1
        for log in "$work/$name"/*-stderr.log "$work/$name"/*-errors.log; do
            [ -s "$log" ] && { echo "--- $log"; head -c 2000 "$log"; echo; }
        done
    fi
done
if [ "$failed" != 0 ]; then
    echo "check-pairs: FAILED" >&2
    exit 1
fi
echo "check-pairs: every scenario pair passed over UDP and TCP, and every broken caller was caught"
