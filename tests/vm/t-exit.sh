#!/bin/bash
# vm-exit: ffvm returns the command's exit status and carries its stdout and
# stderr; usage errors exit 2.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

rc=0
out=$(run_vm -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 3') || rc=$?
printf '%s\n' "$out"
((rc == 3)) || fail "exit status $rc, want 3"
[[ $out == *to-stdout* && $out == *to-stderr* ]] || fail "command output missing from ffvm's stdout"
pass "status 3 and both streams came back"

rc=0
"$FFVM" --layout nonsense -- true 2>/dev/null || rc=$?
((rc == 2)) || fail "bad --layout gave $rc, want 2"
rc=0
"$FFVM" 2>/dev/null || rc=$?
((rc == 2)) || fail "no command gave $rc, want 2"
pass "usage errors exit 2"
