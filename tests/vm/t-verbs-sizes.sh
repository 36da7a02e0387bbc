#!/bin/bash
# vm-verbs-sizes: perftest -a (every message size from 2 B, powers of
# two) between two containers on one host through ffnet, for
# ib_{write,send,read}_bw and ib_{write,send,read}_lat. perftest -a always
# goes on to 8 MiB; the test checks that every size from 2 B to 8 MiB has
# its line (perftest prints it once the size's iterations are done) with
# positive figures (see vb_sizes about perftest's clock under TCG), and
# that both sides exit 0 without errors.
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

PT=(-d ffnet0 -x 1 -F -a -n 10)
for t in write send read; do
	vb_run "${t}_bw_all" a b "ib_${t}_bw" "${PT[@]}"
	good=$(vb_sizes "$VB_LOGS/${t}_bw_all.client" 10)
	pass "ib_${t}_bw -a: every size from 2 B to 8 MiB, 10 iterations each ($good of 23 timed)"
done
for t in write send read; do
	vb_run "${t}_lat_all" a b "ib_${t}_lat" "${PT[@]}"
	good=$(vb_sizes "$VB_LOGS/${t}_lat_all.client" 10)
	pass "ib_${t}_lat -a: every size from 2 B to 8 MiB, 10 iterations each ($good of 23 timed)"
done
