#!/bin/bash
# vm-verbs-sizes: perftest -a (every message size from 2 B, powers of
# two) between two containers on one host through ffnet, for
# ib_{write,send,read}_bw and ib_{write,send,read}_lat. perftest -a always
# goes on to 8 MiB; the test checks that every size from 2 B to 8 MiB has
# its line (perftest prints it once the size's iterations are done) and
# that every size has its figure: a line perftest printed as zeros
# because its CPU clock estimate failed under TCG is measured again with
# that size alone, and must have its figure then (vb_sizes); and that both
# sides exit 0 without errors.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	FFVM_RDMA_NETNS=exclusive run_vm --layout single --timeout 580 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

vb_one_host

PT=(-d ffnet0 -x 1 -F)
for k in bw lat; do
	for t in write send read; do
		vb_sizes "$k" "${t}_${k}_all" a b 10 "ib_${t}_${k}" "${PT[@]}"
		again=
		((${#VB_REDONE[@]} == 0)) || again=" (${VB_REDONE[*]} B measured alone after a clock failure)"
		pass "ib_${t}_${k} -a: every size from 2 B to 8 MiB has its figure, 10 iterations each$again"
	done
done
