# shellcheck shell=bash
# Helpers shared by the vm-* test scripts (sourced, bash).
#
# A test script runs twice: on the host, where it calls ffvm with itself as
# the command, and inside the guest (FFVM_LAYOUT set, /ffvm mounted), where
# it makes its assertions.  ffvm's exit 77 (no VM here) becomes the test's
# SKIP; any other status is the test's result.

FFVM=${FFVM:-$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/ffvm}

in_vm() { [[ -n ${FFVM_LAYOUT:-} && -d /ffvm ]]; }

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf 'ok: %s\n' "$*"; }

# run_vm FFVM-ARGS... -- CMD...: run ffvm, exit 77 when it cannot run here,
# otherwise return its status.
run_vm() {
	local rc=0
	"$FFVM" "$@" || rc=$?
	if ((rc == 77)); then
		echo "SKIP: the rxe VM cannot run here (reason above)" >&2
		exit 77
	fi
	return "$rc"
}

# wait_listen PORT: until something listens on TCP PORT (perftest and the
# pingpong servers take ~1 s under TCG before their clients may connect).
wait_listen() {
	local i
	for ((i = 0; i < 150; i++)); do
		[[ -n $(ss -Hltn "sport = :$1") ]] && return 0
		sleep 0.1
	done
	fail "nothing listens on port $1 after 15 s"
}

# no_errors NAME FILE: FILE has no error-looking line.
no_errors() {
	if grep -Ein 'error|fail|couldn|unable|invalid' "$2" >&2; then
		fail "$1 printed errors (above)"
	fi
}

# show NAME FILE: copy a program's output into the test log.
show() { printf -- '----- %s\n' "$1"; cat -- "$2"; }
