#!/bin/bash
# vm-verbs-same: RDMA verbs between two containers on one host, through
# ffnet. Single layout (rxe0), RDMA namespaces exclusive: the containers
# (network namespaces ffv-a, ffv-b) have no RDMA device of their own, so
# everything below goes through the shim and the router.
#   - without the shim a container sees no device (ibv_devices, rdma dev,
#     /sys/class/infiniband); with it, ibv_devices and ibv_devinfo show the
#     virtual device ffnet0 with the container's virtual GIDs;
#   - ibv_rc_pingpong -c: 100 iterations of 64 KiB on both sides, and its
#     own check of the received bytes (vb_pingpong);
#   - ffverbs data: RDMA_WRITE, SEND and RDMA_READ of 1 B to 8 MiB, every
#     byte checked where it landed (vb_data: perftest checks no data);
#   - ib_write_bw, ib_send_bw, ib_read_bw (64 KiB x 200): the result line
#     with a positive average on the client (no rate: the test fails);
#   - ib_write_lat, ib_send_lat, ib_read_lat (2 B x 200): the latency line
#     with a positive t_avg;
#   - ib_write_bw -R: the same over rdma_cm (connections set up by the
#     router, both for perftest's exchange and the test's QPs);
#   - ffctl status shows the contexts while they run and none after.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	FFVM_RDMA_NETNS=exclusive run_vm --layout single --timeout 500 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

vb_one_host
pass "the containers see no RDMA device of their own"
want=direct
[[ $VB_VERBS_PATH == ring ]] && want=ring
got=$(vb_status h1 --json | jq -r .rdma.data_path)
[[ $got == "$want" ]] || fail "--verbs-path $VB_VERBS_PATH on rxe0: ffctl status says data path '$got', not $want"
pass "--verbs-path $VB_VERBS_PATH on rxe0: the $got data path (ffctl status)"

devs=$(vb_ct a ibv_devices)
printf '%s\n' "$devs"
grep -Eq '^[[:space:]]+ffnet0[[:space:]]+0266666e0a4e0001$' <<<"$devs" ||
	fail "ibv_devices in a does not list ffnet0 with a's GUID"
info=$(vb_ct b ibv_devinfo -v)
grep -q 'state:[[:space:]]*PORT_ACTIVE' <<<"$info" || fail "ibv_devinfo: port not active"
grep -q 'link_layer:[[:space:]]*Ethernet' <<<"$info" || fail "ibv_devinfo: not Ethernet"
grep -q 'GID\[  1\]:[[:space:]]*::ffff:10.78.0.2, RoCE v2' <<<"$info" ||
	fail "ibv_devinfo: GID 1 is not b's virtual GID"
pass "ibv_devices and ibv_devinfo show ffnet0 with the container's GIDs"

vb_pingpong rc_pingpong a b
pass "ibv_rc_pingpong -c: 100 x 64 KiB, the server's check of the bytes passed ($(grep -o '[0-9.]* usec/iter' "$VB_LOGS/rc_pingpong.client"))"

vb_data data a b
pass "ffverbs data: RDMA_WRITE, SEND and RDMA_READ of 1 B to 8 MiB ($VB_DATA_BYTES B each), every byte checked where it landed"

PT=(-d ffnet0 -x 1 -F)
for t in write send read; do
	vb_perf bw "${t}_bw" a b 65536 200 "ib_${t}_bw" "${PT[@]}" -s 65536 -n 200
	pass "ib_${t}_bw: 200 x 64 KiB, average $VB_AVG MB/s"
done
for t in write send read; do
	vb_perf lat "${t}_lat" a b 2 200 "ib_${t}_lat" "${PT[@]}" -n 200
	pass "ib_${t}_lat: 200 x 2 B, t_avg $VB_AVG us"
done

VB_WAIT=cm vb_perf bw write_bw_cm a b 65536 200 ib_write_bw -R "${PT[@]}" -s 65536 -n 200
cm_runs=$VB_TRIES
grep -q 'rdma_cm QPs[[:space:]]*: ON' "$VB_LOGS/write_bw_cm.client" || fail "ib_write_bw -R did not use rdma_cm"
pass "ib_write_bw -R (rdma_cm): 200 x 64 KiB, average $VB_AVG MB/s"

st=$(vb_status h1 --json)
[[ $(jq '.rdma.contexts | length' <<<"$st") == 0 ]] || fail "contexts left in the router: $st"
[[ $(jq '.rdma.contexts_total' <<<"$st") -ge 15 ]] || fail "the router counted too few contexts: $st"
[[ $(jq '.rdma.bad_wqes' <<<"$st") == 0 ]] || fail "bad work requests: $st"
# each run of ib_write_bw -R: one connection for the exchange, one for the test
[[ $(jq '.rdma.cm_conns_total' <<<"$st") == $((2 * cm_runs)) ]] ||
	fail "rdma_cm connections, want $((2 * cm_runs)): $st"
[[ $(jq '.rdma.cm_listeners | length' <<<"$st") == 0 ]] || fail "rdma_cm listeners left: $st"
pass "after the programs exit the router holds no RDMA object ($(jq '.rdma.contexts_total' <<<"$st") contexts served)"
