#!/bin/bash
# vm-timeout: `ffvm --timeout 5 -- sleep 60` returns 124 soon after 5 s and
# leaves no qemu behind.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
start=$SECONDS
rc=0
run_vm --timeout 5 --log "$tmp/vm.log" -- sleep 60 || rc=$?
took=$((SECONDS - start))
((rc == 124)) || fail "exit status $rc, want 124"
((took < 30)) || fail "took ${took}s to time out after 5 s"
# The log path is unique to this run, so it names only our qemu.
if pgrep -f -- "$tmp/vm.log" >&2; then
	fail "qemu still runs after the timeout"
fi
pass "124 after ${took}s, qemu gone"
